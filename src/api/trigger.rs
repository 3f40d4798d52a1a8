//! `Trigger`: which alerts start which playbook, and with what params.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::LocalRef;

/// A Trigger starts an Execution of a Playbook for every alert that matches it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "stackpulse.io",
    version = "v1",
    kind = "Trigger",
    namespaced,
    status = "TriggerStatus",
    category = "stackpulse",
    printcolumn = r#"{"name":"PLAYBOOK","type":"string","jsonPath":".spec.playbookRef.name"}"#,
    printcolumn = r#"{"name":"ENABLED","type":"boolean","jsonPath":".spec.enabled"}"#,
    printcolumn = r#"{"name":"MATCHED","type":"integer","jsonPath":".status.matched"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TriggerSpec {
    /// The Playbook to run, in the Trigger's namespace.
    pub playbook_ref: LocalRef,
    /// A disabled trigger matches nothing. Default: true.
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// Alert sources this trigger listens to. Empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<AlertSource>,
    /// Conditions on the alert's labels and status; all must hold.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<AlertMatch>,
    /// A template over the event (`.alert`, `.event`) that must render `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Params of the Execution, each a template over the event, e.g.
    /// `RedisConnectionString: '{{ .alert.labels.instance }}'`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// When true, the resolution of the alert cancels the Execution it started.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_on_resolve: bool,
    /// The Trigger's last writer as the API server authenticated them, set on every
    /// create and update (admission policy): the requester of the runs it starts, who
    /// therefore cannot approve them, and whose `use` of Runners is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// The last writer's groups, set with `requestedBy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requested_by_groups: Vec<String>,
    /// The chat channel for the runs this Trigger starts (instead of the Playbook's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<super::NotifyRef>,
}

fn enabled_default() -> bool {
    true
}

/// Where an alert came from.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlertSource {
    /// Prometheus Alertmanager webhook (version 4 payloads).
    Alertmanager,
    /// Grafana unified alerting webhook.
    Grafana,
    /// PagerDuty webhooks v3.
    Pagerduty,
    /// The documented generic JSON shape.
    Generic,
}

/// Conditions on an alert.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertMatch {
    /// Labels that must have exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Label matchers in Alertmanager style.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub matchers: Vec<LabelMatcher>,
    /// `firing` or `resolved`; unset matches both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AlertStatus>,
}

/// One label matcher: `name op value`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabelMatcher {
    /// The label name.
    pub name: String,
    /// `=`, `!=`, `=~` (the value is a regular expression, anchored), or `!~`.
    pub op: MatchOp,
    /// The value or regular expression.
    pub value: String,
}

/// How a label matcher compares.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum MatchOp {
    /// The label equals the value.
    #[default]
    #[serde(rename = "=")]
    Equal,
    /// The label differs from the value (or is absent).
    #[serde(rename = "!=")]
    NotEqual,
    /// The label matches the regular expression (anchored at both ends).
    #[serde(rename = "=~")]
    Matches,
    /// The label does not match the regular expression.
    #[serde(rename = "!~")]
    NotMatches,
}

/// Status of an alert.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The alert is active.
    Firing,
    /// The alert has ended.
    Resolved,
}

/// What the trigger has matched.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TriggerStatus {
    /// Alerts matched since the trigger was created.
    #[serde(default)]
    #[schemars(extend("format" = "int64"))]
    pub matched: u64,
    /// Executions created (duplicates of an alert already handled are not counted).
    #[serde(default)]
    #[schemars(extend("format" = "int64"))]
    pub executions_created: u64,
    /// When an alert last matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_matched_at: Option<Time>,
    /// `Ready` is False with the reason when the trigger is invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Alert-started Executions that history pruning deleted (the newest 1000): a
    /// redelivery of their alert is a duplicate, not a new run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned_alerts: Vec<PrunedAlert>,
}

/// An alert whose Execution was pruned: its redeliveries start nothing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PrunedAlert {
    /// The deleted Execution's name (`TRIGGER-HASH`, what a redelivery would create).
    pub execution: String,
    /// The alert's `startsAt`, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Time>,
    /// When the Execution was pruned.
    pub pruned_at: Time,
}
