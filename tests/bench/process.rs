//! The operator as a child process of a bench: its HTTP address, readiness, metrics
//! and memory.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::common;

pub fn free_local_addr() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.to_string())
}

pub async fn wait_ready(addr: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if http_get(addr, "/readyz").await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the operator did not answer /readyz on {addr} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The body of a 200 answer to `GET path`, an error otherwise.
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let addr = addr
        .parse()
        .with_context(|| format!("{addr}: not an address"))?;
    let (status, body) = common::http::try_get(addr, path).await?;
    if status != 200 {
        bail!("GET {path}: {status}");
    }
    Ok(body)
}

/// The value of one series in a Prometheus text exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))?
        .trim()
        .parse()
        .ok()
}

/// A memory figure of `/proc/PID/status` in KiB: `VmRSS` (now), `VmHWM` (peak).
pub fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
