//! Alerts in: the payloads of the four webhook sources parsed into one
//! [`AlertEvent`] shape, their signatures checked ([`signature`]), and matched against
//! Triggers into the Executions to create ([`trigger`]).
//!
//! Pure: the webhook server (`crate::webhook`) reads the body and the headers, calls
//! these functions, and does the I/O with what they return.
//!
//! One alert is one [`AlertEvent`]: a notification about one alert at one moment.
//! Its `identity` names that notification (two deliveries of it are the same
//! Execution), its `series` names the alert across its notifications (the firing one
//! and the resolved one share it, so a resolution can cancel what the firing started).

pub mod intake;
mod parse;
pub mod signature;
pub mod trigger;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_budget;
#[cfg(test)]
mod tests_signature;
#[cfg(test)]
mod tests_trigger;

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::api::{AlertSource, AlertStatus};

pub use parse::parse;

/// One alert notification, the same for every source.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertEvent {
    pub source: AlertSource,
    pub status: AlertStatus,
    /// This notification: Alertmanager and Grafana `fingerprint@startsAt`, PagerDuty
    /// the event id, generic the `id`. With the status and the trigger it makes the
    /// Execution's name, so a redelivery is a duplicate.
    pub identity: String,
    /// The alert across notifications (firing, then resolved): Alertmanager and
    /// Grafana `fingerprint@startsAt`, PagerDuty the incident id, generic the `id`.
    pub series: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub fingerprint: Option<String>,
    /// A link back to the source (Alertmanager's `generatorURL`, PagerDuty's
    /// `html_url`).
    pub url: Option<String>,
    /// The alert as the source sent it (for Alertmanager and Grafana the alert of the
    /// group, with the group's `receiver` and `externalURL` added).
    pub raw: Value,
}

impl AlertEvent {
    /// The alert as an Execution stores it (`spec.alert`) and templates read it
    /// (`.alert`, `.event`): `source`, `id`, `status`, `labels`, `annotations`,
    /// `startsAt`, `endsAt`, `fingerprint`, `url`, and `raw` (as received).
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("source".into(), json!(source_name(self.source)));
        out.insert("id".into(), json!(self.identity));
        out.insert("status".into(), json!(status_name(self.status)));
        out.insert("labels".into(), json!(self.labels));
        out.insert("annotations".into(), json!(self.annotations));
        let optional = [
            ("startsAt", &self.starts_at),
            ("endsAt", &self.ends_at),
            ("fingerprint", &self.fingerprint),
            ("url", &self.url),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                out.insert(key.into(), json!(v));
            }
        }
        out.insert("raw".into(), self.raw.clone());
        Value::Object(out)
    }

    /// What trigger templates (`when`, `params`) render over: `.alert` and `.event`
    /// are both the alert, as in the Execution's own templates.
    pub fn template_context(&self) -> Value {
        let alert = self.to_json();
        json!({"alert": alert, "event": alert})
    }
}

/// The source's name in URLs, labels and metrics.
pub fn source_name(source: AlertSource) -> &'static str {
    match source {
        AlertSource::Alertmanager => "alertmanager",
        AlertSource::Grafana => "grafana",
        AlertSource::Pagerduty => "pagerduty",
        AlertSource::Generic => "generic",
    }
}

/// The source of a `/webhooks/{source}` path segment.
pub fn source_from_name(name: &str) -> Option<AlertSource> {
    [
        AlertSource::Alertmanager,
        AlertSource::Grafana,
        AlertSource::Pagerduty,
        AlertSource::Generic,
    ]
    .into_iter()
    .find(|s| source_name(*s) == name)
}

pub fn status_name(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::Firing => "firing",
        AlertStatus::Resolved => "resolved",
    }
}
