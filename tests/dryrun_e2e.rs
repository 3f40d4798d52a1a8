//! Dry runs (`spec.dryRun`) on the local control plane: every catalogue playbook
//! renders each step with a plan and its hash and creates no Job and no Pod; a
//! `when` false on known params is Skipped and one reading outputs is Unknown; a
//! Secret's value appears nowhere (its reference does); `spec.dryRun` cannot change.
//!
//! Needs a cluster: `make cluster-up`, then `cargo test --test dryrun_e2e`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::catalogue::apply;
use common::on_call::{executions_as, setup_on_call};
use common::operator::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use playbook_operator::api::{DryRunVerdict, Execution, ExecutionPhase, ExecutionStatus, Playbook};
use serde_json::{Value, json};

/// A dry-run Execution of `playbook` with these params.
async fn dry_run(ns: &common::TestNamespace, name: &str, playbook: &str, params: Value) {
    create::<Execution>(
        ns,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Execution",
            "metadata": {"name": name},
            "spec": {"playbookRef": {"name": playbook}, "params": params, "dryRun": true}
        }),
    )
    .await;
}

async fn wait_dry_run(ns: &common::TestNamespace, name: &str) -> ExecutionStatus {
    wait_status(ns, name, "DryRun", common::TIMEOUT, |s| {
        s.phase == ExecutionPhase::DryRun
    })
    .await
}

/// Nothing ran: no Job, no Pod in the namespace, no step status, no remediation.
async fn nothing_ran(ns: &common::TestNamespace, statuses: &[&ExecutionStatus]) {
    let jobs = ns
        .api::<Job>()
        .list(&ListParams::default())
        .await
        .expect("jobs");
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default())
        .await
        .expect("pods");
    assert_eq!(jobs.items.len(), 0, "a dry run created a Job");
    assert_eq!(pods.items.len(), 0, "a dry run created a Pod");
    for s in statuses {
        assert!(s.steps.is_empty() && s.finally.is_empty() && s.remediation.is_none());
    }
}

fn catalogue_docs(entry: &str, file: &str, kind: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("catalogue")
        .join(entry)
        .join(file);
    let text = std::fs::read_to_string(&path).expect("the entry's file");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
        .filter(|v: &Value| v["kind"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_catalogue_playbook_dry_runs_with_a_plan_per_step_and_runs_nothing() {
    let ns = setup("dryrun-catalogue").await;
    let mut entries: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogue"))
            .expect("catalogue/")
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
    entries.sort();
    assert!(entries.len() >= 12, "{entries:?}");
    let mut playbooks = Vec::new();
    for entry in &entries {
        // The Playbook and its Runner (the ServiceAccount and RBAC are not needed:
        // a dry run starts no pod).
        let mut objects = catalogue_docs(entry, "playbook.yaml", "Playbook");
        objects.extend(catalogue_docs(entry, "rbac.yaml", "Runner"));
        apply(&ns, &objects);
        let pb: Playbook = from_json(objects.remove(0));
        playbooks.push(pb);
    }
    let operator = Operator::start(&ns);
    for pb in &playbooks {
        let name = pb.metadata.name.clone().expect("a name");
        // Every required param without a default gets a value: a dry run renders.
        let params: serde_json::Map<String, Value> = pb
            .spec
            .params
            .iter()
            .filter(|p| p.required && p.default.is_none())
            .map(|p| (p.name.clone(), json!("demo")))
            .collect();
        dry_run(&ns, &format!("dry-{name}"), &name, Value::Object(params)).await;
    }
    let mut statuses = Vec::new();
    for pb in &playbooks {
        let name = pb.metadata.name.clone().expect("a name");
        let status = wait_dry_run(&ns, &format!("dry-{name}")).await;
        let want: BTreeSet<&str> = pb
            .spec
            .steps
            .iter()
            .chain(&pb.spec.finally)
            .flat_map(|e| match &e.steps {
                Some(inner) => inner.iter().map(|s| s.id.as_str()).collect(),
                None => vec![e.step.id.as_str()],
            })
            .collect();
        let shown: BTreeSet<&str> = status
            .dry_run
            .iter()
            .map(|s| {
                s.id.rsplit('.')
                    .next()
                    .unwrap_or(&s.id)
                    .trim_end_matches("[*]")
            })
            .collect();
        assert_eq!(shown, want, "{name}: every step is shown");
        for s in &status.dry_run {
            let plan = s
                .plan
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: step {} has no plan: {:?}", s.id, s.message));
            assert_eq!(plan.hash.len(), 12, "{name}/{}: a hash", s.id);
            assert!(plan.hash.chars().all(|c| c.is_ascii_hexdigit()));
            assert!(!plan.image.is_empty());
            assert_ne!(
                s.verdict,
                DryRunVerdict::Fails,
                "{name}/{}: {:?}",
                s.id,
                s.message
            );
        }
        // Enrich steps without a `when` run; Remediate steps wait for a person.
        assert_eq!(status.dry_run[0].verdict, DryRunVerdict::Runs, "{name}");
        // The health check is read-only: it has no remediation to approve.
        assert!(
            name == "cluster-health" || status.dry_run.iter().any(|s| s.approval),
            "{name}: a remediation behind an approval"
        );
        let message = status.message.clone().unwrap_or_default();
        assert!(message.starts_with("dry run, nothing ran:"), "{message}");
        statuses.push(status);
    }
    // Give a wrongly started Job time to show up before looking.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    nothing_ran(&ns, &statuses.iter().collect::<Vec<_>>()).await;
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_is_skipped_on_known_params_unknown_on_outputs_and_secrets_stay_references() {
    // alice, an on-call person, asks for it: the Runner `use` check has a requester.
    let ns = setup_on_call("dryrun-when").await;
    // The value must never be read: it is not in the Execution, whatever it shows.
    create::<k8s_openapi::api::core::v1::Secret>(
        &ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "playbook-secrets"},
               "stringData": {"api-token": "s3cr3t-never-shown"}}),
    )
    .await;
    playbook_spec(
        &ns,
        "guarded",
        json!({
            "params": [{"name": "Env", "required": true}],
            "steps": [
                {"id": "pod", "image": "busybox", "args": ["{{ .params.Env }}"],
                 "env": {"TOKEN": "{{ secret \"api-token\" }}"}},
                {"id": "prod-only", "image": "busybox", "when": "{{ eq .params.Env \"prod\" }}"},
                {"id": "restart", "phase": "remediate", "image": "busybox",
                 "when": "{{ eq .steps.pod.outputs.phase \"Failed\" }}",
                 "args": ["{{ .steps.pod.outputs.name }}"],
                 "approval": {"required": true}}
            ]
        }),
    )
    .await;
    let operator = Operator::start(&ns);
    executions_as("alice", &ns)
        .await
        .create(
            &PostParams::default(),
            &from_json(json!({
                "apiVersion": "stackpulse.io/v1", "kind": "Execution",
                "metadata": {"name": "dry-1"},
                "spec": {"playbookRef": {"name": "guarded"}, "params": {"Env": "dev"}, "dryRun": true}
            })),
        )
        .await
        .expect("alice creates the dry run");
    let status = wait_dry_run(&ns, "dry-1").await;
    let verdicts: Vec<(&str, DryRunVerdict, &str)> = status
        .dry_run
        .iter()
        .map(|s| (s.id.as_str(), s.verdict, s.message.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("pod", DryRunVerdict::Runs, ""),
            (
                "prod-only",
                DryRunVerdict::Skipped,
                "when rendered false: {{ eq .params.Env \"prod\" }}"
            ),
            (
                "restart",
                DryRunVerdict::Unknown,
                "when depends on step pod's outputs"
            ),
        ]
    );
    let restart = &status.dry_run[2];
    assert!(restart.approval);
    assert_eq!(
        restart.plan.as_ref().map(|p| p.args.clone()),
        Some(vec!["{{ .steps.pod.outputs.name }}".to_string()])
    );
    // The secret is the Secret's name and key, never its value.
    let exec = ns.api::<Execution>().get("dry-1").await.expect("the run");
    let text = serde_json::to_string(&exec).expect("JSON");
    assert!(!text.contains("s3cr3t-never-shown"));
    assert!(!text.contains("czNjcjN0LW5ldmVyLXNob3du"), "nor base64");
    let env =
        serde_json::to_value(&status.dry_run[0].plan.as_ref().expect("a plan").env).expect("env");
    assert!(
        env.as_array()
            .into_iter()
            .flatten()
            .any(|e| e.pointer("/valueFrom/secretKeyRef")
                == Some(&json!({"name": "playbook-secrets", "key": "api-token"}))),
        "{env}"
    );
    nothing_ran(&ns, &[&status]).await;

    // A dry run stays one: the API server refuses to turn it into a real run.
    let err = ns
        .api::<Execution>()
        .patch(
            "dry-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"dryRun": false}})),
        )
        .await
        .expect_err("spec.dryRun is immutable");
    assert!(
        err.to_string()
            .contains("spec.dryRun cannot change after create: create a new Execution"),
        "{err}"
    );

    // `start --dry-run` as alice: it creates the dry run and prints its steps,
    // rendered locally with the hashes the operator then writes.
    let kubeconfig = common::kubeconfig_path().with_file_name("kubeconfig-alice");
    assert!(
        kubeconfig.is_file(),
        "{}: {}",
        kubeconfig.display(),
        common::START_HINT
    );
    let args: Vec<String> = ["start", "guarded", "-n", &ns.name, "--dry-run"]
        .iter()
        .map(|a| a.to_string())
        .chain(["--param", "Env=dev", "--name", "dry-cli"].map(String::from))
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_playbook-operator"))
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .output()
            .expect("the binary runs")
    })
    .await
    .expect("the command's thread");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "dry run dry-cli created",
        "  1. pod",
        "Skipped",
        "when depends on step pod's outputs",
        "dry run, nothing ran: 3 steps: 1 run, 1 skipped, 1 depend on outputs",
    ] {
        assert!(stdout.contains(want), "{want} missing in:\n{stdout}");
    }
    let printed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split(" plan ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap_or(""))
        .collect();
    let status = wait_dry_run(&ns, "dry-cli").await;
    let written: Vec<&str> = status
        .dry_run
        .iter()
        .map(|s| s.plan.as_ref().map_or("-", |p| p.hash.as_str()))
        .collect();
    assert_eq!(printed, written, "the printout's hashes are the operator's");
    nothing_ran(&ns, &[&status]).await;
    operator.stop().await;
    ns.cleanup().await;
}
