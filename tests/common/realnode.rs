//! The real kubelet node of the local cluster (`tests/cluster/realnode.sh`): where a
//! test puts a step that must really run (real exit codes, logs, env expansion,
//! image pulls, OOM kills), beside kwok's fake node that runs everything else.
//!
//! ```ignore
//! let ns = common::operator::setup("my-test").await;
//! common::realnode::runner(&ns, "real", json!({})).await; // checks the node first
//! // steps with `"runner": "real", "image": common::realnode::BUSYBOX` run there
//! ```
//!
//! The node is tainted; only pods with [`placement`]'s toleration and node selector
//! land on it. If it is missing or not Ready, [`require`] panics with the reason
//! `up.sh` recorded (never skips).

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use playbook_operator::api::Runner;
use serde_json::{Value, json};

use super::TestNamespace;

/// The node's name, and the key of its taint and label (value `"true"`); the same
/// as in `tests/cluster/realnode.sh`.
pub const NODE: &str = "real-node-0";
pub const KEY: &str = "stackpulse.io/real-node";
/// An image on the node (busybox, user 65534, `PATH=/bin`); `local/pause:1` is
/// the other. No registry: every other image fails to pull.
pub const BUSYBOX: &str = "local/busybox:1";
/// The same busybox with no user in its config: it runs as root, so the operator's
/// default `runAsNonRoot` refuses it (`CreateContainerConfigError`).
pub const ROOT_BUSYBOX: &str = "local/busybox-root:1";

/// Runner (or pod spec) fields that put pods on the real node: its label as node
/// selector, and a toleration of its taint.
pub fn placement() -> Value {
    json!({
        "nodeSelector": {KEY: "true"},
        "tolerations": [{"key": KEY, "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
    })
}

/// Panics unless the real node is registered and Ready, with the reason the cluster
/// recorded when it could not start one (`<state>/realnode/unavailable`).
pub async fn require(client: &kube::Client) -> Node {
    let unavailable = super::kubeconfig_path()
        .with_file_name("realnode")
        .join("unavailable");
    if let Ok(reason) = std::fs::read_to_string(&unavailable) {
        panic!(
            "this test needs the real node {NODE}, which the local cluster could not start: {}",
            reason.trim()
        );
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let node = nodes.get_opt(NODE).await.ok().flatten();
        if let Some(node) = node.as_ref().filter(|n| ready_reason(n).is_some()) {
            return node.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "this test needs the real node {NODE}, which is {} (the local cluster starts it: \
             tests/cluster/up.sh; its log is <state>/logs/kubelet.log)",
            match node {
                None => "not registered".to_string(),
                Some(_) => "not Ready".to_string(),
            }
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The reason of the node's `Ready=True` condition (`KubeletReady` from a kubelet).
pub fn ready_reason(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.reason.clone().unwrap_or_default())
}

/// Creates Runner `name` whose step pods land on the real node (after [`require`]);
/// `spec` adds fields (`secretName`, `securityContext`, ...), its own `nodeSelector`
/// and `tolerations` win.
pub async fn runner(ns: &TestNamespace, name: &str, spec: Value) -> Runner {
    require(&ns.client).await;
    let mut full = placement();
    if let (Some(full), Value::Object(extra)) = (full.as_object_mut(), spec) {
        full.extend(extra);
    }
    super::operator::create(
        ns,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Runner",
            "metadata": {"name": name},
            "spec": full,
        }),
    )
    .await
}

/// The notes of the Warning Events (events.k8s.io) about Execution `execution`, once
/// one of them contains `saying` (polled for up to 10 s: the controller writes its
/// Events after the status that the test saw); panics with the notes it found.
pub async fn warnings_saying(ns: &TestNamespace, execution: &str, saying: &str) -> Vec<String> {
    let events: Api<Event> = ns.api();
    let lp = ListParams::default().fields(&format!("regarding.name={execution}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let notes: Vec<String> = events
            .list(&lp)
            .await
            .expect("listing Events")
            .items
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter_map(|e| e.note)
            .collect();
        if notes.iter().any(|n| n.contains(saying)) {
            return notes;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no Warning Event about {execution} says {saying:?}: {notes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
