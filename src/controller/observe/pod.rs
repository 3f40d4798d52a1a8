//! The plain facts of a step's Pod that `engine::plan::health` judges: its phase and
//! reason, the step container's waiting state, and the conditions that say the
//! scheduler found no node or the cluster is taking the pod away. Nothing is decided
//! here; nothing here knows about Jobs.

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use kube::ResourceExt;

use crate::engine::plan::health::{PodFacts, Waiting};

/// What `pod` shows of itself and of its container `container` (`None`: its first).
pub fn facts(pod: &Pod, container: Option<&str>) -> PodFacts {
    let status = pod.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let cs = match container {
        Some(name) => statuses.iter().find(|c| c.name == name),
        None => statuses.first(),
    };
    let waiting = cs
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .map(|w| Waiting {
            reason: w.reason.clone().unwrap_or_default(),
            message: w.message.clone(),
        });
    let unschedulable = condition(conditions, "PodScheduled")
        .filter(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
        .map(|c| c.message.clone().unwrap_or_default());
    let disruption = condition(conditions, "DisruptionTarget")
        .filter(|c| c.status == "True")
        .map(|c| Waiting {
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone(),
        });
    PodFacts {
        name: pod.name_any(),
        phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
        reason: status.and_then(|s| s.reason.clone()),
        message: status.and_then(|s| s.message.clone()),
        waiting,
        unschedulable,
        disruption,
        deleting: pod.metadata.deletion_timestamp.is_some(),
    }
}

fn condition<'a>(conditions: &'a [PodCondition], type_: &str) -> Option<&'a PodCondition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The pod that speaks for a Job whose container has not ended: the newest one not
/// being deleted (a replacement), else the newest.
pub fn current<'a>(pods: &[&'a Pod]) -> Option<&'a Pod> {
    let newest = |deleting: bool| {
        pods.iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some() == deleting)
            .max_by_key(|p| p.creation_timestamp().map(|t| t.0))
            .copied()
    };
    newest(false).or_else(|| newest(true))
}
