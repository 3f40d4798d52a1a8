//! The shell around `engine::limits`: which remediations the planner of one run
//! counts, and why two runs cannot both take the last one.
//!
//! Reconciles of different Executions run concurrently, and the Execution cache
//! shows the controller's own status writes only some milliseconds later. So the
//! reconciles of the runs of one Playbook that may still claim a remediation
//! (`limits::may_claim`) are serialized by one lock per (namespace, playbook), held
//! from counting until its plan is applied, and the lock keeps the claims this
//! controller wrote that the cache may not show yet: a burst of runs counts each
//! other's claims. Nothing is lost on a restart or a leader change: a claim is in
//! the run's status before its remediate step's Job is created, and the next leader
//! lists every run's status before it reconciles (kube's `Controller` holds all
//! reconciles until its Execution store has its first list).
//!
//! One lock per Playbook rather than per key: the key is rendered by the planner
//! inside the lock, from the run's own context; the lock is held only by runs still
//! about to remediate, for one plan and its writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::api::Execution;
use crate::engine::limits::{self, Claim};
use crate::engine::plan::{Plan, PlanInput};

/// Claims written by this controller and maybe not cached yet, per playbook.
type Pending = Arc<AsyncMutex<Vec<Claim>>>;

/// One entry per (namespace, playbook) that has had a limited run: few, and small.
#[derive(Default)]
pub struct Remediations {
    playbooks: Mutex<HashMap<(String, String), Pending>>,
}

/// A run's turn to count and claim: held until its plan is applied.
pub struct Turn {
    pending: OwnedMutexGuard<Vec<Claim>>,
}

impl Remediations {
    /// When `input`'s run may claim a remediation: waits for its playbook's turn and
    /// fills `input.remediations` with every claim of that playbook's runs.
    pub async fn count(
        &self,
        input: &mut PlanInput,
        executions: &Store<DeserializeGuard<Execution>>,
    ) -> Option<Turn> {
        if !limits::may_claim(&input.status, input.playbook.as_ref()) {
            return None;
        }
        let ns = input.execution.namespace.clone();
        let playbook = input.spec.playbook_ref.name.clone();
        let slot = {
            // A poisoned map is still a map: the lock only guards inserting.
            let mut map = self.playbooks.lock().unwrap_or_else(|p| p.into_inner());
            map.entry((ns.clone(), playbook.clone()))
                .or_default()
                .clone()
        };
        let mut pending = slot.lock_owned().await;
        // Read after the turn is ours: a run that claimed before us is in the cache
        // or in `pending` by now.
        let runs = executions.state();
        let runs: Vec<&Execution> = runs.iter().filter_map(|e| e.0.as_ref().ok()).collect();
        let cached = limits::recorded(runs.iter().copied(), &ns, &playbook);
        limits::still_pending(&mut pending, &cached, |uid| {
            runs.iter().any(|e| e.uid().as_deref() == Some(uid))
        });
        input.remediations = cached.into_iter().chain(pending.iter().cloned()).collect();
        Some(Turn { pending })
    }
}

impl Turn {
    /// Keeps the claim `plan` makes, before its status is written: were the write
    /// to fail, the claim still counts (until the run claims again, is deleted, or
    /// the window passes): counting one too many holds a run for a person, one too
    /// few would remediate past the limit.
    pub fn note(&mut self, input: &PlanInput, plan: &Plan) {
        let uid = &input.execution.uid;
        if let Some(claim) = limits::claimed(uid, &input.status, &plan.status) {
            self.pending.retain(|c| &c.uid != uid);
            self.pending.push(claim);
        }
    }
}
