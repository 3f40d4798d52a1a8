use serde_json::json;

use super::*;
use login::safe_next;

fn now() -> Timestamp {
    Timestamp::from_second(1_790_000_100).expect("valid")
}

/// A waiting run whose output, alert and message carry markup: what an attacker who
/// controls a step's output or an alert's labels would send.
fn hostile() -> Execution {
    serde_json::from_value(json!({
        "metadata": {"name": "r1", "namespace": "prod", "uid": "u1",
                     "creationTimestamp": "2026-09-21T12:00:00Z"},
        "spec": {"playbookRef": {"name": "redis"},
                 "alert": {"labels": {"alertname": "<img src=x onerror=alert(1)>"}}},
        "status": {
            "phase": "WaitingApproval", "startedAt": "2026-09-21T12:00:00Z",
            "steps": [
                {"id": "info", "phase": "enrich", "state": "Succeeded", "attempt": 1,
                 "jobName": "r1-info", "outputs": {"note": "<script>alert('pwned')</script>"}},
                {"id": "restart", "phase": "remediate", "state": "WaitingApproval",
                 "attempt": 0, "message": "<b>approve</b> me"}
            ]
        }
    }))
    .expect("a valid Execution")
}

#[test]
fn outputs_alerts_and_messages_are_escaped() {
    let d = view::detail(&hostile(), vec![], now());
    for live_only in [false, true] {
        let page = Templates::default()
            .detail(&d, "alice", live_only, "csrf-value", None)
            .expect("renders");
        assert!(!page.contains("<script>alert"), "raw script in:\n{page}");
        assert!(!page.contains("<b>approve"), "raw markup in:\n{page}");
        assert!(
            page.contains("&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;&#x2f;script&gt;"),
            "the output is shown, escaped:\n{page}"
        );
        if !live_only {
            assert!(!page.contains("<img src=x"), "raw alert label in:\n{page}");
        }
    }
}

#[test]
fn detail_shows_phases_output_waiting_approval_and_refresh_hook() {
    let d = view::detail(&hostile(), vec![], now());
    // minijinja escapes `/` too (`&#x2f;`); browsers read it back.
    let page = Templates::default()
        .detail(&d, "alice", false, "csrf-value", None)
        .expect("renders")
        .replace("&#x2f;", "/");
    for want in [
        r#"<meta name="viewport""#,
        r#"<h3 class="phase-title">Enrich</h3>"#,
        r#"<h3 class="phase-title">Remediate</h3>"#,
        r#"id="waiting-restart""#,
        r#"class="plan-pending""#,
        r#"href="/ui/executions/prod/r1/log?step=info""#,
        r#"data-src="/ui/executions/prod/r1/live" data-done="false""#,
        r#"<span id="user">alice</span>"#,
    ] {
        assert!(page.contains(want), "{want} missing in:\n{page}");
    }
    assert!(
        !page.contains("Triage</h3>"),
        "a phase without steps is left out"
    );
}

#[test]
fn list_renders_rows_and_the_filter_form() {
    let e = hostile();
    let v = view::list(
        &[&e],
        &Access::from_answers(true, []),
        &ListFilter::default(),
        now(),
        LIST_CAP,
    );
    let page = Templates::default()
        .list(&v, "alice")
        .expect("renders")
        .replace("&#x2f;", "/");
    for want in [
        r#"<a href="/ui/executions/prod/r1">r1</a>"#,
        r#"<select name="namespace">"#,
        r#"<select name="phase">"#,
        "WaitingApproval",
    ] {
        assert!(page.contains(want), "{want} missing in:\n{page}");
    }
    assert!(!page.contains("<img src=x"));
}

#[test]
fn sign_in_page_keeps_the_destination_and_escapes_the_error() {
    let page = Templates::default()
        .login(Some("<bad>"), "/ui/executions/prod/r1", "c5rf")
        .expect("renders");
    assert!(page.contains(r#"name="next" value="&#x2f;ui&#x2f;executions&#x2f;prod&#x2f;r1""#));
    assert!(page.contains("&lt;bad&gt;"));
    assert!(page.contains(r#"<form id="signin""#));
    assert!(page.contains(r#"name="csrf" value="c5rf""#));
}

#[test]
fn only_our_pages_are_places_to_go_after_signing_in() {
    let cases = [
        ("/ui/executions/a/b", "/ui/executions/a/b"),
        ("/ui/", "/ui/"),
        ("https://evil.example/ui/", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("/ui/\\evil", "/ui/"),
        ("", "/ui/"),
    ];
    for (next, want) in cases {
        assert_eq!(safe_next(next), want, "{next:?}");
    }
}

#[test]
fn a_waiting_plan_gets_the_decision_form_and_the_run_its_timeline() {
    let mut e = hostile();
    if let Some(status) = e.status.as_mut() {
        status.steps[0].started_at = serde_json::from_value(json!("2026-09-21T12:00:00Z")).ok();
        status.steps[0].finished_at = serde_json::from_value(json!("2026-09-21T12:00:30Z")).ok();
        status.steps[1].waiting_since = status.steps[0].finished_at.clone();
        status.steps[1].plan = Some(Box::new(crate::api::StepPlan {
            hash: "1a2b3c".into(),
            image: "kubectl".into(),
            ..Default::default()
        }));
    }
    let d = view::detail(&e, vec![], now());
    let refused = decide::Refusal {
        step: "restart".into(),
        message: "denied request: <you> requested this Execution".into(),
    };
    let page = Templates::default()
        .detail(&d, "bob", false, "c5rf", Some(&refused))
        .expect("renders")
        .replace("&#x2f;", "/");
    for want in [
        r#"<form class="decide" id="decide-restart" method="post" action="/ui/executions/prod/r1/decide">"#,
        r#"name="csrf" value="c5rf""#,
        r#"name="plan" value="1a2b3c""#,
        r#"name="decision" value="approve""#,
        r#"name="decision" value="reject""#,
        r#"<g class="row" id="tl-info">"#,
        r#"<rect class="run enrich Succeeded""#,
        r#"<rect class="wait remediate WaitingApproval""#,
        "restart: waiting for approval",
        r#"id="refused">Your decision on step restart was not written: denied request: &lt;you&gt; requested"#,
    ] {
        assert!(page.contains(want), "{want} missing in:\n{page}");
    }
    // The live fragment has the forms and the timeline, not the refusal (it would
    // vanish with the next refresh; the full page keeps it).
    let live = Templates::default()
        .detail(&d, "bob", true, "c5rf", Some(&refused))
        .expect("renders");
    assert!(live.contains("decide-restart") && live.contains("tl-restart"));
    assert!(!live.contains("id=\"refused\""));
}

#[test]
fn a_dry_run_shows_its_plan_marked_as_such() {
    let exec: Execution = serde_json::from_value(json!({
        "metadata": {"name": "d1", "namespace": "prod", "uid": "u2",
                     "creationTimestamp": "2026-09-21T12:00:00Z"},
        "spec": {"playbookRef": {"name": "redis"}, "dryRun": true},
        "status": {
            "phase": "DryRun", "message": "dry run, nothing ran: 2 steps: 1 run, 1 depend on outputs",
            "dryRun": [
                {"id": "info", "phase": "enrich", "verdict": "Runs",
                 "plan": {"hash": "0123456789ab", "image": "k:1", "args": ["get", "<pod>"],
                          "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "tok"}}}]}},
                {"id": "restart", "phase": "remediate", "verdict": "Unknown", "approval": true,
                 "message": "when depends on step info's outputs",
                 "plan": {"hash": "ba9876543210", "image": "k:1"}}
            ]
        }
    }))
    .expect("a valid Execution");
    let d = view::detail(&exec, vec![], now());
    let page = Templates::default()
        .detail(&d, "alice", false, "csrf-value", None)
        .expect("renders")
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'");
    for want in [
        "<h2>Dry run: nothing ran</h2>",
        r#"<span id="phase" class="phase DryRun">DryRun</span>"#,
        "plan <code>0123456789ab</code>",
        "plan <code>ba9876543210</code>",
        r#"<li class="dry-run-step unknown" id="dry-run-restart">"#,
        "when depends on step info's outputs",
        "<i>secret s key tok</i>",
        "&lt;pod&gt;",
        "needs approval",
    ] {
        assert!(page.contains(want), "{want} missing in:\n{page}");
    }
}
