use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use pretty_assertions::assert_eq;

use super::*;
use crate::api::{ExecutionSpec, ExecutionStatus, LocalRef, StepStatus};

fn at(second: i64) -> Time {
    Time(Timestamp::from_second(second).expect("a valid second"))
}

fn step(id: &str, phase: Phase, state: StepState, start: i64, end: Option<i64>) -> StepStatus {
    StepStatus {
        id: id.into(),
        phase,
        state,
        attempt: 1,
        started_at: Some(at(start)),
        finished_at: end.map(at),
        ..Default::default()
    }
}

fn exec(
    name: &str,
    playbook: &str,
    created: i64,
    phase: ExecutionPhase,
    steps: Vec<StepStatus>,
) -> Execution {
    let mut e = Execution::new(
        name,
        ExecutionSpec {
            playbook_ref: LocalRef {
                name: playbook.into(),
            },
            ..Default::default()
        },
    );
    e.metadata.namespace = Some("prod".into());
    e.metadata.creation_timestamp = Some(at(created));
    e.status = Some(ExecutionStatus {
        phase,
        started_at: Some(at(created + 1)),
        steps,
        ..Default::default()
    });
    e
}

use ExecutionPhase::{Cancelled, Failed, Running, Succeeded};
use Phase::{Enrich, Remediate, Triage};
use StepState as S;

fn runs() -> Vec<Execution> {
    let mut approved = step("restart", Remediate, S::Succeeded, 400, Some(420));
    approved.waiting_since = Some(at(100));
    let mut waiting = step("restart", Remediate, S::WaitingApproval, 0, None);
    waiting.started_at = None;
    waiting.waiting_since = Some(at(1_000));
    let mut failed = step("ping", Enrich, S::Failed, 1_201, Some(1_205));
    failed.message = Some("exit code 1: connection refused".into());
    let mut failed_again = step("ping", Enrich, S::Failed, 1_301, Some(1_309));
    failed_again.message = Some("exit code 1: timeout".into());
    vec![
        // Fully automated: enrich done 30 s after start, triage 60 s.
        exec(
            "a",
            "redis",
            0,
            Succeeded,
            vec![
                step("info", Enrich, S::Succeeded, 1, Some(31)),
                step("look", Triage, S::Succeeded, 31, Some(61)),
            ],
        ),
        // A person approved the restart after 300 s.
        exec(
            "b",
            "redis",
            0,
            Succeeded,
            vec![step("info", Enrich, S::Succeeded, 1, Some(11)), approved],
        ),
        // Still waiting since 1000; "now" is 1600.
        exec("c", "redis", 990, Running, vec![waiting]),
        exec("d", "redis", 1_200, Failed, vec![failed]),
        exec("e", "redis", 1_300, Failed, vec![failed_again]),
        exec("f", "disk", 500, Cancelled, vec![]),
        // Created before `since` or after `now`: not counted.
        exec("old", "disk", -10, Succeeded, vec![]),
        exec("later", "disk", 1_700, Succeeded, vec![]),
    ]
}

#[test]
fn counts_outcomes_times_approvals_and_failures_per_playbook() {
    let now = Timestamp::from_second(1_600).expect("now");
    let since = Timestamp::from_second(0).expect("since");
    let report = build(&runs(), since, now);
    let names: Vec<&str> = report
        .playbooks
        .iter()
        .map(|p| p.playbook.as_str())
        .collect();
    assert_eq!(names, ["prod/disk", "prod/redis"]);

    let redis = &report.playbooks[1];
    assert_eq!(
        (
            redis.executions,
            redis.succeeded,
            redis.failed,
            redis.cancelled,
            redis.running
        ),
        (5, 2, 2, 0, 1)
    );
    // Enrich ended 30 s and 10 s after the runs' start (start = created + 1).
    assert_eq!(
        redis.to_enrich,
        Durations {
            count: 2,
            p50: Some(10),
            p90: Some(30)
        }
    );
    assert_eq!(redis.to_triage.p50, Some(60));
    assert_eq!(redis.to_remediate.p50, Some(419));
    // 300 s for run b; run c has waited 600 s so far.
    assert_eq!(
        redis.approval_wait,
        Durations {
            count: 2,
            p50: Some(300),
            p90: Some(600)
        }
    );
    // Finished: a, b, d, e; only b had a person in the loop.
    assert_eq!(redis.automated, 3);
    assert_eq!(redis.automated_share, Some(0.75));
    assert_eq!(
        redis.failing_steps,
        [FailingStep {
            step: "ping".into(),
            failures: 2,
            last_message: "exit code 1: timeout".into()
        }]
    );

    let total = &report.total;
    assert_eq!(total.playbook, "(all)");
    assert_eq!((total.executions, total.cancelled), (6, 1));
    assert_eq!(total.automated_share, Some(0.8));
}

#[test]
fn a_phase_with_a_step_still_running_has_no_time_yet() {
    let running = exec(
        "r",
        "p",
        0,
        Running,
        vec![
            step("a", Enrich, S::Succeeded, 1, Some(5)),
            step("b", Enrich, S::Running, 5, None),
        ],
    );
    let report = build(&[running], Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH);
    assert_eq!(report.total.to_enrich.count, 0);
    assert_eq!(report.total.automated_share, None, "nothing finished");
}

#[test]
fn quantiles_are_observed_values() {
    assert_eq!(durations(vec![]), Durations::default());
    let d = durations((1..=10).rev().collect());
    assert_eq!((d.p50, d.p90), (Some(5), Some(9)));
    assert_eq!(durations(vec![7]).p90, Some(7));
}

#[test]
fn human_durations_stay_short() {
    let cases = [
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (750, "12m30s"),
        (3600, "1h"),
        (11_100, "3h5m"),
    ];
    for (secs, want) in cases {
        assert_eq!(human(secs), want);
    }
}

#[test]
fn table_and_markdown_show_every_playbook_the_total_and_failures() {
    let now = Timestamp::from_second(1_600).expect("now");
    let report = build(&runs(), Timestamp::UNIX_EPOCH, now);
    let t = table(&report);
    assert!(
        t.starts_with("Executions created from 1970-01-01T00:00:00Z to 1970-01-01T00:26:40Z\n"),
        "{t}"
    );
    let redis = t
        .lines()
        .find(|l| l.starts_with("prod/redis"))
        .expect("a redis row");
    for cell in ["5", "2/2/0/1", "10s / 30s", "1m", "5m / 10m", "75%"] {
        assert!(redis.contains(cell), "{cell} in {redis}");
    }
    assert!(t.contains("(all)"), "{t}");
    assert!(
        t.contains("prod/redis step 'ping': 2 failures; last: exit code 1: timeout"),
        "{t}"
    );
    let md = markdown(&report);
    assert!(md.contains("| prod/redis | 5 | 2/2/0/1 |"), "{md}");
    assert!(md.contains("### Most failing steps"), "{md}");
}

#[test]
fn scheduled_runs_are_counted_and_named_apart() {
    let mut ticked = exec("health-1", "health", 10, Succeeded, vec![]);
    ticked.spec.schedule_ref = Some(LocalRef {
        name: "nightly".into(),
    });
    let alerted = exec("health-2", "health", 20, Succeeded, vec![]);
    let other = exec("redis-1", "redis", 30, Failed, vec![]);
    let r = build(
        &[ticked, alerted, other],
        Timestamp::from_second(0).expect("t"),
        Timestamp::from_second(100).expect("t"),
    );
    assert_eq!((r.total.scheduled, r.total.executions), (1, 3));
    assert_eq!(r.playbooks[0].scheduled, 1);
    let line = "Started by a Schedule: 1 of 3 runs (prod/health 1 of 2)";
    assert!(table(&r).contains(line), "{}", table(&r));
    assert!(markdown(&r).contains(line), "{}", markdown(&r));
    // None scheduled: no line, and no field in the JSON (reviews stay as they were).
    let plain = build(
        &[exec("redis-1", "redis", 30, Failed, vec![])],
        Timestamp::from_second(0).expect("t"),
        Timestamp::from_second(100).expect("t"),
    );
    assert!(!table(&plain).contains("Schedule"));
    assert!(
        !serde_json::to_string(&plain)
            .unwrap_or_default()
            .contains("scheduled")
    );
}

#[test]
fn a_dry_run_is_no_incident_run() {
    let mut dry = exec("redis-dry", "redis", 10, ExecutionPhase::DryRun, vec![]);
    dry.spec.dry_run = true;
    let real = exec("redis-1", "redis", 20, Succeeded, vec![]);
    let r = build(
        &[dry, real],
        Timestamp::from_second(0).expect("t"),
        Timestamp::from_second(100).expect("t"),
    );
    assert_eq!(
        (r.total.executions, r.total.succeeded, r.total.running),
        (1, 1, 0)
    );
}
