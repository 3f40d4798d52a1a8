//! Blast-radius limits on the local control plane: `limits.remediations` holds the
//! runs past the cap for an approval, also when they all arrive at once; another
//! user's approval releases one; the count survives a restart of the operator (it is
//! in the Executions' status).
//!
//! The operator runs as a child process (`playbook-operator run`) so it can be
//! killed and started again. Needs a cluster: `make test-e2e`, or `make cluster-up`
//! then `cargo test --test limits_e2e`.

mod common;

use std::time::Duration;

use common::operator::*;
use common::process::OperatorProcess;
use common::{TestNamespace, http_get};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams};
use playbook_operator::api::{ExecutionPhase, ExecutionStatus, StepState};
use serde_json::json;

const HELD: &str = "3 remediations for key 'shop' in the last 1h; limit 3: ";

/// bob may approve the namespace's runs (append to `spec.approvals`), nothing more.
async fn let_bob_approve(ns: &TestNamespace) {
    let _: Role = create(
        ns,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "approver"},
            "rules": [{"apiGroups": ["stackpulse.io"], "resources": ["executions"],
                       "verbs": ["get", "patch"]}]
        }),
    )
    .await;
    let _: RoleBinding = create(
        ns,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "approver"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "approver"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]
        }),
    )
    .await;
}

/// A run for an alert about `namespace`.
async fn alert_run(ns: &TestNamespace, name: &str, namespace: &str) {
    let _: playbook_operator::api::Execution = create(
        ns,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Execution",
            "metadata": {"name": name},
            "spec": {
                "playbookRef": {"name": "restart"},
                "alert": {"labels": {"alertname": "PodCrashLooping", "namespace": namespace}}
            }
        }),
    )
    .await;
}

/// Waits until the run either remediated (its step has a Job) or was held.
async fn decided(ns: &TestNamespace, name: &str) -> ExecutionStatus {
    wait_status(
        ns,
        name,
        "remediating or held",
        Duration::from_secs(60),
        |s| {
            s.steps.iter().any(|st| {
                st.id == "restart"
                    && (st.job_name.is_some() || st.state == StepState::WaitingApproval)
            })
        },
    )
    .await
}

fn held(status: &ExecutionStatus) -> bool {
    status.phase == ExecutionPhase::WaitingApproval
}

async fn restart_jobs(ns: &TestNamespace) -> Vec<String> {
    let mut names: Vec<String> = jobs_of_step(ns, "restart")
        .await
        .into_iter()
        .filter_map(|j: Job| j.metadata.name)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_the_limit_is_held_and_a_restart_keeps_the_count() {
    let ns = setup("limits").await;
    ns.set_default_log(&step_log("restarted", json!({"ok": true})))
        .await;
    playbook_spec(
        &ns,
        "restart",
        json!({
            "limits": {"remediations": {
                "max": 3, "perSeconds": 3600, "key": "{{ .alert.labels.namespace }}"
            }},
            "steps": [{"id": "restart", "image": "busybox", "phase": "remediate"}]
        }),
    )
    .await;
    let mut operator = OperatorProcess::start(&ns, &[]);

    // Five alerts about one namespace at once: their reconciles run concurrently.
    let burst: Vec<String> = (1..=5).map(|i| format!("shop-{i}")).collect();
    futures::future::join_all(burst.iter().map(|name| alert_run(&ns, name, "shop"))).await;
    let mut statuses = Vec::new();
    for name in &burst {
        statuses.push(decided(&ns, name).await);
    }
    // Give a wrongly released run time to show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api: Api<playbook_operator::api::Execution> = ns.api();
    let mut ran = Vec::new();
    let mut waiting = Vec::new();
    for name in &burst {
        let status = api
            .get(name)
            .await
            .expect("reading the run")
            .status
            .unwrap_or_default();
        let record = status.remediation.clone().expect("a remediation record");
        assert_eq!(record.key, "shop", "{name}");
        if held(&status) {
            assert!(record.at.is_none(), "{name}: held, yet counted: {record:?}");
            let message = &step(&status, "restart").message;
            assert!(
                message.as_deref().is_some_and(|m| m.contains(HELD)
                    && m.contains(&format!("playbook-operator approve {name} restart"))),
                "{name}: {message:?}"
            );
            waiting.push(name.clone());
        } else {
            assert!(record.at.is_some(), "{name}: ran, not counted: {record:?}");
            ran.push(name.clone());
        }
    }
    assert_eq!(
        (ran.len(), waiting.len()),
        (3, 2),
        "ran {ran:?}, held {waiting:?}"
    );
    assert_eq!(restart_jobs(&ns).await.len(), 3, "one Job per run that ran");

    // Someone other than the requester (admin) approves a held run: it runs, and counts.
    let_bob_approve(&ns).await;
    let bob: Api<playbook_operator::api::Execution> =
        Api::namespaced(common::user_client("bob").await, &ns.name);
    let first_held = api.get(&waiting[0]).await.expect("reading a held run");
    let status = first_held.status.unwrap_or_default();
    let plan = step(&status, "restart")
        .plan
        .clone()
        .expect("the plan to approve");
    let approval = json!([{"op": "add", "path": "/spec/approvals",
        "value": [{"step": "restart", "user": "bob", "planHash": plan.hash}]}]);
    bob.patch(
        &waiting[0],
        &PatchParams::default(),
        &Patch::Json::<()>(serde_json::from_value(approval).expect("a JSON patch")),
    )
    .await
    .expect("bob approves");
    // Started (its Job named); with kwok it may already have ended by the next poll.
    let approved = wait_status(
        &ns,
        &waiting[0],
        "restart started",
        Duration::from_secs(60),
        |s| {
            s.steps
                .iter()
                .any(|st| st.id == "restart" && st.job_name.is_some())
        },
    )
    .await;
    let record = approved.remediation.expect("a remediation record");
    assert!(record.at.is_some() && record.held.is_some(), "{record:?}");
    assert_eq!(restart_jobs(&ns).await.len(), 4);

    // Another key is counted apart.
    alert_run(&ns, "cart-1", "cart").await;
    let cart = decided(&ns, "cart-1").await;
    assert!(!held(&cart), "another key is not held: {cart:?}");
    assert_eq!(restart_jobs(&ns).await.len(), 5);

    // Each hold is an Event and counted in the metric (by playbook, not by key).
    let events: Api<Event> = ns.api();
    let holds = events
        .list(&ListParams::default())
        .await
        .expect("listing Events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("RemediationHeld"))
        .count();
    assert_eq!(holds, 2, "one RemediationHeld Event per held run");
    let (_, metrics) = http_get(operator.http_addr().await, "/metrics").await;
    let sample = format!(
        "playbook_remediations_held_total{{namespace=\"{}\",playbook=\"restart\"}} 2",
        ns.name
    );
    assert!(
        metrics.lines().any(|l| l == sample),
        "{sample} in:\n{metrics}"
    );

    // The count is in the cluster: an operator started afresh holds the next run too.
    for name in ran.iter().chain(&waiting[..1]) {
        wait_final(&ns, name).await;
    }
    operator.kill("after the burst");
    operator.restart();
    alert_run(&ns, "shop-6", "shop").await;
    let sixth = decided(&ns, "shop-6").await;
    assert!(
        held(&sixth),
        "the 6th run after a restart is held: {sixth:?}"
    );
    let message = step(&sixth, "restart").message.clone().unwrap_or_default();
    let four = "4 remediations for key 'shop' in the last 1h; limit 3: ";
    assert!(
        message.contains(four),
        "the approved run counts too: {message}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(restart_jobs(&ns).await.len(), 5, "no Job for a held run");
    ns.cleanup().await;
}
