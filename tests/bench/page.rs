//! `make bench` (first part, no cluster): the execution page's server render time.
//!
//! Fills the page's caches as its reflectors would (`BENCH_PAGE_EXECUTIONS`, default
//! 10,000 Executions of 4 steps, 3 Events each; one of them with 50 steps), then
//! renders, as the handlers do (cache lookup, view, template), the detail page of the
//! 50-step run and the list page (filtered by nothing: every row is a candidate, the
//! newest 200 shown). Reports p50/p99/max per page (target: detail < 50 ms) and what
//! the caches cost in memory (resident set before and after filling them).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::core::DeserializeGuard;
use kube::runtime::reflector;
use kube::runtime::watcher;
use playbook_operator::api::Execution;
use playbook_operator::engine::page::{Access, ListFilter};
use playbook_operator::page::events::EventCache;
use playbook_operator::page::{Caches, Templates};
use serde_json::{Value, json};

const PHASES: [&str; 4] = ["enrich", "triage", "communicate", "remediate"];

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Run `i` of namespace `ns-(i % 20)`, with `steps` finished steps and their outputs.
fn execution(i: usize, steps: usize) -> Execution {
    let steps: Vec<Value> = (0..steps)
        .map(|s| {
            json!({
                "id": format!("step-{s}"), "phase": PHASES[s % 4], "state": "Succeeded",
                "attempt": 1, "jobName": format!("run-{i}-step-{s}-1"), "exitCode": 0,
                "startedAt": "2026-11-25T10:00:00Z", "finishedAt": "2026-11-25T10:00:03Z",
                "outputs": {"Clients": {"connected_clients": s, "blocked_clients": 0},
                            "Server": {"redis_version": "7.2.4", "uptime_in_seconds": 86400 + s},
                            "note": "<b>escaped</b>"}
            })
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Execution",
        "metadata": {"name": format!("run-{i}"), "namespace": format!("ns-{}", i % 20),
                     "uid": format!("uid-{i}"),
                     "creationTimestamp": format!("2026-11-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60)},
        "spec": {"playbookRef": {"name": format!("playbook-{}", i % 7)},
                 "alert": {"labels": {"alertname": "RedisDown", "instance": format!("redis-{i}")}}},
        "status": {"phase": "Succeeded", "startedAt": "2026-11-25T10:00:00Z",
                   "finishedAt": "2026-11-25T10:00:12Z", "severity": "critical", "steps": steps}
    }))
    .expect("a valid Execution")
}

fn event(i: usize, n: usize) -> Event {
    serde_json::from_value(json!({
        "metadata": {"name": format!("run-{i}.{n}"), "namespace": format!("ns-{}", i % 20)},
        "involvedObject": {"kind": "Execution", "name": format!("run-{i}"), "uid": format!("uid-{i}"),
                           "namespace": format!("ns-{}", i % 20)},
        "reason": "StepSucceeded", "message": format!("step 'step-{n}' succeeded"), "type": "Normal",
        "eventTime": "2026-11-25T10:00:03.000000Z"
    }))
    .expect("a valid Event")
}

/// Resident set size in KiB (Linux), for the caches' memory.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut times: Vec<Duration>, bytes: usize) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:<44} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({} renders, {} KiB page)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times[times.len() - 1]),
        times.len(),
        bytes / 1024
    );
}

fn main() {
    let n = env_number("BENCH_PAGE_EXECUTIONS", 10_000).max(1);
    let before = rss_kib();
    let (executions, mut exec_writer) = reflector::store::<DeserializeGuard<Execution>>();
    let events = std::sync::Arc::new(EventCache::default());
    for i in 0..n {
        let steps = if i == 0 { 50 } else { 4 };
        exec_writer.apply_watcher_event(&watcher::Event::Apply(DeserializeGuard(Ok(execution(
            i, steps,
        )))));
    }
    let with_executions = rss_kib();
    for i in 0..n {
        // As the page's subscription to the Execution cache tells it in `run`.
        events.run_seen(&format!("ns-{}", i % 20), &format!("uid-{i}"));
        for e in 0..3 {
            events.apply(watcher::Event::Apply(event(i, e)));
        }
    }
    let after = rss_kib();
    let caches = Caches {
        executions,
        events,
        plans: Default::default(),
    };
    let templates = Templates::default();
    println!(
        "execution page: {n} Executions (one of 50 steps, the others 4), {} Events in the caches",
        n * 3
    );
    if let (Some(b), Some(x), Some(a)) = (before, with_executions, after) {
        println!(
            "caches' memory (resident): Executions {} MiB (~{} KiB each), Events {} MiB",
            x.saturating_sub(b) / 1024,
            x.saturating_sub(b) / n as u64,
            a.saturating_sub(x) / 1024,
        );
    }

    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..200 {
        let start = Instant::now();
        let d = caches
            .detail("ns-0", "run-0", Timestamp::now())
            .expect("run-0 is cached");
        let page = templates
            .detail(&d, "alice", false, "csrf", None)
            .expect("renders");
        times.push(start.elapsed());
        size = page.len();
    }
    report("detail page (50 steps)", times, size);
    let shown = caches
        .detail("ns-0", "run-0", Timestamp::now())
        .map(|d| d.phases.iter().map(|g| g.steps.len()).sum::<usize>());
    assert_eq!(shown, Some(50), "the detail page shows all 50 steps");
    let events = caches
        .detail("ns-0", "run-0", Timestamp::now())
        .map(|d| d.events.len());
    assert_eq!(events, Some(3), "the detail page shows the run's 3 Events");

    for (what, access) in [
        (
            "list page (all namespaces visible)",
            Access::from_answers(true, []),
        ),
        (
            "list page (2 of 20 namespaces visible)",
            Access::from_answers(false, [("ns-1", true), ("ns-2", true)]),
        ),
    ] {
        let mut times = Vec::new();
        for _ in 0..50 {
            let start = Instant::now();
            let v = caches.list(&access, &ListFilter::default(), Timestamp::now());
            let page = templates.list(&v, "alice").expect("renders");
            times.push(start.elapsed());
            size = page.len();
        }
        report(what, times, size);
    }
}
