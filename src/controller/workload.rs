//! What runs a step attempt, a Job or a bare Pod (`Runner.spec.workload`): the one
//! place of the shell that knows there are two. The planner plans a Job either way;
//! `engine::workload` decides what a planned Job runs as and what a bare Pod means,
//! and [`Workload`] gives the shell the same create, observe and delete for both.
//!
//! Restart safety is the same for both: the name is deterministic per attempt, so a
//! create that finds the object (409) found its own, and an object recorded (its
//! uid in status) and gone since was deleted by someone, never created again.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Error, FIELD_MANAGER, observe};
use crate::api::Workload as Kind;
use crate::engine::job::ANNOTATION_STEP_ID;
use crate::engine::plan::{ObservedJob, PlanInput, recorded_unseen};
use crate::engine::workload;

/// A kind that runs step attempts.
pub trait Workload:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The object that runs the attempt the planner planned as `job`.
    fn from_planned(job: &Job) -> Option<Self>;

    /// What the planner sees of it (`pods`: the Execution's cached Pods), and where
    /// its step container's log is (pod, container) once that container has ended.
    fn observe(&self, pods: &[&Pod]) -> (ObservedJob, Option<(String, String)>);
}

impl Workload for Job {
    fn from_planned(job: &Job) -> Option<Self> {
        Some(job.clone())
    }

    fn observe(&self, pods: &[&Pod]) -> (ObservedJob, Option<(String, String)>) {
        observe::observe_job(self, pods)
    }
}

impl Workload for Pod {
    fn from_planned(job: &Job) -> Option<Self> {
        workload::bare_pod(job)
    }

    fn observe(&self, _pods: &[&Pod]) -> (ObservedJob, Option<(String, String)>) {
        observe::observe_bare_pod(self)
    }
}

/// What became of a create.
pub enum Created {
    /// Created, with this uid.
    Now(String),
    /// It existed: an earlier reconcile created it (the name is ours), with this uid
    /// when it is owned by the same Execution as planned (read back: rare, after a
    /// restart or a plan from a cache behind its own writes).
    Before(Option<String>),
    /// The API server refused it for good: why, for the step's message.
    Refused(String),
}

/// Creates what the planned `job` runs as: the Job itself, or its bare Pod.
pub async fn create_planned(client: &Client, ns: &str, job: &Job) -> Result<Created, Error> {
    match workload::of(job) {
        Kind::Job => create::<Job>(client, ns, job).await,
        Kind::Pod => create::<Pod>(client, ns, job).await,
    }
}

/// Attempts read from the API server that the caches did not show yet.
#[derive(Debug, Default)]
pub struct Unseen {
    pub jobs: Vec<Job>,
    /// Bare Pods (`workload: Pod`).
    pub pods: Vec<Pod>,
}

impl Unseen {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.pods.is_empty()
    }
}

/// Reads, from the API server, the attempts Running steps recorded that the caches
/// do not show yet (`plan::recorded_unseen`): the Job, else the bare Pod, of that
/// name. One the API server has not either stays missing: deleted.
pub async fn read_unseen(client: &Client, ns: &str, input: &PlanInput) -> Result<Unseen, Error> {
    let mut unseen = Unseen::default();
    for (name, _) in recorded_unseen(input) {
        tracing::debug!(job = %name, "recorded attempt not cached: read from the API server");
        if let Some(job) = read::<Job>(client, ns, name).await? {
            unseen.jobs.push(job);
        } else if let Some(pod) = read::<Pod>(client, ns, name).await? {
            unseen.pods.push(pod);
        }
    }
    Ok(unseen)
}

/// The `W` named `name`, read with a list by name rather than a get: the operator's
/// rights on Jobs (and on Pods, unless bare-Pod Runners are allowed) are list and
/// watch, never get, and this read is rare (a cache that lags a status).
async fn read<W: Workload>(client: &Client, ns: &str, name: &str) -> Result<Option<W>, Error> {
    let api: Api<W> = Api::namespaced(client.clone(), ns);
    let by_name = ListParams::default().fields(&format!("metadata.name={name}"));
    match api.list(&by_name).await {
        Ok(list) => Ok(list.items.into_iter().find(|w| w.name_any() == name)),
        Err(source) => Err(Error::ReadJob {
            name: format!("{} {ns}/{name}", W::kind(&())),
            source,
        }),
    }
}

/// Deletes the attempt `name` of namespace `ns`: the bare Pod when the cache shows
/// one of that name (a Job's pods are named after the Job plus a suffix, so a Pod
/// named exactly like an attempt is a bare one), else the Job.
pub async fn delete_attempt(
    client: &Client,
    pods: &Store<Pod>,
    ns: &str,
    name: &str,
) -> Result<(), Error> {
    let bare = pods
        .get(&ObjectRef::new(name).within(ns))
        .is_some_and(|p| workload::is_bare(p.owner_references()));
    if bare {
        delete::<Pod>(client, ns, name).await
    } else {
        delete::<Job>(client, ns, name).await
    }
}

/// Creates the `W` of `planned`. A 4xx other than 409 (exists: ours) and 429 (slow
/// down) is the API server saying no to it whatever the timing (422 invalid, 403 a
/// quota or Pod Security, 400): the same create would be refused again, so the step
/// fails with the reason instead. 5xx, 429 and transport errors are retried.
async fn create<W: Workload>(client: &Client, ns: &str, planned: &Job) -> Result<Created, Error> {
    let kind = W::kind(&());
    let name = planned.name_any();
    let step = planned
        .annotations()
        .get(ANNOTATION_STEP_ID)
        .cloned()
        .unwrap_or_default();
    let Some(object) = W::from_planned(planned) else {
        return Ok(Created::Refused(format!(
            "the planned {kind} {name} has no pod spec: this is a bug in playbook-operator"
        )));
    };
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let api: Api<W> = Api::namespaced(client.clone(), ns);
    match api.create(&params, &object).await {
        Ok(created) => {
            tracing::info!(step = %step, job = %name, %kind, "created");
            Ok(Created::Now(created.uid().unwrap_or_default()))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::debug!(step = %step, job = %name, %kind, "exists already: ours");
            let found = read::<W>(client, ns, &name).await.ok().flatten();
            let owner = |o: &W| o.owner_references().first().map(|r| r.uid.clone());
            let ours = found.filter(|f| owner(f).is_some() && owner(f) == owner(&object));
            Ok(Created::Before(ours.and_then(|f| f.uid())))
        }
        Err(kube::Error::Api(s)) if is_refusal(s.code) => {
            tracing::warn!(step = %step, job = %name, %kind, code = s.code, reason = %s.reason, message = %s.message, "refused");
            Ok(Created::Refused(refusal_message(
                &kind, &name, s.code, &s.reason, &s.message,
            )))
        }
        Err(source) => Err(Error::CreateJob {
            name: format!("{kind} {name}"),
            source,
        }),
    }
}

/// True for the status codes that refuse a create for good.
fn is_refusal(code: u16) -> bool {
    (400..500).contains(&code) && code != 409 && code != 429
}

/// The step's message for a create the API server refused.
fn refusal_message(kind: &str, name: &str, code: u16, reason: &str, message: &str) -> String {
    let fix = match code {
        403 => {
            "raise the namespace's ResourceQuota or its Pod Security level, or change the step or its Runner to fit them"
        }
        _ => "fix the step or its Runner",
    };
    format!("the API server refused to create {kind} {name} ({code} {reason}): {message}: {fix}")
}

/// Deletes the `W` `name` (background propagation: a Job's Pod goes with it);
/// NotFound is fine.
async fn delete<W: Workload>(client: &Client, ns: &str, name: &str) -> Result<(), Error> {
    let kind = W::kind(&());
    let api: Api<W> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => tracing::info!(job = %name, %kind, "deleted"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(source) => {
            return Err(Error::DeleteJob {
                name: format!("{kind} {name}"),
                source,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_kind_and_what_to_change() {
        let m = refusal_message("Pod", "run-a-1-x", 403, "Forbidden", "exceeded quota");
        assert_eq!(
            m,
            "the API server refused to create Pod run-a-1-x (403 Forbidden): exceeded quota: raise the namespace's ResourceQuota or its Pod Security level, or change the step or its Runner to fit them"
        );
    }

    #[test]
    fn only_client_errors_but_conflicts_and_throttling_refuse_a_create_for_good() {
        let refusals: Vec<u16> = [400, 403, 404, 409, 422, 429, 500, 503]
            .into_iter()
            .filter(|&c| is_refusal(c))
            .collect();
        assert_eq!(refusals, [400, 403, 404, 422]);
    }

    /// Step `a` runs Job `a` (recorded with its uid); step `b` runs bare Pod `b`;
    /// step `c` runs `c`, which the API server has not either.
    fn input() -> PlanInput {
        use crate::api::{StepState, StepStatus};
        let running = |id: &str| StepStatus {
            id: id.into(),
            state: StepState::Running,
            job_name: Some(id.into()),
            job_uid: Some(format!("uid-{id}")),
            ..Default::default()
        };
        let mut input = PlanInput::default();
        input.status.steps = vec![running("a"), running("b"), running("c")];
        input
    }

    /// A list of the objects of `kind` named in the field selector, when the
    /// API server has them.
    fn lists(method: &str, path: &str) -> (u16, serde_json::Value) {
        let item = |kind: &str, name: &str| {
            serde_json::json!({"apiVersion": if kind == "Job" { "batch/v1" } else { "v1" },
                "kind": kind, "metadata": {"name": name, "uid": format!("uid-{name}")}})
        };
        let items = match (method, path) {
            ("GET", "/apis/batch/v1/namespaces/ns/jobs") => vec![item("Job", "a")],
            ("GET", "/api/v1/namespaces/ns/pods") => vec![item("Pod", "b")],
            _ => {
                return (
                    500,
                    super::super::apply::tests::status(500, "InternalError"),
                );
            }
        };
        (200, serde_json::json!({"metadata": {}, "items": items}))
    }

    #[tokio::test]
    async fn recorded_attempts_the_caches_lack_are_listed_by_name_and_the_missing_stay_missing() {
        let (client, log) = super::super::apply::tests::fake_client(lists);
        let unseen = read_unseen(&client, "ns", &input()).await.expect("reads");
        let jobs: Vec<String> = unseen.jobs.iter().map(ResourceExt::name_any).collect();
        let pods: Vec<String> = unseen.pods.iter().map(ResourceExt::name_any).collect();
        // The fake lists every object of a kind whatever the selector, so `a` is also
        // "found" when `b` is asked for: only a name match counts.
        assert_eq!(jobs, ["a"]);
        assert_eq!(pods, ["b"], "c is on no list: it stays missing (deleted)");
        let log = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert!(
            log.iter()
                .all(|l| l.ends_with("/jobs") || l.ends_with("/pods")),
            "only lists: the chart grants no get on Jobs, nor on Pods by default: {log:?}"
        );
    }
}
