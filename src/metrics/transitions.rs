//! What one plan changed that the metrics count: pure functions of the status
//! before and after it, so counting is tested without a controller.

use k8s_openapi::jiff::Timestamp;

use crate::api::{Execution, ExecutionPhase, ExecutionStatus, StepState};
use crate::engine::report::{RunReview, run_review};

/// One step that reached a final state, having run.
#[derive(Clone, Debug, PartialEq)]
pub struct StepEnded {
    pub id: String,
    pub attempt: u32,
    pub phase: crate::api::Phase,
    pub seconds: f64,
}

/// What one plan changed that the metrics count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transitions {
    /// The final phase the run reached in this plan (`None`: not final, or it was
    /// final already).
    pub finished: Option<ExecutionPhase>,
    /// True when the run is final after this plan (newly or not).
    pub is_final: bool,
    /// Steps that reached a final state in this plan after running (Skipped steps and
    /// steps cancelled before they started never ran).
    pub steps_ended: Vec<StepEnded>,
    /// True when a step left Running (or started another attempt): the controller
    /// took a container's end in. Its next Job, if this plan creates one, ends a
    /// hand-off; if not (an approval, a retry's backoff, the end of the run), the
    /// wait is not the controller's and nothing is observed.
    pub took_in_end: bool,
    /// The review of the run, when it finished in this plan.
    pub review: Option<RunReview>,
    /// The remediation limit held the run in this plan.
    pub remediation_held: bool,
}

/// What changed from `before` to `after` (one plan), for the metrics. `now` is the
/// end of a step whose status has no `finishedAt`.
pub fn transitions(
    before: &ExecutionStatus,
    after: &ExecutionStatus,
    now: Timestamp,
) -> Transitions {
    let was = |id: &str| before.steps.iter().find(|s| s.id == id);
    let finished = (after.phase.is_final() && !before.phase.is_final()).then_some(after.phase);
    let mut t = Transitions {
        finished,
        is_final: after.phase.is_final(),
        review: finished.map(|_| run_review(after, after.started_at.as_ref().map(|t| t.0), now)),
        remediation_held: held(after) && !held(before),
        ..Transitions::default()
    };
    for step in &after.steps {
        let old = was(&step.id);
        if old.is_some_and(|o| {
            o.state == StepState::Running
                && (step.state != StepState::Running || step.attempt != o.attempt)
        }) {
            t.took_in_end = true;
        }
        let newly_final = step.state.is_final() && old.is_none_or(|o| !o.state.is_final());
        let Some(started) = step.started_at.as_ref().filter(|_| newly_final) else {
            continue;
        };
        let ended = step.finished_at.as_ref().map_or(now, |f| f.0);
        let seconds = ended.duration_since(started.0).as_secs_f64().max(0.0);
        t.steps_ended.push(StepEnded {
            id: step.id.clone(),
            attempt: step.attempt,
            phase: step.phase,
            seconds,
        });
    }
    t
}

fn held(status: &ExecutionStatus) -> bool {
    status
        .remediation
        .as_ref()
        .is_some_and(|r| r.held.is_some())
}

/// How many of `executions` are not final (Pending and WaitingApproval included:
/// they are runs in progress).
pub fn running<'a>(executions: impl Iterator<Item = &'a Execution>) -> i64 {
    let n = executions
        .filter(|e| !e.status.as_ref().is_some_and(|s| s.phase.is_final()))
        .count();
    i64::try_from(n).unwrap_or(i64::MAX)
}
