//! Observe: what the planner needs to know about one Execution, from the caches.
//!
//! First stage of the reconcile pipeline (observe → plan → apply). Everything here
//! but [`read_logs`] is a pure function of the Execution and the cached objects, so
//! what the controller *saw* is testable without a cluster. [`read_logs`] is the only
//! API call: one bounded `pods/log` read per step container that ended while its
//! step still waits for the output (`engine::plan::awaiting_output`), unless the
//! container handed it over in its termination message (`Terminated::handed_over`).
//!
//! Job-specific knowledge stays here and in the Job builder: which Pod is a Job's,
//! which container is the step's, and what a Job's `Failed` condition means. A step
//! attempt run as a bare Pod (`workload`) is observed by [`observe_bare_pod`] into
//! the same `ObservedJob`, so the planner never knows which ran.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::AsyncReadExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod, PodSpec};
use kube::ResourceExt;
use kube::api::{Api, LogParams};

use super::workload::{Unseen, Workload};
use super::{Context, Error};
use crate::api::{Execution, PlaybookSpec, RunnerSpec};
use crate::engine::plan::{
    ExecutionRef, JobFailure, Limits, ObservedJob, PlanInput, StepLog, Terminated, awaiting_output,
};
use crate::engine::slim::Full;
use crate::engine::wake::{self, Wake};
use crate::engine::workload::{self as engine_workload, SeenPod};

/// Where to read the log of one ended step container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRead {
    pub job: String,
    pub pod: String,
    pub container: String,
}

/// The caches, as plain slices: what [`plan_input`] reads.
pub struct Cached<'a> {
    pub playbook: Option<&'a PlaybookSpec>,
    /// Runners of the Execution's namespace, by name.
    pub runners: BTreeMap<String, RunnerSpec>,
    /// Jobs labelled with this Execution's uid.
    pub jobs: &'a [&'a Job],
    /// Pods labelled with this Execution's uid.
    pub pods: &'a [&'a Pod],
}

/// The planner's input for `exec`, and the logs still to read before planning.
/// Only from a [`Full`] Execution: a status planned from a slimmed one would erase
/// what it lacks when applied.
pub fn plan_input(exec: Full<'_>, cached: &Cached, limits: &Limits) -> (PlanInput, Vec<LogRead>) {
    let status = exec.status.clone().unwrap_or_default();
    let awaiting = awaiting_output(&status);
    let (jobs, reads) = observe_all(cached.jobs, cached.pods, &awaiting);
    let input = PlanInput {
        execution: ExecutionRef {
            name: exec.name_any(),
            namespace: exec.namespace().unwrap_or_default(),
            uid: exec.uid().unwrap_or_default(),
            generation: exec.metadata.generation,
            url: None,
        },
        spec: exec.spec.clone(),
        // The live Playbook matters only until the run has taken its snapshot.
        playbook: status
            .playbook
            .is_none()
            .then(|| cached.playbook.cloned())
            .flatten(),
        status,
        jobs,
        runners: cached.runners.clone(),
        // Filled after this by `access`, which asks the API server.
        runner_access: None,
        limits: limits.clone(),
        main: None,
        // Read after this by `spilled::read`, which may call the API.
        spilled: BTreeMap::new(),
        remediations: Vec::new(),
        // Read after this (`parser_inputs_to_check`), which calls the API.
        parser_inputs: BTreeMap::new(),
    };
    (input, reads)
}

/// Observes the step attempts among `jobs` and `pods`, and notes the logs to read of
/// those whose step container ended while status awaits their output (`awaiting`).
fn observe_all(
    jobs: &[&Job],
    pods: &[&Pod],
    awaiting: &BTreeSet<&str>,
) -> (BTreeMap<String, ObservedJob>, Vec<LogRead>) {
    let mut observed = BTreeMap::new();
    let mut reads = Vec::new();
    // Step attempts run as Jobs or as bare Pods (`workload`); both are observed alike.
    let bare: Vec<&Pod> = pods
        .iter()
        .filter(|p| engine_workload::is_bare(p.owner_references()))
        .copied()
        .collect();
    observe_attempts(jobs, pods, awaiting, &mut observed, &mut reads);
    observe_attempts(&bare, pods, awaiting, &mut observed, &mut reads);
    (observed, reads)
}

/// Observes each of `attempts` (Jobs, or bare Pods) into `jobs`, and notes the logs
/// to read of those whose step container ended while status awaits their output.
fn observe_attempts<W: Workload>(
    attempts: &[&W],
    pods: &[&Pod],
    awaiting: &BTreeSet<&str>,
    jobs: &mut BTreeMap<String, ObservedJob>,
    reads: &mut Vec<LogRead>,
) {
    for attempt in attempts {
        let name = attempt.name_any();
        let (observed, container) = attempt.observe(pods);
        // A container that handed its output (or its failure) over in its termination
        // message costs no log read.
        if awaiting.contains(name.as_str())
            && observed
                .terminated
                .as_ref()
                .is_some_and(|t| t.handed_over().is_none())
            && let Some((pod, container)) = container
        {
            reads.push(LogRead {
                job: name.clone(),
                pod,
                container,
            });
        }
        jobs.insert(name, observed);
    }
}

/// What one Job and its Pod show, and where its step container's log is (pod,
/// container) once that container has terminated.
pub fn observe_job(job: &Job, pods: &[&Pod]) -> (ObservedJob, Option<(String, String)>) {
    let failed = job_failure(job);
    let container = step_container(job);
    let uid = job.uid();
    let owned: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .copied()
        .collect();
    // A Job with backoffLimit 0 has one Pod, but a Pod deleted from under it is
    // replaced: the one whose step container ended is the one that counts.
    let terminated = owned
        .iter()
        .find_map(|pod| ended(pod, container.as_deref()));
    let (terminated, log_at) = terminated.unzip();
    let pod = terminated
        .is_none()
        .then(|| pod::current(&owned))
        .flatten()
        .map(|p| pod::facts(p, container.as_deref()));
    let observed = ObservedJob {
        terminated,
        failed,
        deleting: job.metadata.deletion_timestamp.is_some(),
        uid,
        pod,
        memory_limit: memory_limit(job),
        refused: None,
        log: StepLog::NotRead,
    };
    (observed, log_at)
}

/// How `pod`'s container `container` ended and where its log is (pod, container),
/// once it has terminated.
fn ended(pod: &Pod, container: Option<&str>) -> Option<(Terminated, (String, String))> {
    let (cs, t) = terminated_container(pod, container)?;
    let terminated = Terminated {
        exit_code: t.exit_code,
        reason: t.reason.clone(),
        message: t.message.clone(),
        finished_at: t.finished_at.as_ref().map(|f| f.0),
    };
    Some((terminated, (pod.name_any(), cs.name.clone())))
}

/// What a bare step Pod (`Runner.spec.workload: Pod`) shows, as `engine::workload`
/// makes it look like a Job and its pod; where its step container's log is once ended.
pub fn observe_bare_pod(pod: &Pod) -> (ObservedJob, Option<(String, String)>) {
    let container = pod_step_container(pod);
    let (terminated, log_at) = ended(pod, container).unzip();
    let seen = SeenPod {
        uid: pod.uid(),
        terminated,
        facts: pod::facts(pod, container),
        memory_limit: pod.spec.as_ref().and_then(spec_memory_limit),
    };
    (engine_workload::observe_bare_pod(seen), log_at)
}

/// The Job's `Failed` condition, when it is True.
fn job_failure(job: &Job) -> Option<JobFailure> {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "Failed" && c.status == "True")
        })
        .map(|c| JobFailure {
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        })
}

/// What of a step's Job its Execution's plan acts on (`engine::wake`).
pub fn job_wake(job: &Job) -> Wake {
    wake::job(
        job_failure(job).as_ref(),
        job.metadata.deletion_timestamp.is_some(),
    )
}

/// What of a step's Pod its Execution's plan acts on (`engine::wake`): the same facts
/// `observe_job` gives the planner, of the pod's first container (the step's).
pub fn pod_wake(pod: &Pod) -> Wake {
    let facts = pod::facts(pod, pod_step_container(pod));
    wake::pod(step_container_terminated(pod), &facts)
}

/// The name of `pod`'s step container: its first, as in the Job's pod template.
fn pod_step_container(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.as_str())
}

/// The step container's memory limit, as the Job's pod template asks for it.
fn memory_limit(job: &Job) -> Option<String> {
    spec_memory_limit(job.spec.as_ref()?.template.spec.as_ref()?)
}

/// The memory limit of the step container (the first) of a pod spec.
fn spec_memory_limit(pod: &PodSpec) -> Option<String> {
    let limits = pod
        .containers
        .first()?
        .resources
        .as_ref()?
        .limits
        .as_ref()?;
    limits.get("memory").map(|q| q.0.clone())
}

/// The step container's name, as the Job's pod template says (the builder names it
/// after the step; reading it from the Job keeps this right if that ever changes).
fn step_container(job: &Job) -> Option<String> {
    let pod = job.spec.as_ref()?.template.spec.as_ref()?;
    pod.containers.first().map(|c| c.name.clone())
}

/// The container `name` of `pod` (`None`: its only container) and how it ended,
/// once it has terminated.
fn terminated_container<'a>(
    pod: &'a Pod,
    name: Option<&str>,
) -> Option<(&'a ContainerStatus, &'a ContainerStateTerminated)> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let cs = find_container(statuses, name)?;
    Some((cs, cs.state.as_ref()?.terminated.as_ref()?))
}

/// True when `pod`'s step container (the first, as in the Job's pod template) has
/// terminated: what the Pod watch can tell without the Job.
pub fn step_container_terminated(pod: &Pod) -> bool {
    terminated_container(pod, pod_step_container(pod)).is_some()
}

/// True when `new` shows the step container terminated and `old` (the same Pod
/// before this change, if known) did not.
pub fn newly_ended(old: Option<&Pod>, new: &Pod) -> bool {
    step_container_terminated(new) && !old.is_some_and(step_container_terminated)
}

fn find_container<'a>(
    statuses: &'a [ContainerStatus],
    name: Option<&str>,
) -> Option<&'a ContainerStatus> {
    match (name, statuses) {
        (Some(n), _) => statuses.iter().find(|c| c.name == n),
        (None, [only]) => Some(only),
        _ => None,
    }
}

/// The cached objects of `exec` (and `unseen`, the attempts read from the API server
/// that the caches do not show yet, observed with the cached Pods), then [`plan_input`].
pub fn from_caches(exec: Full<'_>, ctx: &Context, unseen: &Unseen) -> (PlanInput, Vec<LogRead>) {
    let ns = exec.namespace().unwrap_or_default();
    let (jobs, pods) = attempts_of(&exec, ctx);
    let playbook_ref =
        kube::runtime::reflector::ObjectRef::new(&exec.spec.playbook_ref.name).within(&ns);
    let playbook = ctx.playbooks.get(&playbook_ref);
    let playbook = match playbook.as_deref().map(|g| &g.0) {
        Some(Ok(pb)) => Some(&pb.spec),
        Some(Err(e)) => {
            // The planner then says it waits for the Playbook; the log says why.
            tracing::warn!(playbook = %playbook_ref, error = %e.error, "Playbook is malformed: skipped");
            None
        }
        None => None,
    };
    let runners = ctx
        .runners
        .state()
        .into_iter()
        .filter(|r| r.namespace().as_deref() == Some(&ns))
        .filter_map(|r| match &r.0 {
            Ok(runner) => Some((runner.name_any(), runner.spec.clone())),
            Err(e) => {
                tracing::warn!(runner = %r.name_any(), error = %e.error, "Runner is malformed: skipped");
                None
            }
        })
        .collect();
    let jobs: Vec<&Job> = jobs.iter().map(AsRef::as_ref).chain(&unseen.jobs).collect();
    let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).chain(&unseen.pods).collect();
    let cached = Cached {
        playbook,
        runners,
        jobs: &jobs,
        pods: &pods,
    };
    let (mut input, reads) = plan_input(exec, &cached, &ctx.config.limits);
    input.execution.url = ctx
        .config
        .external_url
        .as_deref()
        .map(|base| crate::engine::page::execution_url(base, &ns, &exec.name_any()));
    (input, reads)
}

/// Takes, into `input`, the refusals of the creates of attempts its status awaits
/// that no Job or Pod shows (once: a refusal is kept until one plan reads it).
pub fn take_refusals(ctx: &Context, input: &mut PlanInput) {
    let current: Vec<String> = awaiting_output(&input.status)
        .into_iter()
        .map(String::from)
        .collect();
    for name in current {
        if !input.jobs.contains_key(&name)
            && let Some(reason) = ctx.refusals.take(&input.execution.namespace, &name)
        {
            let refused = ObservedJob {
                refused: Some(reason),
                ..ObservedJob::default()
            };
            input.jobs.insert(name, refused);
        }
    }
}

/// Reads each log (bounded by `limit_bytes`) into `input.jobs[job].log`.
///
/// How long after a container ended a kubelet's 400 on its log is still taken as "not
/// ready yet" and retried. Kubelets (and kwok) can answer 400 for a moment after the
/// API shows the container terminated; failing the step on that race would fail good
/// steps on a busy node.
pub const LOG_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// A log that cannot exist any more (Pod gone: 404/410; the kubelet refuses: 400 once
/// [`LOG_GRACE`] has passed since the container ended) makes the attempt fail with that
/// reason; anything else is transient and retried.
pub async fn read_logs(
    api: &Api<Pod>,
    input: &mut PlanInput,
    reads: &[LogRead],
    limit_bytes: i64,
) -> Result<(), Error> {
    for read in reads {
        let log = match read_log(api, read, limit_bytes).await {
            Ok(text) => StepLog::Read(text),
            Err(kube::Error::Api(s)) if s.code == 400 && within_grace(input, &read.job) => {
                return Err(Error::ReadLog {
                    pod: read.pod.clone(),
                    source: kube::Error::Api(s),
                });
            }
            Err(kube::Error::Api(s)) if matches!(s.code, 400 | 404 | 410) => {
                StepLog::Unreadable(format!("pod {}: {}", read.pod, s.message))
            }
            Err(source) => {
                return Err(Error::ReadLog {
                    pod: read.pod.clone(),
                    source,
                });
            }
        };
        if let Some(job) = input.jobs.get_mut(&read.job) {
            job.log = log;
        }
    }
    Ok(())
}

/// True while the job's container ended less than [`LOG_GRACE`] ago; a container that
/// does not say when it ended gets no grace, so the retry is always bounded.
fn within_grace(input: &PlanInput, job: &str) -> bool {
    let ended = input
        .jobs
        .get(job)
        .and_then(|j| j.terminated.as_ref())
        .and_then(|t| t.finished_at);
    match ended {
        None => false,
        Some(at) => {
            let grace = k8s_openapi::jiff::SignedDuration::try_from(LOG_GRACE).unwrap_or_default();
            k8s_openapi::jiff::Timestamp::now() < at.saturating_add(grace).unwrap_or(at)
        }
    }
}

async fn read_log(api: &Api<Pod>, read: &LogRead, limit_bytes: i64) -> Result<String, kube::Error> {
    let params = LogParams {
        container: Some(read.container.clone()),
        limit_bytes: Some(limit_bytes),
        ..Default::default()
    };
    // Streamed and cut at the limit here too, in case a kubelet ignores limitBytes;
    // lossy, because a cut can split a UTF-8 character (a whole-body String read
    // would then fail for good).
    let stream = api.log_stream(&read.pod, &params).await?;
    let mut bytes = Vec::new();
    stream
        .take(limit_bytes.max(0).unsigned_abs())
        .read_to_end(&mut bytes)
        .await
        .map_err(kube::Error::ReadEvents)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

mod pod;

/// The cached Jobs and Pods labelled with `exec`'s uid, in its namespace.
fn attempts_of(exec: &Execution, ctx: &Context) -> (Vec<Arc<Job>>, Vec<Arc<Pod>>) {
    let ns = exec.namespace().unwrap_or_default();
    let uid = exec.uid().unwrap_or_default();
    (
        ctx.job_index.of(&ns, &uid, &ctx.jobs),
        ctx.pod_index.of(&ns, &uid, &ctx.pods),
    )
}

/// The step attempts of a run, as the caches show them: for a finished run, whether
/// one is left running (`engine::slim::needs_plan`).
pub fn attempts(exec: &Execution, ctx: &Context) -> BTreeMap<String, ObservedJob> {
    let (jobs, pods) = attempts_of(exec, ctx);
    let jobs: Vec<&Job> = jobs.iter().map(AsRef::as_ref).collect();
    let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
    observe_all(&jobs, &pods, &BTreeSet::new()).0
}

#[cfg(test)]
mod tests;
