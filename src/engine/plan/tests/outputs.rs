//! What becomes of a step's output: built-in parsers, image parsers (the raw output
//! in a ConfigMap, a parser Job, restarts around it), and output over the inline
//! budget spilled to a ConfigMap.

use pretty_assertions::assert_eq;

use crate::api::ExecutionPhase::Failed;
use crate::engine::plan::scenario::Act::*;
use crate::engine::plan::scenario::{Case, Scenario, case, step};
use crate::engine::plan::{Intent, awaiting_output};

const UPTIME: &str = "registry.example/parsers/uptime:1";

const BIG_OUTPUT: &str = concat!(
    r#"{"small": 1, "big": ""#,
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    r#""}"#
);

/// A termination message the kubelet cut at its 4 KiB: JSON that never closes.
fn cut_message() -> &'static str {
    let text = format!(r#"{{"pods": "{}"#, "p".repeat(4096 - 10));
    Box::leak(text.into_boxed_str())
}

pub(super) fn cases() -> Vec<Case> {
    vec![
        case(
            "a termination message is the output: no log is needed",
            vec![step("a"), step("b").env("N", "{{ .steps.a.outputs.n }}")],
            vec![
                Plan,
                Hands("a", r#"{"n": 2}"#),
                Plan,
                States("a=Succeeded b=Running"),
                Output("a", r#"{"n": 2}"#),
                Env("b", "N", "2"),
            ],
        ),
        case(
            "a termination message cut at the kubelet's 4 KiB fails the step and says so",
            vec![step("a").parser("json")],
            vec![
                Plan,
                Hands("a", cut_message()),
                Plan,
                States("a=Failed"),
                Msg("a", "output: "),
                Msg(
                    "a",
                    "cut at 4 KiB by the kubelet: print a larger output to the log",
                ),
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
                Events(&["StepSucceeded"]),
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
    ]
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
        awaiting_output(&first.status)
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
