//! What outlives a pruned Execution: the records history pruning writes before it
//! deletes a run, so that deleting history never weakens a safety promise.
//!
//! - A remediation claim still inside its window goes to the Playbook's
//!   `status.remediationClaims`; `limits::verdict` counts it beside the live runs'.
//! - An alert-started run's name goes to its Trigger's `status.prunedAlerts`; the
//!   webhook answers a redelivery of that alert as a duplicate, where the API server's
//!   name uniqueness no longer can (the name is free again).
//!
//! Pure: the controller reads the objects, calls these, writes the result (with the
//! object's resourceVersion as a precondition), and only then deletes the runs.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::{Execution, PrunedAlert, RemediationClaim, RemediationLimit, TriggerStatus};
use crate::engine::alert::trigger::LABEL_ALERT;
use crate::engine::limits::Claim;

/// Most pruned alerts a Trigger remembers (about 120 bytes each): an alert re-runs
/// only if more of the Trigger's alert runs than this were pruned while it fired.
pub const MAX_PRUNED_ALERTS: usize = 1000;

/// The claim run `exec` leaves in its Playbook's ledger when pruned at `now`
/// (seconds): its recorded remediation, while inside `limit`'s window.
pub fn claim_to_keep(
    exec: &Execution,
    limit: &RemediationLimit,
    now: i64,
) -> Option<RemediationClaim> {
    let record = exec.status.as_ref()?.remediation.as_ref()?;
    let at = record.at.as_ref()?;
    in_window(at.0.as_second(), limit, now).then(|| RemediationClaim {
        execution: exec.metadata.name.clone().unwrap_or_default(),
        uid: exec.metadata.uid.clone().unwrap_or_default(),
        key: record.key.clone(),
        at: at.clone(),
    })
}

/// True while a claim made at `at` still counts at `now` (as `limits::verdict`
/// counts: exactly `perSeconds` old has left the window).
fn in_window(at: i64, limit: &RemediationLimit, now: i64) -> bool {
    now.saturating_sub(at) < i64::try_from(limit.per_seconds).unwrap_or(i64::MAX)
}

/// `ledger` with `adding` merged in: one entry per uid, none that has left the
/// window, and per key only the newest `max`. More could not change a verdict: the
/// newest `max` leave the window last, so the count reaches `max` with or without
/// the older ones. Sorted by time, then name, so an unchanged ledger compares equal.
pub fn merged_ledger(
    ledger: &[RemediationClaim],
    adding: &[RemediationClaim],
    limit: &RemediationLimit,
    now: i64,
) -> Vec<RemediationClaim> {
    let mut all: Vec<RemediationClaim> = Vec::new();
    for c in ledger.iter().chain(adding) {
        if in_window(c.at.0.as_second(), limit, now) && !all.iter().any(|k| k.uid == c.uid) {
            all.push(c.clone());
        }
    }
    // Newest first, to keep the first `max` of each key.
    all.sort_by(|a, b| (b.at.0, &b.execution).cmp(&(a.at.0, &a.execution)));
    let max = usize::try_from(limit.max).unwrap_or(usize::MAX);
    let mut kept: Vec<RemediationClaim> = Vec::new();
    for c in all {
        if kept.iter().filter(|k| k.key == c.key).count() < max {
            kept.push(c);
        }
    }
    kept.reverse();
    kept
}

/// The ledger's entries as `limits::verdict` counts them.
pub fn ledger_claims(ledger: &[RemediationClaim]) -> Vec<Claim> {
    ledger
        .iter()
        .map(|c| Claim {
            uid: c.uid.clone(),
            key: c.key.clone(),
            at: c.at.0.as_second(),
        })
        .collect()
}

/// The entry a pruned alert-started run leaves on its Trigger, with that Trigger's
/// name; `None` for a run no alert started (started by a person, or by hand).
pub fn alert_to_keep(exec: &Execution, now: Timestamp) -> Option<(String, PrunedAlert)> {
    let trigger = exec.spec.trigger_ref.as_ref()?;
    exec.metadata.labels.as_ref()?.get(LABEL_ALERT)?;
    let starts_at = exec
        .spec
        .alert
        .as_ref()
        .and_then(|a| a.get("startsAt"))
        .and_then(|v| serde_json::from_value::<Time>(v.clone()).ok());
    Some((
        trigger.name.clone(),
        PrunedAlert {
            execution: exec.metadata.name.clone()?,
            starts_at,
            pruned_at: Time(now),
        },
    ))
}

/// `record` with `adding`: one entry per Execution name (the earlier prune kept),
/// the newest [`MAX_PRUNED_ALERTS`] by prune time, oldest first.
pub fn merged_pruned(record: &[PrunedAlert], adding: &[PrunedAlert]) -> Vec<PrunedAlert> {
    let mut all: Vec<PrunedAlert> = Vec::new();
    for p in record.iter().chain(adding) {
        if !all.iter().any(|k| k.execution == p.execution) {
            all.push(p.clone());
        }
    }
    all.sort_by(|a, b| (a.pruned_at.0, &a.execution).cmp(&(b.pruned_at.0, &b.execution)));
    let extra = all.len().saturating_sub(MAX_PRUNED_ALERTS);
    all.drain(..extra);
    all
}

/// Whether the Execution `name` a Trigger would create was pruned: its alert was
/// handled already, so this delivery is a duplicate.
pub fn was_pruned(status: Option<&TriggerStatus>, name: &str) -> bool {
    status.is_some_and(|s| s.pruned_alerts.iter().any(|p| p.execution == name))
}

#[cfg(test)]
mod tests;
