//! The `Ready` conditions the controller writes: a Playbook's follows its lint
//! against the Runners of its namespace, is not written again when unchanged, and a
//! Runner's says whether its Secret exists.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, PostParams};
use playbook_operator::api::{Playbook, Runner};
use serde_json::json;

use crate::common::operator::*;
use crate::common::{self, TestNamespace};

/// Polls (every 50 ms, up to 30 s) until the `Ready` condition of the `K` named `name`
/// has `status` and describes its current generation; returns it.
async fn wait_ready_of<K>(
    ns: &TestNamespace,
    name: &str,
    status: &str,
    conditions: impl Fn(K) -> Vec<Condition>,
) -> Condition
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = ns.api();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    loop {
        if let Ok(Some(obj)) = api.get_opt(name).await {
            let generation = obj.meta().generation;
            let ready = conditions(obj).into_iter().find(|c| c.type_ == "Ready");
            if let Some(c) = ready.as_ref().filter(|c| c.status == status) {
                assert_eq!(
                    c.observed_generation, generation,
                    "the condition describes the current spec"
                );
                return c.clone();
            }
            last = ready;
        }
        assert!(
            Instant::now() < deadline,
            "{} {name}: not Ready={status} within 30 s; last: {last:?}",
            K::kind(&())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_ready(ns: &TestNamespace, name: &str, status: &str) -> Condition {
    wait_ready_of(ns, name, status, |pb: Playbook| {
        pb.status.unwrap_or_default().conditions
    })
    .await
}

async fn wait_runner_ready(ns: &TestNamespace, name: &str, status: &str) -> Condition {
    wait_ready_of(ns, name, status, |r: Runner| {
        r.status.unwrap_or_default().conditions
    })
    .await
}

/// The READY column of `kubectl get pb NAME`.
fn ready_column(ns: &TestNamespace, name: &str) -> String {
    let out = common::kubectl()
        .args(["get", "pb", name, "-n", &ns.name])
        .output()
        .expect("running kubectl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "kubectl get pb: {out:?}");
    let mut lines = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>());
    let header = lines.next().unwrap_or_default();
    let row = lines.next().unwrap_or_default();
    let at = header
        .iter()
        .position(|h| *h == "READY")
        .unwrap_or_else(|| panic!("no READY column: {text}"));
    row.get(at).map(|s| s.to_string()).unwrap_or_default()
}

/// The Playbook controller lints each Playbook against the Runners of its namespace:
/// the Redis example is not Ready while its Runner `prod` is missing, becomes Ready
/// when it is created (a Runner event re-checks the namespace's Playbooks), and not
/// Ready again when it is deleted; a `dependsOn` cycle is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playbook_ready_follows_the_lint_and_the_runners_of_its_namespace() {
    let ns = setup("ctl-pb-ready").await;
    runner(&ns, "default", json!({})).await;
    runner(&ns, "prd", json!({})).await;
    let operator = Operator::start(&ns);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/playbooks/redis-incident-enrichment.yaml");
    let mut pb = common::read_yaml_docs::<Playbook>(&path).remove(0);
    pb.metadata.namespace = Some(ns.name.clone());
    let name = "redis-incident-enrichment";
    let playbooks: Api<Playbook> = ns.api();
    playbooks
        .create(&PostParams::default(), &pb)
        .await
        .expect("the example Playbook is accepted");

    let not_ready = wait_ready(&ns, name, "False").await;
    assert_eq!(not_ready.reason, "Invalid");
    assert_eq!(
        not_ready.message,
        "spec.steps[0].runner: Runner 'prod' does not exist (known: default, prd) \
         (did you mean 'prd'?): create it or name one of those \
         (and 1 more: run playbook-operator lint)"
    );
    assert_eq!(ready_column(&ns, name), "False");

    runner(&ns, "prod", json!({})).await;
    let ready = wait_ready(&ns, name, "True").await;
    assert_eq!(ready.reason, "Valid");
    assert!(ready.message.starts_with("3 steps; "), "{}", ready.message);
    assert!(
        ready.last_transition_time.0 >= not_ready.last_transition_time.0,
        "a transition: {ready:?}"
    );
    assert_eq!(ready_column(&ns, name), "True");

    let runners: Api<Runner> = ns.api();
    runners
        .delete("prod", &Default::default())
        .await
        .expect("deleting the Runner");
    let gone = wait_ready(&ns, name, "False").await;
    assert!(gone.message.contains("Runner 'prod'"), "{}", gone.message);

    playbook(
        &ns,
        "cycle",
        json!([
            {"id": "a", "image": "busybox", "dependsOn": ["b"]},
            {"id": "b", "image": "busybox", "dependsOn": ["a"]}
        ]),
    )
    .await;
    let cycle = wait_ready(&ns, "cycle", "False").await;
    assert!(
        cycle
            .message
            .starts_with("spec.steps: dependsOn forms a cycle: a → b → a"),
        "{}",
        cycle.message
    );
    assert_eq!(ready_column(&ns, "cycle"), "False");
    operator.stop().await;
    ns.cleanup().await;
}

/// An unchanged Playbook is not written again: a Runner event that changes nothing
/// for it leaves its resourceVersion as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_ready_condition_is_not_written_again() {
    let ns = setup("ctl-pb-nowrite").await;
    runner(&ns, "default", json!({})).await;
    let operator = Operator::start(&ns);
    playbook(&ns, "one", json!([{"id": "only", "image": "busybox"}])).await;
    let ready = wait_ready(&ns, "one", "True").await;
    assert_eq!(ready.message, "1 step");
    let playbooks: Api<Playbook> = ns.api();
    let before = playbooks.get("one").await.expect("the Playbook");
    runner(&ns, "other", json!({})).await;
    // The Runner event reaches the controller within milliseconds; give it a second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = playbooks.get("one").await.expect("the Playbook");
    assert_eq!(
        before.metadata.resource_version, after.metadata.resource_version,
        "no write when nothing changed"
    );
    operator.stop().await;
    ns.cleanup().await;
}

/// A Runner is Ready unless the Secret it names in `secretName` is missing; it
/// becomes Ready once the Secret is created (Secrets are re-read, not watched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_ready_says_whether_its_secret_exists() {
    let ns = setup("ctl-runner-ready").await;
    runner(&ns, "plain", json!({})).await;
    let _: Runner = create(
        &ns,
        json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Runner",
            "metadata": {"name": "team"},
            "spec": {"secretName": "team-secrets"}
        }),
    )
    .await;
    let operator = Operator::start(&ns);
    let plain = wait_runner_ready(&ns, "plain", "True").await;
    assert_eq!(plain.message, "no secretName set");
    let missing = wait_runner_ready(&ns, "team", "False").await;
    assert_eq!(missing.reason, "SecretNotFound");
    assert!(
        missing
            .message
            .contains("Secret 'team-secrets' does not exist"),
        "{}",
        missing.message
    );
    let _: Secret = create(
        &ns,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "team-secrets"},
            "stringData": {"k": "v"}
        }),
    )
    .await;
    let found = wait_runner_ready(&ns, "team", "True").await;
    assert_eq!(found.message, "Secret 'team-secrets' exists");
    operator.stop().await;
    ns.cleanup().await;
}
