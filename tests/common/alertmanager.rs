//! A real Alertmanager (the binary tests/cluster/build.sh builds) that sends its
//! webhook to an operator under test, with small intervals so a test sees the first
//! notification within a second (`alerts_e2e`, `catalogue_e2e`).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::post;

/// A file with `text` under a fresh temp dir (removed when the test ends).
pub fn temp_file(dir: &PathBuf, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a temp file");
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A real Alertmanager, killed when dropped; its log is printed if the test failed.
pub struct Alertmanager {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Alertmanager {
    /// Sends every alert to `operator`'s `/webhooks/alertmanager` with bearer `token`.
    pub fn start(dir: &PathBuf, operator: SocketAddr, token: &str) -> Self {
        let bin = super::local_cluster_env()
            .and_then(|env| env.get("BIN_DIR").cloned())
            .map(|d| PathBuf::from(d).join("alertmanager"))
            .filter(|p| p.is_file())
            .expect("alertmanager in the local cluster's bin dir: run tests/cluster/build.sh (make cluster-up)");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        // Small intervals so the test sees the first notification within a second
        // and repeats (the at-least-once redeliveries to deduplicate) every 2 s.
        let config = format!(
            r#"
route:
  receiver: operator
  group_by: [alertname, instance]
  group_wait: 200ms
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: operator
    webhook_configs:
      - url: http://{operator}/webhooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"#
        );
        let config = temp_file(dir, "alertmanager.yml", &config);
        let log = dir.join("alertmanager.log");
        let out = std::fs::File::create(&log).expect("the Alertmanager log file");
        let err = out.try_clone().expect("cloning a file handle");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address={addr}"))
            // No HA peers: a single instance (the gossip port would be another one).
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("starting alertmanager");
        Self { child, addr, log }
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = tokio::net::TcpStream::connect(self.addr).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = s.write_all(b"GET /-/ready HTTP/1.0\r\n\r\n").await;
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer).await;
                if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager not ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn post_alerts(&self, alerts: &Value) {
        let (code, body) = post(
            self.addr,
            "/api/v2/alerts",
            &[],
            alerts.to_string().as_bytes(),
        )
        .await;
        assert_eq!(code, 200, "Alertmanager refused the alerts: {body}");
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("---- alertmanager log {} ----\n{text}", self.log.display());
        }
    }
}
