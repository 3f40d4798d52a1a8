//! The `json` parser's search for the step's JSON value in its output, before the jq
//! filter and the `{"output": ...}` wrapping in `mod.rs`.
//!
//! This is the StackPulse SDK's JSON formatter (what its `json-parser` image does to
//! arbitrary text): find the first `{` or `[` from which valid JSON parses, trying
//! later positions when one fails. Two refinements:
//! - Searching a whole log (no end marker), a value that runs to the end of the text
//!   wins over earlier ones: logs often hold JSON log lines or `[INFO]` tags before the
//!   output. When no value reaches the end, the first one is taken, as the SDK does.
//!   After a marker the step has said where its output starts: the first value wins.
//! - A candidate that is valid up to the end of the text (a log cut short by
//!   `limitBytes`) ends the search with an error, instead of returning some object
//!   nested inside it.

use serde_json::Value;

/// Why `find_json` found nothing.
#[derive(Debug, PartialEq)]
pub(super) enum NotFound {
    /// No `{` or `[` at all.
    Nothing,
    /// The candidate that was valid furthest: most likely the output the step meant.
    Invalid(String),
    /// Too many failed attempts (see `find_json`).
    GaveUp,
}

/// Candidates are pre-checked by a scanner that allocates nothing and costs a few
/// nanoseconds a byte; only the chosen text is parsed into a `Value` by serde_json.
/// Successes move the search past the value, so they cost one pass in all; a failure
/// may have scanned far (an unclosed array) and the next candidate starts one byte
/// later, so failures draw on a budget of a few passes over the text. Without it a
/// megabyte of `[` would cost 128 bytes a candidate, a million times.
///
/// `first_line` is the line of the whole log on which `text` starts, for messages.
pub(super) fn find_json(
    text: &str,
    first_line: usize,
    prefer_end: bool,
) -> Result<Value, NotFound> {
    const PASSES: usize = 4;
    let mut budget = text.len().saturating_mul(PASSES).saturating_add(1 << 16);
    let bytes = text.as_bytes();
    // Computed once: trimming the whole rest at every value would be quadratic when
    // the text ends in a long run of whitespace.
    let content_end = text.trim_end().len();
    let line_of = |at: usize| {
        first_line
            + bytes[..at.min(bytes.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
    };
    let mut first_value = None;
    let mut furthest: Option<(usize, usize, Fail)> = None; // (start, reach, why)
    let mut pos = 0;
    while let Some(off) = bytes[pos..].iter().position(|b| matches!(b, b'{' | b'[')) {
        let start = pos + off;
        let fail = match scan(bytes, start) {
            Err(fail) => fail,
            Ok(end) => {
                let reaches_end = !prefer_end || text[end..content_end.max(end)].trim().is_empty();
                // A later value that does not reach the end is never used: skip it.
                if !reaches_end && first_value.is_some() {
                    pos = end;
                    continue;
                }
                match serde_json::from_str::<Value>(&text[start..end]) {
                    Ok(v) if reaches_end => return Ok(v),
                    Ok(v) => {
                        first_value = Some(v);
                        pos = end;
                        continue;
                    }
                    // The scanner is laxer than serde_json about `\u` escapes (lone
                    // surrogates); count it as a failure like any other.
                    Err(_) => Fail {
                        at: end,
                        why: Why::Escape,
                    },
                }
            }
        };
        let reach = fail.at.max(start + 1);
        // Everything after `start` was valid JSON so far: any later candidate is a
        // piece of this one, not a value of its own. It is also the error to report.
        let truncated = fail.why == Why::Eof;
        if truncated
            || furthest
                .as_ref()
                .is_none_or(|(s, r, _)| reach - start > r - s)
        {
            furthest = Some((start, reach, fail));
        }
        budget = budget.saturating_sub(reach - start);
        if truncated || budget == 0 {
            if first_value.is_none() && !truncated {
                return Err(NotFound::GaveUp);
            }
            break;
        }
        pos = start + 1;
    }
    if let Some(v) = first_value {
        return Ok(v);
    }
    Err(match furthest {
        None => NotFound::Nothing,
        Some((start, _, fail)) => {
            let problem = match fail.why {
                Why::Eof => "the output ends inside it (was the log cut short?)".to_string(),
                Why::Depth => format!("it is nested more than {MAX_DEPTH} levels deep"),
                Why::Escape => "it holds an invalid string escape".to_string(),
                Why::Control => format!(
                    "line {} has a control character inside a string",
                    line_of(fail.at)
                ),
                Why::Unexpected => {
                    let found = text.get(fail.at..).and_then(|t| t.chars().next());
                    let found = found.unwrap_or(' ');
                    format!("unexpected {found:?} on line {}", line_of(fail.at))
                }
            };
            NotFound::Invalid(format!(
                "the JSON starting on line {} is not valid: {problem}",
                line_of(start)
            ))
        }
    })
}

/// serde_json refuses 128 levels of nesting; refuse them here too.
const MAX_DEPTH: usize = 127;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Why {
    Eof,
    Depth,
    Escape,
    Control,
    Unexpected,
}

#[derive(Debug, Clone, Copy)]
struct Fail {
    at: usize,
    why: Why,
}

/// Checks that a JSON value starts at `i`; returns where it ends. Iterative (a stack
/// of open containers as bits), so no input can exhaust the real stack.
fn scan(b: &[u8], mut i: usize) -> Result<usize, Fail> {
    let fail = |at: usize, why| Fail { at, why };
    let unexpected = |at: usize| {
        let why = if at >= b.len() {
            Why::Eof
        } else {
            Why::Unexpected
        };
        Fail { at, why }
    };
    // Bit d of `objects` says whether open container d is an object.
    let mut objects: u128 = 0;
    let mut depth = 0usize;
    'value: loop {
        i = skip_ws(b, i);
        match b.get(i) {
            Some(c @ (b'[' | b'{')) => {
                if depth == MAX_DEPTH {
                    return Err(fail(i, Why::Depth));
                }
                let is_object = *c == b'{';
                objects = (objects & !(1 << depth)) | (u128::from(is_object) << depth);
                depth += 1;
                i = skip_ws(b, i + 1);
                let close = if is_object { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    i += 1;
                    depth -= 1;
                } else if is_object {
                    i = key(b, i)?;
                    continue 'value;
                } else {
                    continue 'value;
                }
            }
            Some(b'"') => i = string(b, i)?,
            Some(b't') => i = literal(b, i, b"true")?,
            Some(b'f') => i = literal(b, i, b"false")?,
            Some(b'n') => i = literal(b, i, b"null")?,
            Some(b'-' | b'0'..=b'9') => i = number(b, i)?,
            _ => return Err(unexpected(i)),
        }
        // After a value: close containers or move to the next element.
        loop {
            if depth == 0 {
                return Ok(i);
            }
            let in_object = objects & (1 << (depth - 1)) != 0;
            i = skip_ws(b, i);
            match b.get(i) {
                Some(b',') if in_object => {
                    i = key(b, skip_ws(b, i + 1))?;
                    continue 'value;
                }
                Some(b',') => {
                    i += 1;
                    continue 'value;
                }
                Some(b'}') if in_object => {}
                Some(b']') if !in_object => {}
                _ => return Err(unexpected(i)),
            }
            i += 1;
            depth -= 1;
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `"key"` and `:`; returns the position after the colon.
fn key(b: &[u8], i: usize) -> Result<usize, Fail> {
    if b.get(i) != Some(&b'"') {
        let why = if i >= b.len() {
            Why::Eof
        } else {
            Why::Unexpected
        };
        return Err(Fail { at: i, why });
    }
    let i = skip_ws(b, string(b, i)?);
    match b.get(i) {
        Some(b':') => Ok(i + 1),
        None => Err(Fail {
            at: i,
            why: Why::Eof,
        }),
        Some(_) => Err(Fail {
            at: i,
            why: Why::Unexpected,
        }),
    }
}

fn string(b: &[u8], mut i: usize) -> Result<usize, Fail> {
    i += 1; // opening quote
    loop {
        match b.get(i) {
            None => {
                return Err(Fail {
                    at: i,
                    why: Why::Eof,
                });
            }
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match b.get(i + 1) {
                None => {
                    return Err(Fail {
                        at: i + 1,
                        why: Why::Eof,
                    });
                }
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    for k in 0..4 {
                        match b.get(i + 2 + k) {
                            Some(h) if h.is_ascii_hexdigit() => {}
                            None => {
                                return Err(Fail {
                                    at: i + 2 + k,
                                    why: Why::Eof,
                                });
                            }
                            Some(_) => {
                                return Err(Fail {
                                    at: i,
                                    why: Why::Escape,
                                });
                            }
                        }
                    }
                    i += 6;
                }
                Some(_) => {
                    return Err(Fail {
                        at: i,
                        why: Why::Escape,
                    });
                }
            },
            Some(c) if *c < 0x20 => {
                return Err(Fail {
                    at: i,
                    why: Why::Control,
                });
            }
            Some(_) => i += 1,
        }
    }
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Result<usize, Fail> {
    for (k, w) in word.iter().enumerate() {
        match b.get(i + k) {
            Some(c) if c == w => {}
            None => {
                return Err(Fail {
                    at: i + k,
                    why: Why::Eof,
                });
            }
            Some(_) => {
                return Err(Fail {
                    at: i + k,
                    why: Why::Unexpected,
                });
            }
        }
    }
    Ok(i + word.len())
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn number(b: &[u8], mut i: usize) -> Result<usize, Fail> {
    let digits = |mut i: usize| {
        let from = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i, i > from)
    };
    let need = |(i, any): (usize, bool)| {
        if any {
            Ok(i)
        } else if i >= b.len() {
            Err(Fail {
                at: i,
                why: Why::Eof,
            })
        } else {
            Err(Fail {
                at: i,
                why: Why::Unexpected,
            })
        }
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = if b.get(i) == Some(&b'0') {
        i + 1
    } else {
        need(digits(i))?
    };
    if b.get(i) == Some(&b'.') {
        i = need(digits(i + 1))?;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = need(digits(i))?;
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find(text: &str) -> Result<Value, NotFound> {
        find_json(text, 1, true)
    }

    #[test]
    fn sdk_examples() {
        assert_eq!(find(r#"{"a":"b"}"#), Ok(json!({"a": "b"})));
        assert_eq!(find(r#"[{"a":"b"}]"#), Ok(json!([{"a": "b"}])));
        assert_eq!(find(r#"foo bar {"a":"b"}"#), Ok(json!({"a": "b"})));
        assert_eq!(find("nothing here"), Err(NotFound::Nothing));
        assert_eq!(find(""), Err(NotFound::Nothing));
    }

    #[test]
    fn later_candidates_after_failures() {
        let logs =
            "2024-05-01T10:00:00Z [INFO] connecting to {cluster}\n[WARN] slow\n{\"pods\": 3}\n";
        assert_eq!(find(logs), Ok(json!({"pods": 3})));
    }

    #[test]
    fn value_reaching_the_end_wins_over_json_log_lines() {
        let logs = "{\"level\":\"info\",\"msg\":\"start\"}\n{\"level\":\"info\",\"msg\":\"done\"}\n{\"ready\": true}\n";
        assert_eq!(find(logs), Ok(json!({"ready": true})));
        // Nothing reaches the end: the first value, as the SDK does.
        let text = "{\"a\": 1} then {\"b\": 2} trailing";
        assert_eq!(find(text), Ok(json!({"a": 1})));
        // After a marker, the first value wins outright.
        assert_eq!(
            find_json("{\"a\": 1}\n{\"b\": 2}", 1, false),
            Ok(json!({"a": 1}))
        );
    }

    #[test]
    fn cut_short_output_is_an_error_not_a_fragment() {
        let text = "[INFO] start\n{\"items\": [\n{\"a\": 1},\n{\"b\": 2";
        assert_eq!(
            find_json(text, 10, false),
            Err(NotFound::Invalid(
                "the JSON starting on line 11 is not valid: the output ends inside it (was the log cut short?)".into()
            ))
        );
        let text = "{\"pods\": [\"a\" \"b\"]}";
        assert_eq!(
            find(text),
            Err(NotFound::Invalid(
                "the JSON starting on line 1 is not valid: unexpected '\"' on line 1".into()
            ))
        );
    }

    /// The scanner agrees with serde_json on what is one valid value and where it ends.
    #[test]
    fn scanner_agrees_with_serde_json() {
        let cases = [
            "{}",
            "[]",
            "[1]",
            "[-0]",
            "[0.5e+3]",
            "[1E5]",
            "[01]",
            "[1.]",
            "[.5]",
            "[-]",
            "[1e]",
            "{\"a\":1,}",
            "[1,]",
            "[,1]",
            "{\"a\" 1}",
            "{a:1}",
            "{\"a\":[true,false,null]}",
            "[tru]",
            "[nul]",
            "[\"\\u00e9\\n\"]",
            "[\"\\x\"]",
            "[\"\\u12\"]",
            "[\"a\tb\"]",
            "[\"é💣\"]",
            "{\"a\":{\"b\":{}}}",
            "[1 2]",
            "[1]]",
            "{\"a\":1}}",
            " [ 1 , { } ] ",
            "[\"\\\"\"]",
            "{\"\":\"\"}",
            "[{]",
            "[}",
            "{]",
            "[[[]]]",
            "[\"unterminated",
        ];
        for case in cases {
            let trimmed = case.trim_start();
            let ours = scan(trimmed.as_bytes(), 0);
            let theirs = serde_json::Deserializer::from_str(trimmed)
                .into_iter::<Value>()
                .next()
                .map(|r| r.is_ok());
            assert_eq!(ours.is_ok(), theirs == Some(true), "{case}: {ours:?}");
            if let Ok(end) = ours {
                assert!(
                    serde_json::from_str::<Value>(&trimmed[..end]).is_ok(),
                    "{case}"
                );
            }
        }
        let deep = |d: usize| "[".repeat(d) + &"]".repeat(d);
        assert!(scan(deep(127).as_bytes(), 0).is_ok());
        assert_eq!(scan(deep(128).as_bytes(), 0).unwrap_err().why, Why::Depth);
        assert!(serde_json::from_str::<Value>(&deep(128)).is_err());
    }

    /// The same on random structural soup: where serde_json reads one value from a
    /// `{` or `[`, the scanner ends at the same byte, and nowhere else does it succeed.
    #[test]
    fn scanner_agrees_with_serde_json_on_random_text() {
        let alphabet = [
            "{", "}", "[", "]", "\"", ":", ",", " ", "\n", "1", "0", "-", ".", "e", "+", "a", "\\",
            "n", "t", "true", "null", "\"k\"", "é", "\t",
        ];
        for text in crate::engine::parse::fixtures::random_texts(7, 20_000, 24, &alphabet) {
            let text = format!("[{text}");
            let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
            let theirs = match stream.next() {
                Some(Ok(_)) => Some(stream.byte_offset()),
                _ => None,
            };
            assert_eq!(scan(text.as_bytes(), 0).ok(), theirs, "{text:?}");
        }
    }
}
