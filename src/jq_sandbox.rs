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

use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wait_timeout::ChildExt;

use crate::engine::parse::jq;

/// The hidden subcommand that runs one filter.
pub const SUBCOMMAND: &str = "jq-sandbox";

/// Longest a filter may run, wall clock (the CPU limit is the same number of seconds).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Most memory a filter's process may map.
const MEMORY_BYTES: u64 = 1024 * 1024 * 1024;

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

/// Makes every jq filter run through [`evaluate`] from now on.
pub fn install() {
    jq::isolate(evaluate);
}

/// Runs `code` on `input` in a child process of this binary: the filter's values,
/// or why not.
pub fn evaluate(code: &str, input: &Value) -> Result<Vec<Value>, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("the jq sandbox could not find the operator binary: {e}"))?;
    evaluate_with(&exe, code, input)
}

/// [`evaluate`] with the `playbook-operator` binary at `exe`.
pub fn evaluate_with(exe: &Path, code: &str, input: &Value) -> Result<Vec<Value>, String> {
    let request = serde_json::to_vec(&Request {
        code: Cow::Borrowed(code),
        input: Cow::Borrowed(input),
    })
    .map_err(|e| format!("the jq sandbox could not encode the step output: {e}"))?;
    let mut child = Command::new(exe)
        .arg(SUBCOMMAND)
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
        Some(status) => Err(died(&status.to_string(), &err)),
    }
}

/// Why the child died, in terms of what the filter did.
fn died(status: &str, stderr: &str) -> String {
    if stderr.contains("overflowed its stack") {
        "the jq filter recursed too deep and was stopped: a function that calls itself needs a base case".into()
    } else if stderr.contains("memory allocation") {
        format!(
            "the jq filter needed more than {} MiB of memory and was stopped: limit what it collects (e.g. limit(n; ...) or first(...))",
            MEMORY_BYTES / (1024 * 1024)
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

/// `playbook-operator jq-sandbox`: reads a request on stdin, answers on stdout.
pub fn child_main() -> ExitCode {
    let limit = |resource, value| rlimit::setrlimit(resource, value, value);
    if let Err(e) = limit(rlimit::Resource::AS, MEMORY_BYTES)
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
