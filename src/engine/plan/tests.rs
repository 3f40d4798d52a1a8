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

/// The controller may die after writing status and before creating Jobs: planning
/// again from that status creates the same Jobs, under the same names, with no new
/// Events; and a Cancelled run whose Job survived gets its delete again.
#[test]
fn crash_restart_is_idempotent() {
    let mut s = Scenario::new(vec![
        step("a"),
        step("b").after(&[]),
        step("c").after(&["a", "b"]),
    ]);
    let first = s.plan().clone();
    let names = s.creates();
    assert_eq!(names.len(), 2);
    s.input.jobs.clear();
    let again = s.plan().clone();
    assert_eq!(s.creates(), names, "same Job names");
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
