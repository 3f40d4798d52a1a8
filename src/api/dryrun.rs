//! What a dry run (`Execution.spec.dryRun`) shows instead of running: each step it
//! would run, in order, with the plan it would run and whether its `when` lets it.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::{Phase, StepPlan};

/// One step of a dry run (one item of a loop whose items are known).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DryRunStep {
    /// The id the step would have in `status.steps` (`restart`, `restart[2]`,
    /// `block.step`); a loop whose items are not known yet shows once, as `step[*]`.
    pub id: String,
    /// The step's incident phase.
    #[serde(default)]
    pub phase: Phase,
    /// True for a `finally` step (they run after the main steps, whatever happened).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finally: bool,
    /// Runs (its `when` is true or absent), Skipped (its `when` is false on what is
    /// known), Unknown (its `when` reads what only a real run knows: see `message`),
    /// or Fails (a real run would fail it before it starts: see `message`).
    pub verdict: DryRunVerdict,
    /// Why: the `when` that rendered false, what an unknown `when` depends on, or
    /// what a real run would fail on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The Job the step would run, rendered by the Job builder as for an approval
    /// (secrets as references only), and its hash. Fields listed in `templated` hold
    /// their template as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<StepPlan>,
    /// The plan's fields that read what only a real run knows, kept as written, each
    /// with what it depends on (`args[5]: depends on step deployment's outputs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templated: Vec<String>,
    /// True when the step would wait for an approval before it runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approval: bool,
}

/// Whether a dry-run step would run.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum DryRunVerdict {
    /// No `when`, or a `when` that renders true on the known inputs.
    #[default]
    Runs,
    /// Its `when` (or its block's) renders false on the known inputs.
    Skipped,
    /// Its `when` reads what only a real run knows (earlier steps' outputs, the alert
    /// when none was given, how the main steps end).
    Unknown,
    /// A real run would fail this step before it starts (a template error, a Runner
    /// that does not exist or may not be used, a Secret the Runner does not list).
    Fails,
}
