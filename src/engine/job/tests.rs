//! Tests of Job building: a golden Job, Runner fields, names and labels, secrets
//! (an image parser's Job and ConfigMap: `parser_tests`).

use super::*;
use pretty_assertions::assert_eq;
use serde_json::json;

fn secret_var(var: &str, key: &str) -> Rendered {
    Rendered {
        text: format!("$({var})"),
        secrets: vec![(
            var.into(),
            SecretRef {
                secret: None,
                key: key.into(),
            },
        )],
    }
}

fn build(
    step: &RenderedStep,
    runner: &RunnerSpec,
    iid: &InstanceId,
    attempt: u32,
) -> Result<Job, JobError> {
    build_job(&JobInput {
        execution: "redis-incident-x7k2p",
        namespace: "prod",
        uid: "3f1c2a9e-0000-4000-8000-000000000001",
        playbook: "redis-incident-enrichment",
        instance: iid,
        attempt,
        step,
        runner,
    })
}

fn env_of(job: &Job) -> Vec<EnvVar> {
    let pod = job.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    pod.and_then(|p| p.containers[0].env.clone())
        .unwrap_or_default()
}

const GOLDEN: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  annotations:
    stackpulse.io/step-id: get-redis-info
  labels:
    app.kubernetes.io/managed-by: playbook-operator
    stackpulse.io/attempt: '2'
    stackpulse.io/execution: redis-incident-x7k2p
    stackpulse.io/execution-uid: 3f1c2a9e-0000-4000-8000-000000000001
    stackpulse.io/playbook: redis-incident-enrichment
    stackpulse.io/step: get-redis-info
  name: redis-incident-x7k2p-get-redis-info-2-f9bac0f9
  namespace: prod
  ownerReferences:
  - apiVersion: stackpulse.io/v1
    blockOwnerDeletion: true
    controller: true
    kind: Execution
    name: redis-incident-x7k2p
    uid: 3f1c2a9e-0000-4000-8000-000000000001
spec:
  activeDeadlineSeconds: 120
  backoffLimit: 0
  template:
    metadata:
      annotations:
        stackpulse.io/step-id: get-redis-info
      labels:
        stackpulse.io/attempt: '2'
        stackpulse.io/execution: redis-incident-x7k2p
        stackpulse.io/execution-uid: 3f1c2a9e-0000-4000-8000-000000000001
        stackpulse.io/playbook: redis-incident-enrichment
        stackpulse.io/step: get-redis-info
    spec:
      automountServiceAccountToken: false
      containers:
      - args:
        - --section=clients
        env:
        - name: SP_SECRET_REDIS_SECRET
          valueFrom:
            secretKeyRef:
              key: Redis_Secret
              name: playbook-secrets
        - name: REDIS_PASSWORD
          valueFrom:
            secretKeyRef:
              key: password
              name: redis-auth
        - name: REDIS_URL
          value: redis://$(SP_SECRET_REDIS_SECRET)@redis-0.redis:6379/
        envFrom:
        - secretRef:
            name: slack-integration
        image: us-docker.pkg.dev/stackpulse/public/redis-info
        name: get-redis-info
        securityContext:
          allowPrivilegeEscalation: false
          capabilities:
            drop:
            - ALL
          readOnlyRootFilesystem: true
        terminationMessagePolicy: FallbackToLogsOnError
        volumeMounts:
        - mountPath: /tmp
          name: tmp
      enableServiceLinks: false
      restartPolicy: Never
      securityContext:
        runAsNonRoot: true
        seccompProfile:
          type: RuntimeDefault
      volumes:
      - emptyDir: {}
        name: tmp
"#;

/// A realistic step on the built-in Runner, rendered from its templates: the whole
/// Job, field by field, name included.
#[test]
fn golden_job_for_a_realistic_step() {
    let step = Step {
        id: "get-redis-info".into(),
        image: "us-docker.pkg.dev/stackpulse/public/redis-info".into(),
        args: Some(vec!["--section={{ .Section }}".into()]),
        env: BTreeMap::from([
            (
                "REDIS_PASSWORD".into(),
                r#"{{ secret "redis-auth" "password" }}"#.into(),
            ),
            (
                "REDIS_URL".into(),
                r#"redis://{{ secret "Redis_Secret" }}@{{ .Host }}:6379/"#.into(),
            ),
        ]),
        env_from: vec![EnvFrom {
            integration_ref: Some("slack-integration".into()),
            secret_ref: None,
        }],
        timeout_seconds: Some(120),
        ..Default::default()
    };
    let ctx = json!({"Host": "redis-0.redis", "Section": "clients"});
    let rendered = render_step(&step, &ctx).expect("renders");
    let iid = InstanceId::top("get-redis-info", None);
    let job = build(&rendered, &RunnerSpec::default(), &iid, 2).expect("builds");
    let yaml = serde_yaml::to_string(&job).expect("serializes");
    assert_eq!(yaml, GOLDEN);
}

#[test]
fn a_secret_in_args_is_refused_naming_the_field() {
    let step = Step {
        id: "s".into(),
        image: "x".into(),
        args: Some(vec!["ok".into(), r#"--password={{ secret "KEY" }}"#.into()]),
        ..Default::default()
    };
    let err = render_step(&step, &json!({})).expect_err("secret in argv");
    assert_eq!((err.step.as_str(), err.field.as_str()), ("s", "args[1]"));
    assert!(
        err.to_string()
            .starts_with("step 's': args[1]: line 1, column "),
        "{err}"
    );
}

#[test]
fn runner_fields_are_applied_and_step_resources_win() {
    use k8s_openapi::api::core::v1::{LocalObjectReference, Toleration};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let res = |cpu: &str| ResourceRequirements {
        limits: Some(BTreeMap::from([("cpu".to_string(), Quantity(cpu.into()))])),
        ..Default::default()
    };
    let runner = RunnerSpec {
        service_account_name: Some("kubectl-reader".into()),
        secret_name: Some("team-secrets".into()),
        node_selector: BTreeMap::from([("pool".into(), "ops".into())]),
        tolerations: vec![Toleration {
            key: Some("ops".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }],
        image_pull_secrets: vec![LocalObjectReference {
            name: "regcred".into(),
        }],
        resources: Some(res("1")),
        labels: BTreeMap::from([
            ("team".into(), "sre".into()),
            (LABEL_STEP.into(), "forged".into()),
        ]),
        annotations: BTreeMap::from([("note".into(), "x".into())]),
        security_context: Some(SecurityContext {
            privileged: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let step = RenderedStep {
        image: "kubectl".into(),
        env: vec![("TOKEN".into(), secret_var("S", "token"))],
        ..Default::default()
    };
    let iid = InstanceId::top("get-pods", None);
    let job = build(&step, &runner, &iid, 1).expect("builds");
    let tpl = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let pod = tpl.spec.clone().unwrap_or_default();
    assert_eq!(pod.service_account_name.as_deref(), Some("kubectl-reader"));
    assert_eq!(
        pod.automount_service_account_token,
        Some(true),
        "a named service account is meant to be used"
    );
    assert_eq!(pod.node_selector, Some(runner.node_selector.clone()));
    assert_eq!(pod.tolerations, Some(runner.tolerations.clone()));
    assert_eq!(
        pod.image_pull_secrets,
        Some(runner.image_pull_secrets.clone())
    );
    assert_eq!(pod.containers[0].resources, Some(res("1")));
    assert_eq!(pod.containers[0].security_context, runner.security_context);
    assert_eq!(
        pod.security_context.and_then(|s| s.run_as_non_root),
        Some(true),
        "pod default kept"
    );
    let labels = tpl
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("sre"));
    assert_eq!(
        labels.get(LABEL_STEP).map(String::as_str),
        Some("get-pods"),
        "the Runner cannot relabel the step"
    );
    let annotations = tpl.metadata.and_then(|m| m.annotations).unwrap_or_default();
    assert_eq!(annotations.get("note").map(String::as_str), Some("x"));
    let env = env_of(&job);
    let secret = env[0]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.clone())
        .map(|s| (s.name, s.key));
    assert_eq!(
        (env.len(), secret),
        (1, Some(("team-secrets".into(), "token".into()))),
        "one direct ref, no extra var"
    );

    let own = RenderedStep {
        resources: Some(res("250m")),
        ..step
    };
    let job = build(&own, &runner, &iid, 1).expect("builds");
    let pod = job.spec.and_then(|s| s.template.spec).unwrap_or_default();
    assert_eq!(pod.containers[0].resources, Some(res("250m")));
}

#[test]
fn a_looped_step_carries_its_index() {
    let step = RenderedStep {
        image: "busybox".into(),
        ..Default::default()
    };
    let iid = InstanceId::in_block("per-pod", Some(3), "describe");
    let job = build(&step, &RunnerSpec::default(), &iid, 1).expect("builds");
    let labels = job.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(LABEL_STEP).map(String::as_str),
        Some("per-pod.describe")
    );
    assert_eq!(labels.get(LABEL_INDEX).map(String::as_str), Some("3"));
    let annotations = job.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get(ANNOTATION_STEP_ID).map(String::as_str),
        Some("per-pod[3].describe")
    );
    // The container is named after the step's own id: no block, no index.
    let pod = job.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let names: Vec<&str> = pod
        .map(|p| p.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["describe"]);
    assert!(
        job.metadata
            .name
            .unwrap_or_default()
            .starts_with("redis-incident-x7k2p-per-pod-describe-3-1-")
    );
}

#[test]
fn errors_name_the_step() {
    let iid = InstanceId::top("s", None);
    let none = RenderedStep::default();
    assert_eq!(
        build(&none, &RunnerSpec::default(), &iid, 1).map_err(|e| e.kind()),
        Err("no_image")
    );
    let clash = RenderedStep {
        image: "x".into(),
        env: vec![
            (
                "SP_SECRET_1".into(),
                Rendered {
                    text: "a".into(),
                    secrets: vec![],
                },
            ),
            (
                "B".into(),
                Rendered {
                    text: "x$(SP_SECRET_1)".into(),
                    ..secret_var("SP_SECRET_1", "k")
                },
            ),
        ],
        ..Default::default()
    };
    let err = build(&clash, &RunnerSpec::default(), &iid, 1).expect_err("clash");
    assert_eq!(
        err.to_string(),
        "step 's': env SP_SECRET_1 is also the name of a secret reference: rename the env var"
    );
}

pub(super) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Over many ids, short and long, odd and plain: every name is a DNS label and no
/// two (execution, step, index, attempt) share one.
#[test]
fn job_names_are_valid_and_unique() {
    let long = "a".repeat(63);
    let executions = [
        "x",
        "redis-incident-x7k2p",
        "a-b",
        "a",
        "my.exec.v2",
        &format!("{long}{long}{long}"),
    ];
    let steps = [
        "c",
        "b-c",
        "get-redis-info",
        "blk.step",
        &long,
        &format!("{long}.{long}"),
    ];
    let mut seen = BTreeMap::new();
    for e in executions {
        for s in steps {
            for index in [None, Some(0), Some(1), Some(10), Some(4_000_000_000)] {
                for attempt in [1, 2, 11] {
                    let name = job_name(e, s, index, attempt);
                    assert!(
                        is_dns_label(&name),
                        "{name:?} from ({e}, {s}, {index:?}, {attempt})"
                    );
                    assert_eq!(name, job_name(e, s, index, attempt), "deterministic");
                    if let Some(prev) = seen.insert(name.clone(), (e, s, index, attempt)) {
                        panic!("{name} for both {prev:?} and {:?}", (e, s, index, attempt));
                    }
                }
            }
        }
    }
    assert_ne!(job_name("a-b", "c", None, 1), job_name("a", "b-c", None, 1));
}

#[test]
fn label_values_are_kept_when_valid_and_hashed_when_not() {
    assert_eq!(label_value("per-pod.describe"), "per-pod.describe");
    let long = format!("{}.{}", "s".repeat(63), "t".repeat(63));
    for s in [long.as_str(), "notify[2]", "-x-", "é"] {
        let v = label_value(s);
        assert!(
            v.len() <= 63
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "{v}"
        );
        assert!(
            v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric()),
            "{v}"
        );
    }
    assert_ne!(
        label_value(&format!("{long}1")),
        label_value(&format!("{long}2"))
    );
}

/// Needs the real template engine: a secret renders as a reference, never a value.
#[test]
fn a_secret_template_yields_a_secret_key_ref_and_no_value() {
    let step = Step {
        id: "get-redis-info".into(),
        image: "redis-info".into(),
        env: BTreeMap::from([
            (
                "REDIS_URL".into(),
                "redis://{{ secret \"Redis_Secret\" }}@{{ .Host }}:6379/".into(),
            ),
            (
                "PASSWORD".into(),
                "{{ secret \"redis-auth\" \"password\" }}".into(),
            ),
        ]),
        ..Default::default()
    };
    let ctx = json!({"Host": "redis-0"});
    let rendered = render_step(&step, &ctx).expect("renders");
    let iid = InstanceId::top("get-redis-info", None);
    let job = build(&rendered, &RunnerSpec::default(), &iid, 1).expect("builds");
    let yaml = serde_yaml::to_string(&job).expect("serializes");
    assert!(yaml.contains("secretKeyRef"), "{yaml}");
    let env = env_of(&job);
    let refs: Vec<_> = env
        .iter()
        .filter_map(|e| {
            e.value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .map(|s| (e.name.as_str(), s.name.as_str(), s.key.as_str()))
        })
        .collect();
    assert!(
        refs.contains(&("PASSWORD", "redis-auth", "password")),
        "{refs:?}"
    );
    assert!(
        refs.iter()
            .any(|(_, secret, key)| *secret == DEFAULT_SECRET && *key == "Redis_Secret"),
        "{refs:?}"
    );
    let url = env
        .iter()
        .position(|e| e.name == "REDIS_URL")
        .expect("REDIS_URL");
    let var = env[..url]
        .iter()
        .find(|e| e.value_from.is_some() && e.name != "PASSWORD")
        .expect("secret var before its use");
    assert_eq!(
        env[url].value.as_deref(),
        Some(format!("redis://$({})@redis-0:6379/", var.name).as_str())
    );
}

/// Needs the real template engine: alert data cannot reference a secret variable.
#[test]
fn an_alert_label_cannot_expand_a_variable() {
    let step = Step {
        id: "notify".into(),
        image: "slack".into(),
        env: BTreeMap::from([("MSG".into(), "pod {{ .alert.labels.pod }} is down".into())]),
        args: Some(vec!["{{ .alert.labels.pod }}".into()]),
        ..Default::default()
    };
    let ctx = json!({"alert": {"labels": {"pod": "$(OTHER)"}}});
    let rendered = render_step(&step, &ctx).expect("renders");
    let iid = InstanceId::top("notify", None);
    let job = build(&rendered, &RunnerSpec::default(), &iid, 1).expect("builds");
    assert_eq!(
        env_of(&job)[0].value.as_deref(),
        Some("pod $$(OTHER) is down")
    );
    let pod = job.spec.and_then(|s| s.template.spec).unwrap_or_default();
    assert_eq!(pod.containers[0].args, Some(vec!["$$(OTHER)".to_string()]));
}
