//! `playbook-operator lint FILE...`: schema, templates and references, offline.

use std::process::ExitCode;

use anyhow::Context;

use std::collections::BTreeMap;

use crate::api::{Playbook, Runner};
use crate::engine::lint::lint_secrets;
use crate::engine::lint::{Severity, lint_file};

/// Prints `file:line: severity: path: message` for every finding; exit 1 when any is
/// an error (warnings alone pass, so lint can gate CI without nagging).
pub fn run(files: &[std::path::PathBuf]) -> anyhow::Result<ExitCode> {
    let (mut errors, mut warnings) = (0, 0);
    let mut playbooks = Vec::new();
    let mut runners = BTreeMap::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for finding in lint_file(&text, &file.display().to_string()) {
            match finding.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
            }
            println!("{finding}");
        }
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let Ok(value) = <serde_yaml::Value as serde::Deserialize>::deserialize(doc) else {
                continue;
            };
            match value.get("kind").and_then(serde_yaml::Value::as_str) {
                Some("Playbook") => playbooks.extend(
                    serde_yaml::from_value::<Playbook>(value)
                        .ok()
                        .map(|p| (file.display().to_string(), p)),
                ),
                Some("Runner") => runners.extend(
                    serde_yaml::from_value::<Runner>(value)
                        .ok()
                        .map(|r| (r.metadata.name.clone().unwrap_or_default(), r.spec)),
                ),
                _ => {}
            }
        }
    }
    // Secrets a step names that its Runner does not list: known once the Runners are
    // among the files (Runners of the same namespace are assumed).
    for (file, playbook) in &playbooks {
        for finding in lint_secrets(&playbook.spec, &runners) {
            warnings += 1;
            println!("{file}: warning: {}: {}", finding.path, finding.message);
        }
    }
    eprintln!(
        "{} file(s): {errors} error(s), {warnings} warning(s)",
        files.len()
    );
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
