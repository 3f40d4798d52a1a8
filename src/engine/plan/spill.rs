//! Outputs too large for status: spilled to a ConfigMap, read back for templates.
//!
//! When a step succeeds, [`output::place`] decides (pure, by size) whether its parsed
//! output stays in status or goes to an immutable ConfigMap owned by the Execution,
//! named after the attempt (`job::outputs_config_map_name`). Then, as for image
//! parsers' raw output, the ConfigMap intent is applied *before* the status whose
//! `outputsRef` names it: a status never points at output nobody kept. A crash before
//! the status write leaves the step Running with its container ended, so the next
//! plan reads the same log, parses the same output and asks for the same ConfigMap
//! (409: ours, and the `sha256` in the ref is checked when it is read back); after
//! it, the ref is in status and nothing is created again.
//!
//! Templates see spilled outputs like inline ones: the controller reads the
//! ConfigMaps of [`super::spilled_refs`] into [`super::PlanInput::spilled`] before
//! planning (the planner does no I/O), and a step that starts in the same plan as the
//! one that spilled reads the value this plan holds. One that cannot be read fails
//! the run with a message saying which and why, never an empty value.

use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::output::{self, Budgets, Placement};
use super::{Planner, StepStatus};
use crate::api::{OutputsRef, RunnerSpec, Step};
use crate::engine::job::{self, OUTPUTS_KEY, RenderedStep};

impl Planner<'_> {
    /// Where instance `i`'s parsed output goes: the value for status (`None` when
    /// spilled), with `outputsRef`/`outputsTruncated` set on the step and the
    /// ConfigMap asked for. Returns a note for the step's message when spilled.
    pub(super) fn place_output(&mut self, i: usize, value: Value) -> Option<String> {
        let step = self.step_spec(&self.ids[i]).unwrap_or_default();
        let budgets = self.budgets(&step);
        let spilled = match output::place(value, budgets) {
            Placement::Inline(value) => {
                let s = &mut self.st.steps[i];
                s.outputs = Some(value);
                s.outputs_ref = None;
                s.outputs_truncated = false;
                return None;
            }
            Placement::Spill(spilled) => spilled,
        };
        let iid = self.ids[i].clone();
        let attempt = self.st.steps[i].attempt.max(1);
        let (rendered, runner) = (RenderedStep::default(), RunnerSpec::default());
        let input = self.job_input(&iid, attempt, &rendered, &runner);
        let config_map = job::build_outputs_config_map(&input, &spilled.json);
        let name = config_map.metadata.name.clone().unwrap_or_default();
        let kept = spilled.json.len();
        let reference = OutputsRef {
            config_map_name: name.clone(),
            key: OUTPUTS_KEY.to_string(),
            bytes: kept as u64,
            original_bytes: spilled.original_bytes as u64,
            sha256: sha256_hex(&spilled.json),
        };
        self.create_config_map(config_map);
        self.spilled
            .insert(name.clone(), Ok(Arc::new(spilled.value)));
        let s = &mut self.st.steps[i];
        s.outputs = None;
        s.outputs_ref = Some(reference);
        s.outputs_truncated = spilled.truncated;
        Some(if spilled.truncated {
            format!(
                "output was {}; kept {} (the hard cap per step) in ConfigMap {name}: print less, or filter it with outputParser.jq",
                output::human(spilled.original_bytes),
                output::human(kept),
            )
        } else {
            format!(
                "output ({}) is in ConfigMap {name}: larger than the status allows",
                output::human(kept)
            )
        })
    }

    /// The step's inline budget (`outputs.inlineBytes`, else the operator's), the room
    /// left in the Execution (spec + status so far), and the hard cap.
    fn budgets(&self, step: &Step) -> Budgets {
        let limits = &self.input.limits;
        let inline = step
            .outputs
            .as_ref()
            .and_then(|o| o.inline_bytes)
            .map_or(limits.step_output_bytes, |b| b as usize);
        // The finally steps' planner holds only their statuses: the main steps' are
        // in the same object.
        let main = self
            .input
            .main
            .as_ref()
            .map_or(0, |m| output::size(&m.steps));
        let object = output::size(&self.st) + output::size(&self.input.spec) + main;
        Budgets {
            inline,
            room: limits.object_bytes.saturating_sub(object),
            max: limits.max_output_bytes,
        }
    }

    /// Every spilled output of this stage's steps is readable, else why not. The
    /// finally stage does not check the main steps': losing one failed the main
    /// steps already, and clean-up must still run; a finally template reading it
    /// sees `<no value>`, as it would for a step that failed without output.
    pub(super) fn spilled_readable(&self) -> Result<(), String> {
        for s in &self.st.steps {
            let Some(r) = &s.outputs_ref else { continue };
            let problem = match self.spilled.get(&r.config_map_name) {
                Some(Ok(_)) => continue,
                Some(Err(e)) => e.clone(),
                None => "not read".to_string(),
            };
            return Err(format!(
                "the output of step '{}' is in ConfigMap {}, which could not be read: {problem}; it is owned by this Execution and must not be deleted: run the playbook again",
                s.id, r.config_map_name
            ));
        }
        Ok(())
    }

    /// `status` with its spilled output in `outputs`, as templates see it.
    pub(super) fn with_spilled(&self, status: &StepStatus) -> StepStatus {
        let value = status
            .outputs_ref
            .as_ref()
            .and_then(|r| self.spilled.get(&r.config_map_name))
            .and_then(|v| v.as_ref().ok());
        match value {
            Some(v) => StepStatus {
                outputs: Some(Value::clone(v)),
                ..status.clone()
            },
            None => status.clone(),
        }
    }
}

/// Hex SHA-256 of `text`: what `outputsRef.sha256` holds and the controller checks.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::scenario::{Act::*, Case, Scenario, run_all, step};
    use std::sync::LazyLock;

    use serde_json::json;

    use crate::api::{ExecutionPhase, StepOutputs};

    /// A step output of ~40 KiB (over the 32 KiB inline budget) with a value deep in it.
    static BIG: LazyLock<String> = LazyLock::new(|| {
        let out = json!({
            "cluster": {"nodes": [{"name": "n1", "pods": [{"name": "web-1", "ip": "10.0.0.7"}]}]},
            "padding": "x".repeat(40_000),
        });
        format!("log line\n<-- END -->\n{out}\n")
    });

    fn big() -> &'static str {
        BIG.as_str()
    }

    fn two_steps() -> Scenario {
        Scenario::new(vec![
            step("a"),
            step("b").env("IP", "{{ (index (index .cluster.nodes 0).pods 0).ip }}"),
        ])
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "a large output: ConfigMap asked for with the status that names it; the next step renders a deep value",
                scenario: two_steps(),
                script: vec![
                    Plan,
                    Exit("a", 0, big()),
                    Plan,
                    ConfigMaps(1),
                    States("a=Succeeded b=Running"),
                    Spilled("a"),
                    Env("b", "IP", "10.0.0.7"),
                    Msg("a", "is in ConfigMap"),
                    // Later plans read it back (the controller's GET), and ask for nothing again.
                    Exit("b", 0, "{}"),
                    Plan,
                    ConfigMaps(0),
                    ConfigMapsExist(1),
                    PhaseIs(ExecutionPhase::Succeeded),
                ],
            },
            Case {
                name: "a crash between the ConfigMap and the status: the same ConfigMap again, never two",
                scenario: two_steps(),
                script: vec![
                    Plan,
                    Exit("a", 0, big()),
                    PlanCrash,
                    ConfigMaps(1),
                    States("a=Running b=Pending"),
                    Plan,
                    ConfigMaps(1),
                    ConfigMapsExist(1),
                    Spilled("a"),
                    Env("b", "IP", "10.0.0.7"),
                    Plan,
                    ConfigMaps(0),
                    Creates(0),
                ],
            },
            Case {
                name: "a step's inlineBytes: 0 spills even a small output; inlineBytes past the output keeps a large one inline",
                scenario: Scenario::new(vec![step("a"), step("b").env("X", "{{ .x }}")]).with(
                    |i| {
                        if let Some(pb) = i.playbook.as_mut() {
                            pb.steps[0].step.outputs = Some(StepOutputs {
                                inline_bytes: Some(0),
                            });
                        }
                    },
                ),
                script: vec![
                    Plan,
                    Exit("a", 0, r#"{"x": "small"}"#),
                    Plan,
                    Spilled("a"),
                    Env("b", "X", "small"),
                ],
            },
            Case {
                name: "inlineBytes larger than the output keeps it in status",
                scenario: two_steps().with(|i| {
                    if let Some(pb) = i.playbook.as_mut() {
                        pb.steps[0].step.outputs = Some(StepOutputs {
                            inline_bytes: Some(200_000),
                        });
                    }
                }),
                script: vec![
                    Plan,
                    Exit("a", 0, big()),
                    Plan,
                    ConfigMaps(0),
                    Env("b", "IP", "10.0.0.7"),
                ],
            },
            Case {
                name: "a run near its object budget spills small outputs too",
                scenario: Scenario::new(vec![step("a"), step("b")])
                    .with(|i| i.limits.object_bytes = 100),
                script: vec![Plan, Exit("a", 0, r#"{"x": 1}"#), Plan, Spilled("a")],
            },
            Case {
                name: "past the hard cap: cut, marked, original size in status and message",
                scenario: two_steps().with(|i| i.limits.max_output_bytes = 2000),
                script: vec![
                    Plan,
                    Exit("a", 0, big()),
                    Plan,
                    Spilled("a"),
                    Truncated("a"),
                    Msg("a", "kept 1 KiB (the hard cap per step)"),
                    Env("b", "IP", "10.0.0.7"),
                ],
            },
            Case {
                name: "a finally step renders a value from a main step's spilled output",
                scenario: Scenario::new(vec![step("a")]).finally(vec![
                    step("f").env("IP", "{{ (index (index .cluster.nodes 0).pods 0).ip }}"),
                ]),
                script: vec![
                    Plan,
                    Exit("a", 0, big()),
                    Plan,
                    Spilled("a"),
                    States("a=Succeeded | f=Running"),
                    Env("f", "IP", "10.0.0.7"),
                    // Planned again (the ConfigMap read back), the finally step is not rebuilt.
                    Plan,
                    Creates(0),
                    ConfigMaps(0),
                ],
            },
            Case {
                name: "a spilled output deleted from under the run fails it, saying which and what to do",
                scenario: Scenario::new(vec![step("a"), step("b"), step("c")]),
                script: vec![
                    Plan,
                    Exit("a", 0, big()),
                    Plan,
                    LoseOutputs("a"),
                    Exit("b", 0, "{}"),
                    Plan,
                    PhaseIs(ExecutionPhase::Failed),
                    RunMsg("the output of step 'a' is in ConfigMap"),
                    RunMsg("could not be read: not found"),
                    Creates(0),
                    // No step is left looking unfinished in a finished run.
                    States("a=Succeeded b=Failed c=Skipped"),
                    Msg("b", "stopped: an output it needs could not be read"),
                ],
            },
            Case {
                name: "a spilled output lost mid-run still lets the finally steps run",
                scenario: Scenario::new(vec![step("a"), step("b")]).finally(vec![step("f")]),
                script: vec![
                    Plan,
                    Exit("a", 0, big()),
                    Plan,
                    LoseOutputs("a"),
                    Plan,
                    States("a=Succeeded b=Failed | f=Running"),
                    PhaseIs(ExecutionPhase::Running),
                    Creates(1),
                    // b's Job, still running, is not left behind.
                    Deletes(1),
                ],
            },
        ]
    }

    /// The controller reads (and so calls the API for) only what `spilled_refs`
    /// names: nothing for inline outputs, nothing once the run is over.
    #[test]
    fn only_referenced_outputs_of_a_live_run_are_read() {
        let mut s = two_steps();
        s.plan();
        s.exit("a", 0, r#"{"small": 1}"#);
        s.plan();
        assert!(super::super::spilled_refs(&s.input.status).is_empty());
        let mut s = two_steps();
        s.plan();
        s.exit("a", 0, big());
        s.plan();
        let names: Vec<_> = super::super::spilled_refs(&s.input.status)
            .iter()
            .map(|r| r.config_map_name.clone())
            .collect();
        assert_eq!(names.len(), 1);
        s.exit("b", 0, "{}");
        s.plan();
        assert!(s.input.status.phase.is_final());
        assert!(super::super::spilled_refs(&s.input.status).is_empty());
    }

    #[test]
    fn spill_scenarios() {
        run_all(cases().into_iter());
    }
}
