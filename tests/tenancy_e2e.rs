//! Tenancy on the local control plane, with real users (alice and bob: static bearer
//! tokens, no groups of their own): using a Runner is a permission of the run's
//! requester (`use` on `runners/NAME`, asked with a SubjectAccessReview), a step reads
//! only the Secrets its Runner lists, alerts reach only the Triggers of their
//! namespace (`--webhook-tenant-label`), and a run started by an alert acts for the
//! Trigger's last writer, who then cannot approve it.
//!
//! Needs a cluster: `make cluster-up`, then `cargo test --test tenancy_e2e`. The
//! admission policies are cluster-wide and shared: applied, never deleted.

mod common;

use std::time::{Duration, Instant};

use common::TestNamespace;
use common::http::post;
use common::operator::*;
use common::rbac::grant_runner_use;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use playbook_operator::api::{Execution, ExecutionPhase, StepState, Trigger};
use playbook_operator::engine::alert::trigger::Tenancy;
use playbook_operator::webhook;
use serde_json::{Value, json};

const TOKEN: &str = "e2e-tenancy-token";

/// What the tests' people get in the namespace: run, approve and read playbooks, and
/// write Triggers. Not `use` of any Runner but `default` (tests/common grants that).
async fn grant_people(ns: &TestNamespace) {
    create::<k8s_openapi::api::rbac::v1::Role>(
        ns,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "people"},
            "rules": [
                {"apiGroups": ["stackpulse.io"], "resources": ["executions"],
                 "verbs": ["get", "list", "watch", "create", "patch"]},
                {"apiGroups": ["stackpulse.io"], "resources": ["playbooks"], "verbs": ["get", "list"]},
                {"apiGroups": ["stackpulse.io"], "resources": ["triggers"],
                 "verbs": ["get", "list", "create", "update", "patch"]}
            ]
        }),
    )
    .await;
    create::<k8s_openapi::api::rbac::v1::RoleBinding>(
        ns,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "people"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "people"},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}
            ]
        }),
    )
    .await;
}

async fn as_user<K>(user: &str, ns: &TestNamespace) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    Api::namespaced(common::user_client(user).await, &ns.name)
}

fn execution_json(name: &str, playbook: &str, params: Value) -> Value {
    json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Execution",
        "metadata": {"name": name},
        "spec": {"playbookRef": {"name": playbook}, "params": params}
    })
}

fn trigger_json(name: &str, extra: Value) -> Value {
    let mut spec = json!({"playbookRef": {"name": "fix"}, "sources": ["generic"]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Trigger",
        "metadata": {"name": name},
        "spec": spec
    })
}

/// Waits until the policies (maybe just applied) are enforced for Executions and
/// Triggers: alice's dry-run creates come back stamped with her name and groups.
async fn wait_for_policies(ns: &TestNamespace) {
    let executions: Api<Execution> = as_user("alice", ns).await;
    let triggers: Api<Trigger> = as_user("alice", ns).await;
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let run = executions
            .create(&dry, &from_json(execution_json("probe", "x", json!({}))))
            .await;
        let trigger = triggers
            .create(
                &dry,
                &from_json(trigger_json("probe", json!({"requestedBy": "bob"}))),
            )
            .await;
        let run_ok = matches!(&run, Ok(e) if e.spec.requested_by.as_deref() == Some("alice")
            && e.spec.requested_by_groups.contains(&"system:authenticated".to_string()));
        let trigger_ok = matches!(&trigger, Ok(t) if t.spec.requested_by.as_deref() == Some("alice")
            && t.spec.requested_by_groups.contains(&"system:authenticated".to_string()));
        if run_ok && trigger_ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the admission policies of crds/admission-policies.yaml are not enforced within \
             {:?}: alice's run gave {run:?}, her Trigger gave {trigger:?}",
            common::TIMEOUT
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn setup_people(prefix: &str) -> TestNamespace {
    let ns = setup(prefix).await;
    grant_people(&ns).await;
    wait_for_policies(&ns).await;
    ns.set_default_log(&step_log("done", json!({"ok": true})))
        .await;
    ns
}

/// The step Jobs of the namespace that run as `service_account`.
async fn jobs_as(ns: &TestNamespace, service_account: &str) -> Vec<Job> {
    let jobs: Api<Job> = ns.api();
    jobs.list(&ListParams::default())
        .await
        .expect("listing Jobs")
        .items
        .into_iter()
        .filter(|j| {
            j.spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.service_account_name.as_deref())
                == Some(service_account)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_is_used_only_by_whom_may_use_it() {
    let ns = setup_people("runner-use").await;
    create::<k8s_openapi::api::core::v1::ServiceAccount>(
        &ns,
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "cluster-admin-sa"}}),
    )
    .await;
    create::<playbook_operator::api::Runner>(
        &ns,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Runner",
            "metadata": {"name": "admin"},
            "spec": {"serviceAccountName": "cluster-admin-sa"}
        }),
    )
    .await;
    runner(&ns, "default", json!({})).await;
    // The Runner is a param: whoever starts the run picks it.
    playbook_spec(
        &ns,
        "pick",
        json!({
            "params": [{"name": "R", "default": "default"}],
            "steps": [{"id": "work", "image": "busybox", "runner": "{{ .params.R }}"}]
        }),
    )
    .await;
    let operator = Operator::start(&ns);
    let alice: Api<Execution> = as_user("alice", &ns).await;
    let pp = PostParams::default();

    alice
        .create(
            &pp,
            &from_json(execution_json("denied", "pick", json!({"R": "admin"}))),
        )
        .await
        .expect("alice may start runs");
    let status = wait_final(&ns, "denied").await;
    assert_eq!(status.phase, ExecutionPhase::Failed);
    let work = step(&status, "work");
    assert_eq!(work.state, StepState::Failed);
    let message = work.message.clone().unwrap_or_default();
    for part in [
        "alice may not use Runner 'admin'",
        "verb 'use' on runners.stackpulse.io/admin",
        "--verb=use --resource=runners.stackpulse.io --resource-name=admin",
        "--user=alice",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    assert!(
        jobs_as(&ns, "cluster-admin-sa").await.is_empty(),
        "no Job may run as the Runner's service account"
    );
    assert!(jobs_of_step(&ns, "work").await.is_empty());

    // The default Runner: every signed-in user may use it (as the chart grants).
    alice
        .create(
            &pp,
            &from_json(execution_json("default", "pick", json!({}))),
        )
        .await
        .expect("alice may start runs");
    assert_eq!(
        wait_final(&ns, "default").await.phase,
        ExecutionPhase::Succeeded
    );

    // The grant the message names lets her; answers are cached a few seconds.
    let alice_subject =
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"});
    grant_runner_use(
        &ns.client,
        &ns.name,
        "use-runner-admin",
        "admin",
        alice_subject,
    )
    .await;
    tokio::time::sleep(playbook_operator::controller::ACCESS_TTL + Duration::from_secs(1)).await;
    alice
        .create(
            &pp,
            &from_json(execution_json("allowed", "pick", json!({"R": "admin"}))),
        )
        .await
        .expect("alice may start runs");
    let status = wait_final(&ns, "allowed").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    assert_eq!(jobs_as(&ns, "cluster-admin-sa").await.len(), 1);
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_reads_only_the_secrets_its_runner_lists() {
    let ns = setup("runner-secrets").await;
    create::<playbook_operator::api::Runner>(
        &ns,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Runner",
            "metadata": {"name": "ops"},
            "spec": {"secretName": "ops-secrets", "allowedSecrets": ["pagerduty"]}
        }),
    )
    .await;
    playbook(
        &ns,
        "reads",
        json!([
            {"id": "listed", "image": "busybox", "runner": "ops",
             "envFrom": [{"secretRef": "pagerduty"}],
             "env": {"TOKEN": "{{ secret \"ops-secrets\" \"token\" }}"}},
            {"id": "unlisted", "image": "busybox", "runner": "ops",
             "env": {"PASSWORD": "{{ secret \"db-admin\" \"password\" }}"}}
        ]),
    )
    .await;
    ns.set_default_log(&step_log("done", json!({"ok": true})))
        .await;
    let operator = Operator::start(&ns);
    execution(&ns, "run", "reads", json!({})).await;
    let status = wait_final(&ns, "run").await;
    assert_eq!(status.phase, ExecutionPhase::Failed);
    assert_eq!(step(&status, "listed").state, StepState::Succeeded);
    let unlisted = step(&status, "unlisted");
    assert_eq!(unlisted.state, StepState::Failed);
    let message = unlisted.message.clone().unwrap_or_default();
    assert!(
        message.contains("reads Secret 'db-admin', which Runner 'ops' does not list")
            && message.contains("add 'db-admin' to the Runner's spec.allowedSecrets"),
        "{message}"
    );
    assert!(jobs_of_step(&ns, "unlisted").await.is_empty());
    assert_eq!(jobs_of_step(&ns, "listed").await.len(), 1);
    operator.stop().await;
    ns.cleanup().await;
}

async fn webhook_config(ns: &TestNamespace, tenancy: Tenancy) -> webhook::Config {
    let dir = std::env::temp_dir().join(format!("pbo-tenancy-{}", ns.name));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).expect("the token file");
    webhook::Config {
        tenancy,
        ..common::webhook::config(ns, &tokens).await
    }
}

/// Posts one generic alert (retrying while the Trigger cache fills); the answer.
async fn alert(addr: std::net::SocketAddr, id: &str, namespace: &str) -> Value {
    let auth = format!("Bearer {TOKEN}");
    let body = json!({"id": id, "labels": {"namespace": namespace, "alertname": "DiskFull"}});
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, text) = post(
            addr,
            "/webhooks/generic",
            &[("Authorization", auth.as_str())],
            body.to_string().as_bytes(),
        )
        .await;
        if code == 202 {
            return serde_json::from_str(&text).expect("a JSON answer");
        }
        assert!(
            code == 503 && Instant::now() < deadline,
            "the webhook answered {code}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_their_tenant_and_act_for_the_triggers_writer() {
    let ns = setup_people("tenants").await;
    playbook(
        &ns,
        "fix",
        json!([
            {"id": "look", "image": "busybox"},
            {"id": "restart", "image": "busybox", "approval": {"required": true}}
        ]),
    )
    .await;
    let alice_triggers: Api<Trigger> = as_user("alice", &ns).await;
    let pp = PostParams::default();
    // A forged writer is overwritten: the API server knows who wrote it.
    let trigger = alice_triggers
        .create(
            &pp,
            &from_json(trigger_json("disk", json!({"requestedBy": "bob"}))),
        )
        .await
        .expect("alice may write Triggers");
    assert_eq!(trigger.spec.requested_by.as_deref(), Some("alice"));

    // Nobody but the operator may name someone else as a run's requester, even
    // with a triggerRef.
    let bob: Api<Execution> = as_user("bob", &ns).await;
    let mut forged = execution_json("forged", "fix", json!({}));
    forged["spec"]["requestedBy"] = json!("alice");
    forged["spec"]["triggerRef"] = json!({"name": "disk"});
    match bob.create(&pp, &from_json(forged)).await {
        Err(kube::Error::Api(s)) if s.code == 403 => assert!(
            s.message
                .contains("spec.requestedBy must be your user name"),
            "{}",
            s.message
        ),
        other => panic!("bob naming alice as the requester: expected 403, got {other:?}"),
    }

    let tenancy = Tenancy {
        label: Some("namespace".into()),
        admin_namespaces: Default::default(),
    };
    let (operator, addr) =
        Operator::start_with_webhooks(&ns, webhook_config(&ns, tenancy).await).await;

    // Another tenant's alert: no run, no error.
    let answer = alert(addr, "other-1", "someone-else").await;
    assert_eq!(answer["created"], json!([]), "{answer}");
    assert_eq!(answer["errors"], json!([]), "{answer}");
    let executions: Api<Execution> = ns.api();
    assert!(
        executions
            .list(&ListParams::default())
            .await
            .expect("listing")
            .items
            .is_empty()
    );

    // Its own: one run, requested by the Trigger's writer.
    let answer = alert(addr, "own-1", &ns.name).await;
    let created = answer["created"][0]
        .as_str()
        .unwrap_or_else(|| panic!("one run created: {answer}"));
    let name = created.rsplit('/').next().unwrap_or_default().to_string();
    let run = executions.get(&name).await.expect("the run");
    assert_eq!(run.spec.requested_by.as_deref(), Some("alice"));
    assert!(
        run.spec
            .requested_by_groups
            .contains(&"system:authenticated".to_string()),
        "{:?}",
        run.spec.requested_by_groups
    );

    // The Trigger's writer cannot approve the run it started; someone else can.
    wait_status(&ns, &name, "waiting for approval", common::TIMEOUT, |s| {
        s.phase == ExecutionPhase::WaitingApproval
    })
    .await;
    let alice: Api<Execution> = as_user("alice", &ns).await;
    let first = Patch::<()>::Json(
        serde_json::from_value(json!([{"op": "add", "path": "/spec/approvals",
            "value": [{"step": "restart", "user": "alice"}]}]))
        .expect("a JSON patch"),
    );
    // The API server's four-eyes policy refuses it: the run acts for alice.
    match alice.patch(&name, &PatchParams::default(), &first).await {
        Err(kube::Error::Api(e)) if e.code == 403 => assert!(
            e.message
                .contains("you ('alice') requested this Execution, so you cannot approve"),
            "{}",
            e.message
        ),
        other => panic!("alice's own approval must be refused by the API server: {other:?}"),
    }
    let status = wait_status(&ns, &name, "waiting for approval", common::TIMEOUT, |s| {
        s.phase == ExecutionPhase::WaitingApproval
    })
    .await;
    let written = alice.get(&name).await.expect("the run");
    assert!(
        written.spec.approvals.is_empty(),
        "{:?}",
        written.spec.approvals
    );
    assert_eq!(status.phase, ExecutionPhase::WaitingApproval);
    assert!(jobs_of_step(&ns, "restart").await.is_empty());
    let hash = step(&status, "restart")
        .plan
        .as_ref()
        .map(|p| p.hash.clone())
        .expect("the waiting step shows its plan");
    let approve = Patch::<()>::Json(
        serde_json::from_value(json!([{"op": "add", "path": "/spec/approvals",
            "value": [{"step": "restart", "user": "bob", "planHash": hash}]}]))
        .expect("a JSON patch"),
    );
    bob.patch(&name, &PatchParams::default(), &approve)
        .await
        .expect("bob approves");
    assert_eq!(
        wait_final(&ns, &name).await.phase,
        ExecutionPhase::Succeeded
    );
    operator.stop().await;
    ns.cleanup().await;
}
