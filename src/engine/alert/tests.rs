use std::collections::BTreeMap;

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::signature::{
    Secrets, SignatureError, Timestamped, sign_hex, verify_pagerduty, verify_timestamped,
};
use super::trigger::{CompiledTrigger, LABEL_ALERT, LABEL_SOURCE, LABEL_TRIGGER, Outcome};
use super::*;
use crate::api::{AlertMatch, LabelMatcher, MatchOp, TriggerSpec};

/// The samples of examples/alerts (compiled in: the core's tests do no I/O either).
fn sample(name: &str) -> Vec<u8> {
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

fn one(source: AlertSource, body: &[u8]) -> AlertEvent {
    let mut alerts = parse(source, body).expect("the sample parses");
    assert_eq!(alerts.len(), 1);
    alerts.remove(0)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
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

// ---- signatures ----

#[test]
fn pagerduty_signatures_with_rotation() {
    let body = sample("pagerduty-triggered.json");
    let (old, new) = (b"old-secret".as_slice(), b"new-secret".as_slice());
    let sig = |s: &[u8]| format!("v1={}", sign_hex(s, &body));
    let both = Secrets::new([old, new]);
    // PagerDuty signs with each secret it holds while rotating.
    let header = format!("{},{}", sig(b"unknown"), sig(new));
    assert_eq!(verify_pagerduty(Some(&header), &body, &both), Ok(()));
    assert_eq!(verify_pagerduty(Some(&sig(old)), &body, &both), Ok(()));
    assert_eq!(
        verify_pagerduty(Some(&sig(old)), &body, &Secrets::new([new])),
        Err(SignatureError::Mismatch("X-PagerDuty-Signature".into()))
    );
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert!(matches!(
        verify_pagerduty(Some(&sig(new)), &tampered, &both),
        Err(SignatureError::Mismatch(_))
    ));
    assert!(matches!(
        verify_pagerduty(None, &body, &both),
        Err(SignatureError::Missing(_))
    ));
    assert!(matches!(
        verify_pagerduty(Some("v1=zz"), &body, &both),
        Err(SignatureError::Malformed { .. })
    ));
    assert!(matches!(
        verify_pagerduty(Some("v0=abcd"), &body, &both),
        Err(SignatureError::Malformed { .. })
    ));
    // Upper-case hex is hex too.
    let upper = format!("v1={}", sign_hex(new, &body).to_uppercase());
    assert_eq!(verify_pagerduty(Some(&upper), &body, &both), Ok(()));
}

fn grafana<'a>(sig: Option<&'a str>, ts: Option<Option<&'a str>>, now: i64) -> Timestamped<'a> {
    Timestamped {
        signature: ("X-Grafana-Alerting-Signature", sig),
        timestamp: ts.map(|t| ("X-Grafana-Alerting-Timestamp", t)),
        now,
        window_seconds: 300,
    }
}

#[test]
fn grafana_signature_without_and_with_a_timestamp() {
    let body = sample("grafana.json");
    let secrets = Secrets::new(["s3cret"]);
    let plain = sign_hex(b"s3cret", &body);
    assert_eq!(
        verify_timestamped(grafana(Some(&plain), None, 0), &body, &secrets),
        Ok(())
    );
    let signed_at = "1764072000";
    let mut msg = format!("{signed_at}:").into_bytes();
    msg.extend_from_slice(&body);
    let with_ts = sign_hex(b"s3cret", &msg);
    let now = 1_764_072_000 + 10;
    assert_eq!(
        verify_timestamped(
            grafana(Some(&with_ts), Some(Some(signed_at)), now),
            &body,
            &secrets
        ),
        Ok(())
    );
    // The body's signature alone does not pass when a timestamp is expected.
    assert!(matches!(
        verify_timestamped(
            grafana(Some(&plain), Some(Some(signed_at)), now),
            &body,
            &secrets
        ),
        Err(SignatureError::Mismatch(_))
    ));
    assert!(matches!(
        verify_timestamped(grafana(Some(&with_ts), Some(None), now), &body, &secrets),
        Err(SignatureError::Missing(h)) if h == "X-Grafana-Alerting-Timestamp"
    ));
}

#[test]
fn replayed_timestamps_are_refused() {
    let body = sample("generic.json");
    let secrets = Secrets::new(["k1", "k2"]);
    let signed_at = 1_764_072_000_i64;
    let mut msg = format!("{signed_at}:").into_bytes();
    msg.extend_from_slice(&body);
    let sig = format!("sha256={}", sign_hex(b"k2", &msg));
    let ts = signed_at.to_string();
    let req = |now| Timestamped {
        signature: ("X-Playbook-Signature", Some(sig.as_str())),
        timestamp: Some(("X-Playbook-Timestamp", Some(ts.as_str()))),
        now,
        window_seconds: 300,
    };
    assert_eq!(
        verify_timestamped(req(signed_at + 299), &body, &secrets),
        Ok(())
    );
    assert_eq!(
        verify_timestamped(req(signed_at + 301), &body, &secrets),
        Err(SignatureError::Stale {
            header: "X-Playbook-Timestamp".into(),
            age: 301,
            window: 300
        })
    );
    // From the future (a skewed clock, or a forged timestamp) too.
    assert!(matches!(
        verify_timestamped(req(signed_at - 301), &body, &secrets),
        Err(SignatureError::Stale { .. })
    ));
    // A new timestamp on an old signature does not verify.
    let later = (signed_at + 1000).to_string();
    let moved = Timestamped {
        timestamp: Some(("X-Playbook-Timestamp", Some(later.as_str()))),
        ..req(signed_at + 1000)
    };
    assert!(matches!(
        verify_timestamped(moved, &body, &secrets),
        Err(SignatureError::Mismatch(_))
    ));
}

#[test]
fn secrets_never_print() {
    let s = Secrets::new(["hunter2"]);
    assert_eq!(format!("{s:?}"), "Secrets(1 keys)");
    let e = verify_pagerduty(Some("v1=00"), b"x", &s).expect_err("mismatch");
    assert!(!e.to_string().contains("hunter2"));
}

// ---- triggers ----

fn spec() -> TriggerSpec {
    TriggerSpec {
        playbook_ref: crate::api::LocalRef {
            name: "redis-incident-enrichment".into(),
        },
        enabled: true,
        ..TriggerSpec::default()
    }
}

fn compiled(spec: TriggerSpec) -> CompiledTrigger {
    CompiledTrigger::new("prod", "redis-down", &spec).expect("a valid trigger")
}

fn matcher(name: &str, op: MatchOp, value: &str) -> LabelMatcher {
    LabelMatcher {
        name: name.into(),
        op,
        value: value.into(),
    }
}

fn redis_down() -> AlertEvent {
    one(
        AlertSource::Alertmanager,
        &sample("alertmanager-redis-down.json"),
    )
}

#[test]
fn the_example_trigger_starts_the_redis_playbook() {
    let trigger = compiled(TriggerSpec {
        sources: vec![AlertSource::Alertmanager],
        when: Some(
            r#"{{ and (eq .alert.labels.alertname "RedisDown") (eq .alert.status "firing") }}"#
                .into(),
        ),
        params: BTreeMap::from([
            (
                "RedisConnectionString".into(),
                "{{ .alert.labels.instance }}".into(),
            ),
            ("RedisPort".into(), "6379".into()),
        ]),
        ..spec()
    });
    let Outcome::Start(exec) =
        trigger.evaluate(&redis_down(), "system:serviceaccount:ops:playbook-operator")
    else {
        panic!("the trigger matches");
    };
    assert_eq!(exec.metadata.namespace.as_deref(), Some("prod"));
    let name = exec.metadata.name.clone().unwrap_or_default();
    assert!(name.starts_with("redis-down-"), "{name}");
    assert_eq!(name.len(), "redis-down-".len() + 16);
    let labels = exec.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels[LABEL_TRIGGER], "redis-down");
    assert_eq!(labels[LABEL_SOURCE], "alertmanager");
    assert_eq!(labels[LABEL_ALERT].len(), 16);
    assert_eq!(exec.spec.playbook_ref.name, "redis-incident-enrichment");
    assert_eq!(
        exec.spec.params,
        Some(json!({"RedisConnectionString": "redis.prod.svc", "RedisPort": "6379"}))
    );
    assert_eq!(
        exec.spec.alert.as_ref().map(|a| &a["labels"]["severity"]),
        Some(&json!("critical"))
    );
    assert_eq!(
        exec.spec.trigger_ref.as_ref().map(|r| r.name.as_str()),
        Some("redis-down")
    );
    assert_eq!(
        exec.spec.requested_by.as_deref(),
        Some("system:serviceaccount:ops:playbook-operator")
    );
    // The resolution does not pass this `when`.
    let resolved = one(
        AlertSource::Alertmanager,
        &sample("alertmanager-resolved.json"),
    );
    assert!(matches!(
        trigger.evaluate(&resolved, "me"),
        Outcome::NoMatch
    ));
}

#[test]
fn sources_labels_matchers_and_status() {
    let alert = redis_down();
    let with = |matches: AlertMatch| {
        compiled(TriggerSpec {
            matches: Some(matches),
            ..spec()
        })
    };
    let is_match = |t: CompiledTrigger| matches!(t.evaluate(&alert, "me"), Outcome::Start(_));
    assert!(is_match(compiled(spec())), "no conditions: every alert");
    assert!(!is_match(compiled(TriggerSpec {
        sources: vec![AlertSource::Grafana],
        ..spec()
    })));
    assert!(!is_match(compiled(TriggerSpec {
        enabled: false,
        ..spec()
    })));
    let cases = [
        (
            AlertMatch {
                labels: labels(&[("severity", "critical")]),
                ..Default::default()
            },
            true,
        ),
        (
            AlertMatch {
                labels: labels(&[("severity", "warning")]),
                ..Default::default()
            },
            false,
        ),
        (
            AlertMatch {
                labels: labels(&[("team", "")]),
                ..Default::default()
            },
            false,
        ),
        (
            AlertMatch {
                matchers: vec![matcher("instance", MatchOp::Matches, "redis\\..*")],
                ..Default::default()
            },
            true,
        ),
        // Anchored: a partial match is no match.
        (
            AlertMatch {
                matchers: vec![matcher("instance", MatchOp::Matches, "redis")],
                ..Default::default()
            },
            false,
        ),
        (
            AlertMatch {
                matchers: vec![matcher("instance", MatchOp::NotMatches, ".*staging.*")],
                ..Default::default()
            },
            true,
        ),
        (
            AlertMatch {
                matchers: vec![matcher("namespace", MatchOp::NotEqual, "prod")],
                ..Default::default()
            },
            false,
        ),
        (
            AlertMatch {
                matchers: vec![matcher("team", MatchOp::Equal, "")],
                ..Default::default()
            },
            true,
        ),
        (
            AlertMatch {
                matchers: vec![matcher("team", MatchOp::NotEqual, "dba")],
                ..Default::default()
            },
            true,
        ),
        (
            AlertMatch {
                status: Some(AlertStatus::Firing),
                ..Default::default()
            },
            true,
        ),
        (
            AlertMatch {
                status: Some(AlertStatus::Resolved),
                ..Default::default()
            },
            false,
        ),
    ];
    for (m, want) in cases {
        assert_eq!(is_match(with(m.clone())), want, "{m:?}");
    }
}

#[test]
fn a_bad_regex_or_template_is_reported() {
    let bad = TriggerSpec {
        matches: Some(AlertMatch {
            matchers: vec![matcher("a", MatchOp::Matches, "(")],
            ..Default::default()
        }),
        ..spec()
    };
    let e = CompiledTrigger::new("prod", "t", &bad).expect_err("refused");
    assert!(e.contains("not a valid regular expression"), "{e}");
    let when = compiled(TriggerSpec {
        when: Some("{{ gt .alert.labels.nope 3 }}".into()),
        ..spec()
    });
    let Outcome::Error(e) = when.evaluate(&redis_down(), "me") else {
        panic!("an error")
    };
    assert!(e.starts_with("trigger prod/redis-down: when: "), "{e}");
    let param = compiled(TriggerSpec {
        params: BTreeMap::from([("X".into(), "{{ .alert.labels.instance.x }}".into())]),
        ..spec()
    });
    let Outcome::Error(e) = param.evaluate(&redis_down(), "me") else {
        panic!("an error")
    };
    assert!(e.contains("params.X"), "{e}");
}

#[test]
fn names_are_deterministic_and_valid() {
    let a = redis_down();
    let name = |trigger: &str, alert: &AlertEvent| trigger::execution_name(trigger, alert);
    assert_eq!(
        name("t", &a),
        name("t", &a),
        "a redelivery has the same name"
    );
    assert_ne!(name("t", &a), name("u", &a), "per trigger");
    let mut later = a.clone();
    later.identity = "4c4b8a1f5e2d9c70@2026-11-25T13:00:00Z".into();
    assert_ne!(
        name("t", &a),
        name("t", &later),
        "a new firing of the same alert runs again"
    );
    let mut resolved = a.clone();
    resolved.status = AlertStatus::Resolved;
    assert_ne!(name("t", &a), name("t", &resolved));
    let long = "a.very-long.trigger.name".repeat(10);
    let n = name(&long, &a);
    assert!(n.len() <= 63, "{n}");
    assert!(n.starts_with("a-very-long-trigger"), "{n}");
    assert!(
        n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "{n}"
    );
    assert!(!n.starts_with('-') && !n.ends_with('-'));
}

#[test]
fn a_resolution_cancels_what_its_firing_started() {
    let firing = redis_down();
    let resolved = one(
        AlertSource::Alertmanager,
        &sample("alertmanager-resolved.json"),
    );
    let t = compiled(TriggerSpec {
        cancel_on_resolve: true,
        matches: Some(AlertMatch {
            status: Some(AlertStatus::Firing),
            ..Default::default()
        }),
        ..spec()
    });
    let Outcome::Start(exec) = t.evaluate(&firing, "me") else {
        panic!("starts")
    };
    let selector = t.cancels(&resolved).expect("a resolution cancels");
    let labels = exec.metadata.labels.unwrap_or_default();
    assert_eq!(
        selector,
        format!(
            "{LABEL_TRIGGER}={},{LABEL_ALERT}={}",
            labels[LABEL_TRIGGER], labels[LABEL_ALERT]
        )
    );
    assert_eq!(t.cancels(&firing), None);
    let keep = compiled(TriggerSpec {
        cancel_on_resolve: false,
        ..spec()
    });
    assert_eq!(keep.cancels(&resolved), None);
}

#[test]
fn validate_says_what_to_fix() {
    assert_eq!(trigger::validate(&spec()), Ok(()));
    let bad_when = TriggerSpec {
        when: Some("{{ eq .alert.status ".into()),
        ..spec()
    };
    let e = trigger::validate(&bad_when).expect_err("a broken when");
    assert!(e.starts_with("when: line 1"), "{e}");
    let bad_param = TriggerSpec {
        params: BTreeMap::from([("P".into(), "{{ .x }".into())]),
        ..spec()
    };
    assert!(
        trigger::validate(&bad_param)
            .expect_err("a broken param")
            .starts_with("params.P: ")
    );
    let bad_re = TriggerSpec {
        matches: Some(AlertMatch {
            matchers: vec![matcher("a", MatchOp::NotMatches, "[")],
            ..Default::default()
        }),
        ..spec()
    };
    assert!(
        trigger::validate(&bad_re)
            .expect_err("a broken regex")
            .contains("match.matchers")
    );
}
