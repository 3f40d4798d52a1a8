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
//! History pruning deletes runs whose claims still count: it writes them to the
//! Playbook's ledger (`status.remediationClaims`, see `super::ledger`) first, in the
//! same turn, and keeps them here until the Playbook cache shows them, so a run
//! deleted from the Execution cache is never missing from both.
//!
//! One lock per Playbook rather than per key: the key is rendered by the planner
//! inside the lock, from the run's own context; the lock is held only by runs still
//! about to remediate, for one plan and its writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::api::{Execution, Playbook};
use crate::engine::ledger::ledger_claims;
use crate::engine::limits::{self, Claim};
use crate::engine::plan::{Plan, PlanInput};

/// What this controller wrote about one playbook that its caches may not show yet.
#[derive(Default)]
pub struct Unseen {
    /// Claims in runs' status, not yet in the Execution cache.
    claims: Vec<Claim>,
    /// Claims in the Playbook's ledger, not yet in the Playbook cache.
    ledgered: Vec<Claim>,
}

type Pending = Arc<AsyncMutex<Unseen>>;

/// One entry per (namespace, playbook) that has had a limited run: few, and small.
#[derive(Default)]
pub struct Remediations {
    playbooks: Mutex<HashMap<(String, String), Pending>>,
}

/// A run's turn to count and claim (held until its plan is applied), or the
/// pruner's turn to write the ledger.
pub struct Turn {
    pending: OwnedMutexGuard<Unseen>,
}

impl Remediations {
    /// The turn of Playbook `namespace/playbook`: waits for it.
    pub async fn turn(&self, namespace: &str, playbook: &str) -> Turn {
        let slot = {
            // A poisoned map is still a map: the lock only guards inserting.
            let mut map = self.playbooks.lock().unwrap_or_else(|p| p.into_inner());
            map.entry((namespace.to_string(), playbook.to_string()))
                .or_default()
                .clone()
        };
        Turn {
            pending: slot.lock_owned().await,
        }
    }

    /// When `input`'s run may claim a remediation: waits for its playbook's turn and
    /// fills `input.remediations` with every claim of that playbook's runs, pruned
    /// ones included.
    pub async fn count(
        &self,
        input: &mut PlanInput,
        executions: &Store<DeserializeGuard<Execution>>,
        playbooks: &Store<DeserializeGuard<Playbook>>,
    ) -> Option<Turn> {
        let limit = limits::limit_of(&input.status, input.playbook.as_ref())?.clone();
        if !limits::may_claim(&input.status, input.playbook.as_ref()) {
            return None;
        }
        let ns = input.execution.namespace.clone();
        let playbook = input.spec.playbook_ref.name.clone();
        let mut turn = self.turn(&ns, &playbook).await;
        let unseen = &mut *turn.pending;
        // Read after the turn is ours: a run that claimed before us (or a pruned
        // one) is in the caches or in `unseen` by now.
        let runs = executions.state();
        let runs: Vec<&Execution> = runs.iter().filter_map(|e| e.0.as_ref().ok()).collect();
        let cached = limits::recorded(runs.iter().copied(), &ns, &playbook);
        limits::still_pending(&mut unseen.claims, &cached, |uid| {
            runs.iter().any(|e| e.uid().as_deref() == Some(uid))
        });
        let ledger = playbooks
            .get(&ObjectRef::new(&playbook).within(&ns))
            .and_then(|pb| {
                let pb = pb.0.as_ref().ok()?;
                Some(ledger_claims(&pb.status.as_ref()?.remediation_claims))
            })
            .unwrap_or_default();
        let now = Timestamp::now().as_second();
        limits::still_ledgered(&mut unseen.ledgered, &ledger, &limit, now);
        input.remediations = cached
            .into_iter()
            .chain(ledger)
            .chain(unseen.claims.iter().cloned())
            .chain(unseen.ledgered.iter().cloned())
            .collect();
        Some(turn)
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
            self.pending.claims.retain(|c| &c.uid != uid);
            self.pending.claims.push(claim);
        }
    }

    /// Keeps the claims just written to the Playbook's ledger, until its cache shows them.
    pub fn ledgered(&mut self, claims: Vec<Claim>) {
        self.pending.ledgered.extend(claims);
    }
}
