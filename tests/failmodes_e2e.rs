//! Every way a real pod fails ends its step, on the real node of the local cluster
//! (`tests/cluster/realnode.sh`): an image that does not pull, a missing Secret key,
//! a root image under `runAsNonRoot`, a container past its memory limit and a pod no
//! node takes each fail the step within its `startTimeoutSeconds` with the
//! kubelet's or scheduler's words and what to change; `finally` runs, the run is
//! Failed and a Warning Event on the Execution says why. Also: a running step's Job
//! deleted by someone fails only that attempt (its retry runs, no Job name is created
//! twice), and the shipped `restart-crashlooping-pods` example runs.
//!
//! Needs the cluster with its real node: `make cluster-up`, then
//! `cargo test --test failmodes_e2e`. Without the node every real-node test fails
//! with the reason the cluster recorded.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestNamespace;
use common::operator::*;
use common::realnode::{self, BUSYBOX, ROOT_BUSYBOX};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;
use playbook_operator::api::{ExecutionPhase, ExecutionStatus, Playbook, StepState};
use serde_json::{Value, json};

/// The failing steps' `startTimeoutSeconds`.
const START: i64 = 4;
/// What a failure may take beyond its clock: the controller's requeue, the kubelet's
/// status update, a busy machine. Every failure that waits for the start timeout is
/// also checked not to come before it (timestamps are whole seconds: 1 s less).
const SLACK: i64 = 10;

/// Runs a playbook of one step `work` (on the Runner `real` with `runner_spec`, start
/// timeout [`START`]) and a `finally` step on kwok; returns the final status and the
/// notes of the Warning Events on the Execution once one carries the step's message.
async fn run_failing(
    ns: &TestNamespace,
    runner_spec: Value,
    work: Value,
) -> (ExecutionStatus, Vec<String>) {
    ns.set_default_log(&step_log("cleaned up", json!({"ok": true})))
        .await;
    realnode::runner(ns, "real", runner_spec).await;
    let mut work = work;
    work["id"] = json!("work");
    work["runner"] = json!("real");
    work["startTimeoutSeconds"] = json!(START);
    playbook_spec(
        ns,
        "fails",
        json!({
            "steps": [work],
            "finally": [{"id": "cleanup", "image": "busybox", "env": {"OUTCOME": "{{ .execution.phase }}"}}]
        }),
    )
    .await;
    let operator = Operator::start(ns);
    execution(ns, "fails-1", "fails", json!({})).await;
    let status = wait_final(ns, "fails-1").await;
    let message = step(&status, "work").message.clone().unwrap_or_default();
    let notes = realnode::warnings_saying(ns, "fails-1", &message).await;
    let outcome: Vec<String> = jobs_of_step(ns, "cleanup")
        .await
        .iter()
        .filter_map(|j| env_value(j, "OUTCOME"))
        .collect();
    assert_eq!(outcome, ["Failed"], "the finally step saw the outcome");
    operator.stop().await;
    (status, notes)
}

/// The common verdict: `work` failed (and the run with it) a number of seconds in
/// `within` after its start, with a message holding every one of `says`; `finally`
/// ran; a Warning Event carries the message. Returns the message.
fn assert_failed(
    status: &ExecutionStatus,
    notes: &[String],
    says: &[&str],
    within: std::ops::RangeInclusive<i64>,
) -> String {
    let yaml = serde_yaml::to_string(status).unwrap_or_default();
    assert_eq!(status.phase, ExecutionPhase::Failed, "{yaml}");
    let work = step(status, "work");
    assert_eq!(work.state, StepState::Failed, "{yaml}");
    let message = work.message.clone().unwrap_or_default();
    for s in says {
        assert!(message.contains(s), "the message says {s:?}: {message}");
    }
    let seconds = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref().map(|t| t.0.as_second()).expect("a timestamp")
    };
    let took = seconds(&work.finished_at) - seconds(&work.started_at);
    assert!(
        within.contains(&took),
        "failed after {took}s, not in {within:?}s: {yaml}"
    );
    let cleanup = status.finally.iter().find(|s| s.id == "cleanup");
    assert_eq!(
        cleanup.map(|c| c.state),
        Some(StepState::Succeeded),
        "finally ran: {yaml}"
    );
    assert!(
        notes.iter().any(|n| n.contains(&message)),
        "a Warning Event carries {message:?}: {notes:?}"
    );
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_does_not_pull_fails_after_the_start_timeout() {
    let ns = setup("fail-pull").await;
    let (status, notes) = run_failing(&ns, json!({}), json!({"image": "local/nope:1"})).await;
    // A pull that may yet work (a registry down for a minute) gets its whole start timeout.
    let message = assert_failed(
        &status,
        &notes,
        &[
            "image \"local/nope:1\" could not be pulled within 4s",
            "check the image name and tag",
        ],
        START - 1..=START + SLACK,
    );
    // The kubelet shows one or the other, depending on when the controller looks.
    assert!(
        message.contains("(ErrImagePull") || message.contains("(ImagePullBackOff"),
        "the kubelet's reason: {message}"
    );
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_key_fails_and_names_the_key() {
    let ns = setup("fail-secret").await;
    let _: Secret = create(
        &ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
               "stringData": {"present": "x"}}),
    )
    .await;
    let work = json!({"image": BUSYBOX, "command": ["/bin/sh", "-c", "echo never"],
                      "env": {"TOKEN": "{{ secret \"missing-key\" }}"}});
    let (status, notes) = run_failing(&ns, json!({"secretName": "creds"}), work).await;
    assert_failed(
        &status,
        &notes,
        &[
            "CreateContainerConfigError",
            &format!("couldn't find key missing-key in Secret {}/creds", ns.name),
            "create the Secret or the key it names",
        ],
        START - 1..=START + SLACK,
    );
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_image_under_run_as_non_root_fails_and_says_what_to_change() {
    let ns = setup("fail-root").await;
    let work = json!({"image": ROOT_BUSYBOX, "command": ["/bin/sh", "-c", "id"]});
    let (status, notes) = run_failing(&ns, json!({}), work).await;
    assert_failed(
        &status,
        &notes,
        &[
            "CreateContainerConfigError",
            "container has runAsNonRoot and image will run as root",
            "use an image that runs as a non-root user, or set runAsUser",
        ],
        START - 1..=START + SLACK,
    );
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_past_its_memory_limit_fails_naming_the_limit() {
    let ns = setup("fail-oom").await;
    // dd reads 256 MiB of zeros into one buffer: every page is touched, so the
    // kernel kills it at the 64Mi limit (cgroup v1 on this node).
    let work = json!({"image": BUSYBOX,
                      "command": ["/bin/sh", "-c", "exec dd if=/dev/zero of=/dev/null bs=256M count=1"]});
    let runner = json!({"resources": {"limits": {"memory": "64Mi"}}});
    let (status, notes) = run_failing(&ns, runner, work).await;
    assert_failed(
        &status,
        &notes,
        &[
            "OOMKilled",
            "ran out of memory at its limit of 64Mi: raise resources.limits.memory",
        ],
        0..=SLACK,
    );
    assert_eq!(step(&status, "work").exit_code, Some(137));
    ns.cleanup().await;
}

/// Steps as bare Pods (`workload: Pod`) fail the same way, with the same words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_mode_an_image_that_does_not_pull_fails_after_the_start_timeout() {
    let ns = setup("fail-pod-pull").await;
    let runner = json!({"workload": "Pod"});
    let (status, notes) = run_failing(&ns, runner, json!({"image": "local/nope:1"})).await;
    assert_failed(
        &status,
        &notes,
        &["image \"local/nope:1\" could not be pulled within 4s"],
        START - 1..=START + SLACK,
    );
    assert!(
        jobs_of_step(&ns, "work").await.is_empty(),
        "no Job in Pod mode"
    );
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_mode_a_container_past_its_memory_limit_fails_naming_the_limit() {
    let ns = setup("fail-pod-oom").await;
    let work = json!({"image": BUSYBOX,
                      "command": ["/bin/sh", "-c", "exec dd if=/dev/zero of=/dev/null bs=256M count=1"]});
    let runner = json!({"workload": "Pod", "resources": {"limits": {"memory": "64Mi"}}});
    let (status, notes) = run_failing(&ns, runner, work).await;
    assert_failed(
        &status,
        &notes,
        &["ran out of memory at its limit of 64Mi: raise resources.limits.memory"],
        0..=SLACK,
    );
    assert_eq!(step(&status, "work").exit_code, Some(137));
    assert!(
        jobs_of_step(&ns, "work").await.is_empty(),
        "no Job in Pod mode"
    );
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_no_node_takes_fails_with_the_schedulers_reason() {
    let ns = setup("fail-sched").await;
    let runner = json!({"nodeSelector": {realnode::KEY: "true", "stackpulse.io/pool": "none"}});
    let work = json!({"image": BUSYBOX, "command": ["/bin/sh", "-c", "echo never"]});
    let (status, notes) = run_failing(&ns, runner, work).await;
    assert_failed(
        &status,
        &notes,
        &[
            "pod could not be scheduled within 4s: 0/",
            "didn't match Pod's node affinity/selector",
            "check the Runner's nodeSelector, tolerations and affinity",
        ],
        START - 1..=START + SLACK,
    );
    ns.cleanup().await;
}

/// Someone deletes the Job of a running step: that attempt fails, its retry runs
/// under a new name and succeeds, and no Job name is ever created twice. On kwok: its
/// pods are held Running for a few seconds by the duration annotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_job_fails_its_attempt_and_the_retry_runs_once() {
    let ns = setup("job-deleted").await;
    ns.set_default_log(&step_log("slept", json!({"ok": true})))
        .await;
    runner(&ns, "held", json!({common::DURATION_ANNOTATION: "4s"})).await;
    playbook(
        &ns,
        "held",
        json!([{"id": "hold", "image": "busybox", "runner": "held",
                "retries": {"limit": 1, "backoffSeconds": 0}}]),
    )
    .await;
    // Every Job the namespace ever had, by uid, for the whole test.
    let seen: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let jobs: Api<Job> = ns.api();
    let watch = tokio::spawn({
        let seen = seen.clone();
        let stream = watcher(jobs.clone(), watcher::Config::default());
        async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) = event {
                    let uid = job.uid().unwrap_or_default();
                    seen.lock().expect("lock").insert(uid, job.name_any());
                }
            }
        }
    });
    let operator = Operator::start(&ns);
    execution(&ns, "held-1", "held", json!({})).await;
    // The controller has seen the Job (its uid is in status): only then is a gone
    // Job a deleted one rather than one not yet created.
    let running = wait_status(
        &ns,
        "held-1",
        "holding with its Job seen",
        Duration::from_secs(30),
        |s| {
            s.steps
                .iter()
                .any(|st| st.state == StepState::Running && st.job_uid.is_some())
        },
    )
    .await;
    let first = step(&running, "hold").job_name.clone().expect("a Job name");
    jobs.delete(&first, &DeleteParams::background())
        .await
        .expect("deleting the running step's Job");
    let status = wait_final(&ns, "held-1").await;
    let yaml = serde_yaml::to_string(&status).unwrap_or_default();
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{yaml}");
    let hold = step(&status, "hold");
    assert_eq!(
        (hold.state, hold.attempt),
        (StepState::Succeeded, 2),
        "{yaml}"
    );
    let second = hold.job_name.clone().expect("a Job name");
    assert_ne!(first, second, "the retry has a Job of its own");
    let notes = realnode::warnings_saying(&ns, "held-1", "was deleted while the step ran").await;
    let said = format!("step 'hold': attempt 1 failed: Job {first} was deleted while the step ran");
    assert!(
        notes.iter().any(|n| n.starts_with(&said)),
        "{said:?} in {notes:?}"
    );
    operator.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch.abort();
    let seen = seen.lock().expect("lock").clone();
    let mut names: Vec<&String> = seen.values().collect();
    names.sort();
    assert_eq!(
        names,
        vec![&first, &second],
        "one Job per name, ever: {seen:?}"
    );
    ns.cleanup().await;
}

/// The shipped example runs as written: its `envFrom.integrationRef` template renders
/// a Secret name (the Job is accepted, no 422), and the run goes through its loops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restart_crashlooping_pods_example_runs() {
    let ns = setup("example-restart").await;
    let logs = [
        (
            "get-pods",
            json!({"items": [{"metadata": {"name": "web-1"}}]}),
        ),
        ("crashlooping", json!([{"name": "web-1"}])),
        ("restart-pod", json!({"deleted": true})),
        ("check-health", json!({"healthy": true})),
    ];
    for (container, output) in logs {
        ns.set_container_log(container, &step_log("done", output))
            .await;
    }
    ns.set_default_log(&step_log("sent", json!({"sent": true})))
        .await;
    let _: Secret = create(
        &ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "slack-ops"},
               "stringData": {"SLACK_TOKEN": "xoxb-test"}}),
    )
    .await;
    // Steps without `runner` (the Slack ones) run on `default`, which may read the
    // Slack Secret; the cluster steps on the Runner the param names.
    let _: playbook_operator::api::Runner = create(
        &ns,
        json!({"apiVersion": "stackpulse.io/v1", "kind": "Runner", "metadata": {"name": "default"},
               "spec": {"allowedSecrets": ["slack-ops"]}}),
    )
    .await;
    runner(&ns, "prod-eu", json!({})).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/playbooks/restart-crashlooping-pods.yaml");
    let mut pb = common::read_yaml_docs::<Playbook>(&path).remove(0);
    pb.metadata.namespace = Some(ns.name.clone());
    ns.api::<Playbook>()
        .create(&PostParams::default(), &pb)
        .await
        .expect("the example Playbook is accepted");
    let operator = Operator::start(&ns);
    let params =
        json!({"Namespace": "shop", "SlackChannel": "slack-ops", "ClusterRunner": "prod-eu"});
    execution(&ns, "restart-1", "restart-crashlooping-pods", params).await;
    let status = wait_final(&ns, "restart-1").await;
    let yaml = serde_yaml::to_string(&status).unwrap_or_default();
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{yaml}");
    for id in [
        "get-pods",
        "crashlooping",
        "slack-message",
        "get-events",
        "restart-pod",
        "check-health",
        "slack-message-2",
    ] {
        assert!(
            status
                .steps
                .iter()
                .any(|s| s.id.ends_with(id) && s.state == StepState::Succeeded),
            "step {id} ran: {yaml}"
        );
    }
    // The integration's template became the Secret's name in the Job.
    let job = step(&status, "group-1.slack-message").job_name.clone();
    let job = ns
        .api::<Job>()
        .get(&job.expect("slack-message names its Job"))
        .await
        .expect("the slack-message Job was created");
    let env_from = job
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.env_from)
        .unwrap_or_default();
    let names: Vec<_> = env_from
        .iter()
        .filter_map(|e| e.secret_ref.as_ref().map(|r| r.name.as_str()))
        .collect();
    assert_eq!(names, ["slack-ops"], "{env_from:?}");
    operator.stop().await;
    ns.cleanup().await;
}
