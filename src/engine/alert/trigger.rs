//! Triggers against alerts: which Executions an alert starts, with what name,
//! labels and params, and which Executions its resolution cancels.

use std::collections::{BTreeMap, BTreeSet};

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
    /// The alert label that must name this Trigger's namespace ([`Tenancy`]); `None`:
    /// every alert may reach it.
    tenant_label: Option<String>,
}

/// Which alerts a namespace's Triggers may see (`--webhook-tenant-label`,
/// `--webhook-admin-namespaces`). Off by default: one tenant, every Trigger sees
/// every alert. On, a Trigger in namespace N sees only alerts whose tenant label is
/// N (an alert without the label reaches no tenant), unless N is an admin namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tenancy {
    /// The alert label that carries the namespace, e.g. `namespace`.
    pub label: Option<String>,
    /// Namespaces whose Triggers see every alert.
    pub admin_namespaces: BTreeSet<String>,
}

impl Tenancy {
    /// The label a Trigger in `namespace` must find naming it, if any.
    fn label_for(&self, namespace: &str) -> Option<String> {
        self.label
            .clone()
            .filter(|_| !self.admin_namespaces.contains(namespace))
    }
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
            tenant_label: None,
        })
    }

    /// The same trigger, seeing only the alerts `tenancy` gives its namespace.
    pub fn with_tenancy(mut self, tenancy: &Tenancy) -> Self {
        self.tenant_label = tenancy.label_for(&self.namespace);
        self
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
        if let Some(label) = &self.tenant_label
            && alert.labels.get(label) != Some(&self.namespace)
        {
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
    /// the Execution to create, with params rendered over the alert. The run acts for
    /// the Trigger's recorded writer (`spec.requestedBy`), or for `operator` when
    /// none is recorded (a Trigger written without the admission policies).
    pub fn evaluate(&self, alert: &AlertEvent, operator: &str) -> Outcome {
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
        Outcome::Start(Box::new(self.execution(alert, params, operator)))
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
        operator: &str,
    ) -> Execution {
        let (requested_by, requested_by_groups) =
            match self.spec.requested_by.as_deref().map(str::trim) {
                Some(writer) if !writer.is_empty() => {
                    (writer.to_string(), self.spec.requested_by_groups.clone())
                }
                _ => (operator.to_string(), Vec::new()),
            };
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
                requested_by: Some(requested_by),
                requested_by_groups,
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

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::api::AlertSource;

    fn alert(labels: &[(&str, &str)]) -> AlertEvent {
        AlertEvent {
            source: AlertSource::Generic,
            status: AlertStatus::Firing,
            identity: "a-1".into(),
            series: "a-1".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            starts_at: None,
            ends_at: None,
            fingerprint: None,
            url: None,
            raw: Value::Null,
        }
    }

    fn trigger(namespace: &str, tenancy: &Tenancy, spec: TriggerSpec) -> CompiledTrigger {
        CompiledTrigger::new(namespace, "t", &spec)
            .expect("a valid trigger")
            .with_tenancy(tenancy)
    }

    fn spec() -> TriggerSpec {
        TriggerSpec {
            enabled: true,
            cancel_on_resolve: true,
            ..TriggerSpec::default()
        }
    }

    #[test]
    fn alerts_reach_only_their_tenant() {
        let on = Tenancy {
            label: Some("namespace".into()),
            admin_namespaces: BTreeSet::from(["monitoring".to_string()]),
        };
        let off = Tenancy::default();
        // (case, tenancy, trigger namespace, alert labels, selected)
        type Case<'a> = (
            &'a str,
            &'a Tenancy,
            &'a str,
            &'a [(&'a str, &'a str)],
            bool,
        );
        let cases: &[Case] = &[
            (
                "off: every alert",
                &off,
                "team-b",
                &[("namespace", "team-a")],
                true,
            ),
            ("off: unlabelled too", &off, "team-b", &[], true),
            (
                "on: own namespace",
                &on,
                "team-b",
                &[("namespace", "team-b")],
                true,
            ),
            (
                "on: another tenant's",
                &on,
                "team-b",
                &[("namespace", "team-a")],
                false,
            ),
            ("on: no label reaches no tenant", &on, "team-b", &[], false),
            (
                "on: another label does not count",
                &on,
                "team-b",
                &[("ns", "team-b")],
                false,
            ),
            (
                "on: an admin namespace sees all",
                &on,
                "monitoring",
                &[("namespace", "team-a")],
                true,
            ),
            (
                "on: an admin namespace sees unlabelled",
                &on,
                "monitoring",
                &[],
                true,
            ),
        ];
        for (name, tenancy, ns, labels, want) in cases {
            let t = trigger(ns, tenancy, spec());
            let a = alert(labels);
            assert_eq!(t.selects(&a), *want, "{name}");
            let started = matches!(t.evaluate(&a, "op"), Outcome::Start(_));
            assert_eq!(started, *want, "{name}: evaluate");
            let resolved = AlertEvent {
                status: AlertStatus::Resolved,
                ..a
            };
            assert_eq!(t.cancels(&resolved).is_some(), *want, "{name}: cancels");
        }
    }

    #[test]
    fn a_run_acts_for_the_triggers_writer() {
        let requester = |spec: TriggerSpec| match trigger("ops", &Tenancy::default(), spec)
            .evaluate(&alert(&[]), "system:serviceaccount:pbo:operator")
        {
            Outcome::Start(e) => (e.spec.requested_by, e.spec.requested_by_groups),
            other => panic!("expected a start, got {other:?}"),
        };
        let written = TriggerSpec {
            requested_by: Some("alice".into()),
            requested_by_groups: vec!["sre".into(), "system:authenticated".into()],
            ..spec()
        };
        assert_eq!(
            requester(written),
            (
                Some("alice".into()),
                vec!["sre".into(), "system:authenticated".into()]
            )
        );
        // Written without the admission policies: the operator asks, as before.
        assert_eq!(
            requester(spec()),
            (Some("system:serviceaccount:pbo:operator".into()), vec![])
        );
    }
}
