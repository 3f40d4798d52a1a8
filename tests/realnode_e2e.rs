//! Steps on the real node of the local cluster (`tests/cluster/realnode.sh`): a real
//! kubelet with containerd runs the containers, so exit codes, logs and the
//! expansion of secret env vars are the container's own, not kwok's fixtures.
//!
//! Needs the cluster with its real node: `make test-e2e`, or `make cluster-up` then
//! `cargo test --test realnode_e2e`. Without the node every test fails with the reason
//! the cluster recorded.

mod common;

use std::time::{Duration, Instant};

use common::operator::*;
use common::process::OperatorProcess;
use common::realnode::{self, BUSYBOX};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, LogParams, PostParams};
use playbook_operator::api::{Execution, StepState};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The log of a real container becomes the step's parsed outputs, which reach the
/// next step; that one's exit code 3 and log tail become its exit code and message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_containers_exit_code_and_log_become_the_steps_result() {
    let ns = setup("real-exit").await;
    realnode::runner(&ns, "real", json!({})).await;
    let probe =
        r#"echo collecting facts; echo '<-- END -->'; echo '{"clients": 7, "role": "replica"}'"#;
    let fails = r#"echo "saw $CLIENTS clients"; echo '<-- END -->'; echo '{"ok": false}'; exit 3"#;
    playbook(
        &ns,
        "exits",
        json!([
            {"id": "probe", "image": BUSYBOX, "runner": "real", "command": ["/bin/sh", "-c", probe]},
            {"id": "fails", "image": BUSYBOX, "runner": "real", "command": ["/bin/sh", "-c", fails],
             "env": {"CLIENTS": "{{ .steps.probe.outputs.clients }}"}}
        ]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "exits-1", "exits", json!({})).await;
    let status = wait_final(&ns, "exits-1").await;
    let probe = step(&status, "probe");
    assert_eq!(probe.state, StepState::Succeeded, "{probe:?}");
    assert_eq!(probe.exit_code, Some(0), "{probe:?}");
    assert_eq!(
        probe.outputs,
        Some(json!({"clients": 7, "role": "replica"})),
        "{probe:?}"
    );
    let fails = step(&status, "fails");
    assert_eq!(fails.state, StepState::Failed, "{fails:?}");
    assert_eq!(fails.exit_code, Some(3), "{fails:?}");
    assert!(
        fails
            .message
            .as_deref()
            .is_some_and(|m| m.contains("exit code 3") && m.contains("saw 7 clients")),
        "the message quotes the real log: {fails:?}"
    );

    // It ran on the real node, by a real runtime (kwok gives no container ids).
    let job = fails.job_name.clone().expect("the step names its Job");
    let pod = common::wait_job_pod_terminal(&ns.api(), &job, common::TIMEOUT).await;
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(realnode::NODE)
    );
    let terminated = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.clone())
        .expect("a terminated container");
    assert_eq!(terminated.exit_code, 3);
    assert!(
        terminated
            .container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("containerd://")),
        "{terminated:?}"
    );
    operator.stop().await;
    ns.cleanup().await;
}

/// A real container that writes its JSON to `/dev/termination-log` hands it over
/// there: its chatter on stdout is not the output, the next step reads the JSON, and
/// one longer than the kubelet keeps (4 KiB) fails its step saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_containers_termination_message_is_its_output() {
    let ns = setup("real-message").await;
    realnode::runner(&ns, "real", json!({})).await;
    let hands = r#"echo 'checking replicas'; printf '{"replicas": 3}' > /dev/termination-log"#;
    let uses = r#"echo "got $R"; printf '{"got": %s}' "$R" > /dev/termination-log"#;
    // 5,000 bytes of JSON: the kubelet keeps the first 4,096.
    let big = r#"printf '{"pad": "%05000d"}' 0 > /dev/termination-log"#;
    playbook(
        &ns,
        "message",
        json!([
            {"id": "hands", "image": BUSYBOX, "runner": "real", "command": ["/bin/sh", "-c", hands]},
            {"id": "uses", "image": BUSYBOX, "runner": "real", "command": ["/bin/sh", "-c", uses],
             "env": {"R": "{{ .steps.hands.outputs.replicas }}"}},
            {"id": "big", "image": BUSYBOX, "runner": "real", "command": ["/bin/sh", "-c", big],
             "outputParser": {"name": "json"}}
        ]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "message-1", "message", json!({})).await;
    let status = wait_final(&ns, "message-1").await;
    let hands = step(&status, "hands");
    assert_eq!(hands.state, StepState::Succeeded, "{hands:?}");
    assert_eq!(hands.outputs, Some(json!({"replicas": 3})), "{hands:?}");
    let uses = step(&status, "uses");
    assert_eq!(uses.outputs, Some(json!({"got": 3})), "{uses:?}");
    let big = step(&status, "big");
    assert_eq!(big.state, StepState::Failed, "{big:?}");
    assert!(
        big.message
            .as_deref()
            .is_some_and(|m| m.contains("cut at 4 KiB by the kubelet")),
        "{big:?}"
    );
    operator.stop().await;
    ns.cleanup().await;
}

/// `{{ secret "Redis_Secret" }}` in an env value reaches the real container expanded,
/// and the value is nowhere the operator writes: status, Events, its log, the Job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_the_real_container_and_nothing_else() {
    let ns = setup("real-secret").await;
    let secret = format!("s3cr3t-{}", common::random_suffix());
    let secret_obj: Secret = from_json(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "redis-creds"},
        "stringData": {"Redis_Secret": secret}
    }));
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret_obj)
        .await
        .expect("creating the Secret");
    realnode::runner(&ns, "real", json!({"secretName": "redis-creds"})).await;
    // The container prints a hash of what it received, never the value itself.
    let script = "printf %s \"$REDIS_URL\" | sha256sum | cut -c1-64 >/tmp/h; read h </tmp/h; \
                  echo '<-- END -->'; echo \"{\\\"sha\\\": \\\"$h\\\"}\"";
    playbook(
        &ns,
        "uses-secret",
        json!([{
            "id": "connect", "image": BUSYBOX, "runner": "real",
            "command": ["/bin/sh", "-c", script],
            "env": {"REDIS_URL": "redis://{{ secret \"Redis_Secret\" }}@host/"}
        }]),
    )
    .await;
    let mut operator = OperatorProcess::start(&ns, &[]);
    execution(&ns, "uses-secret-1", "uses-secret", json!({})).await;
    let status = wait_final(&ns, "uses-secret-1").await;
    let connect = step(&status, "connect");
    assert_eq!(connect.state, StepState::Succeeded, "{status:?}");
    let expected = hex(&Sha256::digest(format!("redis://{secret}@host/")));
    assert_eq!(
        connect.outputs,
        Some(json!({"sha": expected})),
        "the container saw another REDIS_URL than the expanded secret"
    );

    let jobs = jobs_of_step(&ns, "connect").await;
    assert_eq!(jobs.len(), 1);
    assert!(
        env_value(&jobs[0], "REDIS_URL").is_some_and(|v| v.contains("$(")),
        "the Job's env refers to the secret, it does not hold it: {:?}",
        env_value(&jobs[0], "REDIS_URL")
    );
    let lp = ListParams::default();
    let written = [
        (
            "Executions",
            serde_json::to_string(&ns.api::<Execution>().list(&lp).await.expect("list").items),
        ),
        (
            "Jobs",
            serde_json::to_string(&ns.api::<Job>().list(&lp).await.expect("list").items),
        ),
        (
            "Events",
            serde_json::to_string(&ns.api::<Event>().list(&lp).await.expect("list").items),
        ),
        (
            "core Events",
            serde_json::to_string(&ns.api::<CoreEvent>().list(&lp).await.expect("list").items),
        ),
    ];
    operator.terminate();
    let log = operator.log();
    assert!(
        log.contains("uses-secret-1"),
        "the operator logged the run: {log}"
    );
    for (what, text) in written
        .into_iter()
        .map(|(w, t)| (w, t.expect("serializes")))
        .chain([("the operator's log", log)])
    {
        assert!(!text.contains(&secret), "the secret value is in {what}");
    }
    ns.cleanup().await;
}

/// The node is a real kubelet that kwok leaves alone: a pod there runs in containerd,
/// its log and `exec` go from the API server to the kubelet over the node's veth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_node_runs_pods_with_a_real_kubelet() {
    let ns = common::TestNamespace::new("real-node").await;
    let node = realnode::require(&ns.client).await;
    assert_eq!(
        realnode::ready_reason(&node).as_deref(),
        Some("KubeletReady")
    );
    let annotations = node.metadata.annotations.clone().unwrap_or_default();
    assert!(
        !annotations.contains_key("kwok.x-k8s.io/node"),
        "kwok must not manage the real node: {annotations:?}"
    );
    let info = node
        .status
        .as_ref()
        .and_then(|s| s.node_info.clone())
        .expect("nodeInfo");
    assert_eq!(info.kubelet_version, common::pinned_kubernetes_version());
    assert!(
        info.container_runtime_version.starts_with("containerd://"),
        "{info:?}"
    );
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    assert!(
        taints
            .iter()
            .any(|t| t.key == realnode::KEY && t.effect == "NoSchedule"),
        "{taints:?}"
    );

    let pods: Api<Pod> = ns.api();
    let pod = |name: &str, script: &str| -> Pod {
        let mut spec = realnode::placement();
        spec["restartPolicy"] = json!("Never");
        spec["containers"] =
            json!([{"name": "main", "image": BUSYBOX, "command": ["/bin/sh", "-c", script]}]);
        from_json(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}),
        )
    };
    pods.create(
        &PostParams::default(),
        &pod("server", "echo hello from a real container; sleep 60"),
    )
    .await
    .expect("creating pod server");
    let running = common::wait_pod(&pods, "server", common::TIMEOUT, "Running", |p| {
        common::pod_phase(p) == "Running"
    })
    .await;
    assert_eq!(
        running.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(realnode::NODE)
    );
    let log = pods
        .logs("server", &LogParams::default())
        .await
        .expect("log");
    assert_eq!(log, "hello from a real container\n");
    let out = common::kubectl()
        .args([
            "exec",
            "-n",
            &ns.name,
            "server",
            "--",
            "echo",
            "exec reached the kubelet",
        ])
        .output()
        .expect("running kubectl exec");
    assert!(
        out.status.success(),
        "kubectl exec: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "exec reached the kubelet\n"
    );

    // Pod create -> Succeeded on the real node (printed for the README's table).
    let start = Instant::now();
    pods.create(&PostParams::default(), &pod("quick", "true"))
        .await
        .expect("creating pod quick");
    common::wait_pod(&pods, "quick", common::TIMEOUT, "Succeeded", |p| {
        common::pod_phase(p) == "Succeeded"
    })
    .await;
    eprintln!(
        "pod create -> Succeeded on {}: {:?}",
        realnode::NODE,
        start.elapsed()
    );
    assert!(start.elapsed() < Duration::from_secs(30));
    ns.cleanup().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
