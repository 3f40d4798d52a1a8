//! Deleting finished Executions: one past its `ttlSecondsAfterFinished`, and the
//! oldest of its Playbook's beyond `historyLimit` (decided by `engine::history`).
//!
//! Runs after a reconcile has applied its plan, so it sees the phase just written.
//! What a deleted run must leave behind (its remediation claim, its alert's name) is
//! written first (`super::ledger`).
//! Deletes carry the Execution's uid as a precondition: a new Execution created under
//! the same name in the meantime is never deleted. Jobs and Pods go with their
//! Execution through owner references (background propagation).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::reflector::ObjectRef;

use super::{Context, Error, ledger};
use crate::api::{Execution, ExecutionStatus, HistoryLimit};
use crate::engine::history::{Finished, beyond_limit, ttl_left};

/// Enforces the TTL of `exec` (whose status is now `status`) and the history limit of
/// its Playbook. Returns when to look again for the TTL, if it has not expired yet.
pub async fn enforce(
    ctx: &Context,
    exec: &Execution,
    status: &ExecutionStatus,
) -> Result<Option<Duration>, Error> {
    if !status.phase.is_final() {
        return Ok(None);
    }
    let ns = exec.namespace().unwrap_or_default();
    let api: Api<Execution> = Api::namespaced(ctx.client.clone(), &ns);
    let left = ttl_left(
        exec.spec.ttl_seconds_after_finished,
        status,
        Timestamp::now(),
    );
    if left.is_some_and(|l| l.is_zero()) {
        // With the status just planned: the claim is in it, whichever write is cached.
        let mut run = exec.clone();
        run.status = Some(status.clone());
        ledger::keep(ctx, &ns, &exec.spec.playbook_ref.name, &[&run]).await?;
        tracing::info!("deleting the Execution: ttlSecondsAfterFinished has passed");
        delete(&api, &ns, &exec.name_any(), exec.uid()).await?;
        return Ok(None);
    }
    prune(ctx, &api, exec).await?;
    Ok(left)
}

/// Deletes the finished Executions of `exec`'s Playbook beyond its history limit.
async fn prune(ctx: &Context, api: &Api<Execution>, exec: &Execution) -> Result<(), Error> {
    let ns = exec.namespace().unwrap_or_default();
    let playbook = &exec.spec.playbook_ref.name;
    let limit = ctx
        .playbooks
        .get(&ObjectRef::new(playbook).within(&ns))
        .and_then(|pb| pb.0.as_ref().ok()?.spec.history_limit);
    let Some(limit) = limit else { return Ok(()) };
    let cached = ctx.executions.state();
    let runs: Vec<&Execution> = cached
        .iter()
        .filter_map(|e| e.0.as_ref().ok())
        .filter(|e| e.namespace().as_deref() == Some(&ns) && &e.spec.playbook_ref.name == playbook)
        .collect();
    prune_runs(ctx, api, &ns, &runs, &limit, "the Playbook's historyLimit").await
}

/// Deletes the finished runs among `runs` (all in `ns`) beyond `limit` (`whose`:
/// for the log), after writing what they leave behind to their Playbooks.
pub(super) async fn prune_runs(
    ctx: &Context,
    api: &Api<Execution>,
    ns: &str,
    runs: &[&Execution],
    limit: &HistoryLimit,
    whose: &str,
) -> Result<(), Error> {
    let mut by_name = std::collections::HashMap::new();
    let finished: Vec<Finished> = runs
        .iter()
        .filter_map(|e| {
            let st = e.status.as_ref()?;
            st.phase.is_final().then(|| {
                let name = e.metadata.name.as_deref().unwrap_or_default();
                by_name.insert(name, *e);
                Finished {
                    name,
                    phase: st.phase,
                    finished_at: st.finished_at.as_ref().map(|t| t.0),
                    created_at: e.metadata.creation_timestamp.as_ref().map(|t| t.0),
                }
            })
        })
        .collect();
    let doomed: Vec<&Execution> = beyond_limit(&finished, limit)
        .into_iter()
        .filter_map(|name| by_name.get(name).copied())
        .collect();
    let mut playbooks: Vec<&str> = doomed
        .iter()
        .map(|e| e.spec.playbook_ref.name.as_str())
        .collect();
    playbooks.sort_unstable();
    playbooks.dedup();
    for playbook in playbooks {
        let theirs: Vec<&Execution> = doomed
            .iter()
            .copied()
            .filter(|e| e.spec.playbook_ref.name == playbook)
            .collect();
        ledger::keep(ctx, ns, playbook, &theirs).await?;
    }
    for run in doomed {
        let name = run.name_any();
        tracing::info!(pruned = %name, playbook = %run.spec.playbook_ref.name, "deleting an Execution beyond {whose}");
        delete(api, ns, &name, run.uid()).await?;
    }
    Ok(())
}

/// Deletes one Execution if it still is the one with `uid`; gone or replaced is fine.
async fn delete(
    api: &Api<Execution>,
    ns: &str,
    name: &str,
    uid: Option<String>,
) -> Result<(), Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        // 404: already gone; 409: the uid precondition failed, so it is a newer
        // Execution under the same name, which is not ours to delete.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(source) => Err(Error::DeleteExecution {
            name: format!("{ns}/{name}"),
            source,
        }),
    }
}
