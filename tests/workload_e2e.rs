//! Steps as bare Pods (`Runner.spec.workload: Pod`) on the local control plane: the
//! scenarios of `controller_e2e` (success with outputs, a failing step with retries,
//! `finally`, cancel) and a Pod deleted while its step runs, written once over the
//! workload ([`Mode`]) and run here in Pod mode (controller_e2e and failmodes_e2e run
//! the Job mode). Each asserts what runs the step: no Job in Pod mode, one object per
//! attempt either way.
//!
//! Needs a cluster: `make cluster-up`, then `cargo test --test workload_e2e`.

mod common;

use std::time::{Duration, Instant};

use common::TestNamespace;
use common::operator::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use playbook_operator::api::{ExecutionPhase, Runner, StepState};
use serde_json::{Value, json};

/// What runs each step attempt in a scenario.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Job,
    Pod,
}

impl Mode {
    fn workload(self) -> &'static str {
        match self {
            Mode::Job => "Job",
            Mode::Pod => "Pod",
        }
    }

    /// A Runner `name` of this mode whose step pods carry `annotations` (kwok's
    /// exit code, message, duration).
    async fn runner(self, ns: &TestNamespace, name: &str, annotations: Value) -> Runner {
        create(
            ns,
            json!({
                "apiVersion": "stackpulse.io/v1", "kind": "Runner",
                "metadata": {"name": name},
                "spec": {"annotations": annotations, "workload": self.workload()}
            }),
        )
        .await
    }

    /// The names of the objects that ran step `id`'s attempts, by attempt label, and
    /// checks that nothing of the other workload ran it.
    async fn attempts(self, ns: &TestNamespace, id: &str) -> Vec<(String, String)> {
        let lp = ListParams::default().labels(&format!("stackpulse.io/step={id}"));
        let jobs: Vec<Job> = ns.api::<Job>().list(&lp).await.expect("Jobs").items;
        let pods: Vec<Pod> = ns.api::<Pod>().list(&lp).await.expect("Pods").items;
        let bare: Vec<&Pod> = pods
            .iter()
            .filter(|p| {
                p.owner_references()
                    .iter()
                    .any(|o| o.kind == "Execution" && o.controller == Some(true))
            })
            .collect();
        let attempt = |labels: &std::collections::BTreeMap<String, String>| {
            labels
                .get("stackpulse.io/attempt")
                .cloned()
                .unwrap_or_default()
        };
        let mut found: Vec<(String, String)> = match self {
            Mode::Job => {
                assert!(bare.is_empty(), "Job mode made bare Pods: {bare:?}");
                jobs.iter()
                    .map(|j| (attempt(j.labels()), j.name_any()))
                    .collect()
            }
            Mode::Pod => {
                assert!(jobs.is_empty(), "Pod mode made Jobs: {jobs:?}");
                bare.iter()
                    .map(|p| (attempt(p.labels()), p.name_any()))
                    .collect()
            }
        };
        found.sort();
        found
    }

    /// Waits until the object `name` that runs an attempt is gone or being deleted.
    async fn wait_deleted(self, ns: &TestNamespace, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let deleting = match self {
                Mode::Job => ns
                    .api::<Job>()
                    .get_opt(name)
                    .await
                    .map(|o| o.map(|j| j.metadata.deletion_timestamp.is_some())),
                Mode::Pod => ns
                    .api::<Pod>()
                    .get_opt(name)
                    .await
                    .map(|o| o.map(|p| p.metadata.deletion_timestamp.is_some())),
            };
            match deleting.expect("reading the attempt") {
                None | Some(true) => return,
                Some(false) => {}
            }
            assert!(Instant::now() < deadline, "{name} not deleted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Two steps: the first's JSON output feeds the second's env; a timeout becomes the
/// attempt's deadline.
async fn success_with_outputs(mode: Mode) {
    let ns = setup("wl-ok").await;
    mode.runner(&ns, "default", json!({})).await;
    ns.set_container_log("fetch", &step_log("fetching", json!({"clients": 3})))
        .await;
    ns.set_container_log("use", &step_log("using", json!({"done": true})))
        .await;
    playbook(
        &ns,
        "chain",
        json!([
            {"id": "fetch", "image": "curl", "timeoutSeconds": 120},
            {"id": "use", "image": "busybox", "env": {"CLIENTS": "{{ .steps.fetch.outputs.clients }}"}}
        ]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "chain-1", "chain", json!({})).await;
    let status = wait_final(&ns, "chain-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    assert_eq!(step(&status, "fetch").outputs, Some(json!({"clients": 3})));
    assert_eq!(step(&status, "use").outputs, Some(json!({"done": true})));
    let fetch = mode.attempts(&ns, "fetch").await;
    assert_eq!(fetch.len(), 1, "one object per attempt: {fetch:?}");
    assert_eq!(
        step(&status, "fetch").job_name.as_deref(),
        Some(fetch[0].1.as_str())
    );
    let used = mode.attempts(&ns, "use").await;
    if let Mode::Pod = mode {
        let pods: Api<Pod> = ns.api();
        let fetch_pod = pods.get(&fetch[0].1).await.expect("the fetch Pod");
        let spec = fetch_pod.spec.expect("a spec");
        assert_eq!(spec.active_deadline_seconds, Some(120));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let use_pod = pods.get(&used[0].1).await.expect("the use Pod");
        let env = use_pod.spec.expect("a spec").containers[0]
            .env
            .clone()
            .unwrap_or_default();
        let clients = env.iter().find(|e| e.name == "CLIENTS");
        assert_eq!(clients.and_then(|e| e.value.as_deref()), Some("3"));
    }
    operator.stop().await;
    ns.cleanup().await;
}

/// Every attempt fails (exit 3); two retries make three objects, one per attempt;
/// `finally` runs and sees the outcome.
async fn failing_step_with_retries_and_finally(mode: Mode) {
    let ns = setup("wl-fail").await;
    mode.runner(&ns, "default", json!({})).await;
    mode.runner(
        &ns,
        "broken",
        json!({
            common::EXIT_CODE_ANNOTATION: "3",
            common::MESSAGE_ANNOTATION: "ERR connection refused",
        }),
    )
    .await;
    ns.set_default_log(&step_log("ran", json!({"ok": true})))
        .await;
    playbook_spec(
        &ns,
        "fails",
        json!({
            "steps": [{"id": "ping", "image": "redis-cli", "runner": "broken",
                       "retries": {"limit": 2, "backoffSeconds": 1}}],
            "finally": [{"id": "cleanup", "image": "busybox",
                         "env": {"OUTCOME": "{{ .execution.phase }}"}}]
        }),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "fails-1", "fails", json!({})).await;
    let status = wait_final(&ns, "fails-1").await;
    assert_eq!(status.phase, ExecutionPhase::Failed, "{status:?}");
    let ping = step(&status, "ping");
    assert_eq!(
        (ping.state, ping.attempt),
        (StepState::Failed, 3),
        "{ping:?}"
    );
    assert_eq!(ping.exit_code, Some(3));
    let message = ping.message.clone().unwrap_or_default();
    assert!(message.contains("ERR connection refused"), "{message}");
    let attempts: Vec<String> = mode
        .attempts(&ns, "ping")
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(attempts, ["1", "2", "3"], "exactly one object per attempt");
    let cleanup = status.finally.iter().find(|s| s.id == "cleanup");
    assert_eq!(cleanup.map(|c| c.state), Some(StepState::Succeeded));
    let cleanup = mode.attempts(&ns, "cleanup").await;
    assert_eq!(cleanup.len(), 1, "{cleanup:?}");
    operator.stop().await;
    ns.cleanup().await;
}

/// Runs a one-step playbook whose step runs for 120 s and waits until its attempt
/// object exists; returns the operator and that object's name.
async fn start_slow(
    mode: Mode,
    ns: &TestNamespace,
    name: &str,
    retries: Value,
) -> (Operator, String) {
    mode.runner(ns, "slow", json!({common::DURATION_ANNOTATION: "120s"}))
        .await;
    ns.set_default_log("working\n").await;
    playbook(
        ns,
        "long",
        json!([{"id": "wait", "image": "sleep", "runner": "slow", "retries": retries}]),
    )
    .await;
    let operator = Operator::start(ns);
    execution(ns, name, "long", json!({})).await;
    let running = wait_step_running(ns, name, "wait").await;
    let attempt = step(&running, "wait").job_name.clone().unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !mode
        .attempts(ns, "wait")
        .await
        .iter()
        .any(|(_, n)| *n == attempt)
    {
        assert!(Instant::now() < deadline, "{attempt} never created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (operator, attempt)
}

/// `spec.cancel` deletes the running attempt and ends the run as Cancelled.
async fn cancel_deletes_the_running_attempt(mode: Mode) {
    let ns = setup("wl-cancel").await;
    let (operator, attempt) = start_slow(mode, &ns, "long-1", json!({"limit": 0})).await;
    cancel(&ns, "long-1").await;
    let status = wait_final(&ns, "long-1").await;
    assert_eq!(status.phase, ExecutionPhase::Cancelled, "{status:?}");
    assert_eq!(step(&status, "wait").state, StepState::Cancelled);
    mode.wait_deleted(&ns, &attempt).await;
    operator.stop().await;
    ns.cleanup().await;
}

/// Someone deletes the running attempt's object: that attempt fails with the same
/// words as for a Job, naming what was deleted, and the retry runs as a new object;
/// the deleted name is never created again.
async fn a_deleted_attempt_fails_and_the_retry_runs_once(mode: Mode) {
    let ns = setup("wl-deleted").await;
    let (operator, first) = start_slow(
        mode,
        &ns,
        "held-1",
        json!({"limit": 1, "backoffSeconds": 1}),
    )
    .await;
    // Wait until the controller has recorded the object's uid (it has seen it).
    wait_status(
        &ns,
        "held-1",
        "uid recorded",
        Duration::from_secs(30),
        |s| {
            s.steps
                .iter()
                .any(|st| st.id == "wait" && st.job_uid.is_some())
        },
    )
    .await;
    let dp = DeleteParams::background();
    match mode {
        Mode::Job => {
            ns.api::<Job>()
                .delete(&first, &dp)
                .await
                .expect("deleting the Job");
        }
        Mode::Pod => {
            ns.api::<Pod>()
                .delete(&first, &dp)
                .await
                .expect("deleting the Pod");
        }
    }
    let status = wait_status(&ns, "held-1", "attempt 2", Duration::from_secs(60), |s| {
        s.steps
            .iter()
            .any(|st| st.id == "wait" && st.attempt == 2 && st.job_name.is_some())
    })
    .await;
    let said = format!(
        "attempt 1 failed: {} {first} was deleted while the step ran",
        mode.workload()
    );
    let history = serde_json::to_string(&status).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut names = mode.attempts(&ns, "wait").await;
    while !names.iter().any(|(a, _)| a == "2") || names.iter().any(|(_, n)| *n == first) {
        assert!(Instant::now() < deadline, "the retry: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        names = mode.attempts(&ns, "wait").await;
    }
    // The deleted attempt's name stays gone; the retry runs under its own.
    let attempts: Vec<&str> = names.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(attempts, ["2"], "{names:?}");
    let notes =
        common::realnode::warnings_saying(&ns, "held-1", "was deleted while the step ran").await;
    assert!(
        notes.iter().any(|n| n.contains(&said)) || history.contains(&said),
        "{said:?} in {notes:?}"
    );
    cancel(&ns, "held-1").await;
    wait_final(&ns, "held-1").await;
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_mode_runs_steps_with_outputs() {
    success_with_outputs(Mode::Pod).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_mode_retries_a_failing_step_and_runs_finally() {
    failing_step_with_retries_and_finally(Mode::Pod).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_mode_cancel_deletes_the_running_pod() {
    cancel_deletes_the_running_attempt(Mode::Pod).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_mode_a_deleted_pod_fails_its_attempt_and_the_retry_runs_once() {
    a_deleted_attempt_fails_and_the_retry_runs_once(Mode::Pod).await;
}

/// The same scenarios in Job mode, so the harness's mode parameter is checked
/// against the mode the rest of the suite runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_mode_a_deleted_job_fails_its_attempt_and_the_retry_runs_once() {
    a_deleted_attempt_fails_and_the_retry_runs_once(Mode::Job).await;
}
