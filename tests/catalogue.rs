//! The catalogue of ready playbooks (`catalogue/<entry>/`): every file lints clean,
//! every Trigger turns its alert into a run whose first step renders to a Job, every
//! step's templates render, the Remediate steps wait for a person behind a limit, the
//! chart's copies are the same files, and the triage rules give the verdict of the
//! cause (a table per family of alerts: `catalogue/triage.rs`). Pure: no cluster
//! (`catalogue_e2e` runs them).

use std::collections::BTreeMap;
use std::path::Path;

use playbook_operator::api::{
    AlertSource, Phase, Playbook, PlaybookStep, Runner, RunnerSpec, Trigger,
};
use playbook_operator::engine::alert::{self, trigger::CompiledTrigger, trigger::Outcome};
use playbook_operator::engine::job::render_step;
use playbook_operator::engine::lint::lint_file;
use playbook_operator::engine::plan::ExecutionRef;
use serde_json::{Value, json};

mod common;
#[path = "catalogue/triage.rs"]
mod triage;

use common::catalogue::PUBLIC_IMAGE as IMAGE;
use common::catalogue_files::{docs, first_step_pod, one, read, root};

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
        let run = ExecutionRef {
            name: format!("{entry}-1"),
            namespace: "catalogue".into(),
            uid: "00000000-0000-0000-0000-000000000000".into(),
            generation: Some(1),
            url: Some("https://pbo.example.com/ui/executions/catalogue/run-1".into()),
        };
        let pod = first_step_pod(&entry, run, execution.spec.clone(), &pb, &runner);
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
