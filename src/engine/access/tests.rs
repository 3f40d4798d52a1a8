use std::collections::BTreeSet;

use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;
use crate::api::{EnvFrom, PlaybookStep, Step};
use crate::engine::job::render_step;

fn step(id: &str, runner: Option<&str>) -> PlaybookStep {
    PlaybookStep {
        step: Step {
            id: id.into(),
            image: "example.com/x:1".into(),
            runner: runner.map(String::from),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn runners_to_check_names_what_steps_may_reach() {
    let existing: Vec<String> = ["default", "admin", "ops"].map(String::from).into();
    let block = PlaybookStep {
        step: Step {
            id: "b".into(),
            ..Default::default()
        },
        steps: Some(vec![step("in-block", Some("ops")).step]),
        ..Default::default()
    };
    let cases: Vec<(&str, PlaybookSpec, BTreeSet<String>)> = vec![
        (
            "no runner: the default",
            PlaybookSpec {
                steps: vec![step("a", None)],
                ..Default::default()
            },
            set(&["default"]),
        ),
        (
            "named runners, main and finally",
            PlaybookSpec {
                steps: vec![step("a", Some("admin"))],
                finally: vec![step("f", Some(" ops "))],
                ..Default::default()
            },
            set(&["admin", "ops"]),
        ),
        (
            "a block's steps, not the block itself",
            PlaybookSpec {
                steps: vec![block],
                ..Default::default()
            },
            set(&["ops"]),
        ),
        (
            "a template reaches every Runner of the namespace",
            PlaybookSpec {
                steps: vec![step("a", Some("{{ .params.R }}")), step("b", Some("x"))],
                ..Default::default()
            },
            set(&["admin", "default", "ops", "x"]),
        ),
    ];
    for (name, playbook, want) in cases {
        assert_eq!(runners_to_check(&playbook, &existing), want, "{name}");
    }
}

#[test]
fn requester_needs_a_user() {
    let spec = |user: Option<&str>| ExecutionSpec {
        requested_by: user.map(String::from),
        requested_by_groups: vec!["sre".into()],
        ..Default::default()
    };
    assert_eq!(Requester::of(&spec(None)), None);
    assert_eq!(Requester::of(&spec(Some("  "))), None);
    assert_eq!(
        Requester::of(&spec(Some("alice"))),
        Some(Requester {
            user: "alice".into(),
            groups: vec!["sre".into()]
        })
    );
}

#[test]
fn a_denial_names_the_user_the_runner_and_the_grant() {
    let alice = Requester {
        user: "alice".into(),
        groups: vec![],
    };
    assert_eq!(verdict(&alice, "admin", "ops", true), Verdict::Allowed);
    let Verdict::Denied(message) = verdict(&alice, "admin", "ops", false) else {
        panic!("denied");
    };
    for part in [
        "alice may not use Runner 'admin' in namespace ops",
        "verb 'use' on runners.stackpulse.io/admin",
        "kubectl create role use-runner-admin -n ops --verb=use --resource=runners.stackpulse.io --resource-name=admin",
        "kubectl create rolebinding use-runner-admin -n ops --role=use-runner-admin --user=alice",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    let sa = Requester {
        user: "system:serviceaccount:ops:bot".into(),
        groups: vec![],
    };
    let Verdict::Denied(message) = verdict(&sa, "admin", "ops", false) else {
        panic!("denied");
    };
    assert!(message.contains("--serviceaccount=ops:bot"), "{message}");
    let Verdict::Denied(message) = no_requester("admin") else {
        panic!("denied");
    };
    assert!(message.contains("no spec.requestedBy"), "{message}");
}

fn rendered(env: &[(&str, &str)], env_from: Vec<EnvFrom>) -> RenderedStep {
    let step = Step {
        id: "s".into(),
        image: "example.com/x:1".into(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        env_from,
        ..Default::default()
    };
    render_step(&step, &json!({})).expect("renders")
}

#[test]
fn secrets_only_from_the_runner() {
    let listed = RunnerSpec {
        secret_name: Some("ops-secrets".into()),
        allowed_secrets: vec!["pagerduty".into()],
        ..Default::default()
    };
    let builtin = RunnerSpec::default();
    let from = |s: &str| EnvFrom {
        secret_ref: Some(s.into()),
        integration_ref: None,
    };
    let integration = |s: &str| EnvFrom {
        secret_ref: None,
        integration_ref: Some(s.into()),
    };
    // (case, runner, env, envFrom, the refused Secret and field, if any)
    type Case<'a> = (
        &'a str,
        &'a RunnerSpec,
        Vec<(&'a str, &'a str)>,
        Vec<EnvFrom>,
        Option<(&'a str, &'a str)>,
    );
    let cases: Vec<Case> = vec![
        (
            "the Runner's own Secret by key",
            &listed,
            vec![("A", r#"{{ secret "k" }}"#)],
            vec![],
            None,
        ),
        (
            "the Runner's Secret by name",
            &listed,
            vec![("A", r#"{{ secret "ops-secrets" "k" }}"#)],
            vec![],
            None,
        ),
        (
            "an allowed Secret",
            &listed,
            vec![("A", r#"x {{ secret "pagerduty" "k" }}"#)],
            vec![from("pagerduty")],
            None,
        ),
        (
            "another Secret by name",
            &listed,
            vec![("A", r#"{{ secret "db-admin" "password" }}"#)],
            vec![],
            Some(("db-admin", "env A")),
        ),
        (
            "another Secret by envFrom",
            &listed,
            vec![],
            vec![from("db-admin")],
            Some(("db-admin", "envFrom.secretRef")),
        ),
        (
            "an integration not listed",
            &listed,
            vec![],
            vec![integration("slack")],
            Some(("slack", "envFrom.integrationRef")),
        ),
        (
            "built-in defaults: playbook-secrets only",
            &builtin,
            vec![("A", r#"{{ secret "playbook-secrets" "k" }}"#)],
            vec![],
            None,
        ),
        (
            "built-in defaults refuse others",
            &builtin,
            vec![],
            vec![from("ops-secrets")],
            Some(("ops-secrets", "envFrom.secretRef")),
        ),
    ];
    for (name, runner, env, env_from, refused) in cases {
        let got = check_secrets("s", "ops", runner, &rendered(&env, env_from));
        match refused {
            None => assert_eq!(got, Ok(()), "{name}"),
            Some((secret, field)) => assert_eq!(
                got,
                Err(secret_refused("s", field, secret, "ops")),
                "{name}"
            ),
        }
    }
    let message = secret_refused("s", "envFrom.secretRef", "db-admin", "ops");
    assert!(
        message.contains("Runner 'ops' does not list")
            && message.contains("add 'db-admin' to the Runner's spec.allowedSecrets"),
        "{message}"
    );
}
