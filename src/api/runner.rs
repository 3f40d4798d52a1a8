//! `Runner`: where and how the steps of a playbook run.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, PodSecurityContext, ResourceRequirements, SecurityContext,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A Runner says where and how steps run: service account, placement, Secrets and
/// limits. Steps name it by `runner`; it is looked up in the Execution's namespace
/// only, so a Runner never places pods in another namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "stackpulse.io",
    version = "v1",
    kind = "Runner",
    namespaced,
    status = "RunnerStatus",
    category = "stackpulse",
    printcolumn = r#"{"name":"SERVICEACCOUNT","type":"string","jsonPath":".spec.serviceAccountName"}"#,
    printcolumn = r#"{"name":"SECRET","type":"string","jsonPath":".spec.secretName"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RunnerSpec {
    /// Service account of the step pods (what the steps may do in the cluster).
    /// Default: the namespace's `default` service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// The Secret that `{{ secret "KEY" }}` reads. Default: `playbook-secrets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Other Secrets of the namespace that steps on this Runner may read, by
    /// `envFrom` or `{{ secret "NAME" "KEY" }}`; any other fails the step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_secrets: Vec<String>,
    /// Node labels the step pods must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the step pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the step pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Secrets used to pull step images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Default CPU and memory of step containers (a step's own `resources` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Pod security context. Default: non-root, seccomp RuntimeDefault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    /// Container security context. Default: no privilege escalation, read-only root
    /// filesystem, all capabilities dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Most steps of this Runner running at once across Executions (unset: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[schemars(extend("format" = "int32"))]
    pub max_parallel: Option<u32>,
    /// Labels added to step pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to step pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// What each step attempt runs as: `Job` (default) or `Pod`, a bare Pod owned by
    /// the Execution. Pod skips the Job controller, whose client limits cap step
    /// throughput on clusters at the default kube-controller-manager settings; the
    /// step's `timeoutSeconds` is then the pod's own `activeDeadlineSeconds`.
    #[serde(default, skip_serializing_if = "Workload::is_job")]
    pub workload: Workload,
}

/// What a step attempt runs as.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum Workload {
    /// A `batch/v1` Job (with `backoffLimit: 0`) whose pod runs the step.
    #[default]
    Job,
    /// A bare Pod, owned by the Execution, that runs the step.
    Pod,
}

impl Workload {
    /// True for the default, which the spec leaves out.
    pub fn is_job(&self) -> bool {
        *self == Self::Job
    }

    /// The Kubernetes kind, as messages name it.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Job => "Job",
            Self::Pod => "Pod",
        }
    }
}

/// What the controller found when it checked the Runner.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunnerStatus {
    /// `Ready` is False with the reason when the Runner is invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
