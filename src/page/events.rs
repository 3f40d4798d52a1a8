//! The page's cache of Events about Executions, fed by its Event watch: per
//! Execution at most `engine::page::events::KEPT` (the newest), each only what the
//! page shows (messages cut), filed only under an Execution of the Event's own
//! namespace (the decisions are in `engine::page::events`). Not a reflector store:
//! that would keep every Event whole, so a flood of Events about one run would grow
//! the operator's memory without bound.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use k8s_openapi::api::core::v1::Event;
use kube::runtime::watcher;

use crate::engine::message::cut;
use crate::engine::page::events::{
    self as decide, About, ExecutionKey, KEPT, Kept, MAX_MESSAGE_BYTES,
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
}

impl EventCache {
    /// Takes one watch event into the cache.
    pub fn apply(&self, event: watcher::Event<Event>) {
        let mut inner = self.lock();
        match event {
            watcher::Event::Apply(e) => file(&mut inner.live, &e),
            watcher::Event::Delete(e) => unfile(&mut inner.live, &e),
            watcher::Event::Init => inner.relist = Some(Filed::new()),
            watcher::Event::InitApply(e) => {
                if let Some(relist) = &mut inner.relist {
                    file(relist, &e);
                }
            }
            watcher::Event::InitDone => {
                if let Some(relist) = inner.relist.take() {
                    inner.live = relist;
                }
            }
        }
    }

    /// The kept Events about the Execution `namespace`/`uid`, in no order.
    pub fn about(&self, namespace: &str, uid: &str) -> Vec<EventView> {
        let key = ExecutionKey {
            namespace: namespace.to_string(),
            uid: uid.to_string(),
        };
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

fn file(filed: &mut Filed, e: &Event) {
    let (Some(key), Some(name)) = (decide::filed_under(&about(e)), e.metadata.name.clone()) else {
        return;
    };
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
    fn a_long_message_is_cut() {
        let mut e = event("prod", "a", "prod", "u1", 1);
        e.message = Some("x".repeat(100_000));
        let cache = EventCache::default();
        cache.apply(watcher::Event::Apply(e));
        let shown = cache.about("prod", "u1");
        assert!(shown[0].message.len() <= MAX_MESSAGE_BYTES);
    }
}
