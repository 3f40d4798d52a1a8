//! The triage rules of the catalogue's playbooks, as tables: over what the enrich
//! steps would report, each rule's `when` decides whether it runs, and the verdict
//! step names the cause (pods; then workloads, jobs, autoscalers and nodes).

use playbook_operator::api::{Phase, Playbook};
use playbook_operator::engine::template::{render, render_condition};
use serde_json::{Value, json};

use crate::common::catalogue_files::one;

/// The verdict the playbook's `verdict` step reports over these enrich outputs: each
/// triage rule runs (Succeeded) when its `when` holds, else is Skipped, and the
/// verdict step names the most specific rule that ran.
fn verdict(pb: &Playbook, steps: &Value) -> String {
    let mut ctx = json!({"steps": steps, "params": {}, "alert": {}});
    let rules = pb
        .spec
        .steps
        .iter()
        .filter(|s| s.step.phase == Phase::Triage && s.step.id != "verdict");
    for s in rules {
        let when = s.step.when.as_deref().expect("triage rules have a when");
        let holds =
            render_condition(when, &ctx).unwrap_or_else(|e| panic!("step {}: {e}", s.step.id));
        let advice = s.step.args.clone().unwrap_or_default()[1].clone();
        ctx["steps"][&s.step.id] = if holds {
            done(json!({"advice": advice.trim_start_matches("advice=")}))
        } else {
            serde_json::from_str(SKIPPED).expect("JSON")
        };
    }
    let step = pb
        .spec
        .steps
        .iter()
        .find(|s| s.step.id == "verdict")
        .expect("a verdict step");
    let args = step.step.args.clone().unwrap_or_default();
    let verdict = render(&args[0], &ctx).expect("the verdict renders");
    let advice = render(&args[1], &ctx).expect("the advice renders");
    assert!(advice.len() > "advice=".len() + 10, "{advice}");
    verdict.trim_start_matches("verdict=").to_string()
}

fn done(outputs: Value) -> Value {
    json!({"state": "Succeeded", "outputs": outputs, "exitCode": 0})
}
const SKIPPED: &str = r#"{"state": "Skipped", "outputs": null, "exitCode": null}"#;

#[test]
fn pod_triage_rules_name_the_cause() {
    let pod = |waiting: &str, last: &str, code: i64| {
        done(
            json!({"name": "p", "node": "n1", "ownerKind": "ReplicaSet", "ownerName": "rs",
        "waiting": waiting, "lastTerminated": last, "lastExitCode": code}),
        )
    };
    let events = |probes: i64| {
        done(
            json!({"probeFailures": probes, "failedScheduling": 0, "quotaExceeded": 0, "warnings": probes}),
        )
    };
    let node = |pressure: Value| done(json!({"pressure": pressure}));
    let skipped: Value = serde_json::from_str(SKIPPED).expect("JSON");
    let cases = [
        (
            "an app that exits 1",
            pod("CrashLoopBackOff", "Error", 1),
            events(0),
            node(json!([])),
            "ApplicationError",
        ),
        (
            "a memory limit",
            pod("CrashLoopBackOff", "OOMKilled", 137),
            events(0),
            node(json!([])),
            "OOMKilled",
        ),
        (
            "a missing image",
            pod("ImagePullBackOff", "", 0),
            events(0),
            skipped.clone(),
            "ImagePull",
        ),
        (
            "a missing Secret",
            pod("CreateContainerConfigError", "", 0),
            events(0),
            node(json!([])),
            "ConfigError",
        ),
        (
            "a failing liveness probe",
            pod("CrashLoopBackOff", "Error", 137),
            events(3),
            node(json!([])),
            "ProbeFailure",
        ),
        (
            "a node short of memory",
            pod("", "", 0),
            events(0),
            node(json!(["MemoryPressure"])),
            "NodePressure",
        ),
        (
            "nothing known",
            pod("", "", 0),
            events(0),
            node(json!([])),
            "Unknown",
        ),
    ];
    for entry in [
        "kube-pod-crash-looping",
        "kube-pod-not-ready",
        "kube-container-waiting",
    ] {
        let pb: Playbook = one(entry, "playbook.yaml", "Playbook");
        for (what, pod, events, node, want) in &cases {
            let got = verdict(&pb, &json!({"pod": pod, "events": events, "node": node}));
            assert_eq!(&got, want, "{entry}: {what}");
        }
    }
}

#[test]
fn workload_and_cluster_triage_rules_name_the_cause() {
    let pods = |waiting: &str, last: &str, unschedulable: bool| {
        done(json!({"waiting": waiting, "lastTerminated": last,
        "lastExitCode": if last.is_empty() { 0 } else { 1 }, "unschedulable": unschedulable, "stuckPod": "p-1"}))
    };
    let events = |quota: i64, scheduling: i64| {
        done(json!({"probeFailures": 0, "failedScheduling": scheduling, "quotaExceeded": quota}))
    };
    let deployment = |stuck: bool| done(json!({"progressDeadlineExceeded": stuck, "revision": 2}));
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "kube-deployment-replicas-mismatch",
            json!({"deployment": deployment(false), "pods": pods("ImagePullBackOff", "", false), "events": events(0, 0)}),
            "ImagePull",
        ),
        (
            "kube-deployment-replicas-mismatch",
            json!({"deployment": deployment(false), "pods": pods("", "", true), "events": events(0, 2)}),
            "Unschedulable",
        ),
        (
            "kube-deployment-replicas-mismatch",
            json!({"deployment": deployment(false), "pods": pods("", "", false), "events": events(1, 0)}),
            "QuotaExceeded",
        ),
        (
            "kube-deployment-rollout-stuck",
            json!({"deployment": deployment(true), "pods": pods("", "", false), "events": events(0, 0)}),
            "RolloutStuck",
        ),
        (
            "kube-statefulset-replicas-mismatch",
            json!({"pods": pods("", "OOMKilled", false), "events": events(0, 0)}),
            "OOMKilled",
        ),
        (
            "kube-job-failed",
            json!({"job": done(json!({"reason": "BackoffLimitExceeded"})), "pods": pods("", "Error", false)}),
            "ApplicationError",
        ),
        (
            "kube-job-failed",
            json!({"job": done(json!({"reason": "DeadlineExceeded"})), "pods": pods("", "", false)}),
            "DeadlineExceeded",
        ),
        (
            "kube-hpa-maxed-out",
            json!({"hpa": done(json!({"current": 5, "max": 5, "metricsUnavailable": false}))}),
            "AtMaxReplicas",
        ),
        (
            "kube-hpa-maxed-out",
            json!({"hpa": done(json!({"current": 2, "max": 5, "metricsUnavailable": true}))}),
            "MetricsUnavailable",
        ),
        (
            "kube-node-not-ready",
            json!({"node": done(json!({"readyReason": "NodeStatusUnknown", "networkUnavailable": false, "pressure": []}))}),
            "KubeletDown",
        ),
        (
            "kube-node-not-ready",
            json!({"node": done(json!({"readyReason": "KubeletNotReady", "networkUnavailable": false, "pressure": ["DiskPressure"]}))}),
            "NodePressure",
        ),
        (
            "kube-persistent-volume-filling-up",
            json!({"pvc": done(json!({"resizing": false})), "storage-class": done(json!({"expandable": true}))}),
            "Expandable",
        ),
        (
            "kube-persistent-volume-filling-up",
            json!({"pvc": done(json!({"resizing": false})), "storage-class": done(json!({"expandable": false}))}),
            "NotExpandable",
        ),
        (
            "kube-persistent-volume-filling-up",
            json!({"pvc": done(json!({"resizing": true})), "storage-class": done(json!({"expandable": true}))}),
            "ResizeInProgress",
        ),
        (
            "cpu-throttling-high",
            json!({"pod": done(json!({"limited": ["app"], "limitEqualsRequest": false})), "node": serde_json::from_str::<Value>(SKIPPED).expect("JSON")}),
            "CPULimitTooLow",
        ),
        (
            "cpu-throttling-high",
            json!({"pod": done(json!({"limited": ["app"], "limitEqualsRequest": true})), "node": done(json!({"pressure": []}))}),
            "CPULimitEqualsRequest",
        ),
        (
            "kube-quota-almost-full",
            json!({"quota": done(json!({"fullest": {"resource": "pods", "percent": 95}})), "events": events(0, 0)}),
            "AlmostFull",
        ),
        (
            "kube-quota-almost-full",
            json!({"quota": done(json!({"fullest": {"resource": "pods", "percent": 100}})), "events": events(2, 0)}),
            "QuotaRefusing",
        ),
    ];
    for (entry, steps, want) in cases {
        let pb: Playbook = one(entry, "playbook.yaml", "Playbook");
        assert_eq!(verdict(&pb, &steps), want, "{entry}: {steps}");
    }
}
