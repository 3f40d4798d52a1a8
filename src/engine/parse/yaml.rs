//! The `yaml` parser's reading of text into a value, before the jq filter and the
//! `{"output": ...}` wrapping in `mod.rs`.

use serde::Deserialize;
use serde_json::Value;

/// Parses YAML (one document, or several separated by `---`: then a list of them).
pub(super) fn parse_yaml(text: &str) -> Result<Value, String> {
    if flow_depth(text) > MAX_FLOW_DEPTH {
        return Err(format!(
            "invalid YAML: more than {MAX_FLOW_DEPTH} '[' or '{{' are open at once"
        ));
    }
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = serde_yaml::Value::deserialize(doc).map_err(|e| format!("invalid YAML: {e}"))?;
        if !v.is_null() {
            docs.push(from_yaml(v));
        }
    }
    match docs.len() {
        0 => Err("no YAML found in step output".into()),
        1 => Ok(docs.remove(0)),
        _ => Ok(Value::Array(docs)),
    }
}

/// serde_yaml refuses documents nested deeper than 128 levels, but only after libyaml
/// has read every event, which for a megabyte of `[` takes seconds (libyaml tracks a
/// possible key per open flow collection). Counting brackets first turns that into
/// a microsecond refusal. Brackets inside scalars count too, so a text with more than
/// this many unclosed `[` in its strings is refused: no real output looks like that.
const MAX_FLOW_DEPTH: usize = 128;

fn flow_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// YAML to JSON: tags are dropped, non-string keys become their text, and numbers
/// JSON cannot hold (`.nan`, `.inf`) become null, as `yq -o json` prints them.
/// Recursion is safe: serde_yaml refuses documents nested deeper than 128 levels.
fn from_yaml(v: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(from_yaml).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match from_yaml(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, from_yaml(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => from_yaml(t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_documents() {
        assert_eq!(
            parse_yaml("a: 1\nb: [x, true]\n"),
            Ok(json!({"a": 1, "b": ["x", true]}))
        );
        assert_eq!(
            parse_yaml("---\na: 1\n---\nb: 2\n"),
            Ok(json!([{"a": 1}, {"b": 2}]))
        );
        assert_eq!(
            parse_yaml("1: one\ntrue: yes\n~: n"),
            Ok(json!({"1": "one", "true": "yes", "null": "n"}))
        );
        assert_eq!(
            parse_yaml("x: !Ref 5\ny: .nan"),
            Ok(json!({"x": 5, "y": null}))
        );
        assert!(parse_yaml("").is_err());
        assert!(parse_yaml("a: [").unwrap_err().starts_with("invalid YAML"));
    }

    #[test]
    fn hostile_yaml_is_an_error_not_a_crash() {
        let deep = "a: ".to_string() + &"[".repeat(5_000) + &"]".repeat(5_000);
        assert!(parse_yaml(&deep).is_err());
        let laughs = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
        assert!(parse_yaml(laughs).is_err());
    }
}
