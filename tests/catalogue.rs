//! The catalogue of ready playbooks (`catalogue/<entry>/`): every file lints clean,
//! every Trigger turns its alert into a run whose first step renders to a Job, every
//! step's templates render, the Remediate steps wait for a person behind a limit, the
//! chart's copies are the same files, and the triage rules give the verdict of the
//! cause (a table per family of alerts). Pure: no cluster (`catalogue_e2e` runs them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::jiff::Timestamp;
use playbook_operator::api::{
    AlertSource, Phase, Playbook, PlaybookStep, Runner, RunnerSpec, Trigger,
};
use playbook_operator::engine::alert::{self, trigger::CompiledTrigger, trigger::Outcome};
use playbook_operator::engine::job::render_step;
use playbook_operator::engine::lint::lint_file;
use playbook_operator::engine::plan::{ExecutionRef, Intent, PlanInput, plan};
use playbook_operator::engine::template::{render, render_condition};
use serde_json::{Value, json};

const IMAGE: &str = "docker.io/alpine/kubectl:1.37.1@sha256:7b4cc9a9ce0d064cedeb85550266c11f2b32f010ca299525518646261e4d955e";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogue")
}

/// Every entry's folder name, sorted.
fn entries() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root())
        .expect("catalogue/ exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The entries an alert starts (a `trigger.yaml`), and the scheduled ones (a
/// `schedule.yaml`: checks that run on their own, read-only).
fn alert_entries() -> Vec<String> {
    entries()
        .into_iter()
        .filter(|e| root().join(e).join("trigger.yaml").exists())
        .collect()
}

fn scheduled(entry: &str) -> bool {
    root().join(entry).join("schedule.yaml").exists()
}

fn read(entry: &str, file: &str) -> String {
    let path = root().join(entry).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The documents of a file of kind `kind`.
fn docs(entry: &str, file: &str, kind: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read(entry, file))
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .filter(|v: &Value| v["kind"] == kind)
        .collect()
}

fn one<T: serde::de::DeserializeOwned>(entry: &str, file: &str, kind: &str) -> T {
    let mut all = docs(entry, file, kind);
    assert_eq!(all.len(), 1, "{entry}/{file}: one {kind}");
    serde_json::from_value(all.remove(0)).unwrap_or_else(|e| panic!("{entry}/{file}: {e}"))
}

fn steps(pb: &Playbook) -> impl Iterator<Item = &PlaybookStep> {
    pb.spec.steps.iter().chain(pb.spec.finally.iter())
}

#[test]
fn the_catalogue_covers_the_alerts_that_fire_most() {
    let alerts: Vec<String> = alert_entries()
        .iter()
        .map(|e| {
            one::<Trigger>(e, "trigger.yaml", "Trigger")
                .spec
                .matches
                .and_then(|m| m.labels.get("alertname").cloned())
                .unwrap_or_default()
        })
        .collect();
    for want in [
        "KubePodCrashLooping",
        "KubePodNotReady",
        "KubeContainerWaiting",
        "KubeDeploymentReplicasMismatch",
        "KubeDeploymentRolloutStuck",
        "KubeStatefulSetReplicasMismatch",
        "KubeJobFailed",
        "KubeHpaMaxedOut",
        "KubeNodeNotReady",
        "KubePersistentVolumeFillingUp",
        "CPUThrottlingHigh",
        "KubeQuotaAlmostFull",
    ] {
        assert!(
            alerts.iter().any(|a| a == want),
            "no catalogue entry for {want}: {alerts:?}"
        );
    }
}

#[test]
fn every_file_lints_clean_and_the_kustomization_lists_them() {
    for entry in entries() {
        let starter = if scheduled(&entry) {
            "schedule.yaml"
        } else {
            "trigger.yaml"
        };
        for file in ["playbook.yaml", starter, "rbac.yaml"] {
            let findings = lint_file(&read(&entry, file), &format!("{entry}/{file}"));
            assert!(
                findings.is_empty(),
                "{entry}/{file}:\n{}",
                findings
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        let kustomization: Value =
            serde_yaml::from_str(&read(&entry, "kustomization.yaml")).expect("YAML");
        assert_eq!(
            kustomization["resources"],
            json!(["rbac.yaml", "playbook.yaml", starter]),
            "{entry}"
        );
    }
}

#[test]
fn every_step_uses_the_pinned_image_on_the_entrys_runner_and_remediation_waits_for_a_person() {
    for entry in entries() {
        let pb: Playbook = one(&entry, "playbook.yaml", "Playbook");
        let runner: Runner = one(&entry, "rbac.yaml", "Runner");
        let runner_name = runner.metadata.name.clone().unwrap_or_default();
        assert_eq!(pb.metadata.name.as_deref(), Some(entry.as_str()));
        for s in steps(&pb) {
            assert_eq!(s.step.image, IMAGE, "{entry}: step {}", s.step.id);
            assert_eq!(
                s.step.runner.as_deref(),
                Some(runner_name.as_str()),
                "{entry}: step {}",
                s.step.id
            );
        }
        let remediate: Vec<_> = pb
            .spec
            .steps
            .iter()
            .filter(|s| s.step.phase == Phase::Remediate)
            .collect();
        // A scheduled check only reads and reports (`catalogue_health` checks it).
        if scheduled(&entry) {
            assert!(
                remediate.is_empty(),
                "{entry}: a scheduled check changes nothing"
            );
        } else {
            assert!(!remediate.is_empty(), "{entry} has no remediate step");
        }
        for s in remediate {
            assert!(
                s.step.approval.as_ref().is_some_and(|a| a.required),
                "{entry}: {} needs an approval",
                s.step.id
            );
            assert!(
                s.step.when.is_some(),
                "{entry}: {} remediates only for the verdicts it fixes",
                s.step.id
            );
        }
        assert!(
            scheduled(&entry)
                || pb
                    .spec
                    .limits
                    .as_ref()
                    .and_then(|l| l.remediations.as_ref())
                    .is_some(),
            "{entry}: no blast-radius limit"
        );
        assert!(
            pb.spec.finally.iter().any(|s| s.step.id == "report"),
            "{entry}: no finally report"
        );
        for phase in [Phase::Enrich, Phase::Triage, Phase::Communicate] {
            assert!(
                pb.spec.steps.iter().any(|s| s.step.phase == phase),
                "{entry}: no {phase:?} step"
            );
        }
        let sa = runner
            .spec
            .service_account_name
            .clone()
            .expect("the Runner names its ServiceAccount");
        assert_eq!(
            docs(&entry, "rbac.yaml", "ServiceAccount")[0]["metadata"]["name"],
            sa.as_str()
        );
        let binding = &docs(&entry, "rbac.yaml", "ClusterRoleBinding")[0];
        assert_eq!(binding["subjects"][0]["name"], sa.as_str(), "{entry}");
    }
}

/// A firing alert of kube-prometheus-stack's shape (the labels its rule sets).
fn alert_body(alertname: &str, labels: &BTreeMap<String, String>) -> Vec<u8> {
    let mut all = labels.clone();
    all.insert("alertname".into(), alertname.into());
    serde_json::to_vec(&json!({
        "version": "4", "status": "firing", "receiver": "playbook-operator", "groupKey": "{}:{}",
        "alerts": [{"status": "firing", "labels": all, "annotations": {"description": "92% used"},
                    "startsAt": "2026-12-05T12:00:00Z", "fingerprint": "0123456789abcdef"}]
    }))
    .expect("JSON")
}

#[test]
fn each_trigger_starts_its_playbook_and_every_step_renders() {
    for entry in alert_entries() {
        let trigger: Trigger = one(&entry, "trigger.yaml", "Trigger");
        let pb: Playbook = one(&entry, "playbook.yaml", "Playbook");
        let runner: Runner = one(&entry, "rbac.yaml", "Runner");
        let alertname = trigger
            .spec
            .matches
            .as_ref()
            .and_then(|m| m.labels.get("alertname").cloned())
            .unwrap_or_default();
        // Every label a param reads, with a value named after it.
        let labels: BTreeMap<String, String> = trigger
            .spec
            .params
            .values()
            .filter_map(|t| {
                t.trim()
                    .strip_prefix("{{ .alert.labels.")?
                    .strip_suffix(" }}")
                    .map(str::to_string)
            })
            .map(|l| (l.clone(), format!("the-{}", l.replace('_', "-"))))
            .collect();
        let events = alert::parse(AlertSource::Alertmanager, &alert_body(&alertname, &labels))
            .expect("parses");
        let compiled = CompiledTrigger::new("catalogue", &entry, &trigger.spec).expect("compiles");
        let Outcome::Start(execution) = compiled.evaluate(&events[0], "operator") else {
            panic!("{entry}: the trigger does not start a run for {alertname}");
        };
        let params = execution.spec.params.clone().unwrap_or_default();
        for p in pb.spec.params.iter().filter(|p| p.required) {
            assert!(
                params
                    .get(&p.name)
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.starts_with("the-")),
                "{entry}: the trigger does not fill {} from the alert: {params}",
                p.name
            );
        }
        let input = PlanInput {
            execution: ExecutionRef {
                name: format!("{entry}-1"),
                namespace: "catalogue".into(),
                uid: "00000000-0000-0000-0000-000000000000".into(),
                generation: Some(1),
                url: Some("https://pbo.example.com/ui/executions/catalogue/run-1".into()),
            },
            spec: execution.spec.clone(),
            playbook: Some(pb.spec.clone()),
            runners: BTreeMap::from([(
                runner.metadata.name.clone().unwrap_or_default(),
                runner.spec.clone(),
            )]),
            ..PlanInput::default()
        };
        let planned = plan(&input, Timestamp::now());
        let jobs: Vec<_> = planned
            .intents
            .iter()
            .filter_map(|i| match i {
                Intent::CreateJob(j) => Some(j),
                _ => None,
            })
            .collect();
        assert_eq!(
            jobs.len(),
            1,
            "{entry}: the first step becomes a Job: {:?}",
            planned.status
        );
        let pod = jobs[0]
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("a pod spec");
        assert_eq!(
            pod.service_account_name, runner.spec.service_account_name,
            "{entry}"
        );
        let args = pod.containers[0].args.clone().unwrap_or_default();
        assert!(
            args.iter().any(|a| a.starts_with("the-")),
            "{entry}: the alert's object reaches kubectl: {args:?}"
        );
        // Every step's command, args and env render over the alert (later steps'
        // outputs are unknown here and render as `<no value>`).
        let ctx = json!({"params": params, "alert": execution.spec.alert, "steps": {},
                         "execution": {"url": "https://pbo.example.com/ui/x", "phase": "Succeeded", "failedStep": null}});
        for s in steps(&pb) {
            render_step(&s.step, &ctx)
                .unwrap_or_else(|e| panic!("{entry}: step {}: {e:?}", s.step.id));
        }
    }
}

#[test]
fn the_charts_copies_are_the_catalogue() {
    let chart =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/playbook-operator/files/catalogue");
    for entry in entries() {
        let mut files: Vec<String> = std::fs::read_dir(root().join(&entry))
            .expect("the entry's folder")
            .filter_map(Result::ok)
            .map(|f| f.file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        for file in &files {
            let copy = std::fs::read_to_string(chart.join(&entry).join(file)).unwrap_or_default();
            assert!(
                copy == read(&entry, file),
                "charts/playbook-operator/files/catalogue/{entry}/{file} differs from catalogue/: run `make catalogue`"
            );
        }
    }
    let copies = std::fs::read_dir(&chart).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        copies,
        entries().len(),
        "the chart holds an entry catalogue/ does not: run `make catalogue`"
    );
}

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

#[test]
fn runner_spec_is_least_privilege_and_non_root() {
    for entry in entries() {
        let runner: Runner = one(&entry, "rbac.yaml", "Runner");
        let RunnerSpec {
            pod_security_context,
            secret_name,
            allowed_secrets,
            ..
        } = runner.spec;
        assert_eq!(
            pod_security_context.and_then(|p| p.run_as_non_root),
            Some(true),
            "{entry}"
        );
        assert!(
            secret_name.is_none() && allowed_secrets.is_empty(),
            "{entry}: the catalogue reads no Secrets"
        );
        for role in docs(&entry, "rbac.yaml", "ClusterRole") {
            let text = role["rules"].to_string();
            for never in ["\"*\"", "secrets", "escalate", "bind", "impersonate"] {
                assert!(
                    !text.contains(never),
                    "{entry}: the ClusterRole grants {never}: {text}"
                );
            }
        }
    }
}
