//! `playbook-operator start PLAYBOOK --param K=V`: creates an Execution of a Playbook
//! in the caller's name.
//!
//! `spec.requestedBy` is the user name the API server reports for the caller
//! (SelfSubjectReview), the one value the admission policy accepts; so the run works
//! the same with or without the mutating policy that would otherwise fill it in.

use std::process::ExitCode;

use anyhow::anyhow;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::cluster::{self, api_error};
use super::render::{params_object, parse_param};
use crate::api::{Execution, ExecutionSpec, LocalRef, Playbook};
use crate::engine::message::close_to;

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
    if found.is_none() {
        // Only for the hint: without list permission the message just lacks it.
        let names: Vec<String> = playbooks
            .list_metadata(&ListParams::default())
            .await
            .map(|l| l.items.iter().map(|p| p.name_any()).collect())
            .unwrap_or_default();
        return Err(anyhow!(playbook_not_found(&args.playbook, ns, &names)));
    }
    let executions: Api<Execution> = Api::namespaced(session.client, ns);
    let exec = execution_for(args, &user);
    let created = executions
        .create(&PostParams::default(), &exec)
        .await
        .map_err(|e| api_error(e, &format!("creating an Execution of '{}'", args.playbook)))?;
    let name = created.name_any();
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
