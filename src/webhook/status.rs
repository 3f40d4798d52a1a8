//! Trigger status. `Ready` says whether the Trigger can work (its regexes compile
//! and its templates parse), written when it changes, checked at every flush from
//! the Trigger cache.
//!
//! The counts (`matched`, `executionsCreated`, `lastMatchedAt`) are coalesced: the
//! counts of many alerts are added up in memory and written every
//! [`FLUSH_EVERY`] per Trigger, not once per alert (an alert storm would otherwise
//! be a storm of status writes to the same objects).
//!
//! Each write takes the Trigger from the cache and server-side applies the new
//! totals with its `resourceVersion` as a precondition, so two replicas adding at
//! once cannot lose each other's counts, nor can a stale cache (the loser gets a
//! conflict and retries at the next flush).
//! A count that could not be written stays pending; the counts of a process killed
//! between flushes are lost, which status counters may afford (the metrics and the
//! Executions themselves are the record).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;

use super::Shared;
use crate::api::Trigger;
use crate::controller::FIELD_MANAGER;
use crate::engine::lint::{READY, trigger_ready_condition};

/// Field manager of the counts. Not the one of `Ready` (the controller's): a server-side
/// apply drops the fields its manager applied before and left out this time, so
/// counts and conditions written separately need a manager each.
const COUNTS_MANAGER: &str = "playbook-operator-webhook";

const FLUSH_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    matched: u64,
    created: u64,
    last: Option<Timestamp>,
}

/// Counts not written yet, by (namespace, trigger).
#[derive(Debug, Default)]
pub(super) struct TriggerStats(Mutex<HashMap<(String, String), Pending>>);

impl TriggerStats {
    /// One (alert, trigger) match that ended with its Execution existing.
    pub(super) fn record(&self, namespace: &str, trigger: &str, created: bool) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let p = map
            .entry((namespace.to_string(), trigger.to_string()))
            .or_default();
        p.matched += 1;
        p.created += u64::from(created);
        p.last = Some(Timestamp::now());
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    fn take(&self) -> HashMap<(String, String), Pending> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn put_back(&self, key: (String, String), p: Pending) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(key).or_default();
        e.matched += p.matched;
        e.created += p.created;
        e.last = e.last.max(p.last);
    }
}

pub(super) async fn run(shared: std::sync::Arc<Shared>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        flush(&shared).await;
    }
}

/// Writes the pending counts, then `Ready` where it changed (in this order: a
/// Ready write changes the resourceVersion the counts' precondition names).
pub(super) async fn flush(shared: &Shared) {
    for (key, pending) in shared.stats.take() {
        if let Err(e) = write(shared, &key.0, &key.1, pending).await {
            match &e {
                // The Trigger is gone: its counts go with it.
                kube::Error::Api(s) if s.code == 404 => {}
                _ => {
                    tracing::debug!(trigger = %key.1, namespace = %key.0, error = %e, "writing Trigger status; retrying at the next flush");
                    shared.stats.put_back(key, pending);
                }
            }
        }
    }
    write_ready(shared).await;
}

async fn write(shared: &Shared, ns: &str, name: &str, p: Pending) -> Result<(), kube::Error> {
    let api: Api<Trigger> = Api::namespaced(shared.client.clone(), ns);
    // From the cache, not a GET (so no `get` right is needed): when the cache is
    // behind, the resourceVersion precondition fails, the counts stay pending, and
    // the next flush adds them to the newer totals.
    let key = ObjectRef::<DeserializeGuard<Trigger>>::new(name).within(ns);
    let Some(current) = shared.triggers.get(&key) else {
        // Deleted since it matched (it matched from this cache): its counts go with it.
        return Ok(());
    };
    let Ok(current) = &current.0 else {
        return Ok(());
    };
    let status = current.status.clone().unwrap_or_default();
    let last = p.last.map(Time).or(status.last_matched_at);
    let patch = json!({
        "apiVersion": "stackpulse.io/v1",
        "kind": "Trigger",
        "metadata": {"name": name, "resourceVersion": current.metadata.resource_version},
        "status": {
            "matched": status.matched + p.matched,
            "executionsCreated": status.executions_created + p.created,
            "lastMatchedAt": last,
        }
    });
    let pp = PatchParams::apply(COUNTS_MANAGER).force();
    api.patch_status(name, &pp, &Patch::Apply(&patch)).await?;
    Ok(())
}

/// Writes `Ready` on the Triggers whose condition is missing or out of date (a
/// no-op for every Trigger that did not change).
async fn write_ready(shared: &Shared) {
    for t in shared.triggers.state() {
        let Ok(trigger) = &t.0 else { continue };
        let (Some(ns), name) = (trigger.namespace(), trigger.name_any()) else {
            continue;
        };
        let conditions = trigger
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let old = conditions.iter().find(|c| c.type_ == READY);
        let generation = trigger.metadata.generation;
        let want = trigger_ready_condition(&trigger.spec, generation, old, Timestamp::now());
        let same = old.is_some_and(|o| {
            o.status == want.status
                && o.reason == want.reason
                && o.message == want.message
                && o.observed_generation == want.observed_generation
        });
        if same {
            continue;
        }
        let api: Api<Trigger> = Api::namespaced(shared.client.clone(), &ns);
        let patch = json!({
            "apiVersion": "stackpulse.io/v1",
            "kind": "Trigger",
            "metadata": {"name": name},
            "status": {"conditions": [want]}
        });
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch_status(&name, &pp, &Patch::Apply(&patch)).await {
            Ok(_) => {
                tracing::info!(trigger = %name, namespace = %ns, ready = %want.status, message = %want.message, "Ready written")
            }
            Err(e) => {
                tracing::debug!(trigger = %name, error = %e, "writing Trigger Ready; retrying at the next flush")
            }
        }
    }
}
