//! `Schedule`: starts Executions of a Playbook on a cron schedule, as a CronJob
//! starts Jobs.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{ExecutionPhase, HistoryLimit, LocalRef, schema};

/// A Schedule starts one Execution of a Playbook at every tick of its cron
/// expression. The Execution is named after the Schedule and the tick, so however
/// many operator replicas run or restart, a tick starts one run.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "stackpulse.io",
    version = "v1",
    kind = "Schedule",
    namespaced,
    status = "ScheduleStatus",
    category = "stackpulse",
    printcolumn = r#"{"name":"PLAYBOOK","type":"string","jsonPath":".spec.playbookRef.name"}"#,
    printcolumn = r#"{"name":"SCHEDULE","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"SUSPEND","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"LAST SCHEDULE","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"LAST RUN","type":"string","jsonPath":".status.lastExecution.phase"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// The Playbook to run, in the Schedule's namespace.
    pub playbook_ref: LocalRef,
    /// When to run, in the 5-field cron syntax of a CronJob (`minute hour
    /// day-of-month month day-of-week`, e.g. `*/15 * * * *`), or `@yearly`,
    /// `@monthly`, `@weekly`, `@daily` (`@midnight`) or `@hourly`.
    // What CEL can tell (fields and characters); ranges and names are checked by the
    // controller, which sets Ready=False with the parser's message.
    #[x_kube(validation = Rule::new(r"self.matches('^\\s*(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*/,?#-]+(\\s+[0-9A-Za-z*/,?#-]+){4})\\s*$')").message("spec.schedule must be 5 fields 'minute hour day-of-month month day-of-week' (e.g. '*/15 * * * *', no seconds field, no TZ= prefix: use spec.timeZone) or one of @yearly, @monthly, @weekly, @daily, @hourly"))]
    #[schemars(length(min = 1, max = 256))]
    pub schedule: String,
    /// IANA time zone the schedule is read in, e.g. `Europe/Berlin`. Unset: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub time_zone: Option<String>,
    /// Values for the playbook's params of every run, e.g. `{"Namespace": "prod"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::any_object")]
    pub params: Option<serde_json::Value>,
    /// True: no new run starts (running ones go on). Ticks passed while suspended
    /// count as missed (see `startingDeadlineSeconds`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// What a tick does while an earlier run of this Schedule has not finished:
    /// `Allow` (default) starts another, `Forbid` skips the tick, `Replace` cancels
    /// the running ones and starts the new one.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// How late a missed tick may still start (after downtime, while suspended, or
    /// while `Forbid` held it back). Unset: however late; only the most recent missed
    /// tick starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int64"), range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,
    /// How many finished runs of this Schedule to keep (default: 3 succeeded, 1
    /// failed or cancelled, as a CronJob keeps its Jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_limit: Option<HistoryLimit>,
    /// The Schedule's last writer as the API server authenticated them, set on every
    /// create and update that changes the spec (admission policy): the requester of
    /// the runs it starts, who therefore cannot approve them, and whose `use` of
    /// Runners is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// The last writer's groups, set with `requestedBy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requested_by_groups: Vec<String>,
}

/// What a tick does while an earlier run has not finished.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum ConcurrencyPolicy {
    /// Start the new run beside the running ones.
    #[default]
    Allow,
    /// Skip the tick; it may still start when the running one ends, within
    /// `startingDeadlineSeconds`.
    Forbid,
    /// Cancel the running ones (their `finally` steps run) and start the new run.
    Replace,
}

/// What the Schedule has started.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// The tick of the most recent run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// The next tick (unset while suspended or invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// The most recent run and its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_execution: Option<ScheduledRun>,
    /// Runs of this Schedule that have not finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
    /// `Ready` is False with what to fix when the schedule or time zone is invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One run a Schedule started.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledRun {
    /// The Execution's name.
    pub name: String,
    /// Its phase (unset until the controller has seen it start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ExecutionPhase>,
}
