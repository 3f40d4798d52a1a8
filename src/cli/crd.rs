//! `playbook-operator crd`: the CRDs and the admission policies as YAML, on stdout or
//! one file per CRD plus `admission-policies.yaml`.
//!
//! `crds/` is this command's output (`make crds`); `tests/crds_in_sync.rs` fails when
//! the checked-in files drift from the types.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

/// File with the admission policies and their bindings, next to the CRDs so that
/// `kubectl apply --server-side -f crds/` installs the four-eyes rule with the API.
pub const POLICIES_FILE: &str = "admission-policies.yaml";

/// Each CRD as (file name, YAML document), e.g. `playbooks.stackpulse.io.yaml`, then
/// [`POLICIES_FILE`] (several documents).
pub fn files() -> anyhow::Result<Vec<(String, String)>> {
    let mut files = crate::api::crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            Ok((format!("{name}.yaml"), serde_yaml::to_string(&crd)?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    files.push((
        POLICIES_FILE.to_string(),
        crate::api::admission::policies().to_yaml()?,
    ));
    Ok(files)
}

pub fn run(out_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let files = files()?;
    match out_dir {
        None => {
            for (_, yaml) in &files {
                print!("---\n{yaml}");
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, yaml) in &files {
                let path = dir.join(name);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
