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
    prune(ctx, &api, exec, status).await?;
    Ok(left)
}

/// Deletes the finished Executions of `exec`'s Playbook beyond its history limit,
/// counting `exec` with `status`, the one just written: the cache may not show that
/// write yet, and its echo wakes nothing (`super::echo`), so a run that just finished
/// would otherwise not be counted until something else woke a run of its Playbook.
async fn prune(
    ctx: &Context,
    api: &Api<Execution>,
    exec: &Execution,
    status: &ExecutionStatus,
) -> Result<(), Error> {
    let ns = exec.namespace().unwrap_or_default();
    let playbook = &exec.spec.playbook_ref.name;
    let limit = ctx
        .playbooks
        .get(&ObjectRef::new(playbook).within(&ns))
        .and_then(|pb| pb.0.as_ref().ok()?.spec.history_limit);
    let Some(limit) = limit else { return Ok(()) };
    let mut current = exec.clone();
    current.status = Some(status.clone());
    let cached = ctx.executions.state();
    let runs: Vec<&Execution> = cached
        .iter()
        .filter_map(|e| e.0.as_ref().ok())
        .filter(|e| e.namespace().as_deref() == Some(&ns) && &e.spec.playbook_ref.name == playbook)
        .filter(|e| e.uid() != current.uid())
        .chain([&current])
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

#[cfg(test)]
mod tests {
    use kube::core::DeserializeGuard;
    use kube::runtime::{reflector, watcher};
    use serde_json::json;

    use super::*;
    use crate::api::{ExecutionPhase, Playbook};
    use crate::controller::apply::tests::{context, fake_client};

    /// A run of Playbook `pb` in namespace `ns`, in `phase`, finished at minute `at`.
    fn run(name: &str, phase: &str, at: u32) -> Execution {
        serde_json::from_value(json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Execution",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "creationTimestamp": format!("2026-12-06T10:{at:02}:00Z")},
            "spec": {"playbookRef": {"name": "pb"}},
            "status": {"phase": phase, "finishedAt": format!("2026-12-06T10:{at:02}:30Z")}
        }))
        .expect("an Execution")
    }

    fn answer(method: &str, path: &str) -> (u16, serde_json::Value) {
        match method {
            "DELETE" => (200, json!({"kind": "Status", "status": "Success"})),
            _ => (500, json!({"path": path})),
        }
    }

    #[tokio::test]
    async fn a_run_that_just_finished_counts_though_the_cache_shows_it_running() {
        let (client, log) = fake_client(answer);
        let mut ctx = context(client);
        let (playbooks, mut writer) = reflector::store::<DeserializeGuard<Playbook>>();
        let pb: Playbook = serde_json::from_value(json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Playbook",
            "metadata": {"name": "pb", "namespace": "ns"},
            "spec": {"historyLimit": {"succeeded": 1}, "steps": []}
        }))
        .expect("a Playbook");
        writer.apply_watcher_event(&watcher::Event::Apply(DeserializeGuard(Ok(pb))));
        let (executions, mut writer) = reflector::store::<DeserializeGuard<Execution>>();
        let cached_running = run("second", "Running", 2);
        for exec in [run("first", "Succeeded", 1), cached_running.clone()] {
            writer.apply_watcher_event(&watcher::Event::Apply(DeserializeGuard(Ok(exec))));
        }
        ctx.playbooks = playbooks;
        ctx.executions = executions;
        // The status its reconcile just wrote, which the cache does not show yet.
        let written = run("second", "Succeeded", 2).status.unwrap_or_default();
        assert_eq!(written.phase, ExecutionPhase::Succeeded);
        enforce(&ctx, &cached_running, &written)
            .await
            .expect("enforces");
        let log = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(
            log,
            ["DELETE /apis/stackpulse.io/v1/namespaces/ns/executions/first"],
            "succeeded: 1 keeps the run that just finished, the older goes"
        );
    }
}
