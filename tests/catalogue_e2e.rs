//! The catalogue (`catalogue/<entry>/`) end to end, on the real node of the local
//! cluster: each test makes the failure its alert is about out of real objects (a
//! crash-looping Deployment, a failed Job, a full PVC simulated through its status,
//! ...), installs the entry as `kubectl apply -k` would (its Runner put on the real
//! node), starts a run with the alert's labels, and checks the triage verdict, the
//! Remediate step waiting for an approval, and, once bob approves, its change in the
//! cluster. The steps are the entry's own, with its public kubectl image replaced by
//! `local/kubectl:1` (busybox and the cluster's kubectl, built by realnode.sh: no
//! registry here); they reach the API server through the `kubernetes` Service.
//!
//! Needs the cluster with its real node: `make cluster-up`, then
//! `cargo test --test catalogue_e2e`.

mod common;

use std::time::{Duration, Instant};

use common::alertmanager::{Alertmanager, temp_file};
use common::catalogue::*;
use common::operator::*;
use common::realnode;
use playbook_operator::api::{Execution, StepState};
use serde_json::json;

/// A Deployment whose container exits 1: the playbook gathers the previous
/// container's last lines, calls it an application error, and restarts the
/// Deployment once bob approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_looping_deployment_is_triaged_and_restarted_after_approval() {
    let entry = "kube-pod-crash-looping";
    let ns = setup_entry("cat-crashloop", entry).await;
    let pod_name = crash_looping_pod(&ns).await;
    let operator = Operator::start(&ns);
    let status = run(
        &ns,
        entry,
        json!({"Namespace": ns.name, "Pod": pod_name}),
        Some("restart"),
    )
    .await;
    assert_eq!(verdict(&status), "ApplicationError", "{status:#?}");
    let logs = step(&status, "previous-logs")
        .outputs
        .clone()
        .unwrap_or_default()
        .to_string();
    assert!(
        logs.contains("config invalid: port"),
        "the previous container's last lines: {logs}"
    );
    assert_eq!(
        step(&status, "deployment")
            .outputs
            .clone()
            .unwrap_or_default()["name"],
        "web"
    );
    assert_eq!(
        step(&status, "rollback").state,
        StepState::Skipped,
        "{status:#?}"
    );
    approve(&ns, "restart").await;
    wait_object(&ns, &["deployment", "web"], Duration::from_secs(10), |d| {
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    })
    .await;
    finish(ns, entry, operator).await;
}

/// A Job of a CronJob that fails: an application error, and the failed Job is
/// deleted once bob approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_job_is_triaged_and_deleted_after_approval() {
    let entry = "kube-job-failed";
    let ns = setup_entry("cat-jobfailed", entry).await;
    let mut pod = on_real_node(
        json!({"name": "task", "image": realnode::BUSYBOX, "command": ["sh", "-c", "echo 'cannot reach db' >&2; exit 3"]}),
    );
    pod["restartPolicy"] = json!("Never");
    apply(
        &ns,
        &[
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "suspend": true, "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": pod}}}}}),
        ],
    );
    kubectl(
        &[
            "create",
            "job",
            "-n",
            &ns.name,
            "nightly-manual",
            "--from=cronjob/nightly",
        ],
        None,
    );
    wait_object(
        &ns,
        &["job", "nightly-manual"],
        Duration::from_secs(120),
        |j| {
            j["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Failed" && c["status"] == "True")
            })
        },
    )
    .await;
    let operator = Operator::start(&ns);
    let status = run(
        &ns,
        entry,
        json!({"Namespace": ns.name, "Job": "nightly-manual"}),
        Some("delete-job"),
    )
    .await;
    assert_eq!(verdict(&status), "ApplicationError", "{status:#?}");
    let job = step(&status, "job").outputs.clone().unwrap_or_default();
    assert_eq!(
        (job["reason"].as_str(), job["cronJob"].as_str()),
        (Some("BackoffLimitExceeded"), Some("nightly")),
        "{job}"
    );
    assert!(
        step(&status, "logs")
            .outputs
            .clone()
            .unwrap_or_default()
            .to_string()
            .contains("cannot reach db")
    );
    approve(&ns, "delete-job").await;
    wait_object(&ns, &["jobs"], Duration::from_secs(30), |l| {
        l["items"]
            .as_array()
            .is_some_and(|i| i.iter().all(|j| j["metadata"]["name"] != "nightly-manual"))
    })
    .await;
    finish(ns, entry, operator).await;
}

/// A claim at 1Gi, Bound to a hand-made volume whose class allows expansion (no
/// provisioner runs here): the claim grows to 2Gi once bob approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_volume_claim_is_expanded_after_approval() {
    let entry = "kube-persistent-volume-filling-up";
    let ns = setup_entry("cat-pvc", entry).await;
    let class = format!("expandable-{}", ns.name);
    kubectl(&["apply", "-f", "-"], Some(&serde_json::to_string(&json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": class}, "provisioner": "example.com/none", "allowVolumeExpansion": true})).expect("JSON")));
    // A volume no provisioner made (hostPath, never mounted), bound to the claim by
    // the PV controller as it binds any pre-bound pair.
    let pv = format!("pv-{}", ns.name);
    kubectl(&["apply", "-f", "-"], Some(&serde_json::to_string(&json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": class,
        "hostPath": {"path": "/tmp/catalogue-e2e"}, "claimRef": {"namespace": ns.name, "name": "data"}}})).expect("JSON")));
    apply(
        &ns,
        &[
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class, "volumeName": pv, "resources": {"requests": {"storage": "1Gi"}}}}),
        ],
    );
    wait_object(&ns, &["pvc", "data"], Duration::from_secs(60), |p| {
        p["status"]["phase"] == "Bound"
    })
    .await;
    let operator = Operator::start(&ns);
    let status = run(
        &ns,
        entry,
        json!({"Namespace": ns.name, "PersistentVolumeClaim": "data"}),
        Some("expand"),
    )
    .await;
    assert_eq!(verdict(&status), "Expandable", "{status:#?}");
    assert_eq!(
        step(&status, "pvc").outputs.clone().unwrap_or_default()["proposed"],
        "2Gi"
    );
    approve(&ns, "expand").await;
    wait_object(&ns, &["pvc", "data"], Duration::from_secs(10), |p| {
        p["spec"]["resources"]["requests"]["storage"] == "2Gi"
    })
    .await;
    kubectl(
        &[
            "delete",
            "--ignore-not-found",
            "--wait=false",
            &format!("storageclass/{class}"),
            &format!("pv/{pv}"),
        ],
        None,
    );
    finish(ns, entry, operator).await;
}

/// The real Alertmanager fires KubePodCrashLooping for a crash-looping pod: the
/// catalogue's Trigger starts its playbook, which triages and waits for approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_from_alertmanager_runs_the_crash_loop_entry_to_its_approval() {
    let entry = "kube-pod-crash-looping";
    let ns = setup_entry("cat-alert", entry).await;
    let pod_name = crash_looping_pod(&ns).await;
    let dir = std::env::temp_dir().join(format!("pbo-{}", ns.name));
    let tokens = temp_file(&dir, "tokens", "catalogue-token\n");
    let webhooks = common::webhook::config(&ns, &tokens).await;
    let (operator, addr) = Operator::start_with_webhooks(&ns, webhooks).await;
    let am = Alertmanager::start(&dir, addr, "catalogue-token");
    am.wait_ready().await;
    am.post_alerts(
        &json!([{"labels": {"alertname": "KubePodCrashLooping", "namespace": ns.name,
        "pod": pod_name, "container": "app", "severity": "warning"}}]),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let name = loop {
        let list = ns
            .api::<Execution>()
            .list(&Default::default())
            .await
            .expect("listing Executions");
        if let Some(e) = list.items.first() {
            break e.metadata.name.clone().unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "no Execution from the alert within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let exec = ns
        .api::<Execution>()
        .get(&name)
        .await
        .expect("the Execution");
    assert_eq!(
        exec.spec.trigger_ref.map(|t| t.name).as_deref(),
        Some(entry)
    );
    let status = wait_status(
        &ns,
        &name,
        "restart waiting for approval",
        RUN_TIMEOUT,
        |s| {
            s.phase.is_final()
                || s.steps
                    .iter()
                    .any(|st| st.id == "restart" && st.state == StepState::WaitingApproval)
        },
    )
    .await;
    assert_eq!(verdict(&status), "ApplicationError", "{status:#?}");
    assert_eq!(step(&status, "restart").state, StepState::WaitingApproval);
    drop(am);
    finish(ns, entry, operator).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The scheduled cluster health check, installed with its Schedule (which reports
/// its next hourly tick) and run once on a cluster where one pod crash-loops: the
/// verdict is Degraded, the finding CrashLooping, and the pod is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_health_check_finds_the_crash_looping_pod() {
    let entry = "cluster-health";
    let ns = setup_entry("cat-health", entry).await;
    let pod_name = crash_looping_pod(&ns).await;
    // Crash-looping as the check counts it: backing off, or three restarts lately.
    // Only the second holds until the check lists the pod: back-off ends each time
    // the kubelet starts the container again, and a restart count only grows.
    wait_pod(&ns, "web", |p| {
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .is_some_and(|r| r >= 3)
    })
    .await;
    let operator = Operator::start(&ns);
    let schedule = wait_object(&ns, &["schedule", entry], Duration::from_secs(30), |s| {
        s["status"]["nextScheduleTime"].is_string()
    })
    .await;
    let next = schedule["status"]["nextScheduleTime"]
        .as_str()
        .unwrap_or_default();
    assert!(next.ends_with(":00:00Z"), "hourly: {next}");
    let status = run(&ns, entry, json!({}), None).await;
    assert_eq!(verdict(&status), "Degraded", "{status:#?}");
    let findings = step(&status, "verdict").outputs.clone().unwrap_or_default();
    assert!(
        findings["findings"]
            .as_str()
            .is_some_and(|f| f.split_whitespace().any(|f| f == "CrashLooping")),
        "{findings}"
    );
    let pods = step(&status, "pods").outputs.clone().unwrap_or_default();
    assert!(
        pods["crashLooping"].as_array().is_some_and(|l| l
            .iter()
            .any(|p| p["namespace"] == ns.name.as_str() && p["name"] == pod_name.as_str())),
        "the crash-looping pod is named: {pods}"
    );
    let nodes = step(&status, "nodes").outputs.clone().unwrap_or_default();
    assert!(nodes["total"].as_i64().is_some_and(|n| n >= 2), "{nodes}");
    let summary = step(&status, "summary").outputs.clone().unwrap_or_default();
    assert!(
        summary["summary"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("{}/{pod_name}", ns.name))),
        "{summary}"
    );
    finish(ns, entry, operator).await;
}
