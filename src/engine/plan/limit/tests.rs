//! `limits.remediations` in the planner, as stories: the other runs' records come in
//! with `Remediated`, what this run records is read back with `Remediation`.

use serde_json::json;

use super::super::scenario::Act::*;
use super::super::scenario::{Act, Case, S, Scenario, run_all, step};
use crate::api::ExecutionPhase::{Failed, Running, WaitingApproval};
use crate::api::Phase;

const BY_NAMESPACE: &str = "{{ .alert.labels.namespace }}";

/// A playbook limited to 2 remediations per namespace per hour, run for an alert
/// about namespace `shop`.
fn limited(name: &'static str, steps: Vec<S>, script: Vec<Act>) -> Case {
    limited_by(name, BY_NAMESPACE, steps, script)
}

fn limited_by(name: &'static str, key: &str, steps: Vec<S>, script: Vec<Act>) -> Case {
    let alert = json!({"labels": {"namespace": "shop"}});
    Case {
        name,
        scenario: Scenario::new(steps).limit(2, 3600, key, alert),
        script,
    }
}

fn check_then_restart() -> Vec<S> {
    vec![step("check"), step("restart").phase(Phase::Remediate)]
}

const HELD: &str = "2 remediations for key 'shop' in the last 1h; limit 2: 0 of 1 approvals; waiting for one more from anyone but 'alice': playbook-operator approve run-1 restart";

fn cases() -> Vec<Case> {
    vec![
        limited(
            "past the cap a remediate step waits, saying why, and runs once someone else approves",
            check_then_restart(),
            vec![
                Remediated("uid-a", "shop", 60),
                Remediated("uid-b", "shop", 1800),
                Plan,
                States("check=Running restart=Pending"),
                Remediation(None),
                Exit("check", 0, "{}"),
                Plan,
                States("check=Succeeded restart=WaitingApproval"),
                PhaseIs(WaitingApproval),
                Creates(0),
                Events(&["StepSucceeded", "RemediationHeld", "WaitingApproval"]),
                Msg("restart", HELD),
                RunMsg(HELD),
                Remediation(Some(("shop", false))),
                // Planning again keeps the reason and says nothing new; once the
                // window has passed too: a person was asked, and answers.
                Plan,
                Events(&[]),
                Msg("restart", HELD),
                Wait(3600),
                Plan,
                States("check=Succeeded restart=WaitingApproval"),
                Msg("restart", HELD),
                Approve("restart", "alice"),
                Plan,
                States("check=Succeeded restart=WaitingApproval"),
                Msg("restart", HELD),
                Msg("restart", "approval by 'alice' ignored"),
                Events(&["ApprovalIgnored"]),
                Approve("restart", "bob"),
                Plan,
                States("check=Succeeded restart=Running"),
                PhaseIs(Running),
                Msg("restart", "approved by bob"),
                Creates(1),
                Remediation(Some(("shop", true))),
            ],
        ),
        limited(
            "below the cap the remediate step runs at once and the run counts",
            check_then_restart(),
            vec![
                Remediated("uid-a", "shop", 60),
                // Not counted: another key, out of the window, the run's own record.
                Remediated("uid-b", "cart", 60),
                Remediated("uid-c", "shop", 3600),
                Remediated("uid-1", "shop", 0),
                Plan,
                Exit("check", 0, "{}"),
                Plan,
                States("check=Succeeded restart=Running"),
                Events(&["StepSucceeded"]),
                Remediation(Some(("shop", true))),
            ],
        ),
        limited(
            "steps of other phases are never held",
            vec![
                step("look"),
                step("triage").phase(Phase::Triage),
                step("page").phase(Phase::Communicate),
            ],
            vec![
                Remediated("uid-a", "shop", 60),
                Remediated("uid-b", "shop", 60),
                Plan,
                States("look=Running triage=Pending page=Pending"),
                Exit("look", 0, "{}"),
                Plan,
                Exit("triage", 0, "{}"),
                Plan,
                States("look=Succeeded triage=Succeeded page=Running"),
                Remediation(None),
            ],
        ),
        limited(
            "a run counts once: its later remediate steps are not held",
            vec![
                step("restart").phase(Phase::Remediate),
                step("scale").phase(Phase::Remediate),
            ],
            vec![
                Remediated("uid-a", "shop", 60),
                Plan,
                States("restart=Running scale=Pending"),
                Remediation(Some(("shop", true))),
                Remediated("uid-b", "shop", 10),
                Remediated("uid-c", "shop", 5),
                Exit("restart", 0, "{}"),
                Plan,
                States("restart=Succeeded scale=Running"),
            ],
        ),
        limited(
            "a step that needs an approval anyway says nothing of the limit below the cap",
            vec![step("restart").phase(Phase::Remediate).approval()],
            vec![
                Plan,
                States("restart=WaitingApproval"),
                Events(&["WaitingApproval"]),
                Msg(
                    "restart",
                    "0 of 1 approvals; waiting for one more from anyone but 'alice': playbook-operator approve run-1 restart",
                ),
                Remediation(Some(("shop", false))),
                Approve("restart", "bob"),
                Plan,
                States("restart=Running"),
                Remediation(Some(("shop", true))),
            ],
        ),
        limited_by(
            "a key that does not render fails the step with what to change",
            "{{ nosuchfunc .alert }}",
            check_then_restart(),
            vec![
                Remediated("uid-a", "shop", 60),
                Plan,
                Exit("check", 0, "{}"),
                Plan,
                States("check=Succeeded restart=Failed"),
                PhaseIs(Failed),
                Creates(0),
                Msg("restart", "limits.remediations.key of Playbook 'pb': "),
                Msg("restart", "fix the key template"),
            ],
        ),
        limited_by(
            "an empty key: all runs of the playbook share one count",
            "",
            check_then_restart(),
            vec![
                Remediated("uid-a", "", 60),
                Remediated("uid-b", "", 60),
                Plan,
                Exit("check", 0, "{}"),
                Plan,
                States("check=Succeeded restart=WaitingApproval"),
                Msg(
                    "restart",
                    "2 remediations for key '' in the last 1h; limit 2",
                ),
            ],
        ),
    ]
}

#[test]
fn remediation_limit() {
    run_all(cases().into_iter());
}
