//! The operator's chat channels and Slack approvers, from one YAML file the admin
//! mounts from a Secret (`run --notify-config-file`): tokens, webhook URLs (a Teams
//! Workflows URL is itself a credential) and the signing secret never pass through
//! the API, so the operator still reads no Secrets.
//!
//! The Slack-user mapping lives in the same file, not in a ConfigMap: it decides whom
//! the operator impersonates, so it must be exactly as hard to write as the signing
//! secret, and the chart renders the same list into the RBAC `impersonate` grant.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// A value that must never be printed (a token, a URL with a key in it).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Credential(pub String);

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyConfig {
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Approving from Slack buttons; absent: messages carry no buttons.
    #[serde(default)]
    pub slack_approvals: Option<SlackApprovals>,
}

/// One named channel, and who may use it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Channel {
    pub name: String,
    /// Namespaces whose Playbooks and Triggers may name this channel (`*`: all).
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub slack: Option<SlackChannel>,
    #[serde(default)]
    pub teams: Option<Webhook>,
    #[serde(default)]
    pub webhook: Option<Webhook>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackChannel {
    /// The bot token (`xoxb-...`), sent as `Authorization: Bearer`.
    pub token: Credential,
    /// The conversation id (`C0123456789`) the bot posts in.
    pub channel: String,
    /// Slack's Web API base (default `https://slack.com/api`).
    #[serde(default = "slack_api")]
    pub api_url: String,
}

fn slack_api() -> String {
    "https://slack.com/api".into()
}

/// A URL that takes a JSON POST (a Teams Workflows webhook, or any receiver).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    pub url: Credential,
}

/// Slack interactions: the app's signing secret and who each Slack user is.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackApprovals {
    pub signing_secret: Credential,
    /// Slack user id (`U0123ABC`) to the Kubernetes user and groups the operator
    /// impersonates when that person clicks Approve or Reject.
    #[serde(default)]
    pub users: BTreeMap<String, Identity>,
}

/// A Kubernetes identity.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// What a channel delivers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Slack,
    Teams,
    Webhook,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Slack => "slack",
            Kind::Teams => "teams",
            Kind::Webhook => "webhook",
        }
    }
}

impl Channel {
    pub fn kind(&self) -> Kind {
        if self.slack.is_some() {
            Kind::Slack
        } else if self.teams.is_some() {
            Kind::Teams
        } else {
            Kind::Webhook
        }
    }

    pub fn allows(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|n| n == "*" || n == namespace)
    }
}

impl NotifyConfig {
    /// Parses and checks the file; the error names the entry and what to change.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = serde_yaml::from_str(text)
            .map_err(|e| format!("the notify config is not valid: {e}"))?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in config.channels.iter().enumerate() {
            let at = format!("channels[{i}] ({:?})", c.name);
            if c.name.trim().is_empty() {
                return Err(format!(
                    "channels[{i}]: name is empty: give the channel a name Playbooks refer to"
                ));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(format!(
                    "{at}: the name is used twice: channel names must be unique"
                ));
            }
            let kinds = [c.slack.is_some(), c.teams.is_some(), c.webhook.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(format!("{at}: set exactly one of slack, teams or webhook"));
            }
            if c.namespaces.is_empty() {
                return Err(format!(
                    "{at}: namespaces is empty: list the namespaces that may use it (\"*\" for all)"
                ));
            }
            let urls = [
                c.slack.as_ref().map(|s| s.api_url.as_str()),
                c.teams.as_ref().map(|w| w.url.0.as_str()),
                c.webhook.as_ref().map(|w| w.url.0.as_str()),
            ];
            if let Some(bad) = urls.into_iter().flatten().find(|u| !is_http_url(u)) {
                let shown = if c.slack.is_some() {
                    bad
                } else {
                    "(the url, not shown)"
                };
                return Err(format!("{at}: {shown} is not an http(s) URL"));
            }
            if let Some(s) = &c.slack
                && s.channel.trim().is_empty()
            {
                return Err(format!(
                    "{at}: slack.channel is empty: give the conversation id (C0123...)"
                ));
            }
        }
        if let Some(a) = &config.slack_approvals {
            if a.signing_secret.0.trim().is_empty() {
                return Err(
                    "slackApprovals.signingSecret is empty: copy the Slack app's signing secret"
                        .into(),
                );
            }
            if let Some((id, _)) = a.users.iter().find(|(_, who)| who.user.trim().is_empty()) {
                return Err(format!(
                    "slackApprovals.users.{id}: user is empty: name the Kubernetes user"
                ));
            }
        }
        Ok(config)
    }

    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// The channel `namespace` may use under `name`, or why not (shown in status).
    pub fn channel_for(&self, name: &str, namespace: &str) -> Result<&Channel, String> {
        let Some(c) = self.channel(name) else {
            let names: Vec<&str> = self.channels.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "notify.channel {name:?} is not configured in the operator; configured: [{}]: \
                 fix the name or ask the operator's admin to add it",
                names.join(", ")
            ));
        };
        if !c.allows(namespace) {
            return Err(format!(
                "notify.channel {name:?} may not be used from namespace {namespace:?}: \
                 ask the operator's admin to list it in the channel's namespaces"
            ));
        }
        Ok(c)
    }

    /// Who the Slack user `id` is in Kubernetes, or why no one.
    pub fn identity(&self, slack_user: &str) -> Result<&Identity, String> {
        self.slack_approvals
            .as_ref()
            .and_then(|a| a.users.get(slack_user))
            .ok_or_else(|| {
                format!(
                    "your Slack user ({slack_user}) is not mapped to a Kubernetes user, so you cannot \
                     approve from Slack: ask the operator's admin to add you to slackApprovals.users, \
                     or use the execution page or `playbook-operator approve`"
                )
            })
    }
}

fn is_http_url(u: &str) -> bool {
    let l = u.to_ascii_lowercase();
    (l.starts_with("https://") || l.starts_with("http://")) && u.len() > 8
}
