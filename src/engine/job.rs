//! Job building: one rendered step attempt + its Runner → one `batch/v1` Job.
//!
//! Pipeline: the planner (`engine::plan`) renders a ready step with [`render_step`]
//! and calls [`build_job`]; the controller creates the Job it returns, and `render`
//! prints it. A Runner with `workload: Pod` runs the same pod as a bare Pod
//! (`engine::workload`).
//!
//! Secrets never appear as values: `engine::template::render_env_with` turns
//! `{{ secret "KEY" }}` into `$(VAR)` plus a reference, and this file defines `VAR`
//! with a `secretKeyRef` before anything that expands it.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, PodSecurityContext,
    PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::{EnvFrom, RunnerSpec, Step, StepPlan};
use crate::engine::context::InstanceId;
use crate::engine::template::{self, Rendered, SecretNames, SecretRef, TemplateError};

/// Label with the Execution's name (hashed when it is not a valid label value).
pub const LABEL_EXECUTION: &str = "stackpulse.io/execution";
/// Label with the Execution's uid: always a valid value, so the controller selects by it.
pub const LABEL_EXECUTION_UID: &str = "stackpulse.io/execution-uid";
pub const LABEL_PLAYBOOK: &str = "stackpulse.io/playbook";
/// Label with the step's path (`step` or `block.step`), without the foreach item.
pub const LABEL_STEP: &str = "stackpulse.io/step";
pub const LABEL_INDEX: &str = "stackpulse.io/index";
pub const LABEL_ATTEMPT: &str = "stackpulse.io/attempt";
/// Label of a Job that is not a step attempt itself: `parser` for an image parser's Job.
pub const LABEL_ROLE: &str = "stackpulse.io/role";
/// Annotation with the full `status.steps[].id` (`notify[2]`), which labels cannot hold.
pub const ANNOTATION_STEP_ID: &str = "stackpulse.io/step-id";
/// The Secret `{{ secret "KEY" }}` reads when neither the template nor the Runner names one.
pub const DEFAULT_SECRET: &str = "playbook-secrets";

/// A step with every template rendered: what its Job will run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RenderedStep {
    pub image: String,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    /// In the playbook's order (sorted by name, as `Step.env` is a map).
    pub env: Vec<(String, Rendered)>,
    pub env_from: Vec<EnvFrom>,
    pub resources: Option<ResourceRequirements>,
    pub timeout_seconds: Option<i64>,
}

/// A template of a step that did not render.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("step '{step}': {field}: {error}")]
pub struct RenderError {
    pub step: String,
    /// `command[0]`, `args[1]` or `env NAME`.
    pub field: String,
    pub error: TemplateError,
}

/// Renders the templates of a step (command, args, env values) against a context.
///
/// Command and args go through `render_arg`: Kubernetes expands `$(VAR)` there too,
/// so what data prints is escaped, and `secret` is refused (argv is visible to every
/// process on the node). Env values share one [`SecretNames`], so a secret used twice
/// is one variable. The image is not a template: alert data must never pick the
/// image a step runs.
pub fn render_step(step: &Step, ctx: &serde_json::Value) -> Result<RenderedStep, RenderError> {
    let err = |field: String| {
        move |error| RenderError {
            step: step.id.clone(),
            field,
            error,
        }
    };
    let list = |name: &str, items: &Option<Vec<String>>| {
        let Some(items) = items else { return Ok(None) };
        let rendered = items
            .iter()
            .enumerate()
            .map(|(i, src)| template::render_arg(src, ctx).map_err(err(format!("{name}[{i}]"))));
        rendered.collect::<Result<Vec<_>, _>>().map(Some)
    };
    // envFrom names are templates, as StackPulse writes them (an integration param
    // names the Secret): rendered plain, so `secret` there is an error.
    let mut env_from = step.env_from.clone();
    for (i, source) in env_from.iter_mut().enumerate() {
        for (field, name) in [
            ("secretRef", &mut source.secret_ref),
            ("integrationRef", &mut source.integration_ref),
        ] {
            if let Some(name) = name {
                let rendered =
                    template::render(name, ctx).map_err(err(format!("envFrom[{i}].{field}")))?;
                *name = rendered.trim().to_string();
            }
        }
    }
    let mut names = SecretNames::new();
    let mut env = Vec::with_capacity(step.env.len());
    for (name, src) in &step.env {
        let rendered = template::render_env_with(src, ctx, &mut names);
        env.push((name.clone(), rendered.map_err(err(format!("env {name}")))?));
    }
    Ok(RenderedStep {
        image: step.image.trim().to_string(),
        command: list("command", &step.command)?,
        args: list("args", &step.args)?,
        env,
        env_from,
        resources: step.resources.clone(),
        timeout_seconds: step.timeout_seconds,
    })
}

/// Everything a step attempt's Job is made of.
#[derive(Clone, Debug)]
pub struct JobInput<'a> {
    pub execution: &'a str,
    pub namespace: &'a str,
    /// The Execution's uid, for the owner reference (the Job is garbage collected with it).
    pub uid: &'a str,
    pub playbook: &'a str,
    pub instance: &'a InstanceId,
    /// From 1.
    pub attempt: u32,
    pub step: &'a RenderedStep,
    /// The step's Runner, or `RunnerSpec::default()` when the step uses the built-in one.
    pub runner: &'a RunnerSpec,
}

/// Why a rendered step cannot become a Job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("step '{0}' has no image: set image (or make the entry a block with steps)")]
    NoImage(String),
    #[error("step '{step}': env {name} is also the name of a secret reference: rename the env var")]
    EnvClash { step: String, name: String },
    #[error("step '{step}': secret variable {name} refers to two different secrets")]
    SecretClash { step: String, name: String },
    #[error(
        "step '{step}': {field} is '{value}', which is not a Secret name (lowercase letters, digits, '-' and '.'): set it, or the param it reads, to the name of a Secret in the namespace"
    )]
    BadSecretName {
        step: String,
        field: String,
        value: String,
    },
}

impl JobError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoImage(_) => "no_image",
            Self::EnvClash { .. } => "env_clash",
            Self::SecretClash { .. } => "secret_clash",
            Self::BadSecretName { .. } => "bad_secret_name",
        }
    }
}

/// Builds the Job of one step attempt. Pure: same input, same Job, same name.
pub fn build_job(input: &JobInput) -> Result<Job, JobError> {
    build(input, &Role::Step)
}

/// Hex digits of a plan's hash: 48 bits, far beyond what anyone could collide by
/// shaping alert data, yet short enough to read out in a chat.
const PLAN_HASH_DIGITS: usize = 12;

/// The plan people approve: the pod template of `job` as built (secrets only as
/// references), the Runner it names, and their hash. Taken from the built Job rather
/// than re-derived, so what is approved is what runs.
///
/// Left out of the hash: the Job's own name and the `stackpulse.io/attempt` label,
/// which differ between attempts by design, so that a retry of the same plan needs
/// no new approval; and the Job spec around the pod (`backoffLimit: 0` is fixed, the
/// deadline is the step's `timeoutSeconds`, a playbook field the snapshot pins).
/// Everything else of the pod counts: a Runner whose service account, placement or
/// security context changes makes another plan.
pub fn step_plan(job: &Job, runner: Option<&str>) -> Option<StepPlan> {
    let mut pod = job.spec.as_ref()?.template.clone();
    if let Some(labels) = pod.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(LABEL_ATTEMPT);
    }
    let c = pod.spec.as_ref()?.containers.first()?;
    let mut plan = StepPlan {
        hash: String::new(),
        runner: runner.map(str::to_string),
        image: c.image.clone().unwrap_or_default(),
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        env: c.env.clone().unwrap_or_default(),
        pod: Some(pod),
    };
    // Serialising structs, lists and BTreeMaps is deterministic: same content, same text.
    let text = serde_json::to_string(&plan).ok()?;
    plan.hash = hex_hash(&[&text], PLAN_HASH_DIGITS);
    Some(plan)
}

/// What a Job runs: the step itself, or the image parser of one of its attempts.
/// Everything else (Runner settings, owner, labels, security) is the same for both.
enum Role<'a> {
    Step,
    /// The image parser of the attempt, reading the raw output from this ConfigMap.
    Parser(&'a str),
}

fn build(input: &JobInput, role: &Role) -> Result<Job, JobError> {
    let step = input.step;
    let id = input.instance.to_string();
    if step.image.is_empty() {
        return Err(JobError::NoImage(id));
    }
    let (name, container_name) = match role {
        Role::Step => (
            job_name(
                input.execution,
                &input.instance.path(),
                input.instance.index,
                input.attempt,
            ),
            container_name(input.instance),
        ),
        Role::Parser(_) => (
            parser::parser_job_name(input.execution, input.instance, input.attempt),
            parser::parser_container_name(input.instance),
        ),
    };

    let mut labels = attempt_labels(input);
    if let Role::Parser(_) = role {
        labels.insert(LABEL_ROLE.to_string(), parser::ROLE_PARSER.to_string());
    }
    // Ours go last: a Runner must not be able to hide a pod from the controller's watch.
    let mut pod_labels = input.runner.labels.clone();
    pod_labels.extend(labels.clone());
    let mut job_labels = labels;
    job_labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "playbook-operator".into(),
    );
    let step_annotation = BTreeMap::from([(ANNOTATION_STEP_ID.to_string(), id.clone())]);
    let mut pod_annotations = input.runner.annotations.clone();
    pod_annotations.extend(step_annotation.clone());

    let runner = input.runner;
    // The root filesystem is read-only by default; scripts still need a /tmp.
    let mut mounts = vec![VolumeMount {
        name: "tmp".into(),
        mount_path: "/tmp".into(),
        ..Default::default()
    }];
    let mut volumes = vec![Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }];
    if let Role::Parser(config_map) = role {
        let (volume, mount) = parser::output_volume(config_map);
        volumes.push(volume);
        mounts.push(mount);
    }
    // A parser only turns a file into JSON: it gets no Kubernetes API token even when
    // the Runner's service account (kept for image pulls and admission rules) has one.
    let api_token = runner.service_account_name.is_some() && matches!(role, Role::Step);
    let container = Container {
        name: container_name,
        image: Some(step.image.clone()),
        command: step.command.clone(),
        args: step.args.clone(),
        env: Some(env_vars(&id, step, runner)?).filter(|e| !e.is_empty()),
        env_from: Some(env_from::env_from(&id, &step.env_from)?).filter(|e| !e.is_empty()),
        resources: step.resources.clone().or_else(|| runner.resources.clone()),
        security_context: Some(
            runner
                .security_context
                .clone()
                .unwrap_or_else(restricted_container),
        ),
        // A failing step's last log lines become the termination message, which the
        // controller puts in the step's status message.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".into()),
        service_account_name: runner.service_account_name.clone(),
        // Only a Runner that names a service account gives steps API credentials.
        automount_service_account_token: Some(api_token),
        // Service links would add FOO_PORT-style variables that clash with step env.
        enable_service_links: Some(false),
        node_selector: Some(runner.node_selector.clone()).filter(|m| !m.is_empty()),
        tolerations: Some(runner.tolerations.clone()).filter(|t| !t.is_empty()),
        affinity: runner.affinity.clone(),
        image_pull_secrets: Some(runner.image_pull_secrets.clone()).filter(|s| !s.is_empty()),
        security_context: Some(
            runner
                .pod_security_context
                .clone()
                .unwrap_or_else(restricted_pod),
        ),
        volumes: Some(volumes),
        ..Default::default()
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(input.namespace.to_string()),
            labels: Some(job_labels),
            annotations: Some(crate::engine::workload::annotate(
                step_annotation,
                runner.workload,
            )),
            owner_references: Some(vec![owner(input)]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // The controller retries, as a new Job, so every attempt's output is kept.
            backoff_limit: Some(0),
            active_deadline_seconds: step.timeout_seconds,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    })
}

/// The labels of everything made for one step attempt: the controller selects its
/// Jobs, Pods and ConfigMaps by the uid label.
fn attempt_labels(input: &JobInput) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_EXECUTION.to_string(), label_value(input.execution)),
        (LABEL_EXECUTION_UID.to_string(), label_value(input.uid)),
        (LABEL_PLAYBOOK.to_string(), label_value(input.playbook)),
        (LABEL_STEP.to_string(), label_value(&input.instance.path())),
        (LABEL_ATTEMPT.to_string(), input.attempt.to_string()),
    ]);
    if let Some(i) = input.instance.index {
        labels.insert(LABEL_INDEX.to_string(), i.to_string());
    }
    labels
}

/// The Execution as controlling owner: what is made for it is garbage collected with it.
fn owner(input: &JobInput) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/v1", crate::api::GROUP),
        kind: "Execution".into(),
        name: input.execution.to_string(),
        uid: input.uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The env of the step container: the secret variables first (Kubernetes expands
/// `$(VAR)` only from variables defined earlier), then the step's own env.
fn env_vars(id: &str, step: &RenderedStep, runner: &RunnerSpec) -> Result<Vec<EnvVar>, JobError> {
    let secret_source = |r: &SecretRef| EnvVarSource {
        secret_key_ref: Some(SecretKeySelector {
            name: r
                .secret
                .clone()
                .or_else(|| runner.secret_name.clone())
                .unwrap_or_else(|| DEFAULT_SECRET.into()),
            key: r.key.clone(),
            optional: None,
        }),
        ..Default::default()
    };
    // An env value that is exactly one secret gets the reference itself: no extra variable.
    let direct = |r: &Rendered| match r.secrets.as_slice() {
        [(var, secret)] if r.text == format!("$({var})") => Some(secret.clone()),
        _ => None,
    };
    let mut secret_vars: BTreeMap<String, SecretRef> = BTreeMap::new();
    let mut need = |rendered: &Rendered| -> Result<(), JobError> {
        for (var, secret) in &rendered.secrets {
            match secret_vars.get(var) {
                Some(known) if known != secret => {
                    return Err(JobError::SecretClash {
                        step: id.to_string(),
                        name: var.clone(),
                    });
                }
                _ => secret_vars.insert(var.clone(), secret.clone()),
            };
        }
        Ok(())
    };
    for (_, rendered) in step.env.iter().filter(|(_, r)| direct(r).is_none()) {
        need(rendered)?;
    }
    if let Some((name, _)) = step
        .env
        .iter()
        .find(|(name, _)| secret_vars.contains_key(name))
    {
        return Err(JobError::EnvClash {
            step: id.to_string(),
            name: name.clone(),
        });
    }
    let mut env: Vec<EnvVar> = secret_vars
        .iter()
        .map(|(var, r)| EnvVar {
            name: var.clone(),
            value: None,
            value_from: Some(secret_source(r)),
        })
        .collect();
    for (name, rendered) in &step.env {
        env.push(match direct(rendered) {
            Some(r) => EnvVar {
                name: name.clone(),
                value: None,
                value_from: Some(secret_source(&r)),
            },
            None => EnvVar {
                name: name.clone(),
                value: Some(rendered.text.clone()),
                value_from: None,
            },
        });
    }
    Ok(env)
}

/// The pod security context when the Runner sets none (restricted Pod Security Standard).
fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

/// The container security context when the Runner sets none.
fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        ..Default::default()
    }
}

mod env_from;
mod naming;
mod parser;
#[cfg(test)]
mod parser_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod tests;

pub use naming::{container_name, job_name, label_value};
pub(crate) use naming::{dns_part, hex_hash, short_hash};
pub use parser::{
    MAX_OUTPUT_BYTES, OUTPUT_FILE_ENV, OUTPUT_KEY, OUTPUT_PATH, OUTPUTS_KEY, ROLE_OUTPUT,
    ROLE_OUTPUTS, ROLE_PARSER, build_output_config_map, build_outputs_config_map, build_parser_job,
    output_config_map_name, outputs_config_map_name, parser_container_name, parser_deadline,
    parser_job_name,
};
