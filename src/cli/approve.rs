//! `playbook-operator approve|reject EXECUTION STEP [--reason]`: appends
//! `{step, user, groups, decision, reason, planHash, at}` to the Execution's
//! `spec.approvals` in the caller's name.
//!
//! The API server's admission policy (`crds/admission-policies.yaml`) is what makes
//! the record trustworthy; this command only makes it pleasant: it learns who the
//! caller is, checks up front that the step waits and that the caller is not the
//! requester approving their own run (which the policy refuses and the operator
//! ignores), copies the plan hash of each waiting instance from status
//! (an approval counts only for that rendered Job), and appends with a JSON patch
//! pinned to the resourceVersion it read, so two approvals at once never overwrite
//! each other.

use std::process::ExitCode;

use anyhow::anyhow;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::cluster::{self, api_error};
use crate::api::{ApprovalRecord, Decision, Execution, StepState};
use crate::engine::context::InstanceId;

/// Tries of the read-check-write cycle when other writers keep changing the Execution.
const ATTEMPTS: usize = 5;

/// Which step of which Execution.
#[derive(clap::Args, Debug)]
pub struct Target {
    /// The Execution (`kubectl get pbx` lists them).
    pub execution: String,
    /// The step: its id (for a loop, every waiting item), `block.step`, or one item (`step[2]`).
    pub step: String,
    /// Namespace of the Execution (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
}

/// Arguments of `approve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Why, for the record (shown by `describe`).
    #[arg(long)]
    pub reason: Option<String>,
}

/// Arguments of `reject`.
#[derive(clap::Args, Debug)]
pub struct RejectArgs {
    #[command(flatten)]
    pub target: Target,
    /// Why the step must not run: it becomes the step's failure message.
    #[arg(long, required = true)]
    pub reason: String,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let reason = args.reason.as_deref();
    cluster::block_on(decide(&args.target, Decision::Approve, reason))
}

pub fn run_reject(args: &RejectArgs) -> anyhow::Result<ExitCode> {
    if args.reason.trim().is_empty() {
        return Err(anyhow!(
            "--reason is empty: say why the step must not run (it becomes the step's failure message)"
        ));
    }
    cluster::block_on(decide(&args.target, Decision::Reject, Some(&args.reason)))
}

async fn decide(
    target: &Target,
    decision: Decision,
    reason: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let session = cluster::connect(target.namespace.as_deref()).await?;
    let (name, step, ns) = (&target.execution, &target.step, &session.namespace);
    let verb = match decision {
        Decision::Approve => "approved",
        Decision::Reject => "rejected",
    };
    let asked = Asked {
        step,
        decision,
        reason,
        plan: None,
        requester: Requester::RefuseUpFront,
    };
    match write(&session, name, &asked).await? {
        Written::AlreadyApproved { user } => println!(
            "you ('{user}') already approved step '{step}' of Execution '{name}' as it is planned now; \
             the operator starts it once enough approvers agree"
        ),
        Written::Records { user, steps } => {
            let steps: Vec<String> = steps
                .iter()
                .map(|(id, hash)| format!("{id} (plan {hash})"))
                .collect();
            let why = reason.map_or(String::new(), |r| format!(": {r}"));
            println!(
                "{verb} step {} of Execution {name} in namespace {ns} as '{user}'{why}",
                steps.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One decision a person asks to record.
#[derive(Clone, Copy, Debug)]
pub struct Asked<'a> {
    /// As [`Target::step`]: an id (every waiting item of a loop), `block.step` or `step[2]`.
    pub step: &'a str,
    pub decision: Decision,
    pub reason: Option<&'a str>,
    /// The plan hash the person looked at (the page's form): nothing is written when
    /// the step's plan is another one now. `None`: the current plan (the CLI).
    pub plan: Option<&'a str>,
    pub requester: Requester,
}

/// Who says no to the requester's own approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requester {
    /// This process, before writing (the CLI: its message says what to run instead,
    /// and holds where the admission policies are not installed).
    RefuseUpFront,
    /// The API server's admission policy (the page: it shows the API server's own
    /// answer, exactly what `kubectl` would get).
    LeaveToApiServer,
}

/// What [`write`] recorded.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// One record per waiting instance: `(status.steps[].id, plan hash)`, as `user`.
    Records {
        user: String,
        steps: Vec<(String, String)>,
    },
    /// `user`'s approval of each covered instance's current plan is already there.
    AlreadyApproved { user: String },
}

/// Records `asked` on Execution `name` with `session`'s client, in the name the API
/// server gives its credentials (a SelfSubjectReview): the one write of an approval,
/// shared by `approve`/`reject` and the execution page (which passes a client holding
/// the signed-in person's own token). Read, check, then a JSON patch pinned to the
/// resourceVersion read, again on a conflict.
pub async fn write(
    session: &cluster::Session,
    name: &str,
    asked: &Asked<'_>,
) -> anyhow::Result<Written> {
    let (user, groups) = cluster::identity(&session.client).await?;
    let api: Api<Execution> = Api::namespaced(session.client.clone(), &session.namespace);
    for _ in 0..ATTEMPTS {
        let exec = cluster::execution(session, name).await?;
        let waiting = match check(&exec, asked.step, &user, asked.decision, asked.requester)
            .map_err(anyhow::Error::msg)?
        {
            Verdict::Write(waiting) => waiting,
            Verdict::AlreadyApproved => return Ok(Written::AlreadyApproved { user }),
        };
        if let Some(shown) = asked.plan {
            still_planned(&waiting, shown).map_err(anyhow::Error::msg)?;
        }
        let at = Time(Timestamp::now());
        let records: Vec<ApprovalRecord> = waiting
            .iter()
            .map(|(id, hash)| ApprovalRecord {
                step: id.clone(),
                user: user.clone(),
                groups: groups.clone(),
                decision: asked.decision,
                reason: asked.reason.map(str::to_string),
                plan_hash: Some(hash.clone()),
                at: Some(at.clone()),
            })
            .collect();
        let rv = exec.resource_version().ok_or_else(|| {
            anyhow!(
                "the API server returned Execution '{}' without a resourceVersion",
                exec.name_any()
            )
        })?;
        let patch =
            serde_json::from_value(approval_patch(&rv, exec.spec.approvals.len(), &records))
                .map_err(|e| anyhow!("building the approval patch: {e}"))?;
        match api
            .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => {
                return Ok(Written::Records {
                    user,
                    steps: waiting,
                });
            }
            // Someone else wrote the Execution since we read it: read it again, so
            // their approval stays and ours is checked against the new state.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(api_error(e, "writing the approval")),
        }
    }
    Err(anyhow!(
        "Execution '{name}' kept changing while writing the approval ({ATTEMPTS} tries): try again"
    ))
}

/// What to do about an approval request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write one record per waiting instance covered: `(status.steps[].id, plan hash)`.
    Write(Vec<(String, String)>),
    /// The caller's approval of each covered instance's current plan is already there.
    AlreadyApproved,
}

/// Whether `user` may usefully record `decision` on `step` of `exec` now; the error
/// says why not and what to do instead.
pub fn check(
    exec: &Execution,
    step: &str,
    user: &str,
    decision: Decision,
    requester: Requester,
) -> Result<Verdict, String> {
    let name = exec.name_any();
    let ns = exec.meta().namespace.clone().unwrap_or_default();
    let steps = exec
        .status
        .as_ref()
        .map(|s| s.steps.as_slice())
        .unwrap_or_default();
    let waiting: Vec<_> = steps
        .iter()
        .filter(|s| s.state == StepState::WaitingApproval)
        .collect();
    let covered: Vec<(String, String)> = waiting
        .iter()
        .filter(|s| InstanceId::parse(&s.id).is_some_and(|iid| iid.approved_by(step)))
        .map(|s| {
            let hash = s.plan.as_ref().map(|p| p.hash.clone()).unwrap_or_default();
            (s.id.clone(), hash)
        })
        .collect();
    if covered.is_empty() {
        let ids: Vec<&str> = waiting.iter().map(|s| s.id.as_str()).collect();
        return Err(not_waiting_message(&name, &ns, step, &ids));
    }
    if let Some((id, _)) = covered.iter().find(|(_, hash)| hash.is_empty()) {
        return Err(format!(
            "step '{id}' of Execution '{name}' shows no plan yet (the operator renders it \
             while the step waits): wait a moment and run the command again"
        ));
    }
    if decision == Decision::Reject {
        return Ok(Verdict::Write(covered));
    }
    let requested_by = exec.spec.requested_by.as_deref().map(str::trim);
    if requester == Requester::RefuseUpFront && requested_by == Some(user) {
        return Err(format!(
            "you ('{user}') requested Execution '{name}', so your approval does not count: \
             the operator ignores approvals by the requester (four eyes), and the API \
             server's admission policy refuses them. Ask someone else to run: playbook-operator approve {name} {step} -n {ns}"
        ));
    }
    let mine = |id: &str, hash: &str| {
        exec.spec.approvals.iter().any(|a| {
            a.step == id
                && a.user == user
                && a.decision == Decision::Approve
                && a.plan_hash.as_deref() == Some(hash)
        })
    };
    let missing: Vec<(String, String)> = covered
        .into_iter()
        .filter(|(id, hash)| !mine(id, hash))
        .collect();
    if missing.is_empty() {
        return Ok(Verdict::AlreadyApproved);
    }
    Ok(Verdict::Write(missing))
}

/// Whether every instance about to be decided still shows plan `shown` (the hash the
/// person saw); otherwise what changed and what to do.
pub fn still_planned(waiting: &[(String, String)], shown: &str) -> Result<(), String> {
    match waiting.iter().find(|(_, hash)| hash != shown) {
        None => Ok(()),
        Some((id, now)) => Err(format!(
            "the plan of step '{id}' changed since you looked at it (hash {shown}, now {now}): \
             read the new plan, then decide again"
        )),
    }
}

/// Why `step` cannot be approved: which steps do wait, or that none does.
pub fn not_waiting_message(execution: &str, ns: &str, step: &str, waiting: &[&str]) -> String {
    match waiting {
        [] => format!(
            "no step of Execution '{execution}' is waiting for approval \
             (`playbook-operator describe {execution} -n {ns}` shows its phase and steps)"
        ),
        [one] => format!(
            "step '{step}' of Execution '{execution}' is not waiting for approval; \
             '{one}' is: playbook-operator approve {execution} {one} -n {ns}"
        ),
        many => format!(
            "step '{step}' of Execution '{execution}' is not waiting for approval; these are: {}",
            many.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A JSON patch appending `records` to `spec.approvals` (which holds `existing`
/// entries). Only the new entries are sent: resending the old ones could change how
/// their `at` is written, which the admission policy would rightly call an edit. The
/// resourceVersion it was read at rides along, so the API server refuses the patch
/// (409 Conflict) if anyone wrote the Execution since: no approval is lost or doubled.
pub fn approval_patch(
    resource_version: &str,
    existing: usize,
    records: &[ApprovalRecord],
) -> Value {
    let mut ops = vec![
        json!({"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}),
    ];
    for (n, record) in records.iter().enumerate() {
        ops.push(if existing + n == 0 {
            json!({"op": "add", "path": "/spec/approvals", "value": [record]})
        } else {
            json!({"op": "add", "path": "/spec/approvals/-", "value": record})
        });
    }
    Value::Array(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ExecutionSpec, ExecutionStatus, LocalRef, StepPlan, StepStatus};
    use pretty_assertions::assert_eq;

    /// An Execution requested by `requested_by`; a waiting step's plan hash is
    /// `h-` and its id; approvals are `(step, user, plan hash)`.
    fn exec(
        requested_by: &str,
        steps: &[(&str, StepState)],
        approvals: &[(&str, &str, &str)],
    ) -> Execution {
        let mut e = Execution::new(
            "run-1",
            ExecutionSpec {
                playbook_ref: LocalRef { name: "pb".into() },
                requested_by: Some(requested_by.into()),
                approvals: approvals
                    .iter()
                    .map(|(step, user, hash)| ApprovalRecord {
                        step: step.to_string(),
                        user: user.to_string(),
                        plan_hash: Some(hash.to_string()),
                        ..ApprovalRecord::default()
                    })
                    .collect(),
                ..ExecutionSpec::default()
            },
        );
        e.metadata.namespace = Some("ops".into());
        e.status = Some(ExecutionStatus {
            steps: steps
                .iter()
                .map(|(id, state)| StepStatus {
                    id: id.to_string(),
                    state: *state,
                    plan: (*state == StepState::WaitingApproval).then(|| {
                        Box::new(StepPlan {
                            hash: format!("h-{id}"),
                            ..StepPlan::default()
                        })
                    }),
                    ..StepStatus::default()
                })
                .collect(),
            ..ExecutionStatus::default()
        });
        e
    }

    fn write(pairs: &[(&str, &str)]) -> Result<Verdict, String> {
        Ok(Verdict::Write(
            pairs
                .iter()
                .map(|(id, h)| (id.to_string(), h.to_string()))
                .collect(),
        ))
    }

    const APPROVE: Decision = Decision::Approve;
    const REJECT: Decision = Decision::Reject;
    const UP_FRONT: Requester = Requester::RefuseUpFront;

    #[test]
    fn a_waiting_step_by_someone_else_is_approved_with_its_plan_hash() {
        let e = exec(
            "alice",
            &[
                ("a", StepState::Succeeded),
                ("b", StepState::WaitingApproval),
            ],
            &[],
        );
        assert_eq!(
            check(&e, "b", "bob", APPROVE, UP_FRONT),
            write(&[("b", "h-b")])
        );
    }

    #[test]
    fn a_step_id_covers_every_waiting_item_each_with_its_own_plan() {
        let e = exec(
            "alice",
            &[
                ("r[0]", StepState::WaitingApproval),
                ("r[1]", StepState::WaitingApproval),
            ],
            &[],
        );
        assert_eq!(
            check(&e, "r", "bob", APPROVE, UP_FRONT),
            write(&[("r[0]", "h-r[0]"), ("r[1]", "h-r[1]")])
        );
        assert_eq!(
            check(&e, "r[1]", "bob", APPROVE, UP_FRONT),
            write(&[("r[1]", "h-r[1]")])
        );
    }

    #[test]
    fn the_requester_is_refused_up_front_but_may_reject() {
        let e = exec("alice", &[("b", StepState::WaitingApproval)], &[]);
        let err = check(&e, "b", "alice", APPROVE, UP_FRONT).unwrap_err();
        assert!(
            err.contains("you ('alice') requested Execution 'run-1'"),
            "{err}"
        );
        assert!(
            err.contains("operator ignores approvals by the requester"),
            "{err}"
        );
        assert!(
            err.contains("playbook-operator approve run-1 b -n ops"),
            "{err}"
        );
        assert_eq!(
            check(&e, "b", "alice", REJECT, UP_FRONT),
            write(&[("b", "h-b")])
        );
        // The page leaves the refusal to the API server, which says it itself.
        assert_eq!(
            check(&e, "b", "alice", APPROVE, Requester::LeaveToApiServer),
            write(&[("b", "h-b")])
        );
    }

    #[test]
    fn a_second_approval_of_the_same_plan_is_not_written_but_of_a_new_plan_is() {
        let e = exec(
            "alice",
            &[("b", StepState::WaitingApproval)],
            &[("b", "bob", "h-b")],
        );
        assert_eq!(
            check(&e, "b", "bob", APPROVE, UP_FRONT),
            Ok(Verdict::AlreadyApproved)
        );
        let e = exec(
            "alice",
            &[("b", StepState::WaitingApproval)],
            &[("b", "bob", "old")],
        );
        assert_eq!(
            check(&e, "b", "bob", APPROVE, UP_FRONT),
            write(&[("b", "h-b")])
        );
    }

    #[test]
    fn a_decision_is_written_only_for_the_plan_the_person_saw() {
        let one = |id: &str, h: &str| vec![(id.to_string(), h.to_string())];
        assert_eq!(still_planned(&one("b", "h1"), "h1"), Ok(()));
        assert_eq!(
            still_planned(&one("b", "h2"), "h1"),
            Err(
                "the plan of step 'b' changed since you looked at it (hash h1, now h2): \
                 read the new plan, then decide again"
                    .to_string()
            )
        );
        let two = [one("r[0]", "h1"), one("r[1]", "h2")].concat();
        assert!(still_planned(&two, "h1").unwrap_err().contains("'r[1]'"));
    }

    #[test]
    fn a_step_not_waiting_names_the_ones_that_are() {
        let e = exec(
            "alice",
            &[("a", StepState::Running), ("b", StepState::WaitingApproval)],
            &[],
        );
        assert_eq!(
            check(&e, "a", "bob", REJECT, UP_FRONT).unwrap_err(),
            "step 'a' of Execution 'run-1' is not waiting for approval; 'b' is: \
             playbook-operator approve run-1 b -n ops"
        );
        assert_eq!(
            not_waiting_message("run-1", "ops", "x", &["b", "c[0]"]),
            "step 'x' of Execution 'run-1' is not waiting for approval; these are: 'b', 'c[0]'"
        );
        let none = exec("alice", &[("a", StepState::Running)], &[]);
        assert!(
            check(&none, "a", "bob", APPROVE, UP_FRONT)
                .unwrap_err()
                .starts_with("no step of Execution 'run-1' is waiting for approval"),
        );
    }

    #[test]
    fn the_patch_appends_only_the_new_entries_at_the_version_read() {
        let new = |step: &str| ApprovalRecord {
            step: step.into(),
            user: "bob".into(),
            plan_hash: Some("h".into()),
            ..ApprovalRecord::default()
        };
        let rv = json!({"op": "replace", "path": "/metadata/resourceVersion", "value": "42"});
        let entry = |step: &str| json!({"step": step, "user": "bob", "decision": "approve", "planHash": "h"});
        assert_eq!(
            approval_patch("42", 0, &[new("b"), new("c")]),
            json!([rv,
                {"op": "add", "path": "/spec/approvals", "value": [entry("b")]},
                {"op": "add", "path": "/spec/approvals/-", "value": entry("c")}])
        );
        assert_eq!(
            approval_patch("42", 3, &[new("b")]),
            json!([rv, {"op": "add", "path": "/spec/approvals/-", "value": entry("b")}])
        );
    }
}
