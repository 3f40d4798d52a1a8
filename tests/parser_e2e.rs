//! Image output parsers on the local control plane: the step's log goes into a
//! ConfigMap, a parser Job (its pod "run" by kwok, its log served by kwok) prints
//! JSON, and that JSON is the step's output, in status and in the next step's env.
//! And a jq filter that would crash the controller, run by the operator binary,
//! fails only its own step.
//!
//! Needs a cluster: `make test-e2e`, or `make cluster-up` then
//! `cargo test --test parser_e2e`.

mod common;

use common::operator::*;
use common::process::OperatorProcess;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use playbook_operator::api::{ExecutionPhase, StepState};
use serde_json::json;

const PARSER: &str = "registry.example/parsers/uptime:1";
const RAW: &str = "10:42:01 up 3 days,  2 users,  load average: 0.50, 0.40, 0.30\n";

async fn parser_jobs(ns: &common::TestNamespace) -> Vec<Job> {
    let api: Api<Job> = ns.api();
    let lp = ListParams::default().labels("stackpulse.io/role=parser");
    api.list(&lp).await.expect("listing Jobs").items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_parser_turns_the_step_log_into_the_step_output() {
    let ns = setup("ctl-imgparser").await;
    ns.set_container_log("uptime", RAW).await;
    // The parser container is named after the step: `<step>-parser`.
    ns.set_container_log("uptime-parser", r#"{"up_days": 3, "load": 0.5}"#)
        .await;
    ns.set_container_log("report", &step_log("sent", json!({"sent": true})))
        .await;
    playbook(
        &ns,
        "uptime",
        json!([
            {"id": "uptime", "image": "example.com/uptime:1", "outputParser": {"name": PARSER}},
            {"id": "report", "image": "example.com/report:1",
             "env": {"UP": "{{ .up_days }} days, load {{ .steps.uptime.outputs.load }}"}}
        ]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "uptime-1", "uptime", json!({})).await;
    let status = wait_final(&ns, "uptime-1").await;
    assert_eq!(
        status.phase,
        ExecutionPhase::Succeeded,
        "{}",
        serde_yaml::to_string(&status).unwrap_or_default()
    );
    let parsed = step(&status, "uptime");
    assert_eq!(parsed.state, StepState::Succeeded);
    assert_eq!(parsed.outputs, Some(json!({"up_days": 3, "load": 0.5})));
    let run = parsed.parser.clone().expect("status names the parser run");
    assert_eq!(run.image, PARSER);
    assert!(!run.input_truncated);

    // The next step saw the parsed output.
    let report = jobs_of_step(&ns, "report").await;
    assert_eq!(report.len(), 1);
    assert_eq!(
        env_value(&report[0], "UP").as_deref(),
        Some("3 days, load 0.5")
    );

    // The raw output is in the ConfigMap status names, owned by the Execution, and
    // not in status.
    let cms: Api<ConfigMap> = ns.api();
    let cm = cms
        .get(&run.config_map_name)
        .await
        .expect("the output ConfigMap");
    assert_eq!(
        cm.data
            .unwrap_or_default()
            .get("output")
            .map(String::as_str),
        Some(RAW)
    );
    let owner = cm.metadata.owner_references.unwrap_or_default();
    assert_eq!(
        owner.first().map(|o| (o.kind.as_str(), o.name.as_str())),
        Some(("Execution", "uptime-1"))
    );
    assert!(
        !serde_json::to_string(&status)
            .unwrap_or_default()
            .contains("load average")
    );

    // Exactly one parser Job, the one status names, reading that ConfigMap.
    let parsers = parser_jobs(&ns).await;
    assert_eq!(parsers.len(), 1, "one parser Job");
    assert_eq!(
        parsers[0].metadata.name.as_deref(),
        Some(run.job_name.as_str())
    );
    let pod = parsers[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    assert_eq!(
        env_value(&parsers[0], "PLAYBOOK_OUTPUT_FILE").as_deref(),
        Some("/playbook/output")
    );
    let volume = pod
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find_map(|v| v.config_map);
    assert_eq!(volume.map(|v| v.name), Some(run.config_map_name.clone()));
    assert_eq!(
        jobs_of_step(&ns, "uptime").await.len(),
        2,
        "the step's Job and its parser's"
    );

    // A restarted controller runs nothing again.
    operator.stop().await;
    let operator = Operator::start(&ns);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        parser_jobs(&ns).await.len(),
        1,
        "no second parser Job after a restart"
    );
    operator.stop().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_parser_that_prints_no_json_fails_the_step_naming_it() {
    let ns = setup("ctl-imgparser-bad").await;
    ns.set_container_log("uptime", RAW).await;
    ns.set_container_log("uptime-parser", "usage: uptime-parser FILE\n")
        .await;
    playbook(
        &ns,
        "uptime",
        json!([
            {"id": "uptime", "image": "example.com/uptime:1", "outputParser": {"name": PARSER}},
            {"id": "report", "image": "example.com/report:1"}
        ]),
    )
    .await;
    let operator = Operator::start(&ns);
    execution(&ns, "uptime-bad", "uptime", json!({})).await;
    let status = wait_final(&ns, "uptime-bad").await;
    assert_eq!(status.phase, ExecutionPhase::Failed);
    let failed = step(&status, "uptime");
    assert_eq!(failed.state, StepState::Failed);
    let message = failed.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "output parser image '{PARSER}' did not print JSON"
        )) && message.contains("it printed 'usage: uptime-parser FILE'")
            && message.contains("fix the parser image or use a built-in parser"),
        "{message}"
    );
    assert_eq!(step(&status, "report").state, StepState::Skipped);
    assert_eq!(parser_jobs(&ns).await.len(), 1);
    operator.stop().await;
    ns.cleanup().await;
}

/// `def f: 1 + f; f` overflows any stack: in the controller's process it would abort
/// the operator, and again after every restart. The binary runs filters in its jq
/// sandbox, so the step fails saying why, and the operator goes on with the next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jq_filter_that_recurses_forever_fails_its_step_not_the_operator() {
    let ns = setup("ctl-jq-runaway").await;
    ns.set_container_log("count", &step_log("counting", json!({"n": 3})))
        .await;
    playbook(
        &ns,
        "runaway",
        json!([{"id": "count", "image": "example.com/count:1",
                "outputParser": {"name": "json", "jq": "def f: 1 + f; f"}}]),
    )
    .await;
    playbook(
        &ns,
        "fine",
        json!([{"id": "count", "image": "example.com/count:1",
                "outputParser": {"name": "json", "jq": ".n + 1"}}]),
    )
    .await;
    let mut operator = OperatorProcess::start(&ns, &[]);
    execution(&ns, "runaway-1", "runaway", json!({})).await;
    let status = wait_final(&ns, "runaway-1").await;
    assert_eq!(status.phase, ExecutionPhase::Failed);
    let message = step(&status, "count").message.clone().unwrap_or_default();
    assert!(
        message.contains("the jq filter recursed too deep")
            && message.contains("needs a base case"),
        "{message}"
    );
    execution(&ns, "fine-1", "fine", json!({})).await;
    let status = wait_final(&ns, "fine-1").await;
    assert_eq!(
        status.phase,
        ExecutionPhase::Succeeded,
        "{:?}",
        status.message
    );
    assert_eq!(step(&status, "count").outputs, Some(json!({"output": 4})));
    let exit = operator.terminate();
    assert!(
        exit.success(),
        "the operator did not survive: {exit}\n{}",
        operator.log()
    );
    ns.cleanup().await;
}
