//! The controller: the I/O shell around the pure planner.
//!
//! Pipeline for one Execution: [`observe`] builds a `PlanInput` from the reflector
//! caches (plus one bounded log read per newly ended step container), the pure
//! `engine::plan::plan` decides, and [`apply`] writes status and makes the intents
//! true. [`execution`] is the reconciler that strings them together; [`error`]
//! classifies what can go wrong (user errors wait for a change, transient ones back
//! off).
//!
//! [`schedule`] starts the runs of Schedules at their ticks (a watch of scheduled
//! runs of its own, the rest shared through the context).
//!
//! Two more controllers keep `Ready` conditions: [`playbook`] (the lint's verdict
//! against the Runners of the Playbook's namespace; a Runner event re-checks the
//! Playbooks of its namespace) and [`runner`] (whether the Secret a Runner names
//! exists). They run beside the Execution controller on the same Playbook and Runner
//! watches: the watch events are copied to them, and each keeps its own caches of
//! those (small) objects. Not sharing a `Store` with another controller is on
//! purpose: `Store::wait_until_ready` wakes only the last of several tasks waiting on
//! it (kube-runtime 5's `DelayedInit` holds one waker), so a second controller
//! waiting on the same store could stall the first one's reconciles.
//!
//! Watches: Executions (the main resource: the process's one cache, `crate::cache`,
//! shared with the execution page and the notifier; it keeps finished runs slimmed,
//! and [`execution`] plans one only from the whole object), the Jobs and Pods
//! labelled with an Execution's uid (a Pod event triggers its Execution as soon as the step container
//! terminates: the Job controller's own status update is not waited for; [`wake`]
//! lets through only the Pod and Job changes the plan acts on; [`index`] finds a run's
//! Jobs and Pods in those caches by its uid), and
//! Playbooks and Runners (caches for the planner; a Playbook event wakes the
//! Executions waiting for it). Every cache is a reflector fed by the same watch that
//! triggers reconciles, so one watch per kind. Objects of our own kinds are read
//! through `DeserializeGuard`: a malformed one is logged and skipped instead of
//! breaking the watch for every other object.

mod access;
mod apply;
mod dryrun;
mod echo;
mod error;
mod execution;
mod history;
mod index;
mod ledger;
mod observe;
mod playbook;
mod remediation;
mod runner;
mod schedule;
mod spilled;
mod stop;
mod wake;
mod workload;

/// How long the Runner `use` check reuses an answer of the API server.
pub use access::TTL as ACCESS_TTL;
pub use error::Error;

use std::future::Future;
use std::sync::Arc;

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;

use crate::api::{Execution, Playbook, Runner, StepState};
use crate::cache::{self, Executions};
use crate::engine::job::LABEL_EXECUTION_UID;
use crate::engine::plan::Limits;
use crate::engine::slim;
use crate::metrics::Metrics;
use error::Failures;

/// Field manager of everything the controller writes by server-side apply.
pub const FIELD_MANAGER: &str = "playbook-operator";

/// Default bound of one step log read (`pods/log?limitBytes=`): 8 MiB, so that a step
/// printing 5 MiB is read whole and its output cut at a JSON boundary (to the hard
/// cap, `Limits::max_output_bytes`) rather than at a byte of its log.
pub const DEFAULT_LOG_LIMIT_BYTES: i64 = 8 * 1024 * 1024;

/// Most Execution reconciles at once. A start with 10,000 Executions in the cluster
/// reconciles each once; unbounded (kube-runtime's default), all of them would be in
/// flight together, each holding its plan input while it waits for the API server
/// (3.4 GiB resident with 10,000 finished runs). A reconcile mostly waits for the API
/// server, so a few dozen keep two cores and the API server busy.
const MAX_RECONCILES: u16 = 32;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Watch one namespace only (`None`: all namespaces).
    pub namespace: Option<String>,
    /// Most bytes read of one step container's log.
    pub log_limit_bytes: i64,
    /// Bounds on what a run writes into its status.
    pub limits: Limits,
    /// Name in Events' `reportingInstance` (e.g. the pod name).
    pub instance: Option<String>,
    /// The execution page's address (`--external-url`): `.execution.url` in templates
    /// links to the run's page under it.
    pub external_url: Option<String>,
    /// Where the controller records its metrics; the caller keeps a clone to serve
    /// them (`server::router`).
    pub metrics: Arc<Metrics>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            namespace: None,
            log_limit_bytes: DEFAULT_LOG_LIMIT_BYTES,
            limits: Limits::default(),
            instance: None,
            external_url: None,
            metrics: Arc::default(),
        }
    }
}

/// What every reconcile shares: the client, the config, the caches.
pub struct Context {
    pub client: Client,
    pub config: Config,
    pub jobs: Store<Job>,
    pub pods: Store<Pod>,
    /// The cached Jobs and Pods by the Execution uid they are labelled with.
    pub job_index: Arc<index::ByExecution<Job>>,
    pub pod_index: Arc<index::ByExecution<Pod>>,
    pub playbooks: Store<DeserializeGuard<Playbook>>,
    pub runners: Store<DeserializeGuard<Runner>>,
    /// The Execution controller's own cache (history limits count finished runs in it).
    pub executions: Store<DeserializeGuard<Execution>>,
    /// True once all four caches above hold their first list. Reconciles wait on this
    /// flag, never on `Store::wait_until_ready` (which wakes only the last of several
    /// concurrent waiters: kube-runtime 5's `DelayedInit` holds one waker).
    pub caches_ready: watch::Receiver<bool>,
    /// Consecutive transient failures per Execution, for the error backoff.
    failures: Failures<DeserializeGuard<Execution>>,
    /// Spilled step outputs read back for templates (immutable, so cached).
    spilled: spilled::SpilledCache,
    /// Turns and not-yet-cached claims of the playbooks' remediation limits.
    remediations: remediation::Remediations,
    /// Job creates the API server refused, until their step's next plan reads them.
    refusals: apply::Refusals,
    /// Recent answers of the Runner `use` check.
    access: access::AccessCache,
    /// Status writes whose watch event need not reconcile.
    echoes: Arc<echo::Echoes>,
}

/// The runs to reconcile: every change of the Execution cache but the echoes of our
/// own status writes (`echo`).
fn triggers(
    changes: futures::channel::mpsc::UnboundedReceiver<cache::Change>,
    echoes: Arc<echo::Echoes>,
) -> impl futures::Stream<Item = Arc<cache::Cached>> + Send {
    changes.filter_map(move |change| {
        futures::future::ready(match change {
            cache::Change::Applied(cached) => {
                let echo = cached.0.as_ref().is_ok_and(|exec| {
                    let meta = &exec.metadata;
                    echoes.is_echo(
                        meta.uid.as_deref().unwrap_or_default(),
                        meta.resource_version.as_deref(),
                    )
                });
                (!echo).then_some(cached)
            }
            cache::Change::Deleted(cached) => {
                if let Ok(exec) = &cached.0 {
                    echoes.forget(exec.metadata.uid.as_deref().unwrap_or_default());
                }
                None
            }
        })
    })
}

/// One task, the stores' only waiter, raises the flag once every cache has listed.
fn caches_ready(
    jobs: &Store<Job>,
    pods: &Store<Pod>,
    playbooks: &Store<DeserializeGuard<Playbook>>,
    runners: &Store<DeserializeGuard<Runner>>,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let (jobs, pods, playbooks, runners) = (
        jobs.clone(),
        pods.clone(),
        playbooks.clone(),
        runners.clone(),
    );
    tokio::spawn(async move {
        let listed = jobs.wait_until_ready().await.is_ok()
            && pods.wait_until_ready().await.is_ok()
            && playbooks.wait_until_ready().await.is_ok()
            && runners.wait_until_ready().await.is_ok();
        // When reconciles can start: tests/chaos_e2e.rs times its kills from here.
        if listed {
            tracing::info!("caches listed: reconciling");
        }
        tx.send_replace(listed);
    });
    rx
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controllers (Executions, Playbooks, Runners, Schedules) until `shutdown` completes
/// (then in-flight reconciles finish) or the watches end. Scoped to
/// `config.namespace` when set, so a test can run one controller per namespace side
/// by side. Watches Executions itself: [`run_with`] shares a process's cache.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (executions, watch) = Executions::start(client.clone(), config.namespace.as_deref());
    // The watch never ends by itself: the controller's end (shutdown) ends it.
    futures::pin_mut!(watch);
    let controller = run_with(client, config, executions, shutdown);
    futures::pin_mut!(controller);
    futures::future::select(controller, watch).await;
}

/// [`run`] on the process's Execution cache (`crate::cache`), whose watch the caller
/// runs.
pub async fn run_with(
    client: Client,
    config: Config,
    executions: Executions,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = config.namespace.as_deref();
    // Only what this controller created carries the uid label: the watches (and the
    // caches, and memory) stay proportional to our Jobs, not to the cluster's.
    let ours = watcher::Config::default().labels(LABEL_EXECUTION_UID);

    // Slimmed before the cache (`engine::slim::attempt`): a finished run's Jobs and
    // Pods stay as long as the run, and their specs are most of their size.
    let (jobs, jobs_writer) = reflector::store::<Job>();
    let job_index = Arc::new(index::ByExecution::<Job>::default());
    let job_watch = watcher(api::<Job>(&client, ns), ours.clone()).modify(slim::attempt::job);
    let job_events = wake::filter(
        job_index.reflector(jobs_writer, jobs.clone(), job_watch),
        wake::Wakes::default(),
        observe::job_wake,
    );

    let (pods, pods_writer) = reflector::store::<Pod>();
    let pod_index = Arc::new(index::ByExecution::<Pod>::default());
    let pod_watch = {
        // Seen before the reflector stores the event, so the cache still holds the
        // Pod as it was: "first delivered terminated" is a comparison with it.
        let (pods, metrics) = (pods.clone(), config.metrics.clone());
        watcher(api::<Pod>(&client, ns), ours)
            .modify(slim::attempt::pod)
            .inspect(move |event| {
                if let Ok(watcher::Event::Apply(pod)) = event {
                    note_step_end(pod, &pods, &metrics);
                }
            })
    };
    let pod_events = wake::filter(
        pod_index.reflector(pods_writer, pods.clone(), pod_watch),
        wake::Wakes::default(),
        observe::pod_wake,
    );

    // The Playbook and Runner controllers get a copy of every Playbook and Runner
    // watch event: one watch per kind still, driven by the Execution controller.
    // Unbounded, so no controller ever waits for another; the copies end when that
    // stream ends.
    let (pb_copies, pb_copied) = mpsc::unbounded::<watcher::Event<DeserializeGuard<Playbook>>>();
    let (runner_copies_pb, runner_copied_pb) =
        mpsc::unbounded::<watcher::Event<DeserializeGuard<Runner>>>();
    let (runner_copies, runner_copied) =
        mpsc::unbounded::<watcher::Event<DeserializeGuard<Runner>>>();

    let (playbooks, pb_writer) = reflector::store::<DeserializeGuard<Playbook>>();
    let playbook_events = reflector::reflector(
        pb_writer,
        watcher(
            api::<DeserializeGuard<Playbook>>(&client, ns),
            Default::default(),
        ),
    )
    .inspect(move |event| {
        if let Ok(event) = event {
            let _ = pb_copies.unbounded_send(event.clone());
        }
    })
    .touched_objects();

    let (runners, runner_writer) = reflector::store::<DeserializeGuard<Runner>>();
    let runner_events = reflector::reflector(
        runner_writer,
        watcher(
            api::<DeserializeGuard<Runner>>(&client, ns),
            Default::default(),
        ),
    )
    .inspect(move |event| {
        if let Ok(event) = event {
            let _ = runner_copies_pb.unbounded_send(event.clone());
            let _ = runner_copies.unbounded_send(event.clone());
        }
    })
    .touched_objects();

    // The process's one Execution cache: subscribed now, so every run cached so far
    // is reconciled once, then every change (slimmed finished runs included: the
    // reconciler reads the whole object when one needs a plan).
    let exec_store = executions.store();
    let echoes = Arc::new(echo::Echoes::default());
    let controller = Controller::for_shared_stream(
        triggers(executions.subscribe(), echoes.clone()),
        exec_store.clone(),
    )
    .with_config(controller::Config::default().concurrency(MAX_RECONCILES));
    let caches_ready = caches_ready(&jobs, &pods, &playbooks, &runners);
    config
        .metrics
        .attach(exec_store.clone(), caches_ready.clone());
    let ctx = Arc::new(Context {
        client,
        config,
        caches_ready,
        jobs: jobs.clone(),
        pods,
        job_index,
        pod_index,
        playbooks,
        runners,
        executions: exec_store.clone(),
        failures: Failures::default(),
        spilled: spilled::SpilledCache::default(),
        remediations: Default::default(),
        refusals: Default::default(),
        access: Default::default(),
        echoes,
    });
    let shutdown = shutdown.shared();
    let stopping = shutdown.clone();

    let pod_to_execution = {
        let jobs = jobs.clone();
        let execs = exec_store.clone();
        move |pod: Pod| execution_of_pod(&pod, &jobs, &execs)
    };
    let playbook_to_executions = {
        let execs = exec_store.clone();
        move |pb: DeserializeGuard<Playbook>| waiting_for(&pb, &execs)
    };
    let runner_to_executions = {
        let execs = exec_store.clone();
        move |runner: DeserializeGuard<Runner>| approvals_on(&runner, &execs)
    };
    let playbook_controller = playbook::controller(
        ctx.client.clone(),
        ctx.config.metrics.clone(),
        pb_copied,
        runner_copied_pb,
        shutdown.clone(),
    );
    let runner_controller = runner::controller(
        ctx.client.clone(),
        ctx.config.metrics.clone(),
        runner_copied,
        shutdown.clone(),
    );
    let schedule_controller = schedule::controller(ctx.clone(), shutdown.clone());
    let execution_controller = controller
        .owns_stream(job_events)
        .watches_stream(pod_events, pod_to_execution)
        .watches_stream(playbook_events, playbook_to_executions)
        // A step whose Runner is missing fails at once, so no Execution waits for one;
        // a Runner change does change the plan of a step waiting for approval.
        .watches_stream(runner_events, runner_to_executions)
        .graceful_shutdown_on(shutdown)
        .run(execution::reconcile, execution::error_policy, ctx)
        .for_each(log_stream_error);
    let controllers = async {
        futures::join!(
            execution_controller,
            playbook_controller,
            runner_controller,
            schedule_controller
        );
    };
    stop::within(controllers, stopping, stop::GRACE).await;
    tracing::info!("controller stopped");
}

/// Object-level failures were logged by the error policies with their fields; what
/// is logged here are watch errors and queue overflows.
pub(crate) async fn log_stream_error<T, E: std::error::Error, R>(
    result: Result<T, kube::runtime::controller::Error<E, R>>,
) where
    R: std::error::Error,
{
    match result {
        Ok(_) => {}
        Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
        Err(e) => tracing::warn!(error = %e, "controller stream"),
    }
}

/// Records, for the hand-off metric, the moment the watch first shows `pod`'s step
/// container terminated (`cached`: the Pod as the cache holds it before this event).
/// A re-list after a watch gap sends `InitApply`, not `Apply`, so what ended while
/// the watch was down (or before a restart) is not timed.
fn note_step_end(pod: &Pod, cached: &Store<Pod>, metrics: &Metrics) {
    let old = cached.get(&ObjectRef::from_obj(pod));
    if observe::newly_ended(old.as_deref(), pod)
        && let Some(uid) = pod.labels().get(LABEL_EXECUTION_UID)
    {
        metrics.step_container_ended(uid, std::time::Instant::now());
    }
}

/// The Execution a step Pod belongs to: its controller owner for a bare Pod; through
/// its Job (the Pod's controller owner)
/// and that Job's owner Execution; when the Job is not cached yet, through the uid
/// label and the Execution cache.
fn execution_of_pod(
    pod: &Pod,
    jobs: &Store<Job>,
    execs: &Store<DeserializeGuard<Execution>>,
) -> Option<ObjectRef<DeserializeGuard<Execution>>> {
    let ns = pod.namespace()?;
    let controller = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true));
    // A bare step Pod (`workload`) is the Execution's own.
    if let Some(o) = controller.filter(|o| o.kind == "Execution") {
        return Some(ObjectRef::new(&o.name).within(&ns));
    }
    let via_job = controller
        .filter(|o| o.kind == "Job")
        .and_then(|o| jobs.get(&ObjectRef::new(&o.name).within(&ns)))
        .and_then(|job| {
            job.owner_references()
                .iter()
                .find(|o| o.kind == "Execution" && o.controller == Some(true))
                .map(|o| ObjectRef::new(&o.name).within(&ns))
        });
    via_job.or_else(|| {
        let uid = pod.labels().get(LABEL_EXECUTION_UID)?;
        let exec = execs.find(|e| e.uid().as_ref() == Some(uid))?;
        Some(ObjectRef::from_obj(exec.as_ref()))
    })
}

/// Executions in the Playbook's namespace that reference it and have not taken their
/// snapshot yet: they wait for it (and are woken here instead of at their next poll).
/// A finished run waits for nothing (it may have ended without a snapshot).
fn waiting_for(
    pb: &DeserializeGuard<Playbook>,
    execs: &Store<DeserializeGuard<Execution>>,
) -> Vec<ObjectRef<DeserializeGuard<Execution>>> {
    let (name, ns) = (pb.name_any(), pb.namespace());
    let waiting = execs.state_filter(|e| {
        let Ok(exec) = &e.0 else { return false };
        exec.namespace() == ns
            && exec.spec.playbook_ref.name == name
            && exec
                .status
                .as_ref()
                .is_none_or(|s| s.playbook.is_none() && !s.phase.is_final())
    });
    waiting
        .iter()
        .map(|e| ObjectRef::from_obj(e.as_ref()))
        .collect()
}

/// The Executions of a Runner's namespace with a step waiting for approval: the
/// Runner is part of the plan such a step shows, and approvals name that plan.
fn approvals_on(
    runner: &DeserializeGuard<Runner>,
    execs: &Store<DeserializeGuard<Execution>>,
) -> Vec<ObjectRef<DeserializeGuard<Execution>>> {
    let ns = runner.namespace();
    let waiting = execs.state_filter(|e| {
        let Ok(exec) = &e.0 else { return false };
        exec.namespace() == ns
            && exec.status.as_ref().is_some_and(|s| {
                s.steps
                    .iter()
                    .chain(&s.finally)
                    .any(|st| st.state == StepState::WaitingApproval)
            })
    });
    waiting
        .iter()
        .map(|e| ObjectRef::from_obj(e.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests;
