//! Tests of the plan people approve: what its hash covers and what it leaves out.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LocalObjectReference, Toleration};
use serde_json::json;

use super::*;

fn step() -> RenderedStep {
    RenderedStep {
        image: "registry.example/kubectl:1".into(),
        args: Some(vec!["rollout".into(), "restart".into()]),
        env: vec![(
            "TOKEN".into(),
            Rendered {
                text: "$(SP_SECRET_TOKEN)".into(),
                secrets: vec![(
                    "SP_SECRET_TOKEN".into(),
                    SecretRef {
                        secret: None,
                        key: "token".into(),
                    },
                )],
            },
        )],
        ..Default::default()
    }
}

fn plan(step: &RenderedStep, runner: &RunnerSpec, name: Option<&str>, attempt: u32) -> StepPlan {
    let iid = InstanceId::top("restart", None);
    let job = build_job(&JobInput {
        execution: "run-1",
        namespace: "prod",
        uid: "uid-1",
        playbook: "pb",
        instance: &iid,
        attempt,
        step,
        runner,
    })
    .expect("a Job");
    step_plan(&job, name).expect("a plan")
}

#[test]
fn every_attempt_of_the_same_step_on_the_same_runner_has_one_plan() {
    let runner = RunnerSpec::default();
    let first = plan(&step(), &runner, Some("default"), 1);
    let third = plan(&step(), &runner, Some("default"), 3);
    assert_eq!(first, third);
    assert_eq!(first.hash.len(), PLAN_HASH_DIGITS);
    let labels = first
        .pod
        .as_ref()
        .and_then(|p| p.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert!(!labels.contains_key(LABEL_ATTEMPT), "{labels:?}");
    assert_eq!(labels.get(LABEL_STEP).map(String::as_str), Some("restart"));
}

#[test]
fn the_plan_shows_the_step_container_and_the_whole_pod() {
    let runner = RunnerSpec {
        service_account_name: Some("restarter".into()),
        ..Default::default()
    };
    let p = plan(&step(), &runner, Some("ops"), 1);
    assert_eq!(p.runner.as_deref(), Some("ops"));
    assert_eq!(p.image, "registry.example/kubectl:1");
    assert_eq!(p.args, ["rollout", "restart"]);
    let pod = serde_json::to_value(&p.pod).expect("JSON");
    assert_eq!(pod["spec"]["serviceAccountName"], json!("restarter"));
    assert_eq!(pod["spec"]["automountServiceAccountToken"], json!(true));
    // The secret is a reference, by Secret name and key, never a value.
    assert_eq!(
        pod["spec"]["containers"][0]["env"][0],
        json!({"name": "TOKEN",
               "valueFrom": {"secretKeyRef": {"name": "playbook-secrets", "key": "token"}}})
    );
}

/// Each row changes one thing that decides what runs or with which rights: the
/// plan hash must change with it.
#[test]
fn whatever_decides_what_runs_or_its_rights_changes_the_hash() {
    let base = RunnerSpec::default();
    let before = plan(&step(), &base, Some("default"), 1).hash;
    let with = |f: fn(&mut RunnerSpec)| {
        let mut r = base.clone();
        f(&mut r);
        r
    };
    let mut env_from = step();
    env_from.env_from = vec![EnvFrom {
        secret_ref: Some("cloud-admin".into()),
        ..Default::default()
    }];
    let mut image = step();
    image.image = "registry.example/kubectl:2".into();
    let mut args = step();
    args.args = Some(vec!["delete".into()]);
    let cases: Vec<(&str, RenderedStep, RunnerSpec, Option<&str>)> = vec![
        ("image", image, base.clone(), Some("default")),
        ("args", args, base.clone(), Some("default")),
        ("envFrom", env_from, base.clone(), Some("default")),
        ("the Runner's name", step(), base.clone(), Some("ops")),
        (
            "service account",
            step(),
            with(|r| r.service_account_name = Some("cluster-admin".into())),
            Some("default"),
        ),
        (
            "the Secret that secret reads",
            step(),
            with(|r| r.secret_name = Some("prod-secrets".into())),
            Some("default"),
        ),
        (
            "node selector",
            step(),
            with(|r| r.node_selector = BTreeMap::from([("pool".into(), "infra".into())])),
            Some("default"),
        ),
        (
            "tolerations",
            step(),
            with(|r| {
                r.tolerations = vec![Toleration {
                    operator: Some("Exists".into()),
                    ..Default::default()
                }]
            }),
            Some("default"),
        ),
        (
            "container security context",
            step(),
            with(|r| {
                r.security_context = Some(SecurityContext {
                    privileged: Some(true),
                    ..Default::default()
                })
            }),
            Some("default"),
        ),
        (
            "pod security context",
            step(),
            with(|r| {
                r.pod_security_context = Some(PodSecurityContext {
                    run_as_user: Some(0),
                    ..Default::default()
                })
            }),
            Some("default"),
        ),
        (
            "image pull secrets",
            step(),
            with(|r| {
                r.image_pull_secrets = vec![LocalObjectReference {
                    name: "registry".into(),
                }]
            }),
            Some("default"),
        ),
        (
            "resources",
            step(),
            with(|r| r.resources = Some(ResourceRequirements::default())),
            Some("default"),
        ),
        (
            "pod annotations (sidecar injection)",
            step(),
            with(|r| {
                r.annotations =
                    BTreeMap::from([("vault.hashicorp.com/agent-inject".into(), "true".into())])
            }),
            Some("default"),
        ),
        (
            "pod labels (network policies)",
            step(),
            with(|r| r.labels = BTreeMap::from([("egress".into(), "open".into())])),
            Some("default"),
        ),
    ];
    for (what, step, runner, name) in cases {
        let after = plan(&step, &runner, name, 1).hash;
        assert_ne!(after, before, "{what} must change the plan hash");
    }
}
