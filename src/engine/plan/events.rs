//! A bound on the Events one run writes. Each step transition is an Event (started,
//! retrying, succeeded, ...), so a run of a 1,000-item loop with retries would write
//! tens of thousands. Past [`STEP_EVENT_BUDGET`] step attempts a run's step
//! transitions get no Event: one `StepEventsLimited` Event says so, and the status
//! and the execution page still show every step. The run's own Events (its end,
//! `finally`, a remediation hold, a severity that failed) are always written: there
//! are a handful per run.
//!
//! Decided from the statuses alone (the one planned from and the planned one), so a
//! plan repeated from a stale cache drops and adds the same Events, whose names (a
//! hash of the transition) then meet AlreadyExists: no Event twice.

use super::finally::FINAL_REASONS;
use super::{EventType, Intent, Plan};
use crate::api::{ExecutionStatus, StepState};

/// Step attempts (a skipped step counts as one) a run may make before its step
/// transitions stop being Events: ~3 Events each, so ~300 step Events per run at
/// most, against the 50 newest the page shows.
pub const STEP_EVENT_BUDGET: u32 = 100;

/// The Event that says a run's step transitions are no longer Events.
pub const LIMITED_REASON: &str = "StepEventsLimited";

/// Reasons said at most once per run (or per held remediation): never dropped.
const RUN_REASONS: [&str; 4] = [
    "FinallyStarted",
    "FinallyFailed",
    "RemediationHeld",
    "SeverityFailed",
];

/// How far a run has gone, in step attempts: every attempt of every step (main and
/// finally), a step that ended without one (skipped, cancelled) as one.
pub fn progress(status: &ExecutionStatus) -> u32 {
    status
        .steps
        .iter()
        .chain(&status.finally)
        .map(|s| s.attempt.max(u32::from(s.state != StepState::Pending)))
        .fold(0, u32::saturating_add)
}

fn is_run_event(reason: &str) -> bool {
    FINAL_REASONS.contains(&reason) || RUN_REASONS.contains(&reason) || reason == LIMITED_REASON
}

/// Drops `plan`'s step Events once the planned status is past the budget, and adds
/// the one Event that says so in the plan that crosses it (`before`: the status
/// planned from).
pub fn bound(before: &ExecutionStatus, plan: &mut Plan) {
    if progress(&plan.status) <= STEP_EVENT_BUDGET {
        return;
    }
    plan.intents
        .retain(|i| !matches!(i, Intent::Event { reason, .. } if !is_run_event(reason)));
    if progress(before) <= STEP_EVENT_BUDGET {
        plan.intents.push(Intent::Event {
            type_: EventType::Normal,
            reason: LIMITED_REASON.into(),
            message: format!(
                "the run passed {STEP_EVENT_BUDGET} step attempts: its further step transitions are not recorded as Events; its status and its page show every step"
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::api::StepStatus;

    fn step(state: StepState, attempt: u32) -> StepStatus {
        StepStatus {
            id: "s".into(),
            state,
            attempt,
            ..StepStatus::default()
        }
    }

    /// A status of `n` steps that each made `attempts` attempts.
    fn status(n: usize, attempts: u32) -> ExecutionStatus {
        ExecutionStatus {
            steps: vec![step(StepState::Succeeded, attempts); n],
            ..ExecutionStatus::default()
        }
    }

    fn event(reason: &str) -> Intent {
        Intent::Event {
            type_: EventType::Normal,
            reason: reason.into(),
            message: String::new(),
        }
    }

    fn reasons(plan: &Plan) -> Vec<&str> {
        plan.intents
            .iter()
            .filter_map(|i| match i {
                Intent::Event { reason, .. } => Some(reason.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn progress_counts_attempts_and_steps_that_ended_without_one() {
        let mut st = ExecutionStatus {
            steps: vec![
                step(StepState::Pending, 0),
                step(StepState::Running, 1),
                step(StepState::Retrying, 3),
                step(StepState::Skipped, 0),
                step(StepState::Cancelled, 0),
            ],
            ..ExecutionStatus::default()
        };
        assert_eq!(progress(&st), 1 + 3 + 1 + 1);
        st.finally = vec![step(StepState::Succeeded, 2)];
        assert_eq!(progress(&st), 8, "finally steps count too");
    }

    #[test]
    fn step_events_stop_past_the_budget_and_run_events_never() {
        let b = STEP_EVENT_BUDGET as usize;
        let planned = [
            "StepSucceeded",
            "StepStarted",
            "StepRetrying",
            "ExecutionFailed",
            "FinallyStarted",
        ];
        type Case = (&'static str, usize, usize, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            ("under the budget: all", b - 2, b - 1, planned.to_vec()),
            ("at the budget: all", b - 1, b, planned.to_vec()),
            (
                "crossing it: run Events and the notice",
                b,
                b + 1,
                vec!["ExecutionFailed", "FinallyStarted", LIMITED_REASON],
            ),
            (
                "past it: run Events only",
                b + 5,
                b + 6,
                vec!["ExecutionFailed", "FinallyStarted"],
            ),
        ];
        for (what, before, after, want) in cases {
            let mut plan = Plan {
                status: status(after, 1),
                intents: planned.iter().map(|r| event(r)).collect(),
                requeue_after: None,
            };
            bound(&status(before, 1), &mut plan);
            assert_eq!(reasons(&plan), want, "{what}");
        }
    }

    #[test]
    fn only_events_are_dropped() {
        let mut plan = Plan {
            status: status(1, STEP_EVENT_BUDGET + 1),
            intents: vec![Intent::DeleteJob { name: "j".into() }, event("StepStarted")],
            requeue_after: None,
        };
        bound(&status(1, STEP_EVENT_BUDGET + 1), &mut plan);
        assert_eq!(
            plan.intents,
            vec![Intent::DeleteJob { name: "j".into() }],
            "the Job delete stays; the step Event goes; no second notice"
        );
    }

    #[test]
    fn a_run_with_every_retry_writes_a_bounded_number_of_step_events() {
        // 1,000 steps of 11 attempts (the most retries allow), one attempt per plan,
        // three step Events per attempt: what the bound lets through in all.
        let mut written = 0;
        let mut before = ExecutionStatus::default();
        for n in 1..=11_000u32 {
            let mut plan = Plan {
                status: ExecutionStatus {
                    steps: vec![step(StepState::Running, n)],
                    ..ExecutionStatus::default()
                },
                intents: vec![
                    event("StepStarted"),
                    event("StepRetrying"),
                    event("ParsingOutput"),
                ],
                requeue_after: None,
            };
            bound(&before, &mut plan);
            written += plan.intents.len();
            before = plan.status;
        }
        assert_eq!(written, 3 * STEP_EVENT_BUDGET as usize + 1);
    }
}
