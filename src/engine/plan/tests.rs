//! The planner's semantics as a table of stories: each case is a playbook and a
//! script of what happens in the cluster and what the planner must then decide.
//!
//! Cases marked "(template)" need the real template engine (`.key`, `.value`).

use pretty_assertions::assert_eq;
use serde_json::json;

use super::scenario::Act::*;
use super::scenario::{Case, Scenario, block, case, run_all, step};
use super::{Intent, ObservedJob};
use crate::api::ExecutionPhase::{Cancelled, Failed, Pending, Running, Succeeded, WaitingApproval};
use crate::api::{Approval, Approvers, OnTimeout, Param, Phase};

const UPTIME: &str = "registry.example/parsers/uptime:1";

const BIG_OUTPUT: &str = concat!(
    r#"{"small": 1, "big": ""#,
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    r#""}"#
);

fn cases() -> Vec<Case> {
    vec![
        case(
            "sequential",
            vec![step("a"), step("b")],
            vec![
                Plan,
                States("a=Running b=Pending"),
                PhaseIs(Running),
                Events(&["StepStarted"]),
                Creates(1),
                Exit("a", 0, r#"{"x": 1}"#),
                Plan,
                States("a=Succeeded b=Running"),
                Events(&["StepSucceeded", "StepStarted"]),
                Exit("b", 0, "{}"),
                Plan,
                States("a=Succeeded b=Succeeded"),
                PhaseIs(Succeeded),
                Events(&["StepSucceeded", "ExecutionSucceeded"]),
                RunMsg("2 steps succeeded, 0 skipped"),
                Plan,
                Events(&[]),
                Creates(0),
            ],
        ),
        case(
            "DAG: independent steps run together, a join waits for both",
            vec![
                step("a"),
                step("b").after(&[]),
                step("c").after(&["a", "b"]),
                step("d"),
            ],
            vec![
                Plan,
                States("a=Running b=Running c=Pending d=Pending"),
                Creates(2),
                Exit("b", 0, "{}"),
                Plan,
                States("a=Running b=Succeeded c=Pending d=Pending"),
                Exit("a", 0, "{}"),
                Plan,
                States("a=Succeeded b=Succeeded c=Running d=Pending"),
            ],
        ),
        case(
            "when false skips the step, the next one runs",
            vec![step("a").when("false"), step("b")],
            vec![
                Plan,
                States("a=Skipped b=Running"),
                Msg("a", "when rendered false: false"),
                Events(&["StepSkipped", "StepStarted"]),
            ],
        ),
        case(
            "a group whose when is false skips all its steps",
            vec![
                block("g", vec![step("x"), step("y")]).when("false"),
                step("c"),
            ],
            vec![
                Plan,
                States("g.x=Skipped g.y=Skipped c=Running"),
                Msg("g.y", "block 'g': when rendered false: false"),
            ],
        ),
        case(
            "a group whose when holds runs its steps in order",
            vec![
                block("g", vec![step("x"), step("y")]).when("true"),
                step("c"),
            ],
            vec![
                Plan,
                States("g.x=Running g.y=Pending c=Pending"),
                Exit("g.x", 0, "{}"),
                Plan,
                States("g.x=Succeeded g.y=Running c=Pending"),
            ],
        ),
        case(
            "foreach over a list from a step's output, one item after the other",
            vec![
                step("list"),
                step("each").foreach_path("$.list.pods"),
                step("after"),
            ],
            vec![
                Plan,
                Exit("list", 0, r#"{"pods": ["p1", "p2"]}"#),
                Plan,
                States("list=Succeeded each[0]=Running each[1]=Pending after=Pending"),
                Exit("each[0]", 0, r#"{"n": 0}"#),
                Plan,
                States("list=Succeeded each[0]=Succeeded each[1]=Running after=Pending"),
                Exit("each[1]", 0, r#"{"n": 1}"#),
                Plan,
                States("list=Succeeded each[0]=Succeeded each[1]=Succeeded after=Running"),
            ],
        ),
        case(
            "(template) foreach renders each item into the step's env",
            vec![
                step("list"),
                step("each")
                    .foreach_path("pods")
                    .env("POD", "{{ .value }}/{{ .key }}"),
            ],
            vec![
                Plan,
                Exit("list", 0, r#"{"pods": ["p1", "p2"]}"#),
                Plan,
                Env("each[0]", "POD", "p1/0"),
                Exit("each[0]", 0, "{}"),
                Plan,
                Env("each[1]", "POD", "p2/1"),
            ],
        ),
        case(
            "(template) foreach over a range ends on break",
            vec![step("n").foreach_range(0, 4).break_when("{{ eq .key 1 }}")],
            vec![
                Plan,
                States("n[0]=Running n[1]=Pending n[2]=Pending n[3]=Pending"),
                Exit("n[0]", 0, "{}"),
                Plan,
                States("n[0]=Succeeded n[1]=Running n[2]=Pending n[3]=Pending"),
                Exit("n[1]", 0, "{}"),
                Plan,
                States("n[0]=Succeeded n[1]=Succeeded n[2]=Skipped n[3]=Skipped"),
                Msg("n[3]", "ended by break after item 1"),
                PhaseIs(Succeeded),
            ],
        ),
        case(
            "foreach over a range with a break that holds at once",
            vec![step("n").foreach_range(5, 8).break_when("true"), step("b")],
            vec![
                Plan,
                States("n[0]=Running n[1]=Pending n[2]=Pending b=Pending"),
                Exit("n[0]", 0, "{}"),
                Plan,
                States("n[0]=Succeeded n[1]=Skipped n[2]=Skipped b=Running"),
                Events(&["StepSucceeded", "StepSkipped", "StepStarted"]),
            ],
        ),
        case(
            "foreach: parallelism, per-item when, no items",
            vec![
                step("p").foreach_range(0, 3).parallel(2),
                step("w")
                    .foreach_items(vec![json!("a"), json!("b")])
                    .item_when("false")
                    .after(&[]),
                step("z").foreach_items(vec![]).after(&[]),
            ],
            vec![
                Plan,
                States(
                    "p[0]=Running p[1]=Running p[2]=Pending w[0]=Skipped w[1]=Skipped z=Skipped",
                ),
            ],
        ),
        case(
            "a looped block runs its steps per item",
            vec![
                block("per", vec![step("x"), step("y")])
                    .foreach_items(vec![json!("a"), json!("b")]),
            ],
            vec![
                Plan,
                States("per[0].x=Running per[0].y=Pending per[1].x=Pending per[1].y=Pending"),
                Exit("per[0].x", 0, "{}"),
                Plan,
                Exit("per[0].y", 0, "{}"),
                Plan,
                States("per[0].x=Succeeded per[0].y=Succeeded per[1].x=Running per[1].y=Pending"),
            ],
        ),
        case(
            "a loop over a path that is not there fails, naming it",
            vec![step("list"), step("each").foreach_path("$.list.podz")],
            vec![
                Plan,
                Exit("list", 0, r#"{"pods": []}"#),
                Plan,
                States("list=Succeeded each=Failed"),
                Msg(
                    "each",
                    "foreach 'each': '$.list.podz' not found: no 'podz' in '.list' (there: pods)",
                ),
                PhaseIs(Failed),
            ],
        ),
        case(
            "retry with backoff, then success",
            vec![step("a").retries(2, 10)],
            vec![
                Plan,
                Attempt("a", 1),
                Exit("a", 1, "boom"),
                Plan,
                States("a=Retrying"),
                Msg("a", "attempt 1 failed: exit code 1: boom"),
                Events(&["StepRetrying"]),
                Requeue(Some(10)),
                Wait(5),
                Plan,
                States("a=Retrying"),
                Creates(0),
                Events(&[]),
                Requeue(Some(5)),
                Wait(5),
                Plan,
                States("a=Running"),
                Attempt("a", 2),
                Creates(1),
                Exit("a", 1, "boom"),
                Plan,
                Requeue(Some(20)),
                Wait(20),
                Plan,
                Attempt("a", 3),
                Exit("a", 0, "{}"),
                Plan,
                States("a=Succeeded"),
                PhaseIs(Succeeded),
            ],
        ),
        case(
            "a step running past its timeout is stopped and fails the run",
            vec![step("a").timeout(30), step("b")],
            vec![
                Plan,
                Requeue(Some(30)),
                Wait(31),
                Plan,
                States("a=Failed b=Skipped"),
                Msg("a", "timed out after 30s"),
                Msg("b", "not run: step 'a' failed"),
                Deletes(1),
                PhaseIs(Failed),
                RunMsg("step 'a' failed: timed out after 30s"),
                Events(&["StepFailed", "ExecutionFailed"]),
            ],
        ),
        case(
            "a timed-out attempt is retried at once without backoff",
            vec![step("a").timeout(30).retries(1, 0)],
            vec![
                Plan,
                Wait(30),
                Plan,
                States("a=Running"),
                Attempt("a", 2),
                Deletes(1),
                Creates(1),
            ],
        ),
        case(
            "continueOnError: the step fails, the run goes on and succeeds",
            vec![step("a").continue_on_error(), step("b")],
            vec![
                Plan,
                Exit("a", 2, "oops"),
                Plan,
                States("a=Failed b=Running"),
                PhaseIs(Running),
                Exit("b", 0, "{}"),
                Plan,
                PhaseIs(Succeeded),
                RunMsg("1 steps succeeded, 0 skipped, 1 failed with continueOnError"),
            ],
        ),
        case(
            "a failure in a DAG lets the other running branch finish",
            vec![
                step("a"),
                step("b").after(&[]),
                step("c").after(&["a", "b"]),
            ],
            vec![
                Plan,
                Exit("a", 1, ""),
                Plan,
                States("a=Failed b=Running c=Skipped"),
                PhaseIs(Running),
                Exit("b", 0, r#"{"kept": true}"#),
                Plan,
                States("a=Failed b=Succeeded c=Skipped"),
                PhaseIs(Failed),
            ],
        ),
        case(
            "a failure calls off another step's retry and is still the reason named",
            vec![step("r").retries(3, 60), step("a").after(&[])],
            vec![
                Plan,
                Exit("r", 1, "flaky"),
                Plan,
                States("r=Retrying a=Running"),
                Exit("a", 1, "broken"),
                Plan,
                States("r=Failed a=Failed"),
                Msg(
                    "r",
                    "attempt 1 failed: exit code 1: flaky; not retried: step 'a' failed",
                ),
                RunMsg("step 'a' failed: exit code 1: broken"),
                PhaseIs(Failed),
            ],
        ),
        case(
            "approval: waits, ignores the requester, runs after someone else approves",
            vec![step("a").approval(), step("b")],
            vec![
                Plan,
                States("a=WaitingApproval b=Pending"),
                PhaseIs(WaitingApproval),
                Events(&["WaitingApproval"]),
                Creates(0),
                Msg("a", "playbook-operator approve run-1 a"),
                Plan,
                Events(&[]),
                Approve("a", "alice"),
                Plan,
                States("a=WaitingApproval b=Pending"),
                Msg("a", "approval by 'alice' ignored"),
                Events(&["ApprovalIgnored"]),
                Plan,
                Events(&[]),
                Wait(90),
                Approve("a", "bob"),
                Plan,
                States("a=Running b=Pending"),
                PhaseIs(Running),
                Msg("a", "approved by bob"),
                Events(&["StepStarted"]),
                Waited("a", 90),
            ],
        ),
        case(
            "cancel deletes the running Job and cancels what is left",
            vec![step("a"), step("b")],
            vec![
                Plan,
                Cancel,
                Plan,
                States("a=Cancelled b=Cancelled"),
                PhaseIs(Cancelled),
                Deletes(1),
                Events(&["ExecutionCancelled"]),
                Plan,
                Events(&[]),
                Deletes(0),
            ],
        ),
        case(
            "crash: a Running step whose Job is missing gets the same Job again",
            vec![step("a").retries(1, 0)],
            vec![
                Plan,
                Lose("a"),
                Plan,
                Recreated("a"),
                Events(&[]),
                States("a=Running"),
                Attempt("a", 1),
            ],
        ),
        case(
            "a missing runner fails the step with what to do",
            vec![step("a").runner("prod")],
            vec![
                Plan,
                States("a=Failed"),
                Msg(
                    "a",
                    "runner 'prod' not found in namespace prod: create it or set the step's runner",
                ),
                PhaseIs(Failed),
                Creates(0),
            ],
        ),
        case(
            "output that does not parse with an explicit json parser fails the step",
            vec![step("a").parser("json")],
            vec![
                Plan,
                Exit("a", 0, "no json here"),
                Plan,
                States("a=Failed"),
                Msg("a", "output: no JSON found in step output"),
            ],
        ),
        case(
            "a step with no parser that prints plain text succeeds with it as output",
            vec![step("a"), step("b")],
            vec![
                Plan,
                Exit("a", 0, "restarted 3 pods\n"),
                Plan,
                States("a=Succeeded b=Running"),
            ],
        ),
        case(
            "a misspelt parser is reported as unknown, not run as an image",
            vec![step("a").parser("jsonn")],
            vec![
                Plan,
                Exit("a", 0, "{}"),
                Plan,
                States("a=Failed"),
                Msg("a", "outputParser 'jsonn' is unknown"),
            ],
        ),
        case(
            "an image parser: raw output to a ConfigMap, a parser Job, its JSON is the output",
            vec![
                step("a").parser(UPTIME),
                step("b").env("UP", "{{ .up }} {{ .steps.a.outputs.load }}"),
            ],
            vec![
                Plan,
                Exit("a", 0, "up 3 days, load 0.5\n"),
                Plan,
                States("a=Running b=Pending"),
                ConfigMaps(1),
                Creates(1),
                RawOutput("a", "up 3 days, load 0.5\n"),
                Events(&["ParsingOutput"]),
                Requeue(Some(300)),
                // Nothing new until the parser ends: no second ConfigMap or Job.
                Plan,
                ConfigMaps(0),
                Creates(0),
                Events(&[]),
                ParserExit("a", 0, r#"{"up": 3, "load": 0.5}"#),
                Plan,
                States("a=Succeeded b=Running"),
                Output("a", r#"{"up": 3, "load": 0.5}"#),
                Events(&["StepSucceeded", "StepStarted"]),
                Env("b", "UP", "3 0.5"),
            ],
        ),
        case(
            "an image parser that prints no JSON fails the step, naming the image",
            vec![step("a").parser(UPTIME)],
            vec![
                Plan,
                Exit("a", 0, "up 3 days"),
                Plan,
                ParserExit("a", 0, "usage: uptime-parser FILE"),
                Plan,
                States("a=Failed"),
                Msg(
                    "a",
                    "output: output parser image 'registry.example/parsers/uptime:1' did not print JSON",
                ),
                Msg("a", "it printed 'usage: uptime-parser FILE'"),
                Msg("a", "fix the parser image or use a built-in parser"),
                PhaseIs(Failed),
            ],
        ),
        case(
            "an image parser that exits non-zero fails the attempt; a retry reruns the step",
            vec![step("a").parser(UPTIME).retries(1, 0)],
            vec![
                Plan,
                Exit("a", 0, "up 3 days"),
                Plan,
                ParserExit("a", 2, "cannot read /playbook/output"),
                Plan,
                States("a=Running"),
                Attempt("a", 2),
                ConfigMaps(0),
                Creates(1),
                Exit("a", 0, "up 4 days"),
                Plan,
                ConfigMaps(1),
                RawOutput("a", "up 4 days"),
                ParserExit("a", 2, "cannot read /playbook/output"),
                Plan,
                States("a=Failed"),
                Msg(
                    "a",
                    "output parser image 'registry.example/parsers/uptime:1' failed: exit code 2: cannot read /playbook/output; fix the parser image or use a built-in parser (after 2 attempts)",
                ),
            ],
        ),
        case(
            "an image parser past its deadline (the step's timeout when shorter) fails the attempt",
            vec![step("a").parser(UPTIME).timeout(60)],
            vec![
                Plan,
                Wait(50),
                Exit("a", 0, "up"),
                Plan,
                // The step's own timeout no longer runs: the parser has its own.
                Requeue(Some(60)),
                Wait(59),
                Plan,
                States("a=Running"),
                Requeue(Some(1)),
                Wait(1),
                Plan,
                States("a=Failed"),
                Msg("a", "did not finish within 60s"),
                Deletes(1),
            ],
        ),
        case(
            "restart mid-parse: a lost parser Job is asked for again under its name, once",
            vec![step("a").parser(UPTIME)],
            vec![
                Plan,
                Exit("a", 0, "up"),
                Plan,
                LoseParser("a"),
                Plan,
                ConfigMaps(0),
                Creates(1),
                Events(&[]),
                States("a=Running"),
                Plan,
                Creates(0),
                ParserExit("a", 0, "{\"up\": 1}"),
                Plan,
                States("a=Succeeded"),
            ],
        ),
        case(
            "a cancelled run deletes a running parser Job",
            vec![step("a").parser(UPTIME)],
            vec![
                Plan,
                Exit("a", 0, "up"),
                Plan,
                Cancel,
                Plan,
                States("a=Cancelled"),
                Deletes(1),
            ],
        ),
        Case {
            name: "output over the inline budget goes to a ConfigMap; the step Succeeded",
            scenario: Scenario::new(vec![step("a"), step("b")])
                .with(|i| i.limits.step_output_bytes = 300),
            script: vec![
                Plan,
                Exit("a", 0, BIG_OUTPUT),
                Plan,
                States("a=Succeeded b=Running"),
                Spilled("a"),
            ],
        },
        case(
            "an invalid playbook fails the run, naming the cycle",
            vec![step("a").after(&["b"]), step("b").after(&["a"])],
            vec![
                Plan,
                PhaseIs(Failed),
                RunMsg("invalid playbook: dependsOn cycle: a → b → a"),
                Creates(0),
            ],
        ),
        case(
            "severity from a step output once the enrich steps are done",
            vec![step("a"), step("fix").phase(Phase::Remediate)],
            vec![
                Plan,
                Severity(None),
                Exit("a", 0, r#"{"severity": "critical"}"#),
                Plan,
                Severity(Some("critical")),
            ],
        ),
    ]
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

/// A restart at any point of an image parser's start loses no raw output and runs no
/// parser twice: before status names the parser run, the same ConfigMap (409: ours)
/// and Job are asked for again from the step log, read again; after it, only a
/// missing parser Job is asked for again, and the step's log is not read again.
#[test]
fn restart_around_an_image_parser_start_is_idempotent() {
    let mut s = Scenario::new(vec![step("a").parser(UPTIME)]);
    s.plan();
    s.exit("a", 0, "up 3 days");
    let before = s.input.status.clone();
    let first = s.plan().clone();
    let config_maps = s.config_map_creates();
    let jobs = s.creates();
    assert_eq!((config_maps.len(), jobs.len()), (1, 1));
    let first_cm = s.config_maps.get(&config_maps[0]).cloned();
    assert!(
        matches!(first.intents.first(), Some(Intent::CreateConfigMap(_))),
        "the ConfigMap comes first: the controller creates it before writing status"
    );
    let run = first.status.steps[0].parser.clone().expect("a parser run");
    assert_eq!(
        (run.config_map_name.clone(), run.job_name.clone()),
        (config_maps[0].clone(), jobs[0].clone())
    );
    assert!(
        serde_json::to_string(&first.status).is_ok_and(|t| !t.contains("up 3 days")),
        "the raw output is not in status"
    );
    // The parser Job is the one the planner waits for now, not the step's.
    assert_eq!(
        super::awaiting_output(&first.status)
            .into_iter()
            .collect::<Vec<_>>(),
        vec![run.job_name.as_str()]
    );

    // Crash after the ConfigMap, before status: the old status and the step log again.
    s.input.status = before;
    s.input.jobs.remove(&jobs[0]);
    let again = s.plan().clone();
    assert_eq!(s.config_map_creates(), config_maps);
    assert_eq!(
        s.config_maps.get(&config_maps[0]).cloned(),
        first_cm,
        "same content"
    );
    assert_eq!(s.creates(), jobs);
    assert_eq!(again.status, first.status);

    // Crash after status, before the parser Job: the same Job, no ConfigMap, no Event.
    s.input.jobs.remove(&jobs[0]);
    s.plan();
    assert_eq!(s.creates(), jobs);
    assert!(s.config_map_creates().is_empty());
    assert!(s.events().is_empty());

    // Everything exists: nothing to do.
    s.plan();
    assert!(s.creates().is_empty() && s.config_map_creates().is_empty());
}

/// A log longer than a ConfigMap holds: its beginning is parsed, and the step says so.
#[test]
fn a_raw_output_too_big_for_a_config_map_is_cut_and_said_so() {
    let mut s = Scenario::new(vec![step("a").parser(UPTIME)]);
    s.plan();
    let big = "x".repeat(crate::engine::job::MAX_OUTPUT_BYTES + 10);
    s.exit("a", 0, &big);
    s.plan();
    let run = s.status_of("a").parser.expect("a parser run");
    assert!(run.input_truncated);
    assert_eq!(
        s.raw_output("a").len(),
        crate::engine::job::MAX_OUTPUT_BYTES
    );
    s.exit_parser("a", 0, r#"{"ok": true}"#);
    s.plan();
    assert_eq!(s.states(), "a=Succeeded");
    let message = s.status_of("a").message.unwrap_or_default();
    assert!(
        message.contains("the raw output was cut to its first 1048576 bytes before parsing"),
        "{message}"
    );
}

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
