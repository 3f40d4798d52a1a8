//! A playbook's jq filter runs in a child process of the real binary: filters that
//! would crash or wedge the controller fail with a message saying what to change,
//! and ordinary ones give exactly what they give in process.

use std::path::Path;
use std::time::Instant;

use playbook_operator::engine::parse::jq;
use playbook_operator::jq_sandbox::{MAX_MEMORY_BYTES, evaluate_with, sandbox_memory};
use serde_json::json;

fn sandbox(code: &str) -> Result<Vec<serde_json::Value>, String> {
    sandbox_within(MAX_MEMORY_BYTES, code)
}

fn sandbox_within(memory_bytes: u64, code: &str) -> Result<Vec<serde_json::Value>, String> {
    let exe = Path::new(env!("CARGO_BIN_EXE_playbook-operator"));
    evaluate_with(
        exe,
        memory_bytes,
        code,
        &json!({"items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}]}),
    )
}

#[test]
fn ordinary_filters_give_what_they_give_in_process() {
    let input = json!({"items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}]});
    for code in [
        ".items | map(.n) | add",
        ".items[] | select(.n > 1) | .name",
        "[.items[].name] | join(\",\")",
        "empty",
        "error(\"no pods\")",
        "env",
    ] {
        assert_eq!(sandbox(code), jq::run_here(code, &input), "{code}");
    }
    assert_eq!(sandbox(".items | length"), Ok(vec![json!(2)]));
    assert_eq!(sandbox("error(\"no pods\")"), Err("no pods".to_string()));
}

#[test]
fn a_filter_that_would_crash_or_wedge_the_controller_fails_alone_and_says_why() {
    let cases = [
        ("def f: 1 + f; f", "recursed too deep"),
        (
            "reduce range(40) as $i (\"x\"; . + .) | length",
            "more than 1024 MiB of memory",
        ),
        ("until(false; .)", "longer than 10s"),
    ];
    for (code, want) in cases {
        let started = Instant::now();
        let err = sandbox(code).expect_err(code);
        assert!(err.contains(want), "{code}: {err}");
        assert!(
            started.elapsed().as_secs() < 30,
            "{code} took {:?}",
            started.elapsed()
        );
    }
}

/// The chart's pod has a 512Mi limit: the sandbox gets half, and a filter that
/// collects a billion numbers stops there, with a message naming that limit, while
/// this (parent) process goes on.
#[test]
fn in_a_512mi_pod_a_greedy_filter_stops_at_half_the_pod_limit() {
    let pod: u64 = 512 * 1024 * 1024;
    let limit = sandbox_memory(Some(pod));
    assert_eq!(limit, 256 * 1024 * 1024);
    let started = Instant::now();
    let err = sandbox_within(limit, "[range(1e9)] | length").expect_err("stopped");
    assert!(
        err.contains("needed more than 256 MiB of memory") && err.contains("limit(n; ...)"),
        "{err}"
    );
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
    // The parent is fine, and so is the next filter under the same limit.
    assert_eq!(sandbox_within(limit, ".items | length"), Ok(vec![json!(2)]));
}
