//! What can go wrong while reconciling, and what the controller does about it.
//!
//! Two classes: an object that cannot be read as written (a malformed Execution or
//! Playbook) waits for its next change, since retrying cannot help; everything else
//! is the cluster being briefly unavailable and is retried with an exponential
//! backoff per object (not one fixed delay for every error). `metric_label` is a
//! bounded set: no object names or error text in metric labels.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

/// An error of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not deserialize (e.g. written before a schema change).
    #[error("{kind} {name} is malformed: {message}: fix or delete it")]
    Malformed {
        kind: &'static str,
        name: String,
        message: String,
    },
    /// The caches did not fill in time (the API server is slow or unreachable).
    #[error("caches not ready yet")]
    CachesNotReady,
    #[error("reading the log of pod {pod}: {source}")]
    ReadLog {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading Secret {name}: {source}")]
    ReadSecret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of {name}: {source}")]
    WriteStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating ConfigMap {name}: {source}")]
    CreateConfigMap {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading ConfigMap {name} (a step's spilled output): {source}")]
    ReadConfigMap {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating {name}: {source}")]
    CreateJob {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {name}: {source}")]
    DeleteJob {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("asking the API server whether {user} may use Runner {runner}: {source}")]
    ReviewAccess {
        user: String,
        runner: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting finished Execution {name}: {source}")]
    DeleteExecution {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating Execution {name}: {source}")]
    CreateExecution {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cancelling Execution {name}: {source}")]
    CancelExecution {
        name: String,
        #[source]
        source: kube::Error,
    },
    /// A finished run to plan is read whole from the API server (the cache keeps it
    /// slimmed): retried.
    #[error("reading Execution {name}: {source}")]
    ReadExecution {
        name: String,
        #[source]
        source: kube::Error,
    },
    /// A step's recorded Job (or bare Pod) the cache does not show is read from the
    /// API server before its step is judged deleted: retried.
    #[error("reading {name}: {source}")]
    ReadJob {
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The planning thread did not return (a panic in the engine): retried.
    #[error("planning {name} failed inside the operator: {message}")]
    Plan { name: String, message: String },
}

impl Error {
    /// A bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::CachesNotReady => "caches_not_ready",
            Self::ReadLog { .. } => "read_log",
            Self::ReadSecret { .. } => "read_secret",
            Self::WriteStatus { .. } => "write_status",
            Self::CreateConfigMap { .. } => "create_config_map",
            Self::ReadConfigMap { .. } => "read_config_map",
            Self::CreateJob { .. } => "create_job",
            Self::DeleteJob { .. } => "delete_job",
            Self::DeleteExecution { .. } => "delete_execution",
            Self::ReadExecution { .. } => "read_execution",
            Self::ReadJob { .. } => "read_job",
            Self::CreateExecution { .. } => "create_execution",
            Self::CancelExecution { .. } => "cancel_execution",
            Self::Plan { .. } => "plan",
            Self::ReviewAccess { .. } => "review_access",
        }
    }

    /// True when the object itself is wrong: retrying cannot help, its next change will.
    pub fn is_user_error(&self) -> bool {
        matches!(self, Self::Malformed { .. })
    }
}

impl crate::metrics::Reason for Error {
    fn reason(&self) -> &'static str {
        self.metric_label()
    }
}

/// The wait before retrying after `failures` consecutive transient errors: 500 ms
/// doubled each time, at most 5 minutes. The first retries are quick because most
/// transient errors (a conflict, an API server restart) clear within a second.
pub fn backoff(failures: u32) -> Duration {
    const BASE_MS: u64 = 500;
    const MAX: Duration = Duration::from_secs(300);
    let factor = 1u64
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(u64::MAX);
    Duration::from_millis(BASE_MS.saturating_mul(factor)).min(MAX)
}

/// Consecutive transient failures per object, for the error backoff: counted by
/// [`error_action`], cleared when a reconcile of that object succeeds.
pub struct Failures<K: Resource>(Mutex<HashMap<ObjectRef<K>, u32>>);

impl<K: Resource> Default for Failures<K> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<K> Failures<K>
where
    K: Resource,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    /// Forgets `obj`'s failures (its reconcile succeeded).
    pub fn clear(&self, obj: &K) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ObjectRef::from_obj(obj));
    }

    /// Counts one more failure of `obj`; returns how many in a row.
    fn record(&self, obj: &K) -> u32 {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ObjectRef::from_obj(obj)).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }
}

/// What every controller does after a failed reconcile of `obj` (a `kind`): an object
/// that is itself wrong waits for its next change; anything else backs off per object.
pub fn error_action<K>(kind: &str, obj: &K, error: &Error, failures: &Failures<K>) -> Action
where
    K: Resource,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let object = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    if error.is_user_error() {
        tracing::warn!(%object, resource = kind, kind = error.metric_label(), %error, "waiting for a change");
        return Action::await_change();
    }
    let failures = failures.record(obj);
    let wait = backoff(failures);
    tracing::warn!(%object, resource = kind, kind = error.metric_label(), %error, failures, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_up_to_five_minutes() {
        let waits: Vec<u64> = [1, 2, 3, 4, 10, 64, u32::MAX]
            .iter()
            .map(|&n| backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 256_000, 300_000, 300_000]);
        assert_eq!(backoff(0), Duration::from_millis(500));
    }

    #[test]
    fn only_malformed_objects_wait_for_a_change() {
        let malformed = Error::Malformed {
            kind: "Execution",
            name: "ns/x".into(),
            message: "bad".into(),
        };
        assert!(malformed.is_user_error());
        assert_eq!(malformed.metric_label(), "malformed");
        assert!(!Error::CachesNotReady.is_user_error());
    }
}
