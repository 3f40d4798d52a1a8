//! `playbook-operator describe EXECUTION`: an Execution for a person at a terminal,
//! above all the one deciding on an approval: the phase, every step grouped by
//! incident phase with its state, attempt and message, the exact plan (image,
//! command, args, env; secrets as references) a waiting step would run with its
//! hash, and the decisions recorded so far.
//!
//! [`render`] is pure (what is shown is unit-tested); [`run`] only fetches.

use std::fmt::Write as _;
use std::process::ExitCode;

use kube::{Resource, ResourceExt};

use super::cluster;
use crate::api::{Decision, Execution, Phase, StepPlan, StepState, StepStatus};
use crate::engine::page::PlanView;

/// Arguments of `describe`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Execution (`kubectl get pbx` lists them).
    pub execution: String,
    /// Namespace of the Execution (default: the kubeconfig context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    cluster::block_on(async {
        let session = cluster::connect(args.namespace.as_deref()).await?;
        let exec = cluster::execution(&session, &args.execution).await?;
        print!("{}", render(&exec));
        Ok(ExitCode::SUCCESS)
    })
}

const PHASES: [Phase; 4] = [
    Phase::Enrich,
    Phase::Triage,
    Phase::Communicate,
    Phase::Remediate,
];

/// The text `describe` prints.
pub fn render(exec: &Execution) -> String {
    let name = exec.name_any();
    let ns = exec.meta().namespace.clone().unwrap_or_default();
    let status = exec.status.clone().unwrap_or_default();
    let mut out = String::new();
    let mut line = |label: &str, value: &str| {
        let _ = writeln!(out, "{label:<14}{value}");
    };
    line("Execution:", &format!("{name} (namespace {ns})"));
    line("Playbook:", &exec.spec.playbook_ref.name);
    line("Phase:", &format!("{:?}", status.phase));
    if let Some(m) = &status.message {
        line("Message:", m);
    }
    if let Some(r) = &exec.spec.requested_by {
        line("Requested by:", r);
    }
    if let Some(t) = &status.started_at {
        line("Started:", &t.0.to_string());
    }
    if let Some(t) = &status.finished_at {
        line("Finished:", &t.0.to_string());
    }

    out.push_str("\nSteps:\n");
    if status.steps.is_empty() && status.finally.is_empty() {
        out.push_str("  (none started yet)\n");
    }
    for phase in PHASES {
        let steps: Vec<&StepStatus> = status.steps.iter().filter(|s| s.phase == phase).collect();
        steps_table(&mut out, phase.as_str(), &steps);
    }
    steps_table(
        &mut out,
        "finally",
        &status.finally.iter().collect::<Vec<_>>(),
    );

    for s in status.steps.iter().chain(&status.finally) {
        if s.state == StepState::WaitingApproval
            && let Some(plan) = &s.plan
        {
            plan_section(&mut out, &name, &ns, &s.id, plan);
        }
    }

    if !exec.spec.approvals.is_empty() {
        out.push_str("\nApprovals:\n");
        for a in &exec.spec.approvals {
            let decision = match a.decision {
                Decision::Approve => "approve",
                Decision::Reject => "reject",
            };
            let mut row = format!("  {:<12} {decision:<8} {}", a.user, a.step);
            if let Some(h) = &a.plan_hash {
                let _ = write!(row, "  plan {h}");
            }
            if !a.groups.is_empty() {
                let _ = write!(row, "  groups [{}]", a.groups.join(", "));
            }
            if let Some(t) = &a.at {
                let _ = write!(row, "  at {}", t.0);
            }
            if let Some(r) = &a.reason {
                let _ = write!(row, "  reason: {r}");
            }
            out.push_str(&row);
            out.push('\n');
        }
    }
    out
}

/// One group of steps: `id  state  attempt  message`, aligned.
fn steps_table(out: &mut String, title: &str, steps: &[&StepStatus]) {
    if steps.is_empty() {
        return;
    }
    let width = steps.iter().map(|s| s.id.len()).max().unwrap_or(0);
    let _ = writeln!(out, "  {title}:");
    for s in steps {
        let state = format!("{:?}", s.state);
        let mut row = format!("    {:<width$}  {state:<15}  attempt {}", s.id, s.attempt);
        if let Some(m) = &s.message {
            let _ = write!(row, "  {m}");
        }
        out.push_str(row.trim_end());
        out.push('\n');
    }
}

/// What a waiting step would run, and how to decide on it.
fn plan_section(out: &mut String, execution: &str, ns: &str, id: &str, plan: &StepPlan) {
    let _ = writeln!(out, "\nPlan of {id} (hash {}):", plan.hash);
    let _ = writeln!(out, "  image:    {}", plan.image);
    if !plan.command.is_empty() {
        let _ = writeln!(out, "  command:  {:?}", plan.command);
    }
    if !plan.args.is_empty() {
        let _ = writeln!(out, "  args:     {:?}", plan.args);
    }
    let shown = PlanView::from(plan);
    if !shown.env.is_empty() {
        out.push_str("  env:\n");
    }
    for e in &shown.env {
        match (&e.secret, &e.value) {
            (Some(secret), _) => {
                let _ = writeln!(out, "    {} from {secret}", e.name);
            }
            (None, value) => {
                let _ = writeln!(out, "    {}={}", e.name, value.as_deref().unwrap_or(""));
            }
        }
    }
    if let Some(runner) = &shown.runner {
        let _ = writeln!(out, "  runner:   {runner}");
    }
    if let Some(account) = &shown.service_account {
        let _ = writeln!(out, "  service account: {account}");
    }
    let _ = writeln!(
        out,
        "  approve:  playbook-operator approve {execution} {id} -n {ns}"
    );
    let _ = writeln!(
        out,
        "  reject:   playbook-operator reject {execution} {id} -n {ns} --reason '...'"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApprovalRecord, ExecutionPhase, ExecutionSpec, ExecutionStatus, LocalRef};
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
    use pretty_assertions::assert_eq;

    fn step(id: &str, phase: Phase, state: StepState, attempt: u32, message: &str) -> StepStatus {
        StepStatus {
            id: id.into(),
            phase,
            state,
            attempt,
            message: Some(message.into()).filter(|m: &String| !m.is_empty()),
            ..StepStatus::default()
        }
    }

    #[test]
    fn shows_phase_steps_by_phase_the_waiting_plan_and_the_approvals() {
        let mut restart = step(
            "restart",
            Phase::Remediate,
            StepState::WaitingApproval,
            0,
            "1 of 2 approvals (bob); waiting for one more",
        );
        restart.plan = Some(Box::new(StepPlan {
            hash: "abc123def456".into(),
            image: "example.com/restart:1".into(),
            command: vec!["sh".into(), "-c".into()],
            args: vec!["restart $(TARGET)".into()],
            env: vec![
                EnvVar {
                    name: "TARGET".into(),
                    value: Some("redis-0".into()),
                    value_from: None,
                },
                EnvVar {
                    name: "TOKEN".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "playbook-secrets".into(),
                            key: "token".into(),
                            optional: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                },
            ],
            runner: Some("ops".into()),
            pod: Some(
                serde_json::from_value(serde_json::json!({
                    "spec": {"serviceAccountName": "restarter", "containers": []}
                }))
                .expect("a pod template"),
            ),
        }));
        let mut e = Execution::new(
            "run-1",
            ExecutionSpec {
                playbook_ref: LocalRef {
                    name: "guarded".into(),
                },
                requested_by: Some("alice".into()),
                approvals: vec![ApprovalRecord {
                    step: "restart".into(),
                    user: "bob".into(),
                    groups: vec!["sre".into()],
                    plan_hash: Some("abc123def456".into()),
                    ..ApprovalRecord::default()
                }],
                ..ExecutionSpec::default()
            },
        );
        e.metadata.namespace = Some("ops".into());
        e.status = Some(ExecutionStatus {
            phase: ExecutionPhase::WaitingApproval,
            steps: vec![
                step("check", Phase::Enrich, StepState::Succeeded, 1, ""),
                restart,
            ],
            ..ExecutionStatus::default()
        });
        assert_eq!(
            render(&e),
            "\
Execution:    run-1 (namespace ops)
Playbook:     guarded
Phase:        WaitingApproval
Requested by: alice

Steps:
  enrich:
    check  Succeeded        attempt 1
  remediate:
    restart  WaitingApproval  attempt 0  1 of 2 approvals (bob); waiting for one more

Plan of restart (hash abc123def456):
  image:    example.com/restart:1
  command:  [\"sh\", \"-c\"]
  args:     [\"restart $(TARGET)\"]
  env:
    TARGET=redis-0
    TOKEN from secret playbook-secrets key token
  runner:   ops
  service account: restarter
  approve:  playbook-operator approve run-1 restart -n ops
  reject:   playbook-operator reject run-1 restart -n ops --reason '...'

Approvals:
  bob          approve  restart  plan abc123def456  groups [sre]
"
        );
    }

    #[test]
    fn a_new_execution_says_no_step_started() {
        let e = Execution::new("run-2", ExecutionSpec::default());
        let text = render(&e);
        assert!(text.contains("Phase:        Pending\n"), "{text}");
        assert!(text.contains("(none started yet)"), "{text}");
        assert!(!text.contains("Approvals:"), "{text}");
    }
}
