//! Tests of what an image parser needs: its Job (the step's Runner settings, the
//! raw output mounted read-only, none of the step's secrets), the ConfigMap of the
//! raw output, and names that never meet a step's.

use super::tests::is_dns_label;
use super::*;
use pretty_assertions::assert_eq;
use serde_json::json;

/// The Job input of attempt `attempt` of step instance `iid` of Execution `run-1`.
fn job_input<'a>(
    iid: &'a InstanceId,
    attempt: u32,
    step: &'a RenderedStep,
    runner: &'a RunnerSpec,
) -> JobInput<'a> {
    JobInput {
        execution: "run-1",
        namespace: "prod",
        uid: "uid-1",
        playbook: "pb",
        instance: iid,
        attempt,
        step,
        runner,
    }
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
    let input = job_input(&iid, 2, &rendered, &runner);
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
    let input = job_input(&iid, 1, &step, &runner);
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
