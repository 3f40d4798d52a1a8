use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use pretty_assertions::assert_eq;
use serde_json::json;

use super::config::{Kind, NotifyConfig};
use super::*;
use crate::api::{
    ApprovalRecord, ExecutionPhase, ExecutionSpec, ExecutionStatus, LocalRef, NotifyStatus,
    StepPlan, StepStatus,
};
use crate::engine::alert::signature::{Secrets, SignatureError, verify_slack};

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).expect("a valid time")
}

/// A run of playbook `pb` in `ops`, started by an alert, with `restart` waiting.
fn exec(phase: ExecutionPhase, finished_at: Option<i64>) -> Execution {
    let mut e = Execution::new(
        "run-1",
        ExecutionSpec {
            playbook_ref: LocalRef { name: "pb".into() },
            alert: Some(json!({"id": "a1", "labels": {"alertname": "RedisDown"},
                "annotations": {"summary": "<!channel> redis is down"}})),
            approvals: vec![ApprovalRecord {
                step: "restart".into(),
                user: "bob".into(),
                plan_hash: Some("old".into()),
                ..ApprovalRecord::default()
            }],
            ..ExecutionSpec::default()
        },
    );
    e.metadata.namespace = Some("ops".into());
    e.status = Some(ExecutionStatus {
        phase,
        current_step: Some("restart".into()),
        severity: Some("critical".into()),
        finished_at: finished_at.map(|s| Time(at(s))),
        steps: vec![StepStatus {
            id: "restart".into(),
            state: if phase == ExecutionPhase::WaitingApproval {
                StepState::WaitingApproval
            } else {
                StepState::Succeeded
            },
            plan: Some(Box::new(StepPlan {
                hash: "h1".into(),
                ..StepPlan::default()
            })),
            ..StepStatus::default()
        }],
        ..ExecutionStatus::default()
    });
    e
}

#[test]
fn the_view_names_playbook_alert_phase_step_severity_waits_and_page() {
    let v = view(
        &exec(ExecutionPhase::WaitingApproval, None),
        Some("https://pbo.example.com"),
    );
    assert_eq!(v.playbook, "pb");
    assert_eq!(
        v.alert.as_deref(),
        Some("RedisDown: <!channel> redis is down")
    );
    assert_eq!(v.phase, "WaitingApproval");
    assert_eq!(v.current_step.as_deref(), Some("restart"));
    assert_eq!(v.severity.as_deref(), Some("critical"));
    assert_eq!(
        v.url.as_deref(),
        Some("https://pbo.example.com/ui/executions/ops/run-1")
    );
    assert_eq!(
        v.waiting,
        vec![Waiting {
            step: "restart".into(),
            plan_hash: "h1".into()
        }]
    );
    assert_eq!(v.decisions[0].user, "bob");
    assert_eq!(view(&exec(ExecutionPhase::Running, None), None).url, None);
}

fn record(ts: Option<&str>, sent: &[&str], digest: &str) -> NotifyStatus {
    NotifyStatus {
        channel: "sre".into(),
        message_ts: ts.map(str::to_string),
        slack_channel: ts.map(|_| "C1".to_string()),
        sent: sent.iter().map(|s| s.to_string()).collect(),
        digest: Some(digest.into()),
        ..NotifyStatus::default()
    }
}

#[test]
fn slack_posts_once_then_updates_only_when_the_content_changed() {
    let now = at(10_000);
    let running = view(&exec(ExecutionPhase::Running, None), None);
    let posted = record(Some("1.2"), &[], "d1");
    let cases: Vec<(Option<&NotifyStatus>, &str, Send)> = vec![
        (None, "d1", Send::Post),
        (Some(&posted), "d1", Send::Skip),
        (
            Some(&posted),
            "d2",
            Send::Update {
                ts: "1.2".into(),
                channel: "C1".into(),
            },
        ),
    ];
    for (sent, d, want) in cases {
        assert_eq!(
            next(Kind::Slack, &running, sent, d, now),
            want,
            "{sent:?} {d}"
        );
    }
}

#[test]
fn a_run_first_seen_long_after_its_end_is_not_announced_but_a_recent_one_is() {
    let now = at(10_000);
    let old = view(
        &exec(
            ExecutionPhase::Succeeded,
            Some(10_000 - STALE_AFTER_SECONDS - 1),
        ),
        None,
    );
    let recent = view(&exec(ExecutionPhase::Succeeded, Some(9_990)), None);
    assert_eq!(next(Kind::Slack, &old, None, "d", now), Send::Skip);
    assert_eq!(next(Kind::Teams, &old, None, "d", now), Send::Skip);
    assert_eq!(next(Kind::Slack, &recent, None, "d", now), Send::Post);
    // Already posted: the end is still shown however late.
    let posted = record(Some("1.2"), &[], "d0");
    assert!(matches!(
        next(Kind::Slack, &old, Some(&posted), "d", now),
        Send::Update { .. }
    ));
}

#[test]
fn teams_posts_start_each_wait_and_end_once_each_in_order() {
    let now = at(10_000);
    let waiting = view(&exec(ExecutionPhase::WaitingApproval, None), None);
    let done = view(&exec(ExecutionPhase::Succeeded, Some(9_999)), None);
    assert_eq!(events(&waiting), vec!["start", "wait:restart:h1"]);
    let cases: Vec<(&RunView, &[&str], Send)> = vec![
        (&waiting, &[], Send::Event("start".into())),
        (&waiting, &["start"], Send::Event("wait:restart:h1".into())),
        (&waiting, &["start", "wait:restart:h1"], Send::Skip),
        (
            &done,
            &["start", "wait:restart:h1"],
            Send::Event("end".into()),
        ),
        (&done, &["start", "wait:restart:h1", "end"], Send::Skip),
    ];
    for (v, sent, want) in cases {
        let r = record(None, sent, "d");
        assert_eq!(next(Kind::Teams, v, Some(&r), "d", now), want, "{sent:?}");
        assert_eq!(next(Kind::Webhook, v, Some(&r), "d", now), want, "{sent:?}");
    }
}

#[test]
fn the_slack_message_escapes_alert_text_and_carries_buttons_for_the_shown_plan() {
    let v = view(
        &exec(ExecutionPhase::WaitingApproval, None),
        Some("https://pbo.example.com"),
    );
    let m = slack::message(&v, "C1", None, true);
    let text = m.to_string();
    assert!(text.contains("&lt;!channel&gt; redis is down"), "{text}");
    assert!(!text.contains("<!channel>"), "{text}");
    assert_eq!(m["channel"], "C1");
    assert!(m.get("ts").is_none());
    let buttons = m["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| {
            b["block_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("approval-"))
        })
        .expect("an approval actions block");
    assert_eq!(buttons["elements"][0]["action_id"], "approve");
    assert_eq!(buttons["elements"][1]["action_id"], "reject");
    let value: slack::ButtonValue =
        serde_json::from_str(buttons["elements"][0]["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        value,
        slack::ButtonValue {
            ns: "ops".into(),
            run: "run-1".into(),
            step: "restart".into(),
            hash: "h1".into()
        }
    );
    assert!(
        text.contains("bob approved `restart` (plan `old`)"),
        "{text}"
    );
    assert!(
        text.contains("https://pbo.example.com/ui/executions/ops/run-1"),
        "{text}"
    );
    // Without chat approvals: no buttons; an update names its ts.
    let plain = slack::message(&v, "C1", Some("1.2"), false);
    assert!(!plain.to_string().contains("\"approve\""));
    assert_eq!(plain["ts"], "1.2");
}

#[test]
fn the_teams_card_links_the_page_and_says_open_to_approve_while_waiting() {
    let v = view(
        &exec(ExecutionPhase::WaitingApproval, None),
        Some("https://pbo.example.com"),
    );
    let c = teams::card(&v, "wait:restart:h1");
    assert_eq!(c["type"], "message");
    let att = &c["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(att["content"]["type"], "AdaptiveCard");
    let action = &att["content"]["actions"][0];
    assert_eq!(action["type"], "Action.OpenUrl");
    assert_eq!(action["title"], "Open to approve");
    assert_eq!(
        action["url"],
        "https://pbo.example.com/ui/executions/ops/run-1"
    );
    let done = view(
        &exec(ExecutionPhase::Succeeded, Some(1)),
        Some("https://pbo.example.com"),
    );
    assert_eq!(
        teams::card(&done, "end")["attachments"][0]["content"]["actions"][0]["title"],
        "Open the run"
    );
    assert_eq!(teams::webhook(&done, "end")["id"], "ops/run-1/end");
}

#[test]
fn a_click_is_read_from_a_block_actions_payload() {
    // The shape of Slack's documented block_actions payload (docs.slack.dev,
    // "block_actions payload"), trimmed to the fields read.
    let value = json!({"ns": "ops", "run": "run-1", "step": "restart", "hash": "h1"}).to_string();
    let payload = json!({
        "type": "block_actions",
        "user": {"id": "U0BOB", "username": "bob.s", "team_id": "T1"},
        "api_app_id": "A1", "token": "legacy", "trigger_id": "1.2.abc",
        "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1"},
        "channel": {"id": "C1", "name": "sre"},
        "response_url": "https://hooks.slack.com/actions/T1/1/xyz",
        "actions": [{"type": "button", "action_id": "reject", "block_id": "approval-0-h1",
                     "value": value, "action_ts": "1.3"}]
    });
    let click = slack::click(&payload.to_string())
        .unwrap()
        .expect("a click");
    assert_eq!(click.slack_user, "U0BOB");
    assert_eq!(click.decision, Decision::Reject);
    assert_eq!(click.target.hash, "h1");
    assert_eq!(
        click.response_url,
        "https://hooks.slack.com/actions/T1/1/xyz"
    );
    let open =
        json!({"type": "block_actions", "user": {"id": "U"}, "actions": [{"action_id": "open"}]});
    assert_eq!(slack::click(&open.to_string()), Ok(None));
    assert!(
        slack::click("not json")
            .unwrap_err()
            .contains("block_actions")
    );
    let forged = json!({"type": "block_actions", "user": {"id": "U"}, "response_url": "x",
        "actions": [{"action_id": "approve", "value": "x"}]});
    assert!(
        slack::click(&forged.to_string())
            .unwrap_err()
            .contains("not one this operator made")
    );
}

fn sign(secret: &str, ts: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("v0:{ts}:{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

#[test]
fn slack_signatures_are_checked_with_the_secret_and_the_replay_window() {
    let secrets = Secrets::new(["8f742231b10e8888abcd99yyyzzz85a5"]);
    let body = "payload=%7B%7D";
    let good = sign("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body);
    let check = |sig: Option<&str>, ts: Option<&str>, now: i64| {
        verify_slack(sig, ts, body.as_bytes(), now, 300, &secrets)
    };
    assert_eq!(
        check(Some(&good), Some("1531420618"), 1531420618 + 300),
        Ok(())
    );
    assert!(matches!(
        check(Some(&good), Some("1531420618"), 1531420618 + 301),
        Err(SignatureError::Stale { age: 301, .. })
    ));
    assert!(matches!(
        check(Some(&good), Some("1531420619"), 1531420619),
        Err(SignatureError::Mismatch(_))
    ));
    let other = sign("another secret", "1531420618", body);
    assert!(matches!(
        check(Some(&other), Some("1531420618"), 1531420618),
        Err(SignatureError::Mismatch(_))
    ));
    assert!(matches!(
        check(None, Some("1"), 1),
        Err(SignatureError::Missing(_))
    ));
    assert!(matches!(
        check(Some(&good), None, 1),
        Err(SignatureError::Missing(_))
    ));
    assert!(matches!(
        check(Some(&good[3..]), Some("1531420618"), 1531420618),
        Err(SignatureError::Malformed { .. })
    ));
}

const CONFIG: &str = r#"
channels:
  - name: sre
    namespaces: [ops]
    slack: {token: xoxb-secret, channel: C1, apiUrl: "http://127.0.0.1:1/api"}
  - name: teams
    namespaces: ["*"]
    teams: {url: "https://example.logic.azure.com/workflows/1?sig=secret"}
slackApprovals:
  signingSecret: s3cret
  users:
    U0BOB: {user: bob, groups: [sre]}
"#;

#[test]
fn the_config_maps_channels_to_namespaces_and_slack_users_to_kubernetes_users() {
    let c = NotifyConfig::parse(CONFIG).unwrap();
    assert_eq!(c.channel_for("sre", "ops").unwrap().kind(), Kind::Slack);
    assert_eq!(
        c.channel_for("teams", "anything").unwrap().kind(),
        Kind::Teams
    );
    let refused = c.channel_for("sre", "dev").unwrap_err();
    assert!(
        refused.contains("may not be used from namespace \"dev\""),
        "{refused}"
    );
    let missing = c.channel_for("ops", "ops").unwrap_err();
    assert!(missing.contains("configured: [sre, teams]"), "{missing}");
    assert_eq!(c.identity("U0BOB").unwrap().user, "bob");
    assert_eq!(c.identity("U0BOB").unwrap().groups, vec!["sre"]);
    assert!(
        c.identity("U0EVE")
            .unwrap_err()
            .contains("not mapped to a Kubernetes user")
    );
    // Credentials never print.
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("xoxb-secret")
            && !shown.contains("s3cret")
            && !shown.contains("sig=secret"),
        "{shown}"
    );
}

#[test]
fn a_bad_config_says_what_to_change() {
    let cases = [
        (
            "channels: [{name: a, namespaces: [x]}]",
            "set exactly one of slack, teams or webhook",
        ),
        (
            "channels: [{name: a, namespaces: [], webhook: {url: 'http://x.example'}}]",
            "namespaces is empty",
        ),
        (
            "channels: [{name: a, namespaces: [x], webhook: {url: 'ftp://secret@x'}}]",
            "(the url, not shown) is not an http(s) URL",
        ),
        (
            "channels: [{name: a, namespaces: [x], webhook: {url: 'http://x.example'}}, {name: a, namespaces: [x], webhook: {url: 'http://x.example'}}]",
            "used twice",
        ),
        (
            "slackApprovals: {signingSecret: ''}",
            "signingSecret is empty",
        ),
        ("chanels: []", "unknown field"),
    ];
    for (text, want) in cases {
        let err = NotifyConfig::parse(text).unwrap_err();
        assert!(err.contains(want), "{text}: {err}");
        assert!(!err.contains("ftp://secret"), "{err}");
    }
}

#[test]
fn the_digest_follows_the_content() {
    assert_eq!(digest(&json!({"a": 1})), digest(&json!({"a": 1})));
    assert_ne!(digest(&json!({"a": 1})), digest(&json!({"a": 2})));
}

#[test]
fn a_refused_impersonation_tells_the_admin_where_the_grant_comes_from() {
    let forbidden = "users \"alice\" is forbidden: User \"system:serviceaccount:po:po\" \
                     cannot impersonate resource \"users\" in API group \"\" at the cluster scope";
    let text = slack::refusal("approved", "alice", forbidden);
    assert!(text.starts_with("not approved as alice: users \"alice\" is forbidden"));
    assert!(text.contains("notify.chatApprovals.users"), "{text}");
    // Any other refusal (the requester's own click, RBAC on executions) is the
    // API server's word alone.
    let own = "admission: the requester cannot approve their own run";
    assert_eq!(
        slack::refusal("rejected", "bob", own),
        format!("not rejected as bob: {own}")
    );
}
