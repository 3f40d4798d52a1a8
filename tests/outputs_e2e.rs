//! Outputs without a size cliff, on the local control plane: a step output past the
//! inline budget goes to a ConfigMap owned by the Execution and later steps still
//! read all of it; one past the hard cap is cut at a JSON boundary and marked, and
//! the operator goes on working.
//!
//! Needs a cluster: `make test-e2e`, or `make cluster-up` then
//! `cargo test --test outputs_e2e`.

mod common;

use common::operator::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use playbook_operator::api::{Execution, ExecutionPhase, ExecutionStatus, OutputsRef};
use playbook_operator::engine::job::{OUTPUTS_KEY, ROLE_OUTPUTS};
use playbook_operator::engine::plan::sha256_hex;
use serde_json::{Value, json};

const KIB: usize = 1024;

/// `{"items": [...]}` of about `bytes` of JSON; item `i` has `meta.ip` `10.0.<i/256>.<i%256>`.
fn items(bytes: usize) -> (Value, usize) {
    let one = |i: usize| json!({"name": format!("pod-{i:05}"), "meta": {"ip": format!("10.0.{}.{}", i / 256, i % 256), "labels": {"app": "shop", "note": "x".repeat(60)}}});
    let per = serde_json::to_string(&one(0)).map_or(1, |s| s.len() + 1);
    let n = bytes / per;
    (json!({"items": (0..n).map(one).collect::<Vec<_>>()}), n)
}

/// A step log printing `value` after the end marker, one item per line (a log of
/// short lines, as a real step prints it).
fn log_of(value: &Value) -> String {
    let lines: Vec<String> = value["items"]
        .as_array()
        .map(|items| items.iter().map(Value::to_string).collect())
        .unwrap_or_default();
    format!(
        "listing pods\n<-- END -->\n{{\"items\": [\n{}\n]}}\n",
        lines.join(",\n")
    )
}

/// A Playbook `name`: step `id` prints `output`, then step `use` renders `env`.
async fn prints_then_uses(
    ns: &common::TestNamespace,
    name: &str,
    id: &str,
    output: &Value,
    env: Value,
) {
    ns.set_container_log(id, &log_of(output)).await;
    ns.set_container_log("use", &step_log("ok", json!({"ok": true})))
        .await;
    let steps = json!([
        {"id": id, "image": format!("example.com/{id}:1")},
        {"id": "use", "image": "example.com/use:1", "env": env}
    ]);
    playbook(ns, name, steps).await;
}

/// Runs `playbook` as the Execution `name` and waits until it has succeeded.
async fn succeeds(ns: &common::TestNamespace, name: &str, playbook: &str) -> ExecutionStatus {
    execution(ns, name, playbook, json!({})).await;
    let status = wait_final(ns, name).await;
    assert_eq!(
        status.phase,
        ExecutionPhase::Succeeded,
        "{}",
        serde_yaml::to_string(&status).unwrap_or_default()
    );
    status
}

/// The JSON in the ConfigMap `r` names, checked against `r`; the ConfigMap is
/// immutable, owned by the Execution `exec` and labelled as a spilled output.
async fn stored_output(ns: &common::TestNamespace, exec: &str, r: &OutputsRef) -> String {
    let cms: Api<ConfigMap> = ns.api();
    let cm = cms
        .get(&r.config_map_name)
        .await
        .expect("the outputs ConfigMap");
    assert_eq!(cm.immutable, Some(true));
    let owners = cm.metadata.owner_references.clone().unwrap_or_default();
    let owners: Vec<_> = owners
        .iter()
        .map(|o| (o.kind.as_str(), o.name.as_str()))
        .collect();
    assert_eq!(owners, [("Execution", exec)]);
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("stackpulse.io/role").map(String::as_str),
        Some(ROLE_OUTPUTS)
    );
    let text = cm
        .data
        .unwrap_or_default()
        .remove(OUTPUTS_KEY)
        .unwrap_or_default();
    assert_eq!(text.len() as u64, r.bytes);
    assert_eq!(sha256_hex(&text), r.sha256);
    text
}

async fn execution_object(ns: &common::TestNamespace, name: &str) -> Execution {
    let api: Api<Execution> = ns.api();
    api.get(name).await.expect("the Execution")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_kib_output_spills_and_the_next_step_reads_deep_into_it() {
    let ns = setup("out-spill").await;
    let (big, n) = items(200 * KIB);
    let last = n - 1;
    let deep = format!("{{{{ (index .steps.list.outputs.items {last}).meta.ip }}}}");
    prints_then_uses(&ns, "pods", "list", &big, json!({"DEEP": deep})).await;
    let operator = Operator::start(&ns);
    let status = succeeds(&ns, "pods-1", "pods").await;

    // The next step's Job rendered a value from the end of the 200 KiB output.
    let jobs = jobs_of_step(&ns, "use").await;
    assert_eq!(jobs.len(), 1);
    let want = format!("10.0.{}.{}", last / 256, last % 256);
    assert_eq!(env_value(&jobs[0], "DEEP").as_deref(), Some(want.as_str()));

    // The Execution stays small: the output is referenced, not inline.
    let exec = execution_object(&ns, "pods-1").await;
    let object_bytes = serde_json::to_vec(&exec).map_or(0, |v| v.len());
    assert!(object_bytes < 64 * KIB, "Execution is {object_bytes} bytes");
    let list = step(&status, "list");
    assert_eq!(list.outputs, None);
    assert!(!list.outputs_truncated);
    let r = list
        .outputs_ref
        .clone()
        .expect("status names the ConfigMap");
    assert!(
        r.bytes > 190 * KIB as u64 && r.bytes == r.original_bytes,
        "{r:?}"
    );

    // `kubectl get pbx -o yaml` shows where the output is.
    let out = common::kubectl()
        .args(["get", "pbx", "pods-1", "-n", &ns.name, "-o", "yaml"])
        .output()
        .expect("running kubectl");
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        yaml.contains("outputsRef:")
            && yaml.contains(&format!("configMapName: {}", r.config_map_name)),
        "{yaml}"
    );

    // The ConfigMap holds the whole output.
    let text = stored_output(&ns, "pods-1", &r).await;
    assert_eq!(serde_json::from_str::<Value>(&text).ok(), Some(big));
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mib_output_is_cut_at_the_hard_cap_marked_and_nothing_crashes() {
    let ns = setup("out-cap").await;
    let (huge, _) = items(5 * 1024 * KIB + 100 * KIB);
    let env = json!({"FIRST": "{{ (index .items 0).meta.ip }}", "CUT": "{{ ._truncated }}"});
    prints_then_uses(&ns, "dump", "dump", &huge, env).await;
    playbook(
        &ns,
        "small",
        json!([{"id": "use", "image": "example.com/use:1"}]),
    )
    .await;
    let operator = Operator::start(&ns);
    let status = succeeds(&ns, "dump-1", "dump").await;
    let dump = step(&status, "dump");
    assert!(dump.outputs_truncated, "marked truncated in status");
    let r = dump.outputs_ref.clone().expect("spilled");
    assert!(r.original_bytes > 5 * 1024 * KIB as u64, "{r:?}");
    assert!(
        r.bytes <= 900 * KIB as u64 && r.bytes > 800 * KIB as u64,
        "{r:?}"
    );
    let message = dump.message.clone().unwrap_or_default();
    assert!(
        message.contains("output was 5.") && message.contains("MiB; kept "),
        "{message}"
    );

    // The next step read the kept part and the marker, with the original size.
    let jobs = jobs_of_step(&ns, "use").await;
    assert_eq!(env_value(&jobs[0], "FIRST").as_deref(), Some("10.0.0.0"));
    let cut = env_value(&jobs[0], "CUT").unwrap_or_default();
    assert!(
        cut.contains(&format!("({} bytes); kept", r.original_bytes)),
        "{cut}"
    );

    // The kept JSON is valid and what status describes.
    let text = stored_output(&ns, "dump-1", &r).await;
    let kept: Value = serde_json::from_str(&text).expect("valid JSON");
    assert!(kept["items"].as_array().is_some_and(|a| !a.is_empty()));

    // The operator keeps working.
    let exec = execution_object(&ns, "dump-1").await;
    assert!(serde_json::to_vec(&exec).map_or(0, |v| v.len()) < 64 * KIB);
    succeeds(&ns, "small-1", "small").await;
    operator.stop().await;
    ns.cleanup().await;
}
