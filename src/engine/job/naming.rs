//! Names of what a step attempt creates: DNS-label Job names, container names,
//! label values, and the short hashes that keep them distinct.

use sha2::{Digest, Sha256};

use crate::engine::context::InstanceId;

const HASH_LEN: usize = 8;
const MAX_NAME: usize = 63;

/// 8 hex digits of SHA-256 over `parts` (NUL-separated): short, stable name suffixes.
pub(crate) fn short_hash(parts: &[&str]) -> String {
    hex_hash(parts, HASH_LEN)
}

/// `digits` (even, at most 64) hex digits of SHA-256 over `parts` (NUL-separated).
pub(crate) fn hex_hash(parts: &[&str], digits: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(digits / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Lowercase DNS-label characters only, no leading or trailing '-'.
pub(crate) fn dns_part(s: &str, max: usize) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    let trimmed = mapped.trim_matches('-');
    if trimmed.is_empty() {
        "x".into()
    } else {
        trimmed.to_string()
    }
}

/// The name of a step attempt's Job: `EXECUTION-STEP[-INDEX]-ATTEMPT-HASH`, a DNS
/// label of at most 63 characters.
///
/// The hash (of the exact execution, step, index and attempt) is always there:
/// names are namespace-wide, and without it execution `a-b` step `c` and execution
/// `a` step `b-c` would share a Job, which the controller would adopt as its own.
/// When too long, the execution and step parts are cut, never the index and
/// attempt, so the Jobs of one step stay distinct by their readable part alone.
pub fn job_name(execution: &str, step: &str, index: Option<u32>, attempt: u32) -> String {
    let index_text = index.map(|i| i.to_string()).unwrap_or_default();
    let hash = short_hash(&[execution, step, &index_text, &attempt.to_string()]);
    let suffix = match index {
        Some(i) => format!("-{i}-{attempt}-{hash}"),
        None => format!("-{attempt}-{hash}"),
    };
    let room = MAX_NAME - suffix.len() - 1;
    let (e, s) = (dns_part(execution, MAX_NAME), dns_part(step, MAX_NAME));
    let (e_max, s_max) = if e.len() + s.len() <= room {
        (e.len(), s.len())
    } else if e.len() <= room / 2 {
        (e.len(), room - e.len())
    } else if s.len() <= room - room / 2 {
        (room - s.len(), s.len())
    } else {
        (room / 2, room - room / 2)
    };
    format!("{}-{}{suffix}", dns_part(&e, e_max), dns_part(&s, s_max))
}

/// The name of the one container of a step pod: the step's own id (for a foreach
/// item or a step in a block too), already a DNS label of at most 63 characters.
///
/// Named after the step, not a fixed `step`, so that `kubectl logs` and log tooling
/// say which step printed what, and so that log fixtures (kwok serves logs per
/// container name) can give each step of one namespace its own log. The controller
/// reads the log and exit state of this container.
pub fn container_name(instance: &InstanceId) -> String {
    instance.step.clone()
}

/// `s` if it is a valid label value; otherwise a valid one ending in a hash of `s`.
pub fn label_value(s: &str) -> String {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let ends_ok = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    if s.len() <= MAX_NAME
        && s.chars().all(valid_char)
        && ends_ok(s.chars().next())
        && ends_ok(s.chars().last())
    {
        return s.to_string();
    }
    let kept: String = s
        .chars()
        .map(|c| if valid_char(c) { c } else { '-' })
        .collect();
    let kept = kept.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut cut: String = kept.chars().take(MAX_NAME - HASH_LEN - 1).collect();
    while cut.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        cut.pop();
    }
    let hash = short_hash(&[s]);
    if cut.is_empty() {
        hash
    } else {
        format!("{cut}-{hash}")
    }
}
