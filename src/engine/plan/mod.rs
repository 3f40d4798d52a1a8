//! The step planner: from what an Execution's status says and what the cluster
//! shows, the complete next status and the side effects that make it true.
//!
//! Pipeline: the controller observes (Execution, its Jobs summarised as
//! [`ObservedJob`], the step log of a container that just ended, the Runners), calls
//! [`plan`] (pure: `now` is an argument), then applies the [`Plan`] in this order:
//! ConfigMap creates, Job creates (409 = already mine), status (server-side apply,
//! with the new Jobs' uids: [`Plan::created`]; before the creates when it claims a
//! remediation: [`Plan::status_first`]), Job deletes, Events. `lint` and the Playbook reconciler use [`validate_graph`].
//!
//! Crash safety comes from the shape, not from care at call sites: the planner is a
//! function of status + observations, Job names are deterministic per attempt, so
//! running it again after a crash anywhere re-emits exactly what is missing (a step
//! whose Job exists but whose status does not say so yet starts again, under the
//! same Job name; a Running step whose Job was never recorded gets its CreateJob
//! again; a Job no step owns any more gets a DeleteJob again) and never a second Job
//! for one attempt.
//!
//! Decisions a reader would ask about:
//! - A failed step (without `continueOnError`) fails the run: nothing new starts,
//!   pending and waiting steps become Skipped ("not run: step 'X' failed"), a step
//!   waiting for a retry is not retried, and steps already running in other DAG
//!   branches are let finish (their outputs are kept) before the phase is Failed.
//! - Phase WaitingApproval means some step waits and none is running.
//! - A step without `runner` uses the Runner named `default` if there is one, else
//!   the built-in defaults; a step naming a Runner that does not exist fails, and so
//!   does one whose requester may not `use` the Runner or that reads a Secret the
//!   Runner does not list (`engine::access`), before any Job exists.
//! - A final Execution plans nothing, except deleting Jobs still running (so a
//!   crash between writing "Cancelled" and deleting its Jobs heals).
//! - An image parser (`parser`): when the step container ends, its log goes into a
//!   ConfigMap and a parser Job reads it; the step stays Running with
//!   `status.steps[].parser` set until that Job's log (JSON) is its output. The
//!   ConfigMap is created *before* status names it, so a crash never leaves a status
//!   that points at raw output nobody kept; the parser Job's name is deterministic,
//!   so it never runs twice. A failing parser fails the attempt like a failing
//!   built-in parser: the step's retries rerun the step, never the parser alone.

mod approval;
pub mod events;
mod expand;
mod finally;
mod gate;
mod graph;
pub mod health;
mod limit;
mod model;
mod output;
mod parser;
mod running;
mod settle;
mod spill;
mod step;

#[cfg(test)]
mod scenario;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_failures;

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value};

use crate::api::{
    ExecutionPhase, ExecutionStatus, OutputsRef, PlaybookSpec, StepState, StepStatus,
};
use crate::engine::context::{self, ExecutionMeta, InstanceId};

pub(crate) use expand::items_from;
pub(crate) use gate::needs_approval;
pub(crate) use graph::Graph;
pub use graph::{finally_problems, validate_graph};
pub use model::{
    EventType, ExecutionRef, Intent, JobFailure, Limits, MainRun, ObservedJob, Plan, PlanInput,
    StepLog, Terminated,
};
/// Sizes for people (`900 KiB`), as the planner's own messages say them.
pub(crate) use output::human as human_bytes;
pub use parser::input_sha256;
pub use spill::sha256_hex;
pub(crate) use step::resolve_runner;

/// Plans the next step of one Execution. Pure and deterministic: the same input and
/// `now` give the same plan.
pub fn plan(input: &PlanInput, now: Timestamp) -> Plan {
    let mut plan = plan_stage(input, now);
    events::bound(&input.status, &mut plan);
    plan
}

/// [`plan`] without the bound on Events: the finally stage's inner plan, whose
/// Events the outer plan bounds with the whole run in view.
fn plan_stage(input: &PlanInput, now: Timestamp) -> Plan {
    let mut planner = Planner::new(input, now);
    planner.run();
    planner.finish()
}

/// The Jobs whose log the planner is waiting for: the current Jobs of Running steps
/// (the parser Job once a step's output is being parsed by an image parser: the
/// step's own log is in a ConfigMap by then). The controller reads a Job's log
/// (once, bounded) when it is in this set and its container has terminated, and
/// passes it as [`ObservedJob::log`].
pub fn awaiting_output(status: &ExecutionStatus) -> BTreeSet<&str> {
    current_jobs(status)
}

/// The Jobs (or bare Pods) that Running steps have recorded (name and uid) but that
/// `input` does not show: created by this controller just now (its Job cache not
/// caught up yet) or deleted. The planner fails a step whose recorded Job is gone, so
/// the controller reads these from the API server before planning, and only the ones
/// the API server does not have either are missing.
pub fn recorded_unseen(input: &PlanInput) -> Vec<(&str, &str)> {
    let steps = input.status.steps.iter().chain(&input.status.finally);
    steps
        .filter(|s| s.state == StepState::Running && s.parser.is_none())
        .filter_map(|s| Some((s.job_name.as_deref()?, s.job_uid.as_deref()?)))
        .filter(|(name, _)| !input.jobs.contains_key(*name))
        .collect()
}

/// The parser-input ConfigMaps whose content the controller must read back before
/// planning: those of parser runs in status whose Job does not exist yet (the Job
/// about to be created would mount them).
pub fn parser_inputs_to_check(input: &PlanInput) -> Vec<String> {
    let runs = input.status.steps.iter().chain(&input.status.finally);
    runs.filter_map(|s| s.parser.as_ref())
        .filter(|p| p.input_sha256.is_some() && !input.jobs.contains_key(&p.job_name))
        .map(|p| p.config_map_name.clone())
        .collect()
}

/// The ConfigMaps holding spilled outputs the planner may read: those named by the
/// `outputsRef` of the steps (main and finally) of a run that is not over. The
/// controller reads each (cached: they are immutable) into [`PlanInput::spilled`].
pub fn spilled_refs(status: &ExecutionStatus) -> Vec<&OutputsRef> {
    if status.phase.is_final() {
        return Vec::new();
    }
    status
        .steps
        .iter()
        .chain(&status.finally)
        .filter_map(|s| s.outputs_ref.as_ref())
        .collect()
}

/// A Job (or bare Pod) that exists, runs and is not being deleted: deleted unless it
/// is a Running step's current attempt or parser.
pub fn left_running(job: &ObservedJob) -> bool {
    !job.deleting && job.terminated.is_none() && job.failed.is_none() && job.refused.is_none()
}

/// The Job each Running step waits for: its parser Job while parsing, else its own.
fn current_jobs(status: &ExecutionStatus) -> BTreeSet<&str> {
    let running = status
        .steps
        .iter()
        .chain(&status.finally)
        .filter(|s| s.state == StepState::Running);
    running
        .filter_map(|s| match &s.parser {
            Some(p) => Some(p.job_name.as_str()),
            None => s.job_name.as_deref(),
        })
        .collect()
}

/// The state of one planning run. Submodules add methods: `step` (one step's
/// life), `expand` (entries, blocks, loops), `settle` (phase, severity, cancel).
struct Planner<'a> {
    input: &'a PlanInput,
    /// Whole seconds: what a `metav1.Time` keeps, so what is compared is what is stored.
    now: i64,
    st: ExecutionStatus,
    /// `st.steps[i]` parsed, kept in step with it.
    ids: Vec<InstanceId>,
    pb: Rc<PlaybookSpec>,
    graph: Rc<graph::Graph>,
    params: Map<String, Value>,
    config_maps: Vec<ConfigMap>,
    /// `input.spilled` plus the outputs this plan spilled (a step that starts in the
    /// same plan reads them before the controller could).
    spilled: BTreeMap<String, Result<Arc<Value>, String>>,
    creates: Vec<Job>,
    created: BTreeSet<String>,
    events: Vec<Intent>,
    requeue: Option<i64>,
}

impl<'a> Planner<'a> {
    fn new(input: &'a PlanInput, now: Timestamp) -> Self {
        let mut planner = Self {
            input,
            now: now.as_second(),
            st: input.status.clone(),
            ids: Vec::new(),
            pb: Rc::default(),
            graph: Rc::default(),
            params: Map::new(),
            config_maps: Vec::new(),
            spilled: input.spilled.clone(),
            creates: Vec::new(),
            created: BTreeSet::new(),
            events: Vec::new(),
            requeue: None,
        };
        planner.reindex();
        planner
    }

    fn run(&mut self) {
        self.st.observed_generation = self
            .input
            .execution
            .generation
            .or(self.st.observed_generation);
        if self.st.phase.is_final() {
            return;
        }
        if self.st.main_outcome.is_some() {
            return self.run_finally();
        }
        if let Err(message) = self.spilled_readable() {
            // Like a failed step: the run fails, and its clean-up still runs.
            self.stop_unfinished("an output it needs could not be read");
            self.fail_run(message);
            return self.start_finally();
        }
        if self.input.spec.cancel {
            self.cancel();
            return self.start_finally();
        }
        if self.st.playbook.is_none() && !self.begin_run() {
            return;
        }
        let Some(pb) = self.st.playbook.clone() else {
            return;
        };
        self.pb = Rc::new(pb);
        // The snapshot was checked when the run started; checking again is cheap and
        // gives the dependency lists.
        match graph::Graph::new(&self.pb) {
            Ok(g) => self.graph = Rc::new(g),
            Err(errors) => {
                return self.fail_run(format!("invalid playbook: {}", errors.join("; ")));
            }
        }
        let meta = self.meta();
        match context::resolve_params(
            &self.pb.params,
            self.input.spec.params.as_ref(),
            &meta,
            self.input.spec.alert.as_ref(),
        ) {
            Ok(params) => self.params = params,
            Err(e) => return self.fail_run(e.to_string()),
        }
        // Each pass moves steps forward only, so this ends; the cap is a guard
        // against a bug turning into a hung controller.
        let cap = 4 * self.input.limits.max_steps + 16;
        for _ in 0..cap {
            if !self.pass() {
                break;
            }
        }
        self.severity();
        self.settle();
        self.start_finally();
    }

    /// Takes the snapshot and starts the run. False when there is nothing more to plan.
    fn begin_run(&mut self) -> bool {
        let Some(pb) = &self.input.playbook else {
            let name = &self.input.spec.playbook_ref.name;
            self.st.message = Some(format!(
                "waiting for Playbook '{name}' in namespace {}",
                self.input.execution.namespace
            ));
            self.requeue_in(10);
            return false;
        };
        self.st.playbook = Some(pb.clone());
        self.st.phase = ExecutionPhase::Running;
        self.st.started_at = Some(time(self.now));
        self.st.message = None;
        if let Err(errors) = validate_graph(pb) {
            self.fail_run(format!("invalid playbook: {}", errors.join("; ")));
            return false;
        }
        self.st.steps = expand::initial_steps(pb);
        self.reindex();
        true
    }

    /// One sweep over every step: observe, retry, approve, start what is ready.
    /// True when anything changed, so another sweep may find more to do.
    fn pass(&mut self) -> bool {
        let mut changed = false;
        for i in 0..self.st.steps.len() {
            if self.st.steps[i].state == StepState::Running {
                changed |= self.observe(i);
            }
        }
        if self.failing().is_some() {
            return self.stop_pending() || changed;
        }
        for i in 0..self.st.steps.len() {
            changed |= match self.st.steps[i].state {
                StepState::Retrying => self.retry_if_due(i),
                StepState::WaitingApproval => self.check_approval(i),
                _ => false,
            };
        }
        let graph = Rc::clone(&self.graph);
        for (e, deps) in graph.deps.iter().enumerate() {
            if deps.iter().all(|&d| self.entry_final(d)) && !self.entry_final(e) {
                changed |= self.advance_entry(e);
            }
        }
        changed
    }

    fn finish(self) -> Plan {
        // A Job that is still running but is no Running step's current attempt or
        // parser (timed out, cancelled, or left over from a crash) is deleted.
        let current = current_jobs(&self.st);
        let deletes = self
            .input
            .jobs
            .iter()
            .filter(|(name, job)| !current.contains(name.as_str()) && left_running(job));
        let deletes: Vec<Intent> = deletes
            .map(|(name, _)| Intent::DeleteJob { name: name.clone() })
            .collect();
        let mut intents: Vec<Intent> = self
            .config_maps
            .into_iter()
            .map(|c| Intent::CreateConfigMap(Box::new(c)))
            .collect();
        intents.extend(
            self.creates
                .into_iter()
                .map(|j| Intent::CreateJob(Box::new(j))),
        );
        intents.extend(deletes);
        intents.extend(self.events);
        let requeue_after = self
            .requeue
            .map(|s| Duration::from_secs(s.max(1).unsigned_abs()));
        Plan {
            status: self.st,
            intents,
            requeue_after,
        }
    }

    // ---- helpers shared by the submodules ----

    fn reindex(&mut self) {
        self.ids = self
            .st
            .steps
            .iter()
            .map(|s| InstanceId::parse(&s.id).unwrap_or_else(|| InstanceId::top(&s.id, None)))
            .collect();
    }

    fn meta(&self) -> ExecutionMeta {
        let e = &self.input.execution;
        ExecutionMeta {
            uid: e.uid.clone(),
            name: e.name.clone(),
            namespace: e.namespace.clone(),
            url: e.url.clone(),
            started_at: self.st.started_at.clone(),
            // Finally steps see how the main steps ended.
            phase: self
                .input
                .main
                .as_ref()
                .map_or(self.st.phase, |m| m.outcome.phase),
            failed_step: self
                .input
                .main
                .as_ref()
                .and_then(|m| m.outcome.failed_step.clone()),
            playbook: self.input.spec.playbook_ref.name.clone(),
        }
    }

    /// The template context over the given steps' statuses, spilled outputs
    /// included (checked readable when the plan began: [`Self::spilled_readable`]).
    fn context_over(&self, steps: &[StepStatus]) -> Value {
        let with_main: Vec<StepStatus>;
        let steps = match &self.input.main {
            Some(main) => {
                with_main = main.steps.iter().chain(steps).cloned().collect();
                &with_main
            }
            None => steps,
        };
        let with_spilled: Vec<StepStatus>;
        let steps = if steps.iter().any(|s| s.outputs_ref.is_some()) {
            with_spilled = steps.iter().map(|s| self.with_spilled(s)).collect();
            &with_spilled
        } else {
            steps
        };
        context::build(
            &self.meta(),
            &self.params,
            self.input.spec.alert.as_ref(),
            steps,
        )
    }

    /// Positions in `st.steps` of an entry's instances.
    fn instances_of(&self, entry: usize) -> Vec<usize> {
        let id = &self.pb.steps[entry].step.id;
        (0..self.ids.len())
            .filter(|&i| self.ids[i].entry() == id)
            .collect()
    }

    /// An entry is final when all its instances are (an unexpanded loop is not).
    fn entry_final(&self, entry: usize) -> bool {
        self.instances_of(entry)
            .iter()
            .all(|&i| self.st.steps[i].state.is_final())
    }

    fn event(&mut self, type_: EventType, reason: &str, message: String) {
        self.events.push(Intent::Event {
            type_,
            reason: reason.to_string(),
            message,
        });
    }

    fn requeue_in(&mut self, seconds: i64) {
        self.requeue = Some(self.requeue.map_or(seconds, |r| r.min(seconds)));
    }

    fn create_config_map(&mut self, config_map: ConfigMap) {
        self.config_maps.push(config_map);
    }

    fn create(&mut self, job: Job) {
        if let Some(name) = job.metadata.name.clone()
            && self.created.insert(name)
        {
            self.creates.push(job);
        }
    }
}

/// A whole-second `metav1.Time`.
fn time(seconds: i64) -> Time {
    Time(Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn seconds(t: &Time) -> i64 {
    t.0.as_second()
}
