//! `/metrics` and `/readyz` of an operator that really ran a playbook on the local
//! control plane: what a Prometheus scrape sees after a two-step run.
//!
//! The operator runs in process (`common::operator`) with its HTTP server on
//! 127.0.0.1 and a free port. Needs a cluster: `make test-e2e`, or `make cluster-up`
//! then `cargo test --test metrics_e2e`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::http_get as get;
use common::operator::*;
use playbook_operator::api::ExecutionPhase;
use serde_json::json;

/// The value of the sample `series` (name and labels, as rendered) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Scrapes until `series` has a value (the counters are recorded right after the
/// status write the test polls for, so a scrape can come a moment early).
async fn scrape_until(addr: SocketAddr, series: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, text) = get(addr, "/metrics").await;
        assert_eq!(status, 200, "{text}");
        if sample(&text, series).is_some() || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two steps run to Succeeded: one execution counted, two step durations, one
/// hand-off (step 1's end to step 2's Job; step 2's end has no next Job), two Jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_step_run_shows_on_metrics() {
    let ns = setup("metrics").await;
    runner(&ns, "default", json!({})).await;
    ns.set_container_log("first", &step_log("one", json!({"n": 1})))
        .await;
    ns.set_container_log("second", &step_log("two", json!({"n": 2})))
        .await;
    playbook(
        &ns,
        "two-steps",
        json!([
            {"id": "first", "image": "busybox"},
            {"id": "second", "image": "busybox"}
        ]),
    )
    .await;
    let (operator, addr) = Operator::start_serving(&ns).await;
    execution(&ns, "two-1", "two-steps", json!({})).await;
    let status = wait_final(&ns, "two-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");

    let succeeded = r#"playbook_executions_total{playbook="two-steps",result="Succeeded"}"#;
    let text = scrape_until(addr, succeeded).await;
    assert_eq!(sample(&text, succeeded), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"playbook_step_duration_seconds_count{phase="Enrich"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "playbook_step_handoff_seconds_count"),
        Some(1.0),
        "{text}"
    );
    let handoff = sample(&text, "playbook_step_handoff_seconds_sum").expect("a hand-off sum");
    assert!(
        (0.0..10.0).contains(&handoff),
        "the controller's own latency, not a whole step: {handoff} s"
    );
    assert_eq!(
        sample(&text, "playbook_jobs_created_total"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "playbook_executions_running"),
        Some(0.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"playbook_reconcile_duration_seconds_count{controller="execution"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(get(addr, "/readyz").await.0, 200);
    assert_eq!(get(addr, "/healthz").await.0, 200);

    operator.stop().await;
    ns.cleanup().await;
}
