//! The `Ready` conditions: a Playbook's is the lint's verdict in one line on the
//! object; a Runner's says whether the Secret it names exists.
//!
//! Pure: the Playbook reconciler passes the spec, its generation, the Runners of the
//! namespace (from its cache), the condition it wrote last time and the current time;
//! the Runner reconciler passes what it found of the Secret instead of a spec.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::{Finding, Severity, lint_playbook};
use crate::api::{PlaybookSpec, TriggerSpec};
use crate::engine::message::cut;

/// The condition type.
pub const READY: &str = "Ready";
/// Reason of `Ready=True`.
pub const REASON_VALID: &str = "Valid";
/// Reason of `Ready=False`.
pub const REASON_INVALID: &str = "Invalid";

/// Longest condition message written (the API allows 32768 bytes; a line is enough).
const MAX_MESSAGE: usize = 1024;

/// `Ready` for a Playbook: True (reason `Valid`) with the step count and the warnings,
/// or False (reason `Invalid`) with the first error as `path: message`. `runners`:
/// the names of the Runners in the Playbook's namespace. `old`: the `Ready` condition
/// in status, whose `lastTransitionTime` is kept while the status stays the same.
pub fn ready_condition(
    spec: &PlaybookSpec,
    generation: Option<i64>,
    runners: &[String],
    old: Option<&Condition>,
    now: Timestamp,
) -> Condition {
    let findings = lint_playbook(spec, Some(runners));
    let (errors, warnings): (Vec<&Finding>, Vec<&Finding>) =
        findings.iter().partition(|f| f.severity == Severity::Error);
    let (status, reason, message) = match errors.split_first() {
        Some((first, rest)) => {
            let more = if rest.is_empty() {
                String::new()
            } else {
                format!(" (and {} more: run playbook-operator lint)", rest.len())
            };
            ("False", REASON_INVALID, format!("{}{more}", line(first)))
        }
        None => {
            let steps = step_count(spec);
            let steps = format!("{steps} step{}", if steps == 1 { "" } else { "s" });
            let message = match warnings.as_slice() {
                [] => steps,
                [only] => format!("{steps}; 1 warning: {}", line(only)),
                [first, ..] => format!(
                    "{steps}; {} warnings (run playbook-operator lint), the first: {}",
                    warnings.len(),
                    line(first)
                ),
            };
            ("True", REASON_VALID, message)
        }
    };
    condition(status, reason, message, generation, old, now)
}

/// `Ready` for a Trigger: False (reason `Invalid`) with what to fix when a regex
/// does not compile or a template does not parse; True (reason `Valid`) otherwise.
pub fn trigger_ready_condition(
    spec: &TriggerSpec,
    generation: Option<i64>,
    old: Option<&Condition>,
    now: Timestamp,
) -> Condition {
    let (status, reason, message) = match crate::engine::alert::trigger::validate(spec) {
        Ok(()) if !spec.enabled => ("True", REASON_VALID, "valid, but disabled".to_string()),
        Ok(()) => ("True", REASON_VALID, "matching alerts".to_string()),
        Err(e) => ("False", REASON_INVALID, e),
    };
    condition(status, reason, message, generation, old, now)
}

/// `Ready` for a Schedule: False (reason `Invalid`) with what to fix (`invalid`,
/// from `engine::schedule::plan`), else True with the next tick.
pub fn schedule_ready_condition(
    invalid: Option<&str>,
    suspended: bool,
    next: Option<DateTime<Utc>>,
    generation: Option<i64>,
    old: Option<&Condition>,
    now: Timestamp,
) -> Condition {
    let (status, reason, message) = match (invalid, next) {
        (Some(m), _) => ("False", REASON_INVALID, m.to_string()),
        (None, _) if suspended => ("True", REASON_VALID, "suspended: no run starts".into()),
        (None, Some(next)) => (
            "True",
            REASON_VALID,
            format!("next run at {}", next.to_rfc3339()),
        ),
        (None, None) => ("True", REASON_VALID, "the schedule has no next tick".into()),
    };
    condition(status, reason, message, generation, old, now)
}

/// What the Runner reconciler found of the Secret a Runner names in `secretName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretCheck {
    /// No `secretName`: the default Secret is optional (only `{{ secret }}` reads it).
    NotNamed,
    Found(String),
    Missing(String),
    /// The operator may not read it (RBAC): not checked.
    Unchecked(String),
}

/// Reason of a Runner's `Ready=False`.
pub const REASON_SECRET_NOT_FOUND: &str = "SecretNotFound";

/// `Ready` for a Runner: False (reason `SecretNotFound`) when the Secret it names
/// explicitly does not exist, True (reason `Valid`) otherwise. `old` and `now` as in
/// [`ready_condition`].
pub fn runner_ready_condition(
    generation: Option<i64>,
    secret: &SecretCheck,
    old: Option<&Condition>,
    now: Timestamp,
) -> Condition {
    let (status, reason, message) = match secret {
        SecretCheck::NotNamed => ("True", REASON_VALID, "no secretName set".to_string()),
        SecretCheck::Found(name) => ("True", REASON_VALID, format!("Secret '{name}' exists")),
        SecretCheck::Unchecked(name) => (
            "True",
            REASON_VALID,
            format!("Secret '{name}' not checked: the operator may not read Secrets here"),
        ),
        SecretCheck::Missing(name) => (
            "False",
            REASON_SECRET_NOT_FOUND,
            format!(
                "secretName: Secret '{name}' does not exist in this namespace: create it, or set secretName to an existing one (steps reading it would not start)"
            ),
        ),
    };
    condition(status, reason, message, generation, old, now)
}

fn condition(
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    old: Option<&Condition>,
    now: Timestamp,
) -> Condition {
    let last_transition_time = old
        .filter(|o| o.type_ == READY && o.status == status)
        .map(|o| o.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: READY.into(),
        status: status.into(),
        reason: reason.into(),
        message: cut(&message, MAX_MESSAGE),
        observed_generation: generation,
        last_transition_time,
    }
}

fn line(f: &Finding) -> String {
    format!("{}: {}", f.path, f.message)
}

/// Steps that run a container: an entry, or each step of a block.
fn step_count(spec: &PlaybookSpec) -> usize {
    spec.steps
        .iter()
        .map(|e| e.steps.as_ref().map_or(1, Vec::len))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PlaybookSpec {
        serde_yaml::from_str(yaml).expect("a PlaybookSpec")
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("a timestamp")
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_valid_playbook_is_ready_with_its_step_count() {
        let s = spec("steps: [{id: a, image: x}, {id: b, image: x, runner: prod}]");
        let c = ready_condition(&s, Some(3), &names(&["default", "prod"]), None, at(10));
        assert_eq!(c.type_, "Ready");
        assert_eq!(c.status, "True");
        assert_eq!(c.reason, "Valid");
        assert_eq!(c.message, "2 steps");
        assert_eq!(c.observed_generation, Some(3));
        assert_eq!(c.last_transition_time, Time(at(10)));
    }

    #[test]
    fn warnings_are_counted_and_the_first_one_shown() {
        let one = spec("steps: [{id: a, image: x, env: {A: '{{ .params.P }}'}}]");
        let c = ready_condition(&one, None, &names(&["default"]), None, at(1));
        assert_eq!(c.status, "True");
        assert!(
            c.message
                .starts_with("1 step; 1 warning: spec.steps[0].env.A: reads .params.P"),
            "{}",
            c.message
        );
        let two = spec(
            "steps: [{id: a, image: x, env: {A: '{{ .params.P }}', B: '{{ .Q }}'}}, {id: b, image: x}]",
        );
        let c = ready_condition(&two, None, &names(&["default"]), None, at(1));
        assert!(
            c.message.starts_with(
                "2 steps; 2 warnings (run playbook-operator lint), the first: spec.steps[0].env.A:"
            ),
            "{}",
            c.message
        );
    }

    #[test]
    fn an_unknown_runner_makes_it_invalid_with_the_first_error_and_a_count() {
        let s = spec(
            "steps: [{id: a, image: x, runner: prood}, {id: b, image: x, runner: prood}, {id: c, image: x}]",
        );
        let c = ready_condition(&s, Some(1), &names(&["prod"]), None, at(5));
        assert_eq!(c.status, "False");
        assert_eq!(c.reason, "Invalid");
        assert!(
            c.message.starts_with(
                "spec.steps[0].runner: Runner 'prood' does not exist (known: prod) (did you mean 'prod'?)"
            ),
            "{}",
            c.message
        );
        assert!(
            c.message
                .ends_with(" (and 1 more: run playbook-operator lint)"),
            "{}",
            c.message
        );
        // The Runner appears: Ready.
        let fixed = ready_condition(
            &s,
            Some(1),
            &names(&["prod", "prood", "default"]),
            Some(&c),
            at(9),
        );
        assert_eq!(fixed.status, "True");
        assert_eq!(fixed.last_transition_time, Time(at(9)), "a transition");
    }

    #[test]
    fn a_dependency_cycle_is_named() {
        let s =
            spec("steps: [{id: a, image: x, dependsOn: [b]}, {id: b, image: x, dependsOn: [a]}]");
        let c = ready_condition(&s, None, &names(&["default"]), None, at(1));
        assert_eq!(c.status, "False");
        assert!(
            c.message
                .starts_with("spec.steps: dependsOn forms a cycle: a → b → a"),
            "{}",
            c.message
        );
        assert!(!c.message.contains("more"), "one error: {}", c.message);
    }

    #[test]
    fn the_transition_time_is_kept_while_the_status_stays() {
        let bad = spec("steps: [{id: a, image: x, runner: nope}]");
        let first = ready_condition(&bad, Some(1), &[], None, at(100));
        let again = ready_condition(&bad, Some(2), &[], Some(&first), at(200));
        assert_eq!(again.last_transition_time, Time(at(100)));
        assert_eq!(again.observed_generation, Some(2));
        assert!(again.message.contains("(known: none)"), "{}", again.message);
        // The same inputs give the same condition: nothing to write.
        let same = ready_condition(&bad, Some(2), &[], Some(&again), at(300));
        assert_eq!(same, again);
    }

    #[test]
    fn a_runner_is_ready_unless_its_named_secret_is_missing() {
        let missing = SecretCheck::Missing("team".into());
        let c = runner_ready_condition(Some(2), &missing, None, at(1));
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "SecretNotFound")
        );
        assert!(
            c.message.contains("Secret 'team' does not exist"),
            "{}",
            c.message
        );
        assert_eq!(c.observed_generation, Some(2));
        let again = runner_ready_condition(Some(2), &missing, Some(&c), at(5));
        assert_eq!(again, c, "unchanged, time kept");
        let found =
            runner_ready_condition(Some(2), &SecretCheck::Found("team".into()), Some(&c), at(9));
        assert_eq!(
            (found.status.as_str(), found.reason.as_str()),
            ("True", "Valid")
        );
        assert_eq!(found.last_transition_time, Time(at(9)));
        for check in [SecretCheck::NotNamed, SecretCheck::Unchecked("x".into())] {
            assert_eq!(
                runner_ready_condition(None, &check, None, at(1)).status,
                "True"
            );
        }
    }

    #[test]
    fn blocks_count_their_steps_and_long_messages_are_cut() {
        let s = spec(
            "steps: [{id: a, image: x}, {id: g, steps: [{id: b, image: x}, {id: c, image: x}]}]",
        );
        let c = ready_condition(&s, None, &names(&["default"]), None, at(1));
        assert_eq!(c.message, "3 steps");
        let long = format!(
            "steps: [{{id: a, image: x, runner: r{}}}]",
            "é".repeat(2000)
        );
        let c = ready_condition(&spec(&long), None, &[], None, at(1));
        assert!(c.message.len() <= MAX_MESSAGE && c.message.ends_with('…'));
    }
}
