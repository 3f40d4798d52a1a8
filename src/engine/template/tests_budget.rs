//! Tests for the template budgets (`budget.rs`): hostile templates fail fast with a
//! message naming the bound, and ordinary ones do not notice the budget.

use std::time::{Duration, Instant};

use serde_json::json;

use super::tests::{ctx, r};
use super::*;

/// Renders with a deterministic budget (no clock): the same count on every machine.
fn within(src: &str, ops: u64, output_bytes: usize) -> Result<String, TemplateError> {
    let budget = Budget {
        ops,
        output_bytes,
        time: None,
    };
    render_within(src, &ctx(), &budget)
}

/// With the default budget (the clock too): fails, and fast.
fn exceeded(src: &str) -> TemplateError {
    let started = Instant::now();
    let e = render(src, &ctx()).expect_err(src);
    let took = started.elapsed();
    assert!(e.exceeded.is_some(), "{src}: {e}");
    assert!(took < Duration::from_secs(3), "{src} took {took:?}");
    e
}

#[test]
fn hostile_templates_fail_on_the_bound_they_pass_and_quickly() {
    let ops = "the template did more than 1000000 operations (the budget); a range over a large number is the usual cause";
    let bytes = "the template made more than 1048576 bytes of text (the budget)";
    let cases = [
        // The attack: nested ranges with empty bodies (gtmpl iterates them alone).
        (
            "{{ range 100000 }}{{ range 100000 }}{{ end }}{{ end }}true",
            ops,
        ),
        (
            "{{ range $i := 100000 }}{{ range $k, $v := 100000 }}{{ end }}{{ end }}",
            ops,
        ),
        (
            "{{ range 100000 }}{{ if true }}{{ end }}{{ end }}{{ range 100000 }}{{ range 100 }}{{ end }}{{ end }}",
            ops,
        ),
        // Output: the author's text repeated by a loop, printed values, made texts.
        (
            "{{ range 100000 }}0123456789abcdefghijklmnopqrstuvwxyz{{ end }}",
            bytes,
        ),
        (
            "{{ range 100000 }}{{ range 1 }}{{ end }}0123456789abcdefghijklmnopqrstuvwxyz{{ end }}",
            bytes,
        ),
        (
            "{{ range 100000 }}{{ \"0123456789abcdefghijklmnopqrstuvwxyz\" }}{{ end }}",
            bytes,
        ),
        (
            "{{ replace \"x\" \"xxxxxxxxxxxxxxxx\" (replace \"x\" \"xxxxxxxxxxxxxxxx\" (replace \"x\" \"xxxxxxxxxxxxxxxx\" (replace \"x\" \"xxxxxxxxxxxxxxxx\" (replace \"x\" \"xxxxxxxxxxxxxxxx\" \"xxxxxxxxxxxxxxxx\")))) }}",
            bytes,
        ),
        ("{{ printf \"%01000000000d\" 1 }}", bytes),
        ("{{ printf \"%*d\" 1000000000 1 }}", bytes),
        ("{{ printf \"%.1000000000f\" 1.5 }}", bytes),
        // Deferred errors do not hide the budget: `and` passes over a poison value.
        (
            "{{ if and false (printf \"%01000000000d\" 1) }}x{{ end }}",
            bytes,
        ),
    ];
    for (src, want) in cases {
        // Without the clock, which bound is passed does not depend on the machine.
        let e = within(src, MAX_OPS, MAX_OUTPUT_BYTES).expect_err(src);
        assert!(e.message.starts_with(want), "{src}: {e}");
        // With it (a slow machine may stop on time first), it ends as quickly.
        let e = exceeded(src);
        assert!(e.message.contains("(the budget)"), "{src}: {e}");
    }
}

#[test]
fn the_budget_is_reported_at_the_action_that_passed_it() {
    let src = "ok {{ .RedisPort }}\n{{ range 100000 }}{{ range 100000 }}{{ end }}{{ end }}";
    let e = within(src, MAX_OPS, MAX_OUTPUT_BYTES).expect_err("over budget");
    assert_eq!((e.line, e.column), (2, 19), "{e}");
    assert!(
        e.to_string()
            .starts_with("line 2, column 19: the template did more than 1000000 operations"),
        "{e}"
    );
}

#[test]
fn small_budgets_count_deterministically() {
    // Everything counts: the range's items, each action, each call.
    assert_eq!(
        within("{{ range 3 }}{{ . }}{{ end }}", 100, 100).as_deref(),
        Ok("012")
    );
    let e = within("{{ range 50 }}{{ . }}{{ end }}", 100, 1000).expect_err("ops");
    assert_eq!(e.exceeded, Some(Exceeded::Ops(100)));
    let e = within("{{ range 50 }}ab{{ end }}", 1000, 99).expect_err("bytes");
    assert_eq!(e.exceeded, Some(Exceeded::Output(99)));
    assert_eq!(
        within("{{ range 49 }}ab{{ end }}", 1000, 99).map(|s| s.len()),
        Ok(98)
    );
    // The same template gives the same verdict every time.
    let verdicts: Vec<_> = (0..3)
        .map(|_| within("{{ range 40 }}{{ upper \"x\" }}{{ end }}", 100, 1000).is_ok())
        .collect();
    assert_eq!(verdicts, [false, false, false]);
}

#[test]
fn time_budgets_stop_a_render_and_an_outer_deadline_stops_a_batch() {
    let slow = "{{ range 100000 }}{{ range 9 }}{{ end }}{{ end }}";
    let budget = Budget {
        time: Some(Duration::ZERO),
        ..Budget::default()
    };
    let e = render_within(slow, &ctx(), &budget).expect_err("no time at all");
    assert_eq!(e.exceeded, Some(Exceeded::Time(Duration::ZERO)));
    assert!(
        e.message.contains("ran longer than 0 ms (the budget)"),
        "{e}"
    );
    let e = with_deadline(Instant::now(), || render("{{ range 3 }}{{ end }}", &ctx()))
        .expect_err("the batch's time is up");
    assert_eq!(e.exceeded, Some(Exceeded::Deadline));
    // Outside `with_deadline` the next render has its own second again.
    assert_eq!(r("{{ range 3 }}{{ . }}{{ end }}"), "012");
}

#[test]
fn ordinary_templates_stay_well_inside_the_budget() {
    let big: Vec<_> = (0..10_000)
        .map(|i| json!({"name": format!("pod-{i}")}))
        .collect();
    let ctx = json!({"pods": big});
    let out = render("{{ range .pods }}{{ .name }},{{ end }}", &ctx).expect("renders");
    assert_eq!(out.matches(',').count(), 10_000);
    let out = render("{{ toPrettyJson .pods }}", &ctx).expect("renders");
    assert!(out.len() > 200_000);
    // A condition rendering many items is fine too.
    assert!(render_condition("{{ gt (len .pods) 9999 }}", &ctx).expect("renders"));
}
