//! `make bench`: the memory of `playbook-operator run` with many finished Executions.
//!
//! One real run of a 4-step Playbook (each step prints ~2 KiB of JSON, its output)
//! started by an Alertmanager alert gives the status a finished run really has; N
//! Executions with that alert and that status (written by server-side apply under the
//! operator's field manager, so their managedFields are the real ones too) are then
//! created with no operator running. A fresh operator is started, and its resident
//! memory (`VmRSS`) read once its caches hold them and it has reconciled each once;
//! then the same with 1,000 more, and the growth.
//!
//! Env: `BENCH_MEMORY_EXECUTIONS` (default 10,000). Needs a cluster: `make bench`
//! starts one.

#[path = "../common/mod.rs"]
mod common;
mod process;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use common::TestNamespace;
use common::process::OperatorProcess;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, Patch, PatchParams, PostParams};
use playbook_operator::api::{Execution, ExecutionPhase, Playbook};
use serde_json::{Value, json};

const STEPS: usize = 4;
const MORE: usize = 1000;
const CONCURRENCY: usize = 32;

fn main() -> anyhow::Result<()> {
    let n: usize = match std::env::var("BENCH_MEMORY_EXECUTIONS") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("BENCH_MEMORY_EXECUTIONS={v:?}: expected a number"))?,
        Err(_) => 10_000,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(n))
}

/// ~2 KiB of JSON, what each step prints.
fn output() -> String {
    let items: Vec<Value> = (0..24)
        .map(|i| json!({"pod": format!("redis-{i}-7d9f8b6c5d-x2k4q"), "ready": i % 3 != 0, "restarts": i}))
        .collect();
    format!("{}\n", json!({"items": items, "checked": 24}))
}

fn alert() -> anyhow::Result<Value> {
    let text = std::fs::read_to_string("examples/alerts/alertmanager-redis-down.json")
        .context("reading the example alert")?;
    let payload: Value = serde_json::from_str(&text)?;
    payload["alerts"]
        .get(0)
        .cloned()
        .context("the example has an alert")
}

async fn bench(n: usize) -> anyhow::Result<()> {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = TestNamespace::with_client(client.clone(), "bench-memory").await;
    ns.set_default_log(&output()).await;
    let steps: Vec<_> = (1..=STEPS)
        .map(|i| {
            json!({"id": format!("s{i}"), "image": "busybox",
                        "env": {"ALERT": "{{ .alert.labels.instance }}"}})
        })
        .collect();
    let playbook: Playbook = serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Playbook",
        "metadata": {"name": "mem"}, "spec": {"steps": steps}
    }))?;
    ns.api::<Playbook>()
        .create(&PostParams::default(), &playbook)
        .await
        .context("creating the Playbook")?;
    let execs: Api<Execution> = ns.api();
    let alert = alert()?;

    eprintln!("[bench] memory: one real run for the status of a finished run");
    let status = {
        let addr = process::free_local_addr()?;
        let _operator = OperatorProcess::start(&ns, &["--http-addr", &addr]);
        process::wait_ready(&addr).await?;
        create(&execs, "template", &alert).await?;
        finished_status(&execs, "template").await?
    };
    eprintln!("[bench] memory: {n} finished Executions, no operator running");
    let started = Instant::now();
    fill(&execs, 0..n, &alert, &status).await?;
    eprintln!("[bench] memory: created in {:.0?}", started.elapsed());

    let addr = process::free_local_addr()?;
    let operator = OperatorProcess::start(&ns, &["--http-addr", &addr]);
    process::wait_ready(&addr).await?;
    let first = settle(&addr, operator.pid(), n + 1).await?;
    drop(operator);
    // The 1,000 more are measured as the first: created with no operator running (a
    // run created while one runs would be started before its status is written), then
    // a fresh operator's RSS, so the difference is what 1,000 runs cost in the cache.
    fill(&execs, n..n + MORE, &alert, &status).await?;
    let addr = process::free_local_addr()?;
    let operator = OperatorProcess::start(&ns, &["--http-addr", &addr]);
    process::wait_ready(&addr).await?;
    let more = settle(&addr, operator.pid(), n + 1 + MORE).await?;
    drop(operator);
    ns.cleanup().await;

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!();
    println!("| finished Executions | operator RSS |");
    println!("|---|---|");
    println!("| {} | {:.1} MiB |", n + 1, mib(first));
    println!("| {} | {:.1} MiB |", n + 1 + MORE, mib(more));
    println!(
        "\ngrowth per 1,000 more: {:.1} MiB",
        (mib(more) - mib(first)) * 1000.0 / MORE as f64
    );
    Ok(())
}

async fn create(execs: &Api<Execution>, name: &str, alert: &Value) -> anyhow::Result<()> {
    let exec: Execution = serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Execution",
        "metadata": {"name": name},
        "spec": {"playbookRef": {"name": "mem"}, "alert": alert}
    }))?;
    execs
        .create(&PostParams::default(), &exec)
        .await
        .with_context(|| format!("creating {name}"))?;
    Ok(())
}

async fn finished_status(execs: &Api<Execution>, name: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let exec = execs.get(name).await?;
        if let Some(status) = exec.status.as_ref().filter(|s| s.phase.is_final()) {
            if status.phase != ExecutionPhase::Succeeded {
                bail!("the template run ended {:?}", status.phase);
            }
            return Ok(serde_json::to_value(status)?);
        }
        if Instant::now() > deadline {
            bail!("the template run did not finish within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates `mem-I` for each I in `range`, each with `status` written as the operator
/// writes it.
async fn fill(
    execs: &Api<Execution>,
    range: std::ops::Range<usize>,
    alert: &Value,
    status: &Value,
) -> anyhow::Result<()> {
    let pp = PatchParams::apply(playbook_operator::controller::FIELD_MANAGER).force();
    futures::stream::iter(range)
        .map(|i| {
            let pp = pp.clone();
            async move {
                let name = format!("mem-{i}");
                create(execs, &name, alert).await?;
                let patch = json!({
                    "apiVersion": "stackpulse.io/v1", "kind": "Execution", "status": status
                });
                execs
                    .patch_status(&name, &pp, &Patch::Apply(&patch))
                    .await
                    .with_context(|| format!("writing the status of {name}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// The operator's RSS (KiB) once it has reconciled at least `count` Executions and its
/// memory has stopped moving.
async fn settle(addr: &str, pid: u32, count: usize) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let metrics = process::http_get(addr, "/metrics").await?;
        let reconciles = process::sample(
            &metrics,
            "playbook_reconcile_duration_seconds_count{controller=\"execution\"}",
        )
        .unwrap_or(0.0);
        if reconciles as usize >= count {
            break;
        }
        if Instant::now() > deadline {
            bail!("the operator reconciled {reconciles} of {count} Executions within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Allocations of the first reconciles settle within a few seconds.
    tokio::time::sleep(Duration::from_secs(5)).await;
    process::rss_kib(pid, "VmRSS").context("reading the operator's VmRSS")
}
