//! What a planned Job runs as, the bare Pod made of it, and what a bare Pod means to
//! the planner.

use super::*;
use crate::api::{RunnerSpec, Step};
use crate::engine::context::InstanceId;
use crate::engine::job::{self, JobInput, LABEL_EXECUTION_UID};
use crate::engine::plan::health::Waiting;

fn planned(workload: Workload, timeout: Option<i64>) -> Job {
    let step = job::render_step(
        &Step {
            id: "get-info".into(),
            image: "example.com/info:1".into(),
            timeout_seconds: timeout,
            ..Default::default()
        },
        &serde_json::json!({}),
    )
    .expect("renders");
    let runner = RunnerSpec {
        workload,
        labels: [("team".to_string(), "sre".to_string())].into(),
        annotations: [("note".to_string(), "x".to_string())].into(),
        ..Default::default()
    };
    job::build_job(&JobInput {
        execution: "run",
        namespace: "ns",
        uid: "e-uid",
        playbook: "pb",
        instance: &InstanceId::top("get-info", None),
        attempt: 1,
        step: &step,
        runner: &runner,
    })
    .expect("builds")
}

#[test]
fn only_a_pod_runner_marks_its_jobs() {
    let job = planned(Workload::Job, None);
    assert_eq!(of(&job), Workload::Job);
    assert!(
        !job.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(ANNOTATION_WORKLOAD),
        "a Job-mode Job is what it always was"
    );
    assert_eq!(of(&planned(Workload::Pod, None)), Workload::Pod);
}

#[test]
fn the_bare_pod_keeps_name_owner_labels_security_and_the_deadline() {
    let job = planned(Workload::Pod, Some(120));
    let pod = bare_pod(&job).expect("a pod");
    assert_eq!(pod.metadata.name, job.metadata.name);
    assert_eq!(pod.metadata.namespace.as_deref(), Some("ns"));
    let owners = pod.metadata.owner_references.clone().unwrap_or_default();
    assert!(is_bare(&owners), "owned by the Execution: {owners:?}");
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    for (k, v) in [
        (LABEL_EXECUTION_UID, "e-uid"),
        ("team", "sre"),
        ("app.kubernetes.io/managed-by", "playbook-operator"),
    ] {
        assert_eq!(labels.get(k).map(String::as_str), Some(v), "{k}");
    }
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("note").map(String::as_str), Some("x"));
    assert_eq!(
        annotations.get(ANNOTATION_WORKLOAD).map(String::as_str),
        Some("Pod")
    );
    let spec = pod.spec.expect("spec");
    let template = job
        .spec
        .and_then(|s| s.template.spec)
        .expect("template spec");
    assert_eq!(spec.active_deadline_seconds, Some(120));
    assert_eq!(spec.security_context, template.security_context);
    assert_eq!(spec.containers, template.containers);
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
}

#[test]
fn a_jobs_pod_is_not_bare() {
    let job_owner = OwnerReference {
        kind: "Job".into(),
        controller: Some(true),
        ..Default::default()
    };
    let exec_owner = OwnerReference {
        kind: "Execution".into(),
        controller: Some(true),
        ..Default::default()
    };
    let not_controller = OwnerReference {
        controller: None,
        ..exec_owner.clone()
    };
    assert!(!is_bare(&[job_owner]));
    assert!(is_bare(&[exec_owner]));
    assert!(!is_bare(&[not_controller]));
    assert!(!is_bare(&[]));
}

fn facts(phase: &str, reason: Option<&str>) -> PodFacts {
    PodFacts {
        name: "run-get-info-1-x".into(),
        phase: phase.into(),
        reason: reason.map(String::from),
        message: reason.map(|_| "the kubelet's words".into()),
        ..Default::default()
    }
}

fn killed() -> Terminated {
    Terminated {
        exit_code: 137,
        reason: Some("Error".into()),
        ..Default::default()
    }
}

#[test]
fn a_bare_pod_looks_to_the_planner_as_a_job_and_its_pod_do() {
    let deadline = JobFailure {
        reason: "DeadlineExceeded".into(),
        message: "the kubelet's words".into(),
    };
    let pulling = PodFacts {
        waiting: Some(Waiting {
            reason: "ImagePullBackOff".into(),
            message: None,
        }),
        ..facts("Pending", None)
    };
    let deleting = PodFacts {
        deleting: true,
        ..facts("Running", None)
    };
    // (case, terminated, facts) → (terminated, failed, pod facts, deleting)
    let table: Vec<(&str, Option<Terminated>, PodFacts, ObservedJob)> = vec![
        (
            "running: judged by health",
            None,
            facts("Running", None),
            ObservedJob {
                pod: Some(facts("Running", None)),
                ..Default::default()
            },
        ),
        (
            "ended: the container's end",
            Some(killed()),
            facts("Failed", None),
            ObservedJob {
                terminated: Some(killed()),
                ..Default::default()
            },
        ),
        (
            "stopped at activeDeadlineSeconds: the Job's DeadlineExceeded, not exit 137",
            Some(killed()),
            facts("Failed", Some("DeadlineExceeded")),
            ObservedJob {
                failed: Some(deadline.clone()),
                ..Default::default()
            },
        ),
        (
            "stopped at the deadline before the container reported",
            None,
            facts("Failed", Some("DeadlineExceeded")),
            ObservedJob {
                failed: Some(deadline),
                ..Default::default()
            },
        ),
        (
            "evicted: health's eviction message",
            None,
            facts("Failed", Some("Evicted")),
            ObservedJob {
                pod: Some(facts("Failed", Some("Evicted"))),
                ..Default::default()
            },
        ),
        (
            "an image that does not pull: health's clock",
            None,
            pulling.clone(),
            ObservedJob {
                pod: Some(pulling),
                ..Default::default()
            },
        ),
        (
            "being deleted: someone stopped the attempt",
            None,
            deleting.clone(),
            ObservedJob {
                deleting: true,
                pod: Some(deleting),
                ..Default::default()
            },
        ),
    ];
    for (case, terminated, facts, want) in table {
        let got = observe_bare_pod(SeenPod {
            uid: Some("pod-uid".into()),
            terminated,
            facts,
            memory_limit: Some("64Mi".into()),
        });
        let want = ObservedJob {
            uid: Some("pod-uid".into()),
            memory_limit: Some("64Mi".into()),
            ..want
        };
        assert_eq!(got, want, "{case}");
    }
}
