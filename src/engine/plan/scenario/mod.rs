//! Test helper: a playbook, a pretend cluster and a clock, so planner tests read
//! as stories ("a runs, exits 1, is retried after 10 s") instead of as structs.
//!
//! The pretend cluster does what the controller and API server would: it stores
//! each plan's status, creates the ConfigMaps and Jobs asked for (Jobs observed at
//! once, running), removes deleted ones, and lets a test end a step's container (or
//! its image parser's) with a code and log.
//! [`Case`] and [`Act`] turn such stories into table rows; [`run_all`] runs a table.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use pretty_assertions::assert_eq;

use super::{ExecutionRef, Intent, ObservedJob, Plan, PlanInput, StepLog, Terminated, plan};
use crate::api::{
    ApprovalRecord, ExecutionSpec, LocalRef, Param, PlaybookLimits, PlaybookSpec, RemediationLimit,
    RunnerSpec, StepStatus,
};

mod builder;
mod script;

pub use builder::{S, block, step};
pub use script::{Act, Case, case, run_all};

pub const T0: i64 = 1_700_000_000;

/// How far a plan is applied before the pretend controller stops.
#[derive(Clone, Copy, PartialEq)]
enum Upto {
    ConfigMaps,
    Jobs,
    Status,
}

pub struct Scenario {
    pub input: PlanInput,
    pub now: i64,
    pub last: Option<Plan>,
    /// Every Job name ever created, in order.
    pub created: Vec<String>,
    /// The last Job created for each name, to look inside.
    pub jobs: BTreeMap<String, Job>,
    /// The ConfigMaps created, by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
}

impl Scenario {
    pub fn new(steps: Vec<S>) -> Self {
        let playbook = PlaybookSpec {
            steps: steps.into_iter().map(|s| s.0).collect(),
            ..Default::default()
        };
        let input = PlanInput {
            execution: ExecutionRef {
                name: "run-1".into(),
                namespace: "prod".into(),
                uid: "uid-1".into(),
                generation: Some(1),
                url: None,
            },
            spec: ExecutionSpec {
                playbook_ref: LocalRef { name: "pb".into() },
                requested_by: Some("alice".into()),
                ..Default::default()
            },
            playbook: Some(playbook),
            ..Default::default()
        };
        Self {
            input,
            now: T0,
            last: None,
            created: vec![],
            jobs: BTreeMap::new(),
            config_maps: BTreeMap::new(),
        }
    }

    pub fn with(mut self, f: impl FnOnce(&mut PlanInput)) -> Self {
        f(&mut self.input);
        self
    }

    /// The playbook's `finally` steps.
    pub fn finally(self, steps: Vec<S>) -> Self {
        self.with(|i| {
            if let Some(pb) = i.playbook.as_mut() {
                pb.finally = steps.into_iter().map(|s| s.0).collect();
            }
        })
    }

    pub fn runner(self, name: &str) -> Self {
        self.with(|i| {
            i.runners.insert(name.into(), RunnerSpec::default());
        })
    }

    /// The playbook's `limits.remediations`, and the alert its key reads.
    pub fn limit(self, max: u32, per_seconds: u64, key: &str, alert: Value) -> Self {
        let remediations = RemediationLimit {
            max,
            per_seconds,
            key: key.into(),
        };
        self.with(|i| {
            i.spec.alert = Some(alert);
            if let Some(pb) = i.playbook.as_mut() {
                pb.limits = Some(PlaybookLimits {
                    remediations: Some(remediations),
                });
            }
        })
    }

    pub fn declare(self, param: Param) -> Self {
        self.with(|i| {
            i.playbook
                .iter_mut()
                .for_each(|p| p.params.push(param.clone()))
        })
    }

    /// Plans, checks the planner's promises, and applies the plan like the controller.
    pub fn plan(&mut self) -> &Plan {
        self.plan_and(Upto::Status)
    }

    /// Plans and creates the ConfigMaps asked for, but dies before creating Jobs and
    /// writing status (the controller's order: ConfigMaps, Jobs, status, Events).
    pub fn plan_and_crash(&mut self) -> &Plan {
        self.plan_and(Upto::ConfigMaps)
    }

    /// Plans and creates the ConfigMaps and Jobs asked for, but dies before writing
    /// status.
    pub fn plan_and_crash_after_jobs(&mut self) -> &Plan {
        self.plan_and(Upto::Jobs)
    }

    fn plan_and(&mut self, upto: Upto) -> &Plan {
        let now = Timestamp::from_second(self.now).unwrap_or(Timestamp::UNIX_EPOCH);
        let plan = plan(&self.input, now);
        assert_eq!(plan, super::plan(&self.input, now), "same input, same plan");
        for intent in &plan.intents {
            if let Intent::CreateConfigMap(cm) = intent {
                let name = cm.metadata.name.clone().unwrap_or_default();
                // A second create of one name gets 409 and is taken as ours: only
                // right if it is the same ConfigMap.
                if let Some(earlier) = self.config_maps.get(&name) {
                    assert_eq!(
                        earlier, &**cm,
                        "ConfigMap {name} asked for with other content"
                    );
                }
                self.config_maps.insert(name, (**cm).clone());
            }
        }
        if upto == Upto::ConfigMaps {
            self.last = Some(plan);
            return self.last.as_ref().expect("just set");
        }
        let mut plan = plan;
        for intent in &plan.intents.clone() {
            match intent {
                Intent::CreateJob(job) => {
                    let name = job.metadata.name.clone().unwrap_or_default();
                    let uid = format!("uid-{name}");
                    if let Some(seen) = self.input.jobs.get(&name) {
                        // 409, ours: only after a crash between creating the Job and
                        // writing the status that says its step runs.
                        let named = self
                            .input
                            .status
                            .steps
                            .iter()
                            .chain(&self.input.status.finally)
                            .any(|s| s.job_name.as_deref() == Some(name.as_str()));
                        assert!(!named, "CreateJob {name} while it is observed");
                        plan.created(&name, seen.uid.as_deref().unwrap_or_default());
                        continue;
                    }
                    // As a cluster shows it once its pod runs.
                    let observed = ObservedJob {
                        uid: Some(uid.clone()),
                        pod: Some(super::health::PodFacts {
                            name: format!("{name}-pod"),
                            phase: "Running".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    self.input.jobs.insert(name.clone(), observed);
                    self.created.push(name.clone());
                    self.jobs.insert(name.clone(), (**job).clone());
                    plan.created(&name, &uid);
                }
                Intent::DeleteJob { name } => {
                    self.input.jobs.remove(name);
                }
                Intent::CreateConfigMap(_) | Intent::Event { .. } => {}
            }
        }
        if upto == Upto::Jobs {
            self.last = Some(plan);
            return self.last.as_ref().expect("just set");
        }
        self.input.status = plan.status.clone();
        self.read_spilled();
        // One plan reaches what the next would (the controller skips the reconcile its
        // own status write causes, and a new Job's first sighting wakes nothing).
        let again = super::plan(&self.input, now);
        assert_eq!(
            again.status, self.input.status,
            "planned again, the status changed"
        );
        assert!(
            again
                .intents
                .iter()
                .all(|i| matches!(i, Intent::Event { .. })),
            "planned again: {:?}",
            again.intents
        );
        self.last = Some(plan);
        self.last.as_ref().expect("just set")
    }

    /// What the controller does before planning: reads the ConfigMaps status's
    /// `outputsRef`s name into `input.spilled` (absent: an error, as a 404 is).
    fn read_spilled(&mut self) {
        let refs = super::spilled_refs(&self.input.status);
        let read = refs.iter().map(|r| {
            let text = self
                .config_maps
                .get(&r.config_map_name)
                .and_then(|cm| cm.data.as_ref()?.get(&r.key).cloned());
            let value = match text {
                Some(t) => serde_json::from_str(&t)
                    .map(Arc::new)
                    .map_err(|e| e.to_string()),
                None => Err("not found".to_string()),
            };
            (r.config_map_name.clone(), value)
        });
        self.input.spilled = read.collect();
    }

    pub fn status_of(&self, id: &str) -> StepStatus {
        self.input
            .status
            .steps
            .iter()
            .chain(&self.input.status.finally)
            .find(|s| s.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("no step '{id}' in status"))
    }

    /// Ends the container of a step's current attempt.
    pub fn exit(&mut self, id: &str, code: i32, log: &str) {
        let name = self
            .status_of(id)
            .job_name
            .unwrap_or_else(|| panic!("step '{id}' has no Job"));
        self.end_job(name, code, log);
    }

    /// The container of Job `name` ends with `code`, having printed `log`.
    fn end_job(&mut self, name: String, code: i32, log: &str) {
        let job = self.input.jobs.entry(name).or_default();
        job.terminated = Some(Terminated {
            exit_code: code,
            reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
            finished_at: Timestamp::from_second(self.now).ok(),
            ..Default::default()
        });
        job.log = StepLog::Read(log.into());
    }

    /// Ends the container of a step's image parser Job.
    pub fn exit_parser(&mut self, id: &str, code: i32, log: &str) {
        let name = self.parser_job(id);
        self.end_job(name, code, log);
    }

    /// The name of a step's parser Job, as its status says.
    pub fn parser_job(&self, id: &str) -> String {
        let run = self.status_of(id).parser;
        run.unwrap_or_else(|| panic!("step '{id}' has no parser run"))
            .job_name
    }

    /// The raw output a step's parser reads, from the ConfigMap its status names.
    pub fn raw_output(&self, id: &str) -> String {
        let run = self.status_of(id).parser;
        let name = run
            .unwrap_or_else(|| panic!("step '{id}' has no parser run"))
            .config_map_name;
        let cm = self
            .config_maps
            .get(&name)
            .unwrap_or_else(|| panic!("no ConfigMap {name}"));
        let data = cm.data.clone().unwrap_or_default();
        data.get("output").cloned().unwrap_or_default()
    }

    /// Removes a step's Job from the cluster, as someone deleting it would.
    pub fn delete_job(&mut self, id: &str) {
        let name = self.status_of(id).job_name.unwrap_or_default();
        self.input.jobs.remove(&name);
    }

    /// Forgets a step's Job, as if the controller crashed before creating it, after
    /// writing a status that names it without its uid (a remediation claim's status
    /// goes first: `Plan::status_first`).
    pub fn lose_job(&mut self, id: &str) {
        let name = self.status_of(id).job_name.unwrap_or_default();
        self.input.jobs.remove(&name);
        let steps = self.input.status.steps.iter_mut();
        for s in steps.chain(&mut self.input.status.finally) {
            if s.job_name.as_deref() == Some(name.as_str()) {
                s.job_uid = None;
            }
        }
    }

    /// The observed Job of a step's current attempt, to change what it shows.
    pub fn job_of(&mut self, id: &str) -> &mut ObservedJob {
        let name = self.status_of(id).job_name.unwrap_or_default();
        self.input
            .jobs
            .get_mut(&name)
            .unwrap_or_else(|| panic!("step '{id}': Job {name} is not observed"))
    }

    /// The hash of the plan a step instance shows in status now.
    pub fn plan_hash(&self, id: &str) -> String {
        let plan = self.status_of(id).plan;
        plan.unwrap_or_else(|| panic!("step '{id}' shows no plan"))
            .hash
    }

    /// Records a decision as the admission policies would let it through.
    pub fn decide(&mut self, record: ApprovalRecord) {
        self.input.spec.approvals.push(record);
    }

    /// `user` approves the plan instance `id` shows now.
    pub fn approve(&mut self, id: &str, user: &str) {
        let plan_hash = Some(self.plan_hash(id));
        self.decide(ApprovalRecord {
            step: id.into(),
            user: user.into(),
            plan_hash,
            ..Default::default()
        });
    }

    /// `a=Running b=Pending`, in status order; then `| f=Running` for finally steps.
    pub fn states(&self) -> String {
        let list = |steps: &[StepStatus]| {
            steps
                .iter()
                .map(|s| format!("{}={:?}", s.id, s.state))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let status = &self.input.status;
        match status.finally.as_slice() {
            [] => list(&status.steps),
            finally => format!("{} | {}", list(&status.steps), list(finally)),
        }
    }

    fn intents(&self) -> &[Intent] {
        self.last.as_ref().map_or(&[], |p| p.intents.as_slice())
    }

    /// Reasons of the last plan's Events.
    pub fn events(&self) -> Vec<String> {
        let reasons = self.intents().iter().filter_map(|i| match i {
            Intent::Event { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        reasons.collect()
    }

    pub fn creates(&self) -> Vec<String> {
        let names = self.intents().iter().filter_map(|i| match i {
            Intent::CreateJob(job) => job.metadata.name.clone(),
            _ => None,
        });
        names.collect()
    }

    pub fn config_map_creates(&self) -> Vec<String> {
        let names = self.intents().iter().filter_map(|i| match i {
            Intent::CreateConfigMap(cm) => cm.metadata.name.clone(),
            _ => None,
        });
        names.collect()
    }

    pub fn deletes(&self) -> Vec<String> {
        let names = self.intents().iter().filter_map(|i| match i {
            Intent::DeleteJob { name } => Some(name.clone()),
            _ => None,
        });
        names.collect()
    }

    fn assert_spilled(&self, id: &str, at: &str) {
        let st = self.status_of(id);
        assert_eq!(st.outputs, None, "{at}: the output is not in status");
        let r = st
            .outputs_ref
            .unwrap_or_else(|| panic!("{at}: no outputsRef"));
        let cm = self
            .config_maps
            .get(&r.config_map_name)
            .unwrap_or_else(|| panic!("{at}: no ConfigMap {}", r.config_map_name));
        let labels = cm.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels
                .get(crate::engine::job::LABEL_ROLE)
                .map(String::as_str),
            Some(crate::engine::job::ROLE_OUTPUTS),
            "{at}"
        );
        assert_eq!(cm.immutable, Some(true), "{at}");
        let text = cm.data.as_ref().and_then(|d| d.get(&r.key)).cloned();
        let text = text.unwrap_or_default();
        assert_eq!(text.len() as u64, r.bytes, "{at}");
        assert_eq!(super::sha256_hex(&text), r.sha256, "{at}");
    }

    /// The env of the Job of a step's current attempt, name → value.
    pub fn job_env(&self, id: &str) -> BTreeMap<String, String> {
        let name = self.status_of(id).job_name.unwrap_or_default();
        let job = self
            .jobs
            .get(&name)
            .unwrap_or_else(|| panic!("no Job {name}"));
        let pod = job.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        let env = pod
            .and_then(|p| p.containers[0].env.clone())
            .unwrap_or_default();
        env.into_iter()
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect()
    }
}
