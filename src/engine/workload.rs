//! Steps as Jobs or as bare Pods (`Runner.spec.workload`): what differs, decided here.
//!
//! The planner always plans a Job (`engine::job`: its name, labels, pod template and
//! deadline) and never asks which workload runs it. The Job builder stamps the
//! Runner's workload on the Job as an annotation ([`annotate`]); the shell
//! (`controller::workload`) creates that Job, or the bare Pod [`bare_pod`] makes of
//! it. Observing goes the other way: a bare Pod is summarised as the same
//! [`ObservedJob`] a Job and its pod give ([`observe_bare_pod`]), so retries,
//! timeouts, failure messages and restart safety are the planner's one code path.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::Workload;
use crate::engine::plan::health::PodFacts;
use crate::engine::plan::{JobFailure, ObservedJob, StepLog, Terminated};

/// Annotation on a planned Job (and on the bare Pod made of it) that runs as a Pod.
pub const ANNOTATION_WORKLOAD: &str = "stackpulse.io/workload";

/// The pod's `status.reason` when the kubelet stopped it at `activeDeadlineSeconds`
/// (the Job controller uses the same word in its `Failed` condition).
const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";

/// `annotations` of a planned Job with its workload: only `Pod` is written, so a Job
/// of a Runner without `workload` is exactly what it always was.
pub fn annotate(
    mut annotations: BTreeMap<String, String>,
    workload: Workload,
) -> BTreeMap<String, String> {
    if workload == Workload::Pod {
        annotations.insert(ANNOTATION_WORKLOAD.into(), workload.kind().into());
    }
    annotations
}

/// What a planned Job runs as.
pub fn of(job: &Job) -> Workload {
    let marked = job
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_WORKLOAD));
    match marked.map(String::as_str) {
        Some("Pod") => Workload::Pod,
        _ => Workload::Job,
    }
}

/// The bare Pod that runs a planned Job's attempt: the same name, namespace, owner
/// (the Execution), labels, annotations and pod spec, with the Job's
/// `activeDeadlineSeconds` on the pod itself (the kubelet enforces it there).
/// `None` for a Job without a spec, which the builder never makes.
pub fn bare_pod(job: &Job) -> Option<Pod> {
    let spec = job.spec.as_ref()?;
    let template = spec.template.metadata.clone().unwrap_or_default();
    // The template's labels hold the Runner's and ours (ours win); the Job's add the
    // managed-by label, and the Job's annotations the workload.
    let mut labels = template.labels.unwrap_or_default();
    labels.extend(job.metadata.labels.clone().unwrap_or_default());
    let mut annotations = template.annotations.unwrap_or_default();
    annotations.extend(job.metadata.annotations.clone().unwrap_or_default());
    let mut pod = spec.template.spec.clone()?;
    pod.active_deadline_seconds = spec.active_deadline_seconds;
    Some(Pod {
        metadata: ObjectMeta {
            name: job.metadata.name.clone(),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: job.metadata.owner_references.clone(),
            ..Default::default()
        },
        spec: Some(pod),
        status: None,
    })
}

/// True when a Pod is a step attempt of its own: its controlling owner is the
/// Execution, not a Job.
pub fn is_bare(owners: &[OwnerReference]) -> bool {
    owners
        .iter()
        .any(|o| o.controller == Some(true) && o.kind == "Execution")
}

/// What the shell saw of a bare step Pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeenPod {
    pub uid: Option<String>,
    /// The step container's end, once it has terminated.
    pub terminated: Option<Terminated>,
    /// The pod's phase, reasons and conditions.
    pub facts: PodFacts,
    /// The step container's memory limit (`64Mi`).
    pub memory_limit: Option<String>,
}

/// A bare Pod as the planner sees a Job and its pod:
/// - the kubelet stopping it at its deadline is the Job's `DeadlineExceeded`
///   failure ("timed out after Ns"), whatever the killed container's exit says;
/// - an ended container is the attempt's end;
/// - otherwise the pod is judged as a Job's pod is (`health::judge`);
/// - a pod being deleted is a Job being deleted: someone stopped the attempt.
pub fn observe_bare_pod(seen: SeenPod) -> ObservedJob {
    let facts = seen.facts;
    let deadline = facts.phase == "Failed" && facts.reason.as_deref() == Some(DEADLINE_EXCEEDED);
    let failed = deadline.then(|| JobFailure {
        reason: DEADLINE_EXCEEDED.into(),
        message: facts.message.clone().unwrap_or_default(),
    });
    let terminated = seen.terminated.filter(|_| !deadline);
    let deleting = facts.deleting;
    let pod = (terminated.is_none() && !deadline).then_some(facts);
    ObservedJob {
        terminated,
        failed,
        deleting,
        uid: seen.uid,
        pod,
        memory_limit: seen.memory_limit,
        refused: None,
        log: StepLog::NotRead,
    }
}

#[cfg(test)]
mod tests;
