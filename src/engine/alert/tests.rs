//! Parsing the four sources' payloads: the samples of examples/alerts, resolutions,
//! batches, unknown fields, bad bodies (each saying what is wrong) and a body of
//! 10,000 alerts. Signatures and triggers have their own files (`tests_signature`,
//! `tests_trigger`), which share these helpers.

use std::collections::BTreeMap;

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::trigger::{CompiledTrigger, Outcome};
use super::*;
use crate::api::TriggerSpec;

/// The samples of examples/alerts (compiled in: the core's tests do no I/O either).
pub(super) fn sample(name: &str) -> Vec<u8> {
    let bytes: &[u8] = match name {
        "alertmanager-redis-down.json" => {
            include_bytes!("../../../examples/alerts/alertmanager-redis-down.json")
        }
        "alertmanager-resolved.json" => {
            include_bytes!("../../../examples/alerts/alertmanager-resolved.json")
        }
        "grafana.json" => include_bytes!("../../../examples/alerts/grafana.json"),
        "pagerduty-triggered.json" => {
            include_bytes!("../../../examples/alerts/pagerduty-triggered.json")
        }
        "generic.json" => include_bytes!("../../../examples/alerts/generic.json"),
        other => panic!("no sample {other}"),
    };
    bytes.to_vec()
}

pub(super) fn one(source: AlertSource, body: &[u8]) -> AlertEvent {
    let mut alerts = parse(source, body).expect("the sample parses");
    assert_eq!(alerts.len(), 1);
    alerts.remove(0)
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A Trigger of the Redis example's playbook, enabled, matching anything.
pub(super) fn spec() -> TriggerSpec {
    TriggerSpec {
        playbook_ref: crate::api::LocalRef {
            name: "redis-incident-enrichment".into(),
        },
        enabled: true,
        ..TriggerSpec::default()
    }
}

/// `spec` compiled as Trigger `prod/redis-down`.
pub(super) fn compiled(spec: TriggerSpec) -> CompiledTrigger {
    CompiledTrigger::new("prod", "redis-down", &spec).expect("a valid trigger")
}

#[test]
fn alertmanager_sample() {
    let a = one(
        AlertSource::Alertmanager,
        &sample("alertmanager-redis-down.json"),
    );
    assert_eq!(a.status, AlertStatus::Firing);
    assert_eq!(a.identity, "4c4b8a1f5e2d9c70@2026-11-25T12:01:30.123Z");
    assert_eq!(a.series, a.identity);
    assert_eq!(a.labels["instance"], "redis.prod.svc");
    assert_eq!(a.annotations["summary"], "Redis is down");
    assert_eq!(a.fingerprint.as_deref(), Some("4c4b8a1f5e2d9c70"));
    assert!(
        a.url
            .as_deref()
            .is_some_and(|u| u.starts_with("http://prometheus"))
    );
    // The group's receiver and Alertmanager link ride along in raw.
    assert_eq!(a.raw["externalURL"], "http://alertmanager.monitoring:9093");
    let j = a.to_json();
    assert_eq!(j["source"], "alertmanager");
    assert_eq!(j["status"], "firing");
    assert_eq!(j["labels"]["alertname"], "RedisDown");
    assert_eq!(j["startsAt"], "2026-11-25T12:01:30.123Z");
}

#[test]
fn a_resolution_shares_the_series_of_its_firing() {
    let firing = one(
        AlertSource::Alertmanager,
        &sample("alertmanager-redis-down.json"),
    );
    let resolved = one(
        AlertSource::Alertmanager,
        &sample("alertmanager-resolved.json"),
    );
    assert_eq!(resolved.status, AlertStatus::Resolved);
    assert_eq!(resolved.series, firing.series);
    assert_eq!(
        resolved.ends_at.as_deref(),
        Some("2026-11-25T12:09:00.456Z")
    );
}

#[test]
fn grafana_sample() {
    let a = one(AlertSource::Grafana, &sample("grafana.json"));
    assert_eq!(a.source, AlertSource::Grafana);
    assert_eq!(a.identity, "a1b2c3d4e5f60718@2026-11-25T11:58:00Z");
    assert_eq!(a.labels["service"], "checkout");
    // Grafana's own fields are kept for the playbook.
    assert_eq!(a.raw["values"]["B"], json!(0.734));
    assert_eq!(
        a.raw["dashboardURL"],
        "https://grafana.example.com/d/checkout"
    );
}

#[test]
fn pagerduty_sample() {
    let a = one(AlertSource::Pagerduty, &sample("pagerduty-triggered.json"));
    assert_eq!(a.status, AlertStatus::Firing);
    assert_eq!(a.identity, "01DEN3AWBVPJQ2RCUXU1EFUQZ5");
    assert_eq!(a.series, "PGR0VU2");
    assert_eq!(
        a.labels,
        labels(&[
            ("escalation_policy", "Default"),
            ("event_type", "incident.triggered"),
            ("incident_id", "PGR0VU2"),
            ("incident_key", "d3640fbd41094207a1c11e58e46b1662"),
            ("incident_status", "triggered"),
            ("priority", "P1"),
            ("resource_type", "incident"),
            ("service", "Redis"),
            ("service_id", "PF9KMXH"),
            ("urgency", "high"),
        ])
    );
    assert_eq!(a.annotations["title"], "Redis down on redis.prod.svc");
    assert_eq!(
        a.url.as_deref(),
        Some("https://acme.pagerduty.com/incidents/PGR0VU2")
    );
    assert_eq!(a.raw["data"]["number"], 2);
}

#[test]
fn pagerduty_resolution_and_ping() {
    let body = String::from_utf8(sample("pagerduty-triggered.json"))
        .expect("utf-8")
        .replace("incident.triggered", "incident.resolved")
        .replace("01DEN3AWBVPJQ2RCUXU1EFUQZ5", "01DEN3B0000000000000000000");
    let a = one(AlertSource::Pagerduty, body.as_bytes());
    assert_eq!(a.status, AlertStatus::Resolved);
    assert_eq!(a.series, "PGR0VU2", "same incident as the trigger");
    let ping = br#"{"event": {"id": "01PING", "event_type": "pagey.ping", "resource_type": "pagey", "data": {"message": "Hello from your friend Pagey!", "type": "ping"}}}"#;
    assert_eq!(parse(AlertSource::Pagerduty, ping), Ok(vec![]));
}

#[test]
fn generic_sample_and_batch() {
    let a = one(AlertSource::Generic, &sample("generic.json"));
    assert_eq!(a.identity, "disk-full-db-0-20261125");
    assert_eq!(a.labels["used_percent"], "97", "numbers are taken as text");
    assert_eq!(a.raw["team"], "dba", "unknown fields are kept");
    let batch =
        br#"{"alerts": [{"id": 7}, {"id": "b", "status": "RESOLVED", "labels": {"x": "1"}}]}"#;
    let alerts = parse(AlertSource::Generic, batch).expect("a batch");
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0].identity, "7");
    assert_eq!(
        alerts[0].status,
        AlertStatus::Firing,
        "status defaults to firing"
    );
    assert_eq!(alerts[1].status, AlertStatus::Resolved);
}

#[test]
fn unknown_fields_are_tolerated() {
    let body = json!({
        "version": "4", "somethingNew": {"a": [1, 2]},
        "alerts": [{"status": "firing", "labels": {"a": "b"}, "newField": true, "startsAt": "t"}]
    });
    let a = one(AlertSource::Alertmanager, body.to_string().as_bytes());
    assert_eq!(a.raw["newField"], true);
    // No fingerprint (Alertmanager before 0.19): the label set's hash stands in.
    assert_eq!(a.fingerprint.as_ref().map(String::len), Some(16));
}

#[test]
fn bad_bodies_say_what_is_wrong() {
    let full = sample("alertmanager-redis-down.json");
    let cases: Vec<(AlertSource, Vec<u8>, &str)> = vec![
        (
            AlertSource::Alertmanager,
            full[..full.len() / 2].to_vec(),
            "not valid JSON (EOF while parsing",
        ),
        (
            AlertSource::Alertmanager,
            b"\x00\xff garbage".to_vec(),
            "not valid JSON",
        ),
        (AlertSource::Alertmanager, b"".to_vec(), "not valid JSON"),
        (
            AlertSource::Alertmanager,
            b"[1, 2]".to_vec(),
            "must be a JSON object",
        ),
        (
            AlertSource::Alertmanager,
            br#"{"version": "4"}"#.to_vec(),
            "no `alerts` field",
        ),
        (
            AlertSource::Alertmanager,
            br#"{"version": "3", "alerts": []}"#.to_vec(),
            "version \"3\" is not supported",
        ),
        (
            AlertSource::Alertmanager,
            br#"{"alerts": [{"status": "on"}]}"#.to_vec(),
            "alerts[0].status must be \"firing\" or \"resolved\", got \"on\"",
        ),
        (
            AlertSource::Grafana,
            br#"{"alerts": [{"status": "firing", "labels": {"a": {"b": 1}}}]}"#.to_vec(),
            "alerts[0].labels.a must be a string",
        ),
        (
            AlertSource::Pagerduty,
            br#"{"messages": []}"#.to_vec(),
            "no `event` object",
        ),
        (
            AlertSource::Pagerduty,
            br#"{"event": {"event_type": "incident.triggered"}}"#.to_vec(),
            "event.id is missing",
        ),
        (
            AlertSource::Generic,
            br#"{"status": "firing"}"#.to_vec(),
            "id is missing",
        ),
        (
            AlertSource::Generic,
            br#"{"alerts": [{"id": "a", "status": 3}]}"#.to_vec(),
            "alerts[0].status must be",
        ),
    ];
    for (source, body, want) in cases {
        let got = parse(source, &body).expect_err("a bad body is refused");
        assert!(
            got.0.contains(want),
            "{source:?} {:?}: {got} does not contain {want:?}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn ten_thousand_alerts_in_one_body() {
    let alerts: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({"status": "firing", "labels": {"alertname": "PodCrashLooping", "pod": format!("web-{i}")},
                   "startsAt": "2026-11-25T12:00:00Z", "fingerprint": format!("{i:016x}")})
        })
        .collect();
    let body = json!({"version": "4", "alerts": alerts}).to_string();
    let parsed = parse(AlertSource::Alertmanager, body.as_bytes()).expect("parses");
    assert_eq!(parsed.len(), 10_000);
    let trigger = compiled(TriggerSpec {
        sources: vec![AlertSource::Alertmanager],
        ..spec()
    });
    let names: std::collections::BTreeSet<String> = parsed
        .iter()
        .map(|a| match trigger.evaluate(a, "me") {
            Outcome::Start(e) => e.metadata.name.unwrap_or_default(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names.len(),
        10_000,
        "every alert has its own Execution name"
    );
}
