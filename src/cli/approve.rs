//! `playbook-operator approve EXECUTION STEP`: appends `{step, user, at}` to the
//! Execution's `spec.approvals` in the caller's name.
//!
//! The API server's admission policy (`crds/admission-policies.yaml`) is what makes
//! the approval trustworthy; this command only makes it pleasant: it learns who the
//! caller is, checks up front that the step waits and that the caller is not the
//! requester (whose approval the API server would accept and the operator ignore),
//! and appends with a JSON patch pinned to the resourceVersion it read, so two
//! approvals at once never overwrite each other.

use std::process::ExitCode;

use anyhow::anyhow;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::cluster::{self, api_error};
use crate::api::{ApprovalRecord, Execution, StepState};
use crate::engine::context::InstanceId;

/// Tries of the read-check-write cycle when other writers keep changing the Execution.
const ATTEMPTS: usize = 5;

/// Arguments of `approve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Execution (`kubectl get pbx` lists them).
    pub execution: String,
    /// The step: its id (for a loop, every item), `block.step`, or one item (`step[2]`).
    pub step: String,
    /// Namespace of the Execution (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    cluster::block_on(approve(args))
}

async fn approve(args: &Args) -> anyhow::Result<ExitCode> {
    let session = cluster::connect(args.namespace.as_deref()).await?;
    let user = cluster::whoami(&session.client).await?;
    let ns = &session.namespace;
    let api: Api<Execution> = Api::namespaced(session.client, ns);
    for _ in 0..ATTEMPTS {
        let exec = api
            .get_opt(&args.execution)
            .await
            .map_err(|e| api_error(e, &format!("reading Execution '{}'", args.execution)))?
            .ok_or_else(|| {
                anyhow!(
                    "no Execution '{}' in namespace '{ns}': `kubectl get pbx -n {ns}` lists them (or pass -n NAMESPACE)",
                    args.execution
                )
            })?;
        let waiting = match check(&exec, &args.step, &user).map_err(anyhow::Error::msg)? {
            Verdict::Approve(waiting) => waiting,
            Verdict::AlreadyApproved => {
                println!(
                    "you ('{user}') already approved step '{}' of Execution '{}'; the operator starts it shortly",
                    args.step, args.execution
                );
                return Ok(ExitCode::SUCCESS);
            }
        };
        let record = ApprovalRecord {
            step: args.step.clone(),
            user: user.clone(),
            at: Some(Time(Timestamp::now())),
        };
        let rv = exec.resource_version().ok_or_else(|| {
            anyhow!(
                "the API server returned Execution '{}' without a resourceVersion",
                exec.name_any()
            )
        })?;
        let patch = serde_json::from_value(approval_patch(&rv, exec.spec.approvals.len(), &record))
            .map_err(|e| anyhow!("building the approval patch: {e}"))?;
        match api
            .patch(
                &args.execution,
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
        {
            Ok(_) => {
                println!(
                    "approved step {} of Execution {} in namespace {ns} as '{user}'",
                    waiting.join(", "),
                    args.execution
                );
                return Ok(ExitCode::SUCCESS);
            }
            // Someone else wrote the Execution since we read it: read it again, so
            // their approval stays and ours is checked against the new state.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(api_error(e, "writing the approval")),
        }
    }
    Err(anyhow!(
        "Execution '{}' kept changing while writing the approval ({ATTEMPTS} tries): run the command again",
        args.execution
    ))
}

/// What to do about an approval request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it: it covers these waiting steps (`status.steps[].id`).
    Approve(Vec<String>),
    /// The caller's approval for this step is already in `spec.approvals`.
    AlreadyApproved,
}

/// Whether `user` may usefully approve `step` of `exec` now; the error says why not
/// and what to do instead.
pub fn check(exec: &Execution, step: &str, user: &str) -> Result<Verdict, String> {
    let name = exec.name_any();
    let ns = exec.meta().namespace.clone().unwrap_or_default();
    let steps = exec
        .status
        .as_ref()
        .map(|s| s.steps.as_slice())
        .unwrap_or_default();
    let waiting: Vec<&str> = steps
        .iter()
        .filter(|s| s.state == StepState::WaitingApproval)
        .map(|s| s.id.as_str())
        .collect();
    let covered: Vec<String> = waiting
        .iter()
        .filter(|id| InstanceId::parse(id).is_some_and(|iid| iid.approved_by(step)))
        .map(|id| id.to_string())
        .collect();
    if covered.is_empty() {
        return Err(not_waiting_message(&name, &ns, step, &waiting));
    }
    let requester = exec.spec.requested_by.as_deref().map(str::trim);
    if requester == Some(user) {
        return Err(format!(
            "you ('{user}') requested Execution '{name}', so your approval does not count: \
             the API server would accept it, but the operator ignores approvals by the \
             requester (four eyes). Ask someone else to run: playbook-operator approve {name} {step} -n {ns}"
        ));
    }
    if exec
        .spec
        .approvals
        .iter()
        .any(|a| a.step == step && a.user == user)
    {
        return Ok(Verdict::AlreadyApproved);
    }
    Ok(Verdict::Approve(covered))
}

/// Why `step` cannot be approved: which steps do wait, or that none does.
pub fn not_waiting_message(execution: &str, ns: &str, step: &str, waiting: &[&str]) -> String {
    match waiting {
        [] => format!(
            "no step of Execution '{execution}' is waiting for approval \
             (`kubectl get pbx {execution} -n {ns}` shows its phase and step)"
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

/// A JSON patch appending `record` to `spec.approvals` (which holds `existing`
/// entries). Only the new entry is sent: resending the old ones could change how
/// their `at` is written, which the admission policy would rightly call an edit. The
/// resourceVersion it was read at rides along, so the API server refuses the patch
/// (409 Conflict) if anyone wrote the Execution since: no approval is lost or doubled.
pub fn approval_patch(resource_version: &str, existing: usize, record: &ApprovalRecord) -> Value {
    let append = if existing == 0 {
        json!({"op": "add", "path": "/spec/approvals", "value": [record]})
    } else {
        json!({"op": "add", "path": "/spec/approvals/-", "value": record})
    };
    json!([
        {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version},
        append,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ExecutionSpec, ExecutionStatus, LocalRef, StepStatus};
    use pretty_assertions::assert_eq;

    fn exec(
        requested_by: &str,
        steps: &[(&str, StepState)],
        approvals: &[(&str, &str)],
    ) -> Execution {
        let mut e = Execution::new(
            "run-1",
            ExecutionSpec {
                playbook_ref: LocalRef { name: "pb".into() },
                requested_by: Some(requested_by.into()),
                approvals: approvals
                    .iter()
                    .map(|(step, user)| ApprovalRecord {
                        step: step.to_string(),
                        user: user.to_string(),
                        at: None,
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
                    ..StepStatus::default()
                })
                .collect(),
            ..ExecutionStatus::default()
        });
        e
    }

    #[test]
    fn a_waiting_step_by_someone_else_is_approved() {
        let e = exec(
            "alice",
            &[
                ("a", StepState::Succeeded),
                ("b", StepState::WaitingApproval),
            ],
            &[],
        );
        assert_eq!(
            check(&e, "b", "bob"),
            Ok(Verdict::Approve(vec!["b".into()]))
        );
    }

    #[test]
    fn a_step_id_covers_every_waiting_item_of_a_loop() {
        let e = exec(
            "alice",
            &[
                ("r[0]", StepState::WaitingApproval),
                ("r[1]", StepState::WaitingApproval),
            ],
            &[],
        );
        assert_eq!(
            check(&e, "r", "bob"),
            Ok(Verdict::Approve(vec!["r[0]".into(), "r[1]".into()]))
        );
        assert_eq!(
            check(&e, "r[1]", "bob"),
            Ok(Verdict::Approve(vec!["r[1]".into()]))
        );
    }

    #[test]
    fn the_requester_is_refused_up_front_with_the_reason() {
        let e = exec("alice", &[("b", StepState::WaitingApproval)], &[]);
        let err = check(&e, "b", "alice").unwrap_err();
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
    }

    #[test]
    fn a_second_approval_by_the_same_user_is_not_written() {
        let e = exec(
            "alice",
            &[("b", StepState::WaitingApproval)],
            &[("b", "bob")],
        );
        assert_eq!(check(&e, "b", "bob"), Ok(Verdict::AlreadyApproved));
    }

    #[test]
    fn a_step_not_waiting_names_the_ones_that_are() {
        let e = exec(
            "alice",
            &[("a", StepState::Running), ("b", StepState::WaitingApproval)],
            &[],
        );
        assert_eq!(
            check(&e, "a", "bob").unwrap_err(),
            "step 'a' of Execution 'run-1' is not waiting for approval; 'b' is: \
             playbook-operator approve run-1 b -n ops"
        );
        assert_eq!(
            not_waiting_message("run-1", "ops", "x", &["b", "c[0]"]),
            "step 'x' of Execution 'run-1' is not waiting for approval; these are: 'b', 'c[0]'"
        );
        let none = exec("alice", &[("a", StepState::Running)], &[]);
        assert!(
            check(&none, "a", "bob")
                .unwrap_err()
                .starts_with("no step of Execution 'run-1' is waiting for approval"),
        );
    }

    #[test]
    fn the_patch_appends_only_the_new_entry_at_the_version_read() {
        let new = ApprovalRecord {
            step: "b".into(),
            user: "bob".into(),
            at: None,
        };
        let rv = json!({"op": "replace", "path": "/metadata/resourceVersion", "value": "42"});
        assert_eq!(
            approval_patch("42", 0, &new),
            json!([rv, {"op": "add", "path": "/spec/approvals", "value": [{"step": "b", "user": "bob"}]}])
        );
        assert_eq!(
            approval_patch("42", 3, &new),
            json!([rv, {"op": "add", "path": "/spec/approvals/-", "value": {"step": "b", "user": "bob"}}])
        );
    }
}
