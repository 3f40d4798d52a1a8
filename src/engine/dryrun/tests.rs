//! Table tests of the dry run: verdicts of `when`, plans kept as written, order,
//! loops, `finally`, secrets as references, and the one final status.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::{Input, finish, render};
use crate::api::{
    DryRunStep, DryRunVerdict, ExecutionPhase, ExecutionSpec, ExecutionStatus, LocalRef,
    PlaybookSpec, RunnerSpec,
};
use crate::engine::plan::ExecutionRef;

fn execution_ref() -> ExecutionRef {
    ExecutionRef {
        name: "dry-1".into(),
        namespace: "ops".into(),
        uid: "u-1".into(),
        generation: Some(1),
        url: None,
    }
}

fn playbook(yaml: &str) -> PlaybookSpec {
    serde_yaml::from_str(yaml).expect("test playbook parses")
}

fn run(pb: &PlaybookSpec, params: Value, alert: Option<Value>) -> Result<Vec<DryRunStep>, String> {
    let execution = execution_ref();
    let spec = ExecutionSpec {
        playbook_ref: LocalRef { name: "pb".into() },
        params: Some(params),
        alert,
        dry_run: true,
        ..ExecutionSpec::default()
    };
    let runners = BTreeMap::from([("default".to_string(), RunnerSpec::default())]);
    let input = Input {
        execution: &execution,
        spec: &spec,
        playbook: pb,
        runners: &runners,
        runner_access: None,
    };
    render(&input, Timestamp::UNIX_EPOCH)
}

fn verdicts(steps: &[DryRunStep]) -> Vec<(String, DryRunVerdict, String)> {
    steps
        .iter()
        .map(|s| {
            (
                s.id.clone(),
                s.verdict,
                s.message.clone().unwrap_or_default(),
            )
        })
        .collect()
}

const WHENS: &str = r#"
params: [{name: Env, default: prod}, {name: Force}]
steps:
  - {id: pod, image: k:1, args: ['{{ .params.Env }}']}
  - {id: always, image: k:1}
  - {id: on-prod, image: k:1, when: '{{ eq .params.Env "prod" }}'}
  - {id: on-dev, image: k:1, when: '{{ eq .params.Env "dev" }}'}
  - {id: on-output, image: k:1, when: '{{ eq .steps.pod.outputs.phase "Failed" }}'}
  - {id: on-root-output, image: k:1, when: '{{ gt .Clients.connected 1 }}'}
  - {id: on-state, image: k:1, when: '{{ eq (index .steps "pod").state "Succeeded" }}'}
  - {id: on-alert, image: k:1, when: '{{ eq .alert.labels.severity "critical" }}'}
  - {id: broken, image: k:1, when: '{{ .params.Env }}'}
finally:
  - {id: report, image: k:1, when: '{{ eq .execution.phase "Failed" }}', args: ['{{ .execution.phase }}']}
"#;

#[test]
fn when_is_evaluated_where_its_inputs_are_known_and_unknown_otherwise() {
    let pb = playbook(WHENS);
    let steps = run(&pb, json!({}), None).expect("renders");
    let v = |id: &str, verdict, msg: &str| (id.to_string(), verdict, msg.to_string());
    use DryRunVerdict::*;
    assert_eq!(
        verdicts(&steps),
        vec![
            v("pod", Runs, ""),
            v("always", Runs, ""),
            v("on-prod", Runs, ""),
            v(
                "on-dev",
                Skipped,
                r#"when rendered false: {{ eq .params.Env "dev" }}"#
            ),
            v("on-output", Unknown, "when depends on step pod's outputs"),
            v(
                "on-root-output",
                Unknown,
                "when depends on earlier steps' outputs (.Clients)"
            ),
            v(
                "on-state",
                Unknown,
                "when depends on earlier steps' outputs"
            ),
            v(
                "on-alert",
                Unknown,
                "when depends on the alert (this dry run was given none)"
            ),
            v(
                "broken",
                Fails,
                r#"when: line 1, column 1: a condition must render true or false, but this one rendered "prod""#
            ),
            v("report", Unknown, "when depends on how the main steps end"),
        ]
    );
    assert!(
        steps
            .iter()
            .all(|s| s.plan.as_ref().is_some_and(|p| p.hash.len() == 12))
    );
    assert_eq!(steps.last().map(|s| s.finally), Some(true));
    assert_eq!(
        steps[0].plan.as_ref().map(|p| p.args.clone()),
        Some(vec!["prod".to_string()])
    );

    // With an alert, the alert is known.
    let alert = json!({"labels": {"severity": "warning"}});
    let steps = run(&pb, json!({"Env": "dev"}), Some(alert)).expect("renders");
    let by_id = |id: &str| steps.iter().find(|s| s.id == id).map(|s| s.verdict);
    assert_eq!(by_id("on-alert"), Some(Skipped));
    assert_eq!(by_id("on-prod"), Some(Skipped));
    assert_eq!(by_id("on-dev"), Some(Runs));
}

#[test]
fn fields_that_read_outputs_are_kept_as_written_and_secrets_stay_references() {
    let pb = playbook(
        r#"
params: [{name: Ns}]
steps:
  - {id: pod, image: k:1}
  - id: restart
    phase: remediate
    image: k:1
    approval: {required: true}
    args: [rollout, restart, -n, '{{ .params.Ns }}', 'deployment/{{ .steps.pod.outputs.owner }}']
    env:
      TOKEN: '{{ secret "api-token" }}'
      URL: 'https://{{ secret "api-token" }}@{{ .steps.pod.outputs.host }}'
"#,
    );
    let steps = run(&pb, json!({"Ns": "shop"}), None).expect("renders");
    let restart = &steps[1];
    assert_eq!(restart.verdict, DryRunVerdict::Runs);
    assert!(restart.approval);
    let plan = restart.plan.as_ref().expect("a plan");
    assert_eq!(
        plan.args,
        vec![
            "rollout",
            "restart",
            "-n",
            "shop",
            "deployment/{{ .steps.pod.outputs.owner }}"
        ]
    );
    assert_eq!(
        restart.templated,
        vec![
            "args[4]: depends on step pod's outputs".to_string(),
            "env URL: depends on step pod's outputs".to_string(),
        ]
    );
    let env = serde_json::to_value(&plan.env).expect("env serialises");
    let refs: Vec<&Value> = env
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/valueFrom/secretKeyRef"))
        .collect();
    // The secret is a reference to its Secret and key, never a value.
    assert!(!refs.is_empty());
    assert!(
        refs.iter()
            .all(|r| **r == json!({"name": "playbook-secrets", "key": "api-token"})),
        "{refs:?}"
    );
    let url = env
        .as_array()
        .and_then(|e| e.iter().find(|v| v["name"] == "URL"))
        .expect("URL is there");
    assert_eq!(
        url["value"],
        json!(r#"https://{{ secret "api-token" }}@{{ .steps.pod.outputs.host }}"#)
    );
}

#[test]
fn order_follows_depends_on_and_loops_expand_when_their_items_are_known() {
    let pb = playbook(
        r#"
steps:
  - {id: late, image: k:1, dependsOn: [early]}
  - {id: early, image: k:1, dependsOn: []}
  - id: each
    image: k:1
    args: ['{{ .value }}']
    foreach: {items: [a, b], when: '{{ ne .value "b" }}'}
    dependsOn: [late]
  - id: per-pod
    image: k:1
    args: ['{{ .value.name }}']
    foreach: {path: .steps.early.outputs.pods}
  - id: blk
    when: '{{ eq .steps.early.outputs.x "y" }}'
    steps:
      - {id: one, image: k:1}
"#,
    );
    let steps = run(&pb, json!({}), None).expect("renders");
    use DryRunVerdict::*;
    let ids: Vec<(&str, DryRunVerdict)> =
        steps.iter().map(|s| (s.id.as_str(), s.verdict)).collect();
    assert_eq!(
        ids,
        vec![
            ("early", Runs),
            ("late", Runs),
            ("each[0]", Runs),
            ("each[1]", Skipped),
            ("per-pod[*]", Unknown),
            ("blk.one", Unknown),
        ]
    );
    assert_eq!(
        steps[2].plan.as_ref().map(|p| p.args.clone()),
        Some(vec!["a".to_string()])
    );
    assert_eq!(
        steps[4].message.as_deref(),
        Some("foreach items: depends on step early's outputs")
    );
    assert_eq!(
        steps[4].templated,
        vec!["args[0]: depends on the items of loop per-pod"]
    );
    assert_eq!(
        steps[5].message.as_deref(),
        Some("block blk: when depends on step early's outputs")
    );
}

#[test]
fn a_step_a_real_run_would_fail_says_why() {
    let pb = playbook(
        r#"
steps:
  - {id: elsewhere, image: k:1, runner: missing}
  - {id: later, image: k:1, when: 'false', runner: missing}
"#,
    );
    let steps = run(&pb, json!({}), None).expect("renders");
    assert_eq!(steps[0].verdict, DryRunVerdict::Fails);
    assert_eq!(
        steps[0].message.as_deref(),
        Some("runner 'missing' not found in namespace ops: create it or set the step's runner")
    );
    assert_eq!(steps[1].verdict, DryRunVerdict::Skipped);
    assert_eq!(
        steps[1].message.as_deref(),
        Some("when rendered false: false")
    );
    assert!(steps[1].plan.is_none());
}

#[test]
fn the_status_is_written_once_and_names_what_to_change() {
    let pb = playbook("params: [{name: Pod, required: true}]\nsteps: [{id: a, image: k:1}]");
    let execution = execution_ref();
    let runners = BTreeMap::new();
    let spec = |params: Value| ExecutionSpec {
        playbook_ref: LocalRef { name: "pb".into() },
        params: Some(params),
        dry_run: true,
        ..ExecutionSpec::default()
    };
    let now = Timestamp::from_second(1_800_000_000).expect("a time");
    let missing = spec(json!({}));
    let input = Input {
        execution: &execution,
        spec: &missing,
        playbook: &pb,
        runners: &runners,
        runner_access: None,
    };
    let st = finish(&input, &ExecutionStatus::default(), now).expect("a first status");
    assert_eq!(st.phase, ExecutionPhase::Failed);
    assert_eq!(
        st.message.as_deref(),
        Some("dry run: required param 'Pod' is missing: set spec.params.Pod (it has no default)")
    );
    let given = spec(json!({"Pod": "web-1"}));
    let input = Input {
        spec: &given,
        ..input
    };
    let st = finish(&input, &ExecutionStatus::default(), now).expect("a first status");
    assert_eq!(st.phase, ExecutionPhase::DryRun);
    assert_eq!(
        st.message.as_deref(),
        Some("dry run, nothing ran: 1 steps: 1 run")
    );
    assert_eq!(st.dry_run.len(), 1);
    assert_eq!(st.playbook.as_ref(), Some(&pb));
    // Written once: a final status is left alone (a restart writes nothing).
    assert_eq!(finish(&input, &st, now), None);
}
