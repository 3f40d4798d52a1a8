//! The plans this replica has seen steps wait with, so the page can show what
//! changed since someone approved an earlier plan of a waiting step (status keeps
//! only the current plan). Filled from the page's Execution watch; bounded, oldest
//! forgotten first; empty after a restart (the page then names the earlier hash only).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::api::Execution;
use crate::engine::page::PlanView;

/// Most plans remembered (a few KiB each).
pub const CAP: usize = 4096;

/// (Execution uid, step id, plan hash).
type Key = (String, String, String);

#[derive(Default)]
pub struct Memory {
    inner: Mutex<(HashMap<Key, PlanView>, VecDeque<Key>)>,
}

impl Memory {
    /// Remembers the plan of every step of `exec` that shows one.
    pub fn observe(&self, exec: &Execution) {
        let (Some(uid), Some(status)) = (exec.metadata.uid.as_deref(), exec.status.as_ref()) else {
            return;
        };
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (plans, order) = &mut *guard;
        for s in status.steps.iter().chain(&status.finally) {
            let Some(plan) = &s.plan else { continue };
            let key = (uid.to_string(), s.id.clone(), plan.hash.clone());
            if plans.contains_key(&key) {
                continue;
            }
            plans.insert(key.clone(), PlanView::from(&**plan));
            order.push_back(key);
            while order.len() > CAP {
                if let Some(old) = order.pop_front() {
                    plans.remove(&old);
                }
            }
        }
    }

    /// The plan step `step` of the Execution `uid` showed with `hash`, if seen here.
    pub fn get(&self, uid: &str, step: &str, hash: &str) -> Option<PlanView> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .0
            .get(&(uid.to_string(), step.to_string(), hash.to_string()))
            .cloned()
    }
}
