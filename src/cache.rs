//! One Execution watch and one Execution cache per process, shared by the execution
//! page (every replica), the controller (on the leader) and the chat notifier.
//!
//! [`Executions::start`] gives the cache and the future that keeps it (run it until
//! shutdown). Every object passes `engine::slim::slim` before it is stored: a run
//! that is over is kept without what nothing reads of it (its outputs, plans and
//! snapshot), which is most of a finished run's size; the controller never plans
//! from such an object (`engine::slim::Full`). Those that act on changes (the
//! controller's reconciles, the notifier, the page's memory of plans) call
//! [`Executions::subscribe`]: every cached run at once, then each change, as `Arc`s
//! of the stored objects (never a copy).
//!
//! Not kube-runtime's shared-store subscribers (`reflector::store_shared`,
//! `Writer::subscribe`), read in kube-runtime 5.0.0: a subscriber can only be made
//! from the `Writer` before the watch takes it, while the controller starts later (when
//! this replica becomes the leader) and must first get the runs already cached; each
//! subscriber holds the watch back until it has read the buffer, so one made for a
//! standby's controller would stop the page's cache; and its `ReflectHandle` returns
//! `Pending` without a waker when the run it was told about is deleted before it
//! reads it, which stalls a quiet subscriber. Here the watch feeds a plain
//! `reflector::store` and each subscriber has an unbounded channel of `Arc`s.

use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use crate::api::Execution;
use crate::engine::slim::slim;

/// Executions per list request when the watch (re)lists. A page is deserialized
/// whole before its runs are slimmed one by one, so it sets the list's peak: at
/// kube-runtime's default of 500, 500 whole finished runs (~90 KiB each on the heap,
/// with their response body) were alive at once, and the allocator keeps much of that
/// peak long after. Not a streaming list (`sendInitialEvents`): Kubernetes 1.33 refuses
/// it by default, and a watch that cannot list would leave the cache empty.
const LIST_PAGE: u32 = 50;

/// What the cache holds: an Execution, or why it did not deserialize.
pub type Cached = DeserializeGuard<Execution>;

/// One change of the cache.
#[derive(Clone, Debug)]
pub enum Change {
    /// Created or changed (and every cached run when a subscriber starts, or after
    /// the watch listed again): as now stored.
    Applied(Arc<Cached>),
    /// Deleted: as last seen.
    Deleted(Arc<Cached>),
}

/// The process's Execution cache; clones share it.
#[derive(Clone)]
pub struct Executions {
    store: Store<Cached>,
    subscribers: Arc<Mutex<Vec<UnboundedSender<Change>>>>,
}

impl Executions {
    /// The cache of the Executions in `namespace` (`None`: all), and the watch that
    /// fills it.
    pub fn start(
        client: Client,
        namespace: Option<&str>,
    ) -> (Self, impl Future<Output = ()> + Send + use<>) {
        let api: Api<Cached> = match namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        };
        let (store, writer) = reflector::store::<Cached>();
        let this = Self {
            store,
            subscribers: Arc::default(),
        };
        let publisher = this.clone();
        let events = watcher(api, watcher::Config::default().page_size(LIST_PAGE))
            .default_backoff()
            .modify(|e| {
                e.managed_fields_mut().clear();
                if let Ok(exec) = &mut e.0 {
                    slim(exec);
                }
            });
        let watch = reflector::reflector(writer, events).for_each(move |event| {
            match event {
                Ok(event) => publisher.publish(event),
                Err(e) => tracing::warn!(error = %e, "watching Executions"),
            }
            futures::future::ready(())
        });
        (this, watch)
    }

    /// The cache, for reads (the controller's `Store`).
    pub fn store(&self) -> Store<Cached> {
        self.store.clone()
    }

    /// Every cached run now, then every change, until the watch stops.
    pub fn subscribe(&self) -> UnboundedReceiver<Change> {
        let (tx, rx) = mpsc::unbounded();
        // Under the lock that `publish` takes after the store changed: a change is
        // either in this snapshot or sent after it (or both, which is harmless).
        let mut subscribers = lock(&self.subscribers);
        for cached in self.store.state() {
            let _ = tx.unbounded_send(Change::Applied(cached));
        }
        subscribers.push(tx);
        rx
    }

    /// Hands a watch event, already applied to the store, to the subscribers.
    fn publish(&self, event: watcher::Event<Cached>) {
        let changes = match event {
            watcher::Event::Apply(obj) => self
                .store
                .get(&ObjectRef::from_obj(&obj))
                .map(Change::Applied)
                .into_iter()
                .collect(),
            watcher::Event::Delete(obj) => vec![Change::Deleted(Arc::new(obj))],
            // A (re)list is stored whole at its end: then every run is sent.
            watcher::Event::InitDone => self
                .store
                .state()
                .into_iter()
                .map(Change::Applied)
                .collect(),
            watcher::Event::Init | watcher::Event::InitApply(_) => Vec::new(),
        };
        if changes.is_empty() {
            return;
        }
        // A subscriber that stopped reading is dropped.
        lock(&self.subscribers)
            .retain(|tx| changes.iter().all(|c| tx.unbounded_send(c.clone()).is_ok()));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves a plain list behind: keep using it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector::store::Writer;
    use serde_json::json;

    use super::*;

    fn run(name: &str, phase: &str) -> Cached {
        let mut exec: Execution = serde_json::from_value(json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Execution",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"playbookRef": {"name": "pb"}},
            "status": {"phase": phase, "steps": [{"id": "a", "outputs": {"x": 1}}]}
        }))
        .expect("an Execution");
        slim(&mut exec);
        DeserializeGuard(Ok(exec))
    }

    /// The cache with `writer` as its watch: each event applied, then published.
    fn cache() -> (Executions, Writer<Cached>) {
        let (store, writer) = reflector::store::<Cached>();
        let cache = Executions {
            store,
            subscribers: Arc::default(),
        };
        (cache, writer)
    }

    fn watch(cache: &Executions, writer: &mut Writer<Cached>, event: watcher::Event<Cached>) {
        writer.apply_watcher_event(&event);
        cache.publish(event);
    }

    fn names(changes: Vec<Change>) -> Vec<String> {
        changes
            .into_iter()
            .map(|c| match c {
                Change::Applied(e) => format!("applied {}", e.name_any()),
                Change::Deleted(e) => format!("deleted {}", e.name_any()),
            })
            .collect()
    }

    fn drain(rx: &mut UnboundedReceiver<Change>) -> Vec<Change> {
        let mut out = Vec::new();
        while let Ok(c) = rx.try_recv() {
            out.push(c);
        }
        out
    }

    #[test]
    fn a_subscriber_gets_what_is_cached_then_each_change_as_the_stored_object() {
        let (cache, mut w) = cache();
        let mut early = cache.subscribe();
        watch(&cache, &mut w, watcher::Event::Init);
        watch(
            &cache,
            &mut w,
            watcher::Event::InitApply(run("a", "Succeeded")),
        );
        watch(
            &cache,
            &mut w,
            watcher::Event::InitApply(run("b", "Running")),
        );
        assert!(
            drain(&mut early).is_empty(),
            "nothing before the list is stored"
        );
        watch(&cache, &mut w, watcher::Event::InitDone);
        let mut listed = names(drain(&mut early));
        listed.sort();
        assert_eq!(listed, ["applied a", "applied b"]);

        // The controller of a replica that becomes the leader later.
        let mut late = cache.subscribe();
        let mut cached = names(drain(&mut late));
        cached.sort();
        assert_eq!(cached, ["applied a", "applied b"]);

        watch(&cache, &mut w, watcher::Event::Apply(run("b", "Failed")));
        watch(
            &cache,
            &mut w,
            watcher::Event::Delete(run("a", "Succeeded")),
        );
        for rx in [&mut early, &mut late] {
            let changes = drain(rx);
            let stored = cache.store.get(&ObjectRef::new("b").within("ns"));
            let Some(Change::Applied(sent)) = changes.first() else {
                panic!("b's change first");
            };
            assert!(
                stored.is_some_and(|stored| Arc::ptr_eq(sent, &stored)),
                "the stored object, not a copy"
            );
            assert_eq!(names(changes), ["applied b", "deleted a"]);
        }
    }

    #[test]
    fn a_subscriber_that_stopped_reading_is_dropped() {
        let (cache, mut w) = cache();
        let gone = cache.subscribe();
        let mut kept = cache.subscribe();
        drop(gone);
        watch(&cache, &mut w, watcher::Event::Apply(run("a", "Running")));
        assert_eq!(lock(&cache.subscribers).len(), 1);
        assert_eq!(names(drain(&mut kept)), ["applied a"]);
    }
}
