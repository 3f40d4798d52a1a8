//! What the observer makes of cached Jobs and Pods: terminated containers, Job
//! failures, which logs to read.

use super::*;
use crate::api::{ExecutionStatus, StepState, StepStatus};
use crate::engine::job::LABEL_EXECUTION_UID;
use crate::engine::slim;
use serde_json::json;

fn job(name: &str, uid: &str, container: &str, failed: Option<(&str, &str)>) -> Job {
    let conditions = failed.map(|(reason, message)| {
        json!([{"type": "Failed", "status": "True", "reason": reason, "message": message}])
    });
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": uid,
                     "labels": {LABEL_EXECUTION_UID: "e-uid"}},
        "spec": {"template": {"spec": {"containers": [{"name": container}]}}},
        "status": {"conditions": conditions},
    }))
    .expect("a Job")
}

fn pod(name: &str, job_uid: &str, container: &str, terminated: Option<i32>) -> Pod {
    let state = match terminated {
        Some(code) => json!({"terminated": {"exitCode": code, "reason": "Completed",
                                            "finishedAt": "2026-11-25T10:00:00Z"}}),
        None => json!({"running": {}}),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns",
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j",
                                          "uid": job_uid, "controller": true}]},
        "status": {"containerStatuses": [{"name": container, "image": "i", "imageID": "",
                                          "ready": false, "restartCount": 0, "state": state}]},
    }))
    .expect("a Pod")
}

fn execution(running_job: &str) -> Execution {
    let mut exec = Execution::new("run", Default::default());
    exec.metadata.namespace = Some("ns".into());
    exec.metadata.uid = Some("e-uid".into());
    exec.status = Some(ExecutionStatus {
        steps: vec![StepStatus {
            id: "get-info".into(),
            state: StepState::Running,
            attempt: 1,
            job_name: Some(running_job.into()),
            ..Default::default()
        }],
        ..Default::default()
    });
    exec
}

#[test]
fn a_terminated_step_container_is_seen_without_waiting_for_the_job() {
    let j = job("j", "job-uid", "get-info", None);
    let p = pod("j-abc", "job-uid", "get-info", Some(0));
    let (observed, log_at) = observe_job(&j, &[&p]);
    let t = observed.terminated.expect("terminated");
    assert_eq!(t.exit_code, 0);
    assert_eq!(t.reason.as_deref(), Some("Completed"));
    assert!(t.finished_at.is_some());
    assert_eq!(observed.failed, None);
    assert_eq!(log_at, Some(("j-abc".into(), "get-info".into())));
}

#[test]
fn a_running_pod_or_another_jobs_pod_shows_nothing_yet() {
    let j = job("j", "job-uid", "get-info", None);
    let running = pod("j-abc", "job-uid", "get-info", None);
    let other = pod("k-abc", "other-uid", "get-info", Some(0));
    let (observed, log_at) = observe_job(&j, &[&running, &other]);
    assert_eq!(observed.terminated, None);
    assert_eq!(log_at, None);
}

#[test]
fn a_failed_condition_is_a_job_failure() {
    let j = job(
        "j",
        "job-uid",
        "s",
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        )),
    );
    let (observed, _) = observe_job(&j, &[]);
    assert_eq!(
        observed.failed,
        Some(JobFailure {
            reason: "DeadlineExceeded".into(),
            message: "Job was active longer than specified deadline".into(),
        })
    );
}

#[test]
fn logs_are_read_only_for_the_current_job_of_a_running_step() {
    let current = job("j", "job-uid", "get-info", None);
    let old = job("j-old", "old-uid", "get-info", None);
    let p1 = pod("j-abc", "job-uid", "get-info", Some(0));
    let p2 = pod("j-old-abc", "old-uid", "get-info", Some(1));
    let cached = Cached {
        playbook: None,
        runners: BTreeMap::new(),
        jobs: &[&current, &old],
        pods: &[&p1, &p2],
    };
    let (input, reads) = plan_input(
        Full::of(&execution("j")).expect("not slimmed"),
        &cached,
        &Limits::default(),
    );
    assert_eq!(
        reads,
        [LogRead {
            job: "j".into(),
            pod: "j-abc".into(),
            container: "get-info".into(),
        }]
    );
    assert_eq!(input.jobs.len(), 2);
    assert_eq!(input.execution.uid, "e-uid");
    assert_eq!(input.execution.namespace, "ns");
}

#[test]
fn a_container_that_handed_over_a_termination_message_costs_no_log_read() {
    let j = job("j", "job-uid", "get-info", None);
    let mut p = pod("j-abc", "job-uid", "get-info", Some(0));
    let cases = [
        (Some("{\"ok\": true}"), false),
        (Some("  \n"), true),
        (None, true),
    ];
    for (message, read) in cases {
        let state = p
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut());
        let terminated = state.and_then(|cs| cs[0].state.as_mut()?.terminated.as_mut());
        terminated.expect("terminated").message = message.map(String::from);
        let cached = Cached {
            playbook: None,
            runners: BTreeMap::new(),
            jobs: &[&j],
            pods: &[&p],
        };
        let exec = execution("j");
        let (input, reads) =
            plan_input(Full::of(&exec).expect("whole"), &cached, &Limits::default());
        assert_eq!(!reads.is_empty(), read, "message {message:?}");
        let t = input.jobs["j"].terminated.as_ref().expect("terminated");
        assert_eq!(
            t.message.as_deref(),
            message,
            "the planner gets the message"
        );
    }
}

#[test]
fn the_live_playbook_is_passed_only_before_the_snapshot() {
    let pb = PlaybookSpec::default();
    let cached = Cached {
        playbook: Some(&pb),
        runners: BTreeMap::new(),
        jobs: &[],
        pods: &[],
    };
    let mut fresh = execution("j");
    fresh.status = None;
    let (input, _) = plan_input(
        Full::of(&fresh).expect("not slimmed"),
        &cached,
        &Limits::default(),
    );
    assert!(input.playbook.is_some());
    let mut started = execution("j");
    if let Some(s) = started.status.as_mut() {
        s.playbook = Some(PlaybookSpec::default());
    }
    let (input, _) = plan_input(
        Full::of(&started).expect("not slimmed"),
        &cached,
        &Limits::default(),
    );
    assert!(input.playbook.is_none());
}

#[test]
fn a_kubelet_400_is_retried_only_shortly_after_the_container_ended() {
    use crate::engine::plan::{ObservedJob, Terminated};
    use k8s_openapi::jiff::{SignedDuration, Timestamp};
    let ended = |ago: i64| ObservedJob {
        terminated: Some(Terminated {
            finished_at: Some(Timestamp::now() - SignedDuration::from_secs(ago)),
            ..Terminated::default()
        }),
        ..ObservedJob::default()
    };
    let mut input = PlanInput::default();
    input.jobs.insert("fresh".into(), ended(1));
    input
        .jobs
        .insert("old".into(), ended(LOG_GRACE.as_secs() as i64 + 5));
    input.jobs.insert(
        "undated".into(),
        ObservedJob {
            terminated: Some(Terminated::default()),
            ..ObservedJob::default()
        },
    );
    assert!(super::within_grace(&input, "fresh"));
    assert!(!super::within_grace(&input, "old"));
    assert!(
        !super::within_grace(&input, "undated"),
        "no end time: no grace, never an endless retry"
    );
    assert!(!super::within_grace(&input, "missing"));
}

#[test]
fn a_step_end_is_new_only_on_the_event_that_first_shows_it() {
    let running = pod("j-abc", "job-uid", "get-info", None);
    let ended = pod("j-abc", "job-uid", "get-info", Some(0));
    assert!(newly_ended(Some(&running), &ended));
    assert!(
        newly_ended(None, &ended),
        "created and ended between two events"
    );
    assert!(
        !newly_ended(Some(&ended), &ended),
        "a later update of an ended Pod"
    );
    assert!(!newly_ended(None, &running));
}

#[test]
fn the_step_container_is_the_first_one_not_a_sidecar() {
    let sidecar_ended: Pod = serde_json::from_value(json!({
        "metadata": {"name": "j-abc", "namespace": "ns"},
        "spec": {"containers": [{"name": "get-info"}, {"name": "proxy"}]},
        "status": {"containerStatuses": [
            {"name": "proxy", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0}}},
            {"name": "get-info", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
             "state": {"running": {}}}
        ]}
    }))
    .expect("a Pod");
    assert!(!step_container_terminated(&sidecar_ended));
}

/// A step Job as the API server returns it: the Job builder's pod template (env with
/// an earlier output in it, volumes, security, a sidecar) and a Failed condition.
fn whole_job() -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": "run-s2-1-0a1b2c3d", "namespace": "ns", "uid": "job-uid",
                     "labels": {LABEL_EXECUTION_UID: "e-uid", "stackpulse.io/step": "s2"},
                     "annotations": {"stackpulse.io/step-id": "s2"},
                     "ownerReferences": [{"apiVersion": "stackpulse.io/v1", "kind": "Execution",
                                          "name": "run", "uid": "e-uid", "controller": true}]},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 3600,
                 "template": {"metadata": {"labels": {LABEL_EXECUTION_UID: "e-uid"}},
                              "spec": pod_spec()}},
        "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                   "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]},
    }))
    .expect("a Job")
}

fn pod_spec() -> serde_json::Value {
    let env: Vec<_> = (0..20)
        .map(|i| json!({"name": format!("OUT_{i}"), "value": "x".repeat(200)}))
        .collect();
    json!({
        "restartPolicy": "Never", "serviceAccountName": "runner", "nodeName": "node-1",
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}],
        "volumes": [{"name": "parser-input", "configMap": {"name": "run-s1-out"}}],
        "containers": [
            {"name": "s2", "image": "busybox:1.36", "command": ["sh", "-c", "echo {}"], "env": env,
             "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"memory": "32Mi"}},
             "volumeMounts": [{"name": "parser-input", "mountPath": "/input"}]},
            {"name": "proxy", "image": "envoy", "resources": {"limits": {"memory": "1Gi"}}}
        ]
    })
}

/// The Job's pod in `status`, as the API server returns it.
fn whole_pod(name: &str, owner: Option<&str>, status: serde_json::Value) -> Pod {
    let owners = match owner {
        Some(uid) => json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "run-s2-1-0a1b2c3d",
                             "uid": uid, "controller": true}]),
        None => json!([{"apiVersion": "stackpulse.io/v1", "kind": "Execution", "name": "run",
                        "uid": "e-uid", "controller": true}]),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("{name}-uid"),
                     "creationTimestamp": "2026-11-25T10:00:00Z",
                     "labels": {LABEL_EXECUTION_UID: "e-uid"}, "ownerReferences": owners},
        "spec": pod_spec(),
        "status": status,
    }))
    .expect("a Pod")
}

#[test]
fn a_slimmed_job_and_pod_are_observed_as_the_whole_ones() {
    let container = |state: serde_json::Value| {
        json!({"name": "s2", "image": "busybox:1.36", "imageID": "", "ready": false,
               "restartCount": 0, "state": state})
    };
    let statuses = [
        json!({"phase": "Failed", "containerStatuses": [container(json!({"terminated":
            {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-11-25T10:00:05Z"}}))]}),
        json!({"phase": "Pending", "containerStatuses": [container(json!({"waiting":
            {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}))]}),
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/2 nodes are available"}]}),
        json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory",
               "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"}]}),
    ];
    for status in statuses {
        let job = whole_job();
        let pod = whole_pod("run-s2-1-0a1b2c3d-x7k2p", Some("job-uid"), status.clone());
        let bare = whole_pod("run-s2-1-0a1b2c3d", None, status.clone());
        let (mut slim_job, mut slim_pod, mut slim_bare) = (job.clone(), pod.clone(), bare.clone());
        slim::attempt::job(&mut slim_job);
        slim::attempt::pod(&mut slim_pod);
        slim::attempt::pod(&mut slim_bare);

        let whole = observe_job(&job, &[&pod]);
        assert_eq!(observe_job(&slim_job, &[&slim_pod]), whole, "{status}");
        assert_eq!(
            observe_bare_pod(&slim_bare),
            observe_bare_pod(&bare),
            "{status}"
        );
        assert_eq!(job_wake(&slim_job), job_wake(&job), "{status}");
        assert_eq!(pod_wake(&slim_pod), pod_wake(&pod), "{status}");
        assert_eq!(pod_wake(&slim_bare), pod_wake(&bare), "{status}");
        assert_eq!(
            observe_all(&[&slim_job], &[&slim_pod, &slim_bare], &Default::default()),
            observe_all(&[&job], &[&pod, &bare], &Default::default()),
            "{status}"
        );
    }
    let mut job = whole_job();
    slim::attempt::job(&mut job);
    let kept = serde_json::to_string(&job).expect("JSON");
    assert!(
        !kept.contains("xxxx") && !kept.contains("envoy") && !kept.contains("parser-input"),
        "env, other containers and volumes are not kept: {kept}"
    );
}

/// The Job the last reconcile created, not cached yet, read from the API server: its
/// Pod, cached and ended (the change that woke this reconcile), is observed with it,
/// so its log is read now. Observed alone, the end would be missed, and no later
/// change of the Job wakes the run.
#[tokio::test]
async fn an_unseen_job_is_observed_with_its_cached_ended_pod() {
    use futures::StreamExt;
    use kube::runtime::{reflector, watcher};

    let (client, _) = crate::controller::apply::tests::fake_client(|_, _| (500, json!({})));
    let mut ctx = crate::controller::apply::tests::context(client);
    let mut ended = pod("j-abc", "job-uid", "get-info", Some(0));
    ended
        .labels_mut()
        .insert(LABEL_EXECUTION_UID.into(), "e-uid".into());
    let (store, writer) = reflector::store::<Pod>();
    let index = Arc::new(crate::controller::index::ByExecution::default());
    let events = futures::stream::iter([Ok(watcher::Event::Apply(ended))]);
    index
        .reflector(writer, store.clone(), events)
        .collect::<Vec<_>>()
        .await;
    ctx.pods = store;
    ctx.pod_index = index;
    let exec = execution("j");
    let exec = Full::of(&exec).expect("not slimmed");

    let (_, reads) = from_caches(exec, &ctx, &Unseen::default());
    assert_eq!(reads, [], "without the Job, the ended Pod is nobody's");
    let unseen = Unseen {
        jobs: vec![job("j", "job-uid", "get-info", None)],
        pods: Vec::new(),
    };
    let (input, reads) = from_caches(exec, &ctx, &unseen);
    assert_eq!(
        reads,
        [LogRead {
            job: "j".into(),
            pod: "j-abc".into(),
            container: "get-info".into(),
        }]
    );
    assert!(input.jobs["j"].terminated.is_some(), "{:?}", input.jobs);
}
