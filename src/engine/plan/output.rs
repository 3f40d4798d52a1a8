//! Step output in status: bounded, and failure messages that quote the log's end.
//!
//! An object in etcd is at most ~1.5 MB, so what a step printed cannot all go to
//! status. Past the budget, top-level fields are kept in order while they fit and a
//! `_truncated` field says what was dropped; the step's `outputsTruncated` is set.
//! Never silently: the marker is in the data later templates read.

use serde_json::{Map, Value};

use super::{StepLog, Terminated};
use crate::api::StepStatus;

/// Room kept for the `_truncated` marker itself.
const MARKER_ROOM: usize = 256;

fn size(v: &Value) -> usize {
    serde_json::to_string(v).map_or(0, |s| s.len())
}

/// Bytes of outputs already in status, which the per-run budget counts.
pub(super) fn used_bytes(steps: &[StepStatus]) -> usize {
    steps
        .iter()
        .filter_map(|s| s.outputs.as_ref())
        .map(size)
        .sum()
}

/// `value` if it fits in `budget` bytes of JSON, else as much of it as fits plus a
/// marker. `step_budget` is only named in the marker (the per-step limit), while
/// `budget` may be smaller when the run's total budget is nearly spent.
pub(super) fn bound(value: Value, budget: usize, step_budget: usize) -> (Value, bool) {
    let total = size(&value);
    if total <= budget {
        return (value, false);
    }
    let room = budget.saturating_sub(MARKER_ROOM);
    let mut kept = Map::new();
    let mut dropped = Vec::new();
    let mut used = 2;
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let cost = k.len() + size(&v) + 4;
                if used + cost <= room {
                    used += cost;
                    kept.insert(k, v);
                } else {
                    dropped.push(k);
                }
            }
        }
        _ => dropped.push("output".into()),
    }
    let mut names: Vec<String> = dropped.iter().take(8).cloned().collect();
    if dropped.len() > names.len() {
        names.push(format!("and {} more", dropped.len() - names.len()));
    }
    let why = if budget < step_budget {
        "the run's output budget is nearly spent"
    } else {
        "over the step output budget"
    };
    let marker = format!(
        "output was {total} bytes, {why} ({budget} bytes); dropped: {}",
        names.join(", ")
    );
    kept.insert("_truncated".into(), Value::String(marker));
    (Value::Object(kept), true)
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

    #[test]
    fn small_output_is_kept_whole() {
        let v = json!({"a": 1});
        assert_eq!(bound(v.clone(), 100, 100), (v, false));
    }

    #[test]
    fn large_output_keeps_what_fits_and_says_what_was_dropped() {
        let big = "x".repeat(2000);
        let v = json!({"a": 1, "big": big, "c": "small"});
        let (out, truncated) = bound(v, 600, 600);
        assert!(truncated);
        assert_eq!(out["a"], 1);
        assert_eq!(out["c"], "small");
        assert!(out.get("big").is_none());
        let marker = out["_truncated"].as_str().unwrap_or_default();
        assert!(
            marker.contains("dropped: big") && marker.contains("over the step output budget"),
            "{marker}"
        );
        assert!(size(&out) <= 600);
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
