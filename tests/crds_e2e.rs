//! The CRDs on a real API server: they install, the examples apply, `kubectl explain`
//! shows our docs, and the schema's rules reject bad playbooks with readable messages.
//!
//! Needs a cluster: `make test-e2e`, or `make cluster-up` then
//! `cargo test --test crds_e2e`. Without one, every test panics naming `make cluster-up`.

mod common;

use common::TestNamespace;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use playbook_operator::api::Playbook;
use serde_json::json;

fn kubectl_ok(args: &[&str]) -> String {
    let out = common::kubectl().args(args).output().expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {}: {}{}",
        args.join(" "),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `kubectl explain` reads the OpenAPI document, which the API server republishes a
/// moment after a CRD is Established: retry until then.
async fn kubectl_explain(path: &str) -> String {
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    loop {
        let out = common::kubectl()
            .args(["explain", path])
            .output()
            .expect("kubectl runs");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl explain {path}: {stderr}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn crds_install_and_explain_shows_our_docs() {
    let client = common::client().await;
    let names = common::install_crds(&client).await;
    assert_eq!(
        names.len(),
        5,
        "playbooks, executions, triggers, runners and schedules: {names:?}"
    );
    let explain = kubectl_explain("playbook.spec.steps").await;
    for text in [
        "An entry with `steps` is a block",
        "id\t<string> -required-",
        "outputParser",
        "Identifies the step",
    ] {
        assert!(explain.contains(text), "missing {text:?} in:\n{explain}");
    }
    let columns = kubectl_explain("execution.status.phase").await;
    assert!(columns.contains("WaitingApproval"), "{columns}");
}

#[tokio::test]
async fn examples_apply_and_list_under_the_stackpulse_category() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::with_client(client, "examples").await;
    kubectl_ok(&[
        "apply",
        "-n",
        &ns.name,
        "-f",
        "examples/playbooks",
        "-f",
        "examples/triggers",
    ]);
    let listed = kubectl_ok(&["get", "stackpulse", "-n", &ns.name, "-o", "name"]);
    for name in [
        "playbook.stackpulse.io/redis-incident-enrichment",
        "playbook.stackpulse.io/restart-crashlooping-pods",
    ] {
        assert!(listed.contains(name), "{name} not listed:\n{listed}");
    }
    assert!(listed.contains("trigger.stackpulse.io/"), "{listed}");

    // The Execution printer columns a person sees first.
    let exec = json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Execution",
        "metadata": {"name": "first-run"},
        "spec": {"playbookRef": {"name": "redis-incident-enrichment"}, "params": {"RedisPort": 6379}}
    });
    let api: Api<playbook_operator::api::Execution> = ns.api();
    api.create(
        &PostParams::default(),
        &serde_json::from_value(exec).expect("valid Execution"),
    )
    .await
    .expect("Execution accepted");
    let table = kubectl_ok(&["get", "pbx", "-n", &ns.name]);
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "PLAYBOOK", "PHASE", "STEP", "SEVERITY", "AGE"] {
        assert!(header.contains(column), "no {column} column in {header:?}");
    }
    assert!(table.contains("redis-incident-enrichment"), "{table}");
    ns.cleanup().await;
}

/// Each bad Playbook is refused by the API server with a message saying what to fix.
#[tokio::test]
async fn invalid_playbooks_are_rejected_with_readable_messages() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::with_client(client, "invalid").await;
    // Untyped, so the Rust types cannot refuse what only the API server should.
    let api: Api<DynamicObject> = Api::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &ApiResource::erase::<Playbook>(&()),
    );
    let cases = [
        (
            "duplicate-ids",
            json!([{"id": "a", "image": "x"}, {"id": "a", "image": "y"}]),
            "step ids must be unique",
        ),
        (
            "bad-phase",
            json!([{"id": "a", "image": "x", "phase": "fix"}]),
            "supported values: \"enrich\", \"triage\", \"communicate\", \"remediate\"",
        ),
        (
            "bad-id",
            json!([{"id": "Get_Info", "image": "x"}]),
            "id must be a DNS label",
        ),
        (
            "neither-step-nor-block",
            json!([{"id": "a"}]),
            "an entry is either a step (set image) or a block (set steps)",
        ),
        (
            "duplicate-in-block",
            json!([{"id": "blk", "when": "{{ true }}", "steps": [{"id": "s", "image": "x"}, {"id": "s", "image": "x"}]}]),
            "step ids must be unique within a block",
        ),
        ("no-steps", json!([]), "should have at least 1 items"),
    ];
    for (name, steps, expected) in cases {
        let pb = json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Playbook",
            "metadata": {"name": name},
            "spec": {"steps": steps}
        });
        let pb: DynamicObject = serde_json::from_value(pb).expect("a Kubernetes object");
        match api.create(&PostParams::default(), &pb).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{name}: {status:?}");
                assert!(
                    status.message.contains(expected),
                    "{name}: expected {expected:?} in {:?}",
                    status.message
                );
            }
            other => panic!("{name}: expected the API server to refuse it, got {other:?}"),
        }
    }
    ns.cleanup().await;
}
