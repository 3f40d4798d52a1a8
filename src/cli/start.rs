//! `playbook-operator start PLAYBOOK --param K=V`: creates an Execution of a Playbook
//! in the caller's name.
//!
//! `spec.requestedBy` is the user name the API server reports for the caller
//! (SelfSubjectReview), the one value the admission policy accepts; so the run works
//! the same with or without the mutating policy that would otherwise fill it in.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::anyhow;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::cluster::{self, api_error};
use super::render::{params_object, parse_param};
use k8s_openapi::jiff::Timestamp;

use crate::api::{Execution, ExecutionSpec, LocalRef, Playbook, PlaybookSpec, Runner, RunnerSpec};
use crate::engine::dryrun;
use crate::engine::message::close_to;
use crate::engine::plan::ExecutionRef;

/// Arguments of `start`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Playbook to run (`kubectl get pb` lists them).
    pub playbook: String,
    /// Namespace of the Playbook and the new Execution (default: the kubeconfig
    /// context's).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// A param value, `NAME=VALUE` (a string); repeat for more.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Name of the Execution (default: the playbook's name, a dash and a random suffix).
    #[arg(long)]
    pub name: Option<String>,
    /// Create a dry run (`spec.dryRun`): nothing runs; print every step it would
    /// run, in order, with its plan hash and whether its `when` lets it run.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    cluster::block_on(start(args))
}

async fn start(args: &Args) -> anyhow::Result<ExitCode> {
    let session = cluster::connect(args.namespace.as_deref()).await?;
    let user = cluster::whoami(&session.client).await?;
    let ns = &session.namespace;
    let playbooks: Api<Playbook> = Api::namespaced(session.client.clone(), ns);
    let found = playbooks
        .get_opt(&args.playbook)
        .await
        .map_err(|e| api_error(e, &format!("reading Playbook '{}'", args.playbook)))?;
    let Some(found) = found else {
        // Only for the hint: without list permission the message just lacks it.
        let names: Vec<String> = playbooks
            .list_metadata(&ListParams::default())
            .await
            .map(|l| l.items.iter().map(|p| p.name_any()).collect())
            .unwrap_or_default();
        return Err(anyhow!(playbook_not_found(&args.playbook, ns, &names)));
    };
    let executions: Api<Execution> = Api::namespaced(session.client.clone(), ns);
    let exec = execution_for(args, &user);
    let created = executions
        .create(&PostParams::default(), &exec)
        .await
        .map_err(|e| api_error(e, &format!("creating an Execution of '{}'", args.playbook)))?;
    let name = created.name_any();
    if args.dry_run {
        let runners: Api<Runner> = Api::namespaced(session.client, ns);
        // Without list rights the steps render on the built-in defaults; the
        // operator's rendering in status.dryRun is the one with the real Runners.
        let runners = runners
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .map(|r| (r.name_any(), r.spec))
                    .collect()
            })
            .unwrap_or_default();
        println!("dry run {name} created in namespace {ns} as '{user}': nothing runs");
        print!("{}", dry_run_listing(&created, &found.spec, &runners));
        println!(
            "the same steps, with whole plans: kubectl get pbx {name} -n {ns} -o yaml (status.dryRun)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("execution {name} started in namespace {ns} as '{user}'");
    println!("watch it: kubectl get pbx {name} -n {ns} -w");
    Ok(ExitCode::SUCCESS)
}

/// The Execution to create: `--name` or `PLAYBOOK-<random>`, the params as strings,
/// requested by `user`.
pub fn execution_for(args: &Args, user: &str) -> Execution {
    let mut exec = Execution::new(
        "",
        ExecutionSpec {
            playbook_ref: LocalRef {
                name: args.playbook.clone(),
            },
            params: (!args.params.is_empty()).then(|| Value::Object(params_object(&args.params))),
            requested_by: Some(user.to_string()),
            dry_run: args.dry_run,
            ..ExecutionSpec::default()
        },
    );
    *exec.meta_mut() = match &args.name {
        Some(name) => ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        None => ObjectMeta {
            generate_name: Some(format!("{}-", args.playbook)),
            ..ObjectMeta::default()
        },
    };
    exec
}

/// The steps of the dry run `exec` rendered here, by the function the operator
/// uses, from the Execution the API server created (so its plan hashes are the
/// operator's), one line per step and one per reason.
pub fn dry_run_listing(
    exec: &Execution,
    playbook: &PlaybookSpec,
    runners: &BTreeMap<String, RunnerSpec>,
) -> String {
    let execution = ExecutionRef {
        name: exec.name_any(),
        namespace: exec.namespace().unwrap_or_default(),
        uid: exec.uid().unwrap_or_default(),
        generation: exec.metadata.generation,
        url: None,
    };
    let input = dryrun::Input {
        execution: &execution,
        spec: &exec.spec,
        playbook,
        runners,
        runner_access: None,
    };
    let steps = match dryrun::render(&input, Timestamp::now()) {
        Ok(steps) => steps,
        Err(message) => return format!("the dry run cannot render: {message}\n"),
    };
    let mut out = String::new();
    for (i, s) in steps.iter().enumerate() {
        let phase = if s.finally {
            "finally"
        } else {
            s.phase.as_str()
        };
        let hash = s.plan.as_ref().map_or("-", |p| p.hash.as_str());
        let approval = if s.approval { " (needs approval)" } else { "" };
        out += &format!(
            "{:>3}. {:<28} {:<12} {:<8} plan {hash}{approval}\n",
            i + 1,
            s.id,
            phase,
            format!("{:?}", s.verdict)
        );
        if let Some(plan) = &s.plan {
            let argv: Vec<&str> = plan
                .command
                .iter()
                .chain(&plan.args)
                .map(String::as_str)
                .collect();
            out += &format!("       {} {}\n", plan.image, argv.join(" "));
        }
        if let Some(message) = &s.message {
            out += &format!("       {message}\n");
        }
        for t in &s.templated {
            out += &format!("       as written: {t}\n");
        }
    }
    out += &format!("{}\n", dryrun::summary(&steps));
    out
}

/// No such Playbook: the close names if any, else where to look.
pub fn playbook_not_found(playbook: &str, ns: &str, names: &[String]) -> String {
    let close = close_to(playbook, names.iter().map(String::as_str));
    let hint = match close.as_slice() {
        [] => format!("`kubectl get pb -n {ns}` lists the playbooks (or pass -n NAMESPACE)"),
        [one] => format!("did you mean '{one}'?"),
        many => format!("did you mean one of '{}'?", many.join("', '")),
    };
    format!("no Playbook '{playbook}' in namespace '{ns}': {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(name: Option<&str>, params: &[(&str, &str)]) -> Args {
        Args {
            playbook: "restart-redis".into(),
            namespace: None,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            name: name.map(str::to_string),
            dry_run: false,
        }
    }

    #[test]
    fn the_execution_is_requested_by_the_caller_with_string_params() {
        let exec = execution_for(&args(None, &[("Port", "6379"), ("Host", "r1")]), "alice");
        assert_eq!(
            exec.metadata.generate_name.as_deref(),
            Some("restart-redis-")
        );
        assert_eq!(exec.metadata.name, None);
        assert_eq!(exec.spec.requested_by.as_deref(), Some("alice"));
        assert_eq!(exec.spec.playbook_ref.name, "restart-redis");
        assert_eq!(
            exec.spec.params,
            Some(json!({"Port": "6379", "Host": "r1"}))
        );
    }

    #[test]
    fn a_name_replaces_the_generated_one_and_no_params_means_none() {
        let exec = execution_for(&args(Some("fix-it"), &[]), "bob");
        assert_eq!(exec.metadata.name.as_deref(), Some("fix-it"));
        assert_eq!(exec.metadata.generate_name, None);
        assert_eq!(exec.spec.params, None);
    }

    #[test]
    fn a_dry_run_lists_each_step_with_its_verdict_and_plan_hash() {
        let mut a = args(Some("dry-1"), &[("Env", "dev")]);
        a.dry_run = true;
        let mut exec = execution_for(&a, "alice");
        assert!(exec.spec.dry_run);
        exec.metadata.namespace = Some("ops".into());
        exec.metadata.uid = Some("u-1".into());
        let pb: PlaybookSpec = serde_yaml::from_str(
            "params: [{name: Env}]\nsteps:\n- {id: get, image: k:1, args: ['{{ .params.Env }}']}\n- {id: fix, image: k:1, phase: remediate, approval: {required: true}, when: '{{ eq .steps.get.outputs.x 1 }}'}\n- {id: prod-only, image: k:1, when: '{{ eq .params.Env \"prod\" }}'}",
        )
        .expect("parses");
        let out = dry_run_listing(&exec, &pb, &BTreeMap::new());
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("  1. get"), "{out}");
        assert!(
            lines[0].contains("Runs") && lines[0].contains("plan "),
            "{out}"
        );
        assert_eq!(lines[1].trim(), "k:1 dev");
        assert!(
            lines[2].contains("fix")
                && lines[2].contains("Unknown")
                && lines[2].contains("(needs approval)"),
            "{out}"
        );
        assert!(out.contains("when depends on step get's outputs"), "{out}");
        assert!(out.contains("when rendered false"), "{out}");
        assert!(
            out.ends_with("dry run, nothing ran: 3 steps: 1 run, 1 skipped, 1 depend on outputs\n"),
            "{out}"
        );
    }

    #[test]
    fn a_missing_playbook_suggests_close_names() {
        let names = ["restart-redis".to_string(), "disk-cleanup".to_string()];
        assert_eq!(
            playbook_not_found("restart-rdis", "ops", &names),
            "no Playbook 'restart-rdis' in namespace 'ops': did you mean 'restart-redis'?"
        );
        assert_eq!(
            playbook_not_found("nothing-like-it", "ops", &names),
            "no Playbook 'nothing-like-it' in namespace 'ops': `kubectl get pb -n ops` lists the playbooks (or pass -n NAMESPACE)"
        );
    }
}
