use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::api::{ExecutionPhase, RemediationLimit};
use crate::engine::page::{Access, ListFilter, list};
use crate::engine::{ledger, limits, notify};

const NOW: &str = "2026-11-25T12:10:00Z";

/// A run as the API server returns it: managedFields, kubectl's copy, an alert, a
/// snapshot, outputs, a plan, a remediation and a chat record.
fn run(phase: ExecutionPhase) -> Execution {
    let outputs = json!({"items": [{"pod": "redis-0", "ready": true}], "checked": 1});
    serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Execution",
        "metadata": {
            "name": "r1", "namespace": "prod", "uid": "u1", "generation": 2,
            "creationTimestamp": "2026-11-25T12:01:31Z",
            "labels": {"stackpulse.io/alert": "4c4b8a1f5e2d9c70"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"spec\": {}}",
                "stackpulse.io/scheduled-at": "2026-11-25T12:01:00Z"
            },
            "managedFields": [{"manager": "playbook-operator", "operation": "Apply"}]
        },
        "spec": {
            "playbookRef": {"name": "redis"},
            "params": {"Namespace": "prod"},
            "triggerRef": {"name": "redis-down"},
            "requestedBy": "system:serviceaccount:ops:playbook-operator",
            "approvals": [{"step": "restart", "user": "alice", "planHash": "abc"}],
            "alert": {
                "id": "4c4b8a1f5e2d9c70",
                "status": "firing",
                "labels": {"alertname": "RedisDown", "instance": "redis.prod.svc"},
                "annotations": {"summary": "Redis is down", "description": "down for 1 minute"},
                "startsAt": "2026-11-25T12:01:30.123Z",
                "generatorURL": "http://prometheus.monitoring:9090/graph"
            }
        },
        "status": {
            "phase": phase,
            "message": "done",
            "severity": "critical",
            "observedGeneration": 2,
            "startedAt": "2026-11-25T12:01:32Z",
            "finishedAt": "2026-11-25T12:02:40Z",
            "playbook": {
                "steps": [{"id": "info", "image": "redis-info"}, {"id": "restart", "image": "r"}],
                "notify": {"channel": "ops"},
                "limits": {"remediations": {"max": 1, "perSeconds": 3600}}
            },
            "steps": [
                {"id": "info", "state": "Succeeded", "attempt": 1, "jobName": "r1-info-1",
                 "exitCode": 0, "outputs": outputs},
                {"id": "restart", "phase": "remediate", "state": "Succeeded", "attempt": 1,
                 "jobName": "r1-restart-1", "outputs": outputs,
                 "plan": {"hash": "abc", "image": "r", "env": [{"name": "A", "value": "1"}]}}
            ],
            "finally": [{"id": "unmute", "state": "Succeeded", "attempt": 1, "outputs": outputs}],
            "remediation": {"key": "prod", "at": "2026-11-25T12:02:00Z"},
            "dryRun": [{"id": "info", "verdict": "Runs"}],
            "notify": {"channel": "ops", "messageTs": "1.2", "digest": "d"}
        }
    }))
    .expect("a valid Execution")
}

/// `Execution` has no `PartialEq` (kube's generated type): compared as JSON.
fn json(e: &Execution) -> serde_json::Value {
    serde_json::to_value(e).expect("serializes")
}

fn slimmed(mut e: Execution) -> Execution {
    slim(&mut e);
    e
}

fn without_managed_fields(mut e: Execution) -> Execution {
    e.metadata.managed_fields = None;
    if let Some(a) = e.metadata.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    e
}

const RUNNING: [ExecutionPhase; 3] = [
    ExecutionPhase::Pending,
    ExecutionPhase::Running,
    ExecutionPhase::WaitingApproval,
];
const FINISHED: [ExecutionPhase; 4] = [
    ExecutionPhase::Succeeded,
    ExecutionPhase::Failed,
    ExecutionPhase::Cancelled,
    ExecutionPhase::DryRun,
];

#[test]
fn a_running_run_is_kept_whole_but_its_managed_fields() {
    for phase in RUNNING {
        let full = run(phase);
        let cached = slimmed(full.clone());
        assert_eq!(
            json(&cached),
            json(&without_managed_fields(full)),
            "{phase:?}"
        );
        assert!(!is_slim(&cached), "{phase:?}");
        assert!(
            Full::of(&cached).is_some(),
            "{phase:?}: the controller plans it"
        );
    }
    let mut new = run(ExecutionPhase::Pending);
    new.status = None;
    assert_eq!(
        json(&slimmed(new.clone())),
        json(&without_managed_fields(new))
    );
}

#[test]
fn a_finished_run_drops_outputs_plans_snapshot_params_and_most_of_its_alert() {
    for phase in FINISHED {
        let cached = slimmed(run(phase));
        let status = cached.status.as_ref().expect("status kept");
        let steps: Vec<_> = status.steps.iter().chain(&status.finally).collect();
        assert!(
            steps
                .iter()
                .all(|s| s.outputs.is_none() && s.plan.is_none())
        );
        assert_eq!(
            steps
                .iter()
                .map(|s| s.job_name.as_deref())
                .collect::<Vec<_>>(),
            [Some("r1-info-1"), Some("r1-restart-1"), None],
            "{phase:?}: the steps' Jobs are kept"
        );
        assert!(status.dry_run.is_empty());
        let snapshot = status.playbook.clone().expect("still a started run");
        assert_eq!(
            serde_json::to_value(&snapshot).ok(),
            Some(json!({"steps": [], "notify": {"channel": "ops"}})),
            "{phase:?}: the snapshot keeps the chat channel only"
        );
        assert_eq!(cached.spec.params, None);
        assert_eq!(
            cached.spec.alert,
            Some(json!({
                "id": "4c4b8a1f5e2d9c70",
                "labels": {"alertname": "RedisDown"},
                "annotations": {"summary": "Redis is down"},
                "startsAt": "2026-11-25T12:01:30.123Z"
            }))
        );
        assert_eq!(cached.metadata.managed_fields, None);
        let annotations: Vec<&str> = cached
            .metadata
            .annotations
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(annotations, [MARK, "stackpulse.io/scheduled-at"]);
        assert!(is_slim(&cached));
        assert!(Full::of(&cached).is_none(), "{phase:?}: never planned from");
    }
}

#[test]
fn the_readers_of_a_finished_run_read_the_same_from_the_slimmed_one() {
    let limit = RemediationLimit {
        max: 1,
        per_seconds: 3600,
        key: String::new(),
    };
    let now: Timestamp = NOW.parse().expect("a time");
    for phase in FINISHED {
        let full = run(phase);
        let cached = slimmed(full.clone());
        let rows = |e: &Execution| {
            list(
                &[e],
                &Access::from_answers(true, []),
                &ListFilter::default(),
                now,
                10,
            )
        };
        assert_eq!(rows(&cached), rows(&full), "{phase:?}: the page's list");
        let url = Some("https://pbo.example.com");
        assert_eq!(
            notify::view(&cached, url),
            notify::view(&full, url),
            "{phase:?}: chat"
        );
        assert_eq!(
            ledger::alert_to_keep(&cached, now),
            ledger::alert_to_keep(&full, now),
            "{phase:?}: the Trigger's pruned alert"
        );
        assert_eq!(
            ledger::claim_to_keep(&cached, &limit, now.as_second()),
            ledger::claim_to_keep(&full, &limit, now.as_second()),
            "{phase:?}: the Playbook's ledger"
        );
        assert_eq!(
            limits::recorded([&cached], "prod", "redis"),
            limits::recorded([&full], "prod", "redis"),
            "{phase:?}: remediation counts"
        );
        let history = |e: &Execution| {
            let s = e.status.as_ref().map(|s| (s.phase, s.finished_at.clone()));
            (
                s,
                e.metadata.creation_timestamp.clone(),
                e.spec.ttl_seconds_after_finished,
            )
        };
        assert_eq!(
            history(&cached),
            history(&full),
            "{phase:?}: TTL and history"
        );
        let chat = |e: &Execution| e.status.as_ref().and_then(|s| s.notify.clone());
        assert_eq!(chat(&cached), chat(&full), "{phase:?}: what was sent");
    }
}

#[test]
fn slimming_again_changes_nothing() {
    for phase in RUNNING.into_iter().chain(FINISHED) {
        let once = slimmed(run(phase));
        assert_eq!(json(&slimmed(once.clone())), json(&once), "{phase:?}");
    }
}

#[test]
fn the_mark_is_no_annotation_key_the_api_server_accepts() {
    // A qualified name has no spaces: no object read from the API carries the mark.
    assert!(MARK.contains(' '));
    let mut forged = run(ExecutionPhase::Running);
    forged
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(MARK.to_string(), String::new());
    assert!(!is_slim(&slimmed(forged)), "a running run is never marked");
}

#[test]
fn a_finished_run_is_planned_only_when_its_spec_changed_or_a_job_runs() {
    let running = ObservedJob {
        uid: Some("j".into()),
        ..ObservedJob::default()
    };
    let ended = ObservedJob {
        terminated: Some(Default::default()),
        ..running.clone()
    };
    let deleting = ObservedJob {
        deleting: true,
        ..running.clone()
    };
    let jobs = |j: &[&ObservedJob]| -> BTreeMap<String, ObservedJob> {
        j.iter()
            .enumerate()
            .map(|(i, j)| (format!("job-{i}"), (*j).clone()))
            .collect()
    };
    let current = slimmed(run(ExecutionPhase::Succeeded));
    let mut edited = current.clone();
    edited.metadata.generation = Some(3);
    let cases = [
        (&current, jobs(&[]), false, "nothing to do"),
        (
            &current,
            jobs(&[&ended, &deleting]),
            false,
            "its Jobs ended or go",
        ),
        (
            &current,
            jobs(&[&ended, &running]),
            true,
            "a Job left running",
        ),
        (&edited, jobs(&[]), true, "observedGeneration behind"),
    ];
    for (exec, jobs, want, why) in cases {
        assert_eq!(needs_plan(exec, &jobs), want, "{why}");
    }
}
