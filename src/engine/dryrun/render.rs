//! One step's plan in a dry run: the Job builder's own rendering, with each field
//! that reads what only a real run knows kept as written.
//!
//! Such a field is swapped for a marker before rendering and the marker for the
//! field's template after the Job is built, so the Job builder, the secret checks and
//! the plan hash are the ones a real run uses; no value is guessed.

use serde_json::Value;

use super::Input;
use super::deps::{Scope, describe};
use crate::api::{Step, StepPlan};
use crate::engine::access;
use crate::engine::context::InstanceId;
use crate::engine::job::{self, JobInput};
use crate::engine::plan::resolve_runner;

/// Why a step has no plan.
#[derive(Debug, PartialEq)]
pub(super) enum NoPlan {
    /// What picks its Runner is only known in a real run.
    Unknown(String),
    /// A real run would fail the step before it starts.
    Fails(String),
}

/// The plan of one step (attempt 1) and its fields kept as written.
pub(super) fn plan(
    input: &Input,
    scope: &Scope,
    iid: &InstanceId,
    step: &Step,
    ctx: &Value,
) -> Result<(StepPlan, Vec<String>), NoPlan> {
    let fails = |e: String| NoPlan::Fails(format!("step '{iid}': {e}"));
    if let Some(runner) = step.runner.as_deref().filter(|r| r.contains("{{")) {
        let deps = scope
            .deps(runner)
            .map_err(|e| fails(format!("runner: {e}")))?;
        if !deps.is_empty() {
            return Err(NoPlan::Unknown(format!("its runner {}", describe(&deps))));
        }
    }
    let mut step = step.clone();
    let mut swaps: Vec<(String, String)> = Vec::new();
    let mut templated = Vec::new();
    let mut keep = |field: String, src: &mut String, marker: String| -> Result<(), NoPlan> {
        let deps = scope
            .deps(src)
            .map_err(|e| fails(format!("{field}: {e}")))?;
        if !deps.is_empty() {
            templated.push(format!("{field}: {}", describe(&deps)));
            swaps.push((marker.clone(), std::mem::replace(src, marker)));
        }
        Ok(())
    };
    for (name, list) in [("command", &mut step.command), ("args", &mut step.args)] {
        for (i, src) in list.iter_mut().flatten().enumerate() {
            let marker = format!("\u{27ea}dry-run {name}[{i}]\u{27eb}");
            keep(format!("{name}[{i}]"), src, marker)?;
        }
    }
    for (name, src) in &mut step.env {
        let marker = format!("\u{27ea}dry-run env {name}\u{27eb}");
        keep(format!("env {name}"), src, marker)?;
    }
    // A Secret name must stay a valid name through the Job builder's check.
    let mut unknown_sources = Vec::new();
    for (i, source) in step.env_from.iter_mut().enumerate() {
        for (field, name) in [
            ("secretRef", &mut source.secret_ref),
            ("integrationRef", &mut source.integration_ref),
        ] {
            if let Some(src) = name {
                let marker = format!("dry-run-envfrom-{i}-{}", field.to_lowercase());
                keep(format!("envFrom[{i}].{field}"), src, marker.clone())?;
                if *src == marker {
                    unknown_sources.push(marker);
                }
            }
        }
    }
    let (runner_name, runner) = resolve_runner(
        &step,
        ctx,
        input.runners,
        input.runner_access,
        &input.execution.namespace,
    )
    .map_err(NoPlan::Fails)?;
    let rendered = job::render_step(&step, ctx).map_err(|e| NoPlan::Fails(e.to_string()))?;
    // Only the Secrets known now are checked; a name an output picks is checked when
    // a real run renders it.
    let mut checked = rendered.clone();
    checked.env_from.retain(|e| {
        let names = [&e.secret_ref, &e.integration_ref];
        !names
            .iter()
            .any(|n| n.as_ref().is_some_and(|n| unknown_sources.contains(n)))
    });
    access::check_secrets(&step.id, &runner_name, &runner, &checked).map_err(NoPlan::Fails)?;
    let e = input.execution;
    let built = job::build_job(&JobInput {
        execution: &e.name,
        namespace: &e.namespace,
        uid: &e.uid,
        playbook: &input.spec.playbook_ref.name,
        instance: iid,
        attempt: 1,
        step: &rendered,
        runner: &runner,
    })
    .map_err(|e| NoPlan::Fails(e.to_string()))?;
    let job = restore(built, &swaps).map_err(fails)?;
    let name = input
        .runners
        .contains_key(&runner_name)
        .then_some(runner_name);
    let plan = job::step_plan(&job, name.as_deref())
        .ok_or_else(|| fails("the Job builder made no pod template".into()))?;
    Ok((plan, templated))
}

/// The Job with each marker replaced by the template it stands for.
fn restore(
    job: k8s_openapi::api::batch::v1::Job,
    swaps: &[(String, String)],
) -> Result<k8s_openapi::api::batch::v1::Job, String> {
    if swaps.is_empty() {
        return Ok(job);
    }
    let mut value = serde_json::to_value(&job).map_err(|e| e.to_string())?;
    replace_in(&mut value, swaps);
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn replace_in(value: &mut Value, swaps: &[(String, String)]) {
    match value {
        Value::String(s) => {
            for (marker, src) in swaps {
                if s.contains(marker.as_str()) {
                    *s = s.replace(marker.as_str(), src);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| replace_in(v, swaps)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_in(v, swaps)),
        _ => {}
    }
}
