//! The playbook's remediation limit (`spec.limits.remediations`) in the planner.
//!
//! A run uses a remediation when its first remediate-phase step starts: `launch`
//! records `status.remediation.at` in the status written before that step's Job is
//! created, so the count the controller reads back is durable before anything runs.
//! Before that, `start` renders the key (once per run, kept in `status.remediation`)
//! and asks [`limits::verdict`] about the other runs' records (`PlanInput::remediations`);
//! past the cap the step needs an approval, whatever its own `approval` says. A held
//! step stays held once the window passes: a person was asked, and answers.

use super::{EventType, Planner, time};
use crate::api::{Phase, RemediationLimit, RemediationRecord, Step};
use crate::engine::limits::{self, Verdict};
use crate::engine::template;

impl Planner<'_> {
    fn remediation_limit(&self) -> Option<&RemediationLimit> {
        self.pb.limits.as_ref()?.remediations.as_ref()
    }

    /// For step `i` about to start: true when the limit holds it for an approval
    /// (the reason is in `status.remediation.held`). Err: the key did not render,
    /// which fails the step.
    pub(super) fn remediation_hold(&mut self, i: usize, step: &Step) -> Result<bool, String> {
        if step.phase != Phase::Remediate {
            return Ok(false);
        }
        let Some(limit) = self.remediation_limit().cloned() else {
            return Ok(false);
        };
        match &self.st.remediation {
            // The run counts already: its other remediate steps are not held again.
            Some(r) if r.at.is_some() => return Ok(false),
            Some(r) if r.held.is_some() => return Ok(true),
            _ => {}
        }
        let key = match &self.st.remediation {
            Some(r) => r.key.clone(),
            None => self.remediation_key(i, &limit)?,
        };
        let e = &self.input.execution;
        let verdict = limits::verdict(&limit, &key, &self.input.remediations, &e.uid, self.now);
        let held = match verdict {
            Verdict::Go => None,
            Verdict::Hold(reason) => Some(reason),
        };
        if let Some(reason) = &held {
            let iid = &self.ids[i];
            let text = format!("step '{iid}' needs an approval: {reason}");
            self.event(EventType::Warning, "RemediationHeld", text);
        }
        let is_held = held.is_some();
        self.st.remediation = Some(RemediationRecord {
            key,
            at: None,
            held,
        });
        Ok(is_held)
    }

    /// The rendered `limits.remediations.key`, as step `i`'s templates see the run.
    fn remediation_key(&self, i: usize, limit: &RemediationLimit) -> Result<String, String> {
        let ctx = self.context_for(&self.ids[i])?;
        let key = template::render(&limit.key, &ctx).map_err(|e| {
            format!(
                "limits.remediations.key of Playbook '{}': {e}: fix the key template (e.g. '{{{{ .alert.labels.namespace }}}}')",
                self.input.spec.playbook_ref.name
            )
        })?;
        Ok(key.trim().to_string())
    }

    /// A waiting step's message, with why the limit held it in front.
    pub(super) fn with_hold_reason(&self, i: usize, message: String) -> String {
        let held = self
            .st
            .remediation
            .as_ref()
            .filter(|r| r.at.is_none())
            .and_then(|r| r.held.as_deref());
        match held {
            Some(reason) if self.st.steps[i].phase == Phase::Remediate => {
                format!("{reason}: {message}")
            }
            _ => message,
        }
    }

    /// Step `i` is being launched: a remediate step's first launch makes the run count.
    pub(super) fn record_remediation(&mut self, i: usize) {
        if self.st.steps[i].phase != Phase::Remediate {
            return;
        }
        if let Some(r) = self.st.remediation.as_mut().filter(|r| r.at.is_none()) {
            r.at = Some(time(self.now));
        }
    }
}

#[cfg(test)]
mod tests;
