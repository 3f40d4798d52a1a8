//! What the page decides about approving and rejecting, without I/O: whether a
//! decision may be sent, and what changed between a plan someone approved and the
//! plan a step shows now.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{EnvShown, PlanView};
use crate::api::Decision;

/// A rejection needs a reason (it becomes the step's failure message); an approval
/// may have one.
pub fn reason_given(decision: Decision, reason: &str) -> Result<(), String> {
    if decision == Decision::Reject && reason.trim().is_empty() {
        return Err(
            "a rejection needs a reason: say why the step must not run (it becomes the step's failure message)"
                .into(),
        );
    }
    Ok(())
}

/// One field that differs between an earlier plan and the current one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `image`, `command`, `args`, `runner`, `serviceAccount`, `env NAME` or `pod`.
    pub field: String,
    /// As it was (`None`: unset).
    pub was: Option<String>,
    /// As it is now (`None`: removed).
    pub now: Option<String>,
}

/// What changed from `was` (an approved plan) to `now`: the fields the page shows,
/// in their order. Equal fields with different hashes mean the rest of the pod
/// template changed (resources, volumes, security contexts, placement): one `pod`
/// line says so.
pub fn plan_changes(was: &PlanView, now: &PlanView) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut field = |name: &str, a: Option<String>, b: Option<String>| {
        if a != b {
            changes.push(Change {
                field: name.to_string(),
                was: a,
                now: b,
            });
        }
    };
    let words = |v: &[String]| Some(v.join(" ")).filter(|s| !s.is_empty());
    field("runner", was.runner.clone(), now.runner.clone());
    field(
        "serviceAccount",
        was.service_account.clone(),
        now.service_account.clone(),
    );
    field("image", Some(was.image.clone()), Some(now.image.clone()));
    field("command", words(&was.command), words(&now.command));
    field("args", words(&was.args), words(&now.args));
    let env = |v: &[EnvShown]| -> BTreeMap<String, String> {
        v.iter()
            .map(|e| {
                let shown = e
                    .secret
                    .clone()
                    .or_else(|| e.value.clone())
                    .unwrap_or_default();
                (e.name.clone(), shown)
            })
            .collect()
    };
    let (a, b) = (env(&was.env), env(&now.env));
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        field(
            &format!("env {name}"),
            a.get(name).cloned(),
            b.get(name).cloned(),
        );
    }
    if changes.is_empty() && was.hash != now.hash {
        changes.push(Change {
            field: "pod".into(),
            was: None,
            now: Some(
                "the rest of the pod template (resources, volumes, security, placement)".into(),
            ),
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn plan(hash: &str, image: &str, env: &[(&str, &str)]) -> PlanView {
        PlanView {
            hash: hash.into(),
            image: image.into(),
            command: vec![],
            args: vec![],
            env: env
                .iter()
                .map(|(n, v)| EnvShown {
                    name: n.to_string(),
                    value: Some(v.to_string()),
                    secret: None,
                })
                .collect(),
            runner: None,
            service_account: None,
        }
    }

    fn change(field: &str, was: Option<&str>, now: Option<&str>) -> Change {
        Change {
            field: field.into(),
            was: was.map(str::to_string),
            now: now.map(str::to_string),
        }
    }

    #[test]
    fn a_rejection_needs_a_reason_an_approval_does_not() {
        let cases = [
            (Decision::Approve, "", true),
            (Decision::Approve, "looks right", true),
            (Decision::Reject, "disk is fine", true),
            (Decision::Reject, "", false),
            (Decision::Reject, "  \n", false),
        ];
        for (decision, reason, ok) in cases {
            assert_eq!(
                reason_given(decision, reason).is_ok(),
                ok,
                "{decision:?} {reason:?}"
            );
        }
    }

    #[test]
    fn the_changed_fields_of_a_plan_are_listed_in_order() {
        let a = plan("h1", "redis:7", &[("TARGET", "r1"), ("MODE", "soft")]);
        let mut sa = a.clone();
        sa.hash = "h2".into();
        sa.service_account = Some("admin".into());
        let mut cmd = a.clone();
        cmd.hash = "h3".into();
        cmd.command = vec!["sh".into(), "-c".into()];
        let cases: Vec<(&str, PlanView, Vec<Change>)> = vec![
            ("same plan", a.clone(), vec![]),
            (
                "image and an env value",
                plan("h2", "redis:8", &[("TARGET", "r2"), ("MODE", "soft")]),
                vec![
                    change("image", Some("redis:7"), Some("redis:8")),
                    change("env TARGET", Some("r1"), Some("r2")),
                ],
            ),
            (
                "env added and removed",
                plan("h2", "redis:7", &[("TARGET", "r1"), ("FORCE", "1")]),
                vec![
                    change("env FORCE", None, Some("1")),
                    change("env MODE", Some("soft"), None),
                ],
            ),
            (
                "service account",
                sa,
                vec![change("serviceAccount", None, Some("admin"))],
            ),
            ("command", cmd, vec![change("command", None, Some("sh -c"))]),
            (
                "only the pod template",
                {
                    let mut p = a.clone();
                    p.hash = "h9".into();
                    p
                },
                vec![change(
                    "pod",
                    None,
                    Some("the rest of the pod template (resources, volumes, security, placement)"),
                )],
            ),
        ];
        for (name, now, want) in cases {
            assert_eq!(plan_changes(&a, &now), want, "{name}");
        }
    }
}
