//! What the approval e2e tests share: alice, bob and carol on call in a namespace
//! (real users of the local cluster: static bearer tokens; carol in group `sre`),
//! the admission policies of `crds/admission-policies.yaml` enforced, and the writes
//! an on-call person makes.

use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PostParams};
use playbook_operator::api::Execution;
use serde_json::{Value, json};

use super::TestNamespace;
use super::operator::{from_json, setup, step, step_log, wait_status};

/// What an on-call person gets: run and approve playbooks in one namespace. Not
/// `executions/status` (the controller's), not delete. SelfSubjectReview needs no
/// grant: the default `system:basic-user` ClusterRole allows it to every
/// authenticated user.
pub async fn grant_on_call(ns: &TestNamespace) {
    let rules = json!([
        {"apiGroups": ["stackpulse.io"], "resources": ["executions"],
         "verbs": ["get", "list", "watch", "create", "patch", "update"]},
        {"apiGroups": ["stackpulse.io"], "resources": ["playbooks"], "verbs": ["get", "list"]}
    ]);
    let people = json!(["alice", "bob", "carol"].map(super::rbac::user));
    super::rbac::grant(&ns.client, &ns.name, "on-call", rules, people).await;
}

/// `user`'s view of the namespace's Executions.
pub async fn executions_as(user: &str, ns: &TestNamespace) -> Api<Execution> {
    Api::namespaced(super::user_client(user).await, &ns.name)
}

/// An Execution of the Playbook `guarded`, in `requested_by`'s name if given.
pub fn execution_json(name: &str, requested_by: Option<&str>) -> Value {
    let mut spec = json!({"playbookRef": {"name": "guarded"}});
    if let Some(r) = requested_by {
        spec["requestedBy"] = json!(r);
    }
    json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Execution",
        "metadata": {"name": name},
        "spec": spec
    })
}

/// The API server's refusal of `result`, which must be a 403 from an admission policy.
pub fn denied<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) -> String {
    match result {
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("denied request") => {
            s.message
        }
        other => panic!("{what}: expected the admission policy to deny it, got {other:?}"),
    }
}

/// The API server's refusal of `result`, which must be a 422 from the CRD's
/// validation rules (they run before any admission policy).
pub fn invalid<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) -> String {
    match result {
        Err(kube::Error::Api(s)) if s.code == 422 => s.message,
        other => panic!("{what}: expected the CRD's rules to refuse it (422), got {other:?}"),
    }
}

/// Waits until the policies (just applied, maybe just created) are enforced: a new
/// policy reaches the API server's admission chain through an informer, a moment
/// after it is stored. Probes with dry-run creates as alice, which store nothing.
pub async fn wait_for_policies(ns: &TestNamespace) {
    let alice = executions_as("alice", ns).await;
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + super::TIMEOUT;
    loop {
        let forged = alice
            .create(&dry, &from_json(execution_json("probe", Some("bob"))))
            .await;
        let stamped = alice
            .create(&dry, &from_json(execution_json("probe", None)))
            .await;
        let validating = matches!(&forged, Err(kube::Error::Api(s)) if s.code == 403);
        let mutating = matches!(&stamped, Ok(e) if e.spec.requested_by.as_deref() == Some("alice"));
        if validating && mutating {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the admission policies of crds/admission-policies.yaml are not enforced within \
             {:?}: a forged requestedBy gave {forged:?}, a missing one gave {stamped:?}",
            super::TIMEOUT
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A namespace where alice, bob and carol are on call, the policies are enforced and
/// every step pod prints `{"ok": true}`.
pub async fn setup_on_call(prefix: &str) -> TestNamespace {
    let ns = setup(prefix).await;
    grant_on_call(&ns).await;
    wait_for_policies(&ns).await;
    ns.set_default_log(&step_log("done", json!({"ok": true})))
        .await;
    ns
}

/// The plan hash step `id` of Execution `name` shows (it waits for approval).
pub async fn plan_hash(ns: &TestNamespace, name: &str, id: &str) -> String {
    let what = format!("step {id} showing its plan");
    let status = wait_status(ns, name, &what, super::TIMEOUT, |s| {
        s.steps.iter().any(|st| st.id == id && st.plan.is_some())
    })
    .await;
    step(&status, id)
        .plan
        .clone()
        .map(|p| p.hash)
        .unwrap_or_default()
}

pub fn json_patch(ops: Value) -> Patch<()> {
    Patch::Json(serde_json::from_value(ops).expect("a JSON patch"))
}
