//! The `stackpulse.io/v1` API: the custom resources, and the admission policies
//! that guard who requested and who approved an Execution (`admission`).
//!
//! Types only: no client, no runtime, no I/O. The CRD YAML in `crds/` is generated
//! from these types (`playbook-operator crd`), so the doc comments here are what
//! `kubectl explain` shows; keep them useful to someone reading them at 3 a.m.
//! Unsigned fields carry `format: int32`/`int64`: the API server warns on every apply
//! about schemars' `uint32`, a format Kubernetes does not know.

pub mod admission;
mod dryrun;
mod execution;
mod notify;
mod playbook;
mod runner;
mod schedule;
mod schema;
mod trigger;

pub use dryrun::*;
pub use execution::*;
pub use notify::*;
pub use playbook::*;
pub use runner::*;
pub use schedule::*;
pub use trigger::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every resource of this operator.
pub const GROUP: &str = "stackpulse.io";

/// Every CRD this operator serves, in the order `playbook-operator crd` prints them.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Playbook::crd(),
        Execution::crd(),
        Trigger::crd(),
        Runner::crd(),
        Schedule::crd(),
    ]
}

/// Reference to another object in the same namespace, by name.
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub struct LocalRef {
    /// Name of the referenced object, in the same namespace as the referring one.
    pub name: String,
}
