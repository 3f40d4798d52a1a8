//! The bench's table: one per workload, each half beside its floor.

use std::time::Duration;

use playbook_operator::api::Workload;

use super::{Run, STEPS, apiserver, common};

pub fn report(n: usize, workload: Workload, floor: &Run, operator: &Run) {
    let env = common::local_cluster_env().unwrap_or_default();
    let limit = |k: &str| env.get(k).cloned().unwrap_or_else(|| "?".into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!();
    println!(
        "{n} executions x {STEPS} steps; Kubernetes {} + kwok; {cores} cores ({cpu}); \
         kube-controller-manager --kube-api-qps={} --kube-api-burst={} --concurrent-job-syncs={}",
        common::pinned_kubernetes_version(),
        limit("KCM_QPS"),
        limit("KCM_BURST"),
        limit("KCM_CONCURRENT_JOB_SYNCS"),
    );
    println!();
    let kind = workload.kind();
    println!();
    println!("Steps as {kind}s (Runner `workload: {kind}`):");
    println!();
    println!("| | floor (bare {kind} chains) | operator | operator / floor |");
    println!("|---|---|---|---|");
    println!(
        "| wall time | {:.1} s | {:.1} s | {:.2} |",
        floor.wall.as_secs_f64(),
        operator.wall.as_secs_f64(),
        operator.wall.as_secs_f64() / floor.wall.as_secs_f64()
    );
    println!(
        "| executions/min | {:.0} | {:.0} | {:.2} |",
        floor.per_minute(n),
        operator.per_minute(n),
        operator.per_minute(n) / floor.per_minute(n)
    );
    for (label, f, o) in [
        ("hand-off p50", floor.handoff.0, operator.handoff.0),
        ("hand-off p99", floor.handoff.1, operator.handoff.1),
    ] {
        println!(
            "| {label} | {} | {} | {:.1} |",
            ms(f),
            ms(o),
            o.as_secs_f64() / f.as_secs_f64().max(1e-9)
        );
    }
    println!(
        "| hand-offs measured | {} | {} | |",
        floor.handoffs, operator.handoffs
    );
    println!(
        "| Execution reconciles | | {} ({:.1} per step) | |",
        operator.reconciles.map_or("?".into(), |r| r.to_string()),
        operator.reconciles.unwrap_or(0) as f64 / (n * STEPS) as f64
    );
    println!(
        "| idle {STEPS}-step run, created → Succeeded, p50 / max of {} | | {} / {} | |",
        operator.idle.len(),
        operator
            .idle
            .get(operator.idle.len() / 2)
            .map_or("?".into(), |d| ms(*d)),
        operator.idle.last().map_or("?".into(), |d| ms(*d)),
    );
    println!(
        "| operator peak RSS | | {} | |",
        operator
            .peak_rss_kib
            .map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
    );
    let procs: std::collections::BTreeSet<&String> =
        floor.cpu.keys().chain(operator.cpu.keys()).collect();
    for p in procs {
        let f = floor.cpu.get(p).copied();
        let o = operator.cpu.get(p).copied();
        let show = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1} s"));
        let ratio = match (f, o) {
            (Some(f), Some(o)) if f > 0.0 => format!("{:.1}", o / f),
            _ => String::new(),
        };
        println!("| CPU {p} | {} | {} | {ratio} |", show(f), show(o));
    }
    apiserver::print_writes(
        "step",
        n * STEPS,
        &floor.requests,
        "operator",
        &operator.requests,
    );
    if !operator.errors.is_empty() {
        println!("\nfailed reconciles (retried):");
        for line in &operator.errors {
            println!("  {line}");
        }
    }
}
