//! Remembering the transitions already counted.

use std::collections::{HashSet, VecDeque};

/// The last `capacity` keys counted. A reconcile can plan from a cache that does not
/// show this process's own status write yet (another event woke the Execution within
/// milliseconds of the write); it then writes the same transition again, and this
/// keeps that from being counted twice. Such a window is milliseconds long, so
/// remembering the last few thousand transitions is plenty.
pub(super) struct Recent {
    keys: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Recent {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            keys: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// True the first time `key` is seen (among the last `capacity`).
    pub(super) fn first_time(&mut self, key: String) -> bool {
        if self.keys.contains(&key) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.keys.remove(&old);
        }
        self.keys.insert(key.clone());
        self.order.push_back(key);
        true
    }
}
