//! The `playbook-operator` binary: one command per job (see `playbook-operator --help`).

use std::process::ExitCode;

// jemalloc, not glibc's malloc: the watch caches allocate many small, long-lived
// objects from many threads, where glibc's per-thread arenas fragment and keep
// resident several times what the caches hold (measured by `make bench`'s memory
// bench).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    playbook_operator::cli::main()
}
