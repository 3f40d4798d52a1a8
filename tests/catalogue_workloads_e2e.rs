//! The rest of the catalogue end to end (see `catalogue_e2e` for the crash loop, the
//! failed Job, the full claim and the alert from Alertmanager): each test makes its
//! alert's cause out of real objects, on the real node where a container must really
//! fail and on kwok's node where a running pod is enough, then checks the verdict,
//! that the remediation waits for an approval (or is skipped when the verdict is not
//! one it fixes), and for some, its change once bob approves.
//!
//! Needs the cluster with its real node: `make cluster-up`, then
//! `cargo test --test catalogue_workloads_e2e`.

mod common;

use std::time::Duration;

use common::TestNamespace;
use common::catalogue::*;
use common::operator::*;
use common::realnode;
use playbook_operator::api::{ExecutionStatus, StepState};
use serde_json::{Value, json};

/// What a case expects: the verdict, and the remediation step's state before any
/// approval (`WaitingApproval`, or `Skipped` for a verdict it does not fix).
struct Case {
    entry: &'static str,
    verdict: &'static str,
    remediation: &'static str,
    waits: bool,
}

/// Starts the operator once the test has made the failure, runs the entry with
/// `params`, checks the verdict and the remediation's state; returns the operator
/// (for [`finish`]) and the run's status, for the caller's approval when the
/// remediation waits.
async fn check(ns: &TestNamespace, case: &Case, params: Value) -> (Operator, ExecutionStatus) {
    let operator = Operator::start(ns);
    let status = run(
        ns,
        case.entry,
        params,
        case.waits.then_some(case.remediation),
    )
    .await;
    assert_eq!(
        verdict(&status),
        case.verdict,
        "{}: {status:#?}",
        case.entry
    );
    let want = if case.waits {
        StepState::WaitingApproval
    } else {
        StepState::Skipped
    };
    assert_eq!(
        step(&status, case.remediation).state,
        want,
        "{}: {status:#?}",
        case.entry
    );
    (operator, status)
}

/// A container `name` that sleeps for an hour on busybox, with the fields of `extra`.
fn sleeper(name: &str, extra: Value) -> Value {
    let mut container =
        json!({"name": name, "image": realnode::BUSYBOX, "command": ["sleep", "3600"]});
    if let (Some(fields), Value::Object(extra)) = (container.as_object_mut(), extra) {
        fields.extend(extra);
    }
    container
}

/// A readiness probe that fails every second.
fn failing_probe() -> Value {
    json!({"readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1}})
}

/// Waits for the kubelet's first `Unhealthy` Event in the namespace: what the probe
/// rules read.
async fn wait_unhealthy(ns: &TestNamespace, timeout: Duration) {
    wait_object(
        ns,
        &["events", "--field-selector=reason=Unhealthy"],
        timeout,
        |l| l["items"].as_array().is_some_and(|i| !i.is_empty()),
    )
    .await;
}

/// Waits until Deployment `name` has its one replica ready.
async fn wait_deployment_ready(ns: &TestNamespace, name: &str) {
    wait_object(ns, &["deployment", name], Duration::from_secs(120), |d| {
        d["status"]["readyReplicas"] == 1
    })
    .await;
}

fn pod_name(pod: &Value) -> String {
    pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A container whose Secret is missing waits with CreateContainerConfigError: a
/// config error, which neither a rollback (one revision) nor a delete fixes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_waiting_on_a_missing_secret_is_a_config_error() {
    let case = Case {
        entry: "kube-container-waiting",
        verdict: "ConfigError",
        remediation: "delete-pod",
        waits: false,
    };
    let ns = setup_entry("cat-waiting", case.entry).await;
    let app = sleeper(
        "app",
        json!({"envFrom": [{"secretRef": {"name": "db-credentials"}}]}),
    );
    apply(&ns, &[deployment("api", on_real_node(app))]);
    let pod = wait_pod(&ns, "api", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "CreateContainerConfigError"
    })
    .await;
    let params = json!({"Namespace": ns.name, "Pod": pod_name(&pod)});
    let (operator, _) = check(&ns, &case, params).await;
    finish(ns, case.entry, operator).await;
}

/// A pod whose readiness probe fails: probe failure, and the stuck pod is deleted
/// (its ReplicaSet makes a new one) once bob approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_pod_with_a_failing_probe_is_deleted_after_approval() {
    let case = Case {
        entry: "kube-pod-not-ready",
        verdict: "ProbeFailure",
        remediation: "delete-pod",
        waits: true,
    };
    let ns = setup_entry("cat-notready", case.entry).await;
    let app = sleeper("app", failing_probe());
    apply(&ns, &[deployment("api", on_real_node(app))]);
    let pod = wait_pod(&ns, "api", |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    })
    .await;
    wait_unhealthy(&ns, Duration::from_secs(60)).await;
    let params = json!({"Namespace": ns.name, "Pod": pod_name(&pod)});
    let (operator, _) = check(&ns, &case, params).await;
    approve(&ns, case.remediation).await;
    let uid = pod["metadata"]["uid"].clone();
    wait_object(
        &ns,
        &["pods", "-l", "app=api"],
        Duration::from_secs(60),
        |l| {
            l["items"]
                .as_array()
                .is_some_and(|i| !i.is_empty() && i.iter().all(|p| p["metadata"]["uid"] != uid))
        },
    )
    .await;
    finish(ns, case.entry, operator).await;
}

/// A rollout to an image that does not pull: ImagePull, and the Deployment is rolled
/// back to the image of revision 1 once bob approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_mismatch_after_a_bad_image_is_rolled_back_after_approval() {
    let case = Case {
        entry: "kube-deployment-replicas-mismatch",
        verdict: "ImagePull",
        remediation: "rollback",
        waits: true,
    };
    let ns = setup_entry("cat-mismatch", case.entry).await;
    let good = sleeper("app", json!({}));
    apply(&ns, &[deployment("shop", on_real_node(good))]);
    wait_deployment_ready(&ns, "shop").await;
    let bad =
        json!({"name": "app", "image": "local/does-not-exist:1", "command": ["sleep", "3600"]});
    apply(&ns, &[deployment("shop", on_real_node(bad))]);
    wait_pod(&ns, "shop", |p| {
        let reason = &p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"];
        reason == "ErrImagePull" || reason == "ImagePullBackOff"
    })
    .await;
    let params = json!({"Namespace": ns.name, "Deployment": "shop"});
    let (operator, _) = check(&ns, &case, params).await;
    approve(&ns, case.remediation).await;
    wait_object(&ns, &["deployment", "shop"], Duration::from_secs(30), |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] == realnode::BUSYBOX
    })
    .await;
    finish(ns, case.entry, operator).await;
}

/// A rollout past its progress deadline: RolloutStuck, the rollback waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_past_its_deadline_is_stuck_and_the_rollback_waits() {
    let case = Case {
        entry: "kube-deployment-rollout-stuck",
        verdict: "RolloutStuck",
        remediation: "rollback",
        waits: true,
    };
    let ns = setup_entry("cat-stuck", case.entry).await;
    let good = sleeper("app", json!({}));
    let mut d = deployment("shop", on_real_node(good));
    d["spec"]["progressDeadlineSeconds"] = json!(2);
    apply(&ns, &[d.clone()]);
    wait_deployment_ready(&ns, "shop").await;
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("local/does-not-exist:1");
    apply(&ns, &[d]);
    wait_object(
        &ns,
        &["deployment", "shop"],
        Duration::from_secs(120),
        |d| {
            d["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["reason"] == "ProgressDeadlineExceeded"))
        },
    )
    .await;
    let params = json!({"Namespace": ns.name, "Deployment": "shop"});
    let (operator, _) = check(&ns, &case, params).await;
    finish(ns, case.entry, operator).await;
}

/// A StatefulSet pod that never gets ready: probe failure, deleting it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_with_a_failing_probe_waits_to_delete_its_stuck_pod() {
    let case = Case {
        entry: "kube-statefulset-replicas-mismatch",
        verdict: "ProbeFailure",
        remediation: "delete-stuck-pod",
        waits: true,
    };
    let ns = setup_entry("cat-sts", case.entry).await;
    let app = sleeper("db", failing_probe());
    apply(
        &ns,
        &[
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": on_real_node(app)}}}),
        ],
    );
    wait_unhealthy(&ns, Duration::from_secs(120)).await;
    let params = json!({"Namespace": ns.name, "StatefulSet": "db"});
    let (operator, status) = check(&ns, &case, params).await;
    assert_eq!(
        step(&status, "pods").outputs.clone().unwrap_or_default()["stuckPod"],
        "db-0"
    );
    finish(ns, case.entry, operator).await;
}

/// An autoscaler without metrics (no metrics server here): MetricsUnavailable, so
/// raising maxReplicas is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscaler_without_metrics_is_named_and_not_raised() {
    let case = Case {
        entry: "kube-hpa-maxed-out",
        verdict: "MetricsUnavailable",
        remediation: "raise-max",
        waits: false,
    };
    let ns = setup_entry("cat-hpa", case.entry).await;
    let mut pod = json!({"containers": [{"name": "app", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]});
    pod["terminationGracePeriodSeconds"] = json!(1);
    apply(
        &ns,
        &[
            deployment("web", pod),
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 1, "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}}),
        ],
    );
    wait_object(&ns, &["hpa", "web"], Duration::from_secs(120), |h| {
        h["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "ScalingActive" && c["status"] == "False")
        })
    })
    .await;
    let params = json!({"Namespace": ns.name, "HorizontalPodAutoscaler": "web"});
    let (operator, _) = check(&ns, &case, params).await;
    finish(ns, case.entry, operator).await;
}

/// A node that reports memory pressure (a Node object whose status the test writes,
/// no kubelet behind it): NodePressure, and it is cordoned once bob approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_under_pressure_is_cordoned_after_approval() {
    let case = Case {
        entry: "kube-node-not-ready",
        verdict: "NodePressure",
        remediation: "cordon",
        waits: true,
    };
    let ns = setup_entry("cat-node", case.entry).await;
    let node = format!("sick-{}", ns.name);
    kubectl(
        &["create", "-f", "-"],
        Some(&json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}).to_string()),
    );
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "PLEG is not healthy", "lastHeartbeatTime": now, "lastTransitionTime": now},
        {"type": "MemoryPressure", "status": "True", "reason": "KubeletHasInsufficientMemory", "message": "memory available 90Mi", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    kubectl(
        &[
            "patch",
            "node",
            &node,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ],
        None,
    );
    let (operator, _) = check(&ns, &case, json!({"Node": node})).await;
    approve(&ns, case.remediation).await;
    let cordoned = kubectl(
        &["get", "node", &node, "-o", "jsonpath={.spec.unschedulable}"],
        None,
    );
    kubectl(&["delete", "node", &node, "--wait=false"], None);
    assert_eq!(cordoned, "true");
    finish(ns, case.entry, operator).await;
}

/// A container whose CPU limit equals its request: the limit of its Deployment is
/// doubled once bob approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_container_gets_its_cpu_limit_doubled_after_approval() {
    let case = Case {
        entry: "cpu-throttling-high",
        verdict: "CPULimitEqualsRequest",
        remediation: "double-cpu-limit",
        waits: true,
    };
    let ns = setup_entry("cat-cpu", case.entry).await;
    let pod = json!({"terminationGracePeriodSeconds": 1, "containers": [{"name": "app", "image": "busybox",
        "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "100m"}}}]});
    apply(&ns, &[deployment("web", pod)]);
    let pod = wait_pod(&ns, "web", |p| p["status"]["phase"] == "Running").await;
    let params = json!({"Namespace": ns.name, "Pod": pod_name(&pod)});
    let (operator, _) = check(&ns, &case, params).await;
    approve(&ns, case.remediation).await;
    wait_object(&ns, &["deployment", "web"], Duration::from_secs(10), |d| {
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "200m"
    })
    .await;
    finish(ns, case.entry, operator).await;
}

/// A quota of one Service, used: AlmostFull, and it is raised to 2 once bob approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_quota_is_raised_after_approval() {
    let case = Case {
        entry: "kube-quota-almost-full",
        verdict: "AlmostFull",
        remediation: "raise-quota",
        waits: true,
    };
    let ns = setup_entry("cat-quota", case.entry).await;
    // The Service only once the quota controller has counted the empty namespace: a
    // create charged by admission while that first count is in flight can be counted
    // over by it (from a Service cache that does not show the create yet), and then
    // only the controller's resync, minutes later, counts the Service.
    apply(
        &ns,
        &[
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "services"}, "spec": {"hard": {"services": "1"}}}),
        ],
    );
    wait_object(
        &ns,
        &["resourcequota", "services"],
        Duration::from_secs(60),
        |q| q["status"]["used"]["services"] == "0",
    )
    .await;
    apply(
        &ns,
        &[
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
        ],
    );
    wait_object(
        &ns,
        &["resourcequota", "services"],
        Duration::from_secs(120),
        |q| q["status"]["used"]["services"] == "1",
    )
    .await;
    let params = json!({"Namespace": ns.name, "ResourceQuota": "services"});
    let (operator, _) = check(&ns, &case, params).await;
    approve(&ns, case.remediation).await;
    wait_object(
        &ns,
        &["resourcequota", "services"],
        Duration::from_secs(10),
        |q| q["spec"]["hard"]["services"] == "2",
    )
    .await;
    finish(ns, case.entry, operator).await;
}
