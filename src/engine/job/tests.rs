//! Tests of Job building: a golden Job, Runner fields, names and labels, secrets.

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

fn is_dns_label(s: &str) -> bool {
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

/// The parser Job of a step attempt: the step Job builder's Runner settings, the
/// raw output mounted read-only, its path in the env, and nothing of the step's
/// secrets (no env, no envFrom, no API token).
#[test]
fn a_parser_job_reads_the_raw_output_and_gets_no_secrets() {
    let step = Step {
        id: "uptime".into(),
        image: "example.com/uptime:1".into(),
        env: BTreeMap::from([("PW".into(), r#"{{ secret "KEY" }}"#.into())]),
        env_from: vec![EnvFrom {
            secret_ref: Some("team-secrets".into()),
            integration_ref: None,
        }],
        timeout_seconds: Some(60),
        ..Default::default()
    };
    let rendered = render_step(&step, &json!({})).expect("renders");
    let runner = RunnerSpec {
        service_account_name: Some("kubectl-reader".into()),
        secret_name: Some("team-secrets".into()),
        node_selector: BTreeMap::from([("pool".into(), "ops".into())]),
        image_pull_secrets: vec![k8s_openapi::api::core::v1::LocalObjectReference {
            name: "regcred".into(),
        }],
        labels: BTreeMap::from([("team".into(), "sre".into())]),
        ..Default::default()
    };
    let iid = InstanceId::top("uptime", Some(3));
    let input = JobInput {
        execution: "run-1",
        namespace: "prod",
        uid: "uid-1",
        playbook: "pb",
        instance: &iid,
        attempt: 2,
        step: &rendered,
        runner: &runner,
    };
    let step_job = build_job(&input).expect("builds");
    let job = build_parser_job(&input, " registry.example/parsers/uptime:1 ").expect("builds");

    let name = job.metadata.name.clone().unwrap_or_default();
    assert_eq!(name, parser_job_name("run-1", &iid, 2));
    assert!(is_dns_label(&name), "{name}");
    assert_ne!(Some(name), step_job.metadata.name, "not the step's own Job");
    assert_eq!(
        job.metadata.owner_references,
        step_job.metadata.owner_references
    );
    let labels = job.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(LABEL_ROLE).map(String::as_str), Some("parser"));
    assert_eq!(
        labels.get(LABEL_EXECUTION_UID).map(String::as_str),
        Some("uid-1")
    );
    assert_eq!(labels.get(LABEL_STEP).map(String::as_str), Some("uptime"));
    assert_eq!(labels.get(LABEL_INDEX).map(String::as_str), Some("3"));

    let spec = job.spec.clone().unwrap_or_default();
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(
        spec.active_deadline_seconds,
        Some(60),
        "the step's timeout, shorter than 300"
    );
    let pod_labels = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .unwrap_or_default();
    assert_eq!(pod_labels.get("team").map(String::as_str), Some("sre"));
    assert_eq!(
        pod_labels.get(LABEL_ROLE).map(String::as_str),
        Some("parser")
    );
    let pod = spec.template.spec.unwrap_or_default();
    assert_eq!(pod.service_account_name.as_deref(), Some("kubectl-reader"));
    assert_eq!(
        pod.automount_service_account_token,
        Some(false),
        "no API token"
    );
    assert_eq!(
        pod.node_selector,
        Some(BTreeMap::from([("pool".into(), "ops".into())]))
    );
    assert_eq!(pod.image_pull_secrets.map(|s| s.len()), Some(1));
    let c = &pod.containers[0];
    assert_eq!(c.name, "uptime-parser");
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example/parsers/uptime:1")
    );
    assert_eq!((c.command.clone(), c.args.clone()), (None, None));
    assert_eq!(c.env_from, None);
    let env = c.env.clone().unwrap_or_default();
    assert_eq!(
        env.iter()
            .map(|e| (e.name.as_str(), e.value.as_deref(), e.value_from.is_some()))
            .collect::<Vec<_>>(),
        vec![("PLAYBOOK_OUTPUT_FILE", Some("/playbook/output"), false)]
    );
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/playbook")
        .expect("the output is mounted");
    assert_eq!(mount.read_only, Some(true));
    assert_eq!(format!("{}/{OUTPUT_KEY}", mount.mount_path), OUTPUT_PATH);
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.config_map.clone())
        .expect("a ConfigMap volume");
    assert_eq!(volume.name, output_config_map_name("run-1", &iid, 2));
    let step_pod = step_job
        .spec
        .and_then(|s| s.template.spec)
        .unwrap_or_default();
    assert_eq!(c.security_context, step_pod.containers[0].security_context);
    assert_eq!(pod.security_context, step_pod.security_context);

    // Without a step timeout, the parser's own bound.
    let untimed = RenderedStep::default();
    let job = build_parser_job(
        &JobInput {
            step: &untimed,
            ..input.clone()
        },
        "p.example/x:1",
    )
    .expect("builds");
    assert_eq!(job.spec.and_then(|s| s.active_deadline_seconds), Some(300));
}

#[test]
fn the_output_config_map_holds_the_raw_output_cut_to_what_fits() {
    let step = RenderedStep::default();
    let runner = RunnerSpec::default();
    let iid = InstanceId::top("uptime", None);
    let input = JobInput {
        execution: "run-1",
        namespace: "prod",
        uid: "uid-1",
        playbook: "pb",
        instance: &iid,
        attempt: 1,
        step: &step,
        runner: &runner,
    };
    let (cm, cut) = build_output_config_map(&input, "up 3 days\n");
    assert!(!cut);
    assert_eq!(
        cm.metadata.name,
        Some(output_config_map_name("run-1", &iid, 1))
    );
    assert_ne!(cm.metadata.name, Some(parser_job_name("run-1", &iid, 1)));
    assert_eq!(cm.metadata.namespace.as_deref(), Some("prod"));
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(LABEL_EXECUTION_UID).map(String::as_str),
        Some("uid-1")
    );
    assert_eq!(
        labels.get(LABEL_ROLE).map(String::as_str),
        Some(ROLE_OUTPUT)
    );
    let owner = cm.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(
        (owner[0].kind.as_str(), owner[0].uid.as_str()),
        ("Execution", "uid-1")
    );
    assert_eq!(
        cm.data,
        Some(BTreeMap::from([(
            OUTPUT_KEY.to_string(),
            "up 3 days\n".to_string()
        )]))
    );
    assert_eq!(cm.immutable, Some(true));

    // Past what a ConfigMap holds: the head is kept, cut on a character boundary.
    let big = format!("{}é", "x".repeat(MAX_OUTPUT_BYTES - 1));
    let (cm, cut) = build_output_config_map(&input, &big);
    let kept = cm
        .data
        .unwrap_or_default()
        .remove(OUTPUT_KEY)
        .unwrap_or_default();
    assert!(cut);
    assert_eq!(kept.len(), MAX_OUTPUT_BYTES - 1);
    assert!(big.starts_with(&kept));
}

#[test]
fn parser_names_never_meet_step_names() {
    let parser_step = InstanceId::top("a", None);
    // A step named `a-parser` (or `parser` in block `a`) gets other names than step
    // `a`'s parser, though the readable part may look alike.
    for other in [
        InstanceId::top("a-parser", None),
        InstanceId::parse("a.parser").expect("an id"),
    ] {
        assert_ne!(
            parser_job_name("run", &parser_step, 1),
            job_name("run", &other.path(), other.index, 1)
        );
    }
    let long = InstanceId::top(&format!("{}-b", "a".repeat(55)), None);
    let c = parser_container_name(&long);
    assert!(is_dns_label(&c) && c.ends_with("-parser"), "{c}");
    assert!(is_dns_label(&parser_job_name(&"e".repeat(200), &long, 7)));
    assert_eq!(parser_deadline(None), 300);
    assert_eq!(parser_deadline(Some(30)), 30);
    assert_eq!(parser_deadline(Some(3600)), 300);
}
