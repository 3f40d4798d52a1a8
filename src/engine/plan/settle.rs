//! The run as a whole: cancel, fail, severity, and the phase the steps add up to.
//!
//! Phases: Pending → Running → (WaitingApproval ↔ Running) → Succeeded | Failed |
//! Cancelled; `finishedAt` is set once, with the final phase, and an Event marks it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::Value;

use super::step::NOT_RETRIED;
use super::{EventType, Planner, time};
use crate::api::{ExecutionPhase, Phase, StepState};
use crate::engine::template;

/// Condition type recording that the playbook's `severity` template failed to render
/// (so it is not rendered, and reported, again on every reconcile).
pub const SEVERITY_CONDITION: &str = "SeverityRendered";

impl Planner<'_> {
    /// `spec.cancel`: every step not final is Cancelled; `finish` deletes running Jobs.
    pub(super) fn cancel(&mut self) {
        for s in &mut self.st.steps {
            if !s.state.is_final() {
                s.state = StepState::Cancelled;
                s.finished_at = Some(time(self.now));
                s.message = Some("cancelled: spec.cancel is true".into());
            }
        }
        self.st.phase = ExecutionPhase::Cancelled;
        self.st.finished_at = Some(time(self.now));
        self.st.current_step = None;
        self.st.message = Some("cancelled: spec.cancel is true".into());
        let name = &self.input.spec.playbook_ref.name;
        self.event(
            EventType::Normal,
            "ExecutionCancelled",
            format!("playbook '{name}' cancelled"),
        );
    }

    /// The run cannot go on (invalid snapshot, missing params): Failed, with why.
    pub(super) fn fail_run(&mut self, message: String) {
        self.st.phase = ExecutionPhase::Failed;
        self.st.finished_at = Some(time(self.now));
        self.st.message = Some(message.clone());
        self.event(EventType::Warning, "ExecutionFailed", message);
    }

    /// The run cannot go on while steps are under way (an output their templates
    /// read is gone): what has not ended ends now, so a finished run never shows a
    /// step Running or Pending. Their Jobs are then deleted like a cancelled step's.
    pub(super) fn stop_unfinished(&mut self, why: &str) {
        for i in 0..self.st.steps.len() {
            match self.st.steps[i].state {
                state if state.is_final() => {}
                StepState::Pending | StepState::WaitingApproval => {
                    self.skip(i, format!("not run: {why}"));
                }
                _ => {
                    let s = &mut self.st.steps[i];
                    s.state = StepState::Failed;
                    s.finished_at = Some(time(self.now));
                    s.message = Some(format!("stopped: {why}"));
                }
            }
        }
        self.st.current_step = None;
    }

    /// A step failed the run: what has not started will not start.
    pub(super) fn stop_pending(&mut self) -> bool {
        let Some(failed) = self.failing() else {
            return false;
        };
        let failed_id = self.st.steps[failed].id.clone();
        let mut changed = false;
        for i in 0..self.st.steps.len() {
            match self.st.steps[i].state {
                StepState::Pending | StepState::WaitingApproval => {
                    self.skip(i, format!("not run: step '{failed_id}' failed"));
                    changed = true;
                }
                StepState::Retrying => {
                    let s = &mut self.st.steps[i];
                    let last = s.message.as_deref().unwrap_or_default();
                    let last = last.split("; retrying at").next().unwrap_or_default();
                    s.message = Some(format!("{last}{NOT_RETRIED}{failed_id}' failed"));
                    s.state = StepState::Failed;
                    s.finished_at = Some(time(self.now));
                    changed = true;
                }
                _ => {}
            }
        }
        changed
    }

    /// Once every enrich step is final: the playbook's `severity` template, else the
    /// last `severity` field a step printed. Set once.
    pub(super) fn severity(&mut self) {
        if self.st.severity.is_some()
            || self
                .st
                .conditions
                .iter()
                .any(|c| c.type_ == SEVERITY_CONDITION)
        {
            return;
        }
        let enrich_done = self
            .st
            .steps
            .iter()
            .filter(|s| s.phase == Phase::Enrich)
            .all(|s| s.state.is_final());
        if !enrich_done {
            return;
        }
        if let Some(tpl) = self.pb.severity.clone() {
            match template::render(&tpl, &self.context_over(&self.st.steps)) {
                Ok(text) => {
                    let text = text.trim();
                    if !text.is_empty() && text != "<no value>" {
                        self.st.severity = Some(text.to_string());
                        return;
                    }
                }
                Err(err) => {
                    let message = format!("spec.severity: {err}");
                    self.st.conditions.push(Condition {
                        type_: SEVERITY_CONDITION.into(),
                        status: "False".into(),
                        reason: "TemplateError".into(),
                        message: message.clone(),
                        last_transition_time: time(self.now),
                        observed_generation: self.input.execution.generation,
                    });
                    self.event(EventType::Warning, "SeverityFailed", message);
                    return;
                }
            }
        }
        // The last writer wins, as for every output merged at the template root.
        let from_outputs = self
            .st
            .steps
            .iter()
            .rev()
            .filter(|s| s.state.is_final())
            .find_map(|s| match s.outputs.as_ref()?.get("severity")? {
                Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        self.st.severity = from_outputs;
    }

    /// The phase the steps add up to, `currentStep`, and the final Event.
    pub(super) fn settle(&mut self) {
        if self.st.phase.is_final() {
            return;
        }
        let active = |state: StepState| matches!(state, StepState::Running | StepState::Retrying);
        let name = self.input.spec.playbook_ref.name.clone();
        if let Some(failed) = self.failing() {
            let s = &self.st.steps[failed];
            let (id, why) = (s.id.clone(), s.message.clone().unwrap_or_default());
            if self.st.steps.iter().any(|s| active(s.state)) {
                self.st.phase = ExecutionPhase::Running;
                self.st.message = Some(format!(
                    "step '{id}' failed; waiting for running steps to end"
                ));
                self.st.current_step = self
                    .st
                    .steps
                    .iter()
                    .find(|s| active(s.state))
                    .map(|s| s.id.clone());
                return;
            }
            self.st.current_step = Some(id.clone());
            self.fail_run(format!("step '{id}' failed: {why}"));
            return;
        }
        if self.st.steps.iter().all(|s| s.state.is_final()) {
            let count = |state| self.st.steps.iter().filter(|s| s.state == state).count();
            let (ok, skipped, failed) = (
                count(StepState::Succeeded),
                count(StepState::Skipped),
                count(StepState::Failed),
            );
            let mut summary = format!("{ok} steps succeeded, {skipped} skipped");
            if failed > 0 {
                summary.push_str(&format!(", {failed} failed with continueOnError"));
            }
            self.st.phase = ExecutionPhase::Succeeded;
            self.st.finished_at = Some(time(self.now));
            self.st.current_step = None;
            self.st.message = Some(summary.clone());
            self.event(
                EventType::Normal,
                "ExecutionSucceeded",
                format!("playbook '{name}' succeeded: {summary}"),
            );
            return;
        }
        let running = self.st.steps.iter().find(|s| active(s.state));
        let waiting = self
            .st
            .steps
            .iter()
            .find(|s| s.state == StepState::WaitingApproval);
        let (phase, current) = match (running, waiting) {
            (Some(r), _) => (ExecutionPhase::Running, Some(r.id.clone())),
            (None, Some(w)) => (ExecutionPhase::WaitingApproval, Some(w.id.clone())),
            (None, None) => {
                // Nothing runs, nothing waits, yet steps are pending: a planner bug or
                // a snapshot it cannot follow. Failing says so instead of hanging.
                let pending: Vec<&str> = self
                    .st
                    .steps
                    .iter()
                    .filter(|s| !s.state.is_final())
                    .map(|s| s.id.as_str())
                    .take(5)
                    .collect();
                self.fail_run(format!(
                    "no step can start (pending: {}): please report this",
                    pending.join(", ")
                ));
                return;
            }
        };
        self.st.phase = phase;
        self.st.current_step = current;
        self.st.message = match (phase, waiting) {
            (ExecutionPhase::WaitingApproval, Some(w)) => w.message.clone(),
            _ => None,
        };
    }
}
