//! `make bench` (second part): an alert storm against the operator's webhook, beside
//! its floor, in one run on the same cluster.
//!
//! The storm: `BENCH_ALERTS` (default 10,000) Alertmanager alerts in groups of
//! `BENCH_BATCH` (default 10) per request, `CONCURRENCY` requests at once; a fifth of
//! the requests are sent twice (Alertmanager's at-least-once delivery), so about 8,000
//! alerts are distinct and 2,000 are repeats. A 429 or 503 is retried after a short
//! pause, as Alertmanager retries.
//!
//! 1. **Floor**: the same Executions created by this process straight at the API
//!    server: the objects the webhook would create (built by the operator's own
//!    `engine::alert` from the same bodies and an identical Trigger, so same size,
//!    labels, `spec.alert`, `requestedBy`), one batch per request, the batch's
//!    creates at once, `CONCURRENCY` batches at once. A repeat's creates get
//!    AlreadyExists. The admission policies of `crds/` are in force for both.
//! 2. **Webhook**: the release `playbook-operator run` binary as a child process,
//!    with a bearer token file and one Trigger; this process posts the bodies. Once
//!    as a **standby** replica (`--leader-elect`, the Lease held by the bench), so
//!    only intake runs, and once as the **leader**, whose controller also writes
//!    each new run's first status ("waiting for Playbook": the Trigger's Playbook
//!    does not exist, so no Job runs). `BENCH_INTAKE_MODES` (default
//!    `standby,leader`) picks them.
//!
//! Each half reports alerts per second (all posted, repeats included), the time per
//! request (p50, p99, max), what the API server counted (`apiserver_request_total`
//! deltas: writes per alert) and the CPU each process used; and whether any alert
//! was lost or created twice: the Executions in the half's namespace are counted
//! afterwards and must equal the distinct alerts.

mod apiserver;
#[path = "../common/mod.rs"]
mod common;
mod cpu;
mod intake;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context as _, bail};
use kube::api::{Api, ListParams, PostParams};
use playbook_operator::api::{Execution, Trigger};
use serde_json::{Value, json};

const CONCURRENCY: usize = 16;
const TRIGGER: &str = "crashloop";

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?}: expected a number")),
        Err(_) => Ok(default),
    }
}

/// Which webhook halves to run, from `BENCH_INTAKE_MODES`.
fn modes() -> anyhow::Result<Vec<intake::Mode>> {
    let list = std::env::var("BENCH_INTAKE_MODES").unwrap_or_else(|_| "standby,leader".into());
    list.split(',')
        .map(|m| match m.trim() {
            "standby" => Ok(intake::Mode::Standby),
            "leader" => Ok(intake::Mode::Leader),
            other => bail!("BENCH_INTAKE_MODES: {other:?} is neither standby nor leader"),
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let alerts = env_number("BENCH_ALERTS", 10_000)?;
    let batch = env_number("BENCH_BATCH", 10)?.max(1);
    let modes = modes()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(alerts, batch, modes))
}

/// One Alertmanager notification of `batch` alerts, numbered from `first`.
pub fn notification(first: usize, batch: usize) -> Vec<u8> {
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

/// The first alert of each request, in sending order: every fifth request (from the
/// tenth) repeats the one five before it, so 4/5 of the alerts are distinct.
fn request_plan(total: usize, batch: usize) -> Vec<usize> {
    let requests = total.div_ceil(batch);
    let mut plan: Vec<usize> = Vec::with_capacity(requests);
    let mut next = 0;
    for r in 0..requests {
        if r % 5 == 4 && r >= 5 {
            plan.push(plan[r - 5]);
        } else {
            plan.push(next);
            next += batch;
        }
    }
    plan
}

/// The bench's Trigger, created in `ns` (the admission policies stamp its writer);
/// returns it as the API server stored it.
async fn create_trigger(api: &Api<Trigger>) -> anyhow::Result<Trigger> {
    let trigger: Trigger = serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Trigger",
        "metadata": {"name": TRIGGER},
        "spec": {"playbookRef": {"name": "bench-absent"}, "sources": ["alertmanager"],
                 "match": {"labels": {"alertname": "PodCrashLooping"}}}
    }))?;
    Ok(api.create(&PostParams::default(), &trigger).await?)
}

/// What one half measured.
pub struct Half {
    pub label: String,
    pub wall: Duration,
    /// Every request's time (each try of a retried one), sorted.
    pub latencies: Vec<Duration>,
    pub created: u64,
    pub duplicates: u64,
    /// 429/503 answers (the webhook), or 429s (the API server, in the floor), retried.
    pub retries: u64,
    /// The bench's Executions in the half's namespace afterwards.
    pub found: usize,
    pub requests: apiserver::Requests,
    pub cpu: BTreeMap<String, f64>,
}

impl Half {
    fn quantile(&self, q: f64) -> Duration {
        let i = ((self.latencies.len().saturating_sub(1)) as f64 * q).round() as usize;
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

/// The bench's Executions in `api`'s namespace.
pub async fn count_executions(api: &Api<Execution>) -> anyhow::Result<usize> {
    let selector = format!("stackpulse.io/trigger={TRIGGER}");
    Ok(api
        .list_metadata(&ListParams::default().labels(&selector))
        .await?
        .items
        .len())
}

async fn bench(total: usize, batch: usize, modes: Vec<intake::Mode>) -> anyhow::Result<()> {
    let client = common::client().await;
    common::install_crds(&client).await;
    let plan = request_plan(total, batch);
    let distinct: BTreeSet<usize> = plan.iter().copied().collect();
    let distinct_alerts = distinct.len() * batch;
    let posted = plan.len() * batch;
    eprintln!(
        "[bench] {posted} alerts in {} requests of {batch} ({distinct_alerts} distinct), {CONCURRENCY} at once",
        plan.len()
    );
    // Floor first: the webhook halves then meet an etcd as full as the floor left it.
    let mut halves = vec![intake::floor(&client, &plan, batch).await?];
    for mode in modes {
        halves.push(intake::webhook(&client, &plan, batch, mode).await?);
    }
    report(posted, batch, distinct_alerts, &halves);
    for h in &halves {
        if h.found != distinct_alerts || h.created as usize != distinct_alerts {
            bail!(
                "{}: {distinct_alerts} distinct alerts, but {} Executions exist and {} were reported created",
                h.label,
                h.found,
                h.created
            );
        }
    }
    Ok(())
}

fn report(posted: usize, batch: usize, distinct: usize, halves: &[Half]) {
    let Some(floor) = halves.first() else {
        return;
    };
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    let rate = |h: &Half| posted as f64 / h.wall.as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "alert intake: {posted} alerts ({distinct} distinct), {batch} per request, {CONCURRENCY} requests at once; \
         Kubernetes {}, {cores} cores; operator build: {}",
        common::pinned_kubernetes_version(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!();
    let mut head = String::from("| |");
    let mut rule = String::from("|---|");
    for h in halves {
        head.push_str(&format!(" {} |", h.label));
        rule.push_str("---|");
        if !std::ptr::eq(h, floor) {
            head.push_str(" / floor |");
            rule.push_str("---|");
        }
    }
    println!("{head}\n{rule}");
    let row = |name: &str, value: &dyn Fn(&Half) -> f64, show: &dyn Fn(f64) -> String| {
        let mut line = format!("| {name} |");
        for h in halves {
            line.push_str(&format!(" {} |", show(value(h))));
            if !std::ptr::eq(h, floor) {
                line.push_str(&format!(" {:.2} |", value(h) / value(floor).max(1e-9)));
            }
        }
        println!("{line}");
    };
    let secs = |v: f64| format!("{v:.2} s");
    let msf = |v: f64| ms(Duration::from_secs_f64(v));
    row("wall time", &|h| h.wall.as_secs_f64(), &secs);
    row("alerts/s", &rate, &|v| format!("{v:.0}"));
    row("request p50", &|h| h.quantile(0.5).as_secs_f64(), &msf);
    row("request p99", &|h| h.quantile(0.99).as_secs_f64(), &msf);
    row(
        "request max",
        &|h| {
            h.latencies
                .last()
                .copied()
                .unwrap_or_default()
                .as_secs_f64()
        },
        &msf,
    );
    let count = |name: &str, value: &dyn Fn(&Half) -> String| {
        let mut line = format!("| {name} |");
        for h in halves {
            line.push_str(&format!(" {} |", value(h)));
            if !std::ptr::eq(h, floor) {
                line.push_str(" |");
            }
        }
        println!("{line}");
    };
    count("Executions created", &|h| h.created.to_string());
    count("duplicates (repeats answered as such)", &|h| {
        h.duplicates.to_string()
    });
    count("lost (distinct alerts without an Execution)", &|h| {
        distinct.saturating_sub(h.found).to_string()
    });
    count(
        "created twice (Executions beyond the distinct alerts)",
        &|h| h.found.saturating_sub(distinct).to_string(),
    );
    count("429/503 retried", &|h| h.retries.to_string());
    count("API server writes per alert", &|h| {
        format!("{:.2}", apiserver::writes(&h.requests) / posted as f64)
    });
    let procs: BTreeSet<&String> = halves.iter().flat_map(|h| h.cpu.keys()).collect();
    for p in procs {
        count(&format!("CPU {p}"), &|h| {
            h.cpu.get(p).map_or(String::new(), |v| format!("{v:.1} s"))
        });
    }
    for h in &halves[1..] {
        apiserver::print_writes("alert", posted, &floor.requests, &h.label, &h.requests);
    }
}
