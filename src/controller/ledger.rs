//! The shell around `engine::ledger`: before history pruning deletes runs, it writes
//! what must outlive them, and deletes only once that is written. A restart between
//! the write and the delete prunes again: the records are keyed by uid and by name,
//! so writing them twice adds nothing.
//!
//! - Their remediation claims still inside the window go to the Playbook's
//!   `status.remediationClaims`, in the Playbook's turn (`super::remediation`), so no
//!   run counts while a pruned one is in neither cache.
//! - Alert-started runs go to their Trigger's `status.prunedAlerts`, which the
//!   webhook reads from its Trigger cache.
//!
//! Both writes are server-side applies by a field manager of their own (the Ready
//! condition and the match counts are other managers') with the object's
//! `resourceVersion` as a precondition: what was read is what is extended, even with
//! another writer (a second replica, the webhook) in between.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use super::{Context, Error};
use crate::api::{Execution, PrunedAlert, Trigger};
use crate::engine::ledger::{
    alert_to_keep, claim_to_keep, ledger_claims, merged_ledger, merged_pruned,
};

/// The field manager of `remediationClaims` and `prunedAlerts`.
const MANAGER: &str = "playbook-operator-history";
/// Tries of a write whose precondition failed: the Playbook cache may be a few
/// milliseconds behind this controller's own previous write.
const TRIES: u32 = 5;
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// Writes what the runs `doomed` of Playbook `ns/playbook` leave behind.
pub async fn keep(
    ctx: &Context,
    ns: &str,
    playbook: &str,
    doomed: &[&Execution],
) -> Result<(), Error> {
    keep_claims(ctx, ns, playbook, doomed).await?;
    keep_alerts(ctx, ns, doomed).await
}

/// Adds the claims of `doomed` that still count to the Playbook's ledger.
async fn keep_claims(
    ctx: &Context,
    ns: &str,
    playbook: &str,
    doomed: &[&Execution],
) -> Result<(), Error> {
    let key = ObjectRef::new(playbook).within(ns);
    let limit = ctx.playbooks.get(&key).and_then(|pb| {
        let pb = pb.0.as_ref().ok()?;
        pb.spec.limits.as_ref()?.remediations.clone()
    });
    // No limit (or no Playbook any more): nothing counts the claims.
    let Some(limit) = limit else { return Ok(()) };
    let now = Timestamp::now().as_second();
    let adding: Vec<_> = doomed
        .iter()
        .filter_map(|e| claim_to_keep(e, &limit, now))
        .collect();
    if adding.is_empty() {
        return Ok(());
    }
    let mut turn = ctx.remediations.turn(ns, playbook).await;
    let api: Api<crate::api::Playbook> = Api::namespaced(ctx.client.clone(), ns);
    let mut tries = 0;
    loop {
        let Some(pb) = ctx.playbooks.get(&key) else {
            return Ok(());
        };
        let Ok(pb) = &pb.0 else { return Ok(()) };
        let current = pb
            .status
            .as_ref()
            .map(|s| s.remediation_claims.as_slice())
            .unwrap_or_default();
        if adding
            .iter()
            .all(|a| current.iter().any(|c| c.uid == a.uid))
        {
            return Ok(());
        }
        let ledger = merged_ledger(current, &adding, &limit, now);
        let patch = json!({
            "apiVersion": "stackpulse.io/v1",
            "kind": "Playbook",
            "metadata": {"name": playbook, "resourceVersion": pb.metadata.resource_version},
            "status": {"remediationClaims": ledger},
        });
        let pp = PatchParams::apply(MANAGER).force();
        match api.patch_status(playbook, &pp, &Patch::Apply(&patch)).await {
            Ok(_) => {
                tracing::info!(
                    playbook,
                    kept = adding.len(),
                    "remediation claims of pruned runs kept in the Playbook's status"
                );
                turn.ledgered(ledger_claims(&adding));
                return Ok(());
            }
            Err(kube::Error::Api(s)) if s.code == 409 && tries + 1 < TRIES => {
                tries += 1;
                tokio::time::sleep(RETRY_AFTER).await;
            }
            Err(source) => {
                return Err(Error::WriteStatus {
                    name: format!("Playbook {ns}/{playbook}"),
                    source,
                });
            }
        }
    }
}

/// Adds the alert-started runs among `doomed` to their Triggers' records.
async fn keep_alerts(ctx: &Context, ns: &str, doomed: &[&Execution]) -> Result<(), Error> {
    let now = Timestamp::now();
    let mut by_trigger: BTreeMap<String, Vec<PrunedAlert>> = BTreeMap::new();
    for e in doomed {
        if let Some((trigger, pruned)) = alert_to_keep(e, now) {
            by_trigger.entry(trigger).or_default().push(pruned);
        }
    }
    let api: Api<Trigger> = Api::namespaced(ctx.client.clone(), ns);
    for (trigger, adding) in by_trigger {
        let mut tries = 0;
        loop {
            match remember(&api, &trigger, &adding).await {
                Ok(()) => break,
                Err(kube::Error::Api(s)) if s.code == 409 && tries + 1 < TRIES => {
                    tries += 1;
                    tokio::time::sleep(RETRY_AFTER).await;
                }
                Err(source) => {
                    return Err(Error::WriteStatus {
                        name: format!("Trigger {ns}/{trigger}"),
                        source,
                    });
                }
            }
        }
    }
    Ok(())
}

/// One read and write of Trigger `name`'s record (a GET: the controller keeps no
/// Trigger cache, and pruning is rare).
async fn remember(
    api: &Api<Trigger>,
    name: &str,
    adding: &[PrunedAlert],
) -> Result<(), kube::Error> {
    let trigger = match api.get(name).await {
        Ok(t) => t,
        // Deleted: nothing can start its alerts again.
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(e),
    };
    let current = trigger
        .status
        .as_ref()
        .map(|s| s.pruned_alerts.as_slice())
        .unwrap_or_default();
    if adding
        .iter()
        .all(|a| current.iter().any(|c| c.execution == a.execution))
    {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": "stackpulse.io/v1",
        "kind": "Trigger",
        "metadata": {"name": name, "resourceVersion": trigger.metadata.resource_version},
        "status": {"prunedAlerts": merged_pruned(current, adding)},
    });
    let pp = PatchParams::apply(MANAGER).force();
    api.patch_status(name, &pp, &Patch::Apply(&patch)).await?;
    tracing::info!(
        trigger = name,
        kept = adding.len(),
        "pruned alert runs remembered in the Trigger's status"
    );
    Ok(())
}
