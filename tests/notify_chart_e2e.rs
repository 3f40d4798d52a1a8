//! The chart's chat-approval RBAC is enough and no more: the operator binary runs on
//! this machine as the chart's ServiceAccount (a TokenRequest token), with the notify
//! flags the chart's Deployment passes, against the local stand-in for Slack
//! (`tests/common/slack.rs`). bob's Slack click approves as bob through the rendered
//! `impersonate` rule; a user and a group the config file maps but the chart's values
//! do not list (the drift the README warns about) are refused by the API server.
//!
//! Needs a cluster: `make cluster-up`, then `cargo test --test notify_chart_e2e`.

mod common;

use std::collections::BTreeSet;

use common::on_call::{plan_hash, setup_on_call};
use common::operator::execution;
use common::process::OperatorProcess;
use common::service_account::service_account_kubeconfig;
use common::slack::{Fake, interaction};
use common::slack_approval::{
    approve_button, bobs_approval, click_and_reply, guarded_with, wait_waiting,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::Api;
use playbook_operator::api::Execution;
use serde_json::json;

const SIGNING_SECRET: &str = "e2e-chart-signing-secret";

/// (verb, resource, resourceNames) of each rule.
fn rules(role: &ClusterRole) -> BTreeSet<(String, String, Vec<String>)> {
    let mut out = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        for resource in rule.resources.iter().flatten() {
            for verb in &rule.verbs {
                let names = rule.resource_names.clone().unwrap_or_default();
                out.insert((verb.clone(), resource.clone(), names));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_approvals_work_with_the_charts_impersonate_rule_and_impersonate_nobody_else() {
    let ns = setup_on_call("notify-chart").await;
    let fake = Fake::start().await;

    // The chart with chat approvals for bob and group sre; the config file comes from
    // an existing Secret, whose mapping the chart cannot read.
    let release = common::helm::Release::install(
        &ns,
        &[
            "admissionPolicies.enabled=false",
            "notify.existingSecret=chat",
            "notify.chatApprovals.enabled=true",
            "notify.chatApprovals.users={bob}",
            "notify.chatApprovals.groups={sre}",
        ],
    );
    let name = release.fullname();
    let role = Api::<ClusterRole>::all(ns.client.clone())
        .get(&format!("{name}-chat-approvals"))
        .await
        .expect("the chart's chat-approvals ClusterRole");
    let want: BTreeSet<_> = [
        (
            "impersonate".to_string(),
            "users".to_string(),
            vec!["bob".to_string()],
        ),
        (
            "impersonate".to_string(),
            "groups".to_string(),
            vec!["sre".to_string()],
        ),
    ]
    .into();
    assert_eq!(rules(&role), want, "{role:?}");
    let deployment = ns
        .api::<Deployment>()
        .get(&name)
        .await
        .expect("the chart's Deployment");
    let args = deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.args)
        .unwrap_or_default();
    assert!(
        args.contains(&"--notify-config-file=/etc/playbook-operator/notify/notify.yaml".into()),
        "{args:?}"
    );
    let timeout = args
        .iter()
        .find(|a| a.starts_with("--notify-timeout-seconds="))
        .unwrap_or_else(|| panic!("no --notify-timeout-seconds in {args:?}"))
        .clone();

    // The mounted file, here a local one: it maps mallory and bob-as-admins too,
    // which the chart's values leave out.
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("notify.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
channels:
  - name: sre
    namespaces: [{ns}]
    slack: {{token: xoxb-e2e-token, channel: C0SRE, apiUrl: "{api}"}}
slackApprovals:
  signingSecret: {SIGNING_SECRET}
  users:
    U0BOB: {{user: bob, groups: [sre]}}
    U0MALLORY: {{user: mallory}}
    U0BOBADMIN: {{user: bob, groups: [admins]}}
"#,
            ns = ns.name,
            api = fake.url("/api"),
        ),
    )
    .expect("writing the notify config");
    let kubeconfig = service_account_kubeconfig(&ns, &name).await;
    let config_flag = format!("--notify-config-file={}", config.display());
    let kubeconfig_path = kubeconfig.path().to_string_lossy().into_owned();
    let operator = OperatorProcess::start_as(
        &ns,
        "sa",
        &[&config_flag, &timeout],
        &[("KUBECONFIG", &kubeconfig_path)],
    );
    let addr = operator.http_addr().await;
    operator.wait_log("serving Slack interactions").await;

    guarded_with(&ns, "sre").await;
    execution(&ns, "run-1", "guarded", json!({})).await;
    wait_waiting(&ns, "run-1").await;
    // The notifier, as the ServiceAccount, posted the message with the buttons.
    let (_, value) = approve_button(&fake).await;
    let hash = plan_hash(&ns, "run-1", "restart").await;

    // Mapped in the file but not in the chart's values (a user; a group of bob's): the
    // API server refuses the operator's impersonation (403), and the person is told so.
    let operator_user = format!("system:serviceaccount:{}:{name}", ns.name);
    for slack_user in ["U0MALLORY", "U0BOBADMIN"] {
        let path = format!("/response/{slack_user}");
        let body = interaction(slack_user, "approve", &value, &fake.url(&path));
        let reply = click_and_reply(&fake, addr, &body, SIGNING_SECRET, &path).await;
        let text = reply["text"].as_str().unwrap_or_default();
        assert!(text.starts_with("not approved as "), "{text}");
        for want in [
            "is forbidden".to_string(),
            format!("User \"{operator_user}\" cannot impersonate"),
        ] {
            assert!(text.contains(&want), "{slack_user}: {text}");
        }
    }
    let exec: Execution = ns.api().get("run-1").await.expect("run-1");
    assert!(exec.spec.approvals.is_empty(), "{:?}", exec.spec.approvals);

    // bob, as the chart grants: approved as bob (with group sre), and the run ends.
    let body = interaction("U0BOB", "approve", &value, &fake.url("/response/bob"));
    let reply = click_and_reply(&fake, addr, &body, SIGNING_SECRET, "/response/bob").await;
    let approvals = bobs_approval(&ns, &reply, "run-1", &hash).await;
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    let record = &approvals[0];
    assert!(!record.groups.contains(&"admins".to_string()), "{record:?}");
    drop(operator);
    drop(kubeconfig);
    drop(release);
    ns.cleanup().await;
}
