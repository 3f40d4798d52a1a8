//! Chat notifications: which operator-level channel a run reports to (`notify` on a
//! Playbook or Trigger), and what was sent there (`status.notify` of an Execution).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Where a run's live message goes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotifyRef {
    /// A channel the operator's admin configured (`notify.channels` in the chart,
    /// `run --notify-config-file`) that lists this namespace.
    #[schemars(length(min = 1, max = 63))]
    pub channel: String,
}

/// What the operator sent to chat about this run. Written by the notifier only (its
/// own field manager), so the controller's status writes never reset it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotifyStatus {
    /// The channel (the Trigger's `notify`, else the Playbook's).
    pub channel: String,
    /// Slack: the message's `ts` once posted; later changes update it in place
    /// (`chat.update`), also after an operator restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_ts: Option<String>,
    /// Slack: the conversation id the message is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_channel: Option<String>,
    /// Teams and webhooks: the events already posted (`start`, `wait:STEP:HASH`, `end`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    pub sent: Vec<String>,
    /// A digest of the last message content delivered: the same content is not sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Why the last attempt failed ("could not be sent: ..."); cleared by the next delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Failed deliveries for this run so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(extend("format" = "int32"))]
    pub failures: u32,
    /// When the last message was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Time>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
