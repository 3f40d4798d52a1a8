//! The Pod and Job watches wake a run only on what its plan acts on (`engine::wake`):
//! a pod state the failure handling fails an attempt on must still wake it at once,
//! not at the start timeout the last plan requeued for.
//!
//! Needs the cluster with its real node (a real kubelet reports the container's
//! config error): `make test-e2e`, or `make cluster-up` then
//! `cargo test --test wake_e2e`. Without the node the test fails with the reason.

mod common;

use std::time::{Duration, Instant};

use common::operator::*;
use common::process::OperatorProcess;
use common::realnode::{self, BUSYBOX};
use playbook_operator::api::StepState;
use serde_json::json;

/// A Runner whose Secret does not exist: the kubelet cannot configure the container
/// (`CreateContainerConfigError`), which fails the attempt after the short config
/// grace. The start timeout (600 s) is far beyond `wait_final`'s 60 s, so the run
/// ends in time only if the pod's waiting reason woke it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_config_error_wakes_the_run_before_its_start_timeout() {
    let ns = setup("wake-config").await;
    realnode::runner(&ns, "real", json!({"secretName": "no-such-secret"})).await;
    playbook(
        &ns,
        "needs-secret",
        json!([{
            "id": "connect", "image": BUSYBOX, "runner": "real",
            "command": ["/bin/sh", "-c", "echo never"],
            "startTimeoutSeconds": 600, "timeoutSeconds": 900,
            "env": {"URL": "{{ secret \"Key\" }}"}
        }]),
    )
    .await;
    let _operator = OperatorProcess::start(&ns, &[]);
    let created = Instant::now();
    execution(&ns, "needs-secret-1", "needs-secret", json!({})).await;
    let status = wait_final(&ns, "needs-secret-1").await;
    let connect = step(&status, "connect");
    assert_eq!(connect.state, StepState::Failed, "{status:?}");
    let message = connect.message.as_deref().unwrap_or_default();
    assert!(
        message.contains("container could not be configured")
            && message.contains("CreateContainerConfigError"),
        "the attempt failed on the pod's config error: {message}"
    );
    assert!(
        created.elapsed() < Duration::from_secs(60),
        "failed only after {:?}",
        created.elapsed()
    );
    ns.cleanup().await;
}
