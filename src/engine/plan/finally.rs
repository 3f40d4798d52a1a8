//! `finally` steps: clean-up that runs whatever the main steps' outcome.
//!
//! When the main steps reach a final phase (success, a failed or timed-out step,
//! `spec.cancel`), a playbook with `finally` steps does not end yet: the outcome is
//! recorded in `status.mainOutcome`, the phase goes back to Running, and the finally
//! steps run. They are planned by a second planner over a playbook made of them
//! (each `continueOnError`, so one failing does not skip the next; in order, since
//! entries without `dependsOn` wait for the one before), with the main steps'
//! statuses visible to their templates and `.execution.phase` / `.failedStep` set
//! from the outcome. Being a plain planner run over `status.finally`, it is as
//! crash-safe as the main steps: a controller that comes back after being down when
//! the main steps ended finds the outcome (or records it) and goes on.
//!
//! `spec.cancel` set while finally steps run does not stop them: clean-up is exactly
//! what a cancel must not skip. Once they are all final, the Execution takes the
//! recorded phase; a failed finally step is named in the message and an Event.

use k8s_openapi::jiff::Timestamp;

use super::{EventType, Intent, MainRun, PlanInput, Planner, plan_stage, time};
use crate::api::{
    ExecutionPhase, ExecutionSpec, ExecutionStatus, MainOutcome, PlaybookSpec, StepState,
};

/// Reasons of the Events that announce a run's end: held back while finally runs.
pub(super) const FINAL_REASONS: [&str; 3] = [
    "ExecutionSucceeded",
    "ExecutionFailed",
    "ExecutionCancelled",
];

impl Planner<'_> {
    /// After the main steps' plan: if they just ended and the playbook has finally
    /// steps, record the outcome and start those instead of ending the run.
    pub(super) fn start_finally(&mut self) {
        // The planner of the finally steps never starts another stage.
        if !self.st.phase.is_final() || self.input.main.is_some() {
            return;
        }
        let has_finally = self
            .st
            .playbook
            .as_ref()
            .is_some_and(|pb| !pb.finally.is_empty());
        if !has_finally {
            return;
        }
        let phase = self.st.phase;
        self.st.main_outcome = Some(MainOutcome {
            phase,
            message: self.st.message.clone(),
            failed_step: (phase == ExecutionPhase::Failed)
                .then(|| self.st.current_step.clone())
                .flatten(),
        });
        self.st.phase = ExecutionPhase::Running;
        self.st.finished_at = None;
        // The end is announced when the finally steps are done.
        self.events.retain(|e| {
            !matches!(e, Intent::Event { reason, .. } if FINAL_REASONS.contains(&reason.as_str()))
        });
        self.event(
            EventType::Normal,
            "FinallyStarted",
            format!(
                "main steps {}: running the finally steps",
                phase_word(phase)
            ),
        );
        self.run_finally();
    }

    /// Plans the finally steps; ends the run once they are all final.
    pub(super) fn run_finally(&mut self) {
        let (Some(outcome), Some(pb)) = (self.st.main_outcome.clone(), self.st.playbook.clone())
        else {
            return;
        };
        let stage = finally_playbook(&pb);
        let started = !self.st.finally.is_empty();
        let input = PlanInput {
            execution: self.input.execution.clone(),
            // Cancel stops the main steps, never the clean-up.
            spec: ExecutionSpec {
                cancel: false,
                ..self.input.spec.clone()
            },
            status: ExecutionStatus {
                phase: if started {
                    ExecutionPhase::Running
                } else {
                    ExecutionPhase::Pending
                },
                playbook: started.then(|| stage.clone()),
                steps: self.st.finally.clone(),
                started_at: self.st.started_at.clone(),
                ..ExecutionStatus::default()
            },
            playbook: Some(stage),
            jobs: self.input.jobs.clone(),
            runners: self.input.runners.clone(),
            runner_access: self.input.runner_access.clone(),
            limits: self.input.limits.clone(),
            main: Some(MainRun {
                outcome: outcome.clone(),
                steps: self.st.steps.clone(),
            }),
            spilled: self.spilled.clone(),
            // Clean-up is never held by the remediation limit.
            remediations: Vec::new(),
            parser_inputs: self.input.parser_inputs.clone(),
        };
        let now = Timestamp::from_second(self.now).unwrap_or(Timestamp::UNIX_EPOCH);
        let inner = plan_stage(&input, now);
        self.st.finally = inner.status.steps;
        for intent in inner.intents {
            match intent {
                Intent::CreateJob(job) => self.create(*job),
                Intent::CreateConfigMap(config_map) => self.create_config_map(*config_map),
                // Jobs no step owns are deleted by this (outer) plan, which sees both
                // the main and the finally steps.
                Intent::DeleteJob { .. } => {}
                // The finally stage's own end is not the run's: that is announced below.
                Intent::Event { ref reason, .. } if FINAL_REASONS.contains(&reason.as_str()) => {}
                event @ Intent::Event { .. } => self.events.push(event),
            }
        }
        if let Some(after) = inner.requeue_after {
            self.requeue_in(i64::try_from(after.as_secs()).unwrap_or(i64::MAX));
        }
        if inner.status.phase.is_final() {
            let problem = (inner.status.phase == ExecutionPhase::Failed)
                .then(|| inner.status.message.clone())
                .flatten();
            self.end_after_finally(&outcome, problem);
        } else {
            self.st.phase = inner.status.phase;
            self.st.current_step = inner.status.current_step;
            self.st.message = Some(match inner.status.message {
                Some(waiting) => format!(
                    "main steps {}; finally: {waiting}",
                    phase_word(outcome.phase)
                ),
                None => format!(
                    "main steps {}; running the finally steps",
                    phase_word(outcome.phase)
                ),
            });
        }
    }

    /// The run ends with the main steps' phase; failed finally steps are reported.
    fn end_after_finally(&mut self, outcome: &MainOutcome, problem: Option<String>) {
        let failed: Vec<String> = self
            .st
            .finally
            .iter()
            .filter(|s| s.state == StepState::Failed)
            .map(|s| format!("'{}' ({})", s.id, s.message.as_deref().unwrap_or("failed")))
            .collect();
        let mut message = outcome.message.clone().unwrap_or_default();
        let finally_note = match (failed.is_empty(), problem) {
            (_, Some(why)) => Some(format!("finally steps could not run: {why}")),
            (false, None) => Some(format!("finally step(s) failed: {}", failed.join(", "))),
            (true, None) => None,
        };
        if let Some(note) = &finally_note {
            if !message.is_empty() {
                message.push_str("; ");
            }
            message.push_str(note);
            self.event(EventType::Warning, "FinallyFailed", note.clone());
        }
        self.st.phase = outcome.phase;
        self.st.finished_at = Some(time(self.now));
        self.st.current_step = outcome.failed_step.clone();
        self.st.message = Some(message.clone());
        let name = &self.input.spec.playbook_ref.name;
        let (type_, reason) = match outcome.phase {
            ExecutionPhase::Succeeded => (EventType::Normal, "ExecutionSucceeded"),
            ExecutionPhase::Cancelled => (EventType::Normal, "ExecutionCancelled"),
            _ => (EventType::Warning, "ExecutionFailed"),
        };
        self.event(
            type_,
            reason,
            format!("playbook '{name}' {}: {message}", phase_word(outcome.phase)),
        );
    }
}

/// The finally steps as a playbook of their own: each may fail without stopping the
/// next one.
fn finally_playbook(pb: &PlaybookSpec) -> PlaybookSpec {
    let steps = pb
        .finally
        .iter()
        .cloned()
        .map(|mut entry| {
            entry.step.continue_on_error = true;
            for s in entry.steps.iter_mut().flatten() {
                s.continue_on_error = true;
            }
            entry
        })
        .collect();
    PlaybookSpec {
        params: pb.params.clone(),
        steps,
        ..PlaybookSpec::default()
    }
}

#[cfg(test)]
mod tests;

fn phase_word(phase: ExecutionPhase) -> &'static str {
    match phase {
        ExecutionPhase::Succeeded => "succeeded",
        ExecutionPhase::Failed => "failed",
        ExecutionPhase::Cancelled => "cancelled",
        _ => "ended",
    }
}
