//! End-to-end checks that the test cluster is real: a real API server with RBAC, a
//! real Job controller and scheduler, kwok pods that succeed or fail as asked, and
//! pod logs served through the `pods/log` API.
//!
//! Needs a cluster: `make test-e2e` (starts and stops one), or `make cluster-up`
//! then `cargo test --test cluster_e2e`. Without one, every test panics naming
//! `make cluster-up`.

mod common;

use std::time::Duration;

use common::{TIMEOUT, TestNamespace};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

fn job(name: &str, annotations: serde_json::Value, containers: &[&str]) -> Job {
    let containers: Vec<_> = containers
        .iter()
        .map(|c| json!({ "name": c, "image": "registry.invalid/playbook-step:1", "command": ["true"] }))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": name },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": { "annotations": annotations },
                "spec": { "restartPolicy": "Never", "containers": containers }
            }
        }
    }))
    .unwrap()
}

fn bare_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{ "name": "main", "image": "registry.invalid/playbook-step:1" }]
        }
    }))
    .unwrap()
}

async fn wait_job_condition(jobs: &Api<Job>, name: &str, cond_type: &'static str) {
    let cond = move |job: Option<&Job>| {
        job.and_then(|j| j.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == cond_type && c.status == "True")
            })
    };
    tokio::time::timeout(TIMEOUT, await_condition(jobs.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("job {name} not {cond_type} within {TIMEOUT:?}"))
        .unwrap();
}

fn terminated(pod: &Pod, container: &str) -> k8s_openapi::api::core::v1::ContainerStateTerminated {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.clone())
        .unwrap_or_else(|| panic!("container {container} not terminated: {:?}", pod.status))
}

#[tokio::test]
async fn job_pod_succeeds_and_serves_fixture_log() {
    let ns = TestNamespace::new("job-ok").await;
    // The step's output, StackPulse style; the last line has no newline on purpose.
    let main_log = "collecting facts\n<-- END -->\n{\"ok\": true, \"clients\": 3}";
    ns.set_container_log("main", main_log).await;
    ns.set_default_log("a container without its own fixture\n")
        .await;

    let jobs: Api<Job> = ns.api();
    let pods: Api<Pod> = ns.api();
    jobs.create(
        &PostParams::default(),
        &job("hello", json!({}), &["main", "helper"]),
    )
    .await
    .unwrap();

    let pod = common::wait_job_pod_terminal(&pods, "hello", TIMEOUT).await;
    assert_eq!(common::pod_phase(&pod), "Succeeded");
    assert_eq!(
        pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some("kwok-node-0")
    );
    for c in ["main", "helper"] {
        let t = terminated(&pod, c);
        assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    }

    // Read through the real API server, which proxies to kwok's kubelet endpoint.
    let name = pod.metadata.name.as_deref().unwrap();
    let lp = |c: &str| LogParams {
        container: Some(c.into()),
        ..LogParams::default()
    };
    assert_eq!(common::pod_log(&pods, name, &lp("main")).await, main_log);
    assert_eq!(
        common::pod_log(&pods, name, &lp("helper")).await,
        "a container without its own fixture\n"
    );
    // limitBytes (the operator bounds every read) and tailLines are honoured.
    let limited = LogParams {
        limit_bytes: Some(10),
        ..lp("main")
    };
    assert_eq!(common::pod_log(&pods, name, &limited).await, "collecting");
    let tail = LogParams {
        tail_lines: Some(1),
        ..lp("main")
    };
    assert_eq!(
        common::pod_log(&pods, name, &tail).await,
        "{\"ok\": true, \"clients\": 3}"
    );

    wait_job_condition(&jobs, "hello", "Complete").await;
    ns.cleanup().await;
}

#[tokio::test]
async fn annotated_job_pod_fails_with_exit_code() {
    let ns = TestNamespace::new("job-fail").await;
    ns.set_container_log("main", "connecting to redis\nERROR: connection refused\n")
        .await;
    let jobs: Api<Job> = ns.api();
    let pods: Api<Pod> = ns.api();
    let annotations = json!({
        common::EXIT_CODE_ANNOTATION: "3",
        common::MESSAGE_ANNOTATION: "redis unreachable",
    });
    jobs.create(
        &PostParams::default(),
        &job("broken", annotations, &["main"]),
    )
    .await
    .unwrap();

    let pod = common::wait_job_pod_terminal(&pods, "broken", TIMEOUT).await;
    assert_eq!(common::pod_phase(&pod), "Failed");
    let t = terminated(&pod, "main");
    assert_eq!(t.exit_code, 3);
    assert_eq!(t.reason.as_deref(), Some("Error"));
    assert_eq!(t.message.as_deref(), Some("redis unreachable"));
    let name = pod.metadata.name.as_deref().unwrap();
    assert_eq!(
        common::pod_log(&pods, name, &LogParams::default()).await,
        "connecting to redis\nERROR: connection refused\n"
    );

    wait_job_condition(&jobs, "broken", "Failed").await;
    ns.cleanup().await;
}

#[tokio::test]
async fn per_pod_log_fixture_and_duration_annotation() {
    let ns = TestNamespace::new("pod-logs").await;
    ns.set_container_log("main", "namespace-wide\n").await;
    ns.set_pod_log("solo", None, "only for solo\n").await;
    let pods: Api<Pod> = ns.api();

    let mut slow = bare_pod("slow");
    slow.metadata.annotations = Some(
        [(
            common::DURATION_ANNOTATION.to_string(),
            "1500ms".to_string(),
        )]
        .into(),
    );
    for pod in [bare_pod("solo"), bare_pod("other"), slow] {
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    for name in ["solo", "other"] {
        common::wait_pod(&pods, name, TIMEOUT, "Succeeded", |p| {
            common::pod_phase(p) == "Succeeded"
        })
        .await;
    }
    assert_eq!(
        common::pod_log(&pods, "solo", &LogParams::default()).await,
        "only for solo\n"
    );
    assert_eq!(
        common::pod_log(&pods, "other", &LogParams::default()).await,
        "namespace-wide\n"
    );

    // `slow` runs for 1.5 s before it succeeds.
    let running = common::wait_pod(&pods, "slow", TIMEOUT, "Running", |p| {
        matches!(common::pod_phase(p), "Running" | "Succeeded")
    })
    .await;
    assert_eq!(common::pod_phase(&running), "Running", "should still run");
    let started = std::time::Instant::now();
    common::wait_pod(&pods, "slow", TIMEOUT, "Succeeded", |p| {
        common::pod_phase(p) == "Succeeded"
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );

    // A pod with restartPolicy Always (a server) keeps running.
    let mut server = bare_pod("server");
    server.spec.as_mut().unwrap().restart_policy = Some("Always".into());
    pods.create(&PostParams::default(), &server).await.unwrap();
    common::wait_pod(&pods, "server", TIMEOUT, "Running", |p| {
        common::pod_phase(p) == "Running"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        common::pod_phase(&pods.get("server").await.unwrap()),
        "Running"
    );

    ns.cleanup().await;
}

#[tokio::test]
async fn rbac_is_enforced_for_ordinary_users() {
    let ns = TestNamespace::new("rbac").await;
    let alice = common::user_client("alice").await;
    let bob = common::user_client("bob").await;

    for (user, client) in [("alice", &alice), ("bob", &bob)] {
        let err = Api::<Pod>::namespaced(client.clone(), &ns.name)
            .list(&Default::default())
            .await
            .expect_err("an ordinary user must not list pods without a grant");
        match err {
            kube::Error::Api(s) => assert!(s.is_forbidden(), "{user}: expected 403, got {s:?}"),
            other => panic!("{user}: expected a 403 from the API server, got {other}"),
        }
    }

    // Grant alice `view` in the namespace: now she can, bob still cannot.
    let rb: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": { "name": "alice-view" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice" }]
    }))
    .unwrap();
    ns.api::<RoleBinding>()
        .create(&PostParams::default(), &rb)
        .await
        .unwrap();
    let alice_pods = Api::<Pod>::namespaced(alice.clone(), &ns.name);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = alice_pods.list(&Default::default()).await {
        assert!(
            std::time::Instant::now() < deadline,
            "alice still forbidden after the grant: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        Api::<Pod>::namespaced(bob, &ns.name)
            .list(&Default::default())
            .await
            .is_err()
    );

    // The namespace controller (kube-controller-manager) really removes namespaces.
    ns.cleanup_and_wait().await;
}

#[tokio::test]
async fn garbage_collector_deletes_owned_objects() {
    // The operator's Jobs are owned by their Execution and go with it.
    let ns = TestNamespace::new("gc").await;
    let cms: Api<ConfigMap> = ns.api();
    let owner: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "owner" } })).unwrap();
    let owner = cms.create(&PostParams::default(), &owner).await.unwrap();
    let child: ConfigMap = serde_json::from_value(json!({
        "metadata": {
            "name": "child",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                "uid": owner.metadata.uid.clone().unwrap()
            }]
        }
    }))
    .unwrap();
    cms.create(&PostParams::default(), &child).await.unwrap();
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while cms.get_opt("child").await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "child not garbage collected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ns.cleanup().await;
}

#[tokio::test]
async fn cluster_runs_the_pinned_kubernetes_version() {
    let client = common::client().await;
    let info = client.apiserver_version().await.unwrap();
    if common::local_cluster_env().is_none() {
        // Another cluster (kind, k3d, real): any version the CRDs support will do.
        eprintln!(
            "not the local test cluster; server reports {}",
            info.git_version
        );
        return;
    }
    let pinned = common::pinned_kubernetes_version();
    assert_eq!(info.git_version, pinned);

    let out = common::kubectl()
        .args(["version", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl version: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["clientVersion"]["gitVersion"], pinned.as_str());
    assert_eq!(v["serverVersion"]["gitVersion"], pinned.as_str());
}
