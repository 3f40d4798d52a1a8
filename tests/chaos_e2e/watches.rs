//! The watches that run for the whole chaos test, through every kill and restart
//! (each re-lists when the API server comes back): every Job ever created, each step
//! pod's log fixture (and whether it came too late), and the runs' progress.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, LogParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use playbook_operator::api::{Execution, StepState};
use serde_json::json;

use crate::common::{self, TestNamespace, operator::*};
use crate::{LABEL_ATTEMPT, LABEL_EXECUTION, LABEL_STEP, output_of};

/// One Job name as the watch saw it.
#[derive(Clone, Debug, Default)]
pub(crate) struct JobSeen {
    pub(crate) uids: BTreeSet<String>,
    pub(crate) execution: String,
    pub(crate) step: String,
    pub(crate) attempt: String,
    /// The `IN` env value: the previous step's output.
    pub(crate) input: Option<String>,
}

pub(crate) type Shared<T> = Arc<Mutex<T>>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every Job (name -> uids) ever seen. The watcher re-lists after the API server or
/// etcd comes back, so a Job created while the watch was down still shows (a name
/// deleted and created again shows as a second uid).
pub(crate) fn record_jobs(
    ns: &TestNamespace,
) -> (
    Shared<BTreeMap<String, JobSeen>>,
    tokio::task::JoinHandle<()>,
) {
    let seen = Arc::new(Mutex::new(BTreeMap::<String, JobSeen>::new()));
    let api: Api<Job> = ns.api();
    let sink = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let jobs = watcher(api, watcher::Config::default().labels(LABEL_STEP))
            .default_backoff()
            .applied_objects();
        futures::pin_mut!(jobs);
        while let Some(job) = jobs.next().await {
            let Ok(job) = job else { continue };
            let labels = job.metadata.labels.clone().unwrap_or_default();
            let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
            let name = job.metadata.name.clone().unwrap_or_default();
            let mut seen = lock(&sink);
            let entry = seen.entry(name).or_insert_with(|| JobSeen {
                execution: label(LABEL_EXECUTION),
                step: label(LABEL_STEP),
                attempt: label(LABEL_ATTEMPT),
                input: env_value(&job, "IN"),
                ..JobSeen::default()
            });
            entry
                .uids
                .insert(job.metadata.uid.clone().unwrap_or_default());
        }
    });
    (seen, task)
}

/// When kwok first served each pod's log fixture and when its container ended: a
/// fixture placed after that is the harness's lateness, not the operator's loss, and
/// is reported apart.
#[derive(Default)]
pub(crate) struct PodLogs {
    fixture_at: BTreeMap<String, (Instant, Timestamp)>,
    /// When this harness's watch first saw the container terminated.
    terminated_at: BTreeMap<String, Instant>,
    /// The container's own `finishedAt` (whole seconds). After an API server restart
    /// this harness's watch can come back later than the operator's, which then reads
    /// the log before the harness sees the end: the clock of the end itself decides.
    finished_at: BTreeMap<String, Timestamp>,
    /// `<execution>/<step>` of each pod.
    step_of: BTreeMap<String, String>,
}

impl PodLogs {
    /// The `<execution>/<step>`s whose pod ended before its fixture was in place: seen
    /// ending first, or ending (to the second its `finishedAt` has) no later than the
    /// fixture was seen served.
    pub(crate) fn late(&self) -> BTreeSet<String> {
        self.terminated_at
            .iter()
            .filter(|(pod, seen_ended)| {
                let Some((at, wall)) = self.fixture_at.get(*pod) else {
                    return true;
                };
                let ended_first = self
                    .finished_at
                    .get(*pod)
                    .is_some_and(|finished| wall.as_second() >= finished.as_second());
                at > *seen_ended || ended_first
            })
            .filter_map(|(pod, _)| self.step_of.get(pod).cloned())
            .collect()
    }
}

/// Serves each step pod its own log (a kwok `Logs` object per pod, made when the pod
/// is first seen; the Runner keeps pods running 1 s, time enough for it): the step's
/// end marker and `{"out": "<execution>-<step>"}`.
pub(crate) fn serve_pod_logs(ns: &TestNamespace) -> (Shared<PodLogs>, tokio::task::JoinHandle<()>) {
    let state = Arc::new(Mutex::new(PodLogs::default()));
    let pods: Api<Pod> = ns.api();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Logs"),
        "logs",
    );
    let logs: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
    let dir = common::log_fixtures_dir().join(&ns.name);
    let sink = Arc::clone(&state);
    let task = tokio::spawn(async move {
        let stream = watcher(pods.clone(), watcher::Config::default().labels(LABEL_STEP))
            .default_backoff()
            .applied_objects();
        futures::pin_mut!(stream);
        let mut asked = BTreeSet::new();
        while let Some(pod) = stream.next().await {
            let Ok(pod) = pod else { continue };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if let Some(finished) = terminated(&pod) {
                let mut seen = lock(&sink);
                seen.terminated_at
                    .entry(name.clone())
                    .or_insert_with(Instant::now);
                if let Some(at) = finished {
                    seen.finished_at.insert(name.clone(), at);
                }
            }
            if !asked.insert(name.clone()) {
                continue;
            }
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            let (exec, step) = (
                labels.get(LABEL_EXECUTION).cloned().unwrap_or_default(),
                labels.get(LABEL_STEP).cloned().unwrap_or_default(),
            );
            lock(&sink)
                .step_of
                .insert(name.clone(), format!("{exec}/{step}"));
            let text = step_log(
                &format!("{exec} {step} working"),
                json!({"out": output_of(&exec, &step)}),
            );
            let file = dir.join(format!("pod.{name}.log"));
            common::write_log_fixture(&file, &text);
            let (logs, sink, pods) = (logs.clone(), Arc::clone(&sink), pods.clone());
            let want = output_of(&exec, &step);
            tokio::spawn(async move {
                let obj: DynamicObject = from_json(json!({
                    "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
                    "metadata": {"name": name},
                    "spec": {"logs": [{"logsFile": file}]}
                }));
                // Retried while the API server or etcd is down.
                loop {
                    match logs.create(&PostParams::default(), &obj).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(e)) if e.code == 409 => break,
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                // In place means kwok serves it: after a restart kwok's own watch of
                // Logs objects may lag, and until it catches up the pod prints the
                // default log. Read back through `pods/log` as the operator does.
                let give_up = Instant::now() + Duration::from_secs(120);
                while Instant::now() < give_up {
                    let served = pods.logs(&name, &LogParams::default()).await;
                    if served.is_ok_and(|text| text.contains(&want)) {
                        let at = (Instant::now(), Timestamp::now());
                        lock(&sink).fixture_at.insert(name, at);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    });
    (state, task)
}

/// `Some` once a container of `pod` terminated, with its `finishedAt` if it says.
fn terminated(pod: &Pod) -> Option<Option<Timestamp>> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .iter()
        .find_map(|c| c.state.as_ref()?.terminated.as_ref())
        .map(|t| t.finished_at.as_ref().map(|f| f.0))
}

/// Runs finished and steps Succeeded so far (from a watch: it drives the chaos).
#[derive(Default)]
pub(crate) struct Progress {
    pub(crate) finished: BTreeSet<String>,
    pub(crate) steps_done: BTreeMap<String, usize>,
}

pub(crate) fn watch_progress(
    ns: &TestNamespace,
) -> (Shared<Progress>, tokio::task::JoinHandle<()>) {
    let state = Arc::new(Mutex::new(Progress::default()));
    let api: Api<Execution> = ns.api();
    let sink = Arc::clone(&state);
    let task = tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects();
        futures::pin_mut!(stream);
        while let Some(exec) = stream.next().await {
            let Ok(exec) = exec else { continue };
            let name = exec.metadata.name.clone().unwrap_or_default();
            let status = exec.status.unwrap_or_default();
            let done = status
                .steps
                .iter()
                .filter(|s| s.state == StepState::Succeeded)
                .count();
            let mut p = lock(&sink);
            p.steps_done.insert(name.clone(), done);
            if status.phase.is_final() {
                p.finished.insert(name);
            }
        }
    });
    (state, task)
}
