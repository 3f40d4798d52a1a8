//! What the planner reads ([`PlanInput`]: the Execution, what the cluster shows of
//! its Jobs, the Runners, the limits) and what it returns ([`Plan`]: the new status
//! and the [`Intent`]s that make it true). Plain data: the planner's decisions are
//! in the sibling modules.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::health;
use crate::api::{
    ExecutionSpec, ExecutionStatus, MainOutcome, PlaybookSpec, RunnerSpec, StepState, StepStatus,
};
use crate::engine::access::RunnerAccess;
use crate::engine::limits::Claim;

/// The Execution being planned, as its metadata says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecutionRef {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub generation: Option<i64>,
    /// Link to the run in a UI, when one is configured (`.execution.url`).
    pub url: Option<String>,
}

/// Everything the planner may know. The controller fills it from its caches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanInput {
    pub execution: ExecutionRef,
    pub spec: ExecutionSpec,
    /// The current status (`Default` for a new Execution).
    pub status: ExecutionStatus,
    /// The live Playbook's spec. Read only while `status.playbook` is empty: it becomes
    /// the snapshot the run executes, whatever later edits do.
    pub playbook: Option<PlaybookSpec>,
    /// The step and parser Jobs of this Execution (and only those), by name.
    pub jobs: BTreeMap<String, ObservedJob>,
    /// The Runners of the Execution's namespace, by name.
    pub runners: BTreeMap<String, RunnerSpec>,
    /// Whether the run's requester may `use` each Runner it may reach
    /// ([`crate::engine::access::runners_to_check`]); a Runner missing from it is denied. `None`
    /// checks nothing: offline rendering, where no API server can answer.
    pub runner_access: Option<RunnerAccess>,
    pub limits: Limits,
    /// Set only for planning a run's `finally` steps (see the `finally` module).
    pub main: Option<MainRun>,
    /// The outputs of steps whose `outputsRef` names a ConfigMap, by ConfigMap name,
    /// as the controller read them (see [`spilled_refs`](super::spilled_refs)); `Err` says why one could
    /// not be read, which fails the run rather than render an empty value.
    pub spilled: BTreeMap<String, Result<Arc<Value>, String>>,
    /// The remediations recorded by the runs of this Execution's Playbook (its own
    /// may be among them): what `limits.remediations` counts. Filled by the
    /// controller only while this run may still claim one.
    pub remediations: Vec<Claim>,
    /// The SHA-256 of the input in each parser-input ConfigMap the controller read
    /// back (`None`: none there), by name: for the parser runs in status whose Job
    /// is not there yet (see [`parser_inputs_to_check`](super::parser_inputs_to_check)).
    pub parser_inputs: BTreeMap<String, Option<String>>,
}

/// How the main steps of a run ended, and their statuses (finally steps' templates
/// see their outputs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MainRun {
    pub outcome: MainOutcome,
    pub steps: Vec<StepStatus>,
}

/// What the controller saw of one step (or parser) Job and its pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedJob {
    /// The Job's container (the step's, named after it, or its parser's) has
    /// terminated (from the pod watch; do not wait for the Job).
    pub terminated: Option<Terminated>,
    /// The Job failed without the container reporting an end (e.g. `DeadlineExceeded`,
    /// the pod was evicted or never started).
    pub failed: Option<JobFailure>,
    /// The Job has a deletionTimestamp: do not ask to delete it again.
    pub deleting: bool,
    /// The Job's uid (`None`: not a Job the cluster has, see `refused`).
    pub uid: Option<String>,
    /// What the step's pod shows while its container has not ended (`None`: no pod).
    pub pod: Option<health::PodFacts>,
    /// The step container's memory limit as the Job asks for it (`64Mi`), for the
    /// message of a container killed at it.
    pub memory_limit: Option<String>,
    /// The API server refused to create this Job, for good (a 4xx other than 409
    /// and 429): its reason. Such a Job does not exist; the step fails.
    pub refused: Option<String>,
    /// The container log. Read it (bounded, `limitBytes`) when `terminated` is set,
    /// handed nothing over ([`Terminated::handed_over`]), and the status still shows
    /// this Job as a Running step's; the planner waits until it is `Read` or
    /// `Unreadable`.
    pub log: StepLog,
}

/// How the step container ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Terminated {
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, …
    pub reason: Option<String>,
    /// The termination message (with `FallbackToLogsOnError`, the log's last lines).
    pub message: Option<String>,
    pub finished_at: Option<Timestamp>,
}

/// Most bytes of a termination message the kubelet keeps (`k8s.io/api/core/v1`):
/// a longer one is cut there, so it cannot be parsed whole.
pub const TERMINATION_MESSAGE_MAX: usize = 4096;

impl Terminated {
    /// The text the container handed over in its termination message, if any: its
    /// output when it exited 0 (it wrote `/dev/termination-log`: with
    /// `FallbackToLogsOnError` the kubelet fills in the log's end only on failure),
    /// its failure's detail otherwise. Either way its log need not be read.
    pub fn handed_over(&self) -> Option<&str> {
        self.message.as_deref().filter(|m| !m.trim().is_empty())
    }

    /// The text a container that exited 0 gave as its output: what it
    /// [handed over](Self::handed_over), else its log. `None` while the log is not
    /// read yet; `Err` with the reason when it cannot be read.
    pub fn output<'a>(&'a self, log: &'a StepLog) -> Option<Result<&'a str, &'a str>> {
        match (self.handed_over(), log) {
            (Some(message), _) => Some(Ok(message)),
            (None, StepLog::NotRead) => None,
            (None, StepLog::Unreadable(reason)) => Some(Err(reason)),
            (None, StepLog::Read(text)) => Some(Ok(text)),
        }
    }
}

/// A Job-level failure (a `Failed` condition).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFailure {
    pub reason: String,
    pub message: String,
}

/// The log of an ended step container, as far as the controller got.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StepLog {
    /// Not read yet.
    #[default]
    NotRead,
    Read(String),
    /// Reading failed for good (pod gone, …): the attempt fails with this reason.
    Unreadable(String),
}

/// Bounds on what a run writes into its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of one step's parsed output kept inline in status (JSON text), unless
    /// the step sets `outputs.inlineBytes`; larger output goes to a ConfigMap.
    pub step_output_bytes: usize,
    /// Outputs are inline only while the Execution's spec and status stay under this;
    /// past it even small ones go to ConfigMaps.
    pub object_bytes: usize,
    /// The hard cap: most bytes of one step's parsed output kept at all; past it the
    /// output is cut at a JSON boundary and marked.
    pub max_output_bytes: usize,
    /// Most bytes of a failed container's log tail quoted in its step message.
    pub message_log_bytes: usize,
    /// Most step entries a run may expand to (foreach items × steps).
    pub max_steps: usize,
    /// The timeout of a step attempt that sets no `timeoutSeconds` (0: none).
    pub default_timeout_seconds: i64,
    /// How long an attempt's container may take to start when the step sets no
    /// `startTimeoutSeconds` (see [`health`]).
    pub start_timeout_seconds: i64,
}

impl Default for Limits {
    /// 32 KiB inline per step (8× Tekton's 4 KiB result, enough for a parsed `INFO`
    /// or a pod list); inline only while spec + status are under 512 KiB, half of the
    /// 1 MiB an Execution is kept under, because server-side apply's managedFields list
    /// every field of an inline output again; 900 KiB per step at most (a ConfigMap
    /// holds 1 MiB with its metadata); 512 bytes of log in a message; 1000 step entries.
    /// An hour per attempt, so nothing runs forever, and 5 minutes to start: a slow
    /// registry pulls a large image in that, a missing image never.
    fn default() -> Self {
        Self {
            step_output_bytes: 32 * 1024,
            object_bytes: 512 * 1024,
            max_output_bytes: 900 * 1024,
            message_log_bytes: 512,
            max_steps: 1000,
            default_timeout_seconds: 3600,
            start_timeout_seconds: 300,
        }
    }
}

/// What to do next: the ConfigMaps first, then the Jobs and `status` in the order
/// [`Plan::status_first`] says, then the other intents in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The complete new status.
    pub status: ExecutionStatus,
    /// ConfigMap creates first, then Job creates, then deletes, then events.
    pub intents: Vec<Intent>,
    /// Plan again after this long even if nothing changes (a retry's backoff, a
    /// timeout, a Playbook that does not exist yet).
    pub requeue_after: Option<Duration>,
}

impl Plan {
    /// Whether `status` must be written before the Jobs are created, planned from
    /// `current`: only when it claims a remediation (`limit`), which the other runs
    /// must be able to count before the step runs. Otherwise the Jobs go first and the
    /// status that says their steps run also records their uids ([`Plan::created`]):
    /// one write per hand-off instead of two, and no status ever says a step runs
    /// whose Job might not exist, so a Job missing under a recorded uid was deleted.
    pub fn status_first(&self, current: &ExecutionStatus) -> bool {
        let claimed = |s: &ExecutionStatus| s.remediation.as_ref().is_some_and(|r| r.at.is_some());
        claimed(&self.status) && !claimed(current)
    }

    /// The Job `name` of a Running attempt exists with `uid`: recorded in the
    /// attempt's status (`job_uid`), as the planner records a Job it sees.
    pub fn created(&mut self, name: &str, uid: &str) {
        let steps = self.status.steps.iter_mut().chain(&mut self.status.finally);
        for s in steps.filter(|s| s.state == StepState::Running) {
            if s.job_name.as_deref() == Some(name) && s.job_uid.is_none() {
                s.job_uid = Some(uid.to_string());
            }
        }
    }
}

/// One side effect for the controller.
#[derive(Clone, Debug, PartialEq)]
pub enum Intent {
    /// Create this ConfigMap (a step attempt's raw output) *before* writing status,
    /// which refers to it; AlreadyExists means an earlier plan created it: fine.
    CreateConfigMap(Box<ConfigMap>),
    /// Create this Job; AlreadyExists means an earlier plan created it: fine.
    CreateJob(Box<Job>),
    /// Delete this Job (foreground or background; NotFound is fine).
    DeleteJob { name: String },
    /// Record a Kubernetes Event on the Execution: one per real transition.
    Event {
        type_: EventType,
        reason: String,
        message: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}
