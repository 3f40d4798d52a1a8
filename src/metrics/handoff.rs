//! The start of each hand-off: when the latest step container of each Execution was
//! seen ending, kept until the reconcile that takes that end in creates the next Job
//! (or drops it). Bounded, so memory stays flat whatever the cluster does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::lock;

/// Most Executions with a recorded container end waiting for their next Job; past
/// it, new ends are not recorded.
pub(super) const MAX_PENDING: usize = 10_000;
/// A recorded end older than this is dropped: its Execution was deleted or never
/// got a next Job (the reconcile that takes an end in runs within seconds).
pub(super) const STALE: Duration = Duration::from_secs(600);

/// Recorded container ends, by Execution uid.
#[derive(Default)]
pub(super) struct PendingEnds(Mutex<HashMap<String, Instant>>);

impl PendingEnds {
    /// Records Execution `uid`'s latest container end (the latest wins: with parallel
    /// branches the next Job waits for the last of them); when full, stale ends make
    /// room, and without any the end is not recorded.
    pub(super) fn record(&self, uid: &str, at: Instant) {
        let mut ended = lock(&self.0);
        if ended.len() >= MAX_PENDING && !ended.contains_key(uid) {
            ended.retain(|_, t| at.saturating_duration_since(*t) < STALE);
            if ended.len() >= MAX_PENDING {
                return;
            }
        }
        ended.insert(uid.to_string(), at);
    }

    /// Execution `uid`'s recorded end, forgotten.
    pub(super) fn take(&self, uid: &str) -> Option<Instant> {
        lock(&self.0).remove(uid)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.0).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_ends_stay_bounded() {
        let ends = PendingEnds::default();
        let t0 = Instant::now();
        for i in 0..MAX_PENDING {
            ends.record(&format!("old-{i}"), t0);
        }
        ends.record("new-fresh", t0 + Duration::from_secs(1));
        assert_eq!(ends.len(), MAX_PENDING, "full of fresh ends: skipped");
        assert_eq!(ends.take("new-fresh"), None);
        ends.record("new-late", t0 + STALE);
        assert_eq!(ends.len(), 1, "stale ends are dropped for a new one");
        assert_eq!(ends.take("new-late"), Some(t0 + STALE));
        assert_eq!(ends.len(), 0);
    }
}
