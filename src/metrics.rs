//! Prometheus metrics of the operator, served on `/metrics` by [`crate::server`].
//!
//! The names are a contract (a benchmark and a Grafana dashboard read them):
//! `playbook_executions_total{playbook,result}`, `playbook_executions_running`,
//! `playbook_step_duration_seconds{phase}`, `playbook_step_handoff_seconds`,
//! `playbook_reconcile_errors_total{controller,reason}`,
//! `playbook_reconcile_duration_seconds{controller}`, `playbook_jobs_created_total`,
//! and the incident review's numbers (the same as `playbook-operator report`, from
//! `engine::report::run_review` when a run finishes):
//! `playbook_time_to_phase_seconds{playbook,phase}`,
//! `playbook_approval_wait_seconds{playbook}`,
//! `playbook_executions_automated_total{playbook}`; `playbook_leader` (leader
//! election); and for alerts `playbook_webhook_requests_total{source,code}`,
//! `playbook_alerts_matched_total{source}`,
//! `playbook_webhook_executions_created_total{source}`,
//! `playbook_webhook_duplicates_total{source}`; and for blast-radius limits
//! `playbook_remediations_held_total{namespace,playbook}`.
//!
//! One [`Metrics`] is created by the caller of `controller::run` (it rides in the
//! controller's `Config`) and shared with the HTTP server. The controller records at
//! the points where it applies a transition; what a plan changed that counts
//! ([`transitions`]) is a pure function of the status before and after it. Counts are
//! of transitions *this process* writes, so a restarted operator does not count an
//! Execution's end again, and the running gauge is computed at scrape time from the
//! controller's Execution cache, so it is right after a restart too.

use std::fmt;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::api::{Execution, ExecutionPhase, Phase};
use crate::engine::report::RunReview;

/// Hand-off latency: the controller's own reaction time, 1 ms to 10 s.
const HANDOFF_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Step durations: from a quick lookup (0.1 s) to an hour-long remediation.
const STEP_BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Time to a phase, approval waits: seconds for an automated enrichment, hours for a
/// remediation that waited for someone.
const REVIEW_BUCKETS: [f64; 13] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
];
/// Reconciles: milliseconds normally; up to 30 s while waiting for the caches.
const RECONCILE_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// How many counted transitions are remembered to avoid counting one twice (see
/// [`Recent`]).
const RECENT_COUNTED: usize = 4096;

/// The `controller` label values of the reconcile metrics.
pub const CONTROLLERS: [&str; 4] = ["execution", "playbook", "runner", "schedule"];

/// Content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `source` label values of the webhook metrics (the four endpoints).
pub const SOURCES: [&str; 4] = ["alertmanager", "grafana", "pagerduty", "generic"];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// What the HTTP endpoints read of a running controller.
struct ControllerView {
    executions: Store<DeserializeGuard<Execution>>,
    caches_ready: watch::Receiver<bool>,
}

/// The operator's metrics, and what `/readyz` asks the controller.
pub struct Metrics {
    registry: Registry,
    /// Every metric family registered, as named in `# TYPE` lines.
    names: Vec<String>,
    executions: Family<ExecutionLabels, Counter>,
    running: Gauge,
    step_duration: HistogramFamily<PhaseLabels>,
    handoff: Histogram,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: HistogramFamily<ControllerLabels>,
    jobs_created: Counter,
    webhook_requests: Family<RequestLabels, Counter>,
    alerts_matched: Family<SourceLabels, Counter>,
    webhook_created: Family<SourceLabels, Counter>,
    webhook_duplicates: Family<SourceLabels, Counter>,
    time_to_phase: HistogramFamily<PlaybookPhaseLabels>,
    approval_wait: HistogramFamily<PlaybookLabels>,
    automated: Family<PlaybookLabels, Counter>,
    remediations_held: Family<NamespacedPlaybookLabels, Counter>,
    notify_messages: Family<NotifyLabels, Counter>,
    /// 1 while this process runs the controller: always without leader election,
    /// only while it holds the Lease with it (see [`Metrics::set_leader`]).
    leader: Gauge,
    /// True while this replica waits for the leader Lease: `/readyz` answers 200
    /// then (a standby serves webhooks), although its controller has no caches.
    standby: std::sync::atomic::AtomicBool,
    /// When the latest step container of each Execution (by uid) was seen ending,
    /// until the controller takes that end in (see [`Metrics::step_container_ended`]).
    ended: PendingEnds,
    counted: Mutex<Recent>,
    controller: OnceLock<ControllerView>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let executions = Family::<ExecutionLabels, Counter>::default();
        let running = Gauge::default();
        let step_duration: HistogramFamily<PhaseLabels> =
            Family::new_with_constructor(|| Histogram::new(STEP_BUCKETS));
        let handoff = Histogram::new(HANDOFF_BUCKETS);
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration: HistogramFamily<ControllerLabels> =
            Family::new_with_constructor(|| Histogram::new(RECONCILE_BUCKETS));
        let jobs_created = Counter::default();
        let webhook_requests = Family::<RequestLabels, Counter>::default();
        let alerts_matched = Family::<SourceLabels, Counter>::default();
        let webhook_created = Family::<SourceLabels, Counter>::default();
        let webhook_duplicates = Family::<SourceLabels, Counter>::default();
        for source in SOURCES {
            let labels = SourceLabels { source };
            let _ = alerts_matched.get_or_create(&labels);
            let _ = webhook_created.get_or_create(&labels);
            let _ = webhook_duplicates.get_or_create(&labels);
        }
        let time_to_phase: HistogramFamily<PlaybookPhaseLabels> =
            Family::new_with_constructor(|| Histogram::new(REVIEW_BUCKETS));
        let approval_wait: HistogramFamily<PlaybookLabels> =
            Family::new_with_constructor(|| Histogram::new(REVIEW_BUCKETS));
        let automated = Family::<PlaybookLabels, Counter>::default();
        let remediations_held = Family::<NamespacedPlaybookLabels, Counter>::default();
        let notify_messages = Family::<NotifyLabels, Counter>::default();
        let leader = Gauge::default();
        leader.set(1);
        // Series with a known, small label set exist from the start, at zero, so a
        // dashboard's rate() has a baseline before the first step ends.
        for phase in [
            Phase::Enrich,
            Phase::Triage,
            Phase::Communicate,
            Phase::Remediate,
        ] {
            let _ = step_duration.get_or_create(&PhaseLabels {
                phase: phase_label(phase),
            });
        }
        for controller in CONTROLLERS {
            let _ = reconcile_duration.get_or_create(&ControllerLabels { controller });
        }

        let mut families = Families::default();
        // prometheus-client appends `_total` to counters.
        families.add(
            "playbook_executions",
            "Executions this operator brought to a final phase, by playbook and result (Succeeded, Failed, Cancelled)",
            executions.clone(),
        );
        families.add(
            "playbook_executions_running",
            "Executions in the watched namespaces whose phase is not final",
            running.clone(),
        );
        families.add(
            "playbook_step_duration_seconds",
            "Duration of steps that ended (from the attempt's start to its end, 1 s resolution), by incident phase",
            step_duration.clone(),
        );
        families.add(
            "playbook_step_handoff_seconds",
            "The controller's own latency from seeing a step's container end (the Pod watch event) to creating the next step's Job, measured in process; for parallel branches from the latest end",
            handoff.clone(),
        );
        families.add(
            "playbook_reconcile_errors",
            "Failed reconciles, by controller (execution, playbook, runner) and reason",
            reconcile_errors.clone(),
        );
        families.add(
            "playbook_reconcile_duration_seconds",
            "Time of one reconcile, by controller (execution, playbook, runner)",
            reconcile_duration.clone(),
        );
        families.add(
            "playbook_jobs_created",
            "Step Jobs created (an AlreadyExists answer for a Job this operator created before is not counted)",
            jobs_created.clone(),
        );
        families.add(
            "playbook_time_to_phase_seconds",
            "Finished runs: seconds from the run's start to the end of its last step of a phase (Enrich, Triage, Communicate, Remediate), when every step of that phase succeeded or was skipped",
            time_to_phase.clone(),
        );
        families.add(
            "playbook_approval_wait_seconds",
            "Finished runs: seconds each approved step waited for a person (waitingSince to start)",
            approval_wait.clone(),
        );
        families.add(
            "playbook_executions_automated",
            "Runs this operator brought to a final phase in which no step waited for a person",
            automated.clone(),
        );
        families.add(
            "playbook_leader",
            "1 while this replica runs the controller (holds the leader Lease, or runs without leader election)",
            leader.clone(),
        );
        families.add(
            "playbook_webhook_requests",
            "Webhook requests answered, by source and HTTP status code",
            webhook_requests.clone(),
        );
        families.add(
            "playbook_alerts_matched",
            "Alerts that matched a Trigger, once per (alert, trigger), by source",
            alerts_matched.clone(),
        );
        families.add(
            "playbook_webhook_executions_created",
            "Executions created from alerts, by source",
            webhook_created.clone(),
        );
        families.add(
            "playbook_webhook_duplicates",
            "Alerts whose Execution existed already (a redelivery or a duplicate notification), by source",
            webhook_duplicates.clone(),
        );
        families.add(
            "playbook_remediations_held",
            "Runs whose remediate step the playbook's limits.remediations held for an approval, by namespace and playbook",
            remediations_held.clone(),
        );
        families.add(
            "playbook_notify_messages",
            "Chat messages (post or update) delivered or failed, by channel and result (sent, failed); a failure is retried with backoff",
            notify_messages.clone(),
        );
        let Families { registry, names } = families;
        Self {
            registry,
            names,
            executions,
            running,
            step_duration,
            handoff,
            reconcile_errors,
            reconcile_duration,
            jobs_created,
            webhook_requests,
            alerts_matched,
            webhook_created,
            webhook_duplicates,
            time_to_phase,
            approval_wait,
            automated,
            remediations_held,
            notify_messages,
            leader,
            standby: std::sync::atomic::AtomicBool::new(false),
            ended: PendingEnds::default(),
            counted: Mutex::new(Recent::new(RECENT_COUNTED)),
            controller: OnceLock::new(),
        }
    }

    /// The metric families this operator exports (a dashboard may query only these).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Lets the HTTP endpoints see the controller: its Execution cache (for the
    /// running gauge) and whether its caches have listed (for `/readyz`). The first
    /// controller attached wins; one `Metrics` serves one controller.
    pub fn attach(
        &self,
        executions: Store<DeserializeGuard<Execution>>,
        caches_ready: watch::Receiver<bool>,
    ) {
        let _ = self.controller.set(ControllerView {
            executions,
            caches_ready,
        });
    }

    /// True once the attached controller's caches hold their first list.
    pub fn caches_ready(&self) -> bool {
        self.controller
            .get()
            .is_some_and(|c| *c.caches_ready.borrow())
    }

    /// Leader election's verdict: `false` makes this replica a standby (no
    /// controller, `/readyz` 200, `playbook_leader` 0).
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
        self.standby
            .store(!leader, std::sync::atomic::Ordering::Relaxed);
    }

    /// True while this replica waits for the leader Lease.
    pub fn standby(&self) -> bool {
        self.standby.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The metrics in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        if let Some(c) = self.controller.get() {
            let state = c.executions.state();
            let running = running(state.iter().filter_map(|e| e.0.as_ref().ok()));
            self.running.set(running);
        }
        let mut text = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in it,
        // and a partial page is still better than none for a scrape.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(error = %e, "encoding the metrics");
        }
        text
    }

    /// Times one reconcile of `controller` and counts it by error reason if it fails.
    pub async fn reconcile<T, E: Reason>(
        &self,
        controller: &'static str,
        reconcile: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let start = Instant::now();
        let result = reconcile.await;
        self.reconcile_duration
            .get_or_create(&ControllerLabels { controller })
            .observe(start.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.reconcile_errors
                .get_or_create(&ErrorLabels {
                    controller,
                    reason: e.reason(),
                })
                .inc();
        }
        result
    }

    /// The Pod watch delivered, for the first time, a step Pod of Execution `uid`
    /// whose step container has terminated. The latest end wins: with parallel
    /// branches the next Job waits for the last of them.
    pub fn step_container_ended(&self, uid: &str, at: Instant) {
        self.ended.record(uid, at);
    }

    /// One Job this process really created (not a 409).
    pub fn job_created(&self) {
        self.jobs_created.inc();
    }

    /// One chat delivery to `channel`: `sent` or `failed`.
    pub fn notify_message(&self, channel: &str, result: &'static str) {
        self.notify_messages
            .get_or_create(&NotifyLabels {
                channel: channel.to_string(),
                result,
            })
            .inc();
    }

    /// One webhook request of `source` (one of [`SOURCES`]) answered with `code`.
    pub fn webhook_request(&self, source: &'static str, code: u16) {
        self.webhook_requests
            .get_or_create(&RequestLabels { source, code })
            .inc();
    }

    /// What one webhook request did: (alert, trigger) pairs matched, Executions
    /// created, and those that existed already.
    pub fn webhook_alerts(
        &self,
        source: &'static str,
        matched: u64,
        created: u64,
        duplicates: u64,
    ) {
        let labels = SourceLabels { source };
        self.alerts_matched.get_or_create(&labels).inc_by(matched);
        self.webhook_created.get_or_create(&labels).inc_by(created);
        self.webhook_duplicates
            .get_or_create(&labels)
            .inc_by(duplicates);
    }

    /// Records what applying one plan of Execution `uid` (of `playbook`) changed,
    /// once its status was written.
    pub fn status_written(&self, uid: &str, playbook: &str, t: &Transitions) {
        let mut counted = lock(&self.counted);
        if let Some(result) = t.finished.and_then(result_label)
            && counted.first_time(uid.to_string())
        {
            self.executions
                .get_or_create(&ExecutionLabels {
                    playbook: playbook.to_string(),
                    result,
                })
                .inc();
            if let Some(review) = &t.review {
                self.finished_run(playbook, review);
            }
        }
        for step in &t.steps_ended {
            if counted.first_time(format!("{uid}/{}/{}", step.id, step.attempt)) {
                self.step_duration
                    .get_or_create(&PhaseLabels {
                        phase: phase_label(step.phase),
                    })
                    .observe(step.seconds);
            }
        }
    }

    /// Run `uid` of `namespace/playbook` was held by the remediation limit (once per
    /// run, however often its hold is written).
    pub fn remediation_held(&self, namespace: &str, playbook: &str, uid: &str) {
        if lock(&self.counted).first_time(format!("{uid}/remediation-held")) {
            self.remediations_held
                .get_or_create(&NamespacedPlaybookLabels {
                    namespace: namespace.to_string(),
                    playbook: playbook.to_string(),
                })
                .inc();
        }
    }

    /// The review numbers of a run that just finished.
    fn finished_run(&self, playbook: &str, review: &RunReview) {
        for (phase, secs) in &review.to_phase {
            self.time_to_phase
                .get_or_create(&PlaybookPhaseLabels {
                    playbook: playbook.to_string(),
                    phase: phase_label(*phase),
                })
                .observe(*secs as f64);
        }
        let labels = PlaybookLabels {
            playbook: playbook.to_string(),
        };
        for secs in &review.approval_waits {
            self.approval_wait
                .get_or_create(&labels)
                .observe(*secs as f64);
        }
        if review.automated() {
            self.automated.get_or_create(&labels).inc();
        }
    }

    /// After the Job creates of one plan of Execution `uid`: when that plan took a
    /// container's end in, the recorded end is used (observed if a Job was created at
    /// `first_created`) and cleared; a final Execution's record is cleared too.
    pub fn jobs_applied(&self, uid: &str, t: &Transitions, first_created: Option<Instant>) {
        if !t.took_in_end && !t.is_final {
            return;
        }
        let end = self.ended.take(uid);
        if t.took_in_end
            && let (Some(end), Some(created)) = (end, first_created)
        {
            self.handoff
                .observe(created.saturating_duration_since(end).as_secs_f64());
        }
    }
}

/// An error's low-cardinality label for `reconcile_errors_total`. A trait so
/// that the controllers' error type depends on metrics, not the other way round.
pub trait Reason {
    fn reason(&self) -> &'static str;
}

/// A registry and the names of the families registered in it.
#[derive(Default)]
struct Families {
    registry: Registry,
    names: Vec<String>,
}

impl Families {
    /// Registers one metric and remembers its family name (prometheus-client exposes
    /// counters with `_total` appended to the sample names, not to the family's).
    fn add(&mut self, name: &str, help: &str, metric: impl prometheus_client::registry::Metric) {
        self.names.push(name.to_string());
        self.registry.register(name, help, metric);
    }
}

/// A poisoned lock only means another thread panicked mid-update of a metric
/// bookkeeping map: the map is still usable, and metrics must not take the
/// controller down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `result` label of a final phase.
fn result_label(phase: ExecutionPhase) -> Option<&'static str> {
    match phase {
        ExecutionPhase::Succeeded => Some("Succeeded"),
        ExecutionPhase::Failed => Some("Failed"),
        ExecutionPhase::Cancelled => Some("Cancelled"),
        // A dry run ran nothing: it is no execution result.
        ExecutionPhase::Pending
        | ExecutionPhase::Running
        | ExecutionPhase::WaitingApproval
        | ExecutionPhase::DryRun => None,
    }
}

/// The `phase` label: capitalised, as the phases are named in the docs and Grafana.
fn phase_label(phase: Phase) -> &'static str {
    match phase {
        Phase::Enrich => "Enrich",
        Phase::Triage => "Triage",
        Phase::Communicate => "Communicate",
        Phase::Remediate => "Remediate",
    }
}

mod handoff;
mod labels;
mod recent;
mod transitions;
use handoff::PendingEnds;
use labels::*;
use recent::Recent;
pub use transitions::{StepEnded, Transitions, running, transitions};

#[cfg(test)]
mod tests;
