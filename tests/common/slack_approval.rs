//! A guarded playbook approved from Slack, as the notify e2e tests drive it
//! (`notify_e2e`, `notify_chart_e2e`): the playbook, its wait, the Approve button of
//! the message the operator posted, a signed click and the reply to it, and bob's
//! approval once the run is over.

use std::net::SocketAddr;

use playbook_operator::api::{ApprovalRecord, Decision, Execution, ExecutionPhase, StepState};
use serde_json::{Value, json};

use super::TestNamespace;
use super::operator::{playbook_spec, wait_final, wait_status};
use super::slack::{Call, Fake, approve_value, click, now};

/// Playbook `guarded`, notifying chat channel `channel`: step `check`, then step
/// `restart`, which waits for an approval.
pub async fn guarded_with(ns: &TestNamespace, channel: &str) {
    playbook_spec(
        ns,
        "guarded",
        json!({
            "notify": {"channel": channel},
            "steps": [
                {"id": "check", "image": "busybox"},
                {"id": "restart", "image": "busybox", "approval": {"required": true}}
            ]
        }),
    )
    .await;
}

/// Waits until step `restart` of run `name` waits for an approval.
pub async fn wait_waiting(ns: &TestNamespace, name: &str) {
    wait_status(ns, name, "waiting for approval", super::TIMEOUT, |s| {
        s.steps
            .iter()
            .any(|st| st.id == "restart" && st.state == StepState::WaitingApproval)
    })
    .await;
}

/// Waits for a Slack message with an Approve button; returns the Slack API calls so
/// far and the value of the last such button.
pub async fn approve_button(fake: &Fake) -> (Vec<Call>, String) {
    let calls = fake
        .wait("/api/", "a Slack message with the Approve button", |c| {
            c.iter().any(|c| approve_value(&c.body).is_some())
        })
        .await;
    let value = calls
        .iter()
        .rev()
        .find_map(|c| approve_value(&c.body))
        .expect("an Approve button");
    (calls, value)
}

/// Sends the click `body` (an [`super::slack::interaction`] whose response_url is
/// `reply_path` on the fake), signed with `secret` now, to the operator's Slack
/// route at `addr`; expects 200 and returns the body of the operator's reply.
pub async fn click_and_reply(
    fake: &Fake,
    addr: SocketAddr,
    body: &str,
    secret: &str,
    reply_path: &str,
) -> Value {
    let (code, answer) = click(addr, body, secret, now()).await;
    assert_eq!(code, 200, "{answer}");
    let replies = fake
        .wait(reply_path, "the reply to the click", |c| !c.is_empty())
        .await;
    replies[0].body.clone()
}

/// After bob's click on the Approve button of run `run`: the operator's `reply` says
/// he approved plan `hash`; the run ends Succeeded; returns its approvals, the first
/// checked to be what bob's click writes: bob's (in group `sre`) approval of `hash`.
pub async fn bobs_approval(
    ns: &TestNamespace,
    reply: &Value,
    run: &str,
    hash: &str,
) -> Vec<ApprovalRecord> {
    let text = reply["text"].as_str().unwrap_or_default();
    let want = format!(
        "approved step restart of {}/{run} (plan {hash}) as bob",
        ns.name
    );
    assert!(text.contains(&want), "{text}");
    let status = wait_final(ns, run).await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    let exec: Execution = ns.api().get(run).await.expect("the run");
    let record = exec.spec.approvals.first().expect("an approval");
    assert_eq!(
        (
            record.user.as_str(),
            record.decision,
            record.plan_hash.as_deref()
        ),
        ("bob", Decision::Approve, Some(hash))
    );
    assert!(record.groups.contains(&"sre".to_string()), "{record:?}");
    exec.spec.approvals
}
