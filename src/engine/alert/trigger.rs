//! Triggers against alerts: which Executions an alert starts, with what name,
//! labels and params, and which Executions its resolution cancels.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use regex::Regex;
use serde_json::{Map, Value};

use super::{AlertEvent, source_name};
use crate::api::{
    AlertStatus, Execution, ExecutionSpec, LabelMatcher, LocalRef, MatchOp, TriggerSpec,
};
use crate::engine::job::{dns_part, hex_hash, label_value};
use crate::engine::template;

/// Label with the name of the Trigger that created an Execution.
pub const LABEL_TRIGGER: &str = "stackpulse.io/trigger";
/// Label with the alert source (`alertmanager`, `grafana`, `pagerduty`, `generic`).
pub const LABEL_SOURCE: &str = "stackpulse.io/source";
/// Label with a hash of the alert's series (see [`AlertEvent::series`]): how a
/// resolution finds the Executions its firing started.
pub const LABEL_ALERT: &str = "stackpulse.io/alert";

/// Hex digits of the hash in an Execution name: 64 bits, so two alerts of one
/// trigger sharing a name (one of them lost as a "duplicate") stays out of reach
/// even after billions of alerts.
const NAME_HASH_DIGITS: usize = 16;

/// A Trigger ready to match: its regular expressions compiled once per request, not
/// once per alert.
#[derive(Debug, Clone)]
pub struct CompiledTrigger {
    pub namespace: String,
    pub name: String,
    pub spec: TriggerSpec,
    matchers: Vec<(LabelMatcher, Option<Regex>)>,
}

/// What one alert does with one trigger.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Not for this trigger.
    NoMatch,
    /// Create this Execution (or find it there: then it is a duplicate).
    Start(Box<Execution>),
    /// The trigger matched but its `when` or a param failed to render: the alert
    /// starts nothing, and the reason goes back to the sender and into the log.
    Error(String),
    /// Like `Error`, for a template past its budget (`template::Budget`): the
    /// caller skips this trigger for the other alerts of the request, since each
    /// would spend the budget again.
    OverBudget(String),
}

impl CompiledTrigger {
    /// Fails with what to fix when a matcher's regular expression does not compile.
    pub fn new(namespace: &str, name: &str, spec: &TriggerSpec) -> Result<Self, String> {
        let matchers = spec
            .matches
            .iter()
            .flat_map(|m| &m.matchers)
            .map(|m| {
                let re = match m.op {
                    MatchOp::Matches | MatchOp::NotMatches => Some(
                        Regex::new(&format!("^(?:{})$", m.value)).map_err(|e| {
                            format!(
                                "match.matchers: {:?} for label {:?} is not a valid regular expression: {e}",
                                m.value, m.name
                            )
                        })?,
                    ),
                    MatchOp::Equal | MatchOp::NotEqual => None,
                };
                Ok((m.clone(), re))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            spec: spec.clone(),
            matchers,
        })
    }

    /// Source, labels and matchers (not the status, not `when`): whether the alert is
    /// about what this trigger watches at all.
    pub fn selects(&self, alert: &AlertEvent) -> bool {
        if !self.spec.enabled {
            return false;
        }
        if !self.spec.sources.is_empty() && !self.spec.sources.contains(&alert.source) {
            return false;
        }
        let Some(m) = &self.spec.matches else {
            return true;
        };
        let labels_equal = m.labels.iter().all(|(k, v)| alert.labels.get(k) == Some(v));
        labels_equal
            && self.matchers.iter().all(|(m, re)| {
                // An absent label compares as "", as in Alertmanager.
                let value = alert.labels.get(&m.name).map_or("", String::as_str);
                match (m.op, re) {
                    (MatchOp::Equal, _) => value == m.value,
                    (MatchOp::NotEqual, _) => value != m.value,
                    (MatchOp::Matches, Some(re)) => re.is_match(value),
                    (MatchOp::NotMatches, Some(re)) => !re.is_match(value),
                    // `new` compiles a regex for every regex op.
                    (MatchOp::Matches | MatchOp::NotMatches, None) => false,
                }
            })
    }

    /// Everything: [`selects`](Self::selects), the status, then `when`; on a match
    /// the Execution to create, with params rendered over the alert.
    pub fn evaluate(&self, alert: &AlertEvent, requested_by: &str) -> Outcome {
        if !self.selects(alert) {
            return Outcome::NoMatch;
        }
        if let Some(want) = self.spec.matches.as_ref().and_then(|m| m.status)
            && want != alert.status
        {
            return Outcome::NoMatch;
        }
        let ctx = alert.template_context();
        if let Some(when) = &self.spec.when {
            match template::render_condition(when, &ctx) {
                Ok(true) => {}
                Ok(false) => return Outcome::NoMatch,
                Err(e) => return self.failed("when", e),
            }
        }
        let mut params = Map::new();
        for (key, src) in &self.spec.params {
            match template::render(src, &ctx) {
                Ok(v) => {
                    params.insert(key.clone(), Value::String(v));
                }
                Err(e) => return self.failed(&format!("params.{key}"), e),
            }
        }
        Outcome::Start(Box::new(self.execution(alert, params, requested_by)))
    }

    fn failed(&self, field: &str, e: template::TemplateError) -> Outcome {
        let message = format!("trigger {}/{}: {field}: {e}", self.namespace, self.name);
        match e.exceeded {
            Some(_) => Outcome::OverBudget(message),
            None => Outcome::Error(message),
        }
    }

    /// The Execution an alert starts through this trigger.
    fn execution(
        &self,
        alert: &AlertEvent,
        params: Map<String, Value>,
        requested_by: &str,
    ) -> Execution {
        let labels = BTreeMap::from([
            (LABEL_TRIGGER.to_string(), label_value(&self.name)),
            (
                LABEL_SOURCE.to_string(),
                source_name(alert.source).to_string(),
            ),
            (LABEL_ALERT.to_string(), alert_key(alert)),
        ]);
        Execution {
            metadata: ObjectMeta {
                name: Some(execution_name(&self.name, alert)),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            spec: ExecutionSpec {
                playbook_ref: self.spec.playbook_ref.clone(),
                params: (!params.is_empty()).then_some(Value::Object(params)),
                alert: Some(alert.to_json()),
                trigger_ref: Some(LocalRef {
                    name: self.name.clone(),
                }),
                requested_by: Some(requested_by.to_string()),
                ..ExecutionSpec::default()
            },
            status: None,
        }
    }

    /// For a resolved alert and a trigger with `cancelOnResolve` that selects it: the
    /// label selector of the Executions its firing started through this trigger.
    /// (Not the status and not `when`: those usually ask for `firing`.)
    pub fn cancels(&self, alert: &AlertEvent) -> Option<String> {
        (alert.status == AlertStatus::Resolved
            && self.spec.cancel_on_resolve
            && self.selects(alert))
        .then(|| {
            format!(
                "{LABEL_TRIGGER}={},{LABEL_ALERT}={}",
                label_value(&self.name),
                alert_key(alert)
            )
        })
    }
}

/// Whether a Trigger can work: its regexes compile and its templates parse (a
/// template that fails only on some alerts is reported per alert instead).
pub fn validate(spec: &TriggerSpec) -> Result<(), String> {
    CompiledTrigger::new("", "", spec)?;
    if let Some(when) = &spec.when {
        template::references(when).map_err(|e| format!("when: {e}"))?;
    }
    for (key, src) in &spec.params {
        template::references(src).map_err(|e| format!("params.{key}: {e}"))?;
    }
    Ok(())
}

/// The Execution name for an alert through a trigger: `TRIGGER-HASH`, a DNS label of
/// at most 63 characters, the hash over the trigger, the source, the alert's
/// identity and its status. A redelivery of the same notification gets the same
/// name, and the API server's name uniqueness makes it a duplicate: no lock, no
/// state, and right across operator replicas. The status is in the hash so a
/// trigger that also acts on resolutions gets a second Execution for the
/// resolution instead of a "duplicate" of the firing one.
pub fn execution_name(trigger: &str, alert: &AlertEvent) -> String {
    let hash = hex_hash(
        &[
            trigger,
            source_name(alert.source),
            &alert.identity,
            super::status_name(alert.status),
        ],
        NAME_HASH_DIGITS,
    );
    let prefix = dns_part(trigger, 63 - NAME_HASH_DIGITS - 1);
    format!("{prefix}-{hash}")
}

/// The `stackpulse.io/alert` label: a hash of the source and the alert's series.
pub fn alert_key(alert: &AlertEvent) -> String {
    hex_hash(
        &[source_name(alert.source), &alert.series],
        NAME_HASH_DIGITS,
    )
}
