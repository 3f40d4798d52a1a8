//! Step output: inline in status, spilled to a ConfigMap, or cut at the hard cap;
//! and failure messages that quote the log's end.
//!
//! An object in etcd is at most ~1.5 MB and the API server refuses a ConfigMap over
//! 1 MiB, so where a step's parsed output goes is decided by size ([`place`]):
//! - up to the step's inline budget, and while the Execution stays under its own
//!   budget: in status, as before;
//! - larger: in an immutable ConfigMap owned by the Execution (`outputsRef`), whole;
//! - past the hard cap: cut at a JSON boundary ([`fit`]: trailing fields and array
//!   items dropped, recursively) with a `_truncated` field saying the original size,
//!   then spilled. Never silently: the marker is in the data later templates read,
//!   and `outputsTruncated` is set.

use serde_json::{Map, Value};

use super::{StepLog, Terminated};

/// Room kept for the `_truncated` marker itself.
const MARKER_ROOM: usize = 256;

/// Bytes of `v` as compact JSON, what status and the ConfigMap store.
pub(super) fn size(v: &impl serde::Serialize) -> usize {
    serde_json::to_vec(v).map_or(0, |s| s.len())
}

/// The bounds one step's output is placed within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Budgets {
    /// Most bytes kept inline in status (the step's `outputs.inlineBytes`, or the
    /// operator's default).
    pub inline: usize,
    /// How much the Execution may still grow before it passes its own budget.
    pub room: usize,
    /// The hard cap: most bytes kept at all.
    pub max: usize,
}

/// Where one step's parsed output goes.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Placement {
    Inline(Value),
    Spill(Spilled),
}

/// Output for a ConfigMap: the value later templates see, its JSON text, and how
/// large it was before any cut.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Spilled {
    pub value: Value,
    pub json: String,
    pub original_bytes: usize,
    pub truncated: bool,
}

/// Decides where `value` goes (see the module doc).
pub(super) fn place(value: Value, b: Budgets) -> Placement {
    let original_bytes = size(&value);
    if original_bytes <= b.inline && original_bytes <= b.room {
        return Placement::Inline(value);
    }
    let (value, truncated) = if original_bytes <= b.max {
        (value, false)
    } else {
        (cut_to(value, original_bytes, b.max), true)
    };
    let json = serde_json::to_string(&value).unwrap_or_default();
    Placement::Spill(Spilled {
        value,
        json,
        original_bytes,
        truncated,
    })
}

/// `value` (of `total` bytes) cut to at most `max` bytes, with the marker; always an
/// object, so the marker has a place (a top-level non-object goes under `output`, as
/// the default parser puts it).
fn cut_to(value: Value, total: usize, max: usize) -> Value {
    let room = max.saturating_sub(MARKER_ROOM);
    let mut kept = match value {
        Value::Object(map) => fit(Value::Object(map), room),
        other => fit(other, room.saturating_sub(12)).map(|v| {
            let mut m = Map::new();
            m.insert("output".into(), v);
            Value::Object(m)
        }),
    };
    let marker = format!(
        "output was {} ({total} bytes); kept {} (the hard cap per step): later fields and items were dropped",
        human(total),
        human(max),
    );
    let mut map = match kept.take() {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    map.insert("_truncated".into(), Value::String(marker));
    Value::Object(map)
}

/// The longest prefix of `value` (in key and item order) whose JSON fits in `budget`
/// bytes: fields and items are kept while they fit, the first one that does not is
/// itself cut the same way, and the rest dropped. A string is cut at a character
/// boundary; a number, bool or null that does not fit is dropped (`None`).
pub(super) fn fit(value: Value, budget: usize) -> Option<Value> {
    if size(&value) <= budget {
        return Some(value);
    }
    match value {
        Value::Object(map) => fit_items(map, |k: &String| size(k) + 1, budget)
            .map(|kept| Value::Object(kept.into_iter().collect())),
        Value::Array(items) => fit_items(items.into_iter().map(|v| ((), v)), |_| 0, budget)
            .map(|kept| Value::Array(kept.into_iter().map(|(_, v)| v).collect())),
        Value::String(s) => {
            if budget < 2 {
                return None;
            }
            let mut end = s.len().min(budget - 2);
            loop {
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                let n = size(&&s[..end]);
                if n <= budget {
                    return Some(Value::String(s[..end].to_string()));
                }
                // Escapes make the JSON longer than the text: shrink in proportion.
                end = end * budget / n;
            }
        }
        _ => None,
    }
}

/// The fields (`label`: the bytes of `"key":`) or items (no label) of an object or
/// array, kept in order while they fit in `budget` bytes with the brackets and
/// commas; the first that does not fit is cut by [`fit`] and ends the list.
fn fit_items<K>(
    items: impl IntoIterator<Item = (K, Value)>,
    label: impl Fn(&K) -> usize,
    budget: usize,
) -> Option<Vec<(K, Value)>> {
    let mut kept = Vec::new();
    let mut used = 2;
    for (k, v) in items {
        let cost = label(&k) + usize::from(!kept.is_empty());
        let room = budget.saturating_sub(used + cost);
        let whole = size(&v);
        if whole <= room {
            used += cost + whole;
            kept.push((k, v));
            continue;
        }
        if let Some(part) = fit(v, room) {
            used += cost + size(&part);
            kept.push((k, part));
        }
        break;
    }
    (used <= budget).then_some(kept)
}

/// `bytes` for people: `812 bytes`, `900 KiB`, `5.0 MiB`.
pub(crate) fn human(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// The end of a text, at most `max` bytes, cut at a line start when possible.
pub(super) fn tail(text: &str, max: usize) -> String {
    let text = text.trim_end();
    if text.len() <= max {
        return text.trim_start().to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    let cut = cut
        .split_once('\n')
        .map_or(cut, |(_, rest)| if rest.is_empty() { cut } else { rest });
    format!("…{}", cut.trim_start())
}

/// Why a container that exited non-zero failed: code, reason, and the end of what
/// it printed (the termination message, else the log).
pub(super) fn exit_message(t: &Terminated, log: &StepLog, max: usize) -> String {
    let mut message = format!("exit code {}", t.exit_code);
    if let Some(reason) = t
        .reason
        .as_deref()
        .filter(|r| !r.is_empty() && *r != "Error")
    {
        message.push_str(&format!(" ({reason})"));
    }
    let detail = match (t.message.as_deref().filter(|m| !m.trim().is_empty()), log) {
        (Some(m), _) => Some(m),
        (None, StepLog::Read(text)) if !text.trim().is_empty() => Some(text.as_str()),
        _ => None,
    };
    if let Some(detail) = detail {
        message.push_str(": ");
        message.push_str(&tail(detail, max));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KIB: usize = 1024;

    fn budgets(inline: usize, room: usize, max: usize) -> Budgets {
        Budgets { inline, room, max }
    }

    /// (case, output, budgets, want): `inline`, `spill` (whole) or `cut` (truncated).
    #[test]
    fn where_an_output_goes() {
        let small = json!({"a": 1});
        let big = json!({"items": vec!["x".repeat(100); 400]});
        let huge = json!({"items": vec!["x".repeat(1000); 5000]});
        let table = [
            (
                "small fits inline",
                &small,
                budgets(32 * KIB, 512 * KIB, 900 * KIB),
                "inline",
            ),
            (
                "exactly the inline budget is inline",
                &small,
                budgets(7, 512 * KIB, 900 * KIB),
                "inline",
            ),
            (
                "one byte over the inline budget spills",
                &small,
                budgets(6, 512 * KIB, 900 * KIB),
                "spill",
            ),
            (
                "inline budget 0 always spills",
                &small,
                budgets(0, 512 * KIB, 900 * KIB),
                "spill",
            ),
            (
                "the Execution is nearly full: even small output spills",
                &small,
                budgets(32 * KIB, 6, 900 * KIB),
                "spill",
            ),
            (
                "over the inline budget, under the cap: whole in a ConfigMap",
                &big,
                budgets(32 * KIB, 512 * KIB, 900 * KIB),
                "spill",
            ),
            (
                "over the hard cap: cut",
                &huge,
                budgets(32 * KIB, 512 * KIB, 900 * KIB),
                "cut",
            ),
        ];
        for (case, value, b, want) in table {
            let got = match place(value.clone(), b) {
                Placement::Inline(v) => {
                    assert_eq!(&v, value, "{case}");
                    "inline"
                }
                Placement::Spill(s) => {
                    assert_eq!(s.original_bytes, size(value), "{case}");
                    assert_eq!(s.json, serde_json::to_string(&s.value).unwrap_or_default());
                    assert!(s.json.len() <= b.max, "{case}: {} bytes", s.json.len());
                    if s.truncated {
                        "cut"
                    } else {
                        assert_eq!(&s.value, value, "{case}");
                        "spill"
                    }
                }
            };
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn a_cut_output_is_valid_json_and_says_its_original_size() {
        let huge = json!({
            "alpha": "small",
            "pods": (0..6000).map(|i| json!({"name": format!("pod-{i}"), "labels": {"app": "shop", "tier": "x".repeat(850)}})).collect::<Vec<_>>(),
            "zeta": "dropped",
        });
        let total = size(&huge);
        assert!(total > 5 * 1024 * KIB, "{total}");
        let Placement::Spill(s) = place(huge, budgets(32 * KIB, 512 * KIB, 900 * KIB)) else {
            panic!("not spilled");
        };
        assert!(s.truncated);
        assert_eq!(s.original_bytes, total);
        assert!(
            s.json.len() <= 900 * KIB && s.json.len() > 890 * KIB,
            "{}",
            s.json.len()
        );
        let back: Value = serde_json::from_str(&s.json).expect("valid JSON");
        assert_eq!(back["alpha"], "small");
        assert!(
            back.get("zeta").is_none(),
            "fields after the cut are dropped"
        );
        let pods = back["pods"].as_array().map_or(0, Vec::len);
        assert!(pods > 900 && pods < 6000, "{pods} pods kept");
        let marker = back["_truncated"].as_str().unwrap_or_default();
        assert!(
            marker.starts_with("output was 5.")
                && marker.contains(&format!("({total} bytes); kept 900 KiB")),
            "{marker}"
        );
    }

    /// (value, budget, want): the longest prefix that fits, cut inside the first
    /// field or item that does not.
    #[test]
    fn fit_cuts_at_a_json_boundary() {
        let table = [
            (json!({"a": 1, "b": 2}), 100, Some(json!({"a": 1, "b": 2}))),
            (json!({"a": 1, "b": 2}), 12, Some(json!({"a": 1}))),
            (
                json!({"a": [1, 2, 3], "b": 2}),
                12,
                Some(json!({"a": [1, 2]})),
            ),
            (
                json!({"a": {"b": "hello world"}}),
                20,
                Some(json!({"a": {"b": "hello "}})),
            ),
            (json!(["é", "ü"]), 8, Some(json!(["é"]))),
            (json!(r#"a"b"c"#), 6, Some(json!(r#"a"b"#))),
            (json!(12345), 3, None),
            (json!({"a": 1}), 1, None),
        ];
        for (value, budget, want) in table {
            let got = fit(value.clone(), budget);
            assert_eq!(got, want, "fit({value}, {budget})");
            if let Some(v) = got {
                assert!(size(&v) <= budget, "{v} over {budget}");
            }
        }
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(human(812), "812 bytes");
        assert_eq!(human(900 * KIB), "900 KiB");
        assert_eq!(human(5 * 1024 * KIB + 100), "5.0 MiB");
    }

    #[test]
    fn messages_quote_the_end_of_the_log() {
        let log = StepLog::Read(format!(
            "{}\nERR connection refused\n",
            "line\n".repeat(200)
        ));
        let t = Terminated {
            exit_code: 1,
            reason: Some("Error".into()),
            ..Default::default()
        };
        let m = exit_message(&t, &log, 40);
        assert!(
            m.starts_with("exit code 1: …") && m.ends_with("ERR connection refused"),
            "{m}"
        );
        assert!(m.len() < 70, "{m}");
        let oom = Terminated {
            exit_code: 137,
            reason: Some("OOMKilled".into()),
            ..Default::default()
        };
        assert_eq!(
            exit_message(&oom, &StepLog::NotRead, 40),
            "exit code 137 (OOMKilled)"
        );
    }
}
