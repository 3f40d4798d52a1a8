//! Apply: make a `Plan` true, in the order that keeps a crash anywhere harmless.
//!
//! Last stage of the reconcile pipeline (observe → plan → apply):
//! 0. ConfigMap creates (a step's raw output for its image parser), before the
//!    status that names them, so a status never points at output nobody kept;
//!    AlreadyExists (409) is ours, as for Jobs;
//! 1. Job (or bare Pod: `workload`) creates: names are deterministic per attempt, so
//!    AlreadyExists (409) means an earlier reconcile created it, i.e. it is ours (its
//!    uid is read back when it belongs to this run);
//! 2. status by server-side apply (field manager `playbook-operator`), skipped when
//!    the planner changed nothing, with the uids of the Jobs just created: no status
//!    says a step runs before its Job exists, so a Job missing under a recorded uid
//!    was deleted, and a new Job needs no reconcile of its own to be recorded. A
//!    crash before this write loses nothing: the next plan reads the ended step's log
//!    again and asks for the same Jobs (409). A status that claims a remediation is
//!    the exception (`Plan::status_first`): written before its Job, so other runs
//!    count the claim before the step runs, and again with the uid;
//! 3. Job (or bare Pod) deletes (background propagation: the Pod goes with the Job;
//!    NotFound is fine);
//! 4. Events, one per real transition, named after it (a repeated transition gets
//!    AlreadyExists, not a second Event). An Event that cannot be written is logged
//!    and dropped: it must not make the reconcile (and so the status) go round again.
//!
//! Metrics are recorded here, where each transition becomes true: an Execution's end
//! and its steps' durations once the status is written, a Job once created (not on
//! 409), a hand-off once the next Job exists. What counts is `metrics::transitions`.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::fmt::Debug;
use std::time::Instant;

use super::workload::{Created, create_planned, delete_attempt};
use super::{Context, Error, FIELD_MANAGER};
use crate::api::{Execution, ExecutionStatus};
use crate::engine::job::short_hash;
use crate::engine::message::cut;
use crate::engine::plan::{EventType, Intent, Plan, input_sha256};
use crate::metrics::{Transitions, transitions};

/// Most bytes of an Event note the API accepts.
const MAX_NOTE: usize = 1024;

/// Applies `plan` for `exec`, whose status was `current` when it was planned, and
/// records in it the uids of the Jobs created. True when the plan must be made again
/// at once: the API server refused a Job (its step fails), or a Job existed already
/// (created before a restart, it may have ended before its step was said to run,
/// and no change of it will come to say so).
pub async fn apply(
    ctx: &Context,
    exec: &Execution,
    current: &ExecutionStatus,
    plan: &mut Plan,
) -> Result<bool, Error> {
    let ns = exec.namespace().unwrap_or_default();
    let uid = exec.uid().unwrap_or_default();
    let metrics = &ctx.config.metrics;
    let changed = transitions(current, &plan.status, Timestamp::now());
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let mut foreign = Vec::new();
    for intent in &plan.intents {
        if let Intent::CreateConfigMap(cm) = intent
            && !create_config_map(&config_maps, cm).await?
        {
            foreign.push(cm.name_any());
        }
    }
    // Jobs first (their uids then go in the status that says their steps run), but
    // for a remediation claim, which must be counted before its step runs.
    let status_first = plan.status_first(current);
    if status_first {
        write(ctx, exec, current, plan, &changed).await?;
    }
    let mut first_created = None;
    let mut again = false;
    let mut uids = Vec::new();
    for intent in &plan.intents {
        match intent {
            // Never feed a parser input someone else wrote: the next reconcile reads
            // the ConfigMap back and fails the attempt (`plan::parser`).
            Intent::CreateJob(job) if mounts_any(job, &foreign) => {
                tracing::warn!(job = %job.name_any(), config_maps = ?foreign, "parser Job not created: its input ConfigMap is not the operator's");
            }
            Intent::CreateJob(job) => match create_planned(&ctx.client, &ns, job).await? {
                Created::Now(created) => {
                    metrics.job_created();
                    first_created.get_or_insert_with(Instant::now);
                    uids.push((job.name_any(), created));
                }
                Created::Before(found) => {
                    uids.extend(found.map(|u| (job.name_any(), u)));
                    again = true;
                }
                Created::Refused(reason) => {
                    ctx.refusals.record(&ns, &job.name_any(), reason);
                    again = true;
                }
            },
            Intent::DeleteJob { .. } | Intent::CreateConfigMap(_) | Intent::Event { .. } => {}
        }
    }
    for (name, created) in &uids {
        plan.created(name, created);
    }
    // A remediation claim went first, without the uids: written again with them (a
    // Job deleted before its uid is recorded would run again).
    if !status_first || !uids.is_empty() {
        write(ctx, exec, current, plan, &changed).await?;
    }
    for intent in &plan.intents {
        if let Intent::DeleteJob { name } = intent {
            delete_attempt(&ctx.client, &ctx.pods, &ns, name).await?;
        }
    }
    metrics.jobs_applied(&uid, &changed, first_created);
    let instance = ctx.config.instance.as_deref().unwrap_or(FIELD_MANAGER);
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    for intent in &plan.intents {
        let Some(event) = to_event(intent, exec, instance, Timestamp::now()) else {
            continue;
        };
        tracing::info!(reason = %event.reason.as_deref().unwrap_or(""), note = event.note.as_deref().unwrap_or(""), "transition");
        publish(&events, &event).await;
    }
    Ok(again)
}

/// Writes `plan`'s status when it differs from `current` (the status it was planned
/// from), and records what became true with it.
async fn write(
    ctx: &Context,
    exec: &Execution,
    current: &ExecutionStatus,
    plan: &Plan,
    changed: &Transitions,
) -> Result<(), Error> {
    if plan.status == *current {
        return Ok(());
    }
    // `notify` belongs to the notifier (its own field manager): applying the copy
    // the planner read from the cache would force a stale one back.
    let status = ExecutionStatus {
        notify: None,
        ..plan.status.clone()
    };
    let (ns, name, uid) = (
        exec.namespace().unwrap_or_default(),
        exec.name_any(),
        exec.uid().unwrap_or_default(),
    );
    let version = write_status::<Execution>(&ctx.client, &ns, &name, &status).await?;
    ctx.echoes.wrote(&uid, version);
    let metrics = &ctx.config.metrics;
    metrics.status_written(&uid, &exec.spec.playbook_ref.name, changed);
    if changed.remediation_held {
        metrics.remediation_held(&ns, &exec.spec.playbook_ref.name, &uid);
    }
    Ok(())
}

/// Creates one Event. Its name is derived from the transition, so a reconcile that
/// repeats a transition (planned from a cache that did not show its own status write
/// yet) gets AlreadyExists instead of a second Event. An Event that cannot be written
/// is logged and dropped: it must not make the reconcile (and the status) go round
/// again.
pub(super) async fn publish(api: &Api<Event>, event: &Event) {
    let reason = event.reason.as_deref().unwrap_or_default();
    match api.create(&PostParams::default(), event).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::debug!(reason = %reason, "Event recorded already")
        }
        Err(e) => tracing::warn!(reason = %reason, error = %e, "Event not recorded"),
    }
}

/// The whole status as this manager's apply configuration: fields it no longer sets
/// are removed, since the planner always returns the complete status.
pub fn status_patch<K: Resource<DynamicType = ()>>(status: &impl Serialize) -> serde_json::Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    })
}

/// Writes `status` as the whole status of the `K` named `ns/name`, by server-side apply
/// with the operator's field manager (what every reconciler here does last); the
/// resourceVersion the write made.
pub async fn write_status<K>(
    client: &Client,
    ns: &str,
    name: &str,
    status: &impl Serialize,
) -> Result<Option<String>, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let written = api
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&status_patch::<K>(status)),
        )
        .await
        .map_err(|source| Error::WriteStatus {
            name: format!("{ns}/{name}"),
            source,
        })?;
    Ok(written.meta().resource_version.clone())
}

/// Job creates the API server refused, by namespace and Job name, until the next
/// plan of their Execution reads them (`observe`). Only in memory: after a restart
/// the create is tried again, refused again and recorded again.
#[derive(Default)]
pub struct Refusals(std::sync::Mutex<std::collections::HashMap<(String, String), String>>);

impl Refusals {
    fn record(&self, ns: &str, job: &str, reason: String) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert((ns.to_string(), job.to_string()), reason);
    }

    /// Takes the refusal of Job `job` in `ns`, if there is one.
    pub fn take(&self, ns: &str, job: &str) -> Option<String> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&(ns.to_string(), job.to_string()))
    }
}

/// Creates the ConfigMap of a step attempt's output. One that exists is ours when it
/// holds the same content (the name is deterministic per attempt: an earlier
/// reconcile made it); `false` when it holds other content (someone else made it).
async fn create_config_map(api: &Api<ConfigMap>, cm: &ConfigMap) -> Result<bool, Error> {
    let name = cm.name_any();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&params, cm).await {
        Ok(_) => tracing::info!(config_map = %name, "output ConfigMap created"),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let found = api
                .get_opt(&name)
                .await
                .map_err(|source| Error::ReadConfigMap {
                    name: name.clone(),
                    source,
                })?;
            if found.is_some_and(|f| input_sha256(&f) != input_sha256(cm)) {
                tracing::warn!(config_map = %name, "output ConfigMap exists with other content: not ours");
                return Ok(false);
            }
            tracing::debug!(config_map = %name, "output ConfigMap exists already: ours");
        }
        Err(source) => return Err(Error::CreateConfigMap { name, source }),
    }
    Ok(true)
}

/// Whether `job`'s pod mounts one of the ConfigMaps `names`.
fn mounts_any(job: &Job, names: &[String]) -> bool {
    let volumes = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.volumes.as_ref());
    volumes.into_iter().flatten().any(|v| {
        v.config_map
            .as_ref()
            .is_some_and(|c| names.contains(&c.name))
    })
}

/// The Kubernetes Event (events.k8s.io/v1) of an `Intent::Event` about `exec` (an
/// Execution, or a Schedule); `None` for other intents.
///
/// Not kube-runtime's `Recorder`: it folds Events with the same reason into one series
/// whatever their notes say, so "step 's2' started" would only bump the count of
/// "step 's1' started". Here each transition is its own Event, named after it.
pub fn to_event<K: Resource<DynamicType = ()>>(
    intent: &Intent,
    exec: &K,
    instance: &str,
    now: Timestamp,
) -> Option<Event> {
    let Intent::Event {
        type_,
        reason,
        message,
    } = intent
    else {
        return None;
    };
    let exec_name = exec.name_any();
    let uid = exec.uid().unwrap_or_default();
    // Event names are DNS subdomains (at most 253 characters).
    let prefix: String = exec_name.chars().take(200).collect();
    Some(Event {
        metadata: ObjectMeta {
            name: Some(format!("{prefix}.{}", short_hash(&[&uid, reason, message]))),
            namespace: exec.namespace(),
            ..Default::default()
        },
        event_time: Some(MicroTime(now)),
        type_: Some(
            match type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .into(),
        ),
        reason: Some(reason.clone()),
        note: Some(cut(message, MAX_NOTE)),
        action: Some("Reconcile".into()),
        regarding: Some(exec.object_ref(&())),
        reporting_controller: Some(FIELD_MANAGER.into()),
        reporting_instance: Some(instance.into()),
        ..Default::default()
    })
}

#[cfg(test)]
pub(super) mod tests;
