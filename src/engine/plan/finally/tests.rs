//! `finally` steps as planner stories (the scenario DSL of `plan::tests`).

use crate::api::ExecutionPhase::{Cancelled, Failed, Running, Succeeded};
use crate::engine::plan::scenario::Act::*;
use crate::engine::plan::scenario::{Case, Scenario, run_all, step};
use crate::engine::plan::validate_graph;

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "after success: in order, a failing one does not stop the next, phase stays Succeeded",
            scenario: Scenario::new(vec![step("a")]).finally(vec![step("f1"), step("f2")]),
            script: vec![
                Plan,
                Exit("a", 0, "{}"),
                Plan,
                States("a=Succeeded | f1=Running f2=Pending"),
                PhaseIs(Running),
                Events(&["StepSucceeded", "FinallyStarted"]),
                RunMsg("main steps succeeded; running the finally steps"),
                Exit("f1", 2, "disk full"),
                Plan,
                States("a=Succeeded | f1=Failed f2=Running"),
                PhaseIs(Running),
                Exit("f2", 0, "{}"),
                Plan,
                States("a=Succeeded | f1=Failed f2=Succeeded"),
                PhaseIs(Succeeded),
                RunMsg("1 steps succeeded, 0 skipped; finally step(s) failed: 'f1'"),
                Events(&["StepSucceeded", "FinallyFailed", "ExecutionSucceeded"]),
                Plan,
                Events(&[]),
                Creates(0),
            ],
        },
        Case {
            name: "after a failed step: the finally step sees the phase and the failed step",
            scenario: Scenario::new(vec![step("a"), step("b")]).finally(vec![
                step("notify")
                    .env("PHASE", "{{ .execution.phase }}")
                    .env("FAILED", "{{ .execution.failedStep }}")
                    .env("OUT", "{{ .steps.a.exitCode }}"),
            ]),
            script: vec![
                Plan,
                Exit("a", 3, "boom"),
                Plan,
                States("a=Failed b=Skipped | notify=Running"),
                PhaseIs(Running),
                Events(&["StepFailed", "FinallyStarted"]),
                Env("notify", "PHASE", "Failed"),
                Env("notify", "FAILED", "a"),
                Env("notify", "OUT", "3"),
                Exit("notify", 0, "{}"),
                Plan,
                PhaseIs(Failed),
                RunMsg("step 'a' failed"),
                Events(&["StepSucceeded", "ExecutionFailed"]),
            ],
        },
        Case {
            name: "cancel runs the finally steps, and a cancel during them skips none",
            scenario: Scenario::new(vec![step("a")]).finally(vec![step("f1"), step("f2")]),
            script: vec![
                Plan,
                Cancel,
                Plan,
                States("a=Cancelled | f1=Running f2=Pending"),
                Deletes(1),
                PhaseIs(Running),
                Plan,
                States("a=Cancelled | f1=Running f2=Pending"),
                Deletes(0),
                Creates(0),
                Exit("f1", 0, "{}"),
                Plan,
                States("a=Cancelled | f1=Succeeded f2=Running"),
                Exit("f2", 0, "{}"),
                Plan,
                PhaseIs(Cancelled),
                Events(&["StepSucceeded", "ExecutionCancelled"]),
            ],
        },
        Case {
            name: "a finally Job lost in a crash is created again, once",
            scenario: Scenario::new(vec![step("a")]).finally(vec![step("f1")]),
            script: vec![
                Plan,
                Exit("a", 0, "{}"),
                Plan,
                Lose("f1"),
                Plan,
                Recreated("f1"),
                Events(&[]),
                Exit("f1", 0, "{}"),
                Plan,
                PhaseIs(Succeeded),
            ],
        },
    ]
}

#[test]
fn finally_scenarios() {
    run_all(cases().into_iter());
}

#[test]
fn finally_ids_are_checked_with_the_graph() {
    let mut pb = Scenario::new(vec![step("a")])
        .finally(vec![step("a"), step("b").after(&["a"])])
        .input
        .playbook
        .expect("a playbook");
    let errors = validate_graph(&pb).expect_err("duplicate id and dependsOn");
    let text = errors.join("\n");
    assert!(
        text.contains("finally step 'a': id 'a' is also a step's id"),
        "{text}"
    );
    assert!(
        text.contains("finally step 'b': dependsOn is not allowed"),
        "{text}"
    );
    pb.finally.truncate(0);
    assert!(validate_graph(&pb).is_ok());
}
