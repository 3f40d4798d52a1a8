//! The chart installed for real: `helm install` with the default values, the image that
//! `tests/cluster/operator-image.sh` builds from this crate's binary, and a placement on
//! the real node (`tests/cluster/realnode.sh`), in a namespace that enforces the
//! restricted Pod Security profile. The operator runs **only** as the chart's two pods
//! (no operator process of the test): their read-only root filesystem, user 65532,
//! seccomp, CPU limit of 1 and memory limit of 512Mi, probes and leader election.
//!
//! How the pods reach the API server: in-cluster config, unchanged. The kubelet gives
//! them `KUBERNETES_SERVICE_HOST` = the `kubernetes` Service's ClusterIP, and
//! `realnode.sh`'s `route_kubernetes_service` DNATs that address, in the node's network
//! namespace, to the socat forwarder on the host end of the veth (there is no
//! kube-proxy). How the test reaches each pod's address: `ip netns exec <node netns>
//! curl http://POD_IP:8080/...`, from inside the node's namespace, where the pods'
//! bridge is; nothing is added to the host.
//!
//! Needs the local cluster with its real node: `make test-e2e`, or `make cluster-up`
//! then `cargo test --test helm_e2e`. It prints what it measured (`--nocapture`).

mod common;

use std::time::{Duration, Instant};

use common::helm::{Release, cluster_env};
use common::operator::{execution, playbook, step, wait_final, wait_step_running};
use common::realnode::{self, BUSYBOX};
use common::{TestNamespace, random_suffix};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use playbook_operator::api::{Execution, ExecutionPhase, StepState};
use serde_json::{Value, json};

/// The chart's default `leaderElection.leaseDurationSeconds`.
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// The chart's default `preStopSleepSeconds`: a deleted pod gets SIGTERM (and its
/// leader releases the Lease) only after it.
const PRE_STOP: Duration = Duration::from_secs(5);
/// Two pods of a debug build starting on 2 shared cores.
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_runs_the_operator_as_two_real_pods() {
    let client = common::client().await;
    common::install_crds(&client).await;
    realnode::require(&client).await;
    import_image();

    let ns = TestNamespace::with_client(client.clone(), "helm").await;
    restrict(&ns).await;
    let work = TestNamespace::with_client(client.clone(), "helm-work").await;
    workloads(&work).await;

    let token = format!("helm-e2e-{}", random_suffix());
    let values = values(&token);
    let started = Instant::now();
    let mut release = Release::install_with(&ns, &values);
    let name = release.fullname();
    wait_rolled_out(&ns, &name).await;
    println!(
        "helm install -> both replicas Ready: {:?}",
        started.elapsed()
    );

    // Both replicas Ready, one holds the Lease, each serves /metrics and the webhook.
    let pods = ready_pods(&ns, &release).await;
    assert_eq!(pods.len(), 2, "two replicas: {:?}", names(&pods));
    let leader = holder(&ns, &name).await;
    assert!(
        names(&pods).contains(&leader),
        "the Lease holder {leader} is one of {:?}",
        names(&pods)
    );
    for pod in &pods {
        let (code, body) = pod_http(pod, "/metrics", None);
        assert_eq!(code, 200, "/metrics of {}: {body}", pod_name(pod));
        assert!(
            body.contains("playbook_executions_running"),
            "/metrics of {}: {body}",
            pod_name(pod)
        );
    }

    // An alert posted to one replica starts its run; the same alert posted to the other
    // replica is a duplicate: one Execution, run to Succeeded on the real node.
    let alert =
        json!({"id": format!("disk-full-{}", random_suffix()), "labels": {"alertname": "HelmE2E"}});
    let first = post_alert(&pods[0], &token, &alert);
    assert_eq!(
        first["created"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    let again = post_alert(&pods[1], &token, &alert);
    assert_eq!(
        again["duplicates"].as_array().map(Vec::len),
        Some(1),
        "{again}"
    );
    assert_eq!(again["created"], json!([]), "{again}");
    let runs = work
        .api::<Execution>()
        .list(&ListParams::default().labels("stackpulse.io/trigger=disk-full"))
        .await
        .expect("listing Executions");
    assert_eq!(runs.items.len(), 1, "one Execution for the alert");
    let alerted = runs.items[0].metadata.name.clone().expect("a name");
    let status = wait_final(&work, &alerted).await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    assert_eq!(
        step(&status, "hello").outputs,
        Some(json!({"ok": true})),
        "{status:?}"
    );

    // A jq filter that exhausts memory fails its step; the operator's pod lives on.
    execution(&work, "bomb-1", "jq-bomb", json!({})).await;
    let status = wait_final(&work, "bomb-1").await;
    let bomb = step(&status, "bomb");
    assert_eq!(bomb.state, StepState::Failed, "{bomb:?}");
    let message = bomb.message.clone().unwrap_or_default();
    assert!(
        message.contains("needed more than 256 MiB of memory"),
        "{message}"
    );
    for pod in ready_pods(&ns, &release).await {
        assert_not_restarted(&pod);
    }

    // Deleting the leader's pod hands the Lease over within the lease duration of its
    // SIGTERM (after the preStop sleep): a standby sleeps until the Lease it last read
    // expires, so the release does not wake it sooner. The run in flight finishes with
    // one Job per step.
    execution(&work, "handover-1", "slow", json!({})).await;
    wait_step_running(&work, "handover-1", "wait").await;
    let leader = holder(&ns, &name).await;
    let deleted = Instant::now();
    ns.api::<Pod>()
        .delete(&leader, &DeleteParams::default())
        .await
        .expect("deleting the leader's pod");
    let successor = loop {
        let now = holder(&ns, &name).await;
        if now != leader && !now.is_empty() {
            break now;
        }
        assert!(
            deleted.elapsed() < PRE_STOP + LEASE_DURATION * 2,
            "no new Lease holder {:?} after deleting {leader}",
            deleted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let handover = deleted.elapsed();
    println!("leader pod {leader} deleted -> {successor} holds the Lease: {handover:?}");
    assert!(
        handover <= PRE_STOP + LEASE_DURATION,
        "hand-over took {handover:?}, more than preStop + the lease duration"
    );
    assert_one_job_per_step(&work, "handover-1").await;
    wait_rolled_out(&ns, &name).await;

    // `helm upgrade` that changes a value rolls both replicas, never more than the
    // PDB's maxUnavailable (1) down, and the run in flight finishes.
    execution(&work, "upgrade-1", "slow", json!({})).await;
    wait_step_running(&work, "upgrade-1", "wait").await;
    let before: Vec<String> = names(&ready_pods(&ns, &release).await);
    let mut upgraded = values.clone();
    upgraded.extend(["--set".to_string(), "logLevel=debug".to_string()]);
    let started = Instant::now();
    release.upgrade(&upgraded);
    let min_ready = wait_rolled_out(&ns, &name).await;
    println!(
        "helm upgrade (logLevel) -> both replicas rolled: {:?}, fewest Ready meanwhile: {min_ready}",
        started.elapsed()
    );
    assert!(
        min_ready >= 1,
        "the rollout took both replicas down (PDB maxUnavailable 1)"
    );
    let after = ready_pods(&ns, &release).await;
    assert!(
        names(&after).iter().all(|p| !before.contains(p)),
        "both replicas replaced: {before:?} -> {:?}",
        names(&after)
    );
    for pod in &after {
        assert_eq!(
            env(pod, "RUST_LOG").as_deref(),
            Some("debug"),
            "{}",
            pod_name(pod)
        );
    }
    assert_one_job_per_step(&work, "upgrade-1").await;

    // Uninstall leaves nothing of the release behind but the CRDs.
    release.uninstall();
    assert_nothing_left(&ns, &name).await;
    work.cleanup().await;
    ns.cleanup().await;
}

/// Builds the image from this test's own binary and imports it into the real node.
fn import_image() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/cluster/operator-image.sh"
    );
    let mut cmd = std::process::Command::new(script);
    cmd.arg(env!("CARGO_BIN_EXE_playbook-operator")).env(
        "PLAYBOOK_OPERATOR_CLUSTER_DIR",
        common::kubeconfig_path()
            .parent()
            .expect("the cluster's state dir"),
    );
    common::helm::run(cmd, "tests/cluster/operator-image.sh");
}

/// The restricted Pod Security profile, enforced on the release's namespace.
async fn restrict(ns: &TestNamespace) {
    let labels = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }}});
    Api::<Namespace>::all(ns.client.clone())
        .patch(&ns.name, &PatchParams::default(), &Patch::Merge(labels))
        .await
        .expect("labelling the namespace restricted");
}

/// The chart's default values, but: the image is the imported one (the chart's default
/// name, pull policy IfNotPresent); the pods go to the real node; a webhook token; the
/// admission policies stay the harness's (cluster-wide, shared by every test).
fn values(token: &str) -> Vec<String> {
    let placement = realnode::placement();
    [
        ("--set", "admissionPolicies.enabled=false".to_string()),
        ("--set", "webhook.auth.create=true".to_string()),
        ("--set", format!("webhook.auth.token={token}")),
        (
            "--set-json",
            format!("nodeSelector={}", placement["nodeSelector"]),
        ),
        (
            "--set-json",
            format!("tolerations={}", placement["tolerations"]),
        ),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .collect()
}

/// Playbooks whose steps really run on the real node, and the Trigger of the alert.
async fn workloads(work: &TestNamespace) {
    realnode::runner(work, "real", json!({})).await;
    let step = |id: &str, script: &str| json!({"id": id, "image": BUSYBOX, "runner": "real", "command": ["/bin/sh", "-c", script]});
    let output = r#"echo '<-- END -->'; echo '{"ok": true}'"#;
    playbook(work, "hello", json!([step("hello", output)])).await;
    let slow = format!("sleep 8; {output}");
    playbook(
        work,
        "slow",
        json!([step("wait", &slow), step("after", output)]),
    )
    .await;
    let mut bomb = step("bomb", output);
    bomb["outputParser"] = json!({"name": "json", "jq": "[range(1e9)]"});
    playbook(work, "jq-bomb", json!([bomb])).await;
    common::operator::create::<playbook_operator::api::Trigger>(
        work,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Trigger",
            "metadata": {"name": "disk-full"},
            "spec": {"playbookRef": {"name": "hello"}, "sources": ["generic"],
                     "match": {"labels": {"alertname": "HelmE2E"}}},
        }),
    )
    .await;
}

/// Waits until the Deployment has rolled out (every replica of the current template,
/// Ready, no old pod); returns the fewest Ready replicas seen meanwhile.
async fn wait_rolled_out(ns: &TestNamespace, name: &str) -> i32 {
    let api = ns.api::<Deployment>();
    let deadline = Instant::now() + ROLLOUT_TIMEOUT;
    let mut fewest = i32::MAX;
    loop {
        let d = api.get(name).await.expect("the chart's Deployment");
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let s = d.status.clone().unwrap_or_default();
        let ready = s.ready_replicas.unwrap_or(0);
        fewest = fewest.min(ready);
        let current = s.observed_generation >= d.metadata.generation;
        if current && s.updated_replicas == Some(want) && ready == want && s.replicas == Some(want)
        {
            return fewest;
        }
        assert!(
            Instant::now() < deadline,
            "Deployment {name} not rolled out within {ROLLOUT_TIMEOUT:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn ready_pods(ns: &TestNamespace, release: &Release) -> Vec<Pod> {
    let selector = format!("app.kubernetes.io/instance={}", release.name);
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("listing pods");
    pods.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect()
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter().map(pod_name).collect()
}

fn env(pod: &Pod, key: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let env = spec.containers.first()?.env.as_ref()?;
    env.iter().find(|e| e.name == key)?.value.clone()
}

/// The Lease's holder ("" when none).
async fn holder(ns: &TestNamespace, name: &str) -> String {
    let lease = ns
        .api::<Lease>()
        .get_opt(name)
        .await
        .expect("reading the Lease");
    lease
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .unwrap_or_default()
}

/// GET (or POST `body` with the bearer token) on the pod's address, from the node's
/// network namespace: (status, body).
fn pod_http(pod: &Pod, path: &str, post: Option<(&str, &Value)>) -> (u16, String) {
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("a pod IP");
    let mut cmd = std::process::Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &cluster_env("REAL_NODE_NETNS"),
        "curl",
        "-sS",
        "-m",
        "20",
    ]);
    cmd.args(["-w", "\n%{http_code}"]);
    if let Some((token, body)) = post {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body.to_string(),
        ]);
    }
    cmd.arg(format!("http://{ip}:8080{path}"));
    let out = common::helm::run(cmd, &format!("curl {path} on {} ({ip})", pod_name(pod)));
    let (body, code) = out.rsplit_once('\n').expect("curl's status line");
    (
        code.trim().parse().expect("an HTTP status"),
        body.to_string(),
    )
}

/// Posts a generic alert to this replica; its 202 answer.
fn post_alert(pod: &Pod, token: &str, alert: &Value) -> Value {
    let (code, body) = pod_http(pod, "/webhooks/generic", Some((token, alert)));
    assert_eq!(code, 202, "the webhook of {}: {body}", pod_name(pod));
    serde_json::from_str(&body).expect("a JSON answer")
}

fn assert_not_restarted(pod: &Pod) {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    for c in statuses {
        assert_eq!(
            c.restart_count,
            0,
            "{} restarted: {:?}",
            pod_name(pod),
            c.last_state
        );
    }
}

/// The run Succeeded, every step with exactly one Job.
async fn assert_one_job_per_step(work: &TestNamespace, run: &str) {
    let status = wait_final(work, run).await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{run}: {status:?}");
    let jobs = work
        .api::<Job>()
        .list(&ListParams::default().labels(&format!("stackpulse.io/execution={run}")))
        .await
        .expect("listing Jobs");
    let mut steps: Vec<String> = jobs
        .items
        .iter()
        .filter_map(|j| {
            j.metadata
                .labels
                .as_ref()?
                .get("stackpulse.io/step")
                .cloned()
        })
        .collect();
    steps.sort();
    assert_eq!(steps, ["after", "wait"], "{run}: one Job per step");
}

/// After `helm uninstall`: no object of the release in its namespace or cluster-wide,
/// and no Lease (the operator's one object of its own).
async fn assert_nothing_left(ns: &TestNamespace, name: &str) {
    const KINDS: &str = "all,configmaps,secrets,serviceaccounts,roles,rolebindings,leases,\
                         poddisruptionbudgets,runners";
    let get = |args: &[&str]| {
        let out = common::kubectl()
            .args(["get", "-o", "name"])
            .args(args)
            .output();
        String::from_utf8_lossy(&out.expect("kubectl get").stdout).into_owned()
    };
    // The pods stop after their preStop sleep: the Deployment's deletion cascades.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = get(&[KINDS, "-n", &ns.name]);
        let left: Vec<&str> = text
            .lines()
            // The namespace's own, and the harness's grant of `use` on Runner default.
            .filter(|l| !matches!(*l, "configmap/kube-root-ca.crt" | "serviceaccount/default"))
            .filter(|l| !l.ends_with("/use-runner-default"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind in {} after helm uninstall: {left:?}",
            ns.name
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cluster = get(&["clusterroles,clusterrolebindings"]);
    let left: Vec<&str> = cluster.lines().filter(|l| l.contains(name)).collect();
    assert!(
        left.is_empty(),
        "left behind cluster-wide after helm uninstall: {left:?}"
    );
}
