//! Lint's view of Runner access: the Secrets a step names that its Runner does not
//! list, where that is known before anything runs. The decision itself is
//! [`access::check_secrets`], the one the planner makes when the step runs.

use std::collections::BTreeMap;

use super::{Finding, Severity};
use crate::api::{PlaybookSpec, RunnerSpec, Step};
use crate::engine::access::{self, DEFAULT_RUNNER};
use crate::engine::job::render_step;

/// `lint`'s warnings for the Secrets a playbook's steps name that their Runner does
/// not list, where that is known before running: the step names its Runner without
/// a template (or none: `default`), that Runner is among `runners` (e.g. in the files
/// linted), and its env renders without params or outputs.
pub fn lint_secrets(
    playbook: &PlaybookSpec,
    runners: &BTreeMap<String, RunnerSpec>,
) -> Vec<Finding> {
    let entries = |list: &'static str, entries: &[crate::api::PlaybookStep]| {
        entries
            .iter()
            .enumerate()
            .flat_map(move |(i, e)| {
                let own = std::iter::once((format!("spec.{list}[{i}]"), e.step.clone()));
                let inner = e
                    .steps
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(move |(j, s)| (format!("spec.{list}[{i}].steps[{j}]"), s.clone()));
                own.chain(inner)
            })
            .collect::<Vec<(String, Step)>>()
    };
    let steps = entries("steps", &playbook.steps)
        .into_iter()
        .chain(entries("finally", &playbook.finally));
    let mut out = Vec::new();
    for (path, step) in steps {
        let name = step
            .runner
            .as_deref()
            .map(str::trim)
            .unwrap_or(DEFAULT_RUNNER);
        if step.image.is_empty() || name.contains("{{") {
            continue;
        }
        let (Some(runner), Ok(rendered)) = (
            runners.get(name),
            render_step(&step, &serde_json::Value::Null),
        ) else {
            continue;
        };
        if let Err(message) = access::check_secrets(&step.id, name, runner, &rendered) {
            out.push(Finding {
                severity: Severity::Warning,
                path,
                message,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::api::{EnvFrom, PlaybookStep};

    #[test]
    fn lint_warns_of_secrets_the_known_runner_does_not_list() {
        let runners = BTreeMap::from([(
            "ops".to_string(),
            RunnerSpec {
                secret_name: Some("ops-secrets".into()),
                ..Default::default()
            },
        )]);
        let with = |runner: Option<&str>, env: &str, env_from: Option<&str>| PlaybookStep {
            step: Step {
                id: "s".into(),
                image: "example.com/x:1".into(),
                runner: runner.map(String::from),
                env: [("A".to_string(), env.to_string())].into(),
                env_from: env_from
                    .map(|s| EnvFrom {
                        secret_ref: Some(s.into()),
                        integration_ref: None,
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
            ..Default::default()
        };
        // (case, step, warned)
        let cases = [
            (
                "listed",
                with(Some("ops"), r#"{{ secret "ops-secrets" "k" }}"#, None),
                false,
            ),
            (
                "unlisted by name",
                with(Some("ops"), r#"{{ secret "db" "k" }}"#, None),
                true,
            ),
            (
                "unlisted by envFrom",
                with(Some("ops"), "x", Some("db")),
                true,
            ),
            (
                "a Runner not known",
                with(Some("other"), r#"{{ secret "db" "k" }}"#, None),
                false,
            ),
            (
                "a templated Runner",
                with(Some("{{ .params.R }}"), r#"{{ secret "db" "k" }}"#, None),
                false,
            ),
            (
                "no runner: default, not known here",
                with(None, "x", Some("db")),
                false,
            ),
        ];
        for (name, step, warned) in cases {
            let playbook = PlaybookSpec {
                steps: vec![step],
                ..Default::default()
            };
            let findings = lint_secrets(&playbook, &runners);
            assert_eq!(!findings.is_empty(), warned, "{name}: {findings:?}");
            for f in findings {
                assert_eq!(f.severity, Severity::Warning, "{name}");
                assert_eq!(f.path, "spec.steps[0]", "{name}");
                assert!(
                    f.message.contains("Runner 'ops' does not list"),
                    "{name}: {}",
                    f.message
                );
            }
        }
    }
}
