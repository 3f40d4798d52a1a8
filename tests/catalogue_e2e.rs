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

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::TestNamespace;
use common::alertmanager::{Alertmanager, temp_file};
use common::on_call::{executions_as, grant_on_call, json_patch, plan_hash, wait_for_policies};
use common::operator::*;
use common::realnode;
use kube::api::PatchParams;
use playbook_operator::api::{Execution, ExecutionStatus, StepState};
use serde_json::{Value, json};

const PUBLIC_IMAGE: &str = "docker.io/alpine/kubectl:1.37.1@sha256:7b4cc9a9ce0d064cedeb85550266c11f2b32f010ca299525518646261e4d955e";
const LOCAL_IMAGE: &str = "local/kubectl:1";
/// Real pods, several steps each: a run takes a minute or more on a busy machine.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = common::kubectl();
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("running kubectl");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("writing to kubectl");
    }
    let out = child.wait_with_output().expect("kubectl ends");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn apply(ns: &TestNamespace, objects: &[Value]) {
    let text: String = objects
        .iter()
        .map(|o| format!("---\n{}", serde_yaml::to_string(o).expect("YAML")))
        .collect();
    kubectl(&["apply", "-n", &ns.name, "-f", "-"], Some(&text));
}

/// Installs catalogue entry `entry` in the test's namespace as its kustomization
/// does, with three changes for this cluster: the local kubectl image, the Runner on
/// the real node, and the cluster-scoped RBAC names made unique per test.
async fn install(ns: &TestNamespace, entry: &str) {
    realnode::require(&ns.client).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("catalogue")
        .join(entry);
    let mut objects = Vec::new();
    for file in ["rbac.yaml", "playbook.yaml", "trigger.yaml"] {
        let text = std::fs::read_to_string(dir.join(file))
            .expect("the entry's file")
            .replace(PUBLIC_IMAGE, LOCAL_IMAGE);
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let mut obj: Value = serde::Deserialize::deserialize(doc).expect("YAML");
            match obj["kind"].as_str() {
                Some("ClusterRole") => {
                    obj["metadata"]["name"] = json!(format!(
                        "{}-{}",
                        obj["metadata"]["name"].as_str().unwrap_or(""),
                        ns.name
                    ))
                }
                Some("ClusterRoleBinding") => {
                    obj["metadata"]["name"] = json!(format!(
                        "{}-{}",
                        obj["metadata"]["name"].as_str().unwrap_or(""),
                        ns.name
                    ));
                    obj["roleRef"]["name"] = json!(format!(
                        "{}-{}",
                        obj["roleRef"]["name"].as_str().unwrap_or(""),
                        ns.name
                    ));
                    obj["subjects"][0]["namespace"] = json!(ns.name);
                }
                Some("Runner") => {
                    if let (Some(spec), Value::Object(place)) =
                        (obj["spec"].as_object_mut(), realnode::placement())
                    {
                        spec.extend(place);
                    }
                }
                _ => {}
            }
            objects.push(obj);
        }
    }
    apply(ns, &objects);
}

/// Deletes the cluster-scoped objects `install` made (the namespace takes the rest).
fn uninstall(ns: &TestNamespace, entry: &str) {
    let name = format!("playbook-catalogue-{entry}-{}", ns.name);
    kubectl(
        &[
            "delete",
            "--ignore-not-found",
            &format!("clusterrole/{name}"),
            &format!("clusterrolebinding/{name}"),
        ],
        None,
    );
}

/// Pod-spec fields that put a workload's pods on the real node, as nobody.
fn on_real_node(container: Value) -> Value {
    let mut spec = realnode::placement();
    spec["securityContext"] = json!({"runAsNonRoot": true, "runAsUser": 65534});
    spec["containers"] = json!([container]);
    spec["terminationGracePeriodSeconds"] = json!(1);
    spec
}

fn deployment(name: &str, pod_spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}}})
}

/// Polls `kubectl get -o json` of `what` until `pred` holds; returns the object.
async fn wait_object(
    ns: &TestNamespace,
    what: &[&str],
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let mut args = vec!["get", "-n", ns.name.as_str(), "-o", "json"];
        args.extend_from_slice(what);
        let obj: Value = serde_json::from_str(&kubectl(&args, None)).unwrap_or(Value::Null);
        if pred(&obj) {
            return obj;
        }
        assert!(
            Instant::now() < deadline,
            "{what:?} not as wanted within {timeout:?}: {obj}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The first pod of `app`, once `pred` holds for it.
async fn wait_pod(ns: &TestNamespace, app: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let selector = format!("app={app}");
    let list = wait_object(
        ns,
        &["pods", "-l", &selector],
        Duration::from_secs(120),
        |l| l["items"].as_array().is_some_and(|i| i.iter().any(&pred)),
    )
    .await;
    list["items"]
        .as_array()
        .and_then(|i| i.iter().find(|p| pred(p)).cloned())
        .expect("a pod")
}

/// Runs the entry's playbook with `params` (and an alert with its name and `labels`
/// as Alertmanager would send it); returns the status once `remediation` waits for
/// an approval, or the final status when `remediation` is None.
async fn run(
    ns: &TestNamespace,
    entry: &str,
    params: Value,
    remediation: Option<&str>,
) -> ExecutionStatus {
    let exec = json!({"apiVersion": "stackpulse.io/v1", "kind": "Execution", "metadata": {"name": "run-1"},
                      "spec": {"playbookRef": {"name": entry}, "params": params,
                               "alert": {"labels": {"alertname": entry}, "annotations": {"description": "92% used"}, "status": "firing"}}});
    let _: Execution = create(ns, exec).await;
    match remediation {
        Some(step_id) => {
            let what = format!("{step_id} waiting for approval");
            wait_status(ns, "run-1", &what, RUN_TIMEOUT, |s| {
                s.phase.is_final()
                    || s.steps
                        .iter()
                        .any(|st| st.id == step_id && st.state == StepState::WaitingApproval)
            })
            .await
        }
        None => wait_status(ns, "run-1", "final", RUN_TIMEOUT, |s| s.phase.is_final()).await,
    }
}

/// The verdict the summary step reported, and its text (which must carry the page link).
fn verdict(status: &ExecutionStatus) -> String {
    let summary = step(status, "summary");
    assert_eq!(summary.state, StepState::Succeeded, "{status:#?}");
    let out = summary.outputs.clone().unwrap_or_default();
    assert!(
        out["summary"]
            .as_str()
            .is_some_and(|s| s.contains(&out["verdict"].as_str().unwrap_or("?").to_string())),
        "{out}"
    );
    out["verdict"].as_str().unwrap_or_default().to_string()
}

/// bob approves the waiting step's plan; returns the final status.
async fn approve(ns: &TestNamespace, step_id: &str) -> ExecutionStatus {
    let hash = plan_hash(ns, "run-1", step_id).await;
    executions_as("bob", ns)
        .await
        .patch(
            "run-1",
            &PatchParams::default(),
            &json_patch(json!([{"op": "add", "path": "/spec/approvals",
            "value": [{"step": step_id, "user": "bob", "planHash": hash}]}])),
        )
        .await
        .expect("bob approves");
    let status = wait_status(ns, "run-1", "final", RUN_TIMEOUT, |s| s.phase.is_final()).await;
    assert_eq!(
        step(&status, step_id).state,
        StepState::Succeeded,
        "{status:#?}"
    );
    let report = status
        .finally
        .iter()
        .find(|s| s.id == "report")
        .and_then(|s| s.outputs.clone())
        .unwrap_or_default();
    assert_eq!(
        report["outcome"], "Succeeded",
        "the finally step reports the outcome: {report}"
    );
    assert_eq!(report[step_id], "Succeeded", "{report}");
    status
}

async fn setup_entry(prefix: &str, entry: &str) -> TestNamespace {
    let ns = setup(prefix).await;
    grant_on_call(&ns).await;
    wait_for_policies(&ns).await;
    install(&ns, entry).await;
    ns
}

async fn finish(ns: TestNamespace, entry: &str, operator: Operator) {
    operator.stop().await;
    uninstall(&ns, entry);
    ns.cleanup().await;
}

/// A Deployment `web` on the real node whose container exits 1 after a line on
/// stderr; returns its pod's name once that pod has crashed at least once.
async fn crash_looping_pod(ns: &TestNamespace) -> String {
    let crash = json!({"name": "app", "image": realnode::BUSYBOX, "command": ["sh", "-c", "echo starting; echo 'config invalid: port' >&2; exit 1"]});
    apply(&ns, &[deployment("web", on_real_node(crash))]);
    let pod = wait_pod(&ns, "web", |p| {
        p["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
    })
    .await;
    let pod_name = pod["metadata"]["name"]
        .as_str()
        .expect("a name")
        .to_string();
    pod_name
}

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
