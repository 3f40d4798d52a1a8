//! The line-oriented parsers: `lines`, `kv` and `regex`. Each reads the text after the
//! end marker (or all of it) and returns the step's output object.

use super::{excerpt, typed};
use regex::Regex;
use serde_json::{Map, Value};

/// `{"output": ["line1", ...]}`: line breaks (`\n` or `\r\n`) removed, and the break
/// that ends the last line does not add an empty line.
pub(super) fn lines(text: &str) -> Value {
    let lines = text.lines().map(|l| Value::String(l.to_string())).collect();
    super::wrap(Value::Array(lines))
}

/// `key=value` lines to an object. Blank lines and `#` comments are skipped; the key
/// and value are split at the first separator only (values may contain it: URLs,
/// `--flag=x`), both trimmed. Values are typed like the SDK's env maps (see `typed`),
/// except quoted ones (`"true"`, `'0042'`), which stay strings without their quotes.
/// A key given twice keeps the last value, as a shell sourcing the lines would.
/// `first_line` numbers lines as in the whole log, so errors point at the real line.
pub(super) fn kv(text: &str, sep: &str, first_line: usize) -> Result<Value, String> {
    let mut out = Map::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let number = first_line + i;
        let Some((key, value)) = line.split_once(sep) else {
            return Err(format!(
                "line {number} has no '{sep}' between a key and a value: {}",
                excerpt(trimmed)
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!(
                "line {number} has an empty key: {}",
                excerpt(trimmed)
            ));
        }
        out.insert(key.to_string(), kv_value(value.trim()));
    }
    Ok(Value::Object(out))
}

fn kv_value(v: &str) -> Value {
    for quote in ['"', '\''] {
        if let Some(inner) = v
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return Value::String(inner.to_string());
        }
    }
    typed(v)
}

/// The named groups of the pattern's first match, as strings (a group that did not
/// take part in the match is null). Values are not typed: what the pattern captured
/// is what the author asked for, and templates can convert with `int` or `float`.
/// Flags such as multi-line mode go in the pattern: `(?m)^ready=(?P<ready>\d+)$`.
pub(super) fn regex(re: &Regex, text: &str) -> Result<Value, String> {
    let Some(caps) = re.captures(text) else {
        return Err(format!(
            "the pattern '{}' does not match the step output, which starts with {}",
            re.as_str(),
            excerpt(text.trim_start())
        ));
    };
    let out = re
        .capture_names()
        .flatten()
        .map(|name| {
            let v = caps
                .name(name)
                .map_or(Value::Null, |m| Value::String(m.as_str().to_string()));
            (name.to_string(), v)
        })
        .collect();
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_drop_only_the_final_break() {
        assert_eq!(
            lines("a\r\nb\n\nc\n"),
            json!({"output": ["a", "b", "", "c"]})
        );
        assert_eq!(lines(""), json!({"output": []}));
        assert_eq!(lines("\n"), json!({"output": [""]}));
    }

    #[test]
    fn kv_typed_like_the_sdk() {
        let text = "# written by check-replication.sh\n\
                    role=master\n\
                    connected_slaves=2\n\
                    healthy=true\n\
                    degraded = false\n\
                    lag=-1\n\
                    zip=01234\n\
                    url=redis://redis-0.redis:6379/0?timeout=5s\n\
                    quoted=\"true\"\n\
                    single='42'\n\
                    empty=\n\
                    \n\
                    role=replica\n";
        assert_eq!(
            kv(text, "=", 1),
            Ok(json!({
                "role": "replica",
                "connected_slaves": 2,
                "healthy": true,
                "degraded": false,
                "lag": -1,
                "zip": "01234",
                "url": "redis://redis-0.redis:6379/0?timeout=5s",
                "quoted": "true",
                "single": "42",
                "empty": ""
            }))
        );
        assert_eq!(kv("", "=", 1), Ok(json!({})));
        assert_eq!(
            kv("big=99999999999999999999", "=", 1),
            Ok(json!({"big": "99999999999999999999"}))
        );
    }

    #[test]
    fn kv_custom_separator_and_errors() {
        assert_eq!(
            kv("Name: redis-0\nStatus: Running\nIP: 10.0.0.7", ": ", 1),
            Ok(json!({"Name": "redis-0", "Status": "Running", "IP": "10.0.0.7"}))
        );
        assert_eq!(
            kv("a=1\nconnecting to redis...\n", "=", 10),
            Err("line 11 has no '=' between a key and a value: 'connecting to redis...'".into())
        );
        assert_eq!(
            kv("=1", "=", 1),
            Err("line 1 has an empty key: '=1'".into())
        );
    }

    #[test]
    fn regex_first_match_named_groups() {
        let re =
            Regex::new(r"(?P<ready>\d+)/(?P<total>\d+) replicas(?: \((?P<note>[^)]*)\))?").unwrap();
        assert_eq!(
            regex(
                &re,
                "deployment redis: 2/3 replicas\ndeployment api: 5/5 replicas (ok)"
            ),
            Ok(json!({"ready": "2", "total": "3", "note": null}))
        );
        let err = regex(&re, "  no replicas here").unwrap_err();
        assert!(
            err.contains("does not match") && err.contains("'no replicas here'"),
            "{err}"
        );
    }
}
