//! One step's life in the planner: start (when, approval, runner, Job), observe
//! its Job, retry with backoff, time out, succeed with parsed output, or fail.
//!
//! Every method here changes one `status.steps[i]` and says whether it did, so the
//! planner's sweep knows when to look again; Events are emitted only on those
//! changes, which is what makes them one per real transition.

use std::collections::BTreeMap;

use serde_json::Value;

use super::gate::needs_approval;
use super::health;
use super::model::TERMINATION_MESSAGE_MAX;
use super::{EventType, Planner, StepLog, Terminated, output, seconds, time};
use crate::api::{Approval, Retries, RunnerSpec, Step, StepState};
use crate::engine::access;
use crate::engine::context::InstanceId;
use crate::engine::job::{self, JobInput};
use crate::engine::parse::{self, ParserKind};
use crate::engine::template;

/// In the message of a step whose retry was called off because another step failed.
pub(super) const NOT_RETRIED: &str = "; not retried: step '";

/// After the parse error of an output that filled the kubelet's termination message.
const CUT_MESSAGE: &str = "; the termination message is cut at 4 KiB by the kubelet: print a larger output to the log and leave /dev/termination-log empty";

/// Longest wait between two attempts.
const MAX_BACKOFF_SECONDS: i64 = 3600;

/// The wait before attempt `failed + 1`: `base * 2^(failed-1)`, at most an hour.
pub(super) fn backoff(base: u32, failed: u32) -> i64 {
    let factor = 1_i64
        .checked_shl(failed.saturating_sub(1))
        .unwrap_or(i64::MAX);
    i64::from(base)
        .saturating_mul(factor)
        .min(MAX_BACKOFF_SECONDS)
}

impl Planner<'_> {
    /// The spec of an instance's step, from the snapshot.
    pub(super) fn step_spec(&self, iid: &InstanceId) -> Option<Step> {
        let entry = &self.pb.steps[*self.graph.index.get(iid.entry())?];
        match (&iid.block, &entry.steps) {
            (Some(_), Some(steps)) => steps.iter().find(|s| s.id == iid.step).cloned(),
            (None, None) => Some(entry.step.clone()),
            _ => None,
        }
    }

    /// The context an instance's templates see: the run's, plus its foreach item.
    pub(super) fn context_for(&self, iid: &InstanceId) -> Result<Value, String> {
        let mut ctx = self.context_over(&self.st.steps);
        if let Some(index) = iid.index {
            let entry = *self
                .graph
                .index
                .get(iid.entry())
                .ok_or_else(|| format!("step '{iid}' is not in the playbook"))?;
            self.add_item(&mut ctx, entry, index)?;
        }
        Ok(ctx)
    }

    /// The step that failed the run: the first one that failed without
    /// `continueOnError`, not counting steps only stopped because of it (their
    /// message says "not retried").
    pub(super) fn failing(&self) -> Option<usize> {
        let failed: Vec<usize> = (0..self.st.steps.len())
            .filter(|&i| {
                self.st.steps[i].state == StepState::Failed
                    && !self
                        .step_spec(&self.ids[i])
                        .is_some_and(|s| s.continue_on_error)
            })
            .collect();
        let stopped = |i: &usize| {
            self.st.steps[*i]
                .message
                .as_deref()
                .is_some_and(|m| m.contains(NOT_RETRIED))
        };
        failed
            .iter()
            .find(|i| !stopped(i))
            .or(failed.first())
            .copied()
    }

    /// A ready instance leaves Pending: skipped by `when`, waiting for approval,
    /// failed, or running.
    pub(super) fn start(&mut self, i: usize) -> bool {
        if self.failing().is_some() {
            return false;
        }
        let iid = self.ids[i].clone();
        let Some(step) = self.step_spec(&iid) else {
            self.fail_step(
                i,
                format!("step '{iid}' is not in the playbook snapshot"),
                None,
            );
            return true;
        };
        if let Some(when) = &step.when {
            let verdict = self.context_for(&iid).and_then(|ctx| {
                template::render_condition(when, &ctx)
                    .map_err(|e| format!("step '{iid}': when: {e}"))
            });
            match verdict {
                Ok(true) => {}
                Ok(false) => {
                    self.skip(i, format!("when rendered false: {when}"));
                    self.event(
                        EventType::Normal,
                        "StepSkipped",
                        format!("step '{iid}' skipped: when rendered false: {when}"),
                    );
                    return true;
                }
                Err(message) => {
                    self.fail_step(i, message, None);
                    return true;
                }
            }
        }
        let held = match self.remediation_hold(i, &step) {
            Ok(held) => held,
            Err(message) => {
                self.fail_step(i, message, None);
                return true;
            }
        };
        // Held by the remediation limit: the step's own rules if it has them, else
        // one approval by anyone but the requester.
        let held = held.then(|| Approval {
            required: true,
            ..Approval::default()
        });
        if let Some(config) = needs_approval(&step).or(held) {
            self.await_approval(i, &config);
            return true;
        }
        self.launch(i, 1, None);
        true
    }

    /// Creates attempt `attempt` of instance `i` and marks it Running.
    pub(super) fn launch(&mut self, i: usize, attempt: u32, note: Option<String>) {
        let iid = self.ids[i].clone();
        let (job, runner) = match self.job_for(&iid, attempt) {
            Ok(built) => built,
            Err(message) => return self.fail_step(i, message, None),
        };
        if !self.still_approved(i, attempt, &job, runner.as_deref()) {
            return;
        }
        let name = job.metadata.name.clone().unwrap_or_default();
        let s = &mut self.st.steps[i];
        s.state = StepState::Running;
        s.attempt = attempt;
        s.job_name = Some(name.clone());
        s.job_uid = None;
        s.started_at = Some(time(self.now));
        s.finished_at = None;
        s.exit_code = None;
        s.message = note.clone();
        // A new attempt gets its own raw output and parser, if it needs one.
        s.parser = None;
        self.record_remediation(i);
        self.create(job);
        // A step's first attempt that nothing held is no news: its status says it
        // runs, and the Event of its end names its Job. An Event per start cost the
        // API server a fifth of its CPU in an alert storm (make bench).
        if attempt == 1 && note.is_none() {
            return;
        }
        let mut message = format!("step '{iid}' started: Job {name}");
        if attempt > 1 {
            message.push_str(&format!(" (attempt {attempt})"));
        }
        if let Some(note) = note {
            message.push_str(&format!(", {note}"));
        }
        self.event(EventType::Normal, "StepStarted", message);
    }

    /// The Job of one attempt, rendered against the context as it is now, and the
    /// name of the Runner it runs on. Deterministic, so rebuilding it after a crash
    /// gives the same Job under the same name.
    pub(super) fn job_for(
        &self,
        iid: &InstanceId,
        attempt: u32,
    ) -> Result<(k8s_openapi::api::batch::v1::Job, Option<String>), String> {
        let step = self
            .step_spec(iid)
            .ok_or_else(|| format!("step '{iid}' is not in the playbook snapshot"))?;
        let ctx = self.context_for(iid)?;
        let (runner_name, runner) = self.runner_for(&step, &ctx)?;
        let rendered = job::render_step(&step, &ctx).map_err(|e| e.to_string())?;
        access::check_secrets(&step.id, &runner_name, &runner, &rendered)?;
        let input = self.job_input(iid, attempt, &rendered, &runner);
        let job = job::build_job(&input).map_err(|e| e.to_string())?;
        // The plan names the Runner it runs on; none for the built-in defaults.
        let name = self
            .input
            .runners
            .contains_key(&runner_name)
            .then_some(runner_name);
        Ok((job, name))
    }

    /// What the Job builder needs to know of one attempt of `iid`.
    pub(super) fn job_input<'b>(
        &'b self,
        iid: &'b InstanceId,
        attempt: u32,
        step: &'b job::RenderedStep,
        runner: &'b RunnerSpec,
    ) -> JobInput<'b> {
        let e = &self.input.execution;
        JobInput {
            execution: &e.name,
            namespace: &e.namespace,
            uid: &e.uid,
            playbook: &self.input.spec.playbook_ref.name,
            instance: iid,
            attempt,
            step,
            runner,
        }
    }

    /// The step's Runner and its name ([`resolve_runner`] over this run's Runners).
    pub(super) fn runner_for(
        &self,
        step: &Step,
        ctx: &Value,
    ) -> Result<(String, RunnerSpec), String> {
        resolve_runner(
            step,
            ctx,
            &self.input.runners,
            self.input.runner_access.as_ref(),
            &self.input.execution.namespace,
        )
    }

    /// The container of the current attempt has ended.
    pub(super) fn ended(
        &mut self,
        i: usize,
        step: &Step,
        t: &Terminated,
        log: &StepLog,
        memory_limit: Option<&str>,
    ) -> bool {
        let at = t.finished_at.map_or(self.now, |f| f.as_second());
        let limits = &self.input.limits;
        if t.exit_code != 0 {
            let message = match t.reason.as_deref() {
                Some("OOMKilled") => health::oom_message(t.exit_code, memory_limit),
                _ => output::exit_message(t, log, limits.message_log_bytes),
            };
            self.attempt_failed(i, message, Some(t.exit_code), at);
            return true;
        }
        let text = match t.output(log) {
            None => return false,
            Some(Err(reason)) => {
                self.attempt_failed(
                    i,
                    format!("exit code 0, but the log could not be read: {reason}"),
                    Some(0),
                    at,
                );
                return true;
            }
            Some(Ok(text)) => text,
        };
        // The marker is only known here when it is literal; a templated one is rare
        // and the parser falls back to the default marker or the whole output.
        let marker = step
            .env
            .get("SP_END_MARKER")
            .filter(|m| !m.contains("{{"))
            .map(String::as_str);
        let parsed = match &step.output_parser {
            None => parse::parse_default(text, marker),
            Some(parser) => {
                // Validate first: a typo such as `jsonn` is "unknown", not an image.
                if let Err(e) = parse::validate(parser) {
                    self.fail_step(i, format!("outputParser: {e}"), Some(0));
                    return true;
                }
                if let ParserKind::Image(image) = parse::kind(parser) {
                    self.start_parser(i, step, &image, text);
                    return true;
                }
                parse::parse_output(parser, text, marker)
            }
        };
        match parsed {
            Ok(value) => self.succeed(i, value, at, None),
            Err(e) => {
                let cut = t
                    .handed_over()
                    .filter(|m| m.len() >= TERMINATION_MESSAGE_MAX)
                    .map_or("", |_| CUT_MESSAGE);
                self.attempt_failed(i, format!("output: {e}{cut}"), Some(0), at);
            }
        }
        true
    }

    /// Instance `i` ended at `at` with exit code 0 and this parsed output: it is kept
    /// in status, or in a ConfigMap when too large (`spill`), and the step Succeeded.
    /// `note` (e.g. that the raw output was cut) is added to the step's message.
    pub(super) fn succeed(&mut self, i: usize, value: Value, at: i64, note: Option<String>) {
        let placed = self.place_output(i, value);
        let note = match (note, placed) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
        let iid = self.ids[i].clone();
        let s = &mut self.st.steps[i];
        s.state = StepState::Succeeded;
        s.exit_code = Some(0);
        s.finished_at = Some(time(at));
        // Added to what the message says already (e.g. who approved the step).
        if let Some(note) = &note {
            s.message = Some(match s.message.take() {
                Some(m) if !m.is_empty() => format!("{m}; {note}"),
                _ => note.clone(),
            });
        }
        let mut text = format!("step '{iid}' succeeded");
        if let (Some(job), Some(started)) = (&s.job_name, &s.started_at) {
            let took = at - seconds(started);
            text.push_str(&format!(" in {took}s (Job {job})"));
        }
        if let Some(note) = note {
            text.push_str(&format!("; {note}"));
        }
        self.event(EventType::Normal, "StepSucceeded", text);
    }

    /// The retry policy of instance `i`'s step and its current attempt (from 1).
    fn retries_and_attempt(&self, i: usize) -> (Retries, u32) {
        let retries = self
            .step_spec(&self.ids[i])
            .and_then(|s| s.retries)
            .unwrap_or_default();
        (retries, self.st.steps[i].attempt.max(1))
    }

    /// An attempt failed: retry after the backoff if the step allows, else fail it.
    pub(super) fn attempt_failed(
        &mut self,
        i: usize,
        message: String,
        exit_code: Option<i32>,
        at: i64,
    ) {
        let iid = self.ids[i].clone();
        let (retries, attempt) = self.retries_and_attempt(i);
        if attempt > retries.limit {
            return self.fail_step(i, message, exit_code);
        }
        let due = at + backoff(retries.backoff_seconds, attempt);
        let s = &mut self.st.steps[i];
        s.state = StepState::Retrying;
        s.exit_code = exit_code;
        // While Retrying, finishedAt is when the failed attempt ended: the backoff counts from it.
        s.finished_at = Some(time(at));
        s.message = Some(format!(
            "attempt {attempt} failed: {message}; retrying at {}",
            time(due).0
        ));
        let text = format!(
            "step '{iid}': attempt {attempt} failed: {message}; attempt {} at {}",
            attempt + 1,
            time(due).0
        );
        self.event(EventType::Warning, "StepRetrying", text);
        self.requeue_in(due - self.now);
    }

    /// Starts the next attempt of a Retrying instance once its backoff has passed.
    pub(super) fn retry_if_due(&mut self, i: usize) -> bool {
        let (retries, attempt) = self.retries_and_attempt(i);
        let ended = self.st.steps[i]
            .finished_at
            .as_ref()
            .map_or(self.now, seconds);
        let due = ended + backoff(retries.backoff_seconds, attempt);
        if self.now < due {
            self.requeue_in(due - self.now);
            return false;
        }
        self.launch(i, attempt + 1, None);
        true
    }

    /// The step failed for good (its attempts are spent, or retrying cannot help).
    pub(super) fn fail_step(&mut self, i: usize, message: String, exit_code: Option<i32>) {
        let iid = self.ids[i].clone();
        let goes_on = self.step_spec(&iid).is_some_and(|s| s.continue_on_error);
        let s = &mut self.st.steps[i];
        let message = if s.attempt > 1 {
            format!("{message} (after {} attempts)", s.attempt)
        } else {
            message
        };
        s.state = StepState::Failed;
        s.exit_code = exit_code.or(s.exit_code);
        s.finished_at = Some(time(self.now));
        s.message = Some(message.clone());
        let note = if goes_on {
            " (continueOnError: the playbook goes on)"
        } else {
            ""
        };
        self.event(
            EventType::Warning,
            "StepFailed",
            format!("step '{iid}' failed: {message}{note}"),
        );
    }

    pub(super) fn skip(&mut self, i: usize, message: String) {
        let s = &mut self.st.steps[i];
        s.state = StepState::Skipped;
        s.finished_at = Some(time(self.now));
        s.message = Some(message);
    }
}

/// A step's Runner and its name. The name may be a template (StackPulse `spd`
/// params name one); runners are looked up in the Execution's namespace only, and
/// the requester must be allowed to `use` it (`engine::access`; `None`: not checked,
/// offline). Shared with the dry run, so both resolve a Runner the same way.
pub(crate) fn resolve_runner(
    step: &Step,
    ctx: &Value,
    runners: &BTreeMap<String, RunnerSpec>,
    checked: Option<&access::RunnerAccess>,
    namespace: &str,
) -> Result<(String, RunnerSpec), String> {
    let name = match step.runner.as_deref().map(str::trim) {
        None | Some("") => access::DEFAULT_RUNNER.to_string(),
        Some(name) if name.contains("{{") => template::render(name, ctx)
            .map_err(|e| format!("step '{}': runner: {e}", step.id))?
            .trim()
            .to_string(),
        Some(name) => name.to_string(),
    };
    let runner = match runners.get(&name) {
        Some(runner) => runner.clone(),
        // No `default` Runner: the built-in defaults, still under the name's `use`.
        None if step.runner.is_none() => RunnerSpec::default(),
        None => {
            return Err(format!(
                "runner '{name}' not found in namespace {namespace}: create it or set the step's runner"
            ));
        }
    };
    if let Some(checked) = checked {
        match checked.get(&name) {
            Some(access::Verdict::Allowed) => {}
            Some(access::Verdict::Denied(why)) => {
                return Err(format!("step '{}': {why}", step.id));
            }
            None => {
                return Err(format!(
                    "step '{}': the use of Runner '{name}' was not checked: retry the run",
                    step.id
                ));
            }
        }
    }
    Ok((name, runner))
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_and_caps_at_an_hour() {
        let waits: Vec<i64> = (1..=4).map(|n| backoff(10, n)).collect();
        assert_eq!(waits, vec![10, 20, 40, 80]);
        assert_eq!(backoff(3600, 2), 3600);
        assert_eq!(backoff(1, 200), 3600);
        assert_eq!(backoff(0, 3), 0);
    }
}
