use chrono::{DateTime, TimeZone, Utc};
use pretty_assertions::assert_eq;

use super::*;
use crate::api::{ConcurrencyPolicy, ExecutionPhase, LocalRef, ScheduleSpec};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("a test time")
        .with_timezone(&Utc)
}

fn spec(schedule: &str) -> ScheduleSpec {
    ScheduleSpec {
        playbook_ref: LocalRef { name: "pb".into() },
        schedule: schedule.into(),
        ..Default::default()
    }
}

fn run(name: &str, tick: &str, phase: Option<ExecutionPhase>) -> Run {
    Run {
        name: name.into(),
        tick: Some(at(tick)),
        phase,
        cancelling: false,
    }
}

fn plan_at(spec: &ScheduleSpec, last: Option<&str>, now: &str, runs: &[Run]) -> Plan {
    plan(&Input {
        name: "nightly",
        spec,
        created: at("2026-01-01T00:00:00Z"),
        last_schedule: last.map(at),
        now: at(now),
        runs,
    })
}

#[test]
fn next_tick_of_expressions_and_macros() {
    let cases = [
        (
            "*/1 * * * *",
            None,
            "2026-03-01T10:00:30Z",
            "2026-03-01T10:01:00Z",
        ),
        (
            "*/15 * * * *",
            None,
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:15:00Z",
        ),
        (
            "@hourly",
            None,
            "2026-03-01T10:20:00Z",
            "2026-03-01T11:00:00Z",
        ),
        (
            "@daily",
            None,
            "2026-03-01T10:20:00Z",
            "2026-03-02T00:00:00Z",
        ),
        (
            "@weekly",
            None,
            "2026-03-04T10:00:00Z",
            "2026-03-08T00:00:00Z",
        ),
        (
            "@monthly",
            None,
            "2026-03-04T10:00:00Z",
            "2026-04-01T00:00:00Z",
        ),
        (
            "0 9 * * MON-FRI",
            None,
            "2026-03-06T10:00:00Z",
            "2026-03-09T09:00:00Z",
        ),
        // Vixie cron: day-of-month OR day-of-week when both are restricted.
        (
            "0 0 13 * FRI",
            None,
            "2026-03-01T00:00:00Z",
            "2026-03-06T00:00:00Z",
        ),
        // 09:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer.
        (
            "0 9 * * *",
            Some("Europe/Berlin"),
            "2026-03-01T00:00:00Z",
            "2026-03-01T08:00:00Z",
        ),
        (
            "0 9 * * *",
            Some("Europe/Berlin"),
            "2026-07-01T00:00:00Z",
            "2026-07-01T07:00:00Z",
        ),
    ];
    for (expr, tz, now, want) in cases {
        let c = compile(expr, tz).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(
            c.next_after(at(now)),
            Some(at(want)),
            "{expr} in {tz:?} after {now}"
        );
    }
}

#[test]
fn bad_expressions_say_what_to_fix() {
    let cases = [
        ("* * * *", None, "has 4 fields: write 5"),
        ("0 * * * * *", None, "has 6 fields: write 5"),
        ("61 * * * *", None, "minute 0-59"),
        ("0 25 * * *", None, "hour 0-23"),
        ("TZ=UTC 0 * * * *", None, "set spec.timeZone instead"),
        ("@fortnightly", None, "fields are minute"),
        (
            "0 * * * *",
            Some("Mars/Olympus"),
            "unknown time zone \"Mars/Olympus\"",
        ),
    ];
    for (expr, tz, want) in cases {
        let err = compile(expr, tz).expect_err(expr);
        assert!(
            err.contains(want),
            "{expr}: {err:?} should contain {want:?}"
        );
    }
}

#[test]
fn the_due_tick_starts_once_with_a_name_from_schedule_and_tick() {
    let s = spec("*/5 * * * *");
    let p = plan_at(
        &s,
        Some("2026-03-01T10:00:00Z"),
        "2026-03-01T10:05:02Z",
        &[],
    );
    let tick = at("2026-03-01T10:05:00Z");
    assert_eq!(p.start, Some((tick, execution_name("nightly", tick))));
    assert_eq!(p.last_schedule, Some(tick));
    assert_eq!(p.next, Some(at("2026-03-01T10:10:00Z")));
    // The run exists already (another replica, or a restart before the status write):
    // nothing starts, and the status catches up.
    let runs = [run(
        &execution_name("nightly", tick),
        "2026-03-01T10:05:00Z",
        None,
    )];
    let p = plan_at(
        &s,
        Some("2026-03-01T10:00:00Z"),
        "2026-03-01T10:05:02Z",
        &runs,
    );
    assert_eq!(p.start, None);
    assert_eq!(p.last_schedule, Some(tick));
    // Before the tick: nothing, and the next reconcile is at the tick.
    let p = plan_at(
        &s,
        Some("2026-03-01T10:00:00Z"),
        "2026-03-01T10:04:59Z",
        &[],
    );
    assert_eq!((p.start, p.next), (None, Some(tick)));
}

#[test]
fn missed_ticks_follow_cronjob_semantics() {
    // (last schedule, now, deadline, wanted start, too-many warning)
    let s = |deadline: Option<i64>| ScheduleSpec {
        starting_deadline_seconds: deadline,
        ..spec("*/1 * * * *")
    };
    let cases = [
        // Down for 10 minutes: only the most recent missed tick starts.
        (
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:10:30Z",
            None,
            Some("2026-03-01T10:10:00Z"),
            false,
        ),
        // Within the deadline: it still starts.
        (
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:10:30Z",
            Some(60),
            Some("2026-03-01T10:10:00Z"),
            false,
        ),
        // Past the deadline: it is missed for good.
        (
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:10:30Z",
            Some(20),
            None,
            false,
        ),
        // 3 hours down: more than 100 missed, warned about, the latest still starts.
        (
            "2026-03-01T10:00:00Z",
            "2026-03-01T13:00:10Z",
            None,
            Some("2026-03-01T13:00:00Z"),
            true,
        ),
        // A deadline bounds what counts as missed: no warning.
        (
            "2026-03-01T10:00:00Z",
            "2026-03-01T13:00:10Z",
            Some(300),
            Some("2026-03-01T13:00:00Z"),
            false,
        ),
    ];
    for (last, now, deadline, want, warned) in cases {
        let p = plan_at(&s(deadline), Some(last), now, &[]);
        assert_eq!(
            p.start.map(|(t, _)| t),
            want.map(at),
            "{last} → {now}, deadline {deadline:?}"
        );
        assert_eq!(
            p.notes.contains(&Note::TooManyMissed),
            warned,
            "{last} → {now}: {:?}",
            p.notes
        );
    }
}

#[test]
fn a_new_schedule_starts_no_tick_before_its_creation() {
    let s = spec("0 0 * * *");
    let p = plan_at(&s, None, "2026-01-01T12:00:00Z", &[]);
    assert_eq!(
        p.start, None,
        "created at 00:00:00, the midnight tick is not after it"
    );
    let p = plan_at(&s, None, "2026-01-02T00:00:05Z", &[]);
    assert_eq!(p.start.map(|(t, _)| t), Some(at("2026-01-02T00:00:00Z")));
}

#[test]
fn concurrency_policies() {
    let running = [
        run(
            "nightly-old",
            "2026-03-01T10:00:00Z",
            Some(ExecutionPhase::WaitingApproval),
        ),
        run(
            "nightly-done",
            "2026-03-01T09:59:00Z",
            Some(ExecutionPhase::Succeeded),
        ),
    ];
    let with = |policy| ScheduleSpec {
        concurrency_policy: policy,
        ..spec("*/1 * * * *")
    };
    let now = "2026-03-01T10:01:01Z";
    let tick = at("2026-03-01T10:01:00Z");

    let allow = plan_at(&with(ConcurrencyPolicy::Allow), None, now, &running);
    assert_eq!(allow.start.map(|(t, _)| t), Some(tick));
    assert!(allow.cancel.is_empty());

    let forbid = plan_at(&with(ConcurrencyPolicy::Forbid), None, now, &running);
    assert_eq!(forbid.start, None);
    assert_eq!(
        forbid.last_schedule,
        Some(at("2026-03-01T10:00:00Z")),
        "the tick stays missed"
    );
    assert_eq!(
        forbid.notes,
        vec![Note::Forbidden {
            tick,
            running: vec!["nightly-old".into()]
        }]
    );
    // Once the run has finished, the held-back tick starts (no deadline set).
    let finished = [run(
        "nightly-old",
        "2026-03-01T10:00:00Z",
        Some(ExecutionPhase::Failed),
    )];
    let later = plan_at(
        &with(ConcurrencyPolicy::Forbid),
        None,
        "2026-03-01T10:01:40Z",
        &finished,
    );
    assert_eq!(later.start.map(|(t, _)| t), Some(tick));

    let replace = plan_at(&with(ConcurrencyPolicy::Replace), None, now, &running);
    assert_eq!(replace.start.map(|(t, _)| t), Some(tick));
    assert_eq!(replace.cancel, vec!["nightly-old".to_string()]);
    // A run whose cancel was already asked for is not asked again.
    let mut cancelling = running.clone();
    cancelling[0].cancelling = true;
    let again = plan_at(&with(ConcurrencyPolicy::Replace), None, now, &cancelling);
    assert!(again.cancel.is_empty());
}

#[test]
fn suspended_starts_nothing_and_resumes_with_the_latest_missed_tick() {
    let suspended = ScheduleSpec {
        suspend: true,
        ..spec("*/1 * * * *")
    };
    let p = plan_at(
        &suspended,
        Some("2026-03-01T10:00:00Z"),
        "2026-03-01T10:05:30Z",
        &[],
    );
    assert_eq!((p.start, p.next), (None, None));
    let resumed = spec("*/1 * * * *");
    let p = plan_at(
        &resumed,
        Some("2026-03-01T10:00:00Z"),
        "2026-03-01T10:05:30Z",
        &[],
    );
    assert_eq!(p.start.map(|(t, _)| t), Some(at("2026-03-01T10:05:00Z")));
}

#[test]
fn an_invalid_schedule_is_not_ready_and_starts_nothing() {
    let p = plan_at(&spec("0 99 * * *"), None, "2026-03-01T10:00:00Z", &[]);
    assert_eq!((p.start, p.next), (None, None));
    assert!(
        p.invalid
            .as_deref()
            .is_some_and(|m| m.contains("hour 0-23")),
        "{:?}",
        p.invalid
    );
}

#[test]
fn names_are_per_schedule_and_tick_and_fit_a_dns_label() {
    let t = Utc
        .with_ymd_and_hms(2026, 3, 1, 10, 5, 0)
        .single()
        .expect("a time");
    assert_eq!(
        execution_name("nightly", t),
        format!("nightly-{}", t.timestamp() / 60)
    );
    let long_a = "a".repeat(60) + "-x";
    let long_b = "a".repeat(60) + "-y";
    let (a, b) = (execution_name(&long_a, t), execution_name(&long_b, t));
    assert_ne!(a, b, "cut names keep a hash of the whole");
    assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
}

#[test]
fn the_run_acts_for_the_schedules_writer_and_carries_its_tick() {
    let t = at("2026-03-01T10:05:00Z");
    let mut s = spec("*/5 * * * *");
    s.params = Some(serde_json::json!({"Namespace": "prod"}));
    s.requested_by = Some("alice".into());
    s.requested_by_groups = vec!["sre".into()];
    let e = execution("nightly", "ops", &s, t);
    assert_eq!(e.spec.requested_by.as_deref(), Some("alice"));
    assert_eq!(e.spec.requested_by_groups, vec!["sre".to_string()]);
    assert_eq!(
        e.spec.schedule_ref.map(|r| r.name).as_deref(),
        Some("nightly")
    );
    assert_eq!(e.spec.params, s.params);
    let annotations = e.metadata.annotations.unwrap_or_default();
    assert_eq!(tick_of(&annotations), Some(t));
    assert_eq!(
        e.metadata.labels.unwrap_or_default()[LABEL_SCHEDULE],
        "nightly"
    );
    // No writer recorded: left out, for the admission policy to stamp.
    s.requested_by = None;
    let e = execution("nightly", "ops", &s, t);
    assert_eq!(
        (e.spec.requested_by, e.spec.requested_by_groups),
        (None, vec![])
    );
}

#[test]
fn summary_names_the_newest_run_and_the_active_ones() {
    let runs = [
        run("n-2", "2026-03-01T10:02:00Z", Some(ExecutionPhase::Running)),
        run(
            "n-1",
            "2026-03-01T10:01:00Z",
            Some(ExecutionPhase::Succeeded),
        ),
        run("n-3", "2026-03-01T10:03:00Z", None),
    ];
    let (last, active) = summary(&runs);
    assert_eq!(last.map(|r| r.name.as_str()), Some("n-3"));
    assert_eq!(active, vec!["n-2".to_string(), "n-3".to_string()]);
}
