//! What a plan's transitions count, and how they show on `/metrics`.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::{ExecutionStatus, StepState, StepStatus};
use k8s_openapi::jiff::Timestamp;

fn at(second: i64) -> Time {
    Time(Timestamp::from_second(second).expect("a valid second"))
}

fn step(
    id: &str,
    phase: Phase,
    state: StepState,
    attempt: u32,
    times: (Option<i64>, Option<i64>),
) -> StepStatus {
    StepStatus {
        id: id.into(),
        phase,
        state,
        attempt,
        started_at: times.0.map(at),
        finished_at: times.1.map(at),
        ..Default::default()
    }
}

fn status(phase: ExecutionPhase, steps: Vec<StepStatus>) -> ExecutionStatus {
    ExecutionStatus {
        phase,
        steps,
        ..Default::default()
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_000).expect("a valid second")
}

#[test]
fn a_step_that_ends_is_timed_from_its_start_and_hands_off() {
    let before = status(
        ExecutionPhase::Running,
        vec![
            step("a", Phase::Enrich, StepState::Running, 1, (Some(100), None)),
            step("b", Phase::Triage, StepState::Pending, 0, (None, None)),
        ],
    );
    let after = status(
        ExecutionPhase::Running,
        vec![
            step(
                "a",
                Phase::Enrich,
                StepState::Succeeded,
                1,
                (Some(100), Some(103)),
            ),
            step("b", Phase::Triage, StepState::Running, 1, (Some(103), None)),
        ],
    );
    let t = transitions(&before, &after, now());
    assert_eq!(
        t,
        Transitions {
            finished: None,
            is_final: false,
            steps_ended: vec![StepEnded {
                id: "a".into(),
                attempt: 1,
                phase: Phase::Enrich,
                seconds: 3.0,
            }],
            took_in_end: true,
            review: None,
            remediation_held: false,
        }
    );
}

#[test]
fn the_run_finishes_once_and_steps_that_never_ran_are_not_timed() {
    let before = status(
        ExecutionPhase::Running,
        vec![
            step(
                "a",
                Phase::Remediate,
                StepState::Running,
                2,
                (Some(990), None),
            ),
            step("b", Phase::Communicate, StepState::Pending, 0, (None, None)),
        ],
    );
    let after = status(
        ExecutionPhase::Cancelled,
        vec![
            // No finishedAt: the observation time is the end.
            step(
                "a",
                Phase::Remediate,
                StepState::Cancelled,
                2,
                (Some(990), None),
            ),
            step(
                "b",
                Phase::Communicate,
                StepState::Skipped,
                0,
                (None, Some(1000)),
            ),
        ],
    );
    let t = transitions(&before, &after, now());
    assert_eq!(t.finished, Some(ExecutionPhase::Cancelled));
    assert!(t.is_final);
    assert_eq!(t.steps_ended.len(), 1, "{:?}", t.steps_ended);
    assert_eq!(
        (t.steps_ended[0].id.as_str(), t.steps_ended[0].seconds),
        ("a", 10.0)
    );

    let again = transitions(&after, &after, now());
    assert_eq!(again.finished, None, "final already: not a transition");
    assert!(again.is_final);
    assert!(again.steps_ended.is_empty());
    assert!(!again.took_in_end);
}

#[test]
fn a_retry_takes_an_end_in_but_ends_no_step() {
    let running = |attempt| {
        status(
            ExecutionPhase::Running,
            vec![step(
                "a",
                Phase::Enrich,
                StepState::Running,
                attempt,
                (Some(100), None),
            )],
        )
    };
    let retrying = status(
        ExecutionPhase::Running,
        vec![step(
            "a",
            Phase::Enrich,
            StepState::Retrying,
            1,
            (Some(100), Some(101)),
        )],
    );
    let direct = transitions(&running(1), &running(2), now());
    assert!(direct.took_in_end && direct.steps_ended.is_empty());
    let backoff = transitions(&running(1), &retrying, now());
    assert!(backoff.took_in_end && backoff.steps_ended.is_empty());
    let after_backoff = transitions(&retrying, &running(2), now());
    assert!(
        !after_backoff.took_in_end,
        "a backoff's end is not a container's"
    );
}

#[test]
fn running_counts_every_execution_that_is_not_final() {
    let exec = |phase: Option<ExecutionPhase>| {
        let mut e = Execution::new("e", Default::default());
        e.status = phase.map(|p| status(p, vec![]));
        e
    };
    let execs = [
        exec(None),
        exec(Some(ExecutionPhase::Running)),
        exec(Some(ExecutionPhase::WaitingApproval)),
        exec(Some(ExecutionPhase::Succeeded)),
        exec(Some(ExecutionPhase::Failed)),
    ];
    assert_eq!(running(execs.iter()), 3);
}

fn finished_chain() -> Transitions {
    Transitions {
        finished: Some(ExecutionPhase::Succeeded),
        is_final: true,
        steps_ended: vec![StepEnded {
            id: "b".into(),
            attempt: 1,
            phase: Phase::Triage,
            seconds: 2.0,
        }],
        took_in_end: true,
        review: None,
        remediation_held: false,
    }
}

/// The value of the sample `name` in rendered metrics.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn an_end_written_twice_from_a_stale_cache_counts_once() {
    let m = Metrics::new();
    m.status_written("uid-1", "pb", &finished_chain());
    m.status_written("uid-1", "pb", &finished_chain());
    m.status_written("uid-2", "pb", &finished_chain());
    let text = m.render();
    assert_eq!(
        sample(
            &text,
            r#"playbook_executions_total{playbook="pb",result="Succeeded"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"playbook_step_duration_seconds_count{phase="Triage"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"playbook_step_duration_seconds_sum{phase="Triage"}"#
        ),
        Some(4.0)
    );
}

#[test]
fn a_handoff_is_observed_once_from_the_latest_end_to_the_first_job() {
    let m = Metrics::new();
    let t0 = Instant::now();
    let next = Transitions {
        took_in_end: true,
        ..Transitions::default()
    };
    // Two parallel branches end; the next Job waits for the later one.
    m.step_container_ended("uid", t0);
    m.step_container_ended("uid", t0 + Duration::from_millis(40));
    m.jobs_applied("uid", &next, Some(t0 + Duration::from_millis(45)));
    m.jobs_applied("uid", &next, Some(t0 + Duration::from_millis(90)));
    let text = m.render();
    assert_eq!(
        sample(&text, "playbook_step_handoff_seconds_count"),
        Some(1.0),
        "{text}"
    );
    let sum = sample(&text, "playbook_step_handoff_seconds_sum").expect("a sum");
    assert!((sum - 0.005).abs() < 1e-9, "{sum}");
}

#[test]
fn an_end_followed_by_no_job_is_not_a_handoff() {
    let m = Metrics::new();
    let t0 = Instant::now();
    let waits = Transitions {
        took_in_end: true,
        ..Transitions::default()
    };
    // The next step waits for an approval: no Job now, and the end is dropped, so
    // the Job created after the approval is not timed from it.
    m.step_container_ended("uid", t0);
    m.jobs_applied("uid", &waits, None);
    let later_start = Transitions::default();
    m.jobs_applied("uid", &later_start, Some(t0 + Duration::from_secs(60)));
    // A plan that did not take the end in (planned from a cache without it) keeps it.
    m.step_container_ended("uid-2", t0);
    m.jobs_applied("uid-2", &later_start, Some(t0));
    assert_eq!(m.ended.len(), 1);
    // A final run drops its end.
    let done = Transitions {
        is_final: true,
        ..Transitions::default()
    };
    m.jobs_applied("uid-2", &done, None);
    assert_eq!(m.ended.len(), 0);
    assert_eq!(
        sample(&m.render(), "playbook_step_handoff_seconds_count"),
        Some(0.0)
    );
}

/// Any error with a reason label: metrics knows no controller's error type.
struct NotReady;

impl Reason for NotReady {
    fn reason(&self) -> &'static str {
        "caches_not_ready"
    }
}

#[tokio::test]
async fn failed_reconciles_are_counted_by_controller_and_reason() {
    let m = Metrics::new();
    let _ = m
        .reconcile("execution", async { Err::<(), _>(NotReady) })
        .await;
    let ok = m.reconcile("runner", async { Ok::<_, NotReady>(7) }).await;
    assert_eq!(ok.ok(), Some(7));
    let text = m.render();
    assert_eq!(
        sample(
            &text,
            r#"playbook_reconcile_errors_total{controller="execution",reason="caches_not_ready"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"playbook_reconcile_duration_seconds_count{controller="runner"}"#
        ),
        Some(1.0)
    );
    assert!(!text.contains(r#"controller="runner",reason"#));
}

#[test]
fn the_oldest_counted_keys_make_room_for_new_ones() {
    let mut recent = Recent::new(2);
    assert!(recent.first_time("a".into()));
    assert!(!recent.first_time("a".into()));
    assert!(recent.first_time("b".into()));
    assert!(recent.first_time("c".into()));
    assert!(recent.first_time("a".into()), "a was forgotten for c");
    assert!(!recent.first_time("c".into()));
}

/// The review numbers of `playbook-operator report`, as histograms: a run that
/// finishes records its time to each phase, its approval waits, and whether it was
/// automated, once.
#[test]
fn a_finished_run_records_the_review_numbers_once() {
    let mut approved = step(
        "fix",
        Phase::Remediate,
        StepState::Succeeded,
        1,
        (Some(400), Some(460)),
    );
    approved.waiting_since = Some(at(100));
    let before = status(ExecutionPhase::Running, vec![]);
    let mut after = status(
        ExecutionPhase::Succeeded,
        vec![
            step(
                "info",
                Phase::Enrich,
                StepState::Succeeded,
                1,
                (Some(10), Some(40)),
            ),
            approved,
        ],
    );
    after.started_at = Some(at(10));
    let t = transitions(&before, &after, now());
    let m = Metrics::new();
    m.status_written("uid-1", "redis", &t);
    m.status_written("uid-1", "redis", &t);
    let text = m.render();
    let value = |name: &str| sample(&text, name);
    assert_eq!(
        value(r#"playbook_time_to_phase_seconds_sum{playbook="redis",phase="Enrich"}"#),
        Some(30.0),
        "{text}"
    );
    assert_eq!(
        value(r#"playbook_time_to_phase_seconds_sum{playbook="redis",phase="Remediate"}"#),
        Some(450.0)
    );
    assert_eq!(
        value(r#"playbook_approval_wait_seconds_count{playbook="redis"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"playbook_approval_wait_seconds_sum{playbook="redis"}"#),
        Some(300.0)
    );
    assert_eq!(
        value(r#"playbook_executions_automated_total{playbook="redis"}"#),
        None,
        "a person approved: not automated"
    );

    let automated = status(
        ExecutionPhase::Failed,
        vec![step(
            "info",
            Phase::Enrich,
            StepState::Failed,
            1,
            (Some(1), Some(2)),
        )],
    );
    m.status_written("uid-2", "redis", &transitions(&before, &automated, now()));
    let text = m.render();
    assert_eq!(
        sample(
            &text,
            r#"playbook_executions_automated_total{playbook="redis"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn a_remediation_hold_counts_once_per_run_by_namespace_and_playbook() {
    let held = ExecutionStatus {
        remediation: Some(crate::api::RemediationRecord {
            key: "shop".into(),
            at: None,
            held: Some("3 remediations for key 'shop' in the last 1h; limit 3".into()),
        }),
        ..ExecutionStatus::default()
    };
    let none = ExecutionStatus::default();
    assert!(transitions(&none, &held, now()).remediation_held);
    assert!(!transitions(&held, &held, now()).remediation_held);

    let m = Metrics::new();
    m.remediation_held("prod", "restart", "uid-1");
    m.remediation_held("prod", "restart", "uid-1");
    m.remediation_held("prod", "restart", "uid-2");
    let text = m.render();
    assert_eq!(
        sample(
            &text,
            r#"playbook_remediations_held_total{namespace="prod",playbook="restart"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert!(!text.contains("shop"), "the key is no label: {text}");
}
