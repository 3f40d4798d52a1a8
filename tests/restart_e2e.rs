//! Crash safety end to end: the operator binary, killed with SIGKILL again and again
//! in the middle of a 4-step run and restarted each time, still finishes the run with
//! exactly one Job per step attempt and every output passed on.
//!
//! Unlike the other controller tests the operator runs as a child process (the real
//! `playbook-operator run`), because only a process can be SIGKILLed: no graceful
//! shutdown, no destructors, in-flight requests cut wherever they are.
//!
//! Needs a cluster: `make test-e2e`, or `make cluster-up` then
//! `cargo test --test restart_e2e`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestNamespace;
use common::operator::*;
use common::process::OperatorProcess;
use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use playbook_operator::api::{ExecutionPhase, StepState};
use serde_json::json;

/// Every Job uid ever seen, per step label and Job name, from a watch that runs for
/// the whole test: a Job deleted and created again under the same name shows up as
/// a second uid even if the test never lists it in between.
fn record_jobs(ns: &TestNamespace) -> (Arc<Mutex<JobsSeen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(JobsSeen::new()));
    let api: Api<Job> = ns.api();
    let sink = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let jobs = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects();
        futures::pin_mut!(jobs);
        while let Some(job) = jobs.next().await {
            let Ok(job) = job else { continue };
            let labels = job.metadata.labels.clone().unwrap_or_default();
            let step = labels
                .get("stackpulse.io/step")
                .cloned()
                .unwrap_or_default();
            let name = job.metadata.name.clone().unwrap_or_default();
            let uid = job.metadata.uid.clone().unwrap_or_default();
            let mut seen = sink.lock().unwrap_or_else(|p| p.into_inner());
            seen.entry(step)
                .or_default()
                .entry(name)
                .or_default()
                .insert(uid);
        }
    });
    (seen, task)
}

/// step label -> Job name -> uids.
type JobsSeen = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Polls until the step has a Job.
async fn wait_job(ns: &TestNamespace, step: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if !jobs_of_step(ns, step).await.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "step {step}: no Job within 90 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A validating admission webhook that fails closed for `step`'s Jobs in `ns`: its
/// address answers nothing, so the API server refuses each create with a 500
/// ("failed calling webhook"), an error the operator retries (unlike a refusal such as
/// a quota's, which fails the step). Cluster-scoped, so the caller deletes it.
async fn unreachable_webhook_for(
    ns: &TestNamespace,
    step: &str,
) -> (Api<ValidatingWebhookConfiguration>, String) {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(ns.client.clone());
    let name = format!("hold-jobs-{}", ns.name);
    let config: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": "hold.restart-e2e.stackpulse.io",
            // Port 9 on loopback: nothing listens, so every call is refused at once.
            "clientConfig": {"url": "https://127.0.0.1:9/"},
            "rules": [{"apiGroups": ["batch"], "apiVersions": ["v1"],
                       "operations": ["CREATE"], "resources": ["jobs"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns.name}},
            "objectSelector": {"matchLabels": {"stackpulse.io/step": step}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 2
        }]
    }))
    .expect("a webhook configuration");
    api.create(&Default::default(), &config)
        .await
        .expect("creating the webhook configuration");
    (api, name)
}

const STEPS: [&str; 4] = ["s1", "s2", "s3", "s4"];

/// Four steps of about 1.5 s each, each taking the previous one's output in its env.
/// The operator is SIGKILLed at five moments and restarted each time: just after a
/// Job was created; down for longer than a pod lives, so a container ends unseen;
/// while a step's pod runs; after a step ended and before the status that records its
/// output (the next step's Job create, which goes first, held failing by an admission
/// webhook that cannot be reached); while it is still starting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_operator_restarts_and_finishes_with_one_job_per_attempt() {
    let ns = setup("restart").await;
    runner(
        &ns,
        "default",
        json!({common::DURATION_ANNOTATION: "1500ms"}),
    )
    .await;
    for (i, id) in STEPS.iter().enumerate() {
        let output = json!({ format!("out{}", i + 1): format!("v{}", i + 1) });
        ns.set_container_log(id, &step_log(&format!("{id} working"), output))
            .await;
    }
    let steps: Vec<_> = STEPS
        .iter()
        .enumerate()
        .map(|(i, id)| match i {
            0 => json!({"id": id, "image": "busybox"}),
            _ => json!({"id": id, "image": "busybox",
                        "env": {"IN": format!("{{{{ .steps.s{i}.outputs.out{i} }}}}")}}),
        })
        .collect();
    playbook(&ns, "four", json!(steps)).await;
    let (seen, recorder) = record_jobs(&ns);
    // The API server fails s4's Job create (a 500) until the test lifts this.
    let (webhooks, hold) = unreachable_webhook_for(&ns, "s4").await;

    let mut operator = OperatorProcess::start(&ns, &[]);
    execution(&ns, "four-1", "four", json!({})).await;

    wait_job(&ns, "s1").await;
    operator.kill("just after s1's Job was created");
    operator.restart();

    wait_job(&ns, "s2").await;
    operator.kill("just after s2's Job was created");
    // Down for longer than s2's pod lives: the next incarnation finds the container
    // ended and must read its log then.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    operator.restart();

    wait_job(&ns, "s3").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    operator.kill("while s3's pod runs");
    operator.restart();

    // s3 ends, s4's Job create (before the status that records s3's output and says
    // s4 runs) fails at the webhook: the state a crash between the two leaves behind.
    // The next incarnation must read s3's log again.
    operator.wait_log("failed calling webhook").await;
    operator.kill("with s3 ended, its output not in status, and s4's Job refused");
    let held = wait_status(&ns, "four-1", "s3 Running", Duration::from_secs(5), |s| {
        s.steps
            .iter()
            .any(|st| st.id == "s3" && st.state == StepState::Running)
    })
    .await;
    assert_eq!(
        step(&held, "s3").outputs,
        None,
        "s3's output not recorded yet"
    );
    assert_eq!(step(&held, "s4").state, StepState::Pending);
    assert!(
        jobs_of_step(&ns, "s4").await.is_empty(),
        "s4's Job create failed"
    );
    webhooks
        .delete(&hold, &Default::default())
        .await
        .expect("deleting the webhook configuration");
    operator.restart();

    tokio::time::sleep(Duration::from_millis(300)).await;
    operator.kill("while starting (caches listing)");
    operator.restart();

    let status = wait_status(&ns, "four-1", "final", Duration::from_secs(120), |s| {
        s.phase.is_final()
    })
    .await;
    assert_eq!(
        status.phase,
        ExecutionPhase::Succeeded,
        "{}",
        serde_yaml::to_string(&status).unwrap_or_default()
    );

    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (i, id) in STEPS.iter().enumerate() {
        let s = step(&status, id);
        assert_eq!(
            (s.state, s.attempt, s.exit_code),
            (StepState::Succeeded, 1, Some(0)),
            "{s:?}"
        );
        let n = i + 1;
        assert_eq!(
            s.outputs,
            Some(json!({ format!("out{n}"): format!("v{n}") })),
            "{id}"
        );
        let jobs = jobs_of_step(&ns, id).await;
        assert_eq!(jobs.len(), 1, "one Job for {id}: {jobs:?}");
        let job = &jobs[0];
        let labels = job.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("stackpulse.io/attempt").map(String::as_str),
            Some("1")
        );
        assert_eq!(job.metadata.name, s.job_name, "{id}");
        let ever = seen.get(*id).cloned().unwrap_or_default();
        let uid = job.metadata.uid.clone().unwrap_or_default();
        assert_eq!(
            ever,
            BTreeMap::from([(
                job.metadata.name.clone().unwrap_or_default(),
                BTreeSet::from([uid])
            )]),
            "step {id}: Jobs ever seen (name -> uids); more than one means a Job was duplicated or recreated"
        );
        if i > 0 {
            assert_eq!(
                env_value(job, "IN"),
                Some(format!("v{i}")),
                "{id} got s{i}'s output"
            );
        }
    }
    recorder.abort();
    drop(operator);
    ns.cleanup().await;
}
