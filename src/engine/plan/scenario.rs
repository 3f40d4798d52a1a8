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
    Approval, ApprovalRecord, Decision, ExecutionPhase, ExecutionSpec, ForEach, LocalRef,
    OutputParser, Param, Phase, PlaybookLimits, PlaybookSpec, PlaybookStep, RemediationLimit,
    Retries, RunnerSpec, Step, StepStatus,
};
use crate::engine::limits::Claim;

/// Builds one entry of `spec.steps` (or of a block).
#[derive(Clone, Debug)]
pub struct S(pub PlaybookStep);

pub fn step(id: &str) -> S {
    S(PlaybookStep {
        step: Step {
            id: id.into(),
            image: format!("example.com/{id}:1"),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// A block entry (a `when` group or, with `foreach`, a loop over several steps).
pub fn block(id: &str, steps: Vec<S>) -> S {
    let mut b = step(id);
    b.0.step.image.clear();
    b.0.steps = Some(steps.into_iter().map(|s| s.0.step).collect());
    b
}

impl S {
    fn fe(mut self, f: impl FnOnce(&mut ForEach)) -> Self {
        f(self.0.foreach.get_or_insert_with(Default::default));
        self
    }
    pub fn when(mut self, w: &str) -> Self {
        self.0.step.when = Some(w.into());
        self
    }
    pub fn after(mut self, deps: &[&str]) -> Self {
        self.0.step.depends_on = Some(deps.iter().map(|d| d.to_string()).collect());
        self
    }
    pub fn retries(mut self, limit: u32, backoff_seconds: u32) -> Self {
        self.0.step.retries = Some(Retries {
            limit,
            backoff_seconds,
        });
        self
    }
    pub fn timeout(mut self, seconds: i64) -> Self {
        self.0.step.timeout_seconds = Some(seconds);
        self
    }
    pub fn continue_on_error(mut self) -> Self {
        self.0.step.continue_on_error = true;
        self
    }
    pub fn approval(self) -> Self {
        self.approval_with(|_| {})
    }
    /// A required approval, configured further by `f`.
    pub fn approval_with(mut self, f: impl FnOnce(&mut Approval)) -> Self {
        let mut approval = Approval {
            required: true,
            ..Default::default()
        };
        f(&mut approval);
        self.0.step.approval = Some(approval);
        self
    }
    pub fn runner(mut self, name: &str) -> Self {
        self.0.step.runner = Some(name.into());
        self
    }
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.0.step.env.insert(name.into(), value.into());
        self
    }
    pub fn parser(mut self, name: &str) -> Self {
        self.0.step.output_parser = Some(OutputParser {
            name: name.into(),
            ..Default::default()
        });
        self
    }
    pub fn phase(mut self, phase: Phase) -> Self {
        self.0.step.phase = phase;
        self
    }
    pub fn foreach_path(self, path: &str) -> Self {
        self.fe(|f| f.path = Some(path.into()))
    }
    pub fn foreach_range(self, from: i64, to: i64) -> Self {
        self.fe(|f| f.range = Some(vec![from, to]))
    }
    pub fn foreach_items(self, items: Vec<Value>) -> Self {
        self.fe(|f| f.items = Some(items))
    }
    pub fn break_when(self, t: &str) -> Self {
        self.fe(|f| f.break_when = Some(t.into()))
    }
    pub fn item_when(self, t: &str) -> Self {
        self.fe(|f| f.when = Some(t.into()))
    }
    pub fn parallel(self, n: u32) -> Self {
        self.fe(|f| f.parallelism = Some(n))
    }
}

pub const T0: i64 = 1_700_000_000;

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
        self.plan_and(true)
    }

    /// Plans and creates the ConfigMaps asked for, but dies before writing status
    /// (the controller's order: ConfigMaps, status, Jobs, Events).
    pub fn plan_and_crash(&mut self) -> &Plan {
        self.plan_and(false)
    }

    fn plan_and(&mut self, apply: bool) -> &Plan {
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
        if !apply {
            self.last = Some(plan);
            return self.last.as_ref().expect("just set");
        }
        self.input.status = plan.status.clone();
        self.read_spilled();
        for intent in &plan.intents {
            match intent {
                Intent::CreateJob(job) => {
                    let name = job.metadata.name.clone().unwrap_or_default();
                    assert!(
                        !self.input.jobs.contains_key(&name),
                        "CreateJob {name} while it is observed"
                    );
                    // As a cluster shows it once its pod runs.
                    let observed = ObservedJob {
                        uid: Some(format!("uid-{name}")),
                        pod: Some(super::health::PodFacts {
                            name: format!("{name}-pod"),
                            phase: "Running".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    self.input.jobs.insert(name.clone(), observed);
                    self.created.push(name.clone());
                    self.jobs.insert(name, (**job).clone());
                }
                Intent::DeleteJob { name } => {
                    self.input.jobs.remove(name);
                }
                Intent::CreateConfigMap(_) | Intent::Event { .. } => {}
            }
        }
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

    /// Forgets a step's Job, as if the controller crashed before creating it.
    pub fn lose_job(&mut self, id: &str) {
        let name = self.status_of(id).job_name.unwrap_or_default();
        self.input.jobs.remove(&name);
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

#[derive(Debug)]
pub enum Act {
    Plan,
    /// Ends a step's current container: id, exit code, log.
    Exit(&'static str, i32, &'static str),
    Wait(i64),
    /// A user approves the plan a step instance shows now.
    Approve(&'static str, &'static str),
    /// step, user, group: like `Approve`, by a member of that group.
    ApproveInGroup(&'static str, &'static str, &'static str),
    /// record step, user, instance: an approval for `step` naming the plan that
    /// `instance` shows now (another foreach item's, say).
    ApprovePlanOf(&'static str, &'static str, &'static str),
    /// step, user, reason.
    Reject(&'static str, &'static str, &'static str),
    /// The env var of the plan a waiting step shows has this value.
    PlanEnv(&'static str, &'static str, &'static str),
    /// The two step instances show different plan hashes.
    PlansDiffer(&'static str, &'static str),
    Cancel,
    /// The step's Job vanishes (the controller died before creating it).
    Lose(&'static str),
    /// Someone deletes the step's Job (and so its pod).
    DeleteJob(&'static str),
    /// Someone deletes the step's Job and creates another under its name.
    ReplaceJob(&'static str),
    /// The step container waits: id, reason, the kubelet's message.
    Waits(&'static str, &'static str, &'static str),
    /// The kernel kills the step container at its memory limit (`None`: it had none).
    Oom(&'static str, Option<&'static str>),
    /// The API server refused to create the step's Job: id, its reason.
    Refused(&'static str, &'static str),
    /// A `DeadlineExceeded` Failed condition on the step's Job.
    JobDeadline(&'static str),
    States(&'static str),
    PhaseIs(ExecutionPhase),
    Events(&'static [&'static str]),
    Creates(usize),
    Deletes(usize),
    Requeue(Option<u64>),
    /// A step's message contains this.
    Msg(&'static str, &'static str),
    /// The Execution's message contains this.
    RunMsg(&'static str),
    Attempt(&'static str, u32),
    /// The last plan created exactly the step's current Job again.
    Recreated(&'static str),
    Severity(Option<&'static str>),
    Truncated(&'static str),
    /// The env var of the step's current Job has this value.
    Env(&'static str, &'static str, &'static str),
    /// Seconds between the step's `waitingSince` and its `startedAt`.
    Waited(&'static str, i64),
    /// Ends a step's image parser container: id, exit code, what it printed.
    ParserExit(&'static str, i32, &'static str),
    /// The step's parser Job vanishes (the controller died before creating it).
    LoseParser(&'static str),
    /// The last plan asked for this many ConfigMaps.
    ConfigMaps(usize),
    /// The ConfigMap of the step's parser run holds exactly this raw output.
    RawOutput(&'static str, &'static str),
    /// The step's outputs in status are this JSON.
    Output(&'static str, &'static str),
    /// Plans and creates the ConfigMaps asked for, then dies before the status write.
    PlanCrash,
    /// The step's output is not in status but in the ConfigMap its `outputsRef` names,
    /// which exists, holds that many bytes of JSON and is labelled with the role.
    Spilled(&'static str),
    /// Someone deletes the ConfigMap of the step's spilled output.
    LoseOutputs(&'static str),
    /// ConfigMaps in the pretend cluster, all plans together.
    ConfigMapsExist(usize),
    /// Another run of the playbook (uid) recorded a remediation for this key, this
    /// many seconds ago.
    Remediated(&'static str, &'static str, i64),
    /// `status.remediation`: the rendered key and whether the run counts yet (`None`:
    /// no record).
    Remediation(Option<(&'static str, bool)>),
}

pub struct Case {
    pub name: &'static str,
    pub scenario: Scenario,
    pub script: Vec<Act>,
}

impl Case {
    /// The playbook's `finally` steps.
    pub fn finally(mut self, steps: Vec<S>) -> Self {
        self.scenario = self.scenario.finally(steps);
        self
    }

    /// A param the playbook declares.
    pub fn declare(mut self, param: Param) -> Self {
        self.scenario = self.scenario.declare(param);
        self
    }
}

pub fn case(name: &'static str, steps: Vec<S>, script: Vec<Act>) -> Case {
    Case {
        name,
        scenario: Scenario::new(steps),
        script,
    }
}

fn run(case: Case) {
    use Act::*;
    let Case {
        name,
        mut scenario,
        script,
    } = case;
    let mut lost = false;
    for (n, act) in script.iter().enumerate() {
        let at = format!(
            "case '{name}', act {n} {act:?}\nstates: {}",
            scenario.states()
        );
        let s = &mut scenario;
        match *act {
            Plan => {
                s.plan();
            }
            PlanCrash => {
                s.plan_and_crash();
            }
            Spilled(id) => s.assert_spilled(id, &at),
            LoseOutputs(id) => {
                let r = s.status_of(id).outputs_ref;
                let name = r.map(|r| r.config_map_name).unwrap_or_default();
                s.config_maps.remove(&name);
                s.read_spilled();
            }
            ConfigMapsExist(count) => assert_eq!(s.config_maps.len(), count, "{at}"),
            Exit(id, code, log) => s.exit(id, code, log),
            Wait(seconds) => s.now += seconds,
            Approve(step, user) => s.approve(step, user),
            ApproveInGroup(step, user, group) => {
                let plan_hash = Some(s.plan_hash(step));
                s.decide(ApprovalRecord {
                    step: step.into(),
                    user: user.into(),
                    groups: vec![group.into()],
                    plan_hash,
                    ..Default::default()
                });
            }
            ApprovePlanOf(step, user, instance) => {
                let plan_hash = Some(s.plan_hash(instance));
                s.decide(ApprovalRecord {
                    step: step.into(),
                    user: user.into(),
                    plan_hash,
                    ..Default::default()
                });
            }
            Reject(step, user, reason) => s.decide(ApprovalRecord {
                step: step.into(),
                user: user.into(),
                decision: Decision::Reject,
                reason: Some(reason.into()),
                ..Default::default()
            }),
            PlanEnv(id, var, want) => {
                let plan = s.status_of(id).plan.unwrap_or_default();
                let got = plan.env.iter().find(|e| e.name == var);
                assert_eq!(got.and_then(|e| e.value.as_deref()), Some(want), "{at}");
            }
            PlansDiffer(a, b) => assert_ne!(s.plan_hash(a), s.plan_hash(b), "{at}"),
            Cancel => s.input.spec.cancel = true,
            Lose(id) => {
                lost = true;
                s.lose_job(id);
            }
            // Unlike `Lose`, the no-name-created-twice check stays on: that is the point.
            DeleteJob(id) => s.lose_job(id),
            ReplaceJob(id) => s.job_of(id).uid = Some("someone-else's".into()),
            Waits(id, reason, message) => {
                let job = s.job_of(id);
                if let Some(pod) = job.pod.as_mut() {
                    pod.phase = "Pending".into();
                    pod.waiting = Some(super::health::Waiting {
                        reason: reason.into(),
                        message: Some(message.into()),
                    });
                }
            }
            Oom(id, limit) => {
                let now = s.now;
                let job = s.job_of(id);
                job.memory_limit = limit.map(String::from);
                job.terminated = Some(Terminated {
                    exit_code: 137,
                    reason: Some("OOMKilled".into()),
                    finished_at: Timestamp::from_second(now).ok(),
                    ..Default::default()
                });
                job.log = StepLog::Read(String::new());
            }
            Refused(id, reason) => {
                let job = s.job_of(id);
                *job = ObservedJob {
                    refused: Some(reason.into()),
                    ..Default::default()
                };
            }
            JobDeadline(id) => {
                s.job_of(id).failed = Some(super::JobFailure {
                    reason: "DeadlineExceeded".into(),
                    message: "Job was active longer than specified deadline".into(),
                });
            }
            ParserExit(id, code, log) => s.exit_parser(id, code, log),
            LoseParser(id) => {
                lost = true;
                let name = s.parser_job(id);
                s.input.jobs.remove(&name);
            }
            ConfigMaps(count) => assert_eq!(s.config_map_creates().len(), count, "{at}"),
            RawOutput(id, want) => assert_eq!(s.raw_output(id), want, "{at}"),
            Output(id, want) => {
                let want: Value = serde_json::from_str(want).expect("Output takes JSON");
                assert_eq!(s.status_of(id).outputs, Some(want), "{at}");
            }
            Remediated(uid, key, ago) => s.input.remediations.push(Claim {
                uid: uid.into(),
                key: key.into(),
                at: s.now - ago,
            }),
            Remediation(want) => {
                let got = s.input.status.remediation.as_ref();
                let got = got.map(|r| (r.key.as_str(), r.at.is_some()));
                assert_eq!(got, want, "{at}");
            }
            States(want) => assert_eq!(s.states(), want, "{at}"),
            PhaseIs(phase) => assert_eq!(s.input.status.phase, phase, "{at}"),
            Events(want) => assert_eq!(s.events(), want, "{at}"),
            Creates(count) => assert_eq!(s.creates().len(), count, "{at}"),
            Deletes(count) => assert_eq!(s.deletes().len(), count, "{at}"),
            Requeue(secs) => {
                let got = s
                    .last
                    .as_ref()
                    .and_then(|p| p.requeue_after)
                    .map(|d| d.as_secs());
                assert_eq!(got, secs, "{at}");
            }
            Msg(id, want) => {
                let got = s.status_of(id).message.unwrap_or_default();
                assert!(got.contains(want), "{at}\nmessage: {got}");
            }
            RunMsg(want) => {
                let got = s.input.status.message.clone().unwrap_or_default();
                assert!(got.contains(want), "{at}\nmessage: {got}");
            }
            Attempt(id, attempt) => assert_eq!(s.status_of(id).attempt, attempt, "{at}"),
            Recreated(id) => assert_eq!(
                s.creates(),
                vec![s.status_of(id).job_name.unwrap_or_default()],
                "{at}"
            ),
            Severity(want) => assert_eq!(s.input.status.severity.as_deref(), want, "{at}"),
            Truncated(id) => assert!(s.status_of(id).outputs_truncated, "{at}"),
            Waited(id, want) => {
                let st = s.status_of(id);
                let since = st.waiting_since.map(|t| t.0.as_second());
                let started = st.started_at.map(|t| t.0.as_second());
                assert_eq!(started.zip(since).map(|(a, b)| a - b), Some(want), "{at}");
            }
            Env(id, var, want) => assert_eq!(
                s.job_env(id).get(var).map(String::as_str),
                Some(want),
                "{at}"
            ),
        }
    }
    if !lost {
        let mut names = scenario.created.clone();
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            scenario.created.len(),
            "case '{name}': a Job name was created twice"
        );
    }
}

/// Runs every case, reporting all failures at once.
pub fn run_all(cases: impl Iterator<Item = Case>) {
    let mut failures = Vec::new();
    for c in cases {
        let name = c.name;
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(c))) {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| format!("{name}: panicked"));
            failures.push(text);
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
