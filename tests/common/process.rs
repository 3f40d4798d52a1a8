//! The operator as a child process: the real `playbook-operator run` binary, for the
//! tests that must SIGKILL it and for the benchmark that measures its memory.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TestNamespace;

/// The operator as a child process, its stdout and stderr appended to one file. Killed
/// when dropped; if the test is panicking, the file is printed first, so a failure
/// shows what every incarnation of the controller did.
pub struct OperatorProcess {
    args: Vec<String>,
    namespace: String,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl OperatorProcess {
    /// `playbook-operator run -n NS --log-format json ARGS...`.
    pub fn start(ns: &TestNamespace, args: &[&str]) -> Self {
        let log = std::env::temp_dir().join(format!("playbook-operator-{}.log", ns.name));
        let mut p = Self {
            args: args.iter().map(|a| a.to_string()).collect(),
            namespace: ns.name.clone(),
            log,
            child: None,
            starts: 0,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        self.starts += 1;
        self.note(&format!("start #{}", self.starts));
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.log.display()));
        let err = out.try_clone().expect("cloning the log file handle");
        let child = Command::new(env!("CARGO_BIN_EXE_playbook-operator"))
            .args(["run", "-n", &self.namespace, "--log-format", "json"])
            .args(&self.args)
            .env("KUBECONFIG", super::kubeconfig_path())
            .env("RUST_LOG", "info")
            // Any free port for /metrics: tests (and other operators on the machine)
            // run side by side; an `--http-addr` in ARGS still wins over the env.
            .env("PLAYBOOK_OPERATOR_HTTP_ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting playbook-operator run");
        self.child = Some(child);
    }

    /// SIGKILL (what `Child::kill` sends on Unix), after checking the operator was
    /// still running: one that died by itself would make this test prove nothing.
    pub fn kill(&mut self, moment: &str) {
        let mut child = self.child.take().expect("the operator is running");
        let exited = child.try_wait().expect("polling the operator");
        assert!(
            exited.is_none(),
            "the operator exited by itself ({exited:?}) before the kill {moment}"
        );
        child.kill().expect("SIGKILL to the operator");
        child.wait().expect("reaping the operator");
        self.note(&format!("SIGKILL {moment}"));
    }

    /// The running incarnation's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the operator is running").id()
    }

    pub fn restart(&mut self) {
        self.spawn();
    }

    /// Polls the log (all incarnations) until it contains `text`.
    pub async fn wait_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the operator did not log {text:?} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A marker line in the log, between the JSON lines of two incarnations.
    pub fn note(&self, what: &str) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.log.display()));
        let _ = writeln!(f, "=== test: {what} ===");
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("---- operator log {} ----\n{text}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}
