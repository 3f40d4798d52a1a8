//! The approval gate in the planner: a step that needs an approval shows its plan
//! and waits until [`approval::decide`] grants it; every later attempt of an approved
//! step (a retry, a Job re-created after a restart) runs only if it renders the same
//! plan, and otherwise waits for an approval again.
//!
//! The decisions are pure functions in `approval`; this file keeps the step's status
//! in line with them.

use k8s_openapi::api::batch::v1::Job;

use super::approval::{self, Verdict};
use super::{EventType, Planner, seconds, time};
use crate::api::{Approval, OnTimeout, Step, StepPlan, StepState};
use crate::engine::job;

impl Planner<'_> {
    /// A step waiting for approval: decide again (approvals, rejections, its
    /// timeout, a plan that changed since).
    pub(super) fn check_approval(&mut self, i: usize) -> bool {
        let config = self
            .step_spec(&self.ids[i])
            .and_then(|s| needs_approval(&s))
            .unwrap_or_default();
        self.await_approval(i, &config)
    }

    /// The plan of a Job built for instance `i` on `runner` (by name).
    pub(super) fn plan_of(
        &self,
        i: usize,
        job: &Job,
        runner: Option<&str>,
    ) -> Result<StepPlan, String> {
        job::step_plan(job, runner)
            .ok_or_else(|| format!("step '{}': its Job has no container", self.ids[i]))
    }

    /// Before attempt `attempt` of instance `i` is created from `job`: true when it
    /// may run. An instance that was approved (its status holds the approved plan)
    /// whose plan changed since goes back to waiting for an approval of the new one,
    /// and this attempt is not created (false).
    pub(super) fn still_approved(
        &mut self,
        i: usize,
        attempt: u32,
        job: &Job,
        runner: Option<&str>,
    ) -> bool {
        let Some(approved) = self.st.steps[i].plan.as_ref().map(|p| p.hash.clone()) else {
            return true;
        };
        let now = match self.plan_of(i, job, runner) {
            Ok(plan) => plan.hash,
            Err(message) => {
                self.fail_step(i, message, None);
                return false;
            }
        };
        if approval::pinned(&approved, &now) {
            return true;
        }
        // The attempt was never created: once approved again, it runs under its own number.
        let s = &mut self.st.steps[i];
        s.attempt = attempt.saturating_sub(1);
        s.job_name = None;
        s.started_at = None;
        self.check_approval(i);
        false
    }

    /// Instance `i` needs `config`'s approval: its plan is rendered (and kept current
    /// in status), then [`approval::decide`] starts, fails, skips it, or says what it
    /// still waits for. True when the status changed.
    pub(super) fn await_approval(&mut self, i: usize, config: &Approval) -> bool {
        let iid = self.ids[i].clone();
        // The attempt an approval now starts: the first, or the one after the last run.
        let attempt = self.st.steps[i].attempt + 1;
        let plan = match self
            .job_for(&iid, attempt)
            .and_then(|(job, runner)| self.plan_of(i, &job, runner.as_deref()))
        {
            Ok(plan) => plan,
            Err(message) => {
                self.fail_step(i, message, None);
                return true;
            }
        };
        let s = &mut self.st.steps[i];
        let first = s.state != StepState::WaitingApproval;
        if first {
            s.state = StepState::WaitingApproval;
            s.waiting_since = Some(time(self.now));
        }
        let mut changed = first || s.plan.as_deref() != Some(&plan);
        let since = s.waiting_since.as_ref().map_or(self.now, seconds);
        let spec = &self.input.spec;
        let verdict = approval::decide(&approval::Wait {
            config,
            execution: &self.input.execution.name,
            requester: spec.requested_by.as_deref(),
            records: &spec.approvals,
            instance: &iid,
            plan_hash: &plan.hash,
            since,
            now: self.now,
        });
        self.st.steps[i].plan = Some(Box::new(plan));
        match verdict {
            Verdict::Granted(note) => self.launch(i, attempt, Some(note)),
            Verdict::Rejected(message) | Verdict::TimedOut(OnTimeout::Reject, message) => {
                self.fail_step(i, message, None);
            }
            Verdict::TimedOut(OnTimeout::Skip, message) => {
                self.event(
                    EventType::Normal,
                    "StepSkipped",
                    format!("step '{iid}' skipped: {message}"),
                );
                self.skip(i, message);
            }
            Verdict::Waiting {
                message,
                ignored,
                deadline,
            } => {
                let message = self.with_hold_reason(i, message);
                if let Some(deadline) = deadline {
                    self.requeue_in(deadline - self.now);
                }
                if self.st.steps[i].message.as_deref() == Some(message.as_str()) {
                    return changed;
                }
                let (type_, reason) = match (first, ignored) {
                    (true, _) => (EventType::Normal, "WaitingApproval"),
                    (false, true) => (EventType::Warning, "ApprovalIgnored"),
                    (false, false) => (EventType::Normal, "ApprovalRecorded"),
                };
                self.event(type_, reason, format!("step '{iid}': {message}"));
                self.st.steps[i].message = Some(message);
                changed = true;
                return changed;
            }
        }
        true
    }
}

/// The approval a step needs before it runs, if any: the one place that says so.
pub(crate) fn needs_approval(step: &Step) -> Option<Approval> {
    step.approval.clone().filter(|a| a.required)
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::super::scenario::{Scenario, step};
    use crate::api::StepState;

    /// A run whose step `a` (retried once at once) needs an approval, on the
    /// namespace's `default` Runner.
    fn guarded() -> Scenario {
        Scenario::new(vec![step("a").approval().retries(1, 0)]).runner("default")
    }

    /// Someone with rights over Runners gives the `default` one another service account.
    fn escalate(s: &mut Scenario) {
        if let Some(r) = s.input.runners.get_mut("default") {
            r.service_account_name = Some("cluster-admin".into());
        }
    }

    /// The service account of the Job of step `a`'s current attempt.
    fn service_account(s: &Scenario) -> Option<String> {
        let name = s.status_of("a").job_name.unwrap_or_default();
        let job = s.jobs.get(&name)?;
        job.spec
            .as_ref()?
            .template
            .spec
            .as_ref()?
            .service_account_name
            .clone()
    }

    fn message(s: &Scenario) -> String {
        s.status_of("a").message.unwrap_or_default()
    }

    #[test]
    fn a_retry_of_the_approved_plan_needs_no_new_approval() {
        let mut s = guarded();
        s.plan();
        s.approve("a", "bob");
        s.plan();
        assert_eq!(s.states(), "a=Running");
        s.exit("a", 1, "boom");
        s.plan();
        assert_eq!(s.states(), "a=Running");
        assert_eq!(s.status_of("a").attempt, 2);
        assert_eq!(s.creates().len(), 1);
    }

    #[test]
    fn a_retry_whose_runner_changed_waits_for_an_approval_of_the_new_plan() {
        let mut s = guarded();
        s.plan();
        let approved = s.plan_hash("a");
        s.approve("a", "bob");
        s.plan();
        assert_eq!(service_account(&s), None);
        escalate(&mut s);
        s.exit("a", 1, "boom");
        s.plan();
        assert_eq!(s.states(), "a=WaitingApproval");
        assert_eq!(s.creates(), Vec::<String>::new(), "nothing runs unapproved");
        let now = s.plan_hash("a");
        assert_ne!(now, approved);
        assert!(
            message(&s).contains(&format!(
                "the plan changed since bob approved it (hash {approved}, now {now}): approve again"
            )),
            "{}",
            message(&s)
        );
        assert_eq!(s.events(), ["StepRetrying", "WaitingApproval"]);

        // Approved again, the retry runs as attempt 2, with the new service account.
        s.approve("a", "bob");
        s.plan();
        assert_eq!(s.states(), "a=Running");
        assert_eq!(s.status_of("a").attempt, 2);
        assert_eq!(service_account(&s).as_deref(), Some("cluster-admin"));
    }

    #[test]
    fn a_job_recreated_after_a_crash_runs_only_the_approved_plan() {
        let mut s = guarded();
        s.plan();
        s.approve("a", "bob");
        s.plan();
        let job = s.status_of("a").job_name;
        // The controller died after writing Running but before creating the Job, and
        // the Runner changed meanwhile.
        s.lose_job("a");
        escalate(&mut s);
        s.plan();
        assert_eq!(s.states(), "a=WaitingApproval");
        assert_eq!(s.creates(), Vec::<String>::new());
        assert!(message(&s).contains("the plan changed since bob approved it"));
        let st = s.status_of("a");
        assert_eq!((st.attempt, st.job_name), (0, None));

        // Approved again, attempt 1 (never created) is created, with the new plan.
        s.approve("a", "bob");
        s.plan();
        assert_eq!(s.states(), "a=Running");
        assert_eq!(s.status_of("a").job_name, job);
        assert_eq!(service_account(&s).as_deref(), Some("cluster-admin"));
    }

    #[test]
    fn a_job_recreated_after_a_crash_with_the_same_plan_runs_at_once() {
        let mut s = guarded();
        s.plan();
        s.approve("a", "bob");
        s.plan();
        s.lose_job("a");
        s.plan();
        assert_eq!(s.states(), "a=Running");
        assert_eq!(
            s.creates(),
            vec![s.status_of("a").job_name.unwrap_or_default()]
        );
    }

    #[test]
    fn a_runner_change_while_waiting_voids_the_approvals_given() {
        let mut s =
            Scenario::new(vec![step("a").approval_with(|a| a.count = Some(2))]).runner("default");
        s.plan();
        s.approve("a", "bob");
        s.plan();
        assert!(
            message(&s).starts_with("1 of 2 approvals (bob)"),
            "{}",
            message(&s)
        );
        escalate(&mut s);
        s.plan();
        assert_eq!(s.status_of("a").state, StepState::WaitingApproval);
        assert!(
            message(&s).starts_with("0 of 2 approvals;"),
            "{}",
            message(&s)
        );
        assert!(message(&s).contains("the plan changed since bob approved it"));
        let plan = s.status_of("a").plan.unwrap_or_default();
        let pod = serde_json::to_value(&plan.pod).unwrap_or_default();
        assert_eq!(pod["spec"]["serviceAccountName"], "cluster-admin");
        assert_eq!(plan.runner.as_deref(), Some("default"));
    }
}
