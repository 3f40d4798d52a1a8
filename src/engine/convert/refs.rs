//! Finds the root paths written in a template's source text (`.x.y`, `$.'x'.y`,
//! `get "$.x.y"`) with their byte positions, so the converter can rename a step id
//! everywhere it is read and lint can see how a path is used.
//!
//! This is a lexical scan, not the template parser: it must work on text the engine
//! rejects (lint reports that separately) and must leave every other byte untouched,
//! so a renamed id is the only change a user sees in a diff.

use std::collections::BTreeMap;

/// One path read from the template root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPath {
    /// The segments, quotes removed: `$.'redis-info'.info` → `["redis-info", "info"]`.
    pub segments: Vec<String>,
    /// Byte range of the root marker plus first segment (`$.'x'`, `.x`) in the source.
    pub head: std::ops::Range<usize>,
    /// The path is the first thing in its action (`{{ .x }}`), so its value is printed.
    pub printed: bool,
    /// The path is the argument right after `secret`.
    pub secret_arg: bool,
}

/// Every `{{ ... }}` action of `src` as (byte offset of its body, body).
pub(crate) fn actions(src: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(open) = src[at..].find("{{") {
        let body_start = at + open + 2;
        let Some(len) = action_len(&src[body_start..]) else {
            break;
        };
        out.push((body_start, &src[body_start..body_start + len]));
        at = body_start + len + 2;
    }
    out
}

/// Length of an action body up to its closing `}}`, skipping string literals (a `}}`
/// inside `"..."` does not close the action).
fn action_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'`' => i = skip_string(b, i)?,
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Index just past the string literal that starts at `i` (`"` with escapes, or `` ` ``).
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let quote = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if quote == b'"' && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == quote {
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Reads the segments of a path whose first segment starts at `i` (just after the
/// root's '.'): identifiers and quoted ids joined by '.'. Returns the segments and
/// the end of the first segment; `None` when no segment starts at `i`.
fn segments(b: &[u8], mut i: usize) -> Option<(Vec<String>, usize)> {
    let mut segs = Vec::new();
    let mut first_end = None;
    loop {
        let start = i;
        if b.get(i) == Some(&b'\'') {
            let close = b[i + 1..].iter().position(|&c| c == b'\'')? + i + 1;
            segs.push(String::from_utf8_lossy(&b[i + 1..close]).into_owned());
            i = close + 1;
        } else if b.get(i).is_some_and(|&c| is_ident_start(c)) {
            while b.get(i).is_some_and(|&c| is_ident(c)) {
                i += 1;
            }
            segs.push(String::from_utf8_lossy(&b[start..i]).into_owned());
        } else {
            break;
        }
        first_end.get_or_insert(i);
        if b.get(i) == Some(&b'.')
            && b.get(i + 1)
                .is_some_and(|&c| c == b'\'' || is_ident_start(c))
        {
            i += 1;
        } else {
            break;
        }
    }
    first_end.map(|end| (segs, end))
}

/// The root paths `src` reads, in order. Paths under a rebound `.` (inside `range` or
/// `with`) are not root paths and are left out; `$.` paths always are.
pub fn root_paths(src: &str) -> Vec<RootPath> {
    let mut out = Vec::new();
    // Open blocks; true for those that rebind `.` (range, with).
    let mut blocks: Vec<bool> = Vec::new();
    for (offset, body) in actions(src) {
        let trimmed = body.trim_start_matches('-').trim_start();
        if trimmed.starts_with("/*") {
            continue;
        }
        let keyword: String = trimmed
            .bytes()
            .take_while(|&c| is_ident(c))
            .map(char::from)
            .collect();
        let rebound_before = blocks.iter().any(|&r| r);
        match keyword.as_str() {
            "range" | "with" => blocks.push(true),
            "if" | "block" | "define" => blocks.push(false),
            "end" => {
                blocks.pop();
            }
            _ => {}
        }
        // The range/with expression itself is read with the outer `.`.
        let dot_rebound = rebound_before;
        let lead = body.len() - trimmed.len();
        scan_body(body.as_bytes(), offset, lead, dot_rebound, &mut out);
    }
    out
}

fn scan_body(b: &[u8], offset: usize, lead: usize, dot_rebound: bool, out: &mut Vec<RootPath>) {
    let mut i = 0;
    let mut prev_word = String::new();
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'`' {
            let end = skip_string(b, i).unwrap_or(b.len());
            // `get "$.x.y"` names a path in a string: the same root, so it counts.
            if c == b'"'
                && b.get(i + 1) == Some(&b'$')
                && b.get(i + 2) == Some(&b'.')
                && let Some((segments, first_end)) = self::segments(&b[..end - 1], i + 3)
            {
                out.push(RootPath {
                    segments,
                    head: offset + i + 1..offset + first_end,
                    printed: false,
                    secret_arg: false,
                });
            }
            prev_word.clear();
            i = end;
            continue;
        }
        let dollar_root = c == b'$' && b.get(i + 1) == Some(&b'.');
        let dot_root = c == b'.'
            && (i == 0
                || !matches!(b[i - 1], b')' | b']' | b'\'' | b'.' | b'$') && !is_ident(b[i - 1]));
        if dollar_root || (dot_root && !dot_rebound) {
            let seg_start = if dollar_root { i + 2 } else { i + 1 };
            if let Some((segments, first_end)) = self::segments(b, seg_start) {
                out.push(RootPath {
                    segments,
                    head: offset + i..offset + first_end,
                    printed: i == lead,
                    secret_arg: prev_word == "secret",
                });
                i = first_end;
                prev_word.clear();
                continue;
            }
        }
        if is_ident_start(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            prev_word = String::from_utf8_lossy(&b[start..i]).into_owned();
            continue;
        }
        if !c.is_ascii_whitespace() && c != b'(' {
            prev_word.clear();
        }
        i += 1;
    }
}

/// `src` with every root path whose first segment is a key of `renames` pointing at
/// the new id instead, written `$.'new-id'` (a DNS label needs the quoted form).
/// Returns `None` when nothing changed.
pub fn rename_ids(src: &str, renames: &BTreeMap<String, String>) -> Option<String> {
    if renames.is_empty() || !src.contains("{{") {
        return None;
    }
    let mut out = String::with_capacity(src.len());
    let mut at = 0;
    for path in root_paths(src) {
        let Some(new) = path.segments.first().and_then(|s| renames.get(s)) else {
            continue;
        };
        out.push_str(&src[at..path.head.start]);
        out.push_str(&format!("$.'{new}'"));
        at = path.head.end;
    }
    if at == 0 {
        return None;
    }
    out.push_str(&src[at..]);
    Some(out)
}

/// A `foreach.in` path (`filtered`, `$.get_pods.items`, `.x`, or a template) with its
/// first segment renamed as in [`rename_ids`].
pub fn rename_path(path: &str, renames: &BTreeMap<String, String>) -> Option<String> {
    if path.contains("{{") {
        return rename_ids(path, renames);
    }
    let rest = path
        .strip_prefix("$.")
        .or_else(|| path.strip_prefix('.'))
        .unwrap_or(path);
    let (segs, first_end) = segments(rest.as_bytes(), 0)?;
    let new = renames.get(segs.first()?)?;
    Some(format!("$.'{new}'{}", &rest[first_end..]))
}
