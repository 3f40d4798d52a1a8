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
    /// Environment on top of the defaults (`KUBECONFIG` here wins over the harness's).
    env: Vec<(String, String)>,
    namespace: String,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
    /// Length of the log file when the running incarnation started.
    start_offset: u64,
}

impl OperatorProcess {
    /// `playbook-operator run -n NS --log-format json ARGS...`.
    pub fn start(ns: &TestNamespace, args: &[&str]) -> Self {
        Self::start_as(ns, "", args, &[])
    }

    /// Like [`OperatorProcess::start`], with `env` on top (e.g. another `KUBECONFIG`:
    /// another identity), logging to a file of its own: `name` tells apart several
    /// operators in one namespace.
    pub fn start_as(ns: &TestNamespace, name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let suffix = if name.is_empty() {
            String::new()
        } else {
            format!("-{name}")
        };
        let log = std::env::temp_dir().join(format!("playbook-operator-{}{suffix}.log", ns.name));
        let mut p = Self {
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            namespace: ns.name.clone(),
            log,
            child: None,
            starts: 0,
            start_offset: 0,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        self.starts += 1;
        self.note(&format!("start #{}", self.starts));
        self.start_offset = std::fs::metadata(&self.log).map_or(0, |m| m.len());
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
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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

    /// False once the running incarnation has exited (it stays to be reaped by
    /// [`OperatorProcess::exited`]).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The exit status if the running incarnation has exited by itself (it is then
    /// reaped and noted in the log; [`OperatorProcess::restart`] starts the next).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().expect("polling the operator")?;
        self.child = None;
        self.note(&format!("exited by itself: {status}"));
        Some(status)
    }

    /// SIGTERM (what Kubernetes sends a stopping pod), then waits up to 20 s for the
    /// operator to exit by itself; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the operator is running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("running kill -TERM");
        assert!(sent.success(), "kill -TERM {} failed", child.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("polling the operator") {
                self.note(&format!("SIGTERM: exited with {status}"));
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the operator did not exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address the running incarnation serves HTTP on (from its "serving HTTP"
    /// log line; the harness starts it on port 0).
    pub async fn http_addr(&self) -> std::net::SocketAddr {
        self.wait_log("serving HTTP").await;
        self.log()
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["fields"]["message"] == "serving HTTP")
            .and_then(|l| l["fields"]["addr"].as_str()?.parse().ok())
            .expect("the serving HTTP line names its address")
    }

    /// Everything the operator logged so far (all incarnations).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The running incarnation's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the operator is running").id()
    }

    pub fn restart(&mut self) {
        self.spawn();
    }

    /// What the running (or last) incarnation logged so far: cheap to poll when
    /// many incarnations came before it.
    pub fn incarnation_log(&self) -> String {
        use std::io::{Read as _, Seek as _};
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log)
            && f.seek(std::io::SeekFrom::Start(self.start_offset)).is_ok()
        {
            let _ = f.read_to_string(&mut text);
        }
        text
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
