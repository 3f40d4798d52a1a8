//! The controller on the local control plane: playbooks really run, as Jobs whose
//! pods kwok "runs", with each step's log served by kwok through `pods/log`.
//!
//! The operator runs in process (`common::operator`), one per test namespace. The
//! Playbook and Runner `Ready` conditions are in `controller_e2e/ready.rs`.
//!
//! Needs a cluster: `make test-e2e`, or `make cluster-up` then
//! `cargo test --test controller_e2e`.

mod common;
#[path = "controller_e2e/ready.rs"]
mod ready;

use std::time::{Duration, Instant};

use common::TestNamespace;
use common::operator::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use playbook_operator::api::{Execution, ExecutionPhase, Playbook, Runner, StepState};
use serde_json::json;

/// The seed's Redis example end to end: three steps, outputs through the real log
/// path into status and into the next step's env, secrets only as references.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_example_runs_to_succeeded_with_outputs_and_no_secret_values() {
    let ns = setup("ctl-redis").await;
    let redis_secret = format!("redis-pw-{}", common::random_suffix());
    let teams_key = format!("https://teams.example/hook-{}", common::random_suffix());
    ns.set_container_log(
        "get-configmap-data",
        &step_log(
            "reading configmap",
            json!({"configmap": {"maxclients": "100"}}),
        ),
    )
    .await;
    ns.set_container_log(
        "get-redis-info",
        &step_log(
            "connected to redis",
            json!({"Clients": {"connected_clients": 7}}),
        ),
    )
    .await;
    ns.set_container_log(
        "display-high-level-redis-info",
        &step_log("message sent", json!({"sent": true})),
    )
    .await;
    let _: Secret = create(
        &ns,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "playbook-secrets"},
            "stringData": {"Redis_Secret": redis_secret, "Teams_Key": teams_key}
        }),
    )
    .await;
    runner(&ns, "prod", json!({})).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/playbooks/redis-incident-enrichment.yaml");
    let mut pb = common::read_yaml_docs::<Playbook>(&path).remove(0);
    pb.metadata.namespace = Some(ns.name.clone());
    let playbooks: Api<Playbook> = ns.api();
    playbooks
        .create(&PostParams::default(), &pb)
        .await
        .expect("the example Playbook is accepted");

    let operator = Operator::start(&ns);
    execution(
        &ns,
        "redis-1",
        "redis-incident-enrichment",
        json!({"RedisConnectionString": "redis-0.redis", "RedisPort": 6379}),
    )
    .await;
    let status = wait_final(&ns, "redis-1").await;
    assert_eq!(
        status.phase,
        ExecutionPhase::Succeeded,
        "{}",
        serde_yaml::to_string(&status).unwrap_or_default()
    );
    assert_eq!(
        step(&status, "get-configmap-data").outputs,
        Some(json!({"configmap": {"maxclients": "100"}}))
    );
    assert_eq!(
        step(&status, "get-redis-info").outputs,
        Some(json!({"Clients": {"connected_clients": 7}}))
    );
    let last = step(&status, "display-high-level-redis-info");
    assert_eq!(last.outputs, Some(json!({"sent": true})));
    assert!(
        status
            .steps
            .iter()
            .all(|s| s.state == StepState::Succeeded && s.attempt == 1 && s.exit_code == Some(0))
    );
    assert!(status.playbook.is_some(), "the run keeps its snapshot");

    // The second step's output reached the third step's env through the templates.
    let jobs = jobs_of_step(&ns, "display-high-level-redis-info").await;
    assert_eq!(jobs.len(), 1, "one Job per step attempt");
    let table = env_value(&jobs[0], "TEAMS_TABLE_DATA").unwrap_or_default();
    assert!(table.contains("\"7\""), "TEAMS_TABLE_DATA: {table}");
    // Each step's container is named after the step (so kwok served its own log).
    let container = jobs[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers[0].name.clone());
    assert_eq!(container.as_deref(), Some("display-high-level-redis-info"));

    // No secret value anywhere the operator writes.
    let all_jobs: Api<Job> = ns.api();
    let pods: Api<Pod> = ns.api();
    let events: Api<Event> = ns.api();
    let core_events: Api<CoreEvent> = ns.api();
    let executions: Api<Execution> = ns.api();
    let lp = ListParams::default();
    let mut written = vec![
        serde_json::to_string(&all_jobs.list(&lp).await.expect("Jobs").items),
        serde_json::to_string(&pods.list(&lp).await.expect("Pods").items),
        serde_json::to_string(&executions.list(&lp).await.expect("Executions").items),
    ];
    let events = events.list(&lp).await.expect("Events").items;
    // One Event per step's end, each naming its step and Job (not one series per
    // reason); a first attempt that started at once has no Event of its start.
    for s in &status.steps {
        let job = s.job_name.as_deref().expect("the step names its Job");
        let ended = format!("'{}' succeeded in ", s.id);
        let named = format!("(Job {job})");
        let started = format!("'{}' started", s.id);
        let wants: [(&str, &[&str], usize); 2] = [
            ("StepStarted", &[&started], 0),
            ("StepSucceeded", &[&ended, &named], 1),
        ];
        for (reason, saying, count) in wants {
            let about_step = events.iter().filter(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.note
                        .as_deref()
                        .is_some_and(|n| saying.iter().all(|part| n.contains(part)))
            });
            assert_eq!(
                about_step.count(),
                count,
                "{count} {reason} Event for step {}: {:#?}",
                s.id,
                events
                    .iter()
                    .map(|e| (&e.reason, &e.note, &e.series))
                    .collect::<Vec<_>>()
            );
        }
    }
    written.push(serde_json::to_string(&events));
    written.push(serde_json::to_string(
        &core_events.list(&lp).await.expect("Events").items,
    ));
    for text in written {
        let text = text.expect("serializes");
        for secret in [&redis_secret, &teams_key] {
            assert!(
                !text.contains(secret.as_str()),
                "secret value {secret} leaked"
            );
        }
    }
    operator.stop().await;
    ns.cleanup().await;
}

/// A step that exits non-zero fails the run, and the message says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_fails_the_execution_with_its_message() {
    let ns = setup("ctl-fail").await;
    runner(
        &ns,
        "broken",
        json!({
            common::EXIT_CODE_ANNOTATION: "3",
            common::MESSAGE_ANNOTATION: "ERR connection refused",
        }),
    )
    .await;
    ns.set_default_log("trying redis\n").await;
    playbook(
        &ns,
        "fails",
        json!([
            {"id": "ping", "image": "redis-cli", "runner": "broken"},
            {"id": "never", "image": "busybox"}
        ]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "fails-1", "fails", json!({})).await;
    let status = wait_final(&ns, "fails-1").await;
    assert_eq!(status.phase, ExecutionPhase::Failed, "{status:?}");
    let ping = step(&status, "ping");
    assert_eq!(ping.state, StepState::Failed);
    assert_eq!(ping.exit_code, Some(3));
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.contains("ping") && message.contains("exit code 3"),
        "{message}"
    );
    assert!(
        ping.message
            .as_deref()
            .is_some_and(|m| m.contains("ERR connection refused")),
        "{ping:?}"
    );
    assert_eq!(step(&status, "never").state, StepState::Skipped);
    assert!(jobs_of_step(&ns, "never").await.is_empty());
    operator.stop().await;
    ns.cleanup().await;
}

/// Attempt 1 fails (its Runner makes pods exit 3); the Runner is fixed during the
/// backoff; attempt 2 runs as a new Job and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_retried_as_a_new_job_and_succeeds() {
    let ns = setup("ctl-retry").await;
    runner(&ns, "flaky", json!({common::EXIT_CODE_ANNOTATION: "3"})).await;
    // Plain JSON (no end marker): what this test is about is the retry, not the log format.
    ns.set_container_log("fetch", &json!({"ok": true}).to_string())
        .await;
    playbook(
        &ns,
        "retries",
        json!([{
            "id": "fetch", "image": "curl", "runner": "flaky",
            "retries": {"limit": 2, "backoffSeconds": 3}
        }]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "retry-1", "retries", json!({})).await;
    wait_status(&ns, "retry-1", "retrying", Duration::from_secs(30), |s| {
        s.steps
            .iter()
            .any(|st| st.id == "fetch" && st.state == StepState::Retrying)
    })
    .await;
    let runners: Api<Runner> = ns.api();
    runners
        .patch(
            "flaky",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"annotations": null}})),
        )
        .await
        .expect("fixing the Runner");
    let status = wait_final(&ns, "retry-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    let fetch = step(&status, "fetch");
    assert_eq!(fetch.attempt, 2);
    assert_eq!(fetch.outputs, Some(json!({"ok": true})));
    let mut attempts: Vec<String> = jobs_of_step(&ns, "fetch")
        .await
        .iter()
        .filter_map(|j| {
            j.metadata
                .labels
                .as_ref()?
                .get("stackpulse.io/attempt")
                .cloned()
        })
        .collect();
    attempts.sort();
    assert_eq!(attempts, ["1", "2"], "exactly one Job per attempt");
    operator.stop().await;
    ns.cleanup().await;
}

/// `spec.cancel` deletes the running Job and ends the run as Cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_deletes_the_running_job() {
    let ns = setup("ctl-cancel").await;
    runner(&ns, "slow", json!({common::DURATION_ANNOTATION: "120s"})).await;
    ns.set_default_log("working\n").await;
    playbook(
        &ns,
        "long",
        json!([{"id": "wait", "image": "sleep", "runner": "slow"}]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "long-1", "long", json!({})).await;
    let running = wait_status(&ns, "long-1", "running", Duration::from_secs(30), |s| {
        s.steps
            .iter()
            .any(|st| st.state == StepState::Running && st.job_name.is_some())
    })
    .await;
    let job_name = step(&running, "wait").job_name.clone().unwrap_or_default();
    let jobs: Api<Job> = ns.api();
    let deadline = Instant::now() + Duration::from_secs(30);
    while jobs.get_opt(&job_name).await.ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "Job {job_name} never created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel(&ns, "long-1").await;
    let status = wait_final(&ns, "long-1").await;
    assert_eq!(status.phase, ExecutionPhase::Cancelled, "{status:?}");
    assert_eq!(step(&status, "wait").state, StepState::Cancelled);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match jobs.get_opt(&job_name).await.expect("reading the Job") {
            None => break,
            Some(j) if j.metadata.deletion_timestamp.is_some() => break,
            Some(_) => {}
        }
        assert!(Instant::now() < deadline, "Job {job_name} not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    operator.stop().await;
    ns.cleanup().await;
}

/// An Execution the controller cannot read (its status snapshot is garbage) is
/// logged and skipped: the watch goes on and the other Executions run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_execution_does_not_stop_the_others() {
    let ns = setup("ctl-malformed").await;
    ns.set_default_log(&json!({"ok": true}).to_string()).await;
    playbook(&ns, "one", json!([{"id": "only", "image": "busybox"}])).await;
    execution(&ns, "bad", "one", json!({})).await;
    // Through the untyped API: the typed one could not even read the answer.
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &kube::api::ApiResource::erase::<Execution>(&()),
    );
    // `status.playbook` is free-form for the API server, so this is accepted there.
    let garbage = json!({"status": {"phase": "Running", "playbook": {"steps": 5}}});
    raw.patch_status("bad", &PatchParams::default(), &Patch::Merge(&garbage))
        .await
        .expect("writing a malformed status");
    let operator = Operator::start(&ns);
    execution(&ns, "good", "one", json!({})).await;
    let status = wait_final(&ns, "good").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    let bad = raw.get("bad").await.expect("reading the bad Execution");
    assert_eq!(bad.data["status"], garbage["status"], "left as it was");
    operator.stop().await;
    ns.cleanup().await;
}

/// Polls (every 100 ms, up to 60 s) until the Execution is gone.
async fn wait_gone(ns: &TestNamespace, name: &str, why: &str) {
    let api: Api<Execution> = ns.api();
    let deadline = Instant::now() + Duration::from_secs(60);
    while api
        .get_opt(name)
        .await
        .expect("reading an Execution")
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "Execution {name} not deleted ({why}) within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `historyLimit` keeps the newest finished run per outcome and deletes the older
/// ones with their Jobs; `ttlSecondsAfterFinished` deletes a run once it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_executions_go_by_history_limit_and_ttl() {
    let ns = setup("ctl-history").await;
    ns.set_default_log("ok\n").await;
    playbook_spec(
        &ns,
        "quick",
        json!({
            "steps": [{"id": "check", "image": "busybox"}],
            "historyLimit": {"succeeded": 1}
        }),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "quick-1", "quick", json!({})).await;
    assert_eq!(
        wait_final(&ns, "quick-1").await.phase,
        ExecutionPhase::Succeeded
    );
    let first_jobs = jobs_of_step(&ns, "check").await;
    assert_eq!(first_jobs.len(), 1);

    execution(&ns, "quick-2", "quick", json!({})).await;
    assert_eq!(
        wait_final(&ns, "quick-2").await.phase,
        ExecutionPhase::Succeeded
    );
    wait_gone(&ns, "quick-1", "historyLimit.succeeded 1").await;
    let api: Api<Execution> = ns.api();
    assert!(
        api.get_opt("quick-2")
            .await
            .expect("reading quick-2")
            .is_some(),
        "the newest run is kept"
    );
    // The older run's Job goes with it (owner reference, garbage collector).
    let jobs: Api<Job> = ns.api();
    let old_job = first_jobs[0].metadata.name.clone().expect("a Job name");
    let deadline = Instant::now() + Duration::from_secs(60);
    while jobs
        .get_opt(&old_job)
        .await
        .expect("reading a Job")
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "Job {old_job} outlived its Execution"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    create::<Execution>(
        &ns,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Execution",
            "metadata": {"name": "short-lived"},
            "spec": {"playbookRef": {"name": "quick"}, "ttlSecondsAfterFinished": 2}
        }),
    )
    .await;
    let finished = wait_final(&ns, "short-lived").await;
    assert_eq!(finished.phase, ExecutionPhase::Succeeded);
    wait_gone(&ns, "short-lived", "ttlSecondsAfterFinished 2").await;
    operator.stop().await;
    ns.cleanup().await;
}
