//! An approval pins the whole request and the whole pod plan, on the local control
//! plane with the real users alice (requester), bob and carol (approvers, who may
//! `patch executions` because approving needs it):
//! - the request (params, alert, trigger, requester, TTL) cannot change once the
//!   Execution exists: the API server refuses it, naming the field;
//! - the plan hash covers the Runner and the pod it builds: a Runner whose service
//!   account changes while a step waits makes another plan, and the approvals given
//!   for the old one no longer count.
//!
//! Needs a cluster: `make cluster-up`, then `cargo test --test pinplan_e2e`.

mod common;

use common::on_call::*;
use common::operator::*;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Patch, PatchParams, PostParams};
use playbook_operator::api::{Execution, ExecutionPhase, Runner, StepState};
use serde_json::json;

/// alice's run of `guarded` with a param, waiting for the approval of `restart`.
async fn waiting_run(ns: &common::TestNamespace, name: &str) {
    let mut exec = execution_json(name, Some("alice"));
    exec["spec"]["params"] = json!({"Host": "r1"});
    executions_as("alice", ns)
        .await
        .create(&PostParams::default(), &from_json(exec))
        .await
        .expect("alice starts the run");
    let what = "restart waiting for approval";
    wait_status(ns, name, what, common::TIMEOUT, |s| {
        s.steps
            .iter()
            .any(|st| st.id == "restart" && st.state == StepState::WaitingApproval)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_cannot_change_the_request_they_approve() {
    let ns = setup_on_call("pin-request").await;
    playbook(
        &ns,
        "guarded",
        json!([
            {"id": "check", "image": "busybox"},
            {"id": "restart", "image": "busybox", "env": {"HOST": "{{ .Host }}"},
             "approval": {"required": true}}
        ]),
    )
    .await;
    let operator = Operator::start(&ns);
    waiting_run(&ns, "run-1").await;
    let bob = executions_as("bob", &ns).await;
    let patch = PatchParams::default();

    // Each field of the request, changed or added by bob (allowed to patch, as
    // approving needs), is refused by the API server, which names the field.
    for (field, value) in [
        ("params", json!({"Host": "db-primary"})),
        ("alert", json!({"labels": {"instance": "db-primary"}})),
        ("triggerRef", json!({"name": "any"})),
        ("requestedBy", json!("bob")),
        ("ttlSecondsAfterFinished", json!(0)),
    ] {
        let message = invalid(
            bob.patch(
                "run-1",
                &patch,
                &Patch::Merge(json!({"spec": {field: value}})),
            )
            .await,
            &format!("bob setting spec.{field}"),
        );
        assert!(
            message.contains(&format!(
                "spec.{field} cannot be set, changed or removed after create: create a new Execution"
            )),
            "{field}: {message}"
        );
    }
    let message = invalid(
        bob.patch(
            "run-1",
            &patch,
            &json_patch(json!([{"op": "remove", "path": "/spec/params"}])),
        )
        .await,
        "bob removing spec.params",
    );
    assert!(message.contains("spec.params cannot be set"), "{message}");
    // A renamed key with its value kept slips past the CRD's rules (CEL compares a
    // free-form object on the keys both sides have); the admission policy refuses it.
    let message = denied(
        bob.patch(
            "run-1",
            &patch,
            &json_patch(
                json!([{"op": "move", "from": "/spec/params/Host", "path": "/spec/params/Hosts"}]),
            ),
        )
        .await,
        "bob renaming a param",
    );
    assert!(message.contains("spec.params cannot be set"), "{message}");
    let exec = ns.api::<Execution>().get("run-1").await.expect("run-1");
    assert_eq!(exec.spec.params, Some(json!({"Host": "r1"})));
    assert_eq!(exec.spec.ttl_seconds_after_finished, None);

    // What stays writable: the approvals (bob's runs the step with alice's params).
    let hash = plan_hash(&ns, "run-1", "restart").await;
    bob.patch(
        "run-1",
        &patch,
        &json_patch(json!([{"op": "add", "path": "/spec/approvals",
            "value": [{"step": "restart", "user": "bob", "planHash": hash}]}])),
    )
    .await
    .expect("bob approves");
    let status = wait_final(&ns, "run-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    let jobs = jobs_of_step(&ns, "restart").await;
    let hosts: Vec<_> = jobs.iter().filter_map(|j| env_value(j, "HOST")).collect();
    assert_eq!(hosts, ["r1"]);

    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_change_while_a_step_waits_voids_the_approvals_given() {
    let ns = setup_on_call("pin-runner").await;
    ns.api::<ServiceAccount>()
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "restarter"}})),
        )
        .await
        .expect("creating ServiceAccount restarter");
    create::<Runner>(
        &ns,
        json!({"apiVersion": "stackpulse.io/v1", "kind": "Runner",
               "metadata": {"name": "default"}, "spec": {}}),
    )
    .await;
    playbook(
        &ns,
        "guarded",
        json!([
            {"id": "check", "image": "busybox"},
            {"id": "restart", "image": "busybox", "approval": {"required": true, "count": 2}}
        ]),
    )
    .await;
    let operator = Operator::start(&ns);
    waiting_run(&ns, "run-1").await;
    let before = plan_hash(&ns, "run-1", "restart").await;
    let approve = |user: &'static str, hash: String| {
        let ns = &ns;
        async move {
            executions_as(user, ns)
                .await
                .patch(
                    "run-1",
                    &PatchParams::default(),
                    &json_patch(json!([{"op": "add", "path": "/spec/approvals/-",
                        "value": {"step": "restart", "user": user, "planHash": hash}}])),
                )
                .await
                .unwrap_or_else(|e| panic!("{user} approves: {e}"));
        }
    };
    // An empty list first, so that each approval below appends with `/-`.
    executions_as("bob", &ns)
        .await
        .patch(
            "run-1",
            &PatchParams::default(),
            &json_patch(json!([{"op": "add", "path": "/spec/approvals", "value": []}])),
        )
        .await
        .expect("an empty approval list");
    approve("bob", before.clone()).await;
    wait_status(&ns, "run-1", "counting bob", common::TIMEOUT, |s| {
        step(s, "restart")
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("1 of 2 approvals (bob)"))
    })
    .await;

    // Whoever may edit Runners gives the step's Runner another service account.
    ns.api::<Runner>()
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"serviceAccountName": "restarter"}})),
        )
        .await
        .expect("patching the Runner");
    let status = wait_status(&ns, "run-1", "showing the new plan", common::TIMEOUT, |s| {
        step(s, "restart")
            .plan
            .as_ref()
            .is_some_and(|p| p.hash != before)
    })
    .await;
    let restart = step(&status, "restart");
    let plan = restart.plan.clone().unwrap_or_default();
    assert_eq!(plan.runner.as_deref(), Some("default"));
    let pod = serde_json::to_value(&plan.pod).unwrap_or_default();
    assert_eq!(
        pod["spec"]["serviceAccountName"],
        json!("restarter"),
        "{pod}"
    );
    let want = format!(
        "the plan changed since bob approved it (hash {before}, now {}): approve again",
        plan.hash
    );
    let status = wait_status(
        &ns,
        "run-1",
        "voiding bob's approval",
        common::TIMEOUT,
        |s| {
            step(s, "restart")
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with("0 of 2 approvals;") && m.contains(&want))
        },
    )
    .await;
    assert_eq!(status.phase, ExecutionPhase::WaitingApproval);

    // carol's approval of the old plan does not make two either; both approving the
    // new one does, and the step runs with the new service account.
    approve("carol", before.clone()).await;
    approve("bob", plan.hash.clone()).await;
    wait_status(&ns, "run-1", "counting bob again", common::TIMEOUT, |s| {
        step(s, "restart").message.as_deref().is_some_and(|m| {
            m.starts_with("1 of 2 approvals (bob)")
                && m.contains("the plan changed since carol approved it")
        })
    })
    .await;
    assert!(jobs_of_step(&ns, "restart").await.is_empty());
    approve("carol", plan.hash.clone()).await;
    let status = wait_final(&ns, "run-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    let jobs = jobs_of_step(&ns, "restart").await;
    let accounts: Vec<_> = jobs
        .iter()
        .filter_map(|j| {
            j.spec
                .as_ref()?
                .template
                .spec
                .as_ref()?
                .service_account_name
                .clone()
        })
        .collect();
    assert_eq!(accounts, ["restarter"]);

    operator.stop().await;
    ns.cleanup().await;
}
