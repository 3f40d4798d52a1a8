//! Approvals as stories: count, approvers, the requester, rejection, plan hashes,
//! foreach items, timeouts, and finally steps after a rejection or a timeout.

use crate::api::ExecutionPhase::{Failed, Succeeded};
use crate::api::{Approval, Approvers, OnTimeout, Param};
use crate::engine::plan::scenario::Act::*;
use crate::engine::plan::scenario::{Case, case, run_all, step};

/// Approvals: count, approvers, the requester, rejection, plan hashes, foreach
/// items, timeouts, and finally steps after a rejection or a timeout.
fn approval_cases() -> Vec<Case> {
    let sre = |a: &mut Approval| {
        a.approvers = Some(Approvers {
            users: vec!["carol".into()],
            groups: vec!["sre".into()],
        })
    };
    vec![
        case(
            "count 2: distinct approvers, a second approval by the same user does not count",
            vec![step("a").approval_with(|a| a.count = Some(2))],
            vec![
                Plan,
                Msg(
                    "a",
                    "0 of 2 approvals; waiting for 2 more from anyone but 'alice': playbook-operator approve run-1 a",
                ),
                Approve("a", "bob"),
                Plan,
                States("a=WaitingApproval"),
                Msg(
                    "a",
                    "1 of 2 approvals (bob); waiting for one more from anyone but 'alice'",
                ),
                Events(&["ApprovalRecorded"]),
                Approve("a", "bob"),
                Plan,
                States("a=WaitingApproval"),
                Events(&[]),
                Approve("a", "carol"),
                Plan,
                States("a=Running"),
                Msg("a", "approved by bob, carol (plan "),
            ],
        ),
        case(
            "approvers: a user outside users and groups is ignored; a group member counts",
            vec![step("a").approval_with(sre)],
            vec![
                Plan,
                Msg("a", "waiting for one more from users [carol] or groups [sre]"),
                Approve("a", "bob"),
                Plan,
                States("a=WaitingApproval"),
                Msg(
                    "a",
                    "approval by 'bob' ignored: not among the approvers (users [carol] or groups [sre])",
                ),
                Events(&["ApprovalIgnored"]),
                ApproveInGroup("a", "dave", "sre"),
                Plan,
                States("a=Running"),
                Msg("a", "approved by dave"),
            ],
        ),
        case(
            "approvers: a named user counts; the requester never does, even when named",
            vec![step("a").approval_with(|a| {
                a.approvers = Some(Approvers {
                    users: vec!["alice".into(), "carol".into()],
                    groups: vec![],
                })
            })],
            vec![
                Plan,
                Approve("a", "alice"),
                Plan,
                States("a=WaitingApproval"),
                Msg("a", "approval by 'alice' ignored: whoever requested a run"),
                Approve("a", "carol"),
                Plan,
                States("a=Running"),
            ],
        ),
        case(
            "reject: an allowed approver's rejection fails the step and the run; finally runs",
            vec![step("a").approval_with(sre), step("b")],
            vec![
                Plan,
                Reject("a", "eve", "not an approver"),
                Plan,
                States("a=WaitingApproval b=Pending"),
                Reject("a", "carol", "the disk is fine, do not restart"),
                Plan,
                Msg("a", "rejected by carol: the disk is fine, do not restart"),
                Events(&["StepFailed", "ExecutionFailed"]),
                PhaseIs(Failed),
                RunMsg("rejected by carol"),
                Creates(0),
            ],
        ),
        case(
            "reject: the requester may call off her own run",
            vec![step("a").approval(), step("b")],
            vec![
                Plan,
                Reject("a", "alice", "false alarm"),
                Plan,
                States("a=Failed b=Skipped"),
                Msg("a", "rejected by alice: false alarm"),
            ],
        ),
        case(
            "plan hash: an approval of a plan that changed since does not count",
            vec![
                step("p").after(&[]),
                step("a").after(&[]).approval().env("X", "{{ .x }}"),
            ],
            vec![
                Plan,
                States("p=Running a=WaitingApproval"),
                PlanEnv("a", "X", "1"),
                Approve("a", "bob"),
                Exit("p", 0, r#"{"x": "2"}"#),
                Plan,
                States("p=Succeeded a=WaitingApproval"),
                PlanEnv("a", "X", "2"),
                Msg("a", "the plan changed since bob approved it (hash "),
                Msg("a", ": approve again"),
                Approve("a", "bob"),
                Plan,
                States("p=Succeeded a=Running"),
                Env("a", "X", "2"),
            ],
        )
        .declare(Param {
            name: "x".into(),
            default: Some("1".into()),
            ..Default::default()
        }),
        case(
            "(template) foreach: one item's approval never counts for another item",
            vec![
                step("r")
                    .foreach_range(0, 2)
                    .parallel(2)
                    .approval()
                    .env("ITEM", "{{ .value }}"),
            ],
            vec![
                Plan,
                States("r[0]=WaitingApproval r[1]=WaitingApproval"),
                PlansDiffer("r[0]", "r[1]"),
                PlanEnv("r[1]", "ITEM", "1"),
                ApprovePlanOf("r", "bob", "r[0]"),
                ApprovePlanOf("r[1]", "carol", "r[0]"),
                Plan,
                States("r[0]=Running r[1]=WaitingApproval"),
                Msg("r[1]", "the plan changed since bob approved it (hash "),
                Msg("r[1]", "the plan changed since carol approved it (hash "),
                Approve("r[1]", "carol"),
                Plan,
                States("r[0]=Running r[1]=Running"),
                Env("r[1]", "ITEM", "1"),
            ],
        ),
        case(
            "timeout reject: the step and the run fail at the deadline; finally still runs",
            vec![
                step("a").approval_with(|a| a.timeout_seconds = Some(600)),
                step("b"),
            ],
            vec![
                Plan,
                Requeue(Some(600)),
                Wait(599),
                Plan,
                States("a=WaitingApproval b=Pending"),
                Requeue(Some(1)),
                Wait(1),
                Plan,
                States("a=Failed b=Skipped | f=Running"),
                Msg(
                    "a",
                    "approval timed out after 600s (approval.timeoutSeconds) with 0 of 1 approvals: rejected (onTimeout: reject)",
                ),
                Exit("f", 0, "{}"),
                Plan,
                PhaseIs(Failed),
                RunMsg("approval timed out after 600s"),
            ],
        )
        .finally(vec![step("f")]),
        case(
            "timeout skip: the step is skipped and the run goes on",
            vec![
                step("a").approval_with(|a| {
                    a.timeout_seconds = Some(60);
                    a.on_timeout = OnTimeout::Skip;
                }),
                step("b"),
            ],
            vec![
                Plan,
                Wait(60),
                Plan,
                States("a=Skipped b=Running"),
                Msg("a", "skipped (onTimeout: skip)"),
                Exit("b", 0, "{}"),
                Plan,
                PhaseIs(Succeeded),
            ],
        ),
        case(
            "reject: finally steps still run after a rejection",
            vec![step("a").approval()],
            vec![
                Plan,
                Reject("a", "bob", "no"),
                Plan,
                States("a=Failed | f=Running"),
                Exit("f", 0, "{}"),
                Plan,
                PhaseIs(Failed),
            ],
        )
        .finally(vec![step("f")]),
    ]
}

#[test]
fn approval_scenarios() {
    run_all(approval_cases().into_iter());
}
