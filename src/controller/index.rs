//! The cached Jobs and Pods of each Execution, found by its uid without scanning.
//!
//! A run's Jobs and Pods stay cached as long as the run (history), so a scan of the
//! whole cache per reconcile grew with every finished run, and the first reconcile of
//! each finished run after a start made it quadratic. kube-runtime's `Store` has no
//! index, so one is kept beside it from the same watch events, in an order that makes
//! every object in the store findable: an object enters the index before the store
//! applies its event, and leaves only after (deleted, or gone from a relist). The index
//! may name objects the store no longer has, or whose label changed: a lookup reads
//! each from the store and keeps only those that carry the uid now.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher;

use crate::engine::job::LABEL_EXECUTION_UID;

/// Names of the cached `K`s, by the Execution uid they are labelled with.
pub struct ByExecution<K: Resource<DynamicType = ()>> {
    refs: Mutex<HashMap<String, HashSet<ObjectRef<K>>>>,
}

impl<K: Resource<DynamicType = ()> + Clone> Default for ByExecution<K> {
    fn default() -> Self {
        Self {
            refs: Mutex::default(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone> ByExecution<K> {
    /// `reflector::reflector` for `store` (of `writer`), with this index kept beside
    /// it in the order above.
    pub fn reflector<S>(
        self: &Arc<Self>,
        writer: Writer<K>,
        store: Store<K>,
        events: S,
    ) -> impl Stream<Item = S::Item> + use<K, S>
    where
        S: Stream<Item = watcher::Result<watcher::Event<K>>>,
    {
        let (before, after) = (self.clone(), self.clone());
        let indexed = events.inspect(move |e| e.iter().for_each(|e| before.before(e)));
        reflector::reflector(writer, indexed)
            .inspect(move |e| e.iter().for_each(|e| after.after(e, &store)))
    }

    /// Before the store applies `event`: a new or changed object is indexed first.
    fn before(&self, event: &watcher::Event<K>) {
        if let watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) = event
            && let Some(uid) = execution_uid(obj)
        {
            self.lock()
                .entry(uid.to_string())
                .or_default()
                .insert(ObjectRef::from_obj(obj));
        }
    }

    /// After the store applied `event`: a deleted object leaves the index; at the end
    /// of a relist the index becomes the store's (objects the list no longer has left
    /// the store without a Delete event).
    fn after(&self, event: &watcher::Event<K>, store: &Store<K>) {
        match event {
            watcher::Event::Delete(obj) => {
                let Some(uid) = execution_uid(obj) else {
                    return;
                };
                let mut refs = self.lock();
                if let Some(set) = refs.get_mut(uid) {
                    set.remove(&ObjectRef::from_obj(obj));
                    if set.is_empty() {
                        refs.remove(uid);
                    }
                }
            }
            watcher::Event::InitDone => {
                let mut rebuilt: HashMap<String, HashSet<ObjectRef<K>>> = HashMap::new();
                for obj in store.state() {
                    if let Some(uid) = execution_uid(&*obj) {
                        rebuilt
                            .entry(uid.to_string())
                            .or_default()
                            .insert(ObjectRef::from_obj(&*obj));
                    }
                }
                *self.lock() = rebuilt;
            }
            watcher::Event::Apply(_) | watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    /// The cached `K`s in namespace `ns` labelled with Execution `uid` (an object
    /// elsewhere that carries the label is someone else's, whatever it says).
    pub fn of(&self, ns: &str, uid: &str, store: &Store<K>) -> Vec<Arc<K>> {
        let refs: Vec<ObjectRef<K>> = match self.lock().get(uid) {
            Some(set) => set.iter().cloned().collect(),
            None => return Vec::new(),
        };
        refs.iter()
            .filter_map(|r| store.get(r))
            .filter(|obj| obj.meta().namespace.as_deref() == Some(ns))
            .filter(|obj| execution_uid(&**obj) == Some(uid))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashSet<ObjectRef<K>>>> {
        self.refs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn execution_uid<K: Resource>(obj: &K) -> Option<&str> {
    obj.meta()
        .labels
        .as_ref()?
        .get(LABEL_EXECUTION_UID)
        .map(String::as_str)
}

#[cfg(test)]
mod tests;
