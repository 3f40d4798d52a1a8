//! Leader election (`run --leader-elect`): two operator processes against one
//! cluster, as two replicas of the chart's Deployment would be. Only the holder of
//! the Lease reconciles, the standby serves HTTP and is ready; SIGKILLing the leader
//! hands the Lease to the standby within the lease duration, and the Execution that
//! was running finishes under the new leader. SIGTERM releases the Lease at once.

mod common;

use std::time::{Duration, Instant};

use common::operator::{
    execution, playbook, runner, setup, step, step_log, wait_final, wait_status,
};
use common::process::OperatorProcess;
use common::{TestNamespace, http_get};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use playbook_operator::api::{ExecutionPhase, StepState};
use serde_json::json;

const LEASE: &str = "playbook-operator";
const LEASE_SECONDS: u64 = 4;

fn replica(ns: &TestNamespace, name: &str) -> OperatorProcess {
    let lease_duration = format!("--leader-elect-lease-duration-seconds={LEASE_SECONDS}");
    OperatorProcess::start_as(
        ns,
        name,
        &[
            "--leader-elect",
            &format!("--leader-elect-lease-name={LEASE}"),
            &lease_duration,
            "--leader-elect-renew-before-seconds=2",
        ],
        &[("POD_NAMESPACE", &ns.name), ("POD_NAME", name)],
    )
}

async fn holder(ns: &TestNamespace) -> Option<String> {
    ns.api::<Lease>()
        .get(LEASE)
        .await
        .expect("reading the Lease")
        .spec
        .and_then(|s| s.holder_identity)
}

/// `reportingInstance` of every Event about `execution`, in no particular order.
async fn reporters(ns: &TestNamespace, execution: &str) -> Vec<String> {
    let events: Api<Event> = ns.api();
    let list = events
        .list(&ListParams::default().fields(&format!("regarding.name={execution}")))
        .await
        .expect("listing Events");
    list.items
        .into_iter()
        .filter_map(|e| e.reporting_instance)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_a_killed_leader_is_replaced_within_the_lease_duration() {
    let ns = setup("leader").await;
    // Every step runs 3 s: the run outlives the leader.
    runner(&ns, "default", json!({common::DURATION_ANNOTATION: "3s"})).await;
    ns.set_default_log(&step_log("ok", json!({"ok": true})))
        .await;
    playbook(
        &ns,
        "three",
        json!([
            {"id": "one", "image": "busybox"},
            {"id": "two", "image": "busybox"},
            {"id": "three", "image": "busybox"}
        ]),
    )
    .await;

    let mut a = replica(&ns, "replica-a");
    a.wait_log("became the leader").await;
    let mut b = replica(&ns, "replica-b");
    b.wait_log("standby: waiting for the leader Lease").await;
    assert_eq!(holder(&ns).await.as_deref(), Some("replica-a"));
    // The standby serves HTTP and is ready (it takes webhooks), but runs no controller.
    let b_addr = b.http_addr().await;
    let (status, body) = http_get(b_addr, "/readyz").await;
    assert_eq!(status, 200, "a standby is ready: {body}");
    assert!(body.contains("standby"), "{body}");
    let (_, metrics) = http_get(b_addr, "/metrics").await;
    assert!(
        metrics.lines().any(|l| l == "playbook_leader 0"),
        "the standby says it is not the leader:\n{metrics}"
    );

    execution(&ns, "run-1", "three", json!({})).await;
    wait_status(
        &ns,
        "run-1",
        "step two running",
        Duration::from_secs(30),
        |s| {
            s.steps
                .iter()
                .any(|st| st.id == "two" && st.state == StepState::Running && st.job_name.is_some())
        },
    )
    .await;
    assert!(
        !b.log().contains("Job created") && !b.log().contains("transition"),
        "the standby reconciled:\n{}",
        b.log()
    );
    // Step one's end is an Event, written just after the status that ends it.
    let mut written = Vec::new();
    for _ in 0..50 {
        written = reporters(&ns, "run-1").await;
        if !written.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !written.is_empty() && written.iter().all(|r| r == "replica-a"),
        "only the leader writes Events: {written:?}"
    );

    // SIGKILL: the Lease is not released; the standby takes it once it expires.
    a.kill("while step two runs");
    let killed = Instant::now();
    b.wait_log("became the leader").await;
    let took = killed.elapsed();
    // Lease duration, plus the standby's jittered wait (up to 1 s) after it expires,
    // plus a margin for a busy machine.
    assert!(
        took <= Duration::from_secs(LEASE_SECONDS + 3),
        "the standby took over after {took:?} (lease duration {LEASE_SECONDS} s)"
    );
    assert_eq!(holder(&ns).await.as_deref(), Some("replica-b"));

    let status = wait_final(&ns, "run-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    for id in ["one", "two", "three"] {
        assert_eq!(step(&status, id).state, StepState::Succeeded, "step {id}");
    }
    let reporters = reporters(&ns, "run-1").await;
    assert!(
        reporters.iter().any(|r| r == "replica-a") && reporters.iter().any(|r| r == "replica-b"),
        "the run was carried on by the new leader: {reporters:?}"
    );

    // SIGTERM: the leader finishes, releases the Lease, and exits cleanly.
    let exited = b.terminate();
    assert!(exited.success(), "{exited}");
    assert_eq!(holder(&ns).await, None, "SIGTERM releases the Lease");
    ns.cleanup().await;
}
