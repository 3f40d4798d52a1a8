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
