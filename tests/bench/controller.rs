//! `make bench`: the controller against its floor, on the same cluster, in one run.
//!
//! 1. **Floor**: N bare chains of 4 Jobs, no operator. This process watches the pods
//!    and creates each chain's next Job as soon as its previous pod's container has
//!    terminated: the fastest any controller could go through the Job path here.
//! 2. **Operator**: the release `playbook-operator run` binary as a child process, N
//!    Executions of a 4-step Playbook created at once; each step's output (JSON read
//!    through `pods/log`) feeds the next step's env, as in real playbooks.
//!
//! Both report wall time (first create to last step ended) and executions per
//! minute; hand-off latency is "a step's container was seen terminated on the pod
//! watch → the next Job was created": for the floor measured here per hand-off, for
//! the operator read from its own `playbook_step_handoff_seconds` histogram (so
//! bucket-resolution, interpolated like PromQL's `histogram_quantile`). The operator's
//! peak RSS is the kernel's high-water mark (`VmHWM`). The ratio operator/floor is
//! the number to watch: absolute figures depend on the machine and on
//! kube-controller-manager's client limits, which are printed with the results.
//!
//! Each half also prints what the API server itself counted (`apiserver_request_total`
//! deltas, [`apiserver`]): the writes per step by verb and resource, every client's,
//! so the operator's extra cost is the difference. After the storm the same operator
//! runs 20 single Executions one after another ([`idle`]): created → Succeeded.
//!
//! Both halves run once per workload (`Runner.spec.workload`): the operator with
//! steps as Jobs beside bare Job chains, then with steps as bare Pods beside bare
//! Pod chains (the same chains, each link a Pod the bench creates itself).
//!
//! Each step hands its output over in its termination message, as a step image that
//! writes `/dev/termination-log` does (kwok sets it from the pod annotation
//! `kwok.stackpulse.io/message`, on the floor's pods too); `BENCH_OUTPUTS=log` leaves
//! the message empty, so the operator reads each step's log instead.
//!
//! Env: `BENCH_EXECUTIONS` (default 200), `BENCH_WORKLOADS` (default `Job,Pod`),
//! `BENCH_OUTPUTS` (`message` by default, or `log`).
//! Needs a cluster: `make bench` starts one (and a second at upstream's
//! kube-controller-manager defaults, `make bench-stock`).

mod apiserver;
#[path = "../common/mod.rs"]
mod common;
mod cpu;
mod idle;
mod process;
mod report;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use common::TestNamespace;
use common::process::OperatorProcess;
use cpu::{control_plane_cpu, cpu_delta, cpu_seconds};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use playbook_operator::api::{Execution, ExecutionPhase, Playbook, Runner, Workload};
use serde_json::json;

const STEPS: usize = 4;
/// Concurrent creates from this process (both runs), so the burst of N creates does
/// not become N open connections.
const CREATE_CONCURRENCY: usize = 32;
const RUN_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// What every step prints, or writes as its termination message: the next step's
/// env reads `n`.
const OUTPUT: &str = "{\"n\": 1, \"ok\": true}";
/// Single runs timed on the idle operator after the storm.
const IDLE_RUNS: usize = 20;

fn main() -> anyhow::Result<()> {
    let n: usize = match std::env::var("BENCH_EXECUTIONS") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("BENCH_EXECUTIONS={v:?}: expected a number"))?,
        Err(_) => 200,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(n))
}

/// The annotations of every step pod: the output as termination message, unless
/// `BENCH_OUTPUTS=log`.
fn step_annotations() -> anyhow::Result<serde_json::Value> {
    match std::env::var("BENCH_OUTPUTS").as_deref() {
        Err(_) | Ok("message") => Ok(json!({common::MESSAGE_ANNOTATION: OUTPUT})),
        Ok("log") => Ok(json!({})),
        Ok(other) => bail!("BENCH_OUTPUTS: {other:?} is neither message nor log"),
    }
}

/// The workloads to bench, from `BENCH_WORKLOADS` (`Job,Pod` by default).
fn workloads() -> anyhow::Result<Vec<Workload>> {
    let list = std::env::var("BENCH_WORKLOADS").unwrap_or_else(|_| "Job,Pod".into());
    list.split(',')
        .map(|w| match w.trim() {
            "Job" => Ok(Workload::Job),
            "Pod" => Ok(Workload::Pod),
            other => bail!("BENCH_WORKLOADS: {other:?} is neither Job nor Pod"),
        })
        .collect()
}

async fn bench(n: usize) -> anyhow::Result<()> {
    let client = common::client().await;
    common::install_crds(&client).await;
    let annotations = step_annotations()?;
    let outputs = match annotations.as_object().is_some_and(|a| a.is_empty()) {
        true => "read from each step's log",
        false => "handed over in each step's termination message",
    };
    eprintln!("[bench] step outputs: {outputs}");
    for workload in workloads()? {
        let kind = workload.kind();
        eprintln!("[bench] floor: {n} bare chains of {STEPS} {kind}s");
        let floor = bare_chains(&client, n, workload).await?;
        eprintln!("[bench] operator: {n} Executions of a {STEPS}-step Playbook, steps as {kind}s");
        let operator = operator_run(&client, n, workload).await?;
        report::report(n, workload, &floor, &operator);
    }
    Ok(())
}

/// What one run measured.
struct Run {
    wall: Duration,
    /// Hand-off latency quantiles p50, p99.
    handoff: (Duration, Duration),
    handoffs: u64,
    peak_rss_kib: Option<u64>,
    /// CPU seconds spent during the run, per process (control plane, and the operator).
    cpu: BTreeMap<String, f64>,
    /// The operator's reconciles of Executions, and its failed reconciles by reason.
    reconciles: Option<u64>,
    /// What the API server served during the run, by verb and resource.
    requests: apiserver::Requests,
    /// Idle single runs after the storm, created → Succeeded, sorted.
    idle: Vec<Duration>,
    errors: Vec<String>,
}

impl Run {
    fn per_minute(&self, n: usize) -> f64 {
        n as f64 * 60.0 / self.wall.as_secs_f64()
    }
}

// ---------------------------------------------------------------------------
// The floor: bare chains of Jobs.

fn chain_job(chain: usize, step: usize) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": format!("c{chain}-s{step}")},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": {"bench/chain": chain.to_string(), "bench/step": step.to_string()},
                    // Checked by `bench` before the first create.
                    "annotations": step_annotations().unwrap_or_default(),
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "step", "image": "busybox"}]
                }
            }
        }
    }))
    .expect("a valid Job")
}

/// Creates link `step` of chain `chain`: a Job, or the bare Pod a Job would make.
async fn create_link(
    client: &kube::Client,
    ns: &str,
    workload: Workload,
    chain: usize,
    step: usize,
) -> Result<(), kube::Error> {
    let job = chain_job(chain, step);
    match workload {
        Workload::Job => {
            Api::<Job>::namespaced(client.clone(), ns)
                .create(&PostParams::default(), &job)
                .await?
        }
        Workload::Pod => {
            let spec = job.spec.unwrap_or_default().template;
            let pod = Pod {
                metadata: kube::api::ObjectMeta {
                    name: job.metadata.name,
                    ..spec.metadata.unwrap_or_default()
                },
                spec: spec.spec,
                status: None,
            };
            Api::<Pod>::namespaced(client.clone(), ns)
                .create(&PostParams::default(), &pod)
                .await?;
            return Ok(());
        }
    };
    Ok(())
}

/// (chain, step) of a pod whose container terminated with exit code 0.
fn finished_step(pod: &Pod) -> Option<(usize, usize)> {
    let labels = pod.metadata.labels.as_ref()?;
    let chain = labels.get("bench/chain")?.parse().ok()?;
    let step = labels.get("bench/step")?.parse().ok()?;
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let done = statuses.iter().all(|c| {
        c.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0)
    });
    (done && !statuses.is_empty()).then_some((chain, step))
}

async fn bare_chains(client: &kube::Client, n: usize, workload: Workload) -> anyhow::Result<Run> {
    let ns = TestNamespace::with_client(client.clone(), "bench-floor").await;
    let name = ns.name.clone();
    let pods: Api<Pod> = ns.api();
    let (tx, mut ended) = tokio::sync::mpsc::unbounded_channel::<(usize, usize, Instant)>();
    let watch = tokio::spawn(async move {
        let stream = watcher(pods, watcher::Config::default().labels("bench/chain"))
            .default_backoff()
            .applied_objects();
        futures::pin_mut!(stream);
        let mut seen = HashSet::new();
        while let Some(pod) = stream.next().await {
            let Ok(pod) = pod else { continue };
            if let Some(key) = finished_step(&pod)
                && seen.insert(key)
            {
                let _ = tx.send((key.0, key.1, Instant::now()));
            }
        }
    });

    let handoffs = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let requests_before = apiserver::requests(client).await?;
    let cpu_before = control_plane_cpu();
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|c| {
            let name = name.clone();
            async move { create_link(client, &name, workload, c, 0).await }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .context("creating the first links")?;
    let (mut done, mut last_end) = (0, start);
    let deadline = start + RUN_TIMEOUT;
    while done < n {
        let Ok(Some((chain, step, seen_at))) =
            tokio::time::timeout_at(deadline.into(), ended.recv()).await
        else {
            bail!("floor: only {done}/{n} chains finished within {RUN_TIMEOUT:?}");
        };
        if step + 1 == STEPS {
            done += 1;
            last_end = last_end.max(seen_at);
            continue;
        }
        let (client, name, handoffs) = (client.clone(), name.clone(), Arc::clone(&handoffs));
        tokio::spawn(async move {
            match create_link(&client, &name, workload, chain, step + 1).await {
                Ok(_) => handoffs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(seen_at.elapsed()),
                Err(e) => eprintln!("[bench] creating c{chain}-s{}: {e}", step + 1),
            }
        });
    }
    let cpu = cpu_delta(&cpu_before, &control_plane_cpu());
    let requests = apiserver::delta(&requests_before, &apiserver::requests(client).await?);
    watch.abort();
    let mut samples = handoffs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    samples.sort();
    // Waited for, so that deleting the floor's objects is not counted in the
    // operator's half.
    ns.cleanup_and_wait().await;
    Ok(Run {
        wall: last_end - start,
        handoff: (quantile(&samples, 0.5), quantile(&samples, 0.99)),
        handoffs: samples.len() as u64,
        peak_rss_kib: None,
        cpu,
        reconciles: None,
        requests,
        idle: Vec::new(),
        errors: Vec::new(),
    })
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ---------------------------------------------------------------------------
// The operator.

async fn operator_run(client: &kube::Client, n: usize, workload: Workload) -> anyhow::Result<Run> {
    let ns = TestNamespace::with_client(client.clone(), "bench-operator").await;
    // Steps without `runner` run on the Runner `default`: this one picks the workload.
    let runner: Runner = serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Runner",
        "metadata": {"name": "default"},
        "spec": {"workload": workload.kind(), "annotations": step_annotations()?}
    }))?;
    ns.api::<Runner>()
        .create(&PostParams::default(), &runner)
        .await
        .context("creating the Runner")?;
    // Every step prints the same JSON; the default parser takes it as the output.
    ns.set_default_log(&format!("{OUTPUT}\n")).await;
    let steps: Vec<_> = (1..=STEPS)
        .map(|i| match i {
            1 => json!({"id": "s1", "image": "busybox"}),
            _ => json!({"id": format!("s{i}"), "image": "busybox",
                        "env": {"IN": format!("{{{{ .steps.s{}.outputs.n }}}}", i - 1)}}),
        })
        .collect();
    let playbooks: Api<Playbook> = ns.api();
    playbooks
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "stackpulse.io/v1", "kind": "Playbook",
                "metadata": {"name": "bench"},
                "spec": {"steps": steps}
            }))?,
        )
        .await
        .context("creating the Playbook")?;

    let addr = process::free_local_addr()?;
    let operator = OperatorProcess::start(&ns, &["--http-addr", &addr]);
    process::wait_ready(&addr).await?;

    let execs: Api<Execution> = ns.api();
    let finished = Arc::new(Mutex::new(
        BTreeMap::<String, (ExecutionPhase, Instant)>::new(),
    ));
    let watch = {
        let (execs, finished) = (execs.clone(), Arc::clone(&finished));
        tokio::spawn(async move {
            let stream = watcher(execs, watcher::Config::default())
                .default_backoff()
                .applied_objects();
            futures::pin_mut!(stream);
            while let Some(exec) = stream.next().await {
                let Ok(exec) = exec else { continue };
                let Some(phase) = exec.status.as_ref().map(|s| s.phase) else {
                    continue;
                };
                if phase.is_final() {
                    let name = exec.metadata.name.clone().unwrap_or_default();
                    let mut f = finished.lock().unwrap_or_else(|p| p.into_inner());
                    f.entry(name).or_insert((phase, Instant::now()));
                }
            }
        })
    };

    let requests_before = apiserver::requests(client).await?;
    let mut cpu_before = control_plane_cpu();
    cpu_before.extend(cpu_seconds(operator.pid()).map(|c| ("operator".to_string(), c)));
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let execs = execs.clone();
            async move {
                let exec: Execution = serde_json::from_value(json!({
                    "apiVersion": "stackpulse.io/v1", "kind": "Execution",
                    "metadata": {"name": format!("bench-{i}")},
                    "spec": {"playbookRef": {"name": "bench"}}
                }))
                .expect("a valid Execution");
                execs.create(&PostParams::default(), &exec).await
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .context("creating the Executions")?;

    let mut last_report = Instant::now();
    loop {
        let (count, last_end, failed) = {
            let f = finished.lock().unwrap_or_else(|p| p.into_inner());
            let failed: Vec<String> = f
                .iter()
                .filter(|(_, (phase, _))| *phase != ExecutionPhase::Succeeded)
                .map(|(name, (phase, _))| format!("{name} {phase:?}"))
                .collect();
            (f.len(), f.values().map(|(_, at)| *at).max(), failed)
        };
        if !failed.is_empty() {
            bail!("operator: not every Execution succeeded: {failed:?}");
        }
        if count == n {
            let wall = last_end.unwrap_or(start) - start;
            let mut cpu_after = control_plane_cpu();
            cpu_after.extend(cpu_seconds(operator.pid()).map(|c| ("operator".to_string(), c)));
            let requests = apiserver::delta(&requests_before, &apiserver::requests(client).await?);
            watch.abort();
            let metrics = process::http_get(&addr, "/metrics").await?;
            let handoff = histogram(&metrics, "playbook_step_handoff_seconds")
                .context("no playbook_step_handoff_seconds in /metrics")?;
            let peak_rss_kib = process::rss_kib(operator.pid(), "VmHWM");
            eprintln!("[bench] idle: {IDLE_RUNS} single runs, one after another");
            let idle = idle::runs(&execs, "bench", IDLE_RUNS).await?;
            drop(operator);
            // Waited for, as the floor's: the garbage collector deleting this half's
            // Jobs and Pods is not counted in the next half.
            ns.cleanup_and_wait().await;
            return Ok(Run {
                wall,
                handoff: (handoff.quantile(0.5), handoff.quantile(0.99)),
                handoffs: handoff.count,
                peak_rss_kib,
                cpu: cpu_delta(&cpu_before, &cpu_after),
                reconciles: process::sample(
                    &metrics,
                    "playbook_reconcile_duration_seconds_count{controller=\"execution\"}",
                )
                .map(|v| v as u64),
                requests,
                idle,
                errors: metrics
                    .lines()
                    .filter(|l| l.starts_with("playbook_reconcile_errors_total{"))
                    .map(str::to_string)
                    .collect(),
            });
        }
        if start.elapsed() > RUN_TIMEOUT {
            bail!("operator: only {count}/{n} Executions finished within {RUN_TIMEOUT:?}");
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "[bench] {count}/{n} Executions finished after {:.0?}",
                start.elapsed()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Prometheus histogram's cumulative buckets (upper bound in seconds, count).
struct Histogram {
    buckets: Vec<(f64, u64)>,
    count: u64,
}

impl Histogram {
    /// Like PromQL's `histogram_quantile`: linear within the bucket that holds it.
    fn quantile(&self, q: f64) -> Duration {
        let rank = q * self.count as f64;
        let mut lower = (0.0, 0u64);
        for &(le, cumulative) in &self.buckets {
            if cumulative as f64 >= rank && cumulative > lower.1 {
                if le.is_infinite() {
                    return Duration::from_secs_f64(lower.0);
                }
                let within = (rank - lower.1 as f64) / (cumulative - lower.1) as f64;
                return Duration::from_secs_f64(lower.0 + (le - lower.0) * within);
            }
            lower = (le, cumulative);
        }
        Duration::from_secs_f64(lower.0)
    }
}

/// Reads `NAME_bucket{le="..."} COUNT` and `NAME_count COUNT` lines (no other labels).
fn histogram(text: &str, name: &str) -> Option<Histogram> {
    let mut buckets = Vec::new();
    let mut count = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(&format!("{name}_bucket{{le=\"")) {
            let (le, value) = rest.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            buckets.push((le, value.trim().parse::<f64>().ok()? as u64));
        } else if let Some(value) = line.strip_prefix(&format!("{name}_count ")) {
            count = Some(value.trim().parse::<f64>().ok()? as u64);
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(Histogram {
        buckets,
        count: count?,
    })
}
