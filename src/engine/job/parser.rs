//! Image output parsers: the ConfigMap that holds a step attempt's raw output, and
//! the Job that runs the parser image on it. Also the ConfigMap that holds a step
//! attempt's parsed output when it is too large for status (`engine::plan::spill`):
//! both are made for one attempt the same way ([`attempt_config_map`]).
//!
//! The contract a parser image sees (README "Output parsers"): the step's whole log,
//! as the controller read it, is the file [`OUTPUT_PATH`] (env [`OUTPUT_FILE_ENV`]),
//! mounted read-only from a ConfigMap; the parser prints one JSON value and nothing
//! else. The parser Job is built by the step Job builder (`super::build`), so it runs
//! with the step's Runner settings (namespace, service account, placement, pull
//! secrets, security contexts, labels), but with no secrets: no env from the step, no
//! `envFrom`, no API token.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapVolumeSource, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    ANNOTATION_STEP_ID, JobError, JobInput, LABEL_ROLE, RenderedStep, Role, attempt_labels, build,
    job_name, owner,
};
use crate::engine::context::InstanceId;
use crate::engine::template::Rendered;

/// Value of [`LABEL_ROLE`] on a parser Job (and its Pod).
pub const ROLE_PARSER: &str = "parser";
/// Value of [`LABEL_ROLE`] on the ConfigMap holding a step attempt's raw output.
pub const ROLE_OUTPUT: &str = "output";
/// Value of [`LABEL_ROLE`] on the ConfigMap holding a step attempt's parsed output
/// when it was too large for status.
pub const ROLE_OUTPUTS: &str = "outputs";
/// The key of the parsed output (JSON text) in that ConfigMap.
pub const OUTPUTS_KEY: &str = "outputs.json";
/// The ConfigMap key, and the file name under [`OUTPUT_DIR`], of the raw output.
pub const OUTPUT_KEY: &str = "output";
/// Where the ConfigMap is mounted in the parser container (read-only).
pub(super) const OUTPUT_DIR: &str = "/playbook";
/// The env var that names the raw output's file in the parser container.
pub const OUTPUT_FILE_ENV: &str = "PLAYBOOK_OUTPUT_FILE";
/// Longest a parser Job may run (its `activeDeadlineSeconds`), unless the step's own
/// timeout is shorter: a parser reads one file, so minutes mean it hangs.
pub const PARSER_DEADLINE_SECONDS: i64 = 300;
/// Most bytes of raw output a ConfigMap takes: the API server refuses a ConfigMap
/// whose values add up to more than 1 MiB. The log read (`--log-limit-bytes`, 1 MiB by
/// default) can be larger; what is past this is cut and the step's status says so.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

const VOLUME: &str = "playbook-output";

/// The full path of the raw output in the parser container.
pub const OUTPUT_PATH: &str = "/playbook/output";

/// The name of the parser Job of a step attempt. The `/` cannot be in a step path,
/// so the hash never equals that of a step's own Job (step `a-parser`'s, say).
pub fn parser_job_name(execution: &str, instance: &InstanceId, attempt: u32) -> String {
    let path = format!("{}/parser", instance.path());
    job_name(execution, &path, instance.index, attempt)
}

/// The name of the ConfigMap holding a step attempt's raw output.
pub fn output_config_map_name(execution: &str, instance: &InstanceId, attempt: u32) -> String {
    let path = format!("{}/output", instance.path());
    job_name(execution, &path, instance.index, attempt)
}

/// The name of the ConfigMap holding a step attempt's parsed output (the `/` keeps it
/// apart from any step's own names, as for the parser Job).
pub fn outputs_config_map_name(execution: &str, instance: &InstanceId, attempt: u32) -> String {
    let path = format!("{}/outputs", instance.path());
    job_name(execution, &path, instance.index, attempt)
}

/// The parser container's name: `STEP-parser` (a DNS label), so `kubectl logs` and
/// log fixtures tell it from the step's own container.
pub fn parser_container_name(instance: &InstanceId) -> String {
    const SUFFIX: &str = "-parser";
    let base: String = instance.step.chars().take(63 - SUFFIX.len()).collect();
    format!("{}{SUFFIX}", base.trim_end_matches('-'))
}

/// The deadline of a parser Job: [`PARSER_DEADLINE_SECONDS`], or the step's timeout
/// when that is shorter (a step that must end within 30 s must not wait 5 min for
/// its parser).
pub fn parser_deadline(step_timeout: Option<i64>) -> i64 {
    step_timeout
        .filter(|t| *t > 0)
        .map_or(PARSER_DEADLINE_SECONDS, |t| t.min(PARSER_DEADLINE_SECONDS))
}

/// The Job that runs `image` on the raw output of the attempt `input` describes.
/// Of `input.step` only `timeout_seconds` is used: the parser runs nothing of the
/// step (no command, args, env or secrets), only the Runner's settings carry over.
pub fn build_parser_job(input: &JobInput, image: &str) -> Result<Job, JobError> {
    let parser = RenderedStep {
        image: image.trim().to_string(),
        env: vec![(
            OUTPUT_FILE_ENV.to_string(),
            Rendered {
                text: OUTPUT_PATH.to_string(),
                secrets: Vec::new(),
            },
        )],
        timeout_seconds: Some(parser_deadline(input.step.timeout_seconds)),
        ..Default::default()
    };
    let config_map = output_config_map_name(input.execution, input.instance, input.attempt);
    let input = JobInput {
        step: &parser,
        ..input.clone()
    };
    build(&input, &Role::Parser(&config_map))
}

/// The ConfigMap volume and its read-only mount for a parser container.
pub(super) fn output_volume(config_map: &str) -> (Volume, VolumeMount) {
    let volume = Volume {
        name: VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mount = VolumeMount {
        name: VOLUME.into(),
        mount_path: OUTPUT_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    };
    (volume, mount)
}

/// The ConfigMap holding the raw output of the attempt `input` describes, and whether
/// the output had to be cut to [`MAX_OUTPUT_BYTES`] (at a character boundary).
pub fn build_output_config_map(input: &JobInput, raw: &str) -> (ConfigMap, bool) {
    let mut end = raw.len().min(MAX_OUTPUT_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    let name = output_config_map_name(input.execution, input.instance, input.attempt);
    let config_map = attempt_config_map(input, name, ROLE_OUTPUT, OUTPUT_KEY, &raw[..end]);
    (config_map, end < raw.len())
}

/// The ConfigMap holding the parsed output (`json`) of the attempt `input` describes.
pub fn build_outputs_config_map(input: &JobInput, json: &str) -> ConfigMap {
    let name = outputs_config_map_name(input.execution, input.instance, input.attempt);
    attempt_config_map(input, name, ROLE_OUTPUTS, OUTPUTS_KEY, json)
}

/// An immutable ConfigMap of one step attempt, owned by the Execution (garbage
/// collected with it) and labelled like its Jobs, with `data` under `key`.
fn attempt_config_map(
    input: &JobInput,
    name: String,
    role: &str,
    key: &str,
    data: &str,
) -> ConfigMap {
    let mut labels = attempt_labels(input);
    labels.insert(LABEL_ROLE.to_string(), role.to_string());
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "playbook-operator".into(),
    );
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(input.namespace.to_string()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_STEP_ID.to_string(),
                input.instance.to_string(),
            )])),
            owner_references: Some(vec![owner(input)]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(key.to_string(), data.to_string())])),
        // Written once per attempt and never changed.
        immutable: Some(true),
        ..Default::default()
    }
}
