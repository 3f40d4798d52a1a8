//! Image output parsers in the planner: a step whose `outputParser` is an image
//! stays Running after its container ended, while a parser Job turns its output
//! into JSON.
//!
//! 1. The step container ended with exit code 0 and its log was read: the log goes
//!    into a ConfigMap, a parser Job is asked for, and `status.steps[].parser` names
//!    both ([`Planner::start_parser`]). The ConfigMap intent is applied before
//!    status, so a status naming it means it exists; the raw output is never in
//!    status.
//! 2. The parser container ended: its log must be JSON, which becomes the step's
//!    output under the same budgets as a built-in parser's
//!    ([`Planner::observe_parser`]). A non-zero exit, output that is not JSON, a
//!    failed Job or a parser past its deadline fail the attempt (the step's retries
//!    rerun the step, and so the parser; the parser is never retried alone).
//!
//! A restart anywhere re-plans from status: before step 1 is in status the step log
//! is read again and the same ConfigMap asked for (409: ours); after it, the parser
//! Job is asked for again under the same name if it is not observed, so it never
//! runs twice.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{EventType, Planner, output, seconds, sha256_hex, time};
use crate::api::{ParserRun, Step};
use crate::engine::context::InstanceId;
use crate::engine::job::{self, JobInput, MAX_OUTPUT_BYTES, RenderedStep};
use crate::engine::parse;

/// What to do when an image parser fails, for the end of its messages.
const FIX: &str = "fix the parser image or use a built-in parser";

impl Planner<'_> {
    /// The step container of instance `i` ended with exit code 0 and printed `raw`;
    /// its parser is the image `image`. `finishedAt` stays unset: the step ends when
    /// its output is there.
    pub(super) fn start_parser(&mut self, i: usize, step: &Step, image: &str, raw: &str) {
        let iid = self.ids[i].clone();
        let attempt = self.st.steps[i].attempt.max(1);
        let made = self.with_parser_input(&iid, step, attempt, |input| {
            let job = job::build_parser_job(input, image).map_err(|e| e.to_string())?;
            Ok((job, job::build_output_config_map(input, raw)))
        });
        let (job, (config_map, cut)) = match made {
            Ok(made) => made,
            // The Runner went away since the step started: no attempt can run either.
            Err(message) => return self.fail_step(i, message, Some(0)),
        };
        let job_name = job.metadata.name.clone().unwrap_or_default();
        let config_map_name = config_map.metadata.name.clone().unwrap_or_default();
        let mut text = format!(
            "step '{iid}' ended; parsing its output with image parser '{image}' (Job {job_name}, input in ConfigMap {config_map_name})"
        );
        if cut {
            text.push_str(&format!("; {}", cut_note()));
        }
        let s = &mut self.st.steps[i];
        s.exit_code = Some(0);
        s.parser = Some(ParserRun {
            image: image.to_string(),
            config_map_name,
            job_name,
            started_at: Some(time(self.now)),
            input_truncated: cut,
            input_sha256: Some(input_sha256(&config_map)),
        });
        self.create_config_map(config_map);
        self.create(job);
        self.requeue_in(job::parser_deadline(step.timeout_seconds));
        self.event(EventType::Normal, "ParsingOutput", text);
    }

    /// Looks at the parser Job of a Running instance whose output is being parsed.
    pub(super) fn observe_parser(&mut self, i: usize, step: &Step) -> bool {
        let Some(run) = self.st.steps[i].parser.clone() else {
            return false;
        };
        let what = format!("output parser image '{}'", run.image);
        let job = self.input.jobs.get(&run.job_name);
        if let Some(t) = job.and_then(|j| j.terminated.as_ref()) {
            let at = t.finished_at.map_or(self.now, |f| f.as_second());
            let log = job.map(|j| j.log.clone()).unwrap_or_default();
            if t.exit_code != 0 {
                let limit = self.input.limits.message_log_bytes;
                let exit = output::exit_message(t, &log, limit);
                let message = format!("{what} failed: {exit}; {FIX}");
                self.attempt_failed(i, message, Some(0), at);
                return true;
            }
            let text = match t.output(&log) {
                None => return false,
                Some(Err(reason)) => {
                    let message =
                        format!("{what} exited 0, but its log could not be read: {reason}");
                    self.attempt_failed(i, message, Some(0), at);
                    return true;
                }
                Some(Ok(text)) => text,
            };
            match parse::parse_image_output(&run.image, text) {
                Ok(value) => self.succeed(i, value, at, run.input_truncated.then(cut_note)),
                Err(e) => self.attempt_failed(i, format!("output: {e}"), Some(0), at),
            }
            return true;
        }
        let deadline = job::parser_deadline(step.timeout_seconds);
        let late =
            format!("{what} did not finish within {deadline}s (a parser reads one file); {FIX}");
        if let Some(f) = job.and_then(|j| j.failed.as_ref()) {
            let message = match f.reason.as_str() {
                "DeadlineExceeded" => late,
                _ => format!(
                    "{what}: Job {} failed: {}: {}; {FIX}",
                    run.job_name, f.reason, f.message
                ),
            };
            self.attempt_failed(i, message, Some(0), self.now);
            return true;
        }
        let started = run.started_at.as_ref().map_or(self.now, seconds);
        if self.now - started >= deadline {
            self.attempt_failed(i, late, Some(0), self.now);
            return true;
        }
        self.requeue_in(started + deadline - self.now);
        if job.is_none() {
            // Status names the parser but its Job is not there: the controller stopped
            // between writing status and creating it (the ConfigMap was created before
            // status), or found a ConfigMap of that name that was not its own. The
            // input must be what this attempt wrote, else the parser is not fed.
            if let Some(problem) = input_problem(&run, &self.input.parser_inputs) {
                self.attempt_failed(i, problem, Some(0), self.now);
                return true;
            }
            let iid = self.ids[i].clone();
            let attempt = self.st.steps[i].attempt.max(1);
            let made = self.with_parser_input(&iid, step, attempt, |input| {
                job::build_parser_job(input, &run.image).map_err(|e| e.to_string())
            });
            match made {
                Ok(job) => self.create(job),
                Err(message) => {
                    self.fail_step(i, message, Some(0));
                    return true;
                }
            }
        }
        false
    }

    /// Calls `f` with the [`JobInput`] of instance `iid`'s attempt as its parser Job
    /// needs it: the step's Runner, and of the step only its timeout (the parser runs
    /// nothing else of the step; `job::build_parser_job`).
    fn with_parser_input<R>(
        &self,
        iid: &InstanceId,
        step: &Step,
        attempt: u32,
        f: impl FnOnce(&JobInput) -> Result<R, String>,
    ) -> Result<R, String> {
        let ctx = self.context_for(iid)?;
        let (_, runner) = self.runner_for(step, &ctx)?;
        let rendered = RenderedStep {
            timeout_seconds: step.timeout_seconds,
            ..Default::default()
        };
        f(&self.job_input(iid, attempt, &rendered, &runner))
    }
}

/// SHA-256 (hex) of a raw-output ConfigMap's input (key `output`): what status
/// records, and what the controller compares when it reads the ConfigMap back.
pub fn input_sha256(config_map: &ConfigMap) -> String {
    let data = config_map
        .data
        .as_ref()
        .and_then(|d| d.get(job::OUTPUT_KEY));
    sha256_hex(data.map_or("", String::as_str))
}

/// Why parser run `run` must not be fed its ConfigMap: `read` holds the SHA-256 of
/// the ConfigMaps read back by name (`None`: not there). `None` when it is the
/// attempt's own input, or was not read (nothing to compare with).
pub fn input_problem(run: &ParserRun, read: &BTreeMap<String, Option<String>>) -> Option<String> {
    let want = run.input_sha256.as_deref()?;
    let found = read.get(&run.config_map_name)?;
    match found.as_deref() {
        Some(got) if got == want => None,
        Some(got) => Some(format!(
            "the parser's input ConfigMap {} does not hold this step's output (sha256 {got}, the step's is {want}): something other than the operator made or replaced it, so the parser is not run on it; delete it and find who writes it (retries run the step again)",
            run.config_map_name
        )),
        None => Some(format!(
            "the parser's input ConfigMap {} was deleted before its parser ran; retries run the step again",
            run.config_map_name
        )),
    }
}

/// The note on a step whose raw output did not fit a ConfigMap.
fn cut_note() -> String {
    format!(
        "the raw output was cut to its first {MAX_OUTPUT_BYTES} bytes before parsing (a ConfigMap holds at most 1 MiB): print less, or parse in the step"
    )
}

#[cfg(test)]
mod tests;
