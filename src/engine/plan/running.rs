//! A running attempt in the planner: its Job refused, failed, timed out, gone, or
//! its pod judged by [`health`]; an ended container goes on to `step`'s `ended`.
//!
//! The Job's uid is recorded in the status that says its attempt runs (the controller
//! creates the Job first: `Plan::created`), or else the first time the Job is seen. A
//! Job recorded and gone now (from the cache and, read again, from the API server:
//! `recorded_unseen`) was deleted (never created again under its name: the attempt
//! fails); a Job never recorded may simply not exist yet (the controller
//! stopped between writing a remediation claim and creating its Job), so it is asked
//! for again (409: ours).

use super::health::{self, Health};
use super::{Planner, seconds};
use crate::engine::workload;

impl Planner<'_> {
    /// Looks at a Running instance's Job.
    pub(super) fn observe(&mut self, i: usize) -> bool {
        let iid = self.ids[i].clone();
        let Some(step) = self.step_spec(&iid) else {
            return false;
        };
        if self.st.steps[i].parser.is_some() {
            return self.observe_parser(i, &step);
        }
        let name = self.st.steps[i].job_name.clone().unwrap_or_default();
        let job = self.input.jobs.get(&name);
        if let Some(reason) = job.and_then(|j| j.refused.as_ref()) {
            // The same spec would be refused again: retrying cannot help.
            self.fail_step(i, reason.clone(), None);
            return true;
        }
        if let Some(t) = job.and_then(|j| j.terminated.as_ref()) {
            let log = job.map(|j| j.log.clone()).unwrap_or_default();
            let limit = job.and_then(|j| j.memory_limit.clone());
            return self.ended(i, &step, t, &log, limit.as_deref());
        }
        let started = self.st.steps[i]
            .started_at
            .as_ref()
            .map_or(self.now, seconds);
        if let Some(f) = job.and_then(|j| j.failed.as_ref()) {
            let message = match (f.reason.as_str(), step.timeout_seconds) {
                ("DeadlineExceeded", Some(t)) => format!("timed out after {t}s"),
                _ => format!("Job failed: {}: {}", f.reason, f.message),
            };
            self.attempt_failed(i, message, None, self.now);
            return true;
        }
        // Nothing runs for ever: a step without a timeout of its own gets the default.
        let default = self.input.limits.default_timeout_seconds;
        let timeout = step.timeout_seconds.or((default > 0).then_some(default));
        if let Some(t) = timeout {
            if self.now - started >= t {
                let mut message = format!("timed out after {t}s");
                if step.timeout_seconds.is_none() {
                    message.push_str(" (the operator's default step timeout: set the step's timeoutSeconds to give it longer)");
                }
                self.attempt_failed(i, message, None, self.now);
                return true;
            }
            self.requeue_in(started + t - self.now);
        }
        let recorded = self.st.steps[i].job_uid.clone();
        let Some(job) = job else {
            if recorded.is_some() {
                // It was seen, so it was created: someone (or a TTL) deleted it.
                let message = deleted_message(self.kind_of(i), &name);
                self.attempt_failed(i, message, None, self.now);
                return true;
            }
            // Status says Running but the Job was never seen: the controller stopped
            // between writing status and creating it (or the cache lags; 409 then).
            // An approved step's plan may have changed meanwhile (its Runner, say):
            // then it waits for an approval again instead.
            let attempt = self.st.steps[i].attempt.max(1);
            match self.job_for(&iid, attempt) {
                Ok((job, runner)) => {
                    if !self.still_approved(i, attempt, &job, runner.as_deref()) {
                        return true;
                    }
                    self.create(job);
                }
                Err(message) => {
                    self.fail_step(i, message, None);
                    return true;
                }
            }
            return false;
        };
        let replaced = recorded.is_some() && job.uid.is_some() && recorded != job.uid;
        if job.deleting || replaced {
            let message = deleted_message(self.kind_of(i), &name);
            self.attempt_failed(i, message, None, self.now);
            return true;
        }
        if recorded.is_none() {
            self.st.steps[i].job_uid = job.uid.clone();
        }
        let start_timeout = step
            .start_timeout_seconds
            .unwrap_or(self.input.limits.start_timeout_seconds);
        let clock = health::Clock {
            started,
            now: self.now,
            start_timeout,
        };
        match health::judge(job.pod.as_ref(), &name, step.image.trim(), clock) {
            Health::Fine => false,
            Health::Wait(seconds) => {
                self.requeue_in(seconds);
                false
            }
            Health::Failed(message) => {
                self.attempt_failed(i, message, None, self.now);
                true
            }
        }
    }
}

impl Planner<'_> {
    /// What instance `i`'s current attempt runs as (`Job` or `Pod`), for messages: the
    /// Runner decides it through the Job builder (`engine::workload`), not the planner.
    fn kind_of(&self, i: usize) -> &'static str {
        let attempt = self.st.steps[i].attempt.max(1);
        self.job_for(&self.ids[i], attempt)
            .map_or("Job", |(job, _)| workload::of(&job).kind())
    }
}

/// Why an attempt failed whose Job (or bare Pod) disappeared while it ran.
fn deleted_message(kind: &str, name: &str) -> String {
    format!("{kind} {name} was deleted while the step ran")
}
