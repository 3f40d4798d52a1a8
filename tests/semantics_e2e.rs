//! The planner's semantics on a real cluster: timeout, `when`, `foreach` and a DAG
//! with parallel branches, each through real Jobs, kwok pods and step logs. The
//! table tests in `src/engine/plan/tests.rs` say what the planner decides; these say
//! the controller makes it happen.
//!
//! The operator runs in process (`common::operator`), one per test namespace.
//!
//! Needs a cluster: `make test-e2e`, or `make cluster-up` then
//! `cargo test --test semantics_e2e`.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::operator::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use playbook_operator::api::{ExecutionPhase, ExecutionStatus, Playbook, StepState};
use serde_json::json;

/// A step with `timeoutSeconds` whose pod would run for minutes fails "timed out"
/// within seconds and its Job is stopped. Without `continueOnError` that fails the
/// run and skips what comes after; with it the run goes on and succeeds (planner
/// cases "a step running past its timeout…" and "continueOnError…").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_past_its_timeout_is_stopped_and_fails() {
    let ns = setup("sem-timeout").await;
    // Far longer than any wait below: the step can only end by its timeout.
    runner(&ns, "hangs", json!({common::DURATION_ANNOTATION: "600s"})).await;
    ns.set_default_log(&json!({"done": true}).to_string()).await;
    playbook(
        &ns,
        "stops",
        json!([
            {"id": "hang", "image": "sleep", "runner": "hangs", "timeoutSeconds": 2},
            {"id": "after", "image": "busybox"}
        ]),
    )
    .await;
    playbook(
        &ns,
        "goes-on",
        json!([
            {"id": "hang-ok", "image": "sleep", "runner": "hangs", "timeoutSeconds": 2,
             "continueOnError": true},
            {"id": "after-ok", "image": "busybox"}
        ]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "stops-1", "stops", json!({})).await;
    execution(&ns, "goes-on-1", "goes-on", json!({})).await;

    // wait_final gives up after 60 s: only the timeout can end the step before that.
    let status = wait_final(&ns, "stops-1").await;
    assert_eq!(status.phase, ExecutionPhase::Failed, "{status:?}");
    let hang = step(&status, "hang");
    assert_eq!(hang.state, StepState::Failed);
    assert_eq!(hang.message.as_deref(), Some("timed out after 2s"));
    assert_eq!(hang.exit_code, None, "the container never ended");
    assert_eq!(
        status.message.as_deref(),
        Some("step 'hang' failed: timed out after 2s")
    );
    let after = step(&status, "after");
    assert_eq!(after.state, StepState::Skipped);
    assert_eq!(
        after.message.as_deref(),
        Some("not run: step 'hang' failed")
    );
    assert!(jobs_of_step(&ns, "after").await.is_empty());
    let job_name = hang
        .job_name
        .clone()
        .expect("the timed-out step names its Job");
    assert_job_stopped(&ns, &job_name).await;

    let status = wait_final(&ns, "goes-on-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    let hang = step(&status, "hang-ok");
    assert_eq!(hang.state, StepState::Failed);
    assert_eq!(hang.message.as_deref(), Some("timed out after 2s"));
    assert_eq!(step(&status, "after-ok").state, StepState::Succeeded);
    assert_eq!(
        step(&status, "after-ok").outputs,
        Some(json!({"done": true}))
    );
    assert_eq!(
        status.message.as_deref(),
        Some("1 steps succeeded, 0 skipped, 1 failed with continueOnError")
    );
    let job_name = hang
        .job_name
        .clone()
        .expect("the timed-out step names its Job");
    assert_job_stopped(&ns, &job_name).await;
    operator.stop().await;
    ns.cleanup().await;
}

/// The timed-out attempt's Job carries the timeout as activeDeadlineSeconds (so the
/// Job controller stops it even without the operator), and it ends up stopped: gone
/// or being deleted (the operator deletes a Job no Running step owns), or failed by
/// its deadline; either way no pod of it is left running.
async fn assert_job_stopped(ns: &common::TestNamespace, name: &str) {
    let jobs: Api<Job> = ns.api();
    let pods: Api<Pod> = ns.api();
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = jobs.get_opt(name).await.expect("reading the Job");
        if let Some(job) = &job {
            let spec = job.spec.as_ref().expect("a Job has a spec");
            assert_eq!(spec.active_deadline_seconds, Some(2), "{name}");
        }
        let stopped = match &job {
            None => true,
            Some(j) if j.metadata.deletion_timestamp.is_some() => true,
            Some(j) => j
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "Failed"
                            && c.status == "True"
                            && c.reason.as_deref() == Some("DeadlineExceeded")
                    })
                }),
        };
        let running = pods
            .list(&lp)
            .await
            .expect("listing pods")
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .any(|p| common::pod_phase(p) == "Running");
        if stopped && !running {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Job {name} not stopped within 60 s: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `when` that renders false, from a param or from an earlier step's output,
/// skips the step with the reason and without a Job; a `when` that holds runs, and
/// the steps after the skipped ones still run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_false_when_skips_the_step_and_the_run_goes_on() {
    let ns = setup("sem-when").await;
    ns.set_container_log(
        "probe",
        &step_log("checking", json!({"healthy": true, "replicas": 3})),
    )
    .await;
    ns.set_default_log(&json!({"ok": true}).to_string()).await;
    let by_param = r#"{{ eq .params.Mode "fix" }}"#;
    let by_output = "{{ lt .steps.probe.outputs.replicas 1 }}";
    let holds = "{{ gt .steps.probe.outputs.replicas 2 }}";
    let _: Playbook = create(
        &ns,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Playbook",
            "metadata": {"name": "conditional"},
            "spec": {
                "params": [{"name": "Mode", "default": "fix"}],
                "steps": [
                    {"id": "probe", "image": "curl"},
                    {"id": "fix", "image": "fixer", "when": by_param},
                    {"id": "restart", "image": "kubectl", "when": by_output},
                    {"id": "scale", "image": "kubectl", "when": holds},
                    {"id": "report", "image": "busybox"}
                ]
            }
        }),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "cond-1", "conditional", json!({"Mode": "observe"})).await;
    let status = wait_final(&ns, "cond-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    for (id, when) in [("fix", by_param), ("restart", by_output)] {
        let s = step(&status, id);
        assert_eq!(s.state, StepState::Skipped, "{s:?}");
        assert_eq!(
            s.message.as_deref(),
            Some(format!("when rendered false: {when}").as_str())
        );
        assert_eq!(s.job_name, None, "{s:?}");
        assert!(jobs_of_step(&ns, id).await.is_empty(), "no Job for {id}");
    }
    for id in ["probe", "scale", "report"] {
        let s = step(&status, id);
        assert_eq!(s.state, StepState::Succeeded, "{s:?}");
        assert_eq!(jobs_of_step(&ns, id).await.len(), 1, "one Job for {id}");
    }
    assert_eq!(
        status.message.as_deref(),
        Some("3 steps succeeded, 2 skipped")
    );
    operator.stop().await;
    ns.cleanup().await;
}

/// A `foreach` over a list from an earlier step's output runs one Job per item, one
/// after the other; each Job gets its item and index in its env, each item's own
/// output lands in `ID[i]`, and a later step sees the loop's last output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreach_runs_one_job_per_item_with_its_value_and_output() {
    let ns = setup("sem-foreach").await;
    let items = ["web-0", "web-1", "web-2"];
    // Long enough for the test to give each item's pod its own log before it ends;
    // were it late, kwok answers "no logs found" and the controller reads again.
    runner(&ns, "slow", json!({common::DURATION_ANNOTATION: "1s"})).await;
    ns.set_container_log("list", &step_log("listing", json!({"pods": items})))
        .await;
    ns.set_container_log("after", &json!({"ok": true}).to_string())
        .await;
    playbook(
        &ns,
        "per-pod",
        json!([
            {"id": "list", "image": "kubectl"},
            {"id": "each", "image": "kubectl", "runner": "slow",
             "foreach": {"path": "$.list.pods"},
             "env": {"POD": "{{ .value }}", "INDEX": "{{ .key }}"}},
            {"id": "after", "image": "busybox", "env": {"LAST": "{{ .steps.each.outputs.pod }}"}}
        ]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "loop-1", "per-pod", json!({})).await;

    // Each item's pod prints an output of its own, so status shows whose is whose.
    let pods: Api<Pod> = ns.api();
    let lp = ListParams::default().labels("stackpulse.io/step=each");
    let mut served = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while served.len() < items.len() {
        for pod in pods.list(&lp).await.expect("listing pods").items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            let index = labels.get("stackpulse.io/index").cloned();
            let index: usize = index
                .and_then(|i| i.parse().ok())
                .unwrap_or_else(|| panic!("pod {name} has no index label: {labels:?}"));
            if served.insert(name.clone()) {
                let output = json!({"pod": items[index], "index": index});
                ns.set_pod_log(&name, None, &step_log("restarting", output))
                    .await;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not every item got a pod within 90 s (served: {served:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let status = wait_final(&ns, "loop-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    for (i, item) in items.iter().enumerate() {
        let s = step(&status, &format!("each[{i}]"));
        assert_eq!(s.state, StepState::Succeeded, "{s:?}");
        assert_eq!(s.outputs, Some(json!({"pod": item, "index": i})));
    }
    // One after the other (parallelism 1): no item started before the one before ended.
    for i in 1..items.len() {
        let prev = step(&status, &format!("each[{}]", i - 1));
        let next = step(&status, &format!("each[{i}]"));
        assert!(
            next.started_at >= prev.finished_at,
            "each[{i}] started before each[{}] ended: {next:?} {prev:?}",
            i - 1
        );
    }
    let jobs = jobs_of_step(&ns, "each").await;
    assert_eq!(jobs.len(), items.len(), "one Job per item");
    let mut seen = Vec::new();
    for job in &jobs {
        let labels = job.metadata.labels.clone().unwrap_or_default();
        let index = labels
            .get("stackpulse.io/index")
            .cloned()
            .unwrap_or_default();
        let i: usize = index.parse().expect("an index label");
        assert_eq!(env_value(job, "POD").as_deref(), Some(items[i]), "{index}");
        assert_eq!(env_value(job, "INDEX"), Some(index.clone()));
        seen.push(i);
    }
    seen.sort();
    assert_eq!(seen, [0, 1, 2]);
    let after = jobs_of_step(&ns, "after").await;
    assert_eq!(after.len(), 1);
    assert_eq!(env_value(&after[0], "LAST").as_deref(), Some("web-2"));
    operator.stop().await;
    ns.cleanup().await;
}

/// a → (b, c) → d through `dependsOn`: b and c run at the same time (each Job exists
/// before the other's pod ends), d starts only after both ended and gets both
/// outputs in its env.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dag_runs_its_branches_in_parallel_and_joins() {
    let ns = setup("sem-dag").await;
    // Branch pods live 3 s: their overlap shows at whole-second timestamps even if
    // the two creates are a second apart on a busy machine.
    runner(&ns, "slow", json!({common::DURATION_ANNOTATION: "3s"})).await;
    ns.set_container_log("a", &step_log("seeding", json!({"seed": "s1"})))
        .await;
    ns.set_container_log("b", &step_log("left", json!({"left": "L"})))
        .await;
    ns.set_container_log("c", &step_log("right", json!({"right": "R"})))
        .await;
    ns.set_container_log("d", &step_log("joined", json!({"joined": true})))
        .await;
    playbook(
        &ns,
        "diamond",
        json!([
            {"id": "a", "image": "busybox"},
            {"id": "b", "image": "busybox", "runner": "slow", "dependsOn": ["a"],
             "env": {"SEED": "{{ .steps.a.outputs.seed }}"}},
            {"id": "c", "image": "busybox", "runner": "slow", "dependsOn": ["a"],
             "env": {"SEED": "{{ .steps.a.outputs.seed }}"}},
            {"id": "d", "image": "busybox", "dependsOn": ["b", "c"],
             "env": {"LEFT": "{{ .steps.b.outputs.left }}", "RIGHT": "{{ .steps.c.outputs.right }}"}}
        ]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "dag-1", "diamond", json!({})).await;
    let status = wait_final(&ns, "dag-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    let outputs = [
        ("a", json!({"seed": "s1"})),
        ("b", json!({"left": "L"})),
        ("c", json!({"right": "R"})),
        ("d", json!({"joined": true})),
    ];
    for (id, output) in outputs {
        assert_eq!(step(&status, id).outputs, Some(output), "{id}");
    }

    let only_job = |jobs: Vec<Job>, id: &str| {
        assert_eq!(jobs.len(), 1, "one Job for {id}");
        jobs.into_iter().next().expect("one Job")
    };
    let b = only_job(jobs_of_step(&ns, "b").await, "b");
    let c = only_job(jobs_of_step(&ns, "c").await, "c");
    let d = only_job(jobs_of_step(&ns, "d").await, "d");
    // Whole seconds on both sides: a branch created only after the other's pod ended
    // would have created >= that end, so strictly before means they overlapped.
    let ended = |id: &str| finished(&status, id);
    assert!(
        created(&c) < ended("b") && created(&b) < ended("c"),
        "b and c overlap: b created {}, ended {}; c created {}, ended {}",
        created(&b),
        ended("b"),
        created(&c),
        ended("c")
    );
    assert!(
        created(&d) >= ended("b").max(ended("c")),
        "d waits for both branches: created {}, b ended {}, c ended {}",
        created(&d),
        ended("b"),
        ended("c")
    );
    assert!(
        created(&b) >= ended("a") && created(&c) >= ended("a"),
        "the branches wait for a"
    );
    for job in [&b, &c] {
        assert_eq!(env_value(job, "SEED").as_deref(), Some("s1"));
    }
    assert_eq!(env_value(&d, "LEFT").as_deref(), Some("L"));
    assert_eq!(env_value(&d, "RIGHT").as_deref(), Some("R"));
    operator.stop().await;
    ns.cleanup().await;
}

fn created(job: &Job) -> Timestamp {
    job.metadata
        .creation_timestamp
        .as_ref()
        .expect("a created Job has a creationTimestamp")
        .0
}

fn finished(status: &ExecutionStatus, id: &str) -> Timestamp {
    step(status, id)
        .finished_at
        .as_ref()
        .unwrap_or_else(|| panic!("step {id} has no finishedAt"))
        .0
}
