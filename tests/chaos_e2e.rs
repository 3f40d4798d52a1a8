//! Chaos, measured: N Executions of a 4-step Playbook (each step's output feeding the
//! next step's env) while the operator process is SIGKILLed at a random moment every
//! 0.1–1 s and started again at once (as a Deployment restarts its container), and
//! the API server and then etcd are each restarted once mid-run. Then: every run
//! Succeeded, exactly one Job per step attempt (every Job ADDED seen by a watch that
//! runs the whole time: no Job name with two uids, none missing, none extra), and no
//! output lost (each step's output is distinct per run and step, is in status, and
//! reached the next step's env). A step pod that ended before kwok served its log
//! fixture (the API server was down, or kwok's watch of fixtures had not caught up
//! after a restart) printed the namespace's default log; its step must record exactly
//! that, its successor must get it as input, and it is counted apart as late. Prints
//! the counts.
//!
//! The operator runs with `--leader-elect` under a fixed identity (a Deployment's pod
//! keeps its name across container restarts), so a killed leader's successor takes
//! the Lease at once; one that exits by itself (a Lease lost while the API server was
//! gone) is started again too, and counted.
//!
//! `CHAOS_EXECUTIONS` (default 20; `make chaos` runs 200), `CHAOS_KILL_MAX_MS` (the
//! longest gap before a kill, default 1000) and `CHAOS_SEED` (the kill times;
//! printed) change it. Needs the local cluster of tests/cluster (it restarts
//! its API server and etcd with `tests/cluster/restart.sh`): `make test-e2e`, or
//! `make cluster-up` then `cargo test --test chaos_e2e -- --nocapture`. The watches it
//! keeps through the chaos are in `chaos_e2e/watches.rs`.

mod common;
#[path = "chaos_e2e/watches.rs"]
mod watches;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::TestNamespace;
use common::operator::*;
use common::process::OperatorProcess;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, PostParams};
use playbook_operator::api::{Execution, ExecutionPhase};
use serde_json::json;
use watches::{JobSeen, Shared, lock, record_jobs, serve_pod_logs, watch_progress};

const STEPS: [&str; 4] = ["s1", "s2", "s3", "s4"];
pub(crate) const LABEL_EXECUTION: &str = "stackpulse.io/execution";
pub(crate) const LABEL_STEP: &str = "stackpulse.io/step";
pub(crate) const LABEL_ATTEMPT: &str = "stackpulse.io/attempt";

/// The output step `step` of run `execution` prints: distinct per run and step, so a
/// output taken from another run, another step or nowhere shows.
pub(crate) fn output_of(execution: &str, step: &str) -> String {
    format!("{execution}-{step}")
}

// ---------------------------------------------------------------------------
// The control plane

/// The local cluster's state dir (restart.sh finds the processes there).
fn cluster_dir() -> PathBuf {
    assert!(
        common::local_cluster_env().is_some(),
        "the chaos test restarts the local cluster's API server and etcd: run it on the \
         cluster of tests/cluster ({})",
        common::START_HINT
    );
    common::kubeconfig_path()
        .parent()
        .map(PathBuf::from)
        .expect("the kubeconfig lives in the cluster's state dir")
}

/// `tests/cluster/restart.sh WHAT` running in the background (down 3 s, then back and
/// ready), awaited once it is done.
struct Restart {
    what: &'static str,
    task: tokio::task::JoinHandle<(Duration, Output)>,
}

impl Restart {
    fn start(what: &'static str) -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/restart.sh");
        let dir = cluster_dir();
        let task = tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            let out = Command::new(script)
                .arg(what)
                .env("PLAYBOOK_OPERATOR_CLUSTER_DIR", dir)
                .env("DOWN_SECONDS", "3")
                .output()
                .unwrap_or_else(|e| panic!("running restart.sh {what}: {e}"));
            (start.elapsed(), out)
        });
        Self { what, task }
    }

    /// How long the component was away (stop, down, start, ready).
    async fn finish(self) -> Duration {
        let (took, out) = self.task.await.expect("the restart task");
        assert!(
            out.status.success(),
            "restart.sh {} failed: {}",
            self.what,
            String::from_utf8_lossy(&out.stderr)
        );
        took
    }
}

// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Counts {
    kills_working: usize,
    kills_starting: usize,
    exits: usize,
}

/// Waits (up to 30 s) until the running incarnation has listed its caches; false if
/// it exited or did not get there (the API server is away).
async fn listed(operator: &mut OperatorProcess) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let log = operator.incarnation_log();
        if log.contains("caches listed: reconciling") {
            return true;
        }
        if !operator.is_running() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_survives_sigkills_and_control_plane_restarts() {
    let runs: usize = std::env::var("CHAOS_EXECUTIONS")
        .map(|v| v.parse().expect("CHAOS_EXECUTIONS: a number"))
        .unwrap_or(20);
    let seed: u64 = std::env::var("CHAOS_SEED")
        .map(|v| v.parse().expect("CHAOS_SEED: a number"))
        .unwrap_or_else(|_| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    // The longest gap before a kill (ms): 1000 by default.
    let kill_max_ms: u64 = std::env::var("CHAOS_KILL_MAX_MS")
        .map(|v| {
            v.parse()
                .expect("CHAOS_KILL_MAX_MS: a number of milliseconds")
        })
        .unwrap_or(1000)
        .max(100);
    let _ = cluster_dir();

    let ns = setup("chaos").await;
    runner(&ns, "default", json!({common::DURATION_ANNOTATION: "1s"})).await;
    // What a pod whose own fixture came too late would print: counted as lost.
    ns.set_default_log(&step_log("no fixture", json!({"out": "none"})))
        .await;
    let steps: Vec<_> = STEPS
        .iter()
        .enumerate()
        .map(|(i, id)| match i {
            0 => json!({"id": id, "image": "busybox"}),
            _ => json!({"id": id, "image": "busybox",
                        "env": {"IN": format!("{{{{ .steps.s{i}.outputs.out }}}}")}}),
        })
        .collect();
    playbook(&ns, "four", json!(steps)).await;
    let (jobs, job_watch) = record_jobs(&ns);
    let (pod_logs, log_server) = serve_pod_logs(&ns);
    let (progress, progress_watch) = watch_progress(&ns);

    let identity = format!("chaos-{}", ns.name);
    let mut operator = OperatorProcess::start(
        &ns,
        &[
            "--leader-elect",
            "--leader-elect-namespace",
            &ns.name,
            "--leader-elect-identity",
            &identity,
        ],
    );
    let start = Instant::now();
    let names: Vec<String> = (0..runs).map(|i| format!("run-{i}")).collect();
    futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let api: Api<Execution> = ns.api();
            async move {
                let exec: Execution = from_json(json!({
                    "apiVersion": "stackpulse.io/v1", "kind": "Execution",
                    "metadata": {"name": name},
                    "spec": {"playbookRef": {"name": "four"}}
                }));
                api.create(&PostParams::default(), &exec).await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("creating the Executions");

    // The chaos: a kill every 0.1–1 s; the API server restarted once a tenth of all
    // steps are done, etcd once the API server is back and more steps are done.
    let total_steps = runs * STEPS.len();
    let timeout = Duration::from_secs(120 + 6 * runs as u64);
    let mut counts = Counts::default();
    let (mut apiserver, mut etcd) = (None::<Restart>, None::<Restart>);
    let mut restarted = BTreeSet::new();
    let mut api_back_at = None;
    let mut downtime = BTreeMap::<&str, Duration>::new();
    loop {
        let (finished, steps_done) = {
            let p = lock(&progress);
            (p.finished.len(), p.steps_done.values().sum::<usize>())
        };
        if finished == runs {
            break;
        }
        assert!(
            start.elapsed() < timeout,
            "only {finished}/{runs} runs finished ({steps_done}/{total_steps} steps) within \
             {timeout:?} of chaos ({counts:?})"
        );
        if !restarted.contains("apiserver") && steps_done * 10 >= total_steps {
            eprintln!("[chaos] restarting the API server at {steps_done}/{total_steps} steps");
            restarted.insert("apiserver");
            apiserver = Some(Restart::start("apiserver"));
        }
        if let Some(r) = apiserver.take_if(|r| r.task.is_finished()) {
            downtime.insert("apiserver", r.finish().await);
            api_back_at = Some(steps_done);
        }
        // etcd once a step has finished since the API server came back.
        if !restarted.contains("etcd") && api_back_at.is_some_and(|at| steps_done > at) {
            eprintln!("[chaos] restarting etcd at {steps_done}/{total_steps} steps");
            restarted.insert("etcd");
            etcd = Some(Restart::start("etcd"));
        }
        if let Some(r) = etcd.take_if(|r| r.task.is_finished()) {
            downtime.insert("etcd", r.finish().await);
        }
        // One kill in four lands while the incarnation starts; the others 0.1–1 s
        // after its caches are listed, i.e. while it reconciles.
        let working = rng.u8(..4) != 0 && listed(&mut operator).await;
        tokio::time::sleep(Duration::from_millis(rng.u64(100..=kill_max_ms))).await;
        if operator.exited().is_some() {
            counts.exits += 1;
        } else if working {
            operator.kill("chaos: while reconciling");
            counts.kills_working += 1;
        } else {
            operator.kill("chaos: while starting");
            counts.kills_starting += 1;
        }
        operator.restart();
    }
    let wall = start.elapsed();
    for r in [apiserver.take(), etcd.take()].into_iter().flatten() {
        let what = r.what;
        downtime.insert(what, r.finish().await);
    }
    assert!(
        downtime.contains_key("apiserver") && downtime.contains_key("etcd"),
        "every run finished before both restarts happened mid-run ({downtime:?}): \
         raise CHAOS_EXECUTIONS"
    );
    drop(operator);

    let late = lock(&pod_logs).late();
    let report = verify(&ns, &names, &jobs, &late, runs).await;
    let late = late.len();
    println!(
        "\nchaos ({runs} runs x {} steps, kills 0.1-{:.1} s apart, seed {seed}):\n\
         | runs | finished | Succeeded | Jobs created | expected Jobs | duplicate Job names | \
         missing Jobs | extra Jobs | lost outputs | late log fixtures | operator kills \
         (reconciling + starting) | operator exits by itself | API server restart | etcd \
         restart | wall time |\n\
         | {runs} | {} | {} | {} | {} | {} | {} | {} | {} | {late} | {} ({} + {}) | {} | \
         {:.1} s | {:.1} s | {:.1} s |",
        STEPS.len(),
        kill_max_ms as f64 / 1000.0,
        report.finished,
        report.succeeded,
        report.jobs_created,
        report.expected_jobs,
        report.duplicates.len(),
        report.missing.len(),
        report.extra.len(),
        report.lost.len(),
        counts.kills_working + counts.kills_starting,
        counts.kills_working,
        counts.kills_starting,
        counts.exits,
        downtime["apiserver"].as_secs_f64(),
        downtime["etcd"].as_secs_f64(),
        wall.as_secs_f64(),
    );
    assert_eq!(
        (report.finished, report.succeeded),
        (runs, runs),
        "not every run Succeeded: {:?}",
        report.failed
    );
    assert!(
        report.duplicates.is_empty(),
        "Job names created twice: {:?}",
        report.duplicates
    );
    assert!(
        report.missing.is_empty(),
        "Jobs in status never seen: {:?}",
        report.missing
    );
    assert!(
        report.extra.is_empty(),
        "Jobs no step attempt in status owns: {:?}",
        report.extra
    );
    assert!(
        report.lost.is_empty(),
        "outputs lost: {:?}",
        &report.lost[..report.lost.len().min(20)]
    );
    assert!(
        counts.kills_working > 0 && counts.kills_starting > 0,
        "the operator was not killed both while starting and while reconciling: {counts:?}"
    );
    for task in [job_watch, log_server, progress_watch] {
        task.abort();
    }
    ns.cleanup().await;
}

/// What the end state shows against what the watches saw.
#[derive(Debug, Default)]
struct Report {
    finished: usize,
    succeeded: usize,
    failed: Vec<String>,
    jobs_created: usize,
    expected_jobs: usize,
    duplicates: Vec<String>,
    missing: Vec<String>,
    extra: Vec<String>,
    lost: Vec<String>,
}

async fn verify(
    ns: &TestNamespace,
    names: &[String],
    jobs: &Shared<BTreeMap<String, JobSeen>>,
    late: &BTreeSet<String>,
    runs: usize,
) -> Report {
    let api: Api<Execution> = ns.api();
    let mut report = Report::default();
    let mut expected = BTreeMap::<String, (String, String)>::new();
    let mut statuses = BTreeMap::new();
    for name in names {
        let status = api
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("reading Execution {name}: {e}"))
            .status
            .unwrap_or_default();
        report.finished += usize::from(status.phase.is_final());
        if status.phase == ExecutionPhase::Succeeded {
            report.succeeded += 1;
        } else {
            report
                .failed
                .push(format!("{name}: {:?} {:?}", status.phase, status.message));
        }
        for s in &status.steps {
            match &s.job_name {
                Some(job) => {
                    expected.insert(job.clone(), (name.clone(), s.id.clone()));
                }
                None => report
                    .missing
                    .push(format!("{name}/{}: no Job in status", s.id)),
            }
        }
        statuses.insert(name.clone(), status);
    }
    report.expected_jobs = expected.len();
    // The watch may still be catching up after etcd's restart: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && expected.keys().any(|j| !lock(jobs).contains_key(j)) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = lock(jobs).clone();
    report.jobs_created = seen.values().map(|j| j.uids.len()).sum();
    for (job, s) in &seen {
        if s.uids.len() > 1 {
            report
                .duplicates
                .push(format!("{job}: {} uids", s.uids.len()));
        }
        if !expected.contains_key(job) {
            report.extra.push(format!(
                "{job} ({}/{} attempt {})",
                s.execution, s.step, s.attempt
            ));
        }
    }
    report
        .missing
        .extend(expected.keys().filter(|j| !seen.contains_key(*j)).cloned());
    for (name, status) in &statuses {
        for (i, id) in STEPS.iter().enumerate() {
            let Some(s) = status.steps.iter().find(|s| s.id == *id) else {
                report.lost.push(format!("{name}/{id}: no step in status"));
                continue;
            };
            // A pod that ended before the harness saw kwok serve its fixture may
            // have printed the namespace's default log: recording that is faithful,
            // not a loss (the harness's read-back can be later than kwok's serving).
            let want = json!({"out": output_of(name, id)});
            let default = json!({"out": "none"});
            let faithful = s.outputs.as_ref() == Some(&want)
                || (late.contains(&format!("{name}/{id}")) && s.outputs.as_ref() == Some(&default));
            if !faithful {
                report
                    .lost
                    .push(format!("{name}/{id}: outputs {:?}", s.outputs));
            }
            let job = s.job_name.as_ref().and_then(|j| seen.get(j));
            if i > 0 {
                // The step before's recorded output, checked just above, is this
                // step's input.
                let want = status
                    .steps
                    .iter()
                    .find(|p| p.id == STEPS[i - 1])
                    .and_then(|p| p.outputs.as_ref())
                    .and_then(|o| o["out"].as_str())
                    .unwrap_or("(no output)")
                    .to_string();
                let got = job.and_then(|j| j.input.clone());
                if got.as_deref() != Some(want.as_str()) {
                    report
                        .lost
                        .push(format!("{name}/{id}: IN {got:?}, want {want:?}"));
                }
            }
        }
    }
    assert_eq!(statuses.len(), runs);
    report
}
