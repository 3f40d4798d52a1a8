//! The two halves of the alert bench: the floor (this process creates the Executions
//! itself) and the webhook (the operator creates them from the posted alerts).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use playbook_operator::api::{AlertSource, Execution};
use playbook_operator::engine::alert::{self, trigger::CompiledTrigger, trigger::Outcome};
use serde_json::{Value, json};

use crate::common::TestNamespace;
use crate::common::process::OperatorProcess;
use crate::{CONCURRENCY, Half, TRIGGER, apiserver, common, count_executions, cpu};

const TOKEN: &str = "bench-webhook-token";
/// The Lease the bench holds so that a standby operator never becomes the leader.
const LEASE: &str = "bench-intake";

/// How the operator runs in a webhook half.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `--leader-elect`, the Lease held by the bench: webhooks only (intake).
    Standby,
    /// No election: the controller reconciles each new Execution too.
    Leader,
}

#[derive(Default)]
struct Counts {
    created: AtomicU64,
    duplicates: AtomicU64,
    retries: AtomicU64,
}

/// The Executions the webhook would create for one body, built by the operator's own
/// parser and Trigger matching.
fn executions_of(trigger: &CompiledTrigger, body: &[u8]) -> anyhow::Result<Vec<Execution>> {
    let alerts = alert::parse(AlertSource::Alertmanager, body).map_err(|e| anyhow::anyhow!(e.0))?;
    alerts
        .iter()
        .map(|a| match trigger.evaluate(a, "bench") {
            Outcome::Start(exec) => Ok(*exec),
            _ => bail!("the bench Trigger did not start a run for {:?}", a.labels),
        })
        .collect()
}

/// The floor: the same creates, straight at the API server.
pub async fn floor(client: &kube::Client, plan: &[usize], batch: usize) -> anyhow::Result<Half> {
    let ns = TestNamespace::with_client(client.clone(), "bench-intake-floor").await;
    let stored = crate::create_trigger(&ns.api()).await?;
    let compiled = CompiledTrigger::new(&ns.name, TRIGGER, &stored.spec)
        .map_err(|e| anyhow::anyhow!("the bench Trigger: {e}"))?;
    // Built before the clock starts: the floor is the API server's part only.
    let bodies: Vec<Vec<Execution>> = plan
        .iter()
        .map(|&first| executions_of(&compiled, &crate::notification(first, batch)))
        .collect::<anyhow::Result<_>>()?;
    eprintln!("[bench] floor: {} batches of creates", bodies.len());
    let api: Api<Execution> = ns.api();
    let counts = Arc::new(Counts::default());
    let requests_before = apiserver::requests(client).await?;
    let cpu_before = cpu::control_plane_cpu();
    let start = Instant::now();
    let latencies = futures::stream::iter(bodies)
        .map(|execs| {
            let (api, counts) = (api.clone(), Arc::clone(&counts));
            async move {
                let sent = Instant::now();
                let creates = execs.iter().map(|e| create_once(&api, e, &counts));
                for r in futures::future::join_all(creates).await {
                    r?;
                }
                Ok::<_, anyhow::Error>(sent.elapsed())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let wall = start.elapsed();
    let cpu = cpu::cpu_delta(&cpu_before, &cpu::control_plane_cpu());
    let requests = apiserver::delta(&requests_before, &apiserver::requests(client).await?);
    let found = count_executions(&api).await?;
    ns.cleanup().await;
    Ok(half(
        "floor (direct creates)",
        wall,
        latencies,
        &counts,
        found,
        requests,
        cpu,
    ))
}

/// One create as the webhook makes it; AlreadyExists is the repeat's duplicate, a 429
/// is retried.
async fn create_once(
    api: &Api<Execution>,
    exec: &Execution,
    counts: &Counts,
) -> anyhow::Result<()> {
    let pp = PostParams {
        field_manager: Some(playbook_operator::controller::FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    loop {
        match api.create(&pp, exec).await {
            Ok(_) => {
                counts.created.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                counts.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(kube::Error::Api(s)) if s.code == 429 => {
                counts.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e).context("floor: creating an Execution"),
        }
    }
}

/// The webhook: the operator creates the Executions from the posted bodies.
pub async fn webhook(
    client: &kube::Client,
    plan: &[usize],
    batch: usize,
    mode: Mode,
) -> anyhow::Result<Half> {
    let (prefix, label) = match mode {
        Mode::Standby => ("bench-intake-standby", "webhook (standby)"),
        Mode::Leader => ("bench-intake-leader", "webhook (leader)"),
    };
    let ns = TestNamespace::with_client(client.clone(), prefix).await;
    let dir = std::env::temp_dir().join(format!("pbo-{}", ns.name));
    std::fs::create_dir_all(&dir)?;
    let token_file = dir.join("tokens");
    std::fs::write(&token_file, format!("{TOKEN}\n"))?;
    crate::create_trigger(&ns.api()).await?;
    let token_path = token_file.display().to_string();
    let mut args = vec!["--webhook-token-file", &token_path];
    // `BENCH_WEBHOOK_CONCURRENCY`: the operator's creates in flight (its default unset).
    let concurrency = std::env::var("BENCH_WEBHOOK_CONCURRENCY").ok();
    if let Some(c) = &concurrency {
        args.extend(["--webhook-concurrency", c]);
    }
    if let Mode::Standby = mode {
        hold_lease(&ns).await?;
        args.extend([
            "--leader-elect",
            "--leader-elect-lease-name",
            LEASE,
            "--leader-elect-identity",
            "bench-standby",
        ]);
    }
    let operator = OperatorProcess::start_as(&ns, "", &args, &[("POD_NAMESPACE", &ns.name)]);
    let addr = operator.http_addr().await;
    if let Mode::Standby = mode {
        operator
            .wait_log("standby: waiting for the leader Lease")
            .await;
    }
    let auth = format!("Bearer {TOKEN}");
    wait_triggers_listed(addr, &auth).await?;
    eprintln!("[bench] {label}: posting");

    let counts = Arc::new(Counts::default());
    let requests_before = apiserver::requests(client).await?;
    let mut cpu_before = cpu::control_plane_cpu();
    cpu_before.extend(cpu::cpu_seconds(operator.pid()).map(|c| ("operator".to_string(), c)));
    let start = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(plan.iter().copied())
        .map(|first| {
            let (counts, auth) = (Arc::clone(&counts), auth.clone());
            async move {
                post_until_accepted(addr, &auth, &crate::notification(first, batch), &counts).await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    let wall = start.elapsed();
    let mut cpu_after = cpu::control_plane_cpu();
    cpu_after.extend(cpu::cpu_seconds(operator.pid()).map(|c| ("operator".to_string(), c)));
    let requests = apiserver::delta(&requests_before, &apiserver::requests(client).await?);
    latencies.sort();
    let found = count_executions(&ns.api()).await?;
    drop(operator);
    let _ = std::fs::remove_dir_all(&dir);
    ns.cleanup().await;
    let cpu = cpu::cpu_delta(&cpu_before, &cpu_after);
    Ok(half(label, wall, latencies, &counts, found, requests, cpu))
}

/// A Lease held by the bench for an hour: the standby operator waits for it.
async fn hold_lease(ns: &TestNamespace) -> anyhow::Result<()> {
    let now = MicroTime(Timestamp::now());
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": LEASE},
        "spec": {"holderIdentity": "bench", "leaseDurationSeconds": 3600,
                 "acquireTime": now, "renewTime": now}
    }))?;
    ns.api::<Lease>()
        .create(&PostParams::default(), &lease)
        .await
        .context("creating the bench's Lease")?;
    Ok(())
}

/// Ready when the Trigger cache has listed (503 before).
async fn wait_triggers_listed(addr: std::net::SocketAddr, auth: &str) -> anyhow::Result<()> {
    let headers = [("Authorization", auth)];
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
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the operator's webhook did not answer 202 within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts one body until it is answered 202 (429 and 503 are retried); the time of
/// every try.
async fn post_until_accepted(
    addr: std::net::SocketAddr,
    auth: &str,
    body: &[u8],
    counts: &Counts,
) -> Vec<Duration> {
    let headers = [("Authorization", auth)];
    let mut times = Vec::new();
    loop {
        let sent = Instant::now();
        let (code, text) = common::http::post(addr, "/webhooks/alertmanager", &headers, body).await;
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

fn half(
    label: &str,
    wall: Duration,
    mut latencies: Vec<Duration>,
    counts: &Counts,
    found: usize,
    requests: apiserver::Requests,
    cpu: std::collections::BTreeMap<String, f64>,
) -> Half {
    latencies.sort();
    Half {
        label: label.to_string(),
        wall,
        latencies,
        created: counts.created.load(Ordering::Relaxed),
        duplicates: counts.duplicates.load(Ordering::Relaxed),
        retries: counts.retries.load(Ordering::Relaxed),
        found,
        requests,
        cpu,
    }
}
