//! The catalogue's files as the pure tests read them (`catalogue`,
//! `catalogue_health`): an entry's documents by kind, and the first Job a run of
//! its playbook plans on its Runner, as the controller would plan it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::jiff::Timestamp;
use playbook_operator::api::{ExecutionSpec, Playbook, Runner};
use playbook_operator::engine::plan::{ExecutionRef, Intent, PlanInput, plan};
use serde_json::Value;

/// `catalogue/`: one folder per entry.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogue")
}

/// The text of `file` of entry `entry`.
pub fn read(entry: &str, file: &str) -> String {
    let path = root().join(entry).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The documents of kind `kind` in `file` of entry `entry`.
pub fn docs(entry: &str, file: &str, kind: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read(entry, file))
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .filter(|v: &Value| v["kind"] == kind)
        .collect()
}

/// The one document of kind `kind` in `file` of entry `entry`, as `T`.
pub fn one<T: serde::de::DeserializeOwned>(entry: &str, file: &str, kind: &str) -> T {
    let mut all = docs(entry, file, kind);
    assert_eq!(all.len(), 1, "{entry}/{file}: one {kind}");
    serde_json::from_value(all.remove(0)).unwrap_or_else(|e| panic!("{entry}/{file}: {e}"))
}

/// Plans the start of run `execution` (`spec`) of `pb` with `runner` the only
/// Runner, and returns the pod of the one Job that plan creates (the first step's),
/// after checking that it runs as the Runner's service account. `what` names the
/// run in failure messages.
pub fn first_step_pod(
    what: &str,
    execution: ExecutionRef,
    spec: ExecutionSpec,
    pb: &Playbook,
    runner: &Runner,
) -> PodSpec {
    let input = PlanInput {
        execution,
        spec,
        playbook: Some(pb.spec.clone()),
        runners: BTreeMap::from([(
            runner.metadata.name.clone().unwrap_or_default(),
            runner.spec.clone(),
        )]),
        ..PlanInput::default()
    };
    let planned = plan(&input, Timestamp::now());
    let jobs: Vec<_> = planned
        .intents
        .iter()
        .filter_map(|i| match i {
            Intent::CreateJob(j) => Some(j),
            _ => None,
        })
        .collect();
    assert_eq!(
        jobs.len(),
        1,
        "{what}: the first step becomes a Job: {:?}",
        planned.status
    );
    let pod = jobs[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("a pod spec");
    assert_eq!(
        pod.service_account_name, runner.spec.service_account_name,
        "{what}"
    );
    pod
}
