//! Tests for triggers whose templates go past their budget (`template::Budget`):
//! the webhook tells them apart from other errors, to skip such a trigger for the
//! rest of a request.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::tests::{compiled, spec};
use super::trigger::{CompiledTrigger, Outcome};
use super::*;
use crate::api::TriggerSpec;

fn trigger(when: Option<&str>, params: &[(&str, String)]) -> CompiledTrigger {
    compiled(TriggerSpec {
        when: when.map(str::to_string),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        ..spec()
    })
}

fn alert() -> AlertEvent {
    let body = br#"{"id": "redis-down-1", "labels": {"alertname": "RedisDown"}}"#;
    parse(AlertSource::Generic, body)
        .expect("a generic alert")
        .remove(0)
}

#[test]
fn a_template_past_its_budget_is_over_budget_not_an_error() {
    let hostile = "{{ range 100000 }}{{ range 100000 }}{{ end }}{{ end }}true";
    let started = Instant::now();
    let Outcome::OverBudget(e) = trigger(Some(hostile), &[]).evaluate(&alert(), "me") else {
        panic!("over budget")
    };
    assert!(started.elapsed() < Duration::from_secs(3));
    // Operations, or on a slow machine the 1 s, whichever comes first.
    assert!(
        e.starts_with("trigger prod/redis-down: when: line 1, column ")
            && e.contains("(the budget)"),
        "{e}"
    );
    let wide = format!("{{{{ printf \"%0{}d\" 1 }}}}", 1u64 << 30);
    let Outcome::OverBudget(e) = trigger(None, &[("X", wide)]).evaluate(&alert(), "me") else {
        panic!("over budget")
    };
    assert!(
        e.contains("params.X: ") && e.contains("bytes of text (the budget)"),
        "{e}"
    );
    // Other template errors stay errors: they cost nothing to repeat.
    let typo = trigger(Some("{{ gt .alert.labels.nope 3 }}"), &[]);
    assert!(matches!(typo.evaluate(&alert(), "me"), Outcome::Error(_)));
    let fine = trigger(Some("{{ eq .alert.labels.alertname \"RedisDown\" }}"), &[]);
    assert!(matches!(fine.evaluate(&alert(), "me"), Outcome::Start(_)));
}
