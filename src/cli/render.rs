//! `playbook-operator render PLAYBOOK`: the Jobs (or, for a `workload: Pod` Runner,
//! the bare Pods) an Execution's first steps would create, offline, through the same
//! planner the controller runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value};

use crate::api::{
    ExecutionSpec, LocalRef, Playbook, PlaybookSpec, Runner, RunnerSpec, StepState, Workload,
};
use crate::engine::plan::{ExecutionRef, Intent, PlanInput, plan};
use crate::engine::{convert, workload};

/// Arguments of `render`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Playbook file (canonical or StackPulse dialect).
    pub playbook: PathBuf,
    /// A param value, `NAME=VALUE`; repeat for more.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// An alert (JSON or YAML object) templates read as `.alert`.
    #[arg(long, value_name = "FILE")]
    pub alert: Option<PathBuf>,
    /// Runner files to use; a runner the playbook names and no file gives is assumed
    /// to exist with default settings.
    #[arg(long = "runner", value_name = "FILE")]
    pub runners: Vec<PathBuf>,
    /// Namespace the Execution would run in.
    #[arg(long, default_value = "default")]
    pub namespace: String,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (name, spec) = load_playbook(&args.playbook)?;
    let runners = load_runners(&args.runners, &spec)?;
    let input = PlanInput {
        execution: ExecutionRef {
            name: format!("{name}-render"),
            namespace: args.namespace.clone(),
            uid: "00000000-0000-0000-0000-000000000000".into(),
            generation: Some(1),
            url: None,
        },
        spec: ExecutionSpec {
            playbook_ref: LocalRef { name },
            params: Some(Value::Object(params_object(&args.params))),
            alert: args.alert.as_deref().map(load_alert).transpose()?,
            requested_by: Some("render".into()),
            ..ExecutionSpec::default()
        },
        playbook: Some(spec),
        runners,
        ..PlanInput::default()
    };
    let planned = plan(&input, Timestamp::now());
    for intent in &planned.intents {
        if let Intent::CreateJob(job) = intent {
            // What the controller would create: the Job, or the bare Pod made of it.
            let yaml = match workload::of(job) {
                Workload::Job => serde_yaml::to_string(job)?,
                Workload::Pod => serde_yaml::to_string(
                    &workload::bare_pod(job).context("the planned Job has no spec")?,
                )?,
            };
            print!("---\n{yaml}");
        }
    }
    // What did not become a Job, and why: a skipped `when`, an approval, an error.
    let mut failed = false;
    for step in &planned.status.steps {
        let message = step.message.as_deref().unwrap_or("");
        match step.state {
            StepState::Running | StepState::Pending => {}
            StepState::Failed => {
                failed = true;
                eprintln!("step {}: failed: {message}", step.id);
            }
            state => eprintln!("step {}: {state:?}: {message}", step.id),
        }
    }
    if let Some(message) = &planned.status.message {
        eprintln!("execution: {:?}: {message}", planned.status.phase);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The playbook's name and spec; dialect files are converted first.
fn load_playbook(path: &Path) -> anyhow::Result<(String, PlaybookSpec)> {
    let conversion =
        convert::convert(&read(path)?).with_context(|| format!("reading {}", path.display()))?;
    let doc = conversion
        .resources
        .into_iter()
        .find(|r| r.get("kind").and_then(|k| k.as_str()) == Some("Playbook"))
        .ok_or_else(|| anyhow!("{}: no Playbook in this file", path.display()))?;
    let playbook: Playbook = serde_yaml::from_value(doc).with_context(|| {
        format!(
            "{}: not a valid Playbook (run `playbook-operator lint` on it)",
            path.display()
        )
    })?;
    Ok((
        playbook.metadata.name.unwrap_or_else(|| "playbook".into()),
        playbook.spec,
    ))
}

fn load_runners(
    files: &[PathBuf],
    spec: &PlaybookSpec,
) -> anyhow::Result<BTreeMap<String, RunnerSpec>> {
    let mut runners = BTreeMap::new();
    let named = spec
        .steps
        .iter()
        .flat_map(|entry| std::iter::once(&entry.step).chain(entry.steps.iter().flatten()))
        .map(|step| step.runner.clone().unwrap_or_else(|| "default".into()));
    for name in named {
        runners.insert(name, RunnerSpec::default());
    }
    for file in files {
        let runner: Runner = serde_yaml::from_str(&read(file)?)
            .with_context(|| format!("{}: not a valid Runner", file.display()))?;
        let name = runner
            .metadata
            .name
            .clone()
            .ok_or_else(|| anyhow!("{}: Runner has no metadata.name", file.display()))?;
        runners.insert(name, runner.spec);
    }
    Ok(runners)
}

fn load_alert(path: &Path) -> anyhow::Result<Value> {
    let alert: Value = serde_yaml::from_str(&read(path)?)
        .with_context(|| format!("{}: not JSON or YAML", path.display()))?;
    if !alert.is_object() {
        bail!(
            "{}: the alert must be an object, e.g. one alert of an Alertmanager payload",
            path.display()
        );
    }
    Ok(alert)
}

/// One `--param NAME=VALUE` (clap's value parser, shared with `start`): the value is
/// everything after the first `=` and stays a string, as StackPulse params are.
pub(super) fn parse_param(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        Some(_) => Err(format!("{arg:?} has no name before '=': write NAME=VALUE")),
        None => Err(format!(
            "{arg:?} has no '=': write NAME=VALUE, e.g. --param Namespace=prod"
        )),
    }
}

/// The params as the object `spec.params` holds; a name given twice keeps the last value.
pub(super) fn params_object(params: &[(String, String)]) -> Map<String, Value> {
    params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{params_object, parse_param};
    use serde_json::json;

    #[test]
    fn params_are_name_equals_value_strings() {
        assert_eq!(parse_param("Port=6379"), Ok(("Port".into(), "6379".into())));
        assert_eq!(parse_param("Url=a=b"), Ok(("Url".into(), "a=b".into())));
        assert_eq!(parse_param("Empty="), Ok(("Empty".into(), String::new())));
        let err = parse_param("Port").unwrap_err();
        assert!(err.contains("has no '=': write NAME=VALUE"), "{err}");
        let err = parse_param("=x").unwrap_err();
        assert!(err.contains("no name before '='"), "{err}");
        let object = params_object(&[
            ("a".into(), "1".into()),
            ("b".into(), "x".into()),
            ("a".into(), "2".into()),
        ]);
        assert_eq!(
            serde_json::Value::Object(object),
            json!({"a": "2", "b": "x"})
        );
    }
}
