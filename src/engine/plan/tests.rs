//! The planner's semantics as a table of stories: each case is a playbook and a
//! script of what happens in the cluster and what the planner must then decide.
//!
//! Cases marked "(template)" need the real template engine (`.key`, `.value`).

mod approvals;
mod flow;
mod lifecycle;
mod outputs;

use pretty_assertions::assert_eq;

use super::scenario::{Case, Scenario, run_all, step};
use super::{Intent, ObservedJob};
use crate::api::ExecutionPhase::{Failed, Pending};
use crate::api::Param;

/// Every story of the planner's semantics but the approvals (`approvals`).
fn cases() -> Vec<Case> {
    let groups = [flow::cases(), lifecycle::cases(), outputs::cases()];
    groups.into_iter().flatten().collect()
}

#[test]
fn planner_scenarios() {
    run_all(
        cases()
            .into_iter()
            .filter(|c| !c.name.starts_with("(template)")),
    );
}

/// The cases whose templates read `.key`/`.value`: they need the real template engine.
#[test]
fn planner_scenarios_with_templates() {
    run_all(
        cases()
            .into_iter()
            .filter(|c| c.name.starts_with("(template)")),
    );
}

#[test]
fn scenarios_with_special_inputs() {
    let mut s = Scenario::new(vec![step("a")]).runner("prod").with(|i| {
        i.playbook
            .iter_mut()
            .for_each(|p| p.steps[0].step.runner = Some("prod".into()))
    });
    s.plan();
    assert_eq!(s.states(), "a=Running");

    let mut s = Scenario::new(vec![step("a")]).declare(Param {
        name: "Port".into(),
        required: true,
        ..Default::default()
    });
    s.plan();
    assert_eq!(s.input.status.phase, Failed);
    assert!(
        s.input
            .status
            .message
            .clone()
            .unwrap_or_default()
            .contains("required param 'Port' is missing")
    );

    let mut s = Scenario::new(vec![step("a")]).with(|i| i.playbook = None);
    let plan = s.plan();
    assert_eq!(plan.requeue_after.map(|d| d.as_secs()), Some(10));
    assert_eq!(
        (s.input.status.phase, s.input.status.message.as_deref()),
        (Pending, Some("waiting for Playbook 'pb' in namespace prod"))
    );
}

/// The controller may die after creating Jobs and before writing the status that
/// says their steps run: planning again asks for the same Jobs, under the same names
/// (409: the controller records the uids of the ones it finds), and reaches the same
/// status. Or, when that status claims a remediation, after writing it (without the
/// uids) and before creating them: planning again creates the same Jobs, with no new
/// Events. And a Cancelled run whose Job survived gets its delete again.
#[test]
fn crash_restart_is_idempotent() {
    let steps = || {
        vec![
            step("a"),
            step("b").after(&[]),
            step("c").after(&["a", "b"]),
        ]
    };
    let mut straight = Scenario::new(steps());
    let first = straight.plan().clone();

    let mut s = Scenario::new(steps());
    s.plan_and_crash_after_jobs();
    let names = s.creates();
    assert_eq!(names.len(), 2);
    let again = s.plan().clone();
    assert_eq!(s.creates(), names, "the same Jobs asked for again");
    assert_eq!(s.created.len(), 2, "and none created twice");
    assert_eq!(
        again.status, first.status,
        "the status of a run without the crash"
    );

    for st in s.input.status.steps.iter_mut() {
        st.job_uid = None;
    }
    s.input.jobs.clear();
    s.created.clear();
    let again = s.plan().clone();
    assert_eq!(s.creates(), names, "same Job names");
    assert_eq!(s.created, names, "created again");
    assert_eq!(again.status, first.status, "nothing new in status");
    assert!(s.events().is_empty(), "no Events for what already happened");

    s.input.spec.cancel = true;
    s.plan();
    assert_eq!(s.deletes().len(), 2);
    for name in &names {
        s.input.jobs.insert(name.clone(), ObservedJob::default());
    }
    s.plan();
    assert_eq!(s.deletes(), names, "deletes re-emitted after a crash");
    assert!(s.events().is_empty());
    assert!(
        s.last
            .as_ref()
            .is_some_and(|p| !p.intents.iter().any(|i| matches!(i, Intent::CreateJob(_))))
    );
}

/// Only a status that newly claims a remediation goes before its Jobs; `created`
/// records a new Job's uid on the Running attempt that names it, and nowhere else.
#[test]
fn the_status_goes_first_only_for_a_new_remediation_claim() {
    use crate::api::{ExecutionStatus, RemediationRecord, StepState, StepStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let record = |at: bool| RemediationRecord {
        key: "k".into(),
        at: at.then_some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
        held: None,
    };
    let status = |r: Option<RemediationRecord>| ExecutionStatus {
        remediation: r,
        ..Default::default()
    };
    let plan = |r| super::Plan {
        status: status(r),
        intents: vec![],
        requeue_after: None,
    };
    for (current, planned, first) in [
        (None, None, false),
        (None, Some(record(false)), false), // counted, not claimed yet (held)
        (None, Some(record(true)), true),
        (Some(record(false)), Some(record(true)), true),
        (Some(record(true)), Some(record(true)), false), // claimed before
    ] {
        let want = format!("{current:?} -> {planned:?}");
        assert_eq!(
            plan(planned).status_first(&status(current)),
            first,
            "{want}"
        );
    }

    let attempt = |id: &str, state, job: &str| StepStatus {
        id: id.into(),
        state,
        job_name: Some(job.into()),
        ..Default::default()
    };
    let mut p = plan(None);
    p.status.steps = vec![
        attempt("a", StepState::Running, "run-a-1"),
        attempt("b", StepState::Succeeded, "run-b-1"),
    ];
    p.status.finally = vec![attempt("f", StepState::Running, "run-f-1")];
    p.created("run-a-1", "uid-a");
    p.created("run-b-1", "uid-b");
    p.created("run-f-1", "uid-f");
    let uids: Vec<_> = p
        .status
        .steps
        .iter()
        .chain(&p.status.finally)
        .map(|s| s.job_uid.as_deref())
        .collect();
    assert_eq!(uids, [Some("uid-a"), None, Some("uid-f")]);
}

/// What the controller reads from the API server before planning: the Jobs Running
/// steps recorded that the caches do not show (just created, or deleted).
#[test]
fn recorded_jobs_the_caches_do_not_show_are_read_before_planning() {
    let mut s = Scenario::new(vec![step("a"), step("b").after(&[])]);
    s.plan();
    assert!(super::recorded_unseen(&s.input).is_empty(), "both cached");
    let a = s.status_of("a").job_name.unwrap_or_default();
    s.input.jobs.remove(&a);
    let uid = format!("uid-{a}");
    assert_eq!(
        super::recorded_unseen(&s.input),
        [(a.as_str(), uid.as_str())]
    );
    s.lose_job("b"); // never recorded: asked for again, nothing to read
    assert_eq!(super::recorded_unseen(&s.input).len(), 1);
}
