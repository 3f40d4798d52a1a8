//! Scenarios as table rows: a [`Case`] is a playbook and a script of [`Act`]s (what
//! happens in the pretend cluster, and what the planner must then have decided);
//! [`run_all`] runs a table and reports every failing case at once.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use pretty_assertions::assert_eq;

use super::super::{JobFailure, ObservedJob, StepLog, Terminated};
use super::{S, Scenario};
use crate::api::{ApprovalRecord, Decision, ExecutionPhase, Param};
use crate::engine::limits::Claim;

#[derive(Debug)]
pub enum Act {
    Plan,
    /// Ends a step's current container: id, exit code, log.
    Exit(&'static str, i32, &'static str),
    /// Ends a step's current container with exit code 0, having written this
    /// termination message; its log is never read.
    Hands(&'static str, &'static str),
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
            Hands(id, message) => {
                s.exit(id, 0, "");
                let job = s.job_of(id);
                job.log = StepLog::NotRead;
                if let Some(t) = job.terminated.as_mut() {
                    t.message = Some(message.into());
                }
            }
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
            DeleteJob(id) => s.delete_job(id),
            ReplaceJob(id) => s.job_of(id).uid = Some("someone-else's".into()),
            Waits(id, reason, message) => {
                let job = s.job_of(id);
                if let Some(pod) = job.pod.as_mut() {
                    pod.phase = "Pending".into();
                    pod.waiting = Some(super::super::health::Waiting {
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
                s.job_of(id).failed = Some(JobFailure {
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
