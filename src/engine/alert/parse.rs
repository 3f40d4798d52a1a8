//! The four payload shapes into [`AlertEvent`]s. Fields we do not read are kept in
//! `raw` and otherwise ignored, so new fields a source adds never break a webhook.
//! Errors name the field (`alerts[3].status`) and what it should hold: they go back
//! to the sender in the 400 answer.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::AlertEvent;
use crate::api::{AlertSource, AlertStatus};
use crate::engine::job::hex_hash;

/// Why a body is not a payload of its source (the 400 answer's text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

/// Parses one webhook body of `source` into its alerts (none for a PagerDuty ping).
pub fn parse(source: AlertSource, body: &[u8]) -> Result<Vec<AlertEvent>, ParseError> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        let hint = match source {
            AlertSource::Alertmanager => "an Alertmanager webhook (version 4) payload",
            AlertSource::Grafana => "a Grafana alerting webhook payload",
            AlertSource::Pagerduty => "a PagerDuty v3 webhook payload",
            AlertSource::Generic => {
                "a JSON object {\"id\", \"status\", \"labels\", ...} or {\"alerts\": [...]} (README: Alerts)"
            }
        };
        ParseError(format!("the body is not valid JSON ({e}); send {hint}"))
    })?;
    let Value::Object(doc) = doc else {
        return err("the body must be a JSON object");
    };
    match source {
        AlertSource::Alertmanager | AlertSource::Grafana => group(source, &doc),
        AlertSource::Pagerduty => pagerduty(&doc),
        AlertSource::Generic => generic(&doc),
    }
}

/// Alertmanager's webhook v4 and Grafana's (which extends it): a group of alerts.
fn group(source: AlertSource, doc: &Map<String, Value>) -> Result<Vec<AlertEvent>, ParseError> {
    if source == AlertSource::Alertmanager
        && let Some(v) = doc.get("version").and_then(Value::as_str)
        && v != "4"
    {
        return err(format!(
            "payload version {v:?} is not supported: this endpoint reads Alertmanager's webhook version \"4\""
        ));
    }
    let Some(alerts) = doc.get("alerts") else {
        return err("no `alerts` field: expected a webhook payload with an `alerts` list");
    };
    let Value::Array(alerts) = alerts else {
        return err("`alerts` must be a list");
    };
    // What every alert of the group shares and a playbook may want (a link to the
    // Alertmanager or Grafana that sent it).
    let shared: Vec<(&str, &Value)> = ["receiver", "externalURL"]
        .into_iter()
        .filter_map(|k| Some((k, doc.get(k)?)))
        .collect();
    alerts
        .iter()
        .enumerate()
        .map(|(i, alert)| {
            let at = format!("alerts[{i}]");
            let Value::Object(obj) = alert else {
                return err(format!("{at} must be an object"));
            };
            let labels = string_map(obj, "labels", &at)?;
            let annotations = string_map(obj, "annotations", &at)?;
            let status = status(obj.get("status"), &at, None)?;
            let starts_at = opt_string(obj, "startsAt", &at)?;
            let fingerprint = match opt_string(obj, "fingerprint", &at)? {
                Some(f) if !f.is_empty() => f,
                // Before Alertmanager 0.19 there was no fingerprint: the label set is
                // what identifies an alert there too.
                _ => labels_fingerprint(&labels),
            };
            let identity = format!("{fingerprint}@{}", starts_at.as_deref().unwrap_or(""));
            let mut raw = obj.clone();
            for (k, v) in &shared {
                raw.entry(*k).or_insert_with(|| (*v).clone());
            }
            Ok(AlertEvent {
                source,
                status,
                series: identity.clone(),
                identity,
                labels,
                annotations,
                starts_at,
                ends_at: opt_string(obj, "endsAt", &at)?,
                fingerprint: Some(fingerprint),
                url: opt_string(obj, "generatorURL", &at)?.filter(|u| !u.is_empty()),
                raw: Value::Object(raw),
            })
        })
        .collect()
}

/// PagerDuty webhooks v3: one event per request, `{"event": {id, event_type,
/// resource_type, occurred_at, data: {...}}}`. `incident.resolved` is a resolved
/// alert, every other event type a firing one; triggers tell them apart by the
/// `event_type` label. A `pagey.ping` (PagerDuty's test delivery) holds no alert.
fn pagerduty(doc: &Map<String, Value>) -> Result<Vec<AlertEvent>, ParseError> {
    let Some(Value::Object(event)) = doc.get("event") else {
        return err(
            "no `event` object: expected a PagerDuty v3 webhook payload {\"event\": {...}}",
        );
    };
    let at = "event";
    let Some(id) = opt_string(event, "id", at)?.filter(|s| !s.is_empty()) else {
        return err("event.id is missing: PagerDuty v3 events carry a unique id");
    };
    let Some(event_type) = opt_string(event, "event_type", at)? else {
        return err("event.event_type is missing (e.g. \"incident.triggered\")");
    };
    if event_type == "pagey.ping" {
        return Ok(Vec::new());
    }
    let empty = Map::new();
    let data = match event.get("data") {
        Some(Value::Object(d)) => d,
        None | Some(Value::Null) => &empty,
        Some(_) => return err("event.data must be an object"),
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let summary = |key: &str| text(data.get(key).and_then(|o| o.get("summary")));
    let resource_type = opt_string(event, "resource_type", at)?;
    let data_id = text(data.get("id"));
    let mut labels = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            labels.insert(k.to_string(), v);
        }
    };
    put("event_type", Some(event_type.clone()));
    put("resource_type", resource_type.clone());
    if resource_type.as_deref() == Some("incident") {
        put("incident_id", data_id.clone());
    }
    put("incident_status", text(data.get("status")));
    put("incident_key", text(data.get("incident_key")));
    put("urgency", text(data.get("urgency")));
    put("priority", summary("priority"));
    put("service", summary("service"));
    put(
        "service_id",
        text(data.get("service").and_then(|s| s.get("id"))),
    );
    put("escalation_policy", summary("escalation_policy"));
    let mut annotations = BTreeMap::new();
    for (key, value) in [
        ("title", text(data.get("title"))),
        ("summary", summary("incident")),
    ] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            annotations.insert(key.to_string(), v);
        }
    }
    let status = if event_type == "incident.resolved" {
        AlertStatus::Resolved
    } else {
        AlertStatus::Firing
    };
    Ok(vec![AlertEvent {
        source: AlertSource::Pagerduty,
        status,
        series: data_id.unwrap_or_else(|| id.clone()),
        identity: id,
        labels,
        annotations,
        starts_at: text(data.get("created_at")).or(opt_string(event, "occurred_at", at)?),
        ends_at: None,
        fingerprint: None,
        url: text(data.get("html_url")),
        raw: Value::Object(event.clone()),
    }])
}

/// The generic shape: one alert `{"id", "status", "labels", "annotations",
/// "startsAt", "endsAt", "url"}`, or `{"alerts": [...]}` of them. `id` is required
/// (it makes the Execution's name); `status` defaults to `firing`.
fn generic(doc: &Map<String, Value>) -> Result<Vec<AlertEvent>, ParseError> {
    let one = |obj: &Map<String, Value>, at: &str| -> Result<AlertEvent, ParseError> {
        let id = match obj.get("id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return err(format!("{at}id must be a non-empty string")),
            None => {
                return err(format!(
                    "{at}id is missing: give each alert a stable id (retries with the same id and status start one Execution)"
                ));
            }
        };
        let status = status(obj.get("status"), at, Some(AlertStatus::Firing))?;
        Ok(AlertEvent {
            source: AlertSource::Generic,
            status,
            series: id.clone(),
            identity: id,
            labels: string_map(obj, "labels", at)?,
            annotations: string_map(obj, "annotations", at)?,
            starts_at: opt_string(obj, "startsAt", at)?,
            ends_at: opt_string(obj, "endsAt", at)?,
            fingerprint: None,
            url: opt_string(obj, "url", at)?,
            raw: Value::Object(obj.clone()),
        })
    };
    match doc.get("alerts") {
        Some(Value::Array(alerts)) => alerts
            .iter()
            .enumerate()
            .map(|(i, a)| match a {
                Value::Object(obj) => one(obj, &format!("alerts[{i}].")),
                _ => err(format!("alerts[{i}] must be an object")),
            })
            .collect(),
        Some(_) => err("`alerts` must be a list of alert objects"),
        None => Ok(vec![one(doc, "")?]),
    }
}

/// `firing`/`resolved` (any case); `default` when absent.
fn status(
    v: Option<&Value>,
    at: &str,
    default: Option<AlertStatus>,
) -> Result<AlertStatus, ParseError> {
    let sep = if at.is_empty() || at.ends_with('.') {
        ""
    } else {
        "."
    };
    match (v.and_then(Value::as_str), default) {
        (Some(s), _) if s.eq_ignore_ascii_case("firing") => Ok(AlertStatus::Firing),
        (Some(s), _) if s.eq_ignore_ascii_case("resolved") => Ok(AlertStatus::Resolved),
        (None, Some(d)) if v.is_none() => Ok(d),
        _ => err(format!(
            "{at}{sep}status must be \"firing\" or \"resolved\", got {}",
            v.map_or("nothing".to_string(), Value::to_string)
        )),
    }
}

fn opt_string(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, ParseError> {
    let sep = if at.is_empty() || at.ends_with('.') {
        ""
    } else {
        "."
    };
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => err(format!("{at}{sep}{key} must be a string, got {other}")),
    }
}

/// A map of label-like values. Numbers and booleans are taken as their text (generic
/// senders write `"port": 6379`); nested objects and lists are refused, since a
/// matcher could not compare them.
fn string_map(
    obj: &Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<BTreeMap<String, String>, ParseError> {
    let sep = if at.is_empty() || at.ends_with('.') {
        ""
    } else {
        "."
    };
    let map = match obj.get(key) {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return err(format!("{at}{sep}{key} must be an object of strings")),
    };
    map.iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                _ => return err(format!("{at}{sep}{key}.{k} must be a string")),
            };
            Ok((k.clone(), text))
        })
        .collect()
}

/// A stable fingerprint of a label set, for alerts that came without one.
fn labels_fingerprint(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<&str> = labels
        .iter()
        .flat_map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    hex_hash(&parts, 16)
}
