//! The `playbook-operator` binary: one command per job (see `playbook-operator --help`).

use std::process::ExitCode;

fn main() -> ExitCode {
    playbook_operator::cli::main()
}
