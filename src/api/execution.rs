//! `Execution`: one run of one Playbook, and everything observed while it ran.

use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{LocalRef, Phase, PlaybookSpec, schema};

/// One run of a Playbook: created by `kubectl apply`, `playbook-operator run`, or an
/// alert through a Trigger. The controller runs its steps as Jobs and records their
/// outputs in status.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "stackpulse.io",
    version = "v1",
    kind = "Execution",
    namespaced,
    status = "ExecutionStatus",
    shortname = "pbx",
    category = "stackpulse",
    printcolumn = r#"{"name":"PLAYBOOK","type":"string","jsonPath":".spec.playbookRef.name"}"#,
    printcolumn = r#"{"name":"PHASE","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"STEP","type":"string","jsonPath":".status.currentStep"}"#,
    printcolumn = r#"{"name":"SEVERITY","type":"string","jsonPath":".status.severity"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
// What runs, for whom, and how long it is kept are fixed at create: an approver may
// patch the Execution (to append an approval), and must not be able to change the
// request they approve. Only `approvals` and `cancel` stay writable.
#[x_kube(validation = Rule::new("has(self.params) == has(oldSelf.params) && (!has(self.params) || self.params == oldSelf.params)").message("spec.params cannot be set, changed or removed after create: create a new Execution").field_path(".params").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("has(self.alert) == has(oldSelf.alert) && (!has(self.alert) || self.alert == oldSelf.alert)").message("spec.alert cannot be set, changed or removed after create: create a new Execution").field_path(".alert").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("has(self.triggerRef) == has(oldSelf.triggerRef) && (!has(self.triggerRef) || self.triggerRef == oldSelf.triggerRef)").message("spec.triggerRef cannot be set, changed or removed after create: create a new Execution").field_path(".triggerRef").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("has(self.scheduleRef) == has(oldSelf.scheduleRef) && (!has(self.scheduleRef) || self.scheduleRef == oldSelf.scheduleRef)").message("spec.scheduleRef cannot be set, changed or removed after create: create a new Execution").field_path(".scheduleRef").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("has(self.requestedBy) == has(oldSelf.requestedBy) && (!has(self.requestedBy) || self.requestedBy == oldSelf.requestedBy)").message("spec.requestedBy cannot be set, changed or removed after create: create a new Execution").field_path(".requestedBy").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("self.?dryRun.orValue(false) == oldSelf.?dryRun.orValue(false)").message("spec.dryRun cannot change after create: create a new Execution").field_path(".dryRun").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("has(self.ttlSecondsAfterFinished) == has(oldSelf.ttlSecondsAfterFinished) && (!has(self.ttlSecondsAfterFinished) || self.ttlSecondsAfterFinished == oldSelf.ttlSecondsAfterFinished)").message("spec.ttlSecondsAfterFinished cannot be set, changed or removed after create: create a new Execution").field_path(".ttlSecondsAfterFinished").reason(Reason::FieldValueForbidden))]
pub struct ExecutionSpec {
    /// The Playbook to run, in the Execution's namespace. Its spec is copied into
    /// status when the run starts; later edits of the Playbook do not change this run.
    #[x_kube(validation = Rule::new("self == oldSelf").message("playbookRef cannot change: create a new Execution"))]
    pub playbook_ref: LocalRef,
    /// Values for the playbook's params, e.g. `{"Namespace": "prod"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::any_object")]
    pub params: Option<serde_json::Value>,
    /// The alert that started this run, as the webhook received it; templates read it
    /// as `.alert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::any_object")]
    pub alert: Option<serde_json::Value>,
    /// The Trigger that created this run, when an alert did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_ref: Option<LocalRef>,
    /// The Schedule that created this run, when a tick did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_ref: Option<LocalRef>,
    /// Who asked for this run: the creator's user name as the API server knows it.
    /// Filled in when left out; a create naming someone else is rejected, and it
    /// cannot change (crds/admission-policies.yaml). This user cannot approve the run's steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// The requester's groups as the API server authenticated them, filled in with
    /// `requestedBy` (admission policy): what the Runner `use` check is asked with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requested_by_groups: Vec<String>,
    /// Approvals of steps that require one (`playbook-operator approve EXECUTION STEP`).
    /// Append-only, and each new entry's user must be its writer (admission policy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub approvals: Vec<ApprovalRecord>,
    /// Set to true to stop the run: running Jobs are deleted and the phase becomes Cancelled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel: bool,
    /// Seconds to keep this Execution after it finished; then the controller deletes
    /// it (and its Jobs). Unset: kept until deleted or pruned by the Playbook's
    /// `historyLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int32"))]
    pub ttl_seconds_after_finished: Option<u32>,
    /// Render the steps instead of running them: `status.dryRun` lists each step in
    /// order with its plan and hash and whether its `when` lets it run, and the run
    /// ends in phase DryRun. No Job or Pod, no approval wait, no remediation count,
    /// no chat message; `report` leaves it out. Cannot change after create.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// One person's decision on one step: an approval of the plan it shows, or a rejection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.?decision.orValue('approve') != 'reject' || self.?reason.orValue('') != ''").message("a rejection needs a reason: set reason (playbook-operator reject --reason)"))]
pub struct ApprovalRecord {
    /// Id of the step decided on (`status.steps[].id`, e.g. `restart` or `restart[2]`).
    pub step: String,
    /// Who decided: the API server's authenticated user name (checked by admission).
    pub user: String,
    /// The writer's groups as the API server authenticated them: filled in by the
    /// admission policy when left out, refused when different. `approval.approvers.groups`
    /// is checked against these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// `approve` (default) or `reject`. A rejection ends the wait: the step fails.
    #[serde(default)]
    pub decision: Decision,
    /// Why (required for a rejection); shown in the step's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The `status.steps[].plan.hash` approved: an approval counts only for exactly
    /// that rendered Job (`playbook-operator approve` fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
    /// When the decision was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
}

/// An approver's decision.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Run the step as its plan shows.
    #[default]
    Approve,
    /// Do not run it: the step fails with the reason.
    Reject,
}

/// How the main steps of a run ended (before its `finally` steps).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MainOutcome {
    /// Succeeded, Failed or Cancelled.
    pub phase: ExecutionPhase,
    /// What the main steps' end said (the Execution's message at that moment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The step that failed the run, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
}

/// Phase of a whole Execution.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum ExecutionPhase {
    /// Accepted, no step started yet.
    #[default]
    Pending,
    /// At least one step is running or about to.
    Running,
    /// A step waits for someone to approve it.
    WaitingApproval,
    /// Every step that ran succeeded (or failed with continueOnError).
    Succeeded,
    /// A step failed, or the run could not start (see status.message).
    Failed,
    /// Stopped by `spec.cancel`.
    Cancelled,
    /// A dry run (`spec.dryRun`) rendered its steps into `status.dryRun`; nothing ran.
    DryRun,
}

impl ExecutionPhase {
    /// True for Succeeded, Failed, Cancelled and DryRun: nothing changes any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::DryRun
        )
    }
}

/// What the controller observed and decided for one Execution.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStatus {
    /// Pending, Running, WaitingApproval, Succeeded, Failed, Cancelled or DryRun.
    #[serde(default)]
    pub phase: ExecutionPhase,
    /// Why the run is in this phase, for a person (e.g. the failing step's message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Severity set by the playbook's `severity` template or a step output `severity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Id of the step running or waiting now (the STEP column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    /// When the first step was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the run reached its final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// The playbook spec this run executes, copied at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::any_object")]
    pub playbook: Option<PlaybookSpec>,
    /// One entry per step run (per attempt-series and per foreach item).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepStatus>,
    /// How the main steps ended, recorded when the playbook's `finally` steps start;
    /// the Execution takes this phase once they are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_outcome: Option<MainOutcome>,
    /// The playbook's `finally` steps, once the main steps have ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finally: Vec<StepStatus>,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The run's use of the playbook's `limits.remediations`: set when its first
    /// remediate-phase step is about to start (or is held by the limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<RemediationRecord>,
    /// A dry run's steps, in the order they would run (`spec.dryRun`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<super::DryRunStep>,
    /// What the chat notifier sent about this run (written by it alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<super::NotifyStatus>,
}

/// How one run counts toward its playbook's remediation limit.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RemediationRecord {
    /// The rendered `limits.remediations.key`.
    pub key: String,
    /// When the first remediate-phase step started: from then on this run counts
    /// toward the limit. Written before that step's Job is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Time>,
    /// Why the limit held the run for an approval, when it did (kept once approved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

/// State of one step.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum StepState {
    /// Not started: waiting for the steps it depends on.
    #[default]
    Pending,
    /// Its Job exists and the container has not ended, or (with `parser` set) an
    /// image parser Job is turning its output into JSON.
    Running,
    /// Waiting for a retry's backoff to pass.
    Retrying,
    /// Waiting for an approval.
    WaitingApproval,
    /// The container exited 0 and the output parsed.
    Succeeded,
    /// The last attempt failed (see message and exitCode).
    Failed,
    /// Not run: its `when` rendered false, or it was in a skipped block.
    Skipped,
    /// Stopped by `spec.cancel`.
    Cancelled,
}

impl StepState {
    /// True when the step will not change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }
}

/// What happened to one step (one foreach item of it, when in a loop).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus {
    /// The step's id; for a foreach item `ID[INDEX]`.
    pub id: String,
    /// The step's incident phase.
    #[serde(default)]
    pub phase: Phase,
    /// Pending, Running, Retrying, WaitingApproval, Succeeded, Failed, Skipped or Cancelled.
    #[serde(default)]
    pub state: StepState,
    /// Attempt number, from 1.
    #[serde(default)]
    #[schemars(extend("format" = "int32"))]
    pub attempt: u32,
    /// The Job of the current attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// The uid of that Job, once the controller saw it. A Job that disappears (or is
    /// replaced) while the step runs fails the attempt; it is never created again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_uid: Option<String>,
    /// When the current attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the step ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// When the step began waiting for an approval; kept once approved, so that
    /// `startedAt - waitingSince` is how long people took (`playbook-operator report`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<Time>,
    /// Exit code of the step container's last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the step is in this state (skip reason, failure, parse error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The parsed output (bounded; see `outputsTruncated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::any_object")]
    pub outputs: Option<serde_json::Value>,
    /// True when the output was larger than the hard cap (`--output-max-bytes`) and
    /// was cut at a valid JSON boundary; its `_truncated` field says what was dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outputs_truncated: bool,
    /// Where the parsed output is when it was too large for status (`outputs` is then
    /// unset): a ConfigMap owned by the Execution. Later templates see all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs_ref: Option<OutputsRef>,
    /// For a step that needs an approval: the Job it will run (or ran), rendered, and
    /// its hash, which approvals name. Once approved, every later attempt (a retry, a
    /// Job re-created after a restart) must render the same hash or wait again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Boxed: a rendered pod is ~2 KiB of struct even when unset, per step, in every
    // Execution the operator caches.
    pub plan: Option<Box<StepPlan>>,
    /// The image parser run of the current attempt, when the step's `outputParser` is
    /// an image: set once the step container ended, kept after the step ends so the
    /// raw output can be found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parser: Option<ParserRun>,
}

/// A step's parsed output kept in a ConfigMap instead of status.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OutputsRef {
    /// The ConfigMap (immutable, owned by the Execution, same namespace).
    pub config_map_name: String,
    /// Its key holding the output as JSON text.
    pub key: String,
    /// Bytes of JSON stored.
    #[schemars(extend("format" = "int64"))]
    pub bytes: u64,
    /// Bytes of JSON the step's parsed output had before it was cut to the hard cap
    /// (equal to `bytes` when nothing was cut).
    #[schemars(extend("format" = "int64"))]
    pub original_bytes: u64,
    /// Hex SHA-256 of the stored JSON: the controller checks what it reads back.
    pub sha256: String,
}

/// An image parser run: the step's raw output in a ConfigMap, read by a parser Job.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ParserRun {
    /// The parser image (`outputParser.name`).
    pub image: String,
    /// The ConfigMap (owned by the Execution) holding the step's raw output under key
    /// `output`: the parser's input.
    pub config_map_name: String,
    /// The parser Job. Its log must be JSON: that is the step's output.
    pub job_name: String,
    /// When the parser Job was asked for; its deadline counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// True when the raw output was longer than a ConfigMap holds and was cut (its end
    /// is missing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub input_truncated: bool,
    /// SHA-256 (hex) of the input written into the ConfigMap. A ConfigMap of that
    /// name holding anything else (made or replaced by someone else) fails the
    /// attempt instead of feeding the parser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_sha256: Option<String>,
}

/// Exactly what a step's Job runs and with which rights, as the Job builder renders
/// it: what people approve. Secrets appear only as references (Secret name and key).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepPlan {
    /// SHA-256 (hex prefix) of every other field of this plan: an approval's
    /// `planHash` must equal it.
    pub hash: String,
    /// The Runner the step runs on (unset: none, the built-in defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    /// The container image.
    pub image: String,
    /// The container's command (unset: the image's entrypoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The container's args, rendered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The container's env, rendered, in the Job's order (secret references first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// The Job's whole pod template as built, without the `stackpulse.io/attempt`
    /// label (the one part that differs between attempts): service account, `envFrom`,
    /// security contexts, placement, resources, volumes, image pull secrets, the
    /// Runner's pod labels and annotations. Image, command, args and env above are its
    /// step container's, repeated for reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::any_object")]
    pub pod: Option<PodTemplateSpec>,
}
