//! The binary as alice, bob and carol (their own kubeconfigs of the local cluster):
//! [`cli_as`], which the other approval tests use too, and `start`, `approve`,
//! `describe` and `report` from the shell.

use std::path::PathBuf;
use std::process::Output;

use playbook_operator::api::{Execution, ExecutionPhase};
use serde_json::{Value, json};

use crate::common::on_call::plan_hash;
use crate::common::{self, operator::*};
use crate::{setup_guarded, wait_for_approval_step};

/// The user's own kubeconfig of the local cluster (a real token): the binary is run
/// as that user. Panics, naming the fix, against a cluster without one.
fn kubeconfig_of(user: &str) -> PathBuf {
    let path = common::kubeconfig_path().with_file_name(format!("kubeconfig-{user}"));
    assert!(
        path.is_file(),
        "{} does not exist: the binary tests of `start` and `approve` run as alice and bob \
         with the local cluster's kubeconfigs (tests/cluster/up.sh writes them); {}",
        path.display(),
        common::START_HINT
    );
    path
}

/// `playbook-operator ARGS` as `user`.
pub(crate) async fn cli_as(user: &str, args: &[&str]) -> Output {
    let kubeconfig = kubeconfig_of(user);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_playbook-operator"))
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .output()
            .expect("the binary runs")
    })
    .await
    .expect("the command's thread")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_approve_from_the_shell() {
    let ns = setup_guarded("approve-cli").await;
    let operator = Operator::start(&ns);
    let n = ns.name.as_str();

    let out = cli_as("alice", &["start", "guardd", "-n", n]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "no Playbook 'guardd' in namespace '{n}': did you mean 'guarded'?"
        )),
        "{stderr}"
    );

    let out = cli_as(
        "alice",
        &[
            "start",
            "guarded",
            "-n",
            n,
            "--param",
            "Host=r1",
            "-p",
            "Port=6379",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let name = stdout
        .strip_prefix("execution ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no Execution name in: {stdout}"))
        .to_string();
    assert!(name.starts_with("guarded-"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "as 'alice'\nwatch it: kubectl get pbx {name} -n {n} -w"
        )),
        "{stdout}"
    );
    let exec = ns
        .api::<Execution>()
        .get(&name)
        .await
        .expect("the started Execution");
    assert_eq!(exec.spec.requested_by.as_deref(), Some("alice"));
    assert_eq!(
        exec.spec.params,
        Some(json!({"Host": "r1", "Port": "6379"}))
    );
    wait_for_approval_step(&ns, &name).await;

    let out = cli_as("alice", &["approve", &name, "restart", "-n", n]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("you ('alice') requested Execution '{name}'")),
        "{stderr}"
    );

    let out = cli_as("bob", &["approve", &name, "check", "-n", n]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "step 'check' of Execution '{name}' is not waiting for approval; 'restart' is: playbook-operator approve {name} restart -n {n}"
        )),
        "{stderr}"
    );

    // What the approver sees before deciding: the exact plan and its hash.
    let hash = plan_hash(&ns, &name, "restart").await;
    let out = cli_as("bob", &["describe", &name, "-n", n]).await;
    assert!(out.status.success(), "{out:?}");
    let shown = text(&out.stdout);
    for want in [
        "Phase:        WaitingApproval\n".to_string(),
        "Requested by: alice\n".to_string(),
        "  enrich:\n    check    Succeeded        attempt 1".to_string(),
        "    restart  WaitingApproval  attempt 0  0 of 1 approvals; waiting for one more from anyone but 'alice'".to_string(),
        format!("Plan of restart (hash {hash}):\n  image:    busybox\n"),
        format!("  approve:  playbook-operator approve {name} restart -n {n}\n"),
    ] {
        assert!(shown.contains(&want), "describe lacks {want:?}:\n{shown}");
    }

    let out = cli_as(
        "bob",
        &["approve", &name, "restart", "-n", n, "--reason", "checked"],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        format!(
            "approved step restart (plan {hash}) of Execution {name} in namespace {n} as 'bob': checked\n"
        )
    );
    let status = wait_final(&ns, &name).await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    let exec = ns
        .api::<Execution>()
        .get(&name)
        .await
        .expect("the Execution");
    let approvals = &exec.spec.approvals;
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    assert_eq!(
        (
            approvals[0].step.as_str(),
            approvals[0].user.as_str(),
            approvals[0].plan_hash.as_deref()
        ),
        ("restart", "bob", Some(hash.as_str()))
    );
    let out = cli_as("alice", &["describe", &name, "-n", n]).await;
    let shown = text(&out.stdout);
    assert!(
        shown.contains(&format!("Approvals:\n  bob          approve  restart  plan {hash}  groups [system:authenticated]  at ")),
        "{shown}"
    );
    assert!(approvals[0].at.is_some(), "{approvals:?}");
    let restart = step(&status, "restart");
    assert!(
        restart.waiting_since.is_some() && restart.started_at >= restart.waiting_since,
        "the wait is recorded for the review: {restart:?}"
    );

    // The review sees one run, not automated (a person approved), with its wait.
    let out = cli_as("alice", &["report", "-n", n, "--format", "json"]).await;
    assert!(out.status.success(), "{out:?}");
    let review: Value = serde_json::from_slice(&out.stdout).expect("report --format json");
    let total = &review["total"];
    assert_eq!(
        (
            &total["executions"],
            &total["succeeded"],
            &total["automated"]
        ),
        (&json!(1), &json!(1), &json!(0)),
        "{review:#}"
    );
    assert_eq!(total["approvalWait"]["count"], json!(1), "{review:#}");
    assert_eq!(
        review["playbooks"][0]["playbook"],
        json!(format!("{n}/guarded")),
        "{review:#}"
    );

    operator.stop().await;
    ns.cleanup().await;
}
