//! `Playbook`: the steps of one incident-response procedure, in the canonical form.
//!
//! The StackPulse dialect (top-level `steps`, `name` as image, `output_parser`, …) is
//! turned into this form by `playbook-operator convert`; every construct it has
//! (groups, loops, typed parameters, quoted paths) has a place here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::schema;

/// A Playbook lists the steps that handle one kind of incident. Each step runs a
/// container image on a Runner; an Execution is one run of a Playbook.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "stackpulse.io",
    version = "v1",
    kind = "Playbook",
    namespaced,
    status = "PlaybookStatus",
    shortname = "pb",
    category = "stackpulse",
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.steps.all(s, self.steps.exists_one(t, t.id == s.id))").message("step ids must be unique within spec.steps: rename the duplicate"))]
pub struct PlaybookSpec {
    /// What this playbook is for, in one sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Inputs the playbook declares. Values come from the Execution's `spec.params`
    /// (or a Trigger's params); templates read them as `.params.NAME` and `.NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub params: Vec<Param>,
    /// The steps, in order. A step starts when the entries it depends on have ended
    /// (by default: the entry before it). An entry with `steps` is a block: a
    /// conditional group (`when`) or a loop (`foreach`) around those steps.
    #[schemars(length(min = 1, max = 100))]
    pub steps: Vec<PlaybookStep>,
    /// Steps that run once the main steps have ended, whatever the outcome: success,
    /// a failed or timed-out step, `spec.cancel`. They run one after another, in
    /// order, and each runs even if the one before failed (clean-up must not stop
    /// half way). Their templates see the outputs so far, `.execution.phase` (the
    /// main steps' outcome: Succeeded, Failed or Cancelled) and `.execution.failedStep`.
    /// The Execution's phase stays the main steps' outcome; a failing finally step is
    /// reported in its message and as an Event. `dependsOn` is not allowed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub finally: Vec<PlaybookStep>,
    /// A template rendered after the enrich-phase steps end that sets the Execution's
    /// severity, e.g. `{{ if gt .Clients.connected_clients 1000 }}critical{{ else }}warning{{ end }}`.
    /// A step output field named `severity` sets it too; this template wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// How many finished Executions of this playbook to keep; the controller deletes
    /// older ones (with their Jobs) when another one finishes. Unset: keep them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_limit: Option<HistoryLimit>,
    /// Blast-radius limits: how much this playbook may do before a person must agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<PlaybookLimits>,
    /// The chat channel that gets one live message per run (a Trigger's `notify` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<super::NotifyRef>,
}

/// Caps on what the runs of one playbook do together.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlaybookLimits {
    /// At most `max` runs with the same `key` may start a remediate-phase step within
    /// `perSeconds`; past that, the next run's first remediate-phase step waits for an
    /// approval (someone other than the requester), even if it would not have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediations: Option<RemediationLimit>,
}

/// A cap on remediations per key and time window, counted over the Executions of the
/// playbook in the cluster (so it holds across operator restarts and replicas).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RemediationLimit {
    /// Most runs with the same key that may remediate within the window.
    #[schemars(range(min = 1))]
    #[schemars(extend("format" = "int32"))]
    pub max: u32,
    /// The window, in seconds (3600: the last hour).
    #[schemars(range(min = 1))]
    #[schemars(extend("format" = "int64"))]
    pub per_seconds: u64,
    /// A template over the Execution naming what is counted, e.g.
    /// `{{ .alert.labels.namespace }}`: runs with different keys are counted apart.
    /// Rendered when the run's first remediate-phase step is about to start. Empty:
    /// all runs of the playbook share one count.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
}

/// How many finished Executions of one playbook to keep, newest first, per outcome.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryLimit {
    /// Succeeded Executions to keep (unset: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int32"))]
    pub succeeded: Option<u32>,
    /// Failed and Cancelled Executions to keep (unset: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int32"))]
    pub failed: Option<u32>,
}

/// A declared input of a playbook.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Param {
    /// Name of the parameter, as templates read it (`.params.NAME`, `.NAME`, `$.params.NAME`).
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z_][A-Za-z0-9_-]*$')").message("param name must start with a letter or '_' and hold only letters, digits, '_' and '-'"))]
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// Kind of value: `var` (plain text, the default), `secret` (the value names a key
    /// of the Runner's Secret, read with `{{ secret .params.NAME }}`), `integration`
    /// (the value names an integration Secret), `runner` (the value names a Runner).
    #[serde(default, rename = "type")]
    pub kind: ParamType,
    /// What the parameter means, for people running the playbook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Value used when the Execution gives none. May be a template over `.alert`,
    /// `.event` and `.execution`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// When true, an Execution without this parameter (and no default) fails at start
    /// with a message naming it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// An example value, shown by `playbook-operator describe` and the docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    /// For `integration` parameters: which kind of integration the value must name
    /// (for example `slack` or `teams`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_type: Option<String>,
}

/// Kind of a playbook parameter.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Plain text.
    #[default]
    Var,
    /// The value names a key of the Runner's Secret; it is never rendered as text.
    Secret,
    /// The value names an integration (a Secret holding its credentials).
    Integration,
    /// The value names a Runner in the Execution's namespace.
    Runner,
}

/// The phase of incident handling a step belongs to.
#[derive(
    schemars::JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Add context: environment and application data, customer impact, severity.
    #[default]
    Enrich,
    /// Rule causes out; focus on suspicious signals.
    Triage,
    /// Open war rooms, update incidents, tell on-callers and stakeholders.
    Communicate,
    /// Bring the service back. Remediation is what blast-radius limits count.
    Remediate,
}

impl Phase {
    /// The lowercase name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Enrich => "enrich",
            Phase::Triage => "triage",
            Phase::Communicate => "communicate",
            Phase::Remediate => "remediate",
        }
    }
}

/// One entry of `spec.steps`: a step (it has an `image`), or a block (it has `steps`)
/// whose `when` and `foreach` apply to the steps inside it. A step with `foreach`
/// and no `steps` is a loop around that single step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.steps) != (has(self.image) && self.image != '')").message("an entry is either a step (set image) or a block (set steps), not both and not neither"))]
pub struct PlaybookStep {
    #[serde(flatten)]
    pub step: Step,
    /// Repeat this step (or this block's steps) once per item. The item is visible to
    /// templates as `.value` (or the name given in `value`) and its index or key as
    /// `.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreach: Option<ForEach>,
    /// Makes this entry a block: these steps run in order when the block's `when`
    /// holds (and once per item of its `foreach`). Blocks do not nest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(s, self.exists_one(t, t.id == s.id))").message("step ids must be unique within a block"))]
    #[schemars(length(min = 1, max = 50))]
    pub steps: Option<Vec<Step>>,
}

/// A step: one container image run as a Kubernetes Job on a Runner.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Identifies the step: unique in the playbook, a DNS label (lowercase letters,
    /// digits, '-'). Later templates read its output as `.steps.ID.outputs` or
    /// `$.'ID'`; `dependsOn` names it; its Jobs are named after it.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("id must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"))]
    #[schemars(length(min = 1, max = 63))]
    pub id: String,
    /// The incident phase: enrich (default), triage, communicate or remediate.
    #[serde(default)]
    pub phase: Phase,
    /// Container image the step runs. Required for a step; empty for a block.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Name of the Runner (in the Execution's namespace) the step runs on. Unset: the
    /// Runner named `default` when there is one, else a plain Job with no Runner
    /// settings (the namespace's default ServiceAccount, no node selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    /// Overrides the image's entrypoint. Each item is a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments to the entrypoint. Each item is a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Environment variables; each value is a template. `{{ secret "KEY" }}` reads a
    /// key of the Runner's Secret (`{{ secret "NAME" "KEY" }}` names the Secret): the
    /// value reaches the container through a secretKeyRef, never through the spec.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Whole Secrets or integrations exposed to the step as environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFrom>,
    /// How the step's output becomes JSON. Default: `json` (the text after the line
    /// `<-- END -->`, or the whole output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_parser: Option<OutputParser>,
    /// Where the parsed output is kept. Unset: the operator's defaults
    /// (`--output-inline-bytes`, 32 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<StepOutputs>,
    /// A template that must render `true` for the step to run; `false` skips it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Ids of the entries this one waits for. Unset: the entry before it. `[]`: none,
    /// it starts with the Execution. A list makes the playbook a DAG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    /// Longest time one attempt may run; the Job gets it as activeDeadlineSeconds and
    /// the controller fails the attempt when it is over. Unset: the operator's
    /// default (`run --step-default-timeout-seconds`, 3600), kept by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<i64>,
    /// Longest time an attempt's container may take to start: its image pulling (or
    /// failing to pull), or its pod waiting for a node. Past it the attempt fails with
    /// the kubelet's or the scheduler's reason. Unset: the operator's default
    /// (`run --step-start-timeout-seconds`, 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub start_timeout_seconds: Option<i64>,
    /// Retry a failed attempt. Each attempt is its own Job, so every attempt's output is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// When true, a failure of this step is recorded and the playbook goes on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_error: bool,
    /// Ask people before this step runs ("four eyes" on critical actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// CPU and memory for the step container. Default: the Runner's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Environment variables from a whole Secret or integration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretRef) != has(self.integrationRef)").message("set exactly one of secretRef and integrationRef"))]
pub struct EnvFrom {
    /// Every key of this Secret (same namespace) becomes an environment variable.
    /// A template (e.g. `{{ .params.SlackSecret }}`) that must render a Secret name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<String>,
    /// An integration's credentials: the Secret of that name (same namespace). A
    /// template, as StackPulse writes it (`{{ $.params.SlackChannel }}`), that must
    /// render a Secret name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_ref: Option<String>,
}

/// How a step's output becomes JSON.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OutputParser {
    /// A built-in parser (`json`, `raw`, `yaml`, `kv`, `redis-info`, `regex`, `lines`,
    /// `table`) or an image reference: an image parser runs as its own Job, gets the
    /// output as a file and must print JSON.
    #[schemars(length(min = 1))]
    pub name: String,
    /// For `json` and `yaml`: a jq filter applied to the parsed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jq: Option<String>,
    /// For `regex`: the pattern; its named groups become the output fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// For `kv`: what separates key and value on a line (default `=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
}

/// Where a step's parsed output is kept.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StepOutputs {
    /// Most bytes (JSON text) of the parsed output kept inline in the Execution's
    /// status. Larger output goes to a ConfigMap owned by the Execution
    /// (`status.steps[].outputsRef`); later templates still see all of it. 0 always
    /// spills. At most 256 KiB: the whole Execution must stay well under 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 262144))]
    #[schemars(extend("format" = "int32"))]
    pub inline_bytes: Option<u32>,
}

/// Retry policy of a step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    /// How many times a failed attempt is retried (0 = never).
    #[schemars(range(min = 0, max = 10))]
    #[schemars(extend("format" = "int32"))]
    pub limit: u32,
    /// Wait before the first retry; doubled before each next one, at most one hour.
    #[serde(default)]
    #[schemars(range(min = 0, max = 3600))]
    #[schemars(extend("format" = "int32"))]
    pub backoff_seconds: u32,
}

/// Approval a step needs before it runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// When true the step waits (Execution phase WaitingApproval) until `count`
    /// people other than the Execution's requester approve the plan it shows in
    /// `status.steps[].plan` (`playbook-operator approve`).
    #[serde(default)]
    pub required: bool,
    /// How many distinct approvers are needed (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    #[schemars(extend("format" = "int32"))]
    pub count: Option<u32>,
    /// Who may approve or reject. Unset or empty: anyone but the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Approvers>,
    /// Longest wait for the approvals, from when the step began waiting; then
    /// `onTimeout` applies. Unset: wait until approved, rejected or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: Option<i64>,
    /// What a timed-out wait does: `reject` (default) fails the step and the run,
    /// `skip` skips the step and the run goes on.
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

/// Who may decide on a step: a user named in `users`, or a member of one of `groups`
/// (as the API server authenticated them). Never the run's requester.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Approvers {
    /// User names as the API server knows them (`kubectl auth whoami`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Group names as the API server knows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// What an approval wait that timed out does.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// The step fails, and so does the run (finally steps still run).
    #[default]
    Reject,
    /// The step is skipped; the run goes on.
    Skip,
}

/// Repeat a step or block once per item.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
// `items` holds untyped values, which CEL cannot see: lint and the planner check
// that exactly one source is set; the API server can still refuse the common mix-up.
#[x_kube(validation = Rule::new("!(has(self.path) && has(self.range))").message("foreach takes one of path, range and items, not several"))]
pub struct ForEach {
    /// A path to a list or map in the template context, as StackPulse writes it:
    /// `pods`, `$.get-pods.items`, `.steps.get-pods.outputs.items`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Integers from the first (inclusive) to the second (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 2))]
    pub range: Option<Vec<i64>>,
    /// A literal list of items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::any_list")]
    pub items: Option<Vec<serde_json::Value>>,
    /// Template name of the index or map key (default `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Template name of the item (default `value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A template evaluated per item; `false` skips that item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// A template evaluated after each item; `true` ends the loop.
    #[serde(default, rename = "break", skip_serializing_if = "Option::is_none")]
    pub break_when: Option<String>,
    /// Most items run at once (default 1: one after the other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 50))]
    #[schemars(extend("format" = "int32"))]
    pub parallelism: Option<u32>,
}

/// What the controller found when it last checked the playbook.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlaybookStatus {
    /// `Ready` is True when the playbook is valid; False with the first problem found
    /// (bad template, unknown step id, cycle in dependsOn, unknown runner) otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The remediations of runs that history pruning deleted while they still count
    /// toward `limits.remediations`: written before the run is deleted, dropped once
    /// older than `perSeconds` (at most `max` per key are kept, the newest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remediation_claims: Vec<RemediationClaim>,
}

/// A pruned run's remediation, still counted toward the playbook's limit.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RemediationClaim {
    /// The deleted Execution's name.
    pub execution: String,
    /// Its uid: a run listed here and still in the cluster counts once.
    pub uid: String,
    /// Its rendered `limits.remediations.key`.
    pub key: String,
    /// When it started to remediate (its `status.remediation.at`).
    pub at: Time,
}
