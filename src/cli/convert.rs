//! `playbook-operator convert FILE...`: StackPulse-dialect files to canonical resources.

use std::process::ExitCode;

use anyhow::Context;

use crate::engine::convert;

/// Canonical YAML on stdout (pipe it to `kubectl apply -f -`), one line per change on
/// stderr, so nothing the converter decided is hidden.
pub fn run(files: &[std::path::PathBuf]) -> anyhow::Result<ExitCode> {
    let mut resources = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let conversion =
            convert::convert(&text).with_context(|| format!("converting {}", file.display()))?;
        for note in &conversion.notes {
            eprintln!("{}: {note}", file.display());
        }
        resources.extend(conversion.resources);
    }
    print!("{}", convert::to_yaml(&resources));
    Ok(ExitCode::SUCCESS)
}
