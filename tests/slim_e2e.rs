//! The slim Execution cache, end to end: the controller caches a finished run
//! without its outputs and playbook snapshot (`engine::slim`), and it writes the
//! whole status by server-side apply. A restarted controller that reconciles a
//! finished run, and writes its status again because its spec changed, must leave
//! the outputs and the snapshot in the API object as they were.
//!
//! Needs a cluster: `make test-e2e`, or `make cluster-up` then
//! `cargo test --test slim_e2e`.

mod common;

use std::time::{Duration, Instant};

use common::operator::*;
use kube::api::Api;
use playbook_operator::api::{Execution, ExecutionPhase, ExecutionStatus};
use serde_json::json;

/// Polls the operator's `/metrics` until it has reconciled `count` Executions.
async fn wait_reconciles(addr: std::net::SocketAddr, count: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let metric = "playbook_reconcile_duration_seconds_count{controller=\"execution\"} ";
    loop {
        let (_, text) = common::http_get(addr, "/metrics").await;
        let done = text
            .lines()
            .find_map(|l| l.strip_prefix(metric))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if done >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted controller reconciled {done} of {count} Executions within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status as the API server has it, but `observedGeneration`.
fn kept(status: &ExecutionStatus) -> ExecutionStatus {
    ExecutionStatus {
        observed_generation: None,
        ..status.clone()
    }
}

#[tokio::test]
async fn a_finished_run_reconciled_after_a_restart_keeps_its_outputs_and_snapshot() {
    let ns = setup("slim").await;
    let output = json!({"items": [{"pod": "redis-0", "ready": true}], "checked": 1});
    ns.set_default_log(&step_log("checked", output.clone()))
        .await;
    playbook(
        &ns,
        "pb",
        json!([{"id": "a", "image": "busybox"}, {"id": "b", "image": "busybox",
                "env": {"FROM_A": "{{ .checked }}"}}]),
    )
    .await;
    let first = Operator::start(&ns);
    execution(&ns, "run", "pb", json!({"Who": "slim"})).await;
    let done = wait_final(&ns, "run").await;
    assert_eq!(done.phase, ExecutionPhase::Succeeded, "{done:?}");
    first.stop().await;
    let api: Api<Execution> = ns.api();
    let before = api.get("run").await.expect("the finished run");
    let status = before.status.clone().expect("a status");
    assert!(status.playbook.is_some(), "the run has its snapshot");
    for id in ["a", "b"] {
        assert_eq!(
            step(&status, id).outputs.as_ref(),
            Some(&output),
            "step {id}"
        );
    }

    // The new controller lists the finished run (cached slimmed) and reconciles it.
    let (second, addr) = Operator::start_serving(&ns).await;
    wait_reconciles(addr, 1.0).await;
    let after = api.get("run").await.expect("the finished run");
    assert_eq!(
        after.status, before.status,
        "a reconcile of a finished run writes nothing"
    );

    // A spec change makes the controller write the status again (observedGeneration):
    // planned from the whole object, not from the slimmed cache.
    cancel(&ns, "run").await;
    let generation = api
        .get("run")
        .await
        .expect("the cancelled run")
        .metadata
        .generation;
    assert_ne!(generation, before.metadata.generation, "the spec changed");
    let written = wait_status(
        &ns,
        "run",
        "observedGeneration written",
        Duration::from_secs(30),
        |s| s.observed_generation == generation,
    )
    .await;
    assert_eq!(
        kept(&written),
        kept(&status),
        "the status written for a finished run keeps its outputs and snapshot"
    );
    second.stop().await;
    ns.cleanup().await;
}
