//! Playbook entries become step instances: plain steps, blocks (`when` over a group
//! of steps) and loops (`foreach`), and each is advanced when it is ready.
//!
//! Instance ids are `step`, `step[i]`, `block.step` and `block[i].step` (see
//! `context::InstanceId`). A loop starts as one Pending placeholder per step
//! (`step` or `block.step`); when the loop becomes ready its items are resolved and
//! the placeholders are replaced by one entry per item and step, all Pending, so the
//! status always shows what is left to run and the item count is fixed from then on.
//!
//! Item values are not stored in status: they are resolved again, from the same
//! context minus the loop's own steps, whenever an item's templates render. The
//! loop's own outputs cannot change its list (a step printing `items` inside a loop
//! over `items` is safe); a parallel DAG branch writing the same root key while the
//! loop runs could, and such an item then fails with a message saying so.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;

use super::{EventType, Planner};
use crate::api::{PlaybookSpec, StepState, StepStatus};
use crate::engine::context::{self, InstanceId};
use crate::engine::template;

/// The step entries of a new run: one per step, one placeholder per looped step.
pub(super) fn initial_steps(pb: &PlaybookSpec) -> Vec<StepStatus> {
    let mut steps = Vec::new();
    for entry in &pb.steps {
        match &entry.steps {
            None => steps.push(StepStatus {
                id: entry.step.id.clone(),
                phase: entry.step.phase,
                ..Default::default()
            }),
            Some(inner) => steps.extend(inner.iter().map(|s| StepStatus {
                id: InstanceId::in_block(&entry.step.id, None, &s.id).to_string(),
                phase: s.phase,
                ..Default::default()
            })),
        }
    }
    steps
}

impl Planner<'_> {
    /// Moves a ready entry (all it depends on is final) forward.
    pub(super) fn advance_entry(&mut self, e: usize) -> bool {
        if self.failing().is_some() {
            return false;
        }
        let pb = Rc::clone(&self.pb);
        let entry = &pb.steps[e];
        let insts = self.instances_of(e);
        let all_pending = insts
            .iter()
            .all(|&i| self.st.steps[i].state == StepState::Pending);
        if entry.foreach.is_some() {
            if insts.iter().any(|&i| self.ids[i].index.is_some()) {
                return self.advance_loop(e);
            }
            return all_pending && self.expand(e);
        }
        if entry.steps.is_some() {
            if all_pending && !self.enter_block(e, &insts) {
                return true;
            }
            return self.advance_inner(e, None);
        }
        match insts.first() {
            Some(&i) if self.st.steps[i].state == StepState::Pending => self.start(i),
            _ => false,
        }
    }

    /// Renders a block's `when` once, as it becomes ready. False when the block will
    /// not run (its steps are skipped, or the first one failed on the template).
    fn enter_block(&mut self, e: usize, insts: &[usize]) -> bool {
        let pb = Rc::clone(&self.pb);
        let (id, Some(when)) = (&pb.steps[e].step.id, &pb.steps[e].step.when) else {
            return true;
        };
        match template::render_condition(when, &self.context_over(&self.st.steps)) {
            Ok(true) => true,
            Ok(false) => {
                for &i in insts {
                    self.skip(i, format!("block '{id}': when rendered false: {when}"));
                }
                self.event(
                    EventType::Normal,
                    "StepSkipped",
                    format!("block '{id}' skipped: when rendered false: {when}"),
                );
                false
            }
            Err(err) => {
                if let Some(&first) = insts.first() {
                    self.fail_step(first, format!("block '{id}': when: {err}"), None);
                }
                false
            }
        }
    }

    /// Resolves a ready loop's items and replaces its placeholders with one entry per
    /// item and step.
    fn expand(&mut self, e: usize) -> bool {
        let pb = Rc::clone(&self.pb);
        let entry = &pb.steps[e];
        let id = &entry.step.id;
        let insts = self.instances_of(e);
        let Some(&first) = insts.first() else {
            return false;
        };
        if entry.steps.is_some() && !self.enter_block(e, &insts) {
            return true;
        }
        let items = match self.loop_items(e) {
            Ok(items) => items,
            Err(message) => {
                self.fail_step(first, message, None);
                return true;
            }
        };
        if items.is_empty() {
            for &i in &insts {
                self.skip(i, "foreach: no items".into());
            }
            self.event(
                EventType::Normal,
                "StepSkipped",
                format!("foreach '{id}' has no items: nothing to run"),
            );
            return true;
        }
        let inner: Vec<(Option<&str>, &str, crate::api::Phase)> = match &entry.steps {
            Some(steps) => steps
                .iter()
                .map(|s| (Some(id.as_str()), s.id.as_str(), s.phase))
                .collect(),
            None => vec![(None, id.as_str(), entry.step.phase)],
        };
        let total = self.st.steps.len() - insts.len() + items.len() * inner.len();
        let max = self.input.limits.max_steps;
        if total > max {
            let message = format!(
                "foreach '{id}': {} items would make {total} step entries, and a run may have at most {max}: narrow the list or split the playbook",
                items.len()
            );
            self.fail_step(first, message, None);
            return true;
        }
        let mut expanded = Vec::with_capacity(items.len() * inner.len());
        for index in 0..items.len() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            for &(block, step, phase) in &inner {
                let iid = match block {
                    Some(b) => InstanceId::in_block(b, Some(index), step),
                    None => InstanceId::top(step, Some(index)),
                };
                expanded.push(StepStatus {
                    id: iid.to_string(),
                    phase,
                    ..Default::default()
                });
            }
        }
        let old = std::mem::take(&mut self.st.steps);
        for (i, s) in old.into_iter().enumerate() {
            if i == first {
                self.st.steps.append(&mut expanded);
            }
            if !insts.contains(&i) {
                self.st.steps.push(s);
            }
        }
        self.reindex();
        true
    }

    /// Moves an expanded loop forward: `break` after an item ends, then items in
    /// order, at most `parallelism` at a time, each with its own `when`.
    fn advance_loop(&mut self, e: usize) -> bool {
        let pb = Rc::clone(&self.pb);
        let entry = &pb.steps[e];
        let (id, Some(fe)) = (&entry.step.id, &entry.foreach) else {
            return false;
        };
        let mut items: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for i in self.instances_of(e) {
            if let Some(index) = self.ids[i].index {
                items.entry(index).or_default().push(i);
            }
        }
        let is_final = |p: &Self, g: &[usize]| g.iter().all(|&i| p.st.steps[i].state.is_final());
        let begun =
            |p: &Self, g: &[usize]| g.iter().any(|&i| p.st.steps[i].state != StepState::Pending);
        let parallel = fe.parallelism.unwrap_or(1).max(1);

        if let Some(brk) = &fe.break_when {
            for (&index, group) in &items {
                // Evaluate once: when this item's end is what would let the next start.
                let next = items.get(&index.saturating_add(parallel));
                if !is_final(self, group) || next.is_none_or(|n| begun(self, n)) {
                    continue;
                }
                let verdict = self
                    .context_for(&self.ids[group[0]].clone())
                    .and_then(|ctx| {
                        template::render_condition(brk, &ctx)
                            .map_err(|err| format!("foreach '{id}': break: {err}"))
                    });
                match verdict {
                    Ok(false) => {}
                    Ok(true) => {
                        let rest: Vec<usize> = items
                            .values()
                            .filter(|g| !begun(self, g))
                            .flatten()
                            .copied()
                            .collect();
                        let left = items.values().filter(|g| !begun(self, g)).count();
                        for i in rest {
                            self.skip(i, format!("not run: foreach '{id}' ended by break after item {index}: {brk}"));
                        }
                        let message = format!(
                            "foreach '{id}' ended by break after item {index}: {left} items not run"
                        );
                        self.event(EventType::Normal, "StepSkipped", message);
                        return true;
                    }
                    Err(message) => {
                        if let Some(&i) = next.and_then(|n| n.first()) {
                            self.fail_step(i, message, None);
                        }
                        return true;
                    }
                }
            }
        }

        let mut in_flight = items
            .values()
            .filter(|g| begun(self, g) && !is_final(self, g))
            .count();
        let mut changed = false;
        for (&index, group) in &items {
            if begun(self, group) {
                if !is_final(self, group) {
                    changed |= self.advance_inner(e, Some(index));
                }
                continue;
            }
            if in_flight >= parallel as usize {
                break;
            }
            if let Some(when) = &fe.when {
                let verdict = self
                    .context_for(&self.ids[group[0]].clone())
                    .and_then(|ctx| {
                        template::render_condition(when, &ctx)
                            .map_err(|err| format!("foreach '{id}' item {index}: when: {err}"))
                    });
                match verdict {
                    Ok(true) => {}
                    Ok(false) => {
                        for &i in group {
                            self.skip(
                                i,
                                format!("foreach item {index}: when rendered false: {when}"),
                            );
                        }
                        let message = format!(
                            "foreach '{id}' item {index} skipped: when rendered false: {when}"
                        );
                        self.event(EventType::Normal, "StepSkipped", message);
                        changed = true;
                        continue;
                    }
                    Err(message) => {
                        self.fail_step(group[0], message, None);
                        return true;
                    }
                }
            }
            changed |= self.advance_inner(e, Some(index));
            if begun(self, group) && !is_final(self, group) {
                in_flight += 1;
            }
        }
        changed
    }

    /// Starts the ready steps of a block (or of one item of a looped block/step).
    fn advance_inner(&mut self, e: usize, index: Option<u32>) -> bool {
        let pb = Rc::clone(&self.pb);
        let graph = Rc::clone(&self.graph);
        let insts: Vec<usize> = self
            .instances_of(e)
            .into_iter()
            .filter(|&i| self.ids[i].index == index)
            .collect();
        let Some(steps) = &pb.steps[e].steps else {
            return match insts.first() {
                Some(&i) if self.st.steps[i].state == StepState::Pending => self.start(i),
                _ => false,
            };
        };
        let position = |p: &Self, id: &str| insts.iter().copied().find(|&i| p.ids[i].step == id);
        let mut changed = false;
        for (k, step) in steps.iter().enumerate() {
            let Some(i) = position(self, &step.id) else {
                continue;
            };
            if self.st.steps[i].state != StepState::Pending {
                continue;
            }
            let deps = graph
                .inner
                .get(e)
                .and_then(|d| d.get(k))
                .cloned()
                .unwrap_or_default();
            let ready = deps.iter().all(|&d| {
                position(self, &steps[d].id).is_none_or(|j| self.st.steps[j].state.is_final())
            });
            if ready {
                changed |= self.start(i);
            }
        }
        changed
    }

    /// Puts item `index` of loop `e` into a context, under the loop's key/value names.
    pub(super) fn add_item(&self, ctx: &mut Value, e: usize, index: u32) -> Result<(), String> {
        let entry = &self.pb.steps[e];
        let fe = entry
            .foreach
            .as_ref()
            .ok_or_else(|| format!("step '{}' is not a loop", entry.step.id))?;
        let items = self.loop_items(e)?;
        let (key, value) = usize::try_from(index)
            .ok()
            .and_then(|i| items.into_iter().nth(i))
            .ok_or_else(|| {
                format!(
                    "foreach '{}': item {index} is gone: the list changed while the loop ran",
                    entry.step.id
                )
            })?;
        context::with_item(
            ctx,
            fe.key.as_deref().unwrap_or("key"),
            key,
            fe.value.as_deref().unwrap_or("value"),
            value,
        );
        Ok(())
    }

    /// The (key, value) items of loop `e`, from the context without the loop's own steps.
    fn loop_items(&self, e: usize) -> Result<Vec<(Value, Value)>, String> {
        let entry = &self.pb.steps[e];
        let id = &entry.step.id;
        let fe = entry
            .foreach
            .as_ref()
            .ok_or_else(|| format!("step '{id}' is not a loop"))?;
        let others: Vec<StepStatus> = self
            .st
            .steps
            .iter()
            .zip(&self.ids)
            .filter(|(_, iid)| iid.entry() != id)
            .map(|(s, _)| s.clone())
            .collect();
        items_from(fe, &self.context_over(&others)).map_err(|m| format!("foreach '{id}': {m}"))
    }
}

mod items;

pub(crate) use items::items_from;
