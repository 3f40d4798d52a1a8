//! The order of side effects, against a fake API server that records each request:
//! creates (409 = ours), then the status with their uids (before the creates when it
//! claims a remediation), deletes (404 = done), Events; an error stops what comes
//! after it.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use kube::runtime::reflector;
use serde_json::json;

use super::*;
use crate::api::{ExecutionPhase, ExecutionSpec, RemediationRecord, StepState, StepStatus};
use crate::controller::{Config, Context};

pub(in crate::controller) type Log = Arc<Mutex<Vec<String>>>;

/// A client whose API server answers from `answer(method, path)` and logs
/// `METHOD path` for every request.
pub(in crate::controller) fn fake_client(
    answer: fn(&str, &str) -> (u16, serde_json::Value),
) -> (kube::Client, Log) {
    let log: Log = Arc::default();
    let seen = Arc::clone(&log);
    let service = tower::service_fn(move |req: Request<Body>| {
        let (method, path) = (req.method().to_string(), req.uri().path().to_string());
        seen.lock().unwrap().push(format!("{method} {path}"));
        let (code, body) = answer(&method, &path);
        let response = Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string().into_bytes()));
        async move { response }
    });
    (kube::Client::new(service, "ns"), log)
}

pub(in crate::controller) fn context(client: kube::Client) -> Context {
    Context {
        client,
        config: Config::default(),
        jobs: reflector::store().0,
        pods: reflector::store().0,
        job_index: Default::default(),
        pod_index: Default::default(),
        playbooks: reflector::store().0,
        runners: reflector::store().0,
        executions: reflector::store().0,
        caches_ready: tokio::sync::watch::channel(true).1,
        failures: Default::default(),
        spilled: Default::default(),
        remediations: Default::default(),
        refusals: Default::default(),
        access: Default::default(),
        echoes: Default::default(),
    }
}

fn execution() -> Execution {
    let mut exec = Execution::new("run", ExecutionSpec::default());
    exec.metadata.namespace = Some("ns".into());
    exec.metadata.uid = Some("e-uid".into());
    exec
}

fn job(name: &str) -> Box<Job> {
    let owner = json!({"apiVersion": "stackpulse.io/v1", "kind": "Execution", "name": "run", "uid": "e-uid"});
    Box::new(
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "ns", "ownerReferences": [owner]}}),
        )
        .unwrap(),
    )
}

pub(in crate::controller) fn status(code: u16, reason: &str) -> serde_json::Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": reason})
}

/// Answers like an API server where Job `b` exists already and Job `c` is gone.
fn cluster(method: &str, path: &str) -> (u16, serde_json::Value) {
    match (method, path) {
        ("POST", p) if p.ends_with("/jobs") => {
            (201, json!({"metadata": {"name": "a", "uid": "uid-a"}}))
        }
        // A list by name (the operator may list Jobs, never get one).
        ("GET", p) if p.ends_with("/jobs") => {
            let mut found = serde_json::to_value(*job("a")).unwrap();
            found["metadata"]["uid"] = json!("uid-a");
            let list = json!({"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": [found]});
            (200, list)
        }
        ("DELETE", p) if p.ends_with("/jobs/c") => (404, status(404, "NotFound")),
        ("PATCH", _) => (200, serde_json::to_value(execution()).unwrap()),
        ("POST", p) if p.ends_with("/events") => (201, json!({"metadata": {"name": "e"}})),
        _ => (500, status(500, "InternalError")),
    }
}

/// A plan that starts step `a` as Job `a` (the status changed), or that only asks
/// for Job `a` again (it did not).
fn plan(changed: bool) -> Plan {
    let running = StepStatus {
        id: "a".into(),
        state: StepState::Running,
        job_name: Some("a".into()),
        ..Default::default()
    };
    Plan {
        status: ExecutionStatus {
            phase: if changed {
                ExecutionPhase::Running
            } else {
                ExecutionPhase::Pending
            },
            steps: if changed { vec![running] } else { vec![] },
            ..Default::default()
        },
        intents: vec![
            Intent::Event {
                type_: EventType::Normal,
                reason: "StepStarted".into(),
                message: "step 'a' started".into(),
            },
            Intent::CreateJob(job("a")),
            Intent::DeleteJob { name: "c".into() },
        ],
        requeue_after: None,
    }
}

#[tokio::test]
async fn jobs_then_the_status_with_their_uids_then_deletes_then_events() {
    let (client, log) = fake_client(cluster);
    let ctx = context(client);
    let mut plan = plan(true);
    let again = apply(&ctx, &execution(), &ExecutionStatus::default(), &mut plan)
        .await
        .expect("applies; a missing Job to delete is fine");
    assert!(!again, "nothing to plan again for");
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "POST /apis/batch/v1/namespaces/ns/jobs",
            "PATCH /apis/stackpulse.io/v1/namespaces/ns/executions/run/status",
            "DELETE /apis/batch/v1/namespaces/ns/jobs/c",
            "POST /apis/events.k8s.io/v1/namespaces/ns/events",
        ]
    );
    assert_eq!(
        plan.status.steps[0].job_uid.as_deref(),
        Some("uid-a"),
        "written with the uid"
    );
    let metrics = ctx.config.metrics.render();
    assert!(
        metrics.contains("\nplaybook_jobs_created_total 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_unchanged_status_is_not_written_and_an_existing_job_is_ours() {
    fn job_exists(method: &str, path: &str) -> (u16, serde_json::Value) {
        match (method, path) {
            ("POST", p) if p.ends_with("/jobs") => (409, status(409, "AlreadyExists")),
            _ => cluster(method, path),
        }
    }
    let (client, log) = fake_client(job_exists);
    let ctx = context(client);
    let again = apply(
        &ctx,
        &execution(),
        &ExecutionStatus::default(),
        &mut plan(false),
    )
    .await
    .expect("409 on create means the Job is ours");
    assert!(
        again,
        "planned again at once: the Job found may have ended already"
    );
    let log = log.lock().unwrap().clone();
    assert!(log.iter().all(|l| !l.starts_with("PATCH")), "{log:?}");
    assert_eq!(log.len(), 4, "{log:?}");
    let metrics = ctx.config.metrics.render();
    assert!(
        metrics.contains("\nplaybook_jobs_created_total 0\n"),
        "a 409 is not a creation: {metrics}"
    );

    // Found after a restart, the status that says its step runs gets its uid, when
    // it belongs to this run.
    let (client, log) = fake_client(job_exists);
    let ctx = context(client);
    let mut plan = plan(true);
    apply(&ctx, &execution(), &ExecutionStatus::default(), &mut plan)
        .await
        .expect("applies");
    assert_eq!(plan.status.steps[0].job_uid.as_deref(), Some("uid-a"));
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log[1], "GET /apis/batch/v1/namespaces/ns/jobs",
        "a list by name: the chart grants no get on Jobs: {log:?}"
    );
    let mut foreign = plan.clone();
    foreign.status.steps[0].job_uid = None;
    let Intent::CreateJob(planned) = &mut foreign.intents[1] else {
        panic!("the plan creates Job a");
    };
    planned.metadata.owner_references = None;
    let (client, _) = fake_client(job_exists);
    apply(
        &context(client),
        &execution(),
        &ExecutionStatus::default(),
        &mut foreign,
    )
    .await
    .expect("applies");
    assert_eq!(
        foreign.status.steps[0].job_uid, None,
        "not planned by this run: no uid"
    );
}

/// A status that claims a remediation goes before the Job (the other runs count it
/// before the step runs), and again with the Job's uid.
#[tokio::test]
async fn a_remediation_claim_is_written_before_its_job_and_again_with_the_uid() {
    let (client, log) = fake_client(cluster);
    let ctx = context(client);
    let mut plan = plan(true);
    plan.status.remediation = Some(RemediationRecord {
        key: "k".into(),
        at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::now(),
        )),
        held: None,
    });
    apply(&ctx, &execution(), &ExecutionStatus::default(), &mut plan)
        .await
        .expect("applies");
    let log = log.lock().unwrap().clone();
    let status = "PATCH /apis/stackpulse.io/v1/namespaces/ns/executions/run/status";
    assert_eq!(
        log[..3],
        [status, "POST /apis/batch/v1/namespaces/ns/jobs", status]
    );
    assert_eq!(plan.status.steps[0].job_uid.as_deref(), Some("uid-a"));
}

#[tokio::test]
async fn a_failed_create_stops_before_deletes_and_events() {
    fn create_fails(method: &str, path: &str) -> (u16, serde_json::Value) {
        match (method, path) {
            ("POST", p) if p.ends_with("/jobs") => (500, status(500, "InternalError")),
            _ => cluster(method, path),
        }
    }
    let (client, log) = fake_client(create_fails);
    let ctx = context(client);
    let err = apply(
        &ctx,
        &execution(),
        &ExecutionStatus::default(),
        &mut plan(true),
    )
    .await
    .expect_err("a 500 on create is an error");
    assert_eq!(err.metric_label(), "create_job");
    assert!(!err.is_user_error());
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 1, "the create only, no status: {log:?}");
}

#[tokio::test]
async fn a_create_refused_for_good_is_recorded_for_the_step_and_the_rest_goes_on() {
    fn create_refused(method: &str, path: &str) -> (u16, serde_json::Value) {
        match (method, path) {
            ("POST", p) if p.ends_with("/jobs") => (422, status(422, "Invalid")),
            _ => cluster(method, path),
        }
    }
    let (client, log) = fake_client(create_refused);
    let ctx = context(client);
    let refused = apply(
        &ctx,
        &execution(),
        &ExecutionStatus::default(),
        &mut plan(true),
    )
    .await
    .expect("a 422 is the step's failure, not the reconcile's");
    assert!(refused, "plan again at once");
    assert_eq!(
        ctx.refusals.take("ns", "a").as_deref(),
        Some(
            "the API server refused to create Job a (422 Invalid): Invalid: fix the step or its Runner"
        )
    );
    assert_eq!(ctx.refusals.take("ns", "a"), None, "read once");
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 4, "deletes and events still go: {log:?}");
}

#[test]
fn the_status_patch_names_the_kind_and_carries_the_whole_status() {
    let status = ExecutionStatus {
        phase: ExecutionPhase::Running,
        ..Default::default()
    };
    let patch = status_patch::<Execution>(&status);
    assert_eq!(patch["apiVersion"], "stackpulse.io/v1");
    assert_eq!(patch["kind"], "Execution");
    assert_eq!(patch["status"]["phase"], "Running");
}

#[test]
fn events_carry_type_reason_and_a_bounded_note() {
    let intent = Intent::Event {
        type_: EventType::Warning,
        reason: "StepFailed".into(),
        message: "é".repeat(600),
    };
    let event = to_event(&intent, &execution(), "pod-1", Timestamp::UNIX_EPOCH).expect("an event");
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.reason.as_deref(), Some("StepFailed"));
    assert_eq!(event.reporting_controller.as_deref(), Some(FIELD_MANAGER));
    assert_eq!(event.reporting_instance.as_deref(), Some("pod-1"));
    let regarding = event.regarding.expect("regarding");
    assert_eq!(
        (
            regarding.kind.as_deref(),
            regarding.name.as_deref(),
            regarding.uid.as_deref()
        ),
        (Some("Execution"), Some("run"), Some("e-uid"))
    );
    let note = event.note.unwrap_or_default();
    assert!(
        note.len() <= MAX_NOTE && note.ends_with('…'),
        "{}",
        note.len()
    );
    assert_eq!(
        to_event(
            &Intent::DeleteJob { name: "j".into() },
            &execution(),
            "i",
            Timestamp::UNIX_EPOCH
        )
        .map(|e| e.reason),
        None
    );
}

/// Each transition is its own Event (kube-runtime's Recorder would fold every
/// StepStarted into one series); the same transition again has the same name.
#[test]
fn event_names_follow_the_transition() {
    let event = |reason: &str, message: &str| {
        let intent = Intent::Event {
            type_: EventType::Normal,
            reason: reason.into(),
            message: message.into(),
        };
        to_event(&intent, &execution(), "i", Timestamp::UNIX_EPOCH)
            .and_then(|e| e.metadata.name)
            .expect("a named event")
    };
    let s1 = event("StepStarted", "step 's1' started");
    assert!(s1.starts_with("run."), "{s1}");
    assert_ne!(s1, event("StepStarted", "step 's2' started"));
    assert_ne!(s1, event("StepSucceeded", "step 's1' started"));
    assert_eq!(s1, event("StepStarted", "step 's1' started"));
    let mut long = execution();
    long.metadata.name = Some("x".repeat(253));
    let intent = Intent::Event {
        type_: EventType::Normal,
        reason: "R".into(),
        message: "m".into(),
    };
    let name = to_event(&intent, &long, "i", Timestamp::UNIX_EPOCH)
        .and_then(|e| e.metadata.name)
        .expect("a name");
    assert!(name.len() <= 253, "{}", name.len());
}
