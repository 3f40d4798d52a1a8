//! Chat notifications, the pure part: what a run's state says ([`RunView`]), what to
//! send for it given what was sent already ([`next`]), and the Slack blocks, Teams
//! card and webhook JSON ([`slack`], [`teams`]). The shell (`crate::notify`) watches
//! Executions, calls these, and does the HTTP off the reconcile path.
//!
//! One live message per run: Slack is posted once (its `ts` kept in
//! `status.notify`) and then only updated; Teams and webhooks cannot edit, so they get
//! one post per event: the start, each approval wait (per step and plan), the end.

pub mod config;
pub mod slack;
pub mod teams;
#[cfg(test)]
mod tests;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::api::{Decision, Execution, NotifyStatus, StepState};
use crate::engine::context::phase_name;
use config::Kind;

/// A finished run the notifier first sees this long after its end (an operator that
/// was down, or a first install over old runs) is not announced any more.
pub const STALE_AFTER_SECONDS: i64 = 600;

/// What a message says about a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub namespace: String,
    pub name: String,
    pub playbook: String,
    /// The alert's name and summary, when an alert started the run.
    pub alert: Option<String>,
    pub phase: String,
    pub current_step: Option<String>,
    pub severity: Option<String>,
    /// The run's execution page (`--external-url`).
    pub url: Option<String>,
    /// Steps waiting for approval, with the plan hash each shows.
    pub waiting: Vec<Waiting>,
    /// Decisions recorded so far: who approved or rejected which plan.
    pub decisions: Vec<Decided>,
    pub message: Option<String>,
    #[serde(skip)]
    pub is_final: bool,
    #[serde(skip)]
    pub finished_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    pub step: String,
    pub plan_hash: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decided {
    pub step: String,
    pub user: String,
    pub decision: String,
    pub plan_hash: Option<String>,
}

/// The run as a message shows it.
pub fn view(exec: &Execution, external_url: Option<&str>) -> RunView {
    let status = exec.status.clone().unwrap_or_default();
    let namespace = exec.namespace().unwrap_or_default();
    let name = exec.name_any();
    let waiting = status
        .steps
        .iter()
        .chain(&status.finally)
        .filter(|s| s.state == StepState::WaitingApproval)
        .filter_map(|s| {
            Some(Waiting {
                step: s.id.clone(),
                plan_hash: s.plan.as_ref()?.hash.clone(),
            })
        })
        .collect();
    let decisions = exec
        .spec
        .approvals
        .iter()
        .map(|a| Decided {
            step: a.step.clone(),
            user: a.user.clone(),
            decision: match a.decision {
                Decision::Approve => "approved",
                Decision::Reject => "rejected",
            }
            .into(),
            plan_hash: a.plan_hash.clone(),
        })
        .collect();
    RunView {
        url: external_url.map(|base| super::page::execution_url(base, &namespace, &name)),
        namespace,
        name,
        playbook: exec.spec.playbook_ref.name.clone(),
        alert: exec.spec.alert.as_ref().and_then(alert_text),
        phase: phase_name(status.phase).into(),
        current_step: status.current_step.clone(),
        severity: status.severity.clone(),
        waiting,
        decisions,
        message: status.message.clone(),
        is_final: status.phase.is_final(),
        finished_at: status.finished_at.as_ref().map(|t| t.0),
    }
}

/// `alertname: summary` (or the alert's id) of a normalized alert.
fn alert_text(alert: &serde_json::Value) -> Option<String> {
    let label = |k: &str| {
        alert
            .pointer(&format!("/labels/{k}"))
            .and_then(|v| v.as_str())
    };
    let name = label("alertname").or_else(|| alert.get("id").and_then(|v| v.as_str()));
    let summary = alert
        .pointer("/annotations/summary")
        .or_else(|| alert.pointer("/annotations/title"))
        .and_then(|v| v.as_str());
    match (name, summary) {
        (Some(n), Some(s)) => Some(format!("{n}: {s}")),
        (Some(n), None) => Some(n.to_string()),
        (None, Some(s)) => Some(s.to_string()),
        (None, None) => None,
    }
}

/// The events a post-only channel (Teams, webhook) announces, in order: `start`,
/// `wait:STEP:HASH` for each approval wait, `end` once the run is over.
pub fn events(view: &RunView) -> Vec<String> {
    let mut out = vec!["start".to_string()];
    out.extend(
        view.waiting
            .iter()
            .map(|w| format!("wait:{}:{}", w.step, w.plan_hash)),
    );
    if view.is_final {
        out.push("end".into());
    }
    out
}

/// A short digest of a message's content: the same content is never sent twice.
pub fn digest(content: &serde_json::Value) -> String {
    let hash = Sha256::digest(content.to_string().as_bytes());
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The execution page's line about the run's chat message.
pub fn page_line(s: &NotifyStatus) -> String {
    match (&s.error, &s.sent_at) {
        (Some(e), _) => format!("Chat ({}): {e}", s.channel),
        (None, Some(_)) => format!("Chat ({}): message sent", s.channel),
        (None, None) => format!("Chat ({}): nothing sent yet", s.channel),
    }
}

/// What to send next for a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Send {
    /// Nothing new.
    Skip,
    /// Slack: the first message (`chat.postMessage`).
    Post,
    /// Slack: edit the message `ts` in `channel` (`chat.update`).
    Update { ts: String, channel: String },
    /// Teams or webhook: post this event (the oldest one not yet sent).
    Event(String),
}

/// What to send for `view` on a channel of `kind`, given what `sent` records and the
/// digest of the content as it is now. A run first seen long after its end is skipped
/// (`now`), so a restart over old runs does not flood the channel.
pub fn next(
    kind: Kind,
    view: &RunView,
    sent: Option<&NotifyStatus>,
    content_digest: &str,
    now: Timestamp,
) -> Send {
    let nothing_sent = sent.is_none_or(|s| s.message_ts.is_none() && s.sent.is_empty());
    if nothing_sent
        && view.is_final
        && view
            .finished_at
            .is_none_or(|t| now.as_second() - t.as_second() > STALE_AFTER_SECONDS)
    {
        return Send::Skip;
    }
    match kind {
        Kind::Slack => match sent.and_then(|s| Some((s.message_ts.clone()?, s))) {
            None => Send::Post,
            Some((ts, s)) if s.digest.as_deref() != Some(content_digest) => Send::Update {
                ts,
                channel: s.slack_channel.clone().unwrap_or_default(),
            },
            Some(_) => Send::Skip,
        },
        Kind::Teams | Kind::Webhook => {
            let done = sent.map(|s| s.sent.as_slice()).unwrap_or_default();
            events(view)
                .into_iter()
                .find(|e| !done.contains(e))
                .map_or(Send::Skip, Send::Event)
        }
    }
}
