//! The command line: parses arguments and hands each subcommand to its module.
//!
//! Offline commands (`crd`, `lint`, `convert`, `render`) need no cluster; `run` is
//! the operator itself; `start`, `approve`, `reject`, `describe` and `report` act on a
//! cluster as the caller.
//! Exit codes: 0 success, 1 the input has problems (reported on stderr), 2 usage.

pub mod approve;
pub mod cluster;
mod convert;
pub mod crd;
mod describe;
mod lint;
mod render;
mod report;
mod run;
mod start;

/// Who the API server says the client is (the operator's `requestedBy` on alerts).
pub use cluster::whoami;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Incident-response playbooks as Kubernetes resources.
#[derive(Parser, Debug)]
#[command(name = "playbook-operator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions (what `crds/` holds) as YAML.
    Crd {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<std::path::PathBuf>,
    },
    /// Check playbook files offline: schema, templates, step references, cycles,
    /// parsers. Exit 1 when there is an error; warnings alone pass.
    Lint {
        /// Files to check (canonical resources or StackPulse dialect).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Turn StackPulse-dialect Playbook and Trigger files into canonical resources
    /// (stdout); what changed is listed on stderr.
    Convert {
        /// Files to convert.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Print, as YAML, the Jobs the first steps of an Execution would create
    /// (secrets as references); skipped or waiting steps are listed on stderr.
    Render(render::Args),
    /// Run the operator: drive every Execution (in one namespace or all) from
    /// Pending to a final phase, running its steps as Jobs. Stops on SIGTERM/SIGINT.
    /// Boxed: its flags (election, webhooks) make it much larger than the others.
    Run(Box<run::Args>),
    /// Start a run of a Playbook: create an Execution requested by you, with params.
    Start(start::Args),
    /// Approve the plan of a step waiting for approval, as you; someone other than
    /// the run's requester must approve (four eyes).
    Approve(approve::Args),
    /// Reject a step waiting for approval, as you, with a reason: the step fails
    /// (finally steps still run).
    Reject(approve::RejectArgs),
    /// Show an Execution for a person: phase, steps by incident phase, the plan a
    /// waiting step would run and its hash, and the approvals given.
    Describe(describe::Args),
    /// The incident review: outcomes, time to enrich/triage/remediate, approval
    /// waits, automation share and failing steps, per playbook.
    Report(report::Args),
    /// Internal: runs one output parser's jq filter for `run` (see `jq_sandbox`).
    #[command(name = "jq-sandbox", hide = true)]
    JqSandbox {
        /// Most address space the filter's process may map.
        #[arg(long, default_value_t = crate::jq_sandbox::MAX_MEMORY_BYTES)]
        memory_bytes: u64,
    },
}

/// Parse the command line, run the subcommand, and turn its outcome into an exit code:
/// 0 success, 1 the input has problems (reported on stderr), 2 usage errors (clap).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd { out_dir } => crd::run(out_dir.as_deref()),
        Command::Lint { files } => lint::run(&files),
        Command::Convert { files } => convert::run(&files),
        Command::Render(args) => render::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Start(args) => start::run(&args),
        Command::Approve(args) => approve::run(&args),
        Command::Reject(args) => approve::run_reject(&args),
        Command::Describe(args) => describe::run(&args),
        Command::Report(args) => report::run(&args),
        Command::JqSandbox { memory_bytes } => {
            return crate::jq_sandbox::child_main(memory_bytes);
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
