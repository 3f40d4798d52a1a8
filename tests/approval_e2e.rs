//! Four-eyes approvals on the local control plane, with real users (alice and bob:
//! static bearer tokens, no groups; carol: in group `sre`) and the admission
//! policies of `crds/admission-policies.yaml`: identities and groups come from the
//! API server, so approval by a second user succeeds while self-approval is
//! rejected by the API server (a forged one, and one in the requester's own name);
//! an approval counts only for the rendered plan it names.
//!
//! Needs a cluster: `make cluster-up`, then `cargo test --test approval_e2e`. The
//! policies are cluster-wide and shared: applied, never deleted. The binary's
//! commands, as each user, are in `approval_e2e/shell.rs`.

mod common;
#[path = "approval_e2e/shell.rs"]
mod shell;

use common::TestNamespace;
use common::on_call::*;
use common::operator::*;
use kube::api::{Patch, PatchParams, PostParams};
use playbook_operator::api::{Execution, ExecutionPhase, StepState};
use serde_json::{Value, json};
use shell::{cli_as, text};

/// A Playbook whose second step needs an approval.
async fn guarded_playbook(ns: &TestNamespace) {
    playbook(
        ns,
        "guarded",
        json!([
            {"id": "check", "image": "busybox"},
            {"id": "restart", "image": "busybox", "approval": {"required": true}}
        ]),
    )
    .await;
}

async fn setup_guarded(prefix: &str) -> TestNamespace {
    let ns = setup_on_call(prefix).await;
    guarded_playbook(&ns).await;
    ns
}

async fn wait_for_approval_step(ns: &TestNamespace, name: &str) {
    wait_status(ns, name, "waiting for approval", common::TIMEOUT, |s| {
        s.phase == ExecutionPhase::WaitingApproval
            && s.steps
                .iter()
                .any(|st| st.id == "restart" && st.state == StepState::WaitingApproval)
    })
    .await;
}

/// A JSON patch that adds the first approval: of step `restart`, by `user`.
fn approval_of_restart_by(user: &str) -> Patch<()> {
    json_patch(json!([{"op": "add", "path": "/spec/approvals",
        "value": [{"step": "restart", "user": user}]}]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_by_a_second_user_runs_the_step_and_self_approval_does_not() {
    let ns = setup_guarded("approvals").await;
    let operator = Operator::start(&ns);
    let alice = executions_as("alice", &ns).await;
    let bob = executions_as("bob", &ns).await;
    let pp = PostParams::default();
    let patch = PatchParams::default();

    // Nobody can start a run in someone else's name.
    let message = denied(
        alice
            .create(&pp, &from_json(execution_json("run-1", Some("bob"))))
            .await,
        "alice creating a run requested by bob",
    );
    assert!(
        message.contains(
            "spec.requestedBy must be your user name: set it to 'alice' (playbook-operator start does this)"
        ),
        "{message}"
    );
    alice
        .create(&pp, &from_json(execution_json("run-1", Some("alice"))))
        .await
        .expect("alice may start a run in her own name");
    wait_for_approval_step(&ns, "run-1").await;

    // Nor approve in someone else's name.
    let message = denied(
        alice
            .patch("run-1", &patch, &approval_of_restart_by("bob"))
            .await,
        "alice writing an approval by bob",
    );
    assert!(
        message.contains("a new approval must have user 'alice' (you), but the one for step 'restart' has user 'bob'"),
        "{message}"
    );

    // Approving in her own name is refused too: the requester's approval never
    // counts, and the API server says so (the operator would ignore it as well).
    let message = denied(
        alice
            .patch("run-1", &patch, &approval_of_restart_by("alice"))
            .await,
        "alice approving her own run",
    );
    assert!(
        message.contains("spec.approvals: you ('alice') requested this Execution, so you cannot approve its step 'restart' (four eyes)"),
        "{message}"
    );
    assert!(jobs_of_step(&ns, "restart").await.is_empty());

    // Approvals are append-only, and the requester is fixed. (bob's first approval
    // names a plan the step never showed: it stays, and counts for nothing.)
    bob.patch(
        "run-1",
        &patch,
        &json_patch(json!([{"op": "add", "path": "/spec/approvals",
            "value": [{"step": "restart", "user": "bob", "planHash": "not-the-plan"}]}])),
    )
    .await
    .expect("bob approves another plan");
    for (what, ops) in [
        (
            "removing",
            json!([{"op": "remove", "path": "/spec/approvals/0"}]),
        ),
        (
            "editing",
            json!([{"op": "replace", "path": "/spec/approvals/0/step", "value": "check"}]),
        ),
    ] {
        let message = denied(
            alice.patch("run-1", &patch, &json_patch(ops)).await,
            &format!("alice {what} an approval"),
        );
        assert!(
            message.contains("spec.approvals can only be appended to: the approval of step 'restart' by 'bob' was removed or changed"),
            "{what}: {message}"
        );
    }
    let message = invalid(
        alice
            .patch(
                "run-1",
                &patch,
                &json_patch(
                    json!([{"op": "replace", "path": "/spec/requestedBy", "value": "carol"}]),
                ),
            )
            .await,
        "alice handing the run to carol",
    );
    assert!(
        message.contains("spec.requestedBy cannot be set, changed or removed after create: create a new Execution"),
        "{message}"
    );
    // Writes that leave spec alone are not the policy's business.
    alice
        .patch(
            "run-1",
            &patch,
            &Patch::Merge(json!({"metadata": {"labels": {"team": "sre"}}})),
        )
        .await
        .expect("a label change passes the policy");

    // Groups are the writer's, as the API server authenticated them: forged ones
    // are refused.
    let hash = plan_hash(&ns, "run-1", "restart").await;
    let message = denied(
        bob.patch(
            "run-1",
            &patch,
            &json_patch(json!([{"op": "add", "path": "/spec/approvals/-",
                "value": {"step": "restart", "user": "bob", "planHash": hash,
                          "groups": ["sre", "system:authenticated"]}}])),
        )
        .await,
        "bob claiming group sre",
    );
    assert!(
        message.contains("a new approval's groups must be your groups [system:authenticated], but the one for step 'restart' has [sre, system:authenticated]: leave groups out"),
        "{message}"
    );

    // A second person approves the plan the step shows: the step runs. Left out,
    // his groups are filled in by the API server.
    bob.patch(
        "run-1",
        &patch,
        &json_patch(json!([{"op": "add", "path": "/spec/approvals/-",
            "value": {"step": "restart", "user": "bob", "planHash": hash}}])),
    )
    .await
    .expect("bob approves");
    let exec = ns.api::<Execution>().get("run-1").await.expect("run-1");
    let last = exec.spec.approvals.last().expect("bob's approval");
    assert_eq!(
        (last.user.as_str(), last.groups.clone()),
        ("bob", vec!["system:authenticated".to_string()])
    );
    let status = wait_final(&ns, "run-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    assert_eq!(step(&status, "restart").state, StepState::Succeeded);
    assert_eq!(jobs_of_step(&ns, "restart").await.len(), 1);

    operator.stop().await;
    ns.cleanup().await;
}

/// Each step instance's approval names its own rendered plan: an approval of
/// another foreach item's plan does not count, and with `count: 2` one approver is
/// not enough; carol counts through her group `sre` as the API server knows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_two_by_user_or_group_and_each_foreach_item_needs_its_own_plan_approved() {
    let ns = setup_on_call("approvals-items").await;
    playbook(
        &ns,
        "restarts",
        json!([{
            "id": "restart", "image": "busybox",
            "foreach": {"items": ["redis-0", "redis-1"], "parallelism": 2},
            "env": {"TARGET": "{{ .value }}"},
            "approval": {"required": true, "count": 2,
                         "approvers": {"users": ["bob"], "groups": ["sre"]}}
        }]),
    )
    .await;
    let operator = Operator::start(&ns);
    let n = ns.name.as_str();
    let alice = executions_as("alice", &ns).await;
    let mut exec = execution_json("run-items", Some("alice"));
    exec["spec"]["playbookRef"]["name"] = json!("restarts");
    alice
        .create(&PostParams::default(), &from_json(exec))
        .await
        .expect("alice starts the run");
    let first = plan_hash(&ns, "run-items", "restart[0]").await;
    let second = plan_hash(&ns, "run-items", "restart[1]").await;
    assert_ne!(first, second, "the items render different env");

    // bob's approval of item 1 naming item 0's plan is stored, and does not count.
    let bob = executions_as("bob", &ns).await;
    bob.patch(
        "run-items",
        &PatchParams::default(),
        &json_patch(json!([{"op": "add", "path": "/spec/approvals",
            "value": [{"step": "restart[1]", "user": "bob", "planHash": first}]}])),
    )
    .await
    .expect("an approval naming another plan is a valid write");
    let want = format!(
        "the plan changed since bob approved it (hash {first}, now {second}): approve again"
    );
    wait_status(
        &ns,
        "run-items",
        "reporting the plan mismatch",
        common::TIMEOUT,
        |s| {
            step(s, "restart[1]")
                .message
                .as_deref()
                .is_some_and(|m| m.contains(&want))
        },
    )
    .await;

    // One approval of item 0 is not enough with count 2...
    let out = cli_as("bob", &["approve", "run-items", "restart[0]", "-n", n]).await;
    assert!(out.status.success(), "{out:?}");
    let status = wait_status(&ns, "run-items", "counting bob", common::TIMEOUT, |s| {
        step(s, "restart[0]").message.as_deref().is_some_and(|m| {
            m.starts_with(
                "1 of 2 approvals (bob); waiting for one more from users [bob] or groups [sre]",
            )
        })
    })
    .await;
    assert_eq!(status.phase, ExecutionPhase::WaitingApproval);
    assert!(jobs_of_step(&ns, "restart").await.is_empty());

    // ...carol (group sre) makes two: item 0 runs, item 1 still waits.
    let out = cli_as("carol", &["approve", "run-items", "restart[0]", "-n", n]).await;
    assert!(out.status.success(), "{out:?}");
    let status = wait_status(&ns, "run-items", "item 0 approved", common::TIMEOUT, |s| {
        step(s, "restart[0]").state.is_final() || step(s, "restart[0]").state == StepState::Running
    })
    .await;
    assert_eq!(
        step(&status, "restart[1]").state,
        StepState::WaitingApproval
    );
    assert!(
        step(&status, "restart[0]")
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with(&format!("approved by bob, carol (plan {first})"))),
        "{status:?}"
    );

    // Both approve what is left by the step id: each record names item 1's own plan.
    for user in ["bob", "carol"] {
        let out = cli_as(user, &["approve", "run-items", "restart", "-n", n]).await;
        assert!(out.status.success(), "{out:?}");
        assert!(
            text(&out.stdout).starts_with(&format!("approved step restart[1] (plan {second})")),
            "{out:?}"
        );
    }
    let status = wait_final(&ns, "run-items").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    let jobs = jobs_of_step(&ns, "restart").await;
    let mut targets: Vec<String> = jobs
        .iter()
        .filter_map(|j| common::operator::env_value(j, "TARGET"))
        .collect();
    targets.sort();
    assert_eq!(targets, ["redis-0", "redis-1"]);

    operator.stop().await;
    ns.cleanup().await;
}

/// A wait that times out with `onTimeout: reject` fails the run, naming the
/// timeout, and the finally step still runs; `reject --reason` ends a wait the same
/// way with the reason as the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_timeout_and_rejection_fail_the_run_and_finally_still_runs() {
    let ns = setup_on_call("approvals-timeout").await;
    // The rejected run's playbook has no timeout, so the rejection cannot race it.
    for (name, timeout) in [("guarded", json!(2)), ("held", Value::Null)] {
        let mut approval = json!({"required": true, "onTimeout": "reject"});
        if !timeout.is_null() {
            approval["timeoutSeconds"] = timeout;
        }
        playbook_spec(
            &ns,
            name,
            json!({
                "steps": [{"id": "restart", "image": "busybox", "approval": approval}],
                "finally": [{"id": "notify", "image": "busybox"}]
            }),
        )
        .await;
    }
    let operator = Operator::start(&ns);
    let alice = executions_as("alice", &ns).await;
    let mut held = execution_json("run-rejected", Some("alice"));
    held["spec"]["playbookRef"]["name"] = json!("held");
    for exec in [execution_json("run-timeout", Some("alice")), held] {
        alice
            .create(&PostParams::default(), &from_json(exec))
            .await
            .expect("alice starts a run");
    }

    plan_hash(&ns, "run-rejected", "restart").await;
    let out = cli_as(
        "bob",
        &[
            "reject",
            "run-rejected",
            "restart",
            "-n",
            &ns.name,
            "--reason",
            "the disk is fine",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).starts_with("rejected step restart (plan "),
        "{out:?}"
    );

    for (name, why) in [
        (
            "run-timeout",
            "approval timed out after 2s (approval.timeoutSeconds) with 0 of 1 approvals: rejected (onTimeout: reject)",
        ),
        ("run-rejected", "rejected by bob: the disk is fine"),
    ] {
        let status = wait_final(&ns, name).await;
        assert_eq!(status.phase, ExecutionPhase::Failed, "{name}: {status:?}");
        assert_eq!(step(&status, "restart").state, StepState::Failed, "{name}");
        assert_eq!(
            step(&status, "restart").message.as_deref(),
            Some(why),
            "{name}"
        );
        assert!(
            status.message.as_deref().is_some_and(|m| m.contains(why)),
            "{name}: {status:?}"
        );
        let notify = status.finally.iter().find(|s| s.id == "notify");
        assert_eq!(
            notify.map(|s| s.state),
            Some(StepState::Succeeded),
            "{name}: the finally step ran: {status:?}"
        );
    }
    assert!(
        jobs_of_step(&ns, "restart").await.is_empty(),
        "no restart ran"
    );

    operator.stop().await;
    ns.cleanup().await;
}
