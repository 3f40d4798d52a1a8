//! Slack: the run's message as Block Kit (`chat.postMessage` / `chat.update` body),
//! its Approve / Reject buttons, and the `block_actions` interaction they send back.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::RunView;
use crate::api::Decision;

/// Slack's limit on a section's text; longer text is cut.
const SECTION_MAX: usize = 3000;

/// Slack mrkdwn control characters (alert text is attacker-influenced: no mentions,
/// no links of its own).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn cut(s: String) -> String {
    if s.chars().count() <= SECTION_MAX {
        return s;
    }
    let mut t: String = s.chars().take(SECTION_MAX - 1).collect();
    t.push('…');
    t
}

/// What an Approve or Reject button carries: the run, the step and the plan shown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ButtonValue {
    pub ns: String,
    pub run: String,
    pub step: String,
    pub hash: String,
}

/// The `chat.postMessage` body (with `ts`: the `chat.update` body). Buttons only with
/// `buttons` (chat approvals configured).
pub fn message(view: &RunView, channel: &str, ts: Option<&str>, buttons: bool) -> Value {
    let title = format!(
        "{} playbook *{}* in `{}`: {}",
        icon(&view.phase),
        escape(&view.playbook),
        escape(&view.namespace),
        view.phase
    );
    let mut fields =
        vec![json!({"type": "mrkdwn", "text": format!("*Run*\n{}", escape(&view.name))})];
    if let Some(a) = &view.alert {
        fields.push(json!({"type": "mrkdwn", "text": cut(format!("*Alert*\n{}", escape(a)))}));
    }
    if let Some(s) = &view.current_step {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Step*\n{}", escape(s))}));
    }
    if let Some(s) = &view.severity {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Severity*\n{}", escape(s))}));
    }
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": title}, "fields": fields}),
    ];
    if let Some(m) = view.message.as_ref().filter(|_| view.is_final) {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(escape(m))}}));
    }
    for (n, w) in view.waiting.iter().enumerate() {
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(
            "Step `{}` waits for approval of plan `{}`", escape(&w.step), escape(&w.plan_hash))}}),
        );
        if buttons {
            let value = serde_json::to_string(&ButtonValue {
                ns: view.namespace.clone(),
                run: view.name.clone(),
                step: w.step.clone(),
                hash: w.plan_hash.clone(),
            })
            .unwrap_or_default();
            blocks.push(json!({"type": "actions", "block_id": format!("approval-{n}-{}", w.plan_hash), "elements": [
                {"type": "button", "action_id": "approve", "style": "primary",
                 "text": {"type": "plain_text", "text": "Approve"}, "value": value},
                {"type": "button", "action_id": "reject", "style": "danger",
                 "text": {"type": "plain_text", "text": "Reject"}, "value": value},
            ]}));
        }
    }
    if !view.decisions.is_empty() {
        let lines: Vec<String> = view
            .decisions
            .iter()
            .map(|d| {
                format!(
                    "{} {} `{}` (plan `{}`)",
                    escape(&d.user),
                    d.decision,
                    escape(&d.step),
                    escape(d.plan_hash.as_deref().unwrap_or("?"))
                )
            })
            .collect();
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": cut(lines.join("\n"))}]}));
    }
    if let Some(url) = &view.url {
        blocks.push(
            json!({"type": "actions", "elements": [{"type": "button", "action_id": "open",
            "text": {"type": "plain_text", "text": "Open the run"}, "url": url}]}),
        );
    }
    let text = format!(
        "playbook {} in {}: {}",
        view.playbook, view.namespace, view.phase
    );
    let mut body = json!({"channel": channel, "text": text, "blocks": blocks});
    if let Some(ts) = ts {
        body["ts"] = json!(ts);
    }
    body
}

fn icon(phase: &str) -> &'static str {
    match phase {
        "Succeeded" => ":white_check_mark:",
        "Failed" => ":x:",
        "Cancelled" => ":no_entry_sign:",
        "WaitingApproval" => ":raised_hand:",
        _ => ":hourglass_flowing_sand:",
    }
}

/// A click on Approve or Reject, as Slack's `block_actions` payload tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Click {
    pub slack_user: String,
    pub slack_user_name: String,
    pub decision: Decision,
    pub target: ButtonValue,
    pub response_url: String,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    user: User,
    #[serde(default)]
    response_url: Option<String>,
    #[serde(default)]
    actions: Vec<Action>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Action {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

/// The click in an interaction's `payload` field, `Ok(None)` for an interaction that
/// is not one of our approval buttons (the "Open the run" link button also calls back).
pub fn click(payload: &str) -> Result<Option<Click>, String> {
    let p: Payload = serde_json::from_str(payload).map_err(|e| {
        format!("the interaction payload is not a Slack block_actions payload: {e}")
    })?;
    if p.kind != "block_actions" {
        return Ok(None);
    }
    let Some((action, decision)) = p.actions.iter().find_map(|a| match a.action_id.as_str() {
        "approve" => Some((a, Decision::Approve)),
        "reject" => Some((a, Decision::Reject)),
        _ => None,
    }) else {
        return Ok(None);
    };
    let target: ButtonValue = serde_json::from_str(action.value.as_deref().unwrap_or_default())
        .map_err(|e| format!("the button's value is not one this operator made: {e}"))?;
    let response_url = p
        .response_url
        .ok_or("the interaction has no response_url")?;
    Ok(Some(Click {
        slack_user_name: p
            .user
            .username
            .or(p.user.name)
            .unwrap_or_else(|| p.user.id.clone()),
        slack_user: p.user.id,
        decision,
        target,
        response_url,
    }))
}

/// The body posted to `response_url`: a reply only the clicker sees, leaving the
/// message as it is (the notifier updates it when the approval lands).
pub fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "replace_original": false, "text": text})
}

/// The reply to a click whose approval write failed. A refused impersonation is the
/// installation's gap, not the person's: it says where the grant comes from.
pub fn refusal(verb: &str, user: &str, error: &str) -> String {
    let mut text = format!("not {verb} as {user}: {error}");
    if error.contains("cannot impersonate") {
        text.push_str(&format!(
            "; the operator may impersonate only the users and groups listed in the \
             Helm values notify.chatApprovals.users and notify.chatApprovals.groups: \
             an admin adds {user} (and its groups) there, as in the chat mapping"
        ));
    }
    text
}
