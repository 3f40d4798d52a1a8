//! What the catalogue's e2e tests share (`catalogue_e2e`, `catalogue_workloads_e2e`):
//! install an entry as its kustomization does, adapted to the local cluster (the
//! local kubectl image for the pinned public one, the Runner on the real node),
//! make failures out of real objects, run the entry, read its verdict and approve.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kube::api::PatchParams;
use playbook_operator::api::{Execution, ExecutionStatus, StepState};
use serde_json::{Value, json};

use super::TestNamespace;
use super::on_call::{executions_as, grant_on_call, json_patch, plan_hash, wait_for_policies};
use super::operator::*;
use super::realnode;

pub const PUBLIC_IMAGE: &str = "docker.io/alpine/kubectl:1.37.1@sha256:7b4cc9a9ce0d064cedeb85550266c11f2b32f010ca299525518646261e4d955e";
pub const LOCAL_IMAGE: &str = "local/kubectl:1";
/// Real pods, several steps each: a run takes a minute or more on a busy machine.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);

pub fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = super::kubectl();
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

pub fn apply(ns: &TestNamespace, objects: &[Value]) {
    let text: String = objects
        .iter()
        .map(|o| format!("---\n{}", serde_yaml::to_string(o).expect("YAML")))
        .collect();
    kubectl(&["apply", "-n", &ns.name, "-f", "-"], Some(&text));
}

/// Installs catalogue entry `entry` in the test's namespace as its kustomization
/// does, with three changes for this cluster: the local kubectl image, the Runner on
/// the real node, and the cluster-scoped RBAC names made unique per test.
pub async fn install(ns: &TestNamespace, entry: &str) {
    realnode::require(&ns.client).await;
    let dir = super::catalogue_files::root().join(entry);
    let kustomization: Value = serde_yaml::from_str(
        &std::fs::read_to_string(dir.join("kustomization.yaml")).expect("the kustomization"),
    )
    .expect("YAML");
    let mut objects = Vec::new();
    for file in kustomization["resources"].as_array().into_iter().flatten() {
        let file = file.as_str().expect("a file name");
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
pub fn uninstall(ns: &TestNamespace, entry: &str) {
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
pub fn on_real_node(container: Value) -> Value {
    let mut spec = realnode::placement();
    spec["securityContext"] = json!({"runAsNonRoot": true, "runAsUser": 65534});
    spec["containers"] = json!([container]);
    spec["terminationGracePeriodSeconds"] = json!(1);
    spec
}

pub fn deployment(name: &str, pod_spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}}})
}

/// Polls `kubectl get -o json` of `what` until `pred` holds; returns the object.
pub async fn wait_object(
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
pub async fn wait_pod(ns: &TestNamespace, app: &str, pred: impl Fn(&Value) -> bool) -> Value {
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
pub async fn run(
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
pub fn verdict(status: &ExecutionStatus) -> String {
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
pub async fn approve(ns: &TestNamespace, step_id: &str) -> ExecutionStatus {
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

pub async fn setup_entry(prefix: &str, entry: &str) -> TestNamespace {
    let ns = setup(prefix).await;
    grant_on_call(&ns).await;
    wait_for_policies(&ns).await;
    install(&ns, entry).await;
    ns
}

pub async fn finish(ns: TestNamespace, entry: &str, operator: Operator) {
    operator.stop().await;
    uninstall(&ns, entry);
    ns.cleanup().await;
}

/// A Deployment `web` on the real node whose container exits 1 after a line on
/// stderr; returns its pod's name once that pod has crashed at least once.
pub async fn crash_looping_pod(ns: &TestNamespace) -> String {
    let crash = json!({"name": "app", "image": realnode::BUSYBOX, "command": ["sh", "-c", "echo starting; echo 'config invalid: port' >&2; exit 1"]});
    apply(ns, &[deployment("web", on_real_node(crash))]);
    let pod = wait_pod(ns, "web", |p| {
        p["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
    })
    .await;
    pod["metadata"]["name"]
        .as_str()
        .expect("a name")
        .to_string()
}
