//! The Pod and Job watches wake an Execution only when `engine::wake` says the change
//! is one its plan acts on: the filter between a watch's reflector (which still
//! stores every change) and the controller's queue.
//!
//! Deletions always wake (the planner fails a step whose Job vanished). A re-list
//! after a watch gap compares with what was seen before it, so it wakes only what
//! changed meanwhile, and forgets what is gone.

use std::collections::{HashMap, HashSet};
use std::future;

use futures::{Stream, StreamExt};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::engine::wake::Wake;

/// The last [`Wake`] seen of each object, by uid.
#[derive(Default)]
pub struct Wakes {
    last: HashMap<String, Wake>,
    /// Uids listed so far by a re-list in progress.
    relisting: Option<HashSet<String>>,
}

impl Wakes {
    /// The object whose owner to wake for `event`, if any. `wake` reduces it.
    pub fn on<K: Resource>(
        &mut self,
        event: watcher::Event<K>,
        wake: impl Fn(&K) -> Wake,
    ) -> Option<K> {
        match event {
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                let uid = obj.uid().unwrap_or_default();
                if let Some(seen) = self.relisting.as_mut() {
                    seen.insert(uid.clone());
                }
                let now = wake(&obj);
                let changed = match self.last.get(&uid) {
                    Some(before) => *before != now,
                    // First seen: wakes only when it already shows something.
                    None => now != Wake::default(),
                };
                self.last.insert(uid, now);
                changed.then_some(obj)
            }
            watcher::Event::Delete(obj) => {
                self.last.remove(&obj.uid().unwrap_or_default());
                Some(obj)
            }
            watcher::Event::Init => {
                self.relisting = Some(HashSet::new());
                None
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.relisting.take() {
                    self.last.retain(|uid, _| seen.contains(uid));
                }
                None
            }
        }
    }
}

/// `events` (a reflector's stream) reduced to the objects whose owners to wake.
pub fn filter<K, S>(
    events: S,
    mut wakes: Wakes,
    wake: fn(&K) -> Wake,
) -> impl Stream<Item = Result<K, watcher::Error>>
where
    K: Resource,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    events.filter_map(move |event| {
        future::ready(match event {
            Ok(event) => wakes.on(event, wake).map(Ok),
            Err(e) => Some(Err(e)),
        })
    })
}

#[cfg(test)]
mod tests;
