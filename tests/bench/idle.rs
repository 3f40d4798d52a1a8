//! An idle operator's latency: one Execution at a time, created → Succeeded, as the
//! client that created it sees it (its watch shows the final phase).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use playbook_operator::api::{Execution, ExecutionPhase};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `n` Executions of `playbook` one after another; their durations, sorted.
pub async fn runs(
    execs: &Api<Execution>,
    playbook: &str,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("idle-{i}");
        let exec: Execution = serde_json::from_value(json!({
            "apiVersion": "stackpulse.io/v1", "kind": "Execution",
            "metadata": {"name": name},
            "spec": {"playbookRef": {"name": playbook}}
        }))?;
        let start = Instant::now();
        execs
            .create(&PostParams::default(), &exec)
            .await
            .with_context(|| format!("creating {name}"))?;
        let done = await_condition(execs.clone(), &name, |e: Option<&Execution>| {
            e.and_then(|e| e.status.as_ref())
                .is_some_and(|s| s.phase.is_final())
        });
        let Ok(Ok(Some(exec))) = tokio::time::timeout(TIMEOUT, done).await else {
            bail!("idle run {name} did not finish within {TIMEOUT:?}");
        };
        let phase = exec.status.map(|s| s.phase);
        if phase != Some(ExecutionPhase::Succeeded) {
            bail!("idle run {name} ended {phase:?}");
        }
        took.push(start.elapsed());
    }
    took.sort();
    Ok(took)
}
