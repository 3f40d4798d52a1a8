//! What the process's one Execution cache (`crate::cache`) keeps of each Execution.
//!
//! Most Executions in a cluster are over (history is kept for reviews), and an
//! Execution that is over does not change any more. Its step outputs, the playbook
//! snapshot, the rendered plans and the alert are most of its size, and nothing
//! that reads the cache reads them from a finished run, so [`slim`] drops them
//! before the object is stored. What the readers of the cache read of a finished run,
//! and so what is kept (the tests below compare their answers on both):
//! - the controller: phase, times, `generation` and `observedGeneration`, the steps'
//!   Jobs (history limits and TTL, a Job left running); the remediation record
//!   (blast-radius counts, the Playbook's ledger); the Trigger, the alert label and
//!   the alert's `startsAt` (the Trigger's pruned alerts);
//! - the page's list: the alert's name, phase, severity, times, Trigger, Schedule;
//! - the notifier: the chat channel (`status.notify`, the snapshot's `notify`), the
//!   alert's name and summary, approvals, phase, message, severity.
//!
//! What needs the whole run reads it from the API server: the page's detail view
//! (one GET when a person opens it) and the controller's plan ([`needs_plan`] says
//! when a finished run needs one). A running run is kept whole: the controller plans
//! from the cache.
//!
//! **Safety.** The controller writes the whole status by server-side apply, so a
//! status planned from a slimmed run would erase its outputs and snapshot from the
//! API object. A slimmed run is marked with an annotation whose key the API server
//! refuses (it has spaces), so no object read from the API server carries it, and
//! [`Full`], the only way to the controller's plan input, refuses a marked one.

pub mod attempt;

use std::collections::BTreeMap;
use std::ops::Deref;

use serde_json::{Map, Value};

use crate::api::{Execution, PlaybookSpec, StepStatus};
use crate::engine::plan::{ObservedJob, left_running};

/// Marks a slimmed Execution in the cache: not a valid annotation key, so never on
/// an object the API server returns.
pub const MARK: &str = "playbook-operator cache: slimmed";

/// Written by `kubectl apply`: the whole applied object again, as text. Nothing reads it.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The parts of a finished run's alert that are read from the cache: its name
/// (page list, chat message), `id` and summary (chat message), `startsAt` (the
/// Trigger's record of a pruned alert).
const ALERT_KEPT: [&[&str]; 5] = [
    &["labels", "alertname"],
    &["id"],
    &["annotations", "summary"],
    &["annotations", "title"],
    &["startsAt"],
];

/// Makes `exec` what the cache keeps: `managedFields` and kubectl's last applied
/// configuration never (nothing reads them); for a finished run, also its outputs,
/// plans, dry-run steps, params, the snapshot but its chat channel, and the alert but
/// [`ALERT_KEPT`], and the run is marked.
pub fn slim(exec: &mut Execution) {
    exec.metadata.managed_fields = None;
    if let Some(a) = exec.metadata.annotations.as_mut() {
        a.remove(LAST_APPLIED);
        a.remove(MARK);
    }
    let Some(status) = exec.status.as_mut() else {
        return;
    };
    if !status.phase.is_final() {
        return;
    }
    for step in status.steps.iter_mut().chain(status.finally.iter_mut()) {
        slim_step(step);
    }
    status.dry_run = Vec::new();
    // Kept as a snapshot (the run has started), with only what the notifier reads.
    if let Some(pb) = status.playbook.take() {
        status.playbook = Some(PlaybookSpec {
            notify: pb.notify,
            ..PlaybookSpec::default()
        });
    }
    exec.spec.params = None;
    if let Some(alert) = &exec.spec.alert {
        exec.spec.alert = Some(kept(alert, &ALERT_KEPT));
    }
    exec.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(MARK.to_string(), String::new());
}

fn slim_step(step: &mut StepStatus) {
    step.outputs = None;
    step.plan = None;
}

/// Only the values of `v` at `paths` (object keys), in the same places.
fn kept(v: &Value, paths: &[&[&str]]) -> Value {
    let mut out = Value::Object(Map::new());
    for path in paths {
        let Some(found) = path.iter().try_fold(v, |v, key| v.get(key)) else {
            continue;
        };
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let mut at = &mut out;
        for key in parents {
            let Value::Object(map) = at else { break };
            at = map
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        if let Value::Object(map) = at {
            map.insert(last.to_string(), found.clone());
        }
    }
    out
}

/// True for an Execution [`slim`] cut down.
pub fn is_slim(exec: &Execution) -> bool {
    exec.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MARK))
}

/// An Execution as the API server has it, not cut down by [`slim`]: what the
/// controller plans from (and so writes status from).
#[derive(Clone, Copy, Debug)]
pub struct Full<'a>(&'a Execution);

impl<'a> Full<'a> {
    /// `None` for a slimmed run: read it from the API server to plan it.
    pub fn of(exec: &'a Execution) -> Option<Self> {
        (!is_slim(exec)).then_some(Self(exec))
    }
}

impl Deref for Full<'_> {
    type Target = Execution;
    fn deref(&self) -> &Execution {
        self.0
    }
}

/// Whether a slimmed (finished) run needs a plan, read from the whole object: a
/// finished run plans nothing but its `observedGeneration` (the spec changed since)
/// and deletes of its Jobs left running (`jobs`, as observed). Otherwise only the
/// TTL and history limits apply, which read what is kept.
pub fn needs_plan(exec: &Execution, jobs: &BTreeMap<String, ObservedJob>) -> bool {
    let observed = exec.status.as_ref().and_then(|s| s.observed_generation);
    let behind = exec
        .metadata
        .generation
        .is_some_and(|g| Some(g) != observed);
    behind || jobs.values().any(left_running)
}

#[cfg(test)]
mod tests;
