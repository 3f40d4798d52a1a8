use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_790_000_000 + secs).expect("valid")
}

/// An Execution from JSON (the shape the API server sends).
fn exec(v: Value) -> Execution {
    serde_json::from_value(v).expect("a valid Execution")
}

fn run(ns: &str, name: &str, playbook: &str, phase: &str, created: i64) -> Execution {
    exec(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Execution",
        "metadata": {"name": name, "namespace": ns,
                     "creationTimestamp": Time(at(created))},
        "spec": {"playbookRef": {"name": playbook}},
        "status": {"phase": phase}
    }))
}

#[test]
fn durations_read_like_a_person_says_them() {
    let cases = [
        (0, 0, "0ms"),
        (0, -5, "0ms"),
        (0, 1, "1s"),
        (0, 59, "59s"),
        (0, 65, "1m 05s"),
        (0, 3599, "59m 59s"),
        (0, 7380, "2h 03m"),
    ];
    for (from, to, want) in cases {
        assert_eq!(duration(at(from), at(to)), want, "{from}..{to}");
    }
    let ms = Timestamp::from_millisecond(at(0).as_millisecond() + 850).expect("valid");
    assert_eq!(duration(at(0), ms), "850ms");
}

#[test]
fn access_is_every_namespace_or_the_allowed_ones() {
    let answers = [("prod", true), ("staging", false), ("dev", true)];
    let cases = [
        (true, vec!["prod", "staging", "dev", "other"], vec![]),
        (false, vec!["prod", "dev"], vec!["staging", "other"]),
    ];
    for (cluster_wide, allowed, denied) in cases {
        let access = Access::from_answers(cluster_wide, answers);
        for ns in allowed {
            assert!(
                access.allows(ns),
                "{ns} visible (cluster-wide {cluster_wide})"
            );
        }
        for ns in denied {
            assert!(
                !access.allows(ns),
                "{ns} hidden (cluster-wide {cluster_wide})"
            );
        }
    }
}

#[test]
fn list_shows_visible_matching_runs_newest_first_capped() {
    let execs = [
        run("prod", "a", "redis", "Succeeded", 10),
        run("prod", "b", "redis", "Failed", 30),
        run("prod", "c", "disk", "Running", 20),
        run("secret", "d", "redis", "Failed", 40),
        run("dev", "e", "redis", "Failed", 50),
    ];
    let refs: Vec<&Execution> = execs.iter().collect();
    let access = Access::from_answers(false, [("prod", true), ("dev", true)]);
    let filter = |ns: &str, pb: &str, phase: &str| ListFilter {
        namespace: ns.into(),
        playbook: pb.into(),
        phase: phase.into(),
    };
    // (filter, cap, rows shown, how many matched)
    let cases = [
        (filter("", "", ""), 10, vec!["e", "b", "c", "a"], 4),
        (filter("", "", ""), 2, vec!["e", "b"], 4),
        (filter("prod", "", ""), 10, vec!["b", "c", "a"], 3),
        (filter("", "redis", ""), 10, vec!["e", "b", "a"], 3),
        (filter("", "", "failed"), 10, vec!["e", "b"], 2),
        (filter("prod", "redis", "Failed"), 10, vec!["b"], 1),
        // A namespace the person may not see stays empty even when asked for.
        (filter("secret", "", ""), 10, vec![], 0),
    ];
    for (f, cap, want, matched) in cases {
        let view = list(&refs, &access, &f, at(100), cap);
        let names: Vec<&str> = view.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, want, "{f:?} cap {cap}");
        assert_eq!(view.matched, matched, "{f:?}");
        assert_eq!(
            view.namespaces,
            vec!["dev", "prod"],
            "drop-down: visible only"
        );
    }
}

#[test]
fn a_row_says_phase_duration_trigger_and_alert() {
    let e = exec(json!({
        "metadata": {"name": "r1", "namespace": "prod", "creationTimestamp": Time(at(0))},
        "spec": {"playbookRef": {"name": "redis"}, "triggerRef": {"name": "on-redis"},
                 "alert": {"labels": {"alertname": "RedisDown"}}},
        "status": {"phase": "Running", "severity": "critical", "startedAt": Time(at(5))}
    }));
    let view = list(
        &[&e],
        &Access::from_answers(true, []),
        &ListFilter::default(),
        at(70),
        10,
    );
    assert_eq!(
        view.rows,
        vec![Row {
            namespace: "prod".into(),
            name: "r1".into(),
            href: "/ui/executions/prod/r1".into(),
            playbook: "redis".into(),
            phase: "Running",
            severity: Some("critical".into()),
            started: Some(timestamp(at(5))),
            duration: Some("1m 05s".into()),
            trigger: Some("on-redis".into()),
            schedule: None,
            alert: Some("RedisDown".into()),
        }]
    );
}

#[test]
fn a_scheduled_run_names_its_schedule_in_the_row_and_the_detail() {
    let e = exec(json!({
        "metadata": {"name": "nightly-29000000", "namespace": "prod"},
        "spec": {"playbookRef": {"name": "health"}, "scheduleRef": {"name": "nightly"}},
        "status": {"phase": "Succeeded"}
    }));
    let view = list(
        &[&e],
        &Access::from_answers(true, []),
        &ListFilter::default(),
        at(70),
        10,
    );
    assert_eq!(view.rows[0].schedule.as_deref(), Some("nightly"));
    assert_eq!(view.rows[0].trigger, None);
    assert_eq!(
        detail(&e, vec![], at(70)).schedule.as_deref(),
        Some("nightly")
    );
}

fn step(id: &str, phase: &str, state: &str, extra: Value) -> Value {
    let mut s = json!({"id": id, "phase": phase, "state": state, "attempt": 1});
    if let (Some(s), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
        s.extend(extra.clone());
    }
    s
}

fn guarded_run() -> Execution {
    exec(json!({
        "metadata": {"name": "r1", "namespace": "prod"},
        "spec": {
            "playbookRef": {"name": "redis"}, "requestedBy": "alice",
            "alert": {"labels": {"alertname": "RedisDown"}, "status": "firing",
                      "generatorURL": "javascript:alert(1)"},
            "approvals": [{"step": "flush", "user": "bob", "at": Time(at(50))},
                          {"step": "restart", "user": "carol", "decision": "reject",
                           "reason": "not during the sale", "planHash": "0ld"}]
        },
        "status": {
            "phase": "WaitingApproval", "startedAt": Time(at(0)),
            "steps": [
                step("info", "enrich", "Succeeded", json!({
                    "jobName": "r1-info-1", "startedAt": Time(at(0)), "finishedAt": Time(at(2)),
                    "exitCode": 0, "outputs": {"clients": 3}, "outputsTruncated": true})),
                step("notify", "communicate", "Succeeded", json!({"jobName": "r1-notify-1",
                    "outputsRef": {"configMapName": "r1-notify-outputs-1-ab12", "key": "outputs.json",
                                   "bytes": 204800, "originalBytes": 204800, "sha256": "9b1c"}})),
                step("check", "enrich", "Failed", json!({"attempt": 3, "exitCode": 2,
                    "message": "exit code 2", "startedAt": Time(at(3))})),
                step("restart", "remediate", "WaitingApproval", json!({
                    "waitingSince": Time(at(10)),
                    "message": "waiting for an approval: playbook-operator approve r1 restart",
                    "plan": {"hash": "abc123", "image": "redis:7", "command": ["redis-cli"],
                             "args": ["shutdown"],
                             "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef":
                                        {"name": "redis", "key": "password"}}},
                                     {"name": "HOST", "value": "redis.prod"}]}}))
            ],
            "finally": [step("cleanup", "communicate", "Pending", json!({}))]
        }
    }))
}

#[test]
fn detail_groups_steps_by_phase_in_run_order() {
    let d = detail(&guarded_run(), vec![], at(60));
    let groups: Vec<(&str, Vec<&str>)> = d
        .phases
        .iter()
        .map(|g| (g.phase, g.steps.iter().map(|s| s.id.as_str()).collect()))
        .collect();
    assert_eq!(
        groups,
        vec![
            ("Enrich", vec!["info", "check"]),
            ("Triage", vec![]),
            ("Communicate", vec!["notify"]),
            ("Remediate", vec!["restart"]),
        ]
    );
    assert_eq!(d.finally.len(), 1);
    assert_eq!(d.finally[0].id, "cleanup");
    assert!(!d.done, "a waiting run keeps refreshing");
}

#[test]
fn detail_step_shows_state_attempt_duration_exit_output_and_log() {
    let d = detail(&guarded_run(), vec![], at(60));
    let info = &d.phases[0].steps[0];
    assert_eq!(
        info,
        &StepView {
            id: "info".into(),
            state: "Succeeded",
            attempt: 1,
            started: Some(timestamp(at(0))),
            duration: Some("2s".into()),
            exit_code: Some(0),
            message: None,
            outputs: Some("{\n  \"clients\": 3\n}".into()),
            outputs_truncated: true,
            outputs_stored: None,
            log_href: Some("/ui/executions/prod/r1/log?step=info".into()),
        }
    );
    let check = &d.phases[0].steps[1];
    assert_eq!(
        (check.attempt, check.exit_code, check.duration.as_deref()),
        (3, Some(2), Some("57s")),
        "a step that has not ended is timed until now"
    );
    assert_eq!(check.log_href, None, "no Job, no log");
    let notify = &d.phases[2].steps[0];
    assert_eq!(
        notify.outputs_stored.as_deref(),
        Some("200 KiB in ConfigMap r1-notify-outputs-1-ab12 (key outputs.json)"),
        "a spilled output says where it is"
    );
}

#[test]
fn detail_shows_waiting_and_given_approvals_and_the_alert() {
    let d = detail(&guarded_run(), vec![], at(60));
    assert_eq!(
        d.waiting,
        vec![Waiting {
            step: "restart".into(),
            since: Some(timestamp(at(10))),
            message: Some("waiting for an approval: playbook-operator approve r1 restart".into()),
            plan: Some(PlanView {
                hash: "abc123".into(),
                image: "redis:7".into(),
                command: vec!["redis-cli".into()],
                args: vec!["shutdown".into()],
                env: vec![
                    EnvShown {
                        name: "PASSWORD".into(),
                        value: None,
                        secret: Some("secret redis key password".into()),
                    },
                    EnvShown {
                        name: "HOST".into(),
                        value: Some("redis.prod".into()),
                        secret: None,
                    },
                ],
                runner: None,
                service_account: None,
            }),
            changed: vec![],
        }]
    );
    assert_eq!(
        d.approvals,
        vec![
            Given {
                step: "flush".into(),
                user: "bob".into(),
                decision: "approved",
                reason: None,
                plan_hash: None,
                at: Some(timestamp(at(50))),
            },
            Given {
                step: "restart".into(),
                user: "carol".into(),
                decision: "rejected",
                reason: Some("not during the sale".into()),
                plan_hash: Some("0ld".into()),
                at: None,
            }
        ]
    );
    let alert = d.alert.expect("the alert is shown");
    assert_eq!(alert.name.as_deref(), Some("RedisDown"));
    assert_eq!(alert.status.as_deref(), Some("firing"));
    assert_eq!(
        alert.generator_url, None,
        "a javascript: link is never a link"
    );
}

#[test]
fn detail_events_newest_first_and_bounded() {
    let ev = |i: usize| EventView {
        at: Some(timestamp(at(i as i64))),
        order: at(i as i64).as_millisecond(),
        kind: "Normal".into(),
        reason: format!("R{i}"),
        message: String::new(),
        count: 1,
    };
    let d = detail(
        &guarded_run(),
        (0..MAX_EVENTS + 5).map(ev).collect(),
        at(60),
    );
    assert_eq!(d.events.len(), MAX_EVENTS);
    assert_eq!(d.events[0].reason, format!("R{}", MAX_EVENTS + 4));
}

#[test]
fn a_finished_run_stops_refreshing() {
    for (phase, done) in [
        ("Pending", false),
        ("Running", false),
        ("WaitingApproval", false),
        ("Succeeded", true),
        ("Failed", true),
        ("Cancelled", true),
    ] {
        let d = detail(&run("prod", "r", "pb", phase, 0), vec![], at(0));
        assert_eq!(d.done, done, "{phase}");
        assert_eq!(d.phase, phase);
    }
}

#[test]
fn step_job_finds_main_and_finally_steps() {
    let e = guarded_run();
    assert_eq!(step_job(&e, "info"), Some("r1-info-1"));
    assert_eq!(step_job(&e, "notify"), Some("r1-notify-1"));
    assert_eq!(step_job(&e, "cleanup"), None, "not started");
    assert_eq!(step_job(&e, "nope"), None);
}

#[test]
fn execution_url_is_the_page_under_the_external_url() {
    for base in ["https://pbo.example.com", "https://pbo.example.com/"] {
        assert_eq!(
            execution_url(base, "prod", "r1"),
            "https://pbo.example.com/ui/executions/prod/r1"
        );
    }
}

#[test]
fn execution_url_in_a_template_is_the_page_or_nil() {
    let url = execution_url("https://pbo.example.com", "prod", "r1");
    let cases = [
        (json!(url), url.as_str()),
        // Without --external-url: null, as Go prints nil.
        (Value::Null, "<nil>"),
    ];
    for (value, want) in cases {
        let ctx = json!({"execution": {"url": value}});
        assert_eq!(
            crate::engine::template::render("{{ .execution.url }}", &ctx).expect("renders"),
            want
        );
    }
}
