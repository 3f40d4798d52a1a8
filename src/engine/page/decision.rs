//! What the page decides about approving and rejecting, without I/O: whether a
//! decision may be sent, and what changed between a plan someone approved and the
//! plan a step shows now.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{EnvShown, PlanView};
use crate::api::{ApprovalRecord, Decision};

/// The form's `decision` field: what the Approve and Reject buttons send.
pub fn parse_decision(field: &str) -> Result<Decision, String> {
    match field {
        "approve" => Ok(Decision::Approve),
        "reject" => Ok(Decision::Reject),
        other => Err(format!(
            "unknown decision {other:?}: use the Approve or Reject button"
        )),
    }
}

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

/// Someone's approval of an earlier plan of a waiting step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Earlier {
    /// Who approved that plan (in the order they did).
    pub by: Vec<String>,
    pub hash: String,
    /// What changed since, when that plan is known (`None`: only its hash is).
    pub changes: Option<Vec<Change>>,
}

/// The approvals of `step` for a plan other than `now`, one entry per earlier plan
/// (the newest first), with what changed when `known` has that plan.
pub fn since_approved(
    approvals: &[ApprovalRecord],
    step: &str,
    now: &PlanView,
    known: impl Fn(&str) -> Option<PlanView>,
) -> Vec<Earlier> {
    let mut earlier: Vec<Earlier> = Vec::new();
    for a in approvals.iter().rev() {
        let Some(hash) = a.plan_hash.as_deref() else {
            continue;
        };
        if a.step != step || a.decision != Decision::Approve || hash == now.hash {
            continue;
        }
        match earlier.iter_mut().find(|e| e.hash == hash) {
            Some(e) => e.by.insert(0, a.user.clone()),
            None => earlier.push(Earlier {
                by: vec![a.user.clone()],
                hash: hash.to_string(),
                changes: known(hash).map(|was| plan_changes(&was, now)),
            }),
        }
    }
    earlier
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
    fn approvals_of_earlier_plans_say_what_changed_when_the_plan_is_known() {
        let approval = |step: &str, user: &str, hash: &str, decision| ApprovalRecord {
            step: step.into(),
            user: user.into(),
            decision,
            plan_hash: Some(hash.into()),
            ..ApprovalRecord::default()
        };
        let now = plan("h3", "redis:8", &[]);
        let approvals = [
            approval("restart", "bob", "h1", Decision::Approve),
            approval("restart", "carol", "h2", Decision::Approve),
            approval("restart", "dave", "h1", Decision::Approve),
            approval("restart", "erin", "h3", Decision::Approve),
            approval("other", "bob", "h0", Decision::Approve),
            approval("restart", "frank", "h0", Decision::Reject),
        ];
        let known = |hash: &str| (hash == "h1").then(|| plan("h1", "redis:7", &[]));
        assert_eq!(
            since_approved(&approvals, "restart", &now, known),
            vec![
                Earlier {
                    by: vec!["bob".into(), "dave".into()],
                    hash: "h1".into(),
                    changes: Some(vec![change("image", Some("redis:7"), Some("redis:8"))]),
                },
                Earlier {
                    by: vec!["carol".into()],
                    hash: "h2".into(),
                    changes: None,
                },
            ]
        );
        assert_eq!(
            since_approved(&approvals[3..4], "restart", &now, known),
            vec![]
        );
    }

    #[test]
    fn only_the_two_buttons_values_are_decisions() {
        let cases = [
            ("approve", Some(Decision::Approve)),
            ("reject", Some(Decision::Reject)),
            ("Approve", None),
            ("", None),
            ("approve ", None),
        ];
        for (field, want) in cases {
            let got = parse_decision(field);
            assert_eq!(got.clone().ok(), want, "{field:?}");
            if let Err(why) = got {
                assert!(why.contains("Approve or Reject button"), "{why}");
            }
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
