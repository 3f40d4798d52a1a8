//! `playbook-operator lint FILE...`: schema, templates and references, offline.

use std::process::ExitCode;

use anyhow::Context;

use crate::engine::lint::{Severity, lint_file};

/// Prints `file:line: severity: path: message` for every finding; exit 1 when any is
/// an error (warnings alone pass, so lint can gate CI without nagging).
pub fn run(files: &[std::path::PathBuf]) -> anyhow::Result<ExitCode> {
    let (mut errors, mut warnings) = (0, 0);
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
