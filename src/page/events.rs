//! The page's cache of Events about Executions, fed by its Event watch: per
//! Execution at most `engine::page::events::KEPT` (the newest), each only what the
//! page shows (messages cut), filed only under an Execution of the Event's own
//! namespace (the decisions are in `engine::page::events`), and for at most
//! `MAX_UNKNOWN_RUNS` Executions the page does not know (yet). Not a reflector store:
//! that would keep every Event whole, so a flood of Events about one run would grow
//! the operator's memory without bound.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use k8s_openapi::api::core::v1::Event;
use kube::runtime::watcher;

use crate::engine::message::cut;
use crate::engine::page::events::{
    self as decide, About, ExecutionKey, KEPT, Kept, MAX_MESSAGE_BYTES, MAX_UNKNOWN_RUNS,
};
use crate::engine::page::{self as view, EventView};

type Filed = HashMap<ExecutionKey, Vec<Kept>>;

/// The kept Events by Execution; a relist is gathered aside and swapped in whole.
#[derive(Default)]
pub struct EventCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    live: Filed,
    relist: Option<Filed>,
    /// The Executions in the process's Execution cache.
    known: HashSet<ExecutionKey>,
    /// Executions Events were filed under while not known, oldest first (at most
    /// `MAX_UNKNOWN_RUNS`; some may have become known since).
    unknown: VecDeque<ExecutionKey>,
}

impl EventCache {
    /// Takes one watch event into the cache.
    pub fn apply(&self, event: watcher::Event<Event>) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        match event {
            watcher::Event::Apply(e) => file(&mut inner.live, &e, &inner.known, &mut inner.unknown),
            watcher::Event::Delete(e) => unfile(&mut inner.live, &e),
            watcher::Event::Init => inner.relist = Some(Filed::new()),
            watcher::Event::InitApply(e) => {
                if let Some(relist) = &mut inner.relist {
                    file(relist, &e, &inner.known, &mut inner.unknown);
                }
            }
            watcher::Event::InitDone => {
                if let Some(relist) = inner.relist.take() {
                    inner.live = relist;
                }
            }
        }
    }

    /// The Execution `namespace`/`uid` is in the Execution cache.
    pub fn run_seen(&self, namespace: &str, uid: &str) {
        self.lock().known.insert(key(namespace, uid));
    }

    /// The Execution `namespace`/`uid` was deleted: its Events go with it.
    pub fn run_gone(&self, namespace: &str, uid: &str) {
        let key = key(namespace, uid);
        let mut inner = self.lock();
        inner.known.remove(&key);
        inner.live.remove(&key);
        if let Some(relist) = &mut inner.relist {
            relist.remove(&key);
        }
    }

    /// The kept Events about the Execution `namespace`/`uid`, in no order.
    pub fn about(&self, namespace: &str, uid: &str) -> Vec<EventView> {
        let key = key(namespace, uid);
        self.lock()
            .live
            .get(&key)
            .map(|kept| kept.iter().map(|k| k.view.clone()).collect())
            .unwrap_or_default()
    }

    /// How many Events are kept in all.
    pub fn len(&self) -> usize {
        self.lock().live.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves whole entries behind (each step
        // replaces or removes one): the data is still good.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn about(e: &Event) -> About<'_> {
    About {
        namespace: e.metadata.namespace.as_deref(),
        kind: e.involved_object.kind.as_deref(),
        object_namespace: e.involved_object.namespace.as_deref(),
        uid: e.involved_object.uid.as_deref(),
    }
}

fn key(namespace: &str, uid: &str) -> ExecutionKey {
    ExecutionKey {
        namespace: namespace.to_string(),
        uid: uid.to_string(),
    }
}

/// Files `e`; a new entry for an Execution not `known` is counted among the
/// `unknown`, and past `MAX_UNKNOWN_RUNS` the oldest still unknown loses its Events.
fn file(
    filed: &mut Filed,
    e: &Event,
    known: &HashSet<ExecutionKey>,
    unknown: &mut VecDeque<ExecutionKey>,
) {
    let (Some(key), Some(name)) = (decide::filed_under(&about(e)), e.metadata.name.clone()) else {
        return;
    };
    if !filed.contains_key(&key) && !known.contains(&key) {
        unknown.push_back(key.clone());
        while unknown.len() > MAX_UNKNOWN_RUNS {
            if let Some(oldest) = unknown.pop_front()
                && !known.contains(&oldest)
            {
                filed.remove(&oldest);
            }
        }
    }
    let kept = Kept {
        name,
        view: event_view(e),
    };
    decide::keep(filed.entry(key).or_default(), kept, KEPT);
}

fn unfile(filed: &mut Filed, e: &Event) {
    let (Some(key), Some(name)) = (decide::filed_under(&about(e)), e.metadata.name.as_deref())
    else {
        return;
    };
    if let Some(kept) = filed.get_mut(&key) {
        decide::forget(kept, name);
        if kept.is_empty() {
            filed.remove(&key);
        }
    }
}

fn event_view(e: &Event) -> EventView {
    // eventTime (microseconds, set by events.k8s.io writers like ours) orders Events of
    // one second; lastTimestamp is what older writers set.
    let at = e
        .event_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
    EventView {
        at: at.map(view::timestamp),
        order: at.map_or(0, |t| t.as_millisecond()),
        kind: e.type_.clone().unwrap_or_default(),
        reason: e.reason.clone().unwrap_or_default(),
        message: cut(e.message.as_deref().unwrap_or_default(), MAX_MESSAGE_BYTES),
        count: e.count.unwrap_or(1),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(ns: &str, name: &str, object_ns: &str, uid: &str, second: u32) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {"kind": "Execution", "name": "r1", "namespace": object_ns, "uid": uid},
            "reason": "StepStarted", "message": format!("event {name}"), "type": "Normal",
            "eventTime": format!("2026-11-25T10:00:{second:02}.000000Z")
        }))
        .expect("a valid Event")
    }

    #[test]
    fn a_flood_about_one_run_keeps_the_newest_and_other_namespaces_stay_out() {
        let cache = EventCache::default();
        for i in 0..(KEPT as u32 + 9) {
            cache.apply(watcher::Event::Apply(event(
                "prod",
                &format!("e{i:02}"),
                "prod",
                "u1",
                i,
            )));
        }
        // A tenant's Events naming prod's run: not on its page, and not kept at all.
        cache.apply(watcher::Event::Apply(event(
            "tenant", "forged", "prod", "u1", 59,
        )));
        let shown = cache.about("prod", "u1");
        assert_eq!(shown.len(), KEPT);
        assert!(shown.iter().all(|e| e.message != "event forged"));
        assert!(
            shown
                .iter()
                .any(|e| e.message == format!("event e{:02}", KEPT + 8))
        );
        assert!(
            !shown.iter().any(|e| e.message == "event e00"),
            "the oldest went"
        );
        assert_eq!(cache.len(), KEPT);
        assert!(cache.about("tenant", "u1").is_empty());
    }

    #[test]
    fn deletes_and_relists_keep_the_cache_true() {
        let cache = EventCache::default();
        cache.apply(watcher::Event::Apply(event("prod", "a", "prod", "u1", 1)));
        cache.apply(watcher::Event::Apply(event("prod", "b", "prod", "u1", 2)));
        cache.apply(watcher::Event::Delete(event("prod", "a", "prod", "u1", 1)));
        assert_eq!(cache.about("prod", "u1").len(), 1);
        // A relist that no longer has `b` but has `c`: served from the old set until done.
        cache.apply(watcher::Event::Init);
        cache.apply(watcher::Event::InitApply(event(
            "prod", "c", "prod", "u2", 3,
        )));
        assert_eq!(cache.about("prod", "u1").len(), 1);
        cache.apply(watcher::Event::InitDone);
        assert!(cache.about("prod", "u1").is_empty());
        assert_eq!(cache.about("prod", "u2").len(), 1);
    }

    #[test]
    fn events_about_unknown_runs_are_bounded_and_known_runs_keep_theirs() {
        let cache = EventCache::default();
        cache.apply(watcher::Event::Apply(event(
            "prod", "k1", "prod", "known", 1,
        )));
        cache.run_seen("prod", "known");
        // Filed before its run was seen, which is seen later: kept through the flood.
        cache.apply(watcher::Event::Apply(event(
            "prod", "l1", "prod", "late", 2,
        )));
        cache.run_seen("prod", "late");
        // Made-up uids, one Event each.
        for i in 0..MAX_UNKNOWN_RUNS + 10 {
            let uid = format!("made-up-{i}");
            cache.apply(watcher::Event::Apply(event("prod", &uid, "prod", &uid, 3)));
        }
        assert_eq!(cache.about("prod", "known").len(), 1);
        assert_eq!(cache.about("prod", "late").len(), 1);
        assert!(
            cache.about("prod", "made-up-0").is_empty(),
            "the oldest unknown went"
        );
        let newest = format!("made-up-{}", MAX_UNKNOWN_RUNS + 9);
        assert_eq!(cache.about("prod", &newest).len(), 1);
        assert!(
            cache.len() <= MAX_UNKNOWN_RUNS + 2,
            "{} Events kept for {MAX_UNKNOWN_RUNS} unknown runs and 2 known",
            cache.len()
        );
        cache.run_gone("prod", "known");
        assert!(
            cache.about("prod", "known").is_empty(),
            "a deleted run's Events go"
        );
    }

    #[test]
    fn a_long_message_is_cut() {
        let mut e = event("prod", "a", "prod", "u1", 1);
        e.message = Some("x".repeat(100_000));
        let cache = EventCache::default();
        cache.apply(watcher::Event::Apply(e));
        let shown = cache.about("prod", "u1");
        assert!(shown[0].message.len() <= MAX_MESSAGE_BYTES);
    }
}
