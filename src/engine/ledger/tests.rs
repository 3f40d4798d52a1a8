use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;
use crate::api::{
    ExecutionSpec, ExecutionStatus, LocalRef, PrunedAlert, RemediationClaim, RemediationLimit,
    RemediationRecord, TriggerStatus,
};

const NOW: i64 = 1_700_000_000;

fn time(second: i64) -> Time {
    Time(Timestamp::from_second(second).expect("a valid second"))
}

fn limit(max: u32) -> RemediationLimit {
    RemediationLimit {
        max,
        per_seconds: 3600,
        key: String::new(),
    }
}

fn entry(name: &str, key: &str, ago: i64) -> RemediationClaim {
    RemediationClaim {
        execution: name.into(),
        uid: format!("uid-{name}"),
        key: key.into(),
        at: time(NOW - ago),
    }
}

fn run(name: &str, remediation: Option<RemediationRecord>) -> Execution {
    let mut e = Execution::new(
        name,
        ExecutionSpec {
            playbook_ref: LocalRef { name: "pb".into() },
            ..Default::default()
        },
    );
    e.metadata.uid = Some(format!("uid-{name}"));
    e.status = Some(ExecutionStatus {
        remediation,
        ..Default::default()
    });
    e
}

fn record(key: &str, ago: Option<i64>) -> Option<RemediationRecord> {
    Some(RemediationRecord {
        key: key.into(),
        at: ago.map(|a| time(NOW - a)),
        held: None,
    })
}

#[test]
fn a_pruned_run_leaves_its_claim_while_it_counts() {
    let cases = [
        ("claimed a minute ago", record("shop", Some(60)), true),
        ("just inside the window", record("shop", Some(3599)), true),
        ("exactly the window ago", record("shop", Some(3600)), false),
        ("long ago", record("shop", Some(90_000)), false),
        ("held, never remediated", record("shop", None), false),
        ("no remediation", None, false),
    ];
    for (name, remediation, want) in cases {
        let got = claim_to_keep(&run("r", remediation), &limit(2), NOW);
        assert_eq!(got.is_some(), want, "{name}");
        if let Some(c) = got {
            assert_eq!((c.execution.as_str(), c.uid.as_str()), ("r", "uid-r"));
            assert_eq!(c.key, "shop", "{name}");
        }
    }
}

/// (name, ledger, adding, the executions kept)
type Case = (
    &'static str,
    Vec<RemediationClaim>,
    Vec<RemediationClaim>,
    Vec<&'static str>,
);

#[test]
fn the_ledger_keeps_what_can_still_hold_a_run() {
    let cases: Vec<Case> = vec![
        (
            "added to an empty ledger",
            vec![],
            vec![entry("a", "k", 10)],
            vec!["a"],
        ),
        (
            "one entry per uid (a retried prune adds nothing)",
            vec![entry("a", "k", 10)],
            vec![entry("a", "k", 10)],
            vec!["a"],
        ),
        (
            "entries that left the window are dropped",
            vec![entry("old", "k", 3600), entry("b", "k", 5)],
            vec![entry("c", "k", 1)],
            vec!["b", "c"],
        ),
        (
            "per key only the newest max (2) are kept",
            vec![entry("a", "k", 30), entry("b", "k", 20)],
            vec![entry("c", "k", 10)],
            vec!["b", "c"],
        ),
        (
            "keys are bounded apart",
            vec![
                entry("a", "k", 30),
                entry("b", "k", 20),
                entry("x", "other", 40),
            ],
            vec![],
            vec!["x", "a", "b"],
        ),
    ];
    for (name, ledger, adding, want) in cases {
        let got = merged_ledger(&ledger, &adding, &limit(2), NOW);
        let names: Vec<&str> = got.iter().map(|c| c.execution.as_str()).collect();
        assert_eq!(names, want, "{name}");
    }
}

#[test]
fn the_ledger_is_counted_like_live_runs() {
    use crate::engine::limits::{Verdict, verdict};
    let ledger = [entry("pruned", "k", 100)];
    let live = Claim {
        uid: "uid-live".into(),
        key: "k".into(),
        at: NOW - 10,
    };
    let mut claims = ledger_claims(&ledger);
    claims.push(live.clone());
    // The pruned run's uid listed twice (a prune that wrote the ledger, then failed
    // to delete) still counts once.
    claims.extend(ledger_claims(&ledger));
    assert!(matches!(
        verdict(&limit(2), "k", &claims, "uid-me", NOW),
        Verdict::Hold(m) if m.starts_with("2 remediations for key 'k'")
    ));
    assert_eq!(
        verdict(&limit(2), "k", &[live], "uid-me", NOW),
        Verdict::Go,
        "without the ledger the same runs would go"
    );
}

fn alert_run(name: &str, trigger: Option<&str>, alert_label: bool) -> Execution {
    let mut e = run(name, None);
    e.spec.trigger_ref = trigger.map(|t| LocalRef { name: t.into() });
    e.spec.alert = Some(json!({"startsAt": "2026-12-05T08:00:00Z", "labels": {}}));
    if alert_label {
        e.metadata.labels = Some(BTreeMap::from([(LABEL_ALERT.into(), "abc".into())]));
    }
    e
}

#[test]
fn only_alert_started_runs_are_remembered_on_their_trigger() {
    let now = Timestamp::from_second(NOW).expect("now");
    let (trigger, kept) =
        alert_to_keep(&alert_run("redis-down-1a2b", Some("redis-down"), true), now)
            .expect("an alert-started run is remembered");
    assert_eq!(trigger, "redis-down");
    assert_eq!(kept.execution, "redis-down-1a2b");
    assert_eq!(
        kept.starts_at.map(|t| t.0.to_string()),
        Some("2026-12-05T08:00:00Z".to_string())
    );
    assert_eq!(kept.pruned_at, Time(now));
    assert_eq!(alert_to_keep(&alert_run("by-hand", None, false), now), None);
    assert_eq!(
        alert_to_keep(&alert_run("no-label", Some("t"), false), now),
        None,
        "a run without the alert label was not created by the webhook"
    );
}

fn pruned(name: &str, at: i64) -> PrunedAlert {
    PrunedAlert {
        execution: name.into(),
        starts_at: None,
        pruned_at: time(at),
    }
}

#[test]
fn the_pruned_alert_record_is_bounded_and_deduplicated() {
    let got = merged_pruned(&[pruned("a", 1)], &[pruned("a", 5), pruned("b", 2)]);
    assert_eq!(got, vec![pruned("a", 1), pruned("b", 2)]);

    let full: Vec<PrunedAlert> = (0..MAX_PRUNED_ALERTS)
        .map(|i| pruned(&format!("r{i}"), i64::try_from(i).expect("small")))
        .collect();
    let got = merged_pruned(&full, &[pruned("new", 99_999)]);
    assert_eq!(got.len(), MAX_PRUNED_ALERTS);
    assert_eq!(
        got.first().map(|p| p.execution.as_str()),
        Some("r1"),
        "the oldest goes"
    );
    assert_eq!(got.last().map(|p| p.execution.as_str()), Some("new"));
}

#[test]
fn a_pruned_alerts_redelivery_is_a_duplicate() {
    let status = TriggerStatus {
        pruned_alerts: vec![pruned("redis-down-1a2b", 1)],
        ..Default::default()
    };
    assert!(was_pruned(Some(&status), "redis-down-1a2b"));
    assert!(!was_pruned(Some(&status), "redis-down-ffff"));
    assert!(!was_pruned(None, "redis-down-1a2b"));
}
