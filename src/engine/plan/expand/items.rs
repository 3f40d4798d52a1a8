//! A loop's items (`foreach`): a list or map found at a path in the context, or a
//! range, each as (index or key, item).

use serde_json::Value;

use crate::api::ForEach;
use crate::engine::context::json_type;
use crate::engine::template;

/// Largest `range` a loop may ask for; `Limits::max_steps` bounds the expansion too.
const MAX_RANGE: i64 = 10_000;

/// A loop's items: list → (index, item), map → (key, value), range → (index, n).
pub(crate) fn items_from(fe: &ForEach, ctx: &Value) -> Result<Vec<(Value, Value)>, String> {
    let indexed = |list: Vec<Value>| {
        list.into_iter()
            .enumerate()
            .map(|(i, v)| (Value::from(i), v))
            .collect()
    };
    if let Some(items) = &fe.items {
        return Ok(indexed(items.clone()));
    }
    if let Some(range) = &fe.range {
        let &[from, to] = range.as_slice() else {
            return Err(format!(
                "range needs [from, to], got {} numbers",
                range.len()
            ));
        };
        if to.saturating_sub(from) > MAX_RANGE {
            return Err(format!(
                "range [{from}, {to}] has more than {MAX_RANGE} items"
            ));
        }
        return Ok(indexed((from..to).map(Value::from).collect()));
    }
    let Some(path) = &fe.path else {
        return Err("set one of path, range and items".into());
    };
    match resolve(ctx, path)? {
        Value::Array(list) => Ok(indexed(list)),
        Value::Object(map) => Ok(map
            .into_iter()
            .map(|(k, v)| (Value::String(k), v))
            .collect()),
        Value::Null => Ok(vec![]),
        other => Err(format!(
            "'{path}' is {}, not a list or a map",
            json_type(&other)
        )),
    }
}

enum Segment {
    Key(String),
    Index(usize),
}

/// Finds a StackPulse-style path in the context: `pods`, `$.get-pods.items`,
/// `.steps.get-pods.outputs.items`, `$.'redis-info'.x[0]`. A path holding `{{` is a
/// template that must render JSON (`{{ toJson ... }}`).
fn resolve(ctx: &Value, path: &str) -> Result<Value, String> {
    let p = path.trim();
    if p.contains("{{") {
        let text = template::render(p, ctx).map_err(|e| format!("path: {e}"))?;
        return serde_json::from_str(&text).map_err(|_| {
            let shown: String = text.chars().take(80).collect();
            format!("path template must render JSON (use toJson), got: {shown}")
        });
    }
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut current = ctx;
    let mut walked = String::new();
    for segment in segments(p)? {
        current = match (&segment, current) {
            (Segment::Key(k), Value::Object(map)) => map.get(k).ok_or_else(|| {
                let mut keys: Vec<&str> = map.keys().map(String::as_str).take(12).collect();
                if map.len() > keys.len() {
                    keys.push("…");
                }
                format!(
                    "'{path}' not found: no '{k}' in {} (there: {})",
                    shown(&walked),
                    keys.join(", ")
                )
            })?,
            (Segment::Index(n), Value::Array(list)) => list.get(*n).ok_or_else(|| {
                format!(
                    "'{path}' not found: {} has {} items, no [{n}]",
                    shown(&walked),
                    list.len()
                )
            })?,
            (_, other) => {
                return Err(format!(
                    "'{path}' not found: {} is {}",
                    shown(&walked),
                    json_type(other)
                ));
            }
        };
        match segment {
            Segment::Key(k) => walked.push_str(&format!(".{k}")),
            Segment::Index(n) => walked.push_str(&format!("[{n}]")),
        }
    }
    Ok(current.clone())
}

fn shown(walked: &str) -> String {
    if walked.is_empty() {
        "the context".into()
    } else {
        format!("'{walked}'")
    }
}

fn segments(path: &str) -> Result<Vec<Segment>, String> {
    let chars: Vec<char> = path.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let bad = |why: &str| format!("bad path '{path}': {why}");
    while i < chars.len() {
        match chars[i] {
            '.' => i += 1,
            q @ ('\'' | '"') => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == q)
                    .ok_or_else(|| bad("unclosed quote"))?;
                out.push(Segment::Key(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '[' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == ']')
                    .ok_or_else(|| bad("unclosed ["))?;
                let inner: String = chars[i + 1..i + 1 + end].iter().collect();
                let inner = inner.trim();
                match inner.parse::<usize>() {
                    Ok(n) => out.push(Segment::Index(n)),
                    Err(_) => out.push(Segment::Key(inner.trim_matches(['\'', '"']).to_string())),
                }
                i += end + 2;
            }
            _ => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '.' || c == '[')
                    .map_or(chars.len(), |n| i + n);
                out.push(Segment::Key(
                    chars[i..end].iter().collect::<String>().trim().to_string(),
                ));
                i = end;
            }
        }
    }
    if out.is_empty() {
        Err(bad("it names nothing"))
    } else {
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_resolve_the_stackpulse_way() {
        let ctx = json!({"pods": ["a", "b"], "get-pods": {"items": [{"name": "p0"}]}, "steps": {"s": {"outputs": {"m": {"k": 1}}}}});
        let cases = [
            ("pods", json!(["a", "b"])),
            ("$.get-pods.items", json!([{"name": "p0"}])),
            ("$.'get-pods'.items[0].name", json!("p0")),
            (".steps.s.outputs.m", json!({"k": 1})),
            ("steps['s'].outputs.m.k", json!(1)),
        ];
        for (path, want) in cases {
            assert_eq!(resolve(&ctx, path), Ok(want), "{path}");
        }
        let err = resolve(&ctx, "$.get-pods.itmes").expect_err("typo");
        assert_eq!(
            err,
            "'$.get-pods.itmes' not found: no 'itmes' in '.get-pods' (there: items)"
        );
        assert!(resolve(&ctx, "pods[5]").is_err());
        assert!(resolve(&ctx, "'open").is_err());
    }

    #[test]
    fn items_from_lists_maps_and_ranges() {
        let ctx = json!({"m": {"b": 2, "a": 1}, "s": "text"});
        let fe = |f: ForEach| items_from(&f, &ctx);
        let map = fe(ForEach {
            path: Some("m".into()),
            ..Default::default()
        });
        assert_eq!(
            map,
            Ok(vec![(json!("a"), json!(1)), (json!("b"), json!(2))])
        );
        let range = fe(ForEach {
            range: Some(vec![2, 4]),
            ..Default::default()
        });
        assert_eq!(range, Ok(vec![(json!(0), json!(2)), (json!(1), json!(3))]));
        assert_eq!(
            fe(ForEach {
                path: Some("s".into()),
                ..Default::default()
            }),
            Err("'s' is a string, not a list or a map".into())
        );
        assert!(
            fe(ForEach {
                range: Some(vec![0, 1_000_000]),
                ..Default::default()
            })
            .is_err()
        );
    }
}
