//! Incident-grade guarantees on a real cluster (issue 8): `finally` steps run exactly
//! once after a timeout, after `spec.cancel` (which does not stop them) while a step
//! runs or while one waits for approval, after a failing step, after the controller
//! was down when the main steps ended, and after the operator binary was SIGKILLed
//! right after the last main step ended.
//!
//! The operator runs in process (`common::operator`), one per test namespace, except
//! where it is killed: there it is the binary (`common::process`).
//!
//! Needs a cluster: `make test-e2e`, or `make cluster-up` then
//! `cargo test --test safety_e2e`.

mod common;

use std::time::{Duration, Instant};

use common::operator::*;
use common::process::OperatorProcess;
use kube::api::Api;
use playbook_operator::api::{Execution, ExecutionPhase, StepState};
use serde_json::json;

/// A clean-up step that reports what it saw of the main steps.
fn cleanup() -> serde_json::Value {
    json!({
        "id": "cleanup", "image": "busybox",
        "env": {"PHASE": "{{ .execution.phase }}", "FAILED": "{{ .execution.failedStep }}"}
    })
}

async fn finally_playbook(ns: &common::TestNamespace, name: &str, steps: serde_json::Value) {
    playbook_spec(ns, name, json!({"steps": steps, "finally": [cleanup()]})).await;
}

/// The cleanup Job's env, once it exists.
async fn cleanup_env(ns: &common::TestNamespace, var: &str) -> Option<String> {
    let jobs = jobs_of_step(ns, "cleanup").await;
    assert_eq!(jobs.len(), 1, "one cleanup Job: {jobs:?}");
    env_value(&jobs[0], var)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finally_runs_after_a_timeout_and_sees_the_failure() {
    let ns = setup("safe-timeout").await;
    runner(&ns, "hangs", json!({common::DURATION_ANNOTATION: "600s"})).await;
    ns.set_default_log("{}\n").await;
    finally_playbook(
        &ns,
        "stuck",
        json!([{"id": "hang", "image": "sleep", "runner": "hangs", "timeoutSeconds": 2}]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "stuck-1", "stuck", json!({})).await;
    let status = wait_final(&ns, "stuck-1").await;
    assert_eq!(status.phase, ExecutionPhase::Failed, "{status:?}");
    assert!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("step 'hang' failed: timed out after 2s")),
        "{status:?}"
    );
    let cleanup = status
        .finally
        .iter()
        .find(|s| s.id == "cleanup")
        .expect("a cleanup status");
    assert_eq!(cleanup.state, StepState::Succeeded, "{cleanup:?}");
    assert_eq!(
        status.main_outcome.as_ref().map(|o| o.phase),
        Some(ExecutionPhase::Failed)
    );
    assert_eq!(cleanup_env(&ns, "PHASE").await.as_deref(), Some("Failed"));
    assert_eq!(cleanup_env(&ns, "FAILED").await.as_deref(), Some("hang"));
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_steps_but_not_the_clean_up() {
    let ns = setup("safe-cancel").await;
    // Every pod runs 3 s: the cancel lands while the main step runs, and again while
    // the clean-up runs.
    runner(&ns, "default", json!({common::DURATION_ANNOTATION: "3s"})).await;
    ns.set_default_log("{}\n").await;
    finally_playbook(
        &ns,
        "long",
        json!([{"id": "work", "image": "busybox"}, {"id": "more", "image": "busybox"}]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "long-1", "long", json!({})).await;
    wait_step_running(&ns, "long-1", "work").await;
    cancel(&ns, "long-1").await;
    let status = wait_final(&ns, "long-1").await;
    assert_eq!(status.phase, ExecutionPhase::Cancelled, "{status:?}");
    let states: Vec<_> = status
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.state))
        .collect();
    assert_eq!(
        states,
        [
            ("work", StepState::Cancelled),
            ("more", StepState::Cancelled)
        ]
    );
    assert_eq!(status.finally[0].state, StepState::Succeeded, "{status:?}");
    assert_eq!(
        cleanup_env(&ns, "PHASE").await.as_deref(),
        Some("Cancelled")
    );
    assert!(jobs_of_step(&ns, "more").await.is_empty());
    operator.stop().await;
    ns.cleanup().await;
}

/// The main step ends while no controller runs; the next one finds it ended, records
/// the outcome and runs the clean-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finally_runs_when_the_controller_was_down_as_the_steps_ended() {
    let ns = setup("safe-down").await;
    runner(&ns, "default", json!({common::DURATION_ANNOTATION: "2s"})).await;
    ns.set_default_log("{}\n").await;
    finally_playbook(&ns, "short", json!([{"id": "work", "image": "busybox"}])).await;
    let operator = Operator::start(&ns);
    execution(&ns, "short-1", "short", json!({})).await;
    wait_step_running(&ns, "short-1", "work").await;
    operator.stop().await;
    // The pod ends (2 s) while nothing watches.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let api: Api<Execution> = ns.api();
    let seen = api.get("short-1").await.expect("the Execution");
    assert!(
        seen.status.as_ref().is_some_and(|s| s.finally.is_empty()),
        "nothing ran the clean-up while the controller was down"
    );
    let operator = Operator::start(&ns);
    let status = wait_final(&ns, "short-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    assert_eq!(status.finally[0].state, StepState::Succeeded, "{status:?}");
    assert_eq!(
        cleanup_env(&ns, "PHASE").await.as_deref(),
        Some("Succeeded")
    );
    operator.stop().await;
    ns.cleanup().await;
}

/// Cancelling a run whose step waits for an approval cancels that step and still
/// runs the clean-up, once; a failing step elsewhere does the same for `Failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finally_runs_once_after_a_cancel_during_an_approval_wait_and_after_a_failure() {
    let ns = setup("safe-wait").await;
    ns.set_default_log("{}\n").await;
    finally_playbook(
        &ns,
        "guarded",
        json!([{"id": "restart", "image": "busybox", "phase": "remediate",
                "approval": {"required": true}}]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "guarded-1", "guarded", json!({})).await;
    wait_status(
        &ns,
        "guarded-1",
        "waiting for approval",
        Duration::from_secs(60),
        |s| s.phase == ExecutionPhase::WaitingApproval,
    )
    .await;
    cancel(&ns, "guarded-1").await;
    let status = wait_final(&ns, "guarded-1").await;
    assert_eq!(status.phase, ExecutionPhase::Cancelled, "{status:?}");
    assert_eq!(step(&status, "restart").state, StepState::Cancelled);
    assert!(
        jobs_of_step(&ns, "restart").await.is_empty(),
        "nothing approved ran"
    );
    assert_eq!(status.finally[0].state, StepState::Succeeded, "{status:?}");
    assert_eq!(
        cleanup_env(&ns, "PHASE").await.as_deref(),
        Some("Cancelled")
    );

    // A step that exits 1: the run fails, the clean-up runs once and names it.
    ns.set_container_log("broken", "no route to host\n").await;
    let failing = json!({"steps": [{"id": "broken", "image": "busybox"}],
                         "finally": [{"id": "report", "image": "busybox",
                                      "env": {"FAILED": "{{ .execution.failedStep }}"}}]});
    playbook_spec(&ns, "failing", failing).await;
    runner(&ns, "default", json!({common::EXIT_CODE_ANNOTATION: "1"})).await;
    execution(&ns, "failing-1", "failing", json!({})).await;
    let status = wait_final(&ns, "failing-1").await;
    assert_eq!(status.phase, ExecutionPhase::Failed, "{status:?}");
    let reports = jobs_of_step(&ns, "report").await;
    assert_eq!(reports.len(), 1, "one report Job: {reports:?}");
    assert_eq!(env_value(&reports[0], "FAILED").as_deref(), Some("broken"));
    operator.stop().await;
    ns.cleanup().await;
}

/// SIGKILL the operator binary the moment status shows the last main step ended:
/// whether or not it had created the clean-up Job, the restarted one runs the
/// clean-up exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finally_runs_once_when_the_operator_is_killed_as_the_main_steps_end() {
    let ns = setup("safe-kill").await;
    ns.set_default_log("{}\n").await;
    finally_playbook(&ns, "short", json!([{"id": "work", "image": "busybox"}])).await;
    let mut operator = OperatorProcess::start(&ns, &[]);
    execution(&ns, "short-1", "short", json!({})).await;
    wait_status(&ns, "short-1", "work ended", Duration::from_secs(60), |s| {
        s.steps
            .iter()
            .any(|st| st.id == "work" && st.state.is_final())
    })
    .await;
    operator.kill("right after the last main step ended");
    operator.restart();
    let status = wait_final(&ns, "short-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    assert_eq!(status.finally[0].state, StepState::Succeeded, "{status:?}");
    assert_eq!(
        cleanup_env(&ns, "PHASE").await.as_deref(),
        Some("Succeeded")
    );
    operator.terminate();
    ns.cleanup().await;
}

/// SIGTERM while the operator is still starting, before its caches are filled (a
/// rollout, or an API server that cannot be listed): it exits within its shutdown
/// grace (5 s) instead of waiting for caches that nothing fills any more (it hung
/// until SIGKILL, 4 times in 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_while_starting_stops_the_operator_within_the_grace() {
    let ns = setup("safe-start").await;
    for attempt in 1..=3 {
        let mut operator = OperatorProcess::start(&ns, &[]);
        operator.wait_log("serving HTTP").await;
        let asked = Instant::now();
        let exited = operator.terminate();
        let took = asked.elapsed();
        assert!(exited.success(), "attempt {attempt}: {exited}");
        assert!(
            took < Duration::from_secs(10),
            "attempt {attempt}: exited {took:?} after SIGTERM"
        );
    }
    ns.cleanup().await;
}
