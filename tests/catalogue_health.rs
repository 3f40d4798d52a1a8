//! The catalogue's scheduled cluster health check (`catalogue/cluster-health/`): its
//! Schedule starts the playbook with the defaults and its first step becomes a Job on
//! the entry's Runner; the ClusterRole only lists; and the steps' own parsers and
//! rules, run over what the enrich steps print (rows as their awk prints them), give
//! the verdict of the cluster that printed them. Pure: no cluster (`catalogue_e2e`
//! runs it on the real node).

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use playbook_operator::api::{Phase, Playbook, Runner, Schedule};
use playbook_operator::engine::job::render_step;
use playbook_operator::engine::parse::parse_output;
use playbook_operator::engine::plan::ExecutionRef;
use playbook_operator::engine::schedule;
use playbook_operator::engine::template::render_condition;
use serde_json::{Value, json};

mod common;

use common::catalogue_files::{self as files, first_step_pod};

const ENTRY: &str = "cluster-health";

fn docs(file: &str, kind: &str) -> Vec<Value> {
    files::docs(ENTRY, file, kind)
}

fn one<T: serde::de::DeserializeOwned>(file: &str, kind: &str) -> T {
    files::one(ENTRY, file, kind)
}

#[test]
fn the_schedule_starts_the_check_hourly_and_its_first_step_is_a_job_on_the_runner() {
    let schedule: Schedule = one("schedule.yaml", "Schedule");
    let pb: Playbook = one("playbook.yaml", "Playbook");
    let runner: Runner = one("rbac.yaml", "Runner");
    assert_eq!(schedule.spec.playbook_ref.name, ENTRY);
    assert_eq!(
        serde_json::to_value(schedule.spec.concurrency_policy).expect("JSON"),
        "Forbid",
        "a check still running is not doubled"
    );
    schedule::compile(&schedule.spec.schedule, schedule.spec.time_zone.as_deref())
        .expect("the expression compiles");
    assert!(
        pb.spec.params.iter().all(|p| p.default.is_some()),
        "a scheduled run has no alert to fill params from: every param needs a default"
    );
    let tick = Utc
        .with_ymd_and_hms(2026, 12, 5, 18, 0, 0)
        .single()
        .expect("a time");
    let run = schedule::execution(ENTRY, "playbook-catalogue", &schedule.spec, tick);
    let execution = ExecutionRef {
        name: run.metadata.name.clone().unwrap_or_default(),
        namespace: "playbook-catalogue".into(),
        uid: "00000000-0000-0000-0000-000000000000".into(),
        generation: Some(1),
        url: None,
    };
    // Checks that the first step is a Job on the entry's Runner.
    first_step_pod(ENTRY, execution, run.spec.clone(), &pb, &runner);
    // The enrich steps and the report render with the defaults alone (the others read
    // outputs: `a_healthy_cluster_...` renders them over real ones).
    let params: Value = pb
        .spec
        .params
        .iter()
        .map(|p| (p.name.clone(), json!(p.default.clone().unwrap_or_default())))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let ctx = json!({"params": params, "steps": {}, "execution": {"url": null, "phase": "Succeeded", "failedStep": null}});
    let enrich = pb
        .spec
        .steps
        .iter()
        .filter(|s| s.step.phase == Phase::Enrich);
    for s in enrich.chain(&pb.spec.finally) {
        render_step(&s.step, &ctx).unwrap_or_else(|e| panic!("step {}: {e:?}", s.step.id));
    }
}

#[test]
fn the_check_only_lists_and_changes_nothing() {
    let pb: Playbook = one("playbook.yaml", "Playbook");
    assert!(
        pb.spec
            .steps
            .iter()
            .all(|s| s.step.phase != Phase::Remediate),
        "a scheduled check changes nothing"
    );
    let role = &docs("rbac.yaml", "ClusterRole")[0];
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["nodes", "pods", "persistentvolumeclaims", "events"], "verbs": ["list"]}])
    );
}

const SINCE: &str = "2026-12-05T17:00:00Z";
const PENDING_BEFORE: &str = "2026-12-05T17:50:00Z";

/// What each enrich step prints for a cluster: its custom-columns rows, as its awk
/// turns them into JSON, after the end marker.
fn logs(nodes: Value, pods: Value, claims: Value, events: Value) -> BTreeMap<&'static str, String> {
    let log = |v: Value| format!("Warning: a kubectl warning\n<-- END -->\n{v}\n");
    BTreeMap::from([
        ("nodes", log(json!({"rows": nodes}))),
        (
            "pods",
            log(json!({"since": SINCE, "pendingBefore": PENDING_BEFORE, "rows": pods})),
        ),
        (
            "volumes",
            log(json!({"pendingBefore": PENDING_BEFORE, "rows": claims})),
        ),
        (
            "events",
            log(json!({"since": SINCE, "threshold": 25, "rows": events})),
        ),
    ])
}

/// Runs the playbook over those logs as the controller would: each step whose
/// `when` holds "runs" (an enrich step's output is its log parsed by its parser; a
/// printf step's output is its rendered args parsed the same way), others are
/// Skipped. Returns every step's state and outputs.
fn run(logs: &BTreeMap<&str, String>) -> Value {
    let pb: Playbook = one("playbook.yaml", "Playbook");
    let params: serde_json::Map<String, Value> = pb
        .spec
        .params
        .iter()
        .map(|p| (p.name.clone(), json!(p.default.clone().unwrap_or_default())))
        .collect();
    let mut ctx = json!({"params": params, "steps": {}, "execution": {"url": "https://pbo.example.com/ui/x"}});
    for s in &pb.spec.steps {
        let step = &s.step;
        let holds = step.when.as_deref().is_none_or(|w| {
            render_condition(w, &ctx).unwrap_or_else(|e| panic!("step {}: {e}", step.id))
        });
        ctx["steps"][&step.id] = if !holds {
            json!({"state": "Skipped", "outputs": null})
        } else {
            let printed = match logs.get(step.id.as_str()) {
                Some(log) => log.clone(),
                None => {
                    let rendered = render_step(step, &ctx)
                        .unwrap_or_else(|e| panic!("step {}: {e:?}", step.id));
                    rendered.args.unwrap_or_default().join("\n") + "\n"
                }
            };
            let parser = step.output_parser.as_ref().expect("every step parses");
            let outputs = parse_output(parser, &printed, None)
                .unwrap_or_else(|e| panic!("step {}: {e}\n{printed}", step.id));
            json!({"state": "Succeeded", "outputs": outputs, "exitCode": 0})
        };
    }
    ctx["steps"].clone()
}

fn node(name: &str, ready: &str, reason: &str, true_conditions: &str) -> Value {
    json!([name, ready, reason, true_conditions, "<none>"])
}

#[allow(clippy::too_many_arguments)]
fn pod(
    ns: &str,
    name: &str,
    phase: &str,
    created: &str,
    waiting: &str,
    restarts: &str,
    last: &str,
    finished: &str,
    scheduled: &str,
) -> Value {
    json!([
        ns, name, phase, created, waiting, restarts, last, finished, scheduled
    ])
}

fn healthy_pods() -> Vec<Value> {
    vec![
        pod(
            "kube-system",
            "dns-1",
            "Running",
            "2026-12-01T00:00:00Z",
            "<none>",
            "0",
            "<none>",
            "<none>",
            "<none>",
        ),
        // Restarted often, but long ago: not crash-looping now.
        pod(
            "shop",
            "old-1",
            "Running",
            "2026-12-01T00:00:00Z",
            "<none>",
            "9",
            "Error",
            "2026-12-02T00:00:00Z",
            "<none>",
        ),
        pod(
            "shop",
            "job-1",
            "Succeeded",
            "2026-12-05T17:55:00Z",
            "<none>",
            "0",
            "<none>",
            "<none>",
            "<none>",
        ),
        // Pending, but only for a minute.
        pod(
            "shop",
            "new-1",
            "Pending",
            "2026-12-05T17:59:00Z",
            "ContainerCreating",
            "0",
            "<none>",
            "<none>",
            "<none>",
        ),
    ]
}

#[test]
fn a_healthy_cluster_is_healthy_and_each_cause_names_its_finding() {
    let nodes = vec![
        node("n1", "True", "KubeletReady", "Ready"),
        node("n2", "True", "KubeletReady", "Ready"),
    ];
    let bound = vec![json!([
        "shop",
        "data",
        "Bound",
        "2026-12-01T00:00:00Z",
        "<none>"
    ])];
    let old_event = json!([
        "shop",
        "Pod",
        "old-1",
        "BackOff",
        "3",
        "2026-12-02T00:00:00Z",
        "<nil>",
        "2026-12-02T00:00:00Z",
        "Back-off restarting"
    ]);
    let steps = run(&logs(
        json!(nodes),
        json!(healthy_pods()),
        json!(bound),
        json!([old_event]),
    ));
    assert_eq!(
        steps["verdict"]["outputs"]["verdict"], "Healthy",
        "{steps:#}"
    );
    assert_eq!(
        steps["events"]["outputs"]["total"], 0,
        "an event before the window"
    );
    let summary = steps["summary"]["outputs"]["summary"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        summary.starts_with(
            "Cluster health: Healthy. 2 nodes, 4 pods, 1 claims checked (volume usage not checked"
        ),
        "{summary}"
    );
    assert!(
        summary.ends_with("Page: https://pbo.example.com/ui/x"),
        "{summary}"
    );

    let mut crashing = healthy_pods();
    crashing.push(pod(
        "shop",
        "web-1",
        "Running",
        "2026-12-05T17:40:00Z",
        "CrashLoopBackOff",
        "5",
        "Error",
        "2026-12-05T17:58:00Z",
        "<none>",
    ));
    crashing.push(pod(
        "shop",
        "api-1",
        "Running",
        "2026-12-05T17:40:00Z",
        "<none>",
        "0,4",
        "<none>,OOMKilled",
        "<none>,2026-12-05T17:59:00Z",
        "<none>",
    ));
    crashing.push(pod(
        "shop",
        "stuck-1",
        "Pending",
        "2026-12-05T17:00:00Z",
        "<none>",
        "<none>",
        "<none>",
        "<none>",
        "Unschedulable",
    ));
    let claims = vec![
        json!(["shop", "data", "Bound", "2026-12-01T00:00:00Z", "<none>"]),
        json!(["shop", "lost", "Lost", "2026-12-01T00:00:00Z", "<none>"]),
        json!([
            "shop",
            "grow",
            "Bound",
            "2026-12-01T00:00:00Z",
            "ControllerResizeError"
        ]),
    ];
    let storm: Vec<Value> = (0..3)
        .map(|i| {
            json!([
                "shop",
                "Pod",
                format!("web-{i}"),
                "BackOff",
                "10",
                "2026-12-05T17:58:00Z",
                "<nil>",
                "2026-12-05T17:10:00Z",
                "Back-off \"restarting\" failed container app"
            ])
        })
        .collect();
    let steps = run(&logs(
        json!(nodes),
        json!(crashing),
        json!(claims),
        json!(storm),
    ));
    assert_eq!(
        steps["verdict"]["outputs"]["verdict"], "Degraded",
        "{steps:#}"
    );
    assert_eq!(
        steps["verdict"]["outputs"]["findings"]
            .as_str()
            .map(str::trim),
        Some("CrashLooping PendingPods Volumes WarningEvents")
    );
    let pods = &steps["pods"]["outputs"];
    assert_eq!(
        pods["crashLooping"],
        json!([{"namespace": "shop", "name": "web-1", "restarts": 5, "reason": "Error"},
               {"namespace": "shop", "name": "api-1", "restarts": 4, "reason": "OOMKilled"}])
    );
    assert_eq!(
        pods["pending"],
        json!([{"namespace": "shop", "name": "stuck-1", "reason": "Unschedulable"}])
    );
    assert_eq!(
        steps["volumes"]["outputs"]["problems"],
        json!([{"namespace": "shop", "name": "lost", "problem": "Lost"},
               {"namespace": "shop", "name": "grow", "problem": "ControllerResizeError"}])
    );
    let events = &steps["events"]["outputs"];
    assert_eq!(
        (events["total"].clone(), events["finding"].clone()),
        (json!(30), json!(true))
    );
    assert_eq!(events["reasons"][0]["objects"], 3);
    assert_eq!(
        events["reasons"][0]["example"],
        "Pod/shop/web-2: Back-off \"restarting\" failed container app"
    );
    let details = steps["verdict"]["outputs"]["details"]
        .as_str()
        .unwrap_or_default();
    assert!(details.contains("2 pods crash-looping: shop/web-1 (5 restarts, Error), shop/api-1 (4 restarts, OOMKilled)"), "{details}");

    let down = vec![
        node("n1", "True", "KubeletReady", "Ready"),
        node("n2", "Unknown", "NodeStatusUnknown", "MemoryPressure"),
    ];
    let steps = run(&logs(
        json!(down),
        json!(healthy_pods()),
        json!([]),
        json!([]),
    ));
    assert_eq!(
        steps["verdict"]["outputs"]["verdict"], "Unhealthy",
        "{steps:#}"
    );
    let details = steps["verdict"]["outputs"]["details"]
        .as_str()
        .unwrap_or_default();
    assert!(
        details.contains("1 of 2 nodes not Ready: n2 (NodeStatusUnknown)"),
        "{details}"
    );
    assert!(
        details.contains("nodes under pressure: n2 (MemoryPressure)"),
        "{details}"
    );
}

#[test]
fn volume_usage_from_prometheus_names_the_claims_near_full() {
    let pb: Playbook = one("playbook.yaml", "Playbook");
    let step = pb
        .spec
        .steps
        .iter()
        .find(|s| s.step.id == "volume-usage")
        .expect("the step");
    // What Prometheus's query API answers (two series of one claim: two pods mount it).
    let answer = json!({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"namespace": "shop", "persistentvolumeclaim": "data"}, "value": [1764954000.0, "91.5"]},
        {"metric": {"namespace": "shop", "persistentvolumeclaim": "data"}, "value": [1764954000.0, "91.5"]},
        {"metric": {"namespace": "db", "persistentvolumeclaim": "wal"}, "value": [1764954000.0, "97.2"]}]}});
    let out = parse_output(
        step.step.output_parser.as_ref().expect("a parser"),
        &format!("<-- END -->\n{answer}\n"),
        None,
    )
    .expect("parses");
    assert_eq!(out["fullCount"], 2);
    assert_eq!(out["fullText"], "db/wal (97 %), shop/data (91 %)");
}
