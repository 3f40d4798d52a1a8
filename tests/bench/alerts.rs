//! `make bench` (second part): an alert storm against the operator's webhook.
//!
//! The release `playbook-operator run` binary as a child process, with a bearer
//! token file and one Trigger for Alertmanager alerts. This process posts
//! `BENCH_ALERTS` (default 10,000) alerts as Alertmanager would: groups of
//! `BENCH_BATCH` (default 10) per request, `CONCURRENCY` requests at once; a fifth of
//! the requests are sent twice (Alertmanager's at-least-once delivery), so about 8,000
//! alerts are distinct and 2,000 are repeats. A 429 or 503 is retried after a short
//! pause, as Alertmanager retries.
//!
//! Reports accepted alerts per second, duplicates suppressed, the response time
//! (p50, p99, max) of every request, and whether any alert was lost: the Executions
//! in the namespace are counted afterwards and must equal the distinct alerts.
//!
//! The Trigger's Playbook does not exist, so the Executions wait for it and no Job
//! runs: this measures intake (webhook → API server), not playbook runs (the
//! controller bench does those).

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use common::TestNamespace;
use common::process::OperatorProcess;
use futures::StreamExt;
use kube::api::{Api, ListParams, PostParams};
use playbook_operator::api::{Execution, Trigger};
use serde_json::{Value, json};

const CONCURRENCY: usize = 16;
const TOKEN: &str = "bench-webhook-token";

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?}: expected a number")),
        Err(_) => Ok(default),
    }
}

fn main() -> anyhow::Result<()> {
    let alerts = env_number("BENCH_ALERTS", 10_000)?;
    let batch = env_number("BENCH_BATCH", 10)?.max(1);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(alerts, batch))
}

/// One Alertmanager notification of `batch` alerts, numbered from `first`.
fn notification(first: usize, batch: usize) -> Vec<u8> {
    let alerts: Vec<Value> = (first..first + batch)
        .map(|i| {
            json!({
                "status": "firing",
                "labels": {"alertname": "PodCrashLooping", "pod": format!("web-{i}"), "severity": "critical"},
                "annotations": {"summary": format!("web-{i} is crash-looping")},
                "startsAt": "2026-11-25T12:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": format!("{i:016x}"),
            })
        })
        .collect();
    json!({"version": "4", "status": "firing", "receiver": "bench", "alerts": alerts})
        .to_string()
        .into_bytes()
}

#[derive(Default)]
struct Counts {
    created: AtomicU64,
    duplicates: AtomicU64,
    retries: AtomicU64,
}

async fn bench(total: usize, batch: usize) -> anyhow::Result<()> {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::with_client(client.clone(), "bench-alerts").await;
    let dir = std::env::temp_dir().join(format!("pbo-{}", ns.name));
    std::fs::create_dir_all(&dir)?;
    let token_file = dir.join("tokens");
    std::fs::write(&token_file, format!("{TOKEN}\n"))?;
    let triggers: Api<Trigger> = ns.api();
    let trigger: Trigger = serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Trigger",
        "metadata": {"name": "crashloop"},
        "spec": {"playbookRef": {"name": "bench-absent"}, "sources": ["alertmanager"],
                 "match": {"labels": {"alertname": "PodCrashLooping"}}}
    }))?;
    triggers.create(&PostParams::default(), &trigger).await?;

    let addr: SocketAddr = {
        let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
        l.local_addr()?
    };
    let addr_text = addr.to_string();
    let token_path = token_file.display().to_string();
    let _operator = OperatorProcess::start(
        &ns,
        &[
            "--http-addr",
            &addr_text,
            "--webhook-token-file",
            &token_path,
        ],
    );
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str())];
    // Ready when the Trigger cache has listed (503 before).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let empty = br#"{"version": "4", "alerts": []}"#;
        let ok = tokio::time::timeout(
            Duration::from_secs(5),
            common::http::try_post(addr, "/webhooks/alertmanager", &headers, empty),
        )
        .await
        .is_ok_and(|r| r.is_ok_and(|(code, _)| code == 202));
        if ok {
            break;
        }
        if Instant::now() > deadline {
            bail!("the operator's webhook did not answer 202 within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every fifth request is sent twice: 4/5 of the alerts are distinct.
    let requests = total.div_ceil(batch);
    let mut plan: Vec<usize> = Vec::with_capacity(requests);
    let mut next = 0;
    for r in 0..requests {
        if r % 5 == 4 && r >= 5 {
            plan.push(plan[r - 5]); // a repeat of an earlier notification
        } else {
            plan.push(next);
            next += batch;
        }
    }
    let distinct: BTreeSet<usize> = plan.iter().copied().collect();
    let distinct_alerts = distinct.len() * batch;
    eprintln!(
        "[bench] {} alerts in {requests} requests of {batch} ({distinct_alerts} distinct), {CONCURRENCY} at once",
        requests * batch
    );

    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(plan)
        .map(|first| {
            let (counts, auth) = (Arc::clone(&counts), auth.clone());
            async move {
                let body = notification(first, batch);
                let headers = [("Authorization", auth.as_str())];
                let mut times = Vec::new();
                loop {
                    let sent = Instant::now();
                    let (code, text) =
                        common::http::post(addr, "/webhooks/alertmanager", &headers, &body).await;
                    times.push(sent.elapsed());
                    match code {
                        202 => {
                            let answer: Value = serde_json::from_str(&text).unwrap_or_default();
                            let n = |k: &str| answer[k].as_array().map_or(0, |a| a.len() as u64);
                            counts.created.fetch_add(n("created"), Ordering::Relaxed);
                            counts
                                .duplicates
                                .fetch_add(n("duplicates"), Ordering::Relaxed);
                            return times;
                        }
                        429 | 503 => {
                            counts.retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        other => panic!("the webhook answered {other}: {text}"),
                    }
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    let wall = start.elapsed();
    latencies.sort();

    let executions: Api<Execution> = ns.api();
    let found = executions
        .list_metadata(&ListParams::default().labels("stackpulse.io/trigger=crashloop"))
        .await?
        .items
        .len();
    let created = counts.created.load(Ordering::Relaxed);
    let duplicates = counts.duplicates.load(Ordering::Relaxed);
    let q = |p: f64| {
        let i = ((latencies.len().saturating_sub(1)) as f64 * p).round() as usize;
        latencies.get(i).copied().unwrap_or_default()
    };
    println!();
    println!(
        "alert storm: {} alerts posted to /webhooks/alertmanager ({batch} per request, {CONCURRENCY} requests at once)",
        requests * batch
    );
    println!("| | |");
    println!("|---|---|");
    println!("| wall time | {:.2} s |", wall.as_secs_f64());
    println!(
        "| accepted alerts/s | {:.0} |",
        (requests * batch) as f64 / wall.as_secs_f64()
    );
    println!("| Executions created | {created} |");
    println!("| duplicates suppressed | {duplicates} |");
    println!(
        "| 429/503 answers retried | {} |",
        counts.retries.load(Ordering::Relaxed)
    );
    println!(
        "| response time p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        q(0.5).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!("| Executions in the namespace | {found} (distinct alerts: {distinct_alerts}) |");
    let lost = distinct_alerts.saturating_sub(found);
    println!("| alerts lost | {lost} |");
    if found != distinct_alerts || created as usize != distinct_alerts {
        bail!(
            "{distinct_alerts} distinct alerts, but {found} Executions exist and {created} were reported created"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    ns.cleanup().await;
    Ok(())
}
