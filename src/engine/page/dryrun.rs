//! A dry run on the page: the steps it would run, each with its verdict and plan,
//! under a heading that says nothing ran.

use serde::Serialize;

use super::PlanView;
use crate::api::{DryRunStep, DryRunVerdict};

/// One step of a dry run as the page shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DryRunView {
    pub id: String,
    /// `enrich`, …, or `finally`.
    pub phase: &'static str,
    /// `runs`, `skipped`, `unknown` or `fails` (also the CSS class).
    pub verdict: &'static str,
    pub message: Option<String>,
    pub approval: bool,
    pub templated: Vec<String>,
    pub plan: Option<PlanView>,
}

/// The page's rows for `status.dryRun`.
pub fn views(steps: &[DryRunStep]) -> Vec<DryRunView> {
    steps
        .iter()
        .map(|s| DryRunView {
            id: s.id.clone(),
            phase: if s.finally {
                "finally"
            } else {
                s.phase.as_str()
            },
            verdict: match s.verdict {
                DryRunVerdict::Runs => "runs",
                DryRunVerdict::Skipped => "skipped",
                DryRunVerdict::Unknown => "unknown",
                DryRunVerdict::Fails => "fails",
            },
            message: s.message.clone(),
            approval: s.approval,
            templated: s.templated.clone(),
            plan: s.plan.as_ref().map(PlanView::from),
        })
        .collect()
}
