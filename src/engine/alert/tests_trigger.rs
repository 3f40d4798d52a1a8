//! Triggers: which alerts match (labels, matchers, status), the Execution one starts
//! (name, labels, params, severity), what a bad trigger says, and a resolution
//! cancelling what its firing started.

use std::collections::BTreeMap;

use pretty_assertions::assert_eq;
use serde_json::json;

use super::tests::{compiled, labels, one, sample, spec};
use super::trigger::{CompiledTrigger, LABEL_ALERT, LABEL_SOURCE, LABEL_TRIGGER, Outcome};
use super::*;
use crate::api::{AlertMatch, LabelMatcher, MatchOp, TriggerSpec};

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
