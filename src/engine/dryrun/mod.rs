//! Dry runs (`Execution.spec.dryRun`, `playbook-operator start --dry-run`): every
//! step a run would run, in order, with the plan and hash an approver would see and
//! whether its `when` lets it run, and nothing run.
//!
//! Pipeline: the controller (or `start --dry-run`) gathers the Playbook, params,
//! alert and Runners; [`render`] (pure) walks the playbook in the order the planner
//! starts its entries (`dependsOn` respected, else list order), expanding loops whose
//! items are known; [`finish`] turns that into the run's one and final status.
//!
//! What a dry run knows: the params (with defaults), the alert if one was given, the
//! Execution itself and the Runners. What it does not: earlier steps' outputs and
//! states. A `when` reading those is `Unknown` with what it depends on ("depends on
//! step pod's outputs"), never guessed; a field of a plan reading them is kept as
//! written and listed in `templated`. Secrets stay references: the Job builder
//! renders them as `secretKeyRef`s, and a kept template shows `secret "KEY"` as
//! written, so no value is ever read.

mod deps;
mod render;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::api::{
    DryRunStep, DryRunVerdict, ExecutionPhase, ExecutionSpec, ExecutionStatus, PlaybookSpec,
    PlaybookStep, RunnerSpec, Step,
};
use crate::engine::access::RunnerAccess;
use crate::engine::context::{self, ExecutionMeta, InstanceId};
use crate::engine::plan::{ExecutionRef, Graph, items_from, needs_approval, validate_graph};
use crate::engine::template;
use deps::{Scope, describe, path_template};
use render::NoPlan;

/// Most steps a dry run shows (loop items × steps), as many as a run may expand to.
const MAX_STEPS: usize = 1000;

/// Everything a dry run reads.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub execution: &'a ExecutionRef,
    pub spec: &'a ExecutionSpec,
    pub playbook: &'a PlaybookSpec,
    /// The Runners of the Execution's namespace, by name.
    pub runners: &'a BTreeMap<String, RunnerSpec>,
    /// Whether the requester may `use` each Runner (`None`: not checked, offline).
    pub runner_access: Option<&'a RunnerAccess>,
}

/// The steps a run would run, in order. `Err` when no step can be rendered at all
/// (an invalid playbook, a missing required param), with what to change.
pub fn render(input: &Input, now: Timestamp) -> Result<Vec<DryRunStep>, String> {
    let pb = input.playbook;
    validate_graph(pb).map_err(|e| format!("invalid playbook: {}", e.join("; ")))?;
    let graph = Graph::new(pb).map_err(|e| format!("invalid playbook: {}", e.join("; ")))?;
    let e = input.execution;
    let meta = ExecutionMeta {
        uid: e.uid.clone(),
        name: e.name.clone(),
        namespace: e.namespace.clone(),
        url: e.url.clone(),
        started_at: Some(Time(now)),
        phase: ExecutionPhase::Running,
        failed_step: None,
        playbook: input.spec.playbook_ref.name.clone(),
    };
    let alert = input.spec.alert.as_ref();
    let params = context::resolve_params(&pb.params, input.spec.params.as_ref(), &meta, alert)
        .map_err(|e| e.to_string())?;
    let mut walk = Walk {
        input,
        ctx: context::build(&meta, &params, alert, &[]),
        scope: Scope::new(params.keys().cloned(), alert.is_some()),
        out: Vec::new(),
    };
    walk.scope.step_ids = all_ids(pb);
    for e in order(&graph.deps) {
        walk.entry(&pb.steps[e], graph.inner.get(e).map(Vec::as_slice))?;
    }
    walk.scope.finally = true;
    for entry in &pb.finally {
        walk.entry(entry, None)?;
    }
    Ok(walk.out)
}

/// The dry run's status: the snapshot, its steps and phase DryRun, or Failed with
/// what to change when it cannot be rendered. `None` once the status is final: a
/// dry run is written once, so a restart at any point writes the same or nothing.
pub fn finish(input: &Input, status: &ExecutionStatus, now: Timestamp) -> Option<ExecutionStatus> {
    if status.phase.is_final() {
        return None;
    }
    let at = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let mut st = ExecutionStatus {
        playbook: Some(input.playbook.clone()),
        started_at: Some(at.clone()),
        finished_at: Some(at),
        observed_generation: input.execution.generation,
        ..ExecutionStatus::default()
    };
    match render(input, now) {
        Ok(steps) => {
            st.phase = ExecutionPhase::DryRun;
            st.message = Some(summary(&steps));
            st.dry_run = steps;
        }
        Err(message) => {
            st.phase = ExecutionPhase::Failed;
            st.message = Some(format!("dry run: {message}"));
        }
    }
    Some(st)
}

/// "dry run, nothing ran: 5 steps run, 2 skipped, 3 unknown".
pub fn summary(steps: &[DryRunStep]) -> String {
    let count = |v: DryRunVerdict| steps.iter().filter(|s| s.verdict == v).count();
    let mut parts = vec![format!("{} run", count(DryRunVerdict::Runs))];
    for (v, word) in [
        (DryRunVerdict::Skipped, "skipped"),
        (DryRunVerdict::Unknown, "depend on outputs"),
        (DryRunVerdict::Fails, "would fail"),
    ] {
        if count(v) > 0 {
            parts.push(format!("{} {word}", count(v)));
        }
    }
    format!(
        "dry run, nothing ran: {} steps: {}",
        steps.len(),
        parts.join(", ")
    )
}

/// Entries in the order the planner starts them: each once all it waits for has.
fn order(deps: &[Vec<usize>]) -> Vec<usize> {
    let mut done = vec![false; deps.len()];
    let mut out = Vec::with_capacity(deps.len());
    while let Some(e) = (0..deps.len()).find(|&e| !done[e] && deps[e].iter().all(|&d| done[d])) {
        done[e] = true;
        out.push(e);
    }
    out
}

/// Every step and block id (outputs are named by them).
fn all_ids(pb: &PlaybookSpec) -> BTreeSet<String> {
    let entries = pb.steps.iter().chain(&pb.finally);
    entries
        .flat_map(|e| std::iter::once(&e.step).chain(e.steps.iter().flatten()))
        .map(|s| s.id.clone())
        .collect()
}

/// Why a step or block would or would not run: a verdict and its reason.
type Gate = (DryRunVerdict, Option<String>);

struct Walk<'a> {
    input: &'a Input<'a>,
    ctx: Value,
    scope: Scope,
    out: Vec<DryRunStep>,
}

impl Walk<'_> {
    /// One entry of `steps` or `finally`: a step, a block, or a loop of either.
    fn entry(&mut self, entry: &PlaybookStep, inner: Option<&[Vec<usize>]>) -> Result<(), String> {
        let id = entry.step.id.clone();
        let gate = match &entry.steps {
            Some(_) => self.when(entry.step.when.as_deref(), &format!("block {id}: ")),
            None => (DryRunVerdict::Runs, None),
        };
        let Some(fe) = &entry.foreach else {
            return self.body(entry, inner, None, &gate);
        };
        let source = match (&fe.path, &fe.items, &fe.range) {
            (Some(path), None, None) => self.scope.deps(&path_template(path)),
            _ => Ok(BTreeSet::new()),
        };
        let saved = (self.ctx.clone(), self.scope.clone());
        let key = fe.key.clone().unwrap_or_else(|| "key".into());
        let value = fe.value.clone().unwrap_or_else(|| "value".into());
        let result = match source {
            Err(e) => self.body(
                entry,
                inner,
                None,
                &fails(format!("foreach {id}: path: {e}")),
            ),
            Ok(deps) if !deps.is_empty() => {
                // One step for all items, its loop variables unknown.
                self.scope.unknown_vars.push((key, id.clone()));
                self.scope.unknown_vars.push((value, id.clone()));
                let items = (
                    DryRunVerdict::Unknown,
                    Some(format!("foreach items: {}", describe(&deps))),
                );
                self.body(entry, inner, Some(None), &worst(&gate, &items))
            }
            Ok(_) => match items_from(fe, &self.ctx) {
                Err(e) => self.body(entry, inner, None, &fails(format!("foreach {id}: {e}"))),
                Ok(items) if items.is_empty() => {
                    let none = (DryRunVerdict::Skipped, Some("foreach: no items".into()));
                    self.body(entry, inner, Some(None), &worst(&gate, &none))
                }
                Ok(items) => {
                    self.scope.known.extend([key.clone(), value.clone()]);
                    let mut result = Ok(());
                    for (i, (k, v)) in items.into_iter().enumerate() {
                        context::with_item(&mut self.ctx, &key, k, &value, v);
                        let item = self.when(fe.when.as_deref(), "foreach when: ");
                        let index = u32::try_from(i).unwrap_or(u32::MAX);
                        result = self.body(entry, inner, Some(Some(index)), &worst(&gate, &item));
                        if result.is_err() {
                            break;
                        }
                    }
                    result
                }
            },
        };
        (self.ctx, self.scope) = saved;
        result
    }

    /// The steps of an entry (itself, or its block's in order) for one item:
    /// `None` not a loop, `Some(None)` all items at once, `Some(Some(i))` item i.
    fn body(
        &mut self,
        entry: &PlaybookStep,
        inner: Option<&[Vec<usize>]>,
        item: Option<Option<u32>>,
        gate: &Gate,
    ) -> Result<(), String> {
        let index = item.flatten();
        let shown = |iid: InstanceId| match item {
            Some(None) => match &iid.block {
                Some(b) => format!("{b}[*].{}", iid.step),
                None => format!("{}[*]", iid.step),
            },
            _ => iid.to_string(),
        };
        let Some(steps) = &entry.steps else {
            let iid = InstanceId::top(&entry.step.id, index);
            let id = shown(iid.clone());
            return self.step(id, &iid, &entry.step, gate);
        };
        let deps = inner.map(<[Vec<usize>]>::to_vec).unwrap_or_else(|| {
            // `finally` blocks run their steps in order.
            (0..steps.len())
                .map(|i| (0..i).rev().take(1).collect())
                .collect()
        });
        for s in order(&deps) {
            let iid = InstanceId::in_block(&entry.step.id, index, &steps[s].id);
            let id = shown(iid.clone());
            self.step(id, &iid, &steps[s], gate)?;
        }
        Ok(())
    }

    /// One step: its `when` under the entry's gate, and its plan.
    fn step(
        &mut self,
        id: String,
        iid: &InstanceId,
        step: &Step,
        gate: &Gate,
    ) -> Result<(), String> {
        if self.out.len() >= MAX_STEPS {
            return Err(format!(
                "the playbook expands to more than {MAX_STEPS} steps: shorten its loops"
            ));
        }
        let (mut verdict, mut message) = worst(gate, &self.when(step.when.as_deref(), ""));
        let (plan, templated) = match render::plan(self.input, &self.scope, iid, step, &self.ctx) {
            Ok((plan, templated)) => (Some(plan), templated),
            Err(NoPlan::Unknown(why)) => {
                if verdict == DryRunVerdict::Runs {
                    verdict = DryRunVerdict::Unknown;
                }
                message = Some(join(message, why));
                (None, Vec::new())
            }
            // A skipped step never starts: what it would fail on does not matter.
            Err(NoPlan::Fails(_)) if verdict == DryRunVerdict::Skipped => (None, Vec::new()),
            Err(NoPlan::Fails(why)) => {
                verdict = DryRunVerdict::Fails;
                message = Some(join(Some(why), message.unwrap_or_default()));
                (None, Vec::new())
            }
        };
        self.out.push(DryRunStep {
            id,
            phase: step.phase,
            finally: self.scope.finally,
            verdict,
            message,
            plan,
            templated,
            approval: needs_approval(step).is_some(),
        });
        Ok(())
    }

    /// The verdict of a `when` (`prefix` says whose) on what is known.
    fn when(&self, when: Option<&str>, prefix: &str) -> Gate {
        let Some(when) = when else {
            return (DryRunVerdict::Runs, None);
        };
        match self.scope.deps(when) {
            Err(e) => fails(format!("{prefix}when: {e}")),
            Ok(deps) if !deps.is_empty() => (
                DryRunVerdict::Unknown,
                Some(format!("{prefix}when {}", describe(&deps))),
            ),
            Ok(_) => match template::render_condition(when, &self.ctx) {
                Ok(true) => (DryRunVerdict::Runs, None),
                Ok(false) => (
                    DryRunVerdict::Skipped,
                    Some(format!("{prefix}when rendered false: {when}")),
                ),
                Err(e) => fails(format!("{prefix}when: {e}")),
            },
        }
    }
}

fn fails(message: String) -> Gate {
    (DryRunVerdict::Fails, Some(message))
}

/// The gate that decides between an outer (block, loop) and an inner one: a
/// failure first, then a known skip, then an unknown.
fn worst(outer: &Gate, inner: &Gate) -> Gate {
    let rank = |v: DryRunVerdict| match v {
        DryRunVerdict::Fails => 3,
        DryRunVerdict::Skipped => 2,
        DryRunVerdict::Unknown => 1,
        DryRunVerdict::Runs => 0,
    };
    if rank(inner.0) > rank(outer.0) {
        inner.clone()
    } else {
        outer.clone()
    }
}

fn join(first: Option<String>, second: String) -> String {
    match first {
        Some(f) if !f.is_empty() && !second.is_empty() => format!("{f}; {second}"),
        Some(f) if !f.is_empty() => f,
        _ => second,
    }
}
