//! What the controller's Job and Pod caches keep of each step attempt.
//!
//! A step's Job and Pod stay in the cluster, and so in the caches, until their run is
//! deleted: with history kept, they outnumber the running ones by far. Their pod spec
//! is most of their size (the rendered env, with earlier steps' outputs in it, the
//! volumes, security contexts and tolerations), and the controller reads only the step
//! container's name and memory limit from it (`controller::observe`: which container
//! status is the step's; the message of an OOM kill). Metadata (labels, annotations,
//! owners, uid, times) and a Job's status are kept whole; of a Pod's status, what the
//! failure handling reads. `controller::observe`'s tests check that a slimmed Job and
//! Pod are observed exactly as the whole ones.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodSpec, PodStatus};

/// Keeps of `job` what the controller reads: its metadata but `managedFields`, its
/// status, and of its pod template the step container's name and resources.
pub fn job(job: &mut Job) {
    job.metadata.managed_fields = None;
    if let Some(spec) = job.spec.as_mut() {
        spec.template.metadata = None;
        if let Some(pod) = spec.template.spec.as_mut() {
            pod_spec(pod);
        }
    }
}

/// Keeps of `pod` what the controller reads: its metadata but `managedFields`, of its
/// spec the step container's name and resources, and of its status the phase, reason
/// and message, the conditions it acts on (`PodScheduled`, `DisruptionTarget`) and each
/// container's name and state.
pub fn pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    if let Some(spec) = pod.spec.as_mut() {
        pod_spec(spec);
    }
    if let Some(status) = pod.status.take() {
        let conditions = status.conditions.map(|cs| {
            cs.into_iter()
                .filter(|c| CONDITIONS.contains(&c.type_.as_str()))
                .collect()
        });
        let containers = status.container_statuses.map(|cs| {
            cs.into_iter()
                .map(|c| ContainerStatus {
                    name: c.name,
                    state: c.state,
                    ..ContainerStatus::default()
                })
                .collect()
        });
        pod.status = Some(PodStatus {
            phase: status.phase,
            reason: status.reason,
            message: status.message,
            conditions,
            container_statuses: containers,
            ..PodStatus::default()
        });
    }
}

/// The pod conditions the failure handling reads (`controller::observe::pod`).
const CONDITIONS: [&str; 2] = ["PodScheduled", "DisruptionTarget"];

/// Only the first container (the step's: the Job builder puts it first), with only
/// its name and resources.
fn pod_spec(spec: &mut PodSpec) {
    let step = spec.containers.first().map(|c| Container {
        name: c.name.clone(),
        resources: c.resources.clone(),
        ..Container::default()
    });
    *spec = PodSpec {
        containers: step.into_iter().collect(),
        ..PodSpec::default()
    };
}
