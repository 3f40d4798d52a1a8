//! Fuzzing, bounded so that `make unit` runs it: every input a user or an alert
//! sender controls goes through the pure core without a panic, a case slower than
//! 1 s, or memory without bound. Targets: the template engine, every built-in output
//! parser, the StackPulse converter and the four webhook body parsers.
//!
//! Inputs are the seed corpus (tests/fuzz/corpus/TARGET/ plus the examples) and
//! proptest mutations of it: inserted tokens of the target's language, deletions,
//! duplicated spans and random characters. proptest because it runs on stable Rust
//! inside `cargo test` (cargo-fuzz needs nightly and its own runner), and its
//! strategies compose seeds and mutations in a few lines. The random stream is
//! fixed, so a failure repeats; `FUZZ_SEED=N` explores another one and
//! `FUZZ_SECONDS=N` runs each target longer (default 5 s, about 20 s in all).
//! A failure prints the input. Memory: a counting allocator refuses to go past
//! 1 GiB live, which aborts the test binary loudly.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use playbook_operator::api::{AlertSource, OutputParser};
use playbook_operator::engine::template::{self, Budget};
use playbook_operator::engine::{alert, convert, parse};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::json;

/// Live heap bytes past which allocation fails (the process aborts: a loud failure
/// rather than a machine brought down by a parser that grows without end).
const MEMORY_CAP: usize = 1 << 30;
/// The slowest one case may be.
const CASE_LIMIT: Duration = Duration::from_secs(1);

struct CappedAllocator;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size() > MEMORY_CAP {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as is to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file of `dirs` (sorted, for a stable seed order), as text.
fn seeds(dirs: &[&str]) -> Vec<String> {
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(repo().join(d)).unwrap_or_else(|e| panic!("{d}: {e}")))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let seeds: Vec<String> = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {dirs:?}");
    seeds
}

#[derive(Debug, Clone)]
enum Mutation {
    Insert(Index, &'static str),
    InsertChar(Index, char),
    Delete(Index, usize),
    /// The span repeated: nests and lengthens what is there.
    Repeat(Index, usize, usize),
}

fn mutation(tokens: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), proptest::sample::select(tokens)).prop_map(|(i, t)| Mutation::Insert(i, t)),
        1 => (any::<Index>(), any::<char>()).prop_map(|(i, c)| Mutation::InsertChar(i, c)),
        2 => (any::<Index>(), 1..40usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<Index>(), 1..60usize, 2..5usize).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
    ]
}

fn boundary(s: &str, i: &Index) -> usize {
    let mut at = i.index(s.len() + 1);
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(mut s: String, mutations: &[Mutation]) -> String {
    for m in mutations {
        match m {
            Mutation::Insert(i, t) => s.insert_str(boundary(&s, i), t),
            Mutation::InsertChar(i, c) => s.insert(boundary(&s, i), *c),
            Mutation::Delete(i, n) | Mutation::Repeat(i, n, _) => {
                let from = boundary(&s, i);
                let mut to = (from + n).min(s.len());
                while !s.is_char_boundary(to) {
                    to -= 1;
                }
                let span = s[from..to].to_string();
                let with = match m {
                    Mutation::Repeat(_, _, k) => span.repeat(*k),
                    _ => String::new(),
                };
                s.replace_range(from..to, &with);
            }
        }
    }
    s
}

/// A seed, mutated 0 to 8 times.
fn inputs(seeds: Vec<String>, tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(mutation(tokens), 0..8),
    )
        .prop_map(|(seed, ms)| apply(seed, &ms))
}

fn seconds() -> Duration {
    let s = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok());
    Duration::from_secs_f64(s.unwrap_or(5.0))
}

fn runner() -> TestRunner {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}

/// Runs `check` on the seeds, then on generated inputs until the time is up; fails
/// on a panic or a slow case, naming the input. Returns how many cases ran.
fn fuzz<T: Debug + Clone>(
    target: &str,
    seeds: &[T],
    strategy: impl Strategy<Value = T>,
    check: impl Fn(&T),
) -> usize {
    let mut runner = runner();
    let started = Instant::now();
    let mut cases = 0;
    let mut one = |input: &T| {
        let at = Instant::now();
        if catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
            panic!("{target}: panicked on {input:?}");
        }
        let took = at.elapsed();
        assert!(
            took <= CASE_LIMIT,
            "{target}: one case took {took:?}: {input:?}"
        );
        cases += 1;
    };
    seeds.iter().for_each(&mut one);
    while started.elapsed() < seconds() {
        let input = strategy
            .new_tree(&mut runner)
            .expect("a generated input")
            .current();
        one(&input);
    }
    println!("fuzz {target}: {cases} cases in {:?}", started.elapsed());
    cases
}

const TEMPLATE_TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{{- ",
    " -}}",
    "{{ end }}",
    " range ",
    " if ",
    " else ",
    " with ",
    " end ",
    "{{ range 100000 }}",
    "{{ range .pods }}",
    "$",
    "$x := ",
    ".",
    "|",
    "(",
    ")",
    "\"",
    "'",
    "`",
    "100000",
    "-1",
    "1e308",
    "0.1",
    "nil",
    "true",
    " printf \"%0999999d\" 1 ",
    " replace \"a\" \"aaaaaaaa\" ",
    " toPrettyJson ",
    " fromJson ",
    " secret \"k\" ",
    " index ",
    " slice ",
    " len ",
    " and ",
    " or ",
    " not ",
    " eq ",
    " lt ",
    " default ",
    " get ",
    ".pods",
    "[0]",
    "[:]",
    ".*",
    "$.'redis-info'",
    ".labels",
    "/*",
    "*/",
    "\u{E000}",
    "$(X)",
];

fn template_context() -> serde_json::Value {
    json!({
        "params": {"Host": "db-0"}, "Host": "db-0", "RedisPort": 6379,
        "pods": (0..50).map(|i| json!({"name": format!("p{i}"), "ready": i % 2 == 0})).collect::<Vec<_>>(),
        "labels": {"a": "1", "b": "$(X)"}, "output": "raw", "event": {"Type": "Alert"},
        "redis-info": {"info": {"Clients": {"connected_clients": 0}}},
        "execution": {"id": "e-1", "phase": "Failed"}, "n": 100000, "neg": -1.5,
    })
}

#[test]
fn templates_render_or_fail_within_their_budget() {
    let ctx = template_context();
    // The default budget, with half the time: a case must end well under 1 s.
    let budget = Budget {
        time: Some(Duration::from_millis(500)),
        ..Budget::default()
    };
    let seeds = seeds(&["tests/fuzz/corpus/template"]);
    let cases = fuzz(
        "template",
        &seeds,
        inputs(seeds.clone(), TEMPLATE_TOKENS),
        |src| match template::render_within(src, &ctx, &budget) {
            Ok(out) => {
                assert!(
                    out.len() <= budget.output_bytes + src.len(),
                    "{} bytes",
                    out.len()
                );
                assert!(
                    template::references(src).is_ok(),
                    "renders but has no references"
                );
            }
            Err(e) => assert!(!e.message.is_empty()),
        },
    );
    assert!(cases > seeds.len());
}

const OUTPUT_TOKENS: &[&str] = &[
    "<-- END -->",
    "\n",
    "\r\n",
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ": ",
    "=",
    ",",
    "#",
    " ",
    "\t",
    "&a ",
    "*a",
    "- ",
    "? ",
    "!!binary ",
    "1e999",
    "-0",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "NAME   READY",
    "# Clients\n",
    "key=value\n",
    "\u{FEFF}",
    "\u{E000}",
    "---\n",
    "...\n",
];

/// Every built-in parser (a jq filter too: it runs in process here, `.` only).
fn parsers() -> Vec<OutputParser> {
    let p = |name: &str, jq: Option<&str>, pattern: Option<&str>, separator: Option<&str>| {
        OutputParser {
            name: name.into(),
            jq: jq.map(Into::into),
            pattern: pattern.map(Into::into),
            separator: separator.map(Into::into),
        }
    };
    vec![
        p("json", None, None, None),
        p("json", Some(".pods? // ."), None, None),
        p("yaml", None, None, None),
        p("yaml", Some("."), None, None),
        p("raw", None, None, None),
        p("kv", None, None, None),
        p("kv", None, None, Some(":")),
        p("redis-info", None, None, None),
        p(
            "regex",
            None,
            Some(r"(?P<name>\w+)\s+(?P<ready>\d+/\d+)"),
            None,
        ),
        p("lines", None, None, None),
        p("table", None, None, None),
    ]
}

#[test]
fn every_output_parser_parses_or_explains() {
    let parsers = parsers();
    let seeds = seeds(&["tests/fuzz/corpus/output"]);
    let cases = fuzz(
        "output parsers",
        &seeds,
        inputs(seeds.clone(), OUTPUT_TOKENS),
        |log| {
            for p in &parsers {
                if let Ok(v) = parse::parse_output(p, log, None) {
                    assert!(v.is_object(), "{}: {v}", p.name);
                }
            }
            if let Ok(v) = parse::parse_default(log, Some("<-- END -->")) {
                assert!(v.is_object(), "default: {v}");
            }
            if let Ok(v) = parse::parse_image_output("registry.example/p:1", log) {
                assert!(v.is_object(), "image: {v}");
            }
        },
    );
    assert!(cases > seeds.len());
}

const CONVERT_TOKENS: &[&str] = &[
    "\n",
    "\n  ",
    "\n    - ",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "#",
    "&a ",
    "*a",
    "steps:\n  - ",
    "foreach: {in: x, value: v}\n",
    "when: '{{ true }}'\n",
    "id: a_b\n",
    "name: us-docker.pkg.dev/stackpulse/public/json-parser\n",
    "output_parser: {name: raw}\n",
    "parameters: [{name: P, type: secret}]\n",
    "{{ $.a.b }}",
    "---\n",
    "kind: Trigger\n",
    "range: 100000\n",
    "break: '{{ false }}'\n",
    "envFrom: {integrationRef: x}\n",
];

#[test]
fn the_stackpulse_converter_converts_or_explains() {
    let seeds = seeds(&[
        "tests/fuzz/corpus/convert",
        "examples/stackpulse",
        "examples/playbooks",
        "examples/triggers",
    ]);
    let cases = fuzz(
        "convert",
        &seeds,
        inputs(seeds.clone(), CONVERT_TOKENS),
        |yaml| match convert::convert(yaml) {
            Ok(c) => {
                let _ = convert::to_yaml(&c.resources);
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        },
    );
    assert!(cases > seeds.len());
}

const ALERT_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "1e999",
    "-1",
    "\"alerts\": [",
    "\"labels\": {",
    "\"id\": \"x\"",
    "\"status\": \"resolved\"",
    "\"startsAt\": \"2026-13-40T99:00:00Z\"",
    "\"event\": {",
    "\"messages\": [",
    "\\u0000",
    "\\ud800",
    "\u{E000}",
    " ",
];

#[test]
fn the_webhook_body_parsers_parse_or_explain() {
    let seeds = seeds(&["tests/fuzz/corpus/alert", "examples/alerts"]);
    let sources = [
        AlertSource::Alertmanager,
        AlertSource::Grafana,
        AlertSource::Pagerduty,
        AlertSource::Generic,
    ];
    let cases = fuzz(
        "webhook bodies",
        &seeds,
        inputs(seeds.clone(), ALERT_TOKENS),
        |body| {
            for source in sources {
                match alert::parse(source, body.as_bytes()) {
                    Ok(alerts) => {
                        for a in &alerts {
                            let _ = a.template_context();
                        }
                    }
                    Err(e) => assert!(!e.0.is_empty(), "{source:?}"),
                }
            }
        },
    );
    assert!(cases > seeds.len());
}
