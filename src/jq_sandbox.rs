//! Output parsers' jq filters, run in a child process with limits.
//!
//! jq is a complete programming language and a playbook's author is not necessarily
//! the operator's: `def f: 1 + f; f` overflows the stack (which aborts a process, no
//! Rust code can catch it), `until(false; .)` never ends, `[repeat(1)]` allocates
//! until the kernel kills something. Run in the controller, each would take down
//! every playbook in the cluster, again after each restart (the log is parsed
//! again). So `run` installs [`evaluate`] as the engine's jq evaluator: the operator's
//! own binary, started as `playbook-operator jq-sandbox`, runs the filter under an
//! address-space and CPU limit and is killed after a wall-clock timeout. A bad filter
//! then fails its step with a message saying what to change. The cost is one process
//! start (a few milliseconds) per step whose parser has a `jq` filter.
//!
//! The memory limit fits inside the operator's pod: half the container's cgroup
//! memory limit, at most 1 GiB ([`sandbox_memory`]), so the operator keeps the other
//! half however much the filter takes; `--jq-memory-bytes` overrides it. The child
//! also volunteers first for the kernel's OOM killer. Filters run where the
//! controller plans (a blocking thread, see `controller::execution`), so the wait
//! for the child never holds an async runtime worker.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wait_timeout::ChildExt;

use crate::engine::parse::jq;

/// The hidden subcommand that runs one filter.
pub const SUBCOMMAND: &str = "jq-sandbox";

/// Longest a filter may run, wall clock (the CPU limit is the same number of seconds).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Most memory a filter's process may map when the operator has no memory limit
/// (and the most it ever gets by default).
pub const MAX_MEMORY_BYTES: u64 = 1024 * 1024 * 1024;

/// The limit [`install`] chose, for [`evaluate`].
static MEMORY_BYTES: OnceLock<u64> = OnceLock::new();

/// The cgroup files that hold the container's memory limit: v2, then v1.
const CGROUP_MEMORY_FILES: [&str; 2] = [
    "/sys/fs/cgroup/memory.max",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
];

/// Most bytes of the child's stderr kept to explain how it died.
const STDERR_BYTES: u64 = 4096;

/// Borrowed when sent (a step output can be megabytes: no copy), owned when read.
#[derive(Serialize, Deserialize)]
struct Request<'a> {
    code: Cow<'a, str>,
    input: Cow<'a, Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Reply {
    Ok(Vec<Value>),
    Error(String),
}

/// Makes every jq filter run through [`evaluate`] from now on, each child limited to
/// `memory_bytes` of address space. Returns that limit.
pub fn install(memory_bytes: u64) -> u64 {
    let limit = *MEMORY_BYTES.get_or_init(|| memory_bytes);
    jq::isolate(evaluate);
    limit
}

/// The sandbox's memory limit for an operator whose container may use
/// `cgroup_limit` bytes (None: unlimited): half of it, so a filter at its limit
/// leaves the operator the other half (its own use is a small fraction of the
/// chart's 512Mi), and at most [`MAX_MEMORY_BYTES`].
pub fn sandbox_memory(cgroup_limit: Option<u64>) -> u64 {
    cgroup_limit.map_or(MAX_MEMORY_BYTES, |l| (l / 2).min(MAX_MEMORY_BYTES))
}

/// A cgroup memory limit file's text: a number of bytes, or unlimited (`max` in
/// v2; v1 writes a number near 2^63).
pub fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let n: u64 = text.trim().parse().ok()?;
    (n < 1 << 60).then_some(n)
}

/// This process's container memory limit, from the cgroup files (None: unlimited
/// or not in a memory cgroup).
pub fn cgroup_memory_limit() -> Option<u64> {
    CGROUP_MEMORY_FILES
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .and_then(|text| parse_cgroup_limit(&text))
}

/// Runs `code` on `input` in a child process of this binary: the filter's values,
/// or why not.
pub fn evaluate(code: &str, input: &Value) -> Result<Vec<Value>, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("the jq sandbox could not find the operator binary: {e}"))?;
    let memory = *MEMORY_BYTES.get_or_init(|| sandbox_memory(cgroup_memory_limit()));
    evaluate_with(&exe, memory, code, input)
}

/// [`evaluate`] with the `playbook-operator` binary at `exe`, the child limited to
/// `memory_bytes` of address space.
pub fn evaluate_with(
    exe: &Path,
    memory_bytes: u64,
    code: &str,
    input: &Value,
) -> Result<Vec<Value>, String> {
    let request = serde_json::to_vec(&Request {
        code: Cow::Borrowed(code),
        input: Cow::Borrowed(input),
    })
    .map_err(|e| format!("the jq sandbox could not encode the step output: {e}"))?;
    let mut child = Command::new(exe)
        .arg(SUBCOMMAND)
        .arg(format!("--memory-bytes={memory_bytes}"))
        // The filter sees nothing of the operator's environment.
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("the jq sandbox could not start: {e}"))?;
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        return Err("the jq sandbox could not start: no pipes".into());
    };
    // Threads, so that a child that stops reading (or never stops writing) cannot
    // block the other pipes; all three end when the child does.
    let writer = std::thread::spawn(move || stdin.write_all(&request));
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let errors = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.take(STDERR_BYTES).read_to_string(&mut err);
        err
    });
    let status = match child.wait_timeout(TIMEOUT) {
        Ok(Some(status)) => Some(status),
        Ok(None) | Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    };
    let _ = writer.join();
    let out = reader.join().ok().and_then(Result::ok).unwrap_or_default();
    let err = errors.join().unwrap_or_default();
    match status {
        None => Err(format!(
            "the jq filter ran longer than {}s and was stopped: look for a loop without end (until, while, repeat, recurse, or a function that calls itself without a base case)",
            TIMEOUT.as_secs()
        )),
        Some(status) if status.success() => match serde_json::from_slice::<Reply>(&out) {
            Ok(Reply::Ok(values)) => Ok(values),
            Ok(Reply::Error(message)) => Err(message),
            Err(e) => Err(format!("the jq sandbox answered something unreadable: {e}")),
        },
        Some(status) => Err(died(&status.to_string(), &err, memory_bytes)),
    }
}

/// Why the child died, in terms of what the filter did.
fn died(status: &str, stderr: &str, memory_bytes: u64) -> String {
    if stderr.contains("overflowed its stack") {
        "the jq filter recursed too deep and was stopped: a function that calls itself needs a base case".into()
    } else if stderr.contains("memory allocation") || status.contains("signal: 9") {
        // An allocation past the rlimit aborts; the kernel's OOM killer sends 9.
        format!(
            "the jq filter needed more than {} MiB of memory and was stopped: limit what it collects (e.g. limit(n; ...) or first(...))",
            memory_bytes / (1024 * 1024)
        )
    } else if status.contains("signal: 24") || status.contains("SIGXCPU") {
        format!(
            "the jq filter used more than {}s of CPU and was stopped: look for a loop without end",
            TIMEOUT.as_secs()
        )
    } else {
        let last = stderr.lines().last().unwrap_or("").trim();
        format!(
            "the jq sandbox died ({status}){}",
            if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            }
        )
    }
}

/// `playbook-operator jq-sandbox --memory-bytes N`: reads a request on stdin,
/// answers on stdout.
pub fn child_main(memory_bytes: u64) -> ExitCode {
    // Should the pod run short of memory all the same (filters of several steps at
    // once), the kernel kills this child rather than the operator. Best effort: a
    // process may always raise its own score.
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
    let limit = |resource, value| rlimit::setrlimit(resource, value, value);
    if let Err(e) = limit(rlimit::Resource::AS, memory_bytes)
        .and_then(|()| limit(rlimit::Resource::CPU, TIMEOUT.as_secs()))
    {
        eprintln!("jq-sandbox: setting limits: {e}");
        return ExitCode::FAILURE;
    }
    let mut request = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut request) {
        eprintln!("jq-sandbox: reading the request: {e}");
        return ExitCode::FAILURE;
    }
    let reply = match serde_json::from_slice::<Request>(&request) {
        Ok(r) => match jq::run_here(&r.code, &r.input) {
            Ok(values) => Reply::Ok(values),
            Err(message) => Reply::Error(message),
        },
        Err(e) => Reply::Error(format!("the jq sandbox got an unreadable request: {e}")),
    };
    match serde_json::to_writer(std::io::stdout().lock(), &reply) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jq-sandbox: writing the reply: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: u64 = 1024 * 1024;

    #[test]
    fn the_sandbox_takes_half_the_container_limit_at_most_1_gib() {
        for (cgroup, want) in [
            (None, 1024 * MI),
            (Some(512 * MI), 256 * MI),
            (Some(256 * MI), 128 * MI),
            (Some(2048 * MI), 1024 * MI),
            (Some(64 * 1024 * MI), 1024 * MI),
        ] {
            assert_eq!(sandbox_memory(cgroup), want, "{cgroup:?}");
            assert!(cgroup.is_none_or(|c| want < c), "{cgroup:?}");
        }
    }

    #[test]
    fn cgroup_files_read_as_limits_or_unlimited() {
        for (text, want) in [
            ("536870912\n", Some(536_870_912)),
            ("max\n", None),
            // cgroup v1's "unlimited": the largest page-aligned i64.
            ("9223372036854771712\n", None),
            ("", None),
            ("garbage", None),
        ] {
            assert_eq!(parse_cgroup_limit(text), want, "{text:?}");
        }
    }

    #[test]
    fn deaths_are_explained_with_the_limit_in_force() {
        let oom = died(
            "exit status: 134",
            "memory allocation of 8 bytes failed",
            256 * MI,
        );
        assert!(oom.contains("more than 256 MiB"), "{oom}");
        let killed = died("signal: 9 (SIGKILL)", "", 128 * MI);
        assert!(killed.contains("more than 128 MiB"), "{killed}");
    }
}
