//! Alerts in over HTTP: `POST /webhooks/{alertmanager,grafana,pagerduty,generic}`.
//!
//! Thin around the pure core (`engine::alert`): read the body (bounded), check who
//! sent it ([`auth`]), parse it, match every alert against the Triggers in the cache,
//! create the Executions, and only then answer 2xx. Answers:
//!
//! - 202 `{"alerts", "created", "duplicates", "cancelled", "errors"}`: every
//!   Execution the request asked for exists (created now, or found: a duplicate) or
//!   was refused for good (listed in `errors`: one tenant's quota fails only its own
//!   Execution; [`create`]);
//! - 400 the body does not parse (the reason says where); 401 no credentials, 403
//!   credentials not accepted; 404 an unknown source; 413 over
//!   `--webhook-max-body-bytes`;
//! - 429 more Executions are waiting to be created than `--webhook-queue` allows;
//! - 503 the Triggers are not listed yet, or the API server failed for an Execution
//!   in a way retrying can mend, or timed out: the sender retries, and what was
//!   created before is found as a duplicate then.
//!
//! Exactly once comes from the names (`engine::alert::trigger::execution_name`):
//! the API server refuses a second object of the same name, across retries,
//! Alertmanager HA pairs and operator replicas alike.

pub mod auth;
mod create;
mod status;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::{Semaphore, watch};

use crate::api::{AlertSource, Execution, Trigger};
use crate::engine::alert::trigger::{CompiledTrigger, Outcome, Tenancy};
use crate::engine::alert::{self, AlertEvent, source_from_name, source_name};
use crate::engine::ledger;
use crate::engine::template;
use crate::metrics::Metrics;
use auth::{CredentialFiles, Refusal};
use create::Done;
use status::TriggerStats;

/// Default of `--webhook-max-body-bytes`: 1 MiB (about 3,000 Alertmanager alerts).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default of `--webhook-queue`: Executions waiting to be created, all requests
/// together; past it a request is answered 429 at once.
pub const DEFAULT_QUEUE: usize = 5000;
/// Default of `--webhook-concurrency`: creates in flight to the API server at once.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// Most distinct trigger errors listed in one answer (and logged for one request).
const MAX_ERRORS: usize = 20;
/// How long a request may wait for the API server before it is answered 503.
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// How long matching one request's alerts may take, all Triggers' templates
/// together (each template has its own smaller budget, `template::Budget`).
const MATCH_TIMEOUT: Duration = Duration::from_secs(5);

/// How the webhook endpoints run.
#[derive(Debug)]
pub struct Config {
    /// Match Triggers of this namespace only (`None`: all namespaces).
    pub namespace: Option<String>,
    /// The operator's own user name (a SelfSubjectReview at startup): the requester
    /// of runs from a Trigger whose writer is not recorded.
    pub requested_by: String,
    /// Which alerts each namespace's Triggers see (off: all of them).
    pub tenancy: Tenancy,
    pub credentials: CredentialFiles,
    pub max_body_bytes: usize,
    pub queue: usize,
    pub concurrency: usize,
}

struct Shared {
    client: Client,
    config: Config,
    triggers: Store<DeserializeGuard<Trigger>>,
    triggers_ready: watch::Receiver<bool>,
    queue: Semaphore,
    in_flight: Semaphore,
    metrics: Arc<Metrics>,
    stats: TriggerStats,
}

/// The webhook routes, and the task that keeps them fed (the Trigger watch, the
/// Trigger status writer); the caller runs the task until shutdown.
pub fn start(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (Router, impl std::future::Future<Output = ()> + Send) {
    let api: Api<DeserializeGuard<Trigger>> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (triggers, writer) = reflector::store::<DeserializeGuard<Trigger>>();
    let (ready_tx, triggers_ready) = watch::channel(false);
    let limit = config.max_body_bytes;
    let shared = Arc::new(Shared {
        stats: TriggerStats::default(),
        queue: Semaphore::new(config.queue.max(1)),
        in_flight: Semaphore::new(config.concurrency.max(1)),
        client,
        config,
        triggers: triggers.clone(),
        triggers_ready,
        metrics,
    });
    let router = routes(shared.clone(), limit);
    let task = async move {
        // Backoff: without it a failing watch (API server down) retries in a loop.
        let watch = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        )
        .applied_objects()
        .for_each(|o| {
            if let Err(e) = o {
                tracing::warn!(error = %e, "Trigger watch");
            }
            futures::future::ready(())
        });
        let ready = async move {
            if triggers.wait_until_ready().await.is_ok() {
                ready_tx.send_replace(true);
            }
        };
        let status_writer = status::run(shared.clone());
        // On shutdown the counts not written yet are flushed, with the watch still
        // running: a write refused because the cache was behind succeeds once the
        // watch has caught up (a few tries, then what is left is given up).
        let last_flush = async {
            shutdown.await;
            for _ in 0..5 {
                status::flush(&shared).await;
                if shared.stats.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            _ = async { futures::join!(watch, ready, status_writer) } => {}
            () = last_flush => {}
        }
    };
    (router, task)
}

fn routes(shared: Arc<Shared>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/webhooks/{source}", post(receive))
        // The limit for the body extractor; 413 with our text in `receive`.
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(shared)
}

/// The 202 body.
#[derive(Debug, Default, serde::Serialize)]
struct Accepted {
    alerts: usize,
    created: Vec<String>,
    duplicates: Vec<String>,
    cancelled: Vec<String>,
    errors: Vec<String>,
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(source) = source_from_name(&source) else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "no alert source {source:?}: POST to /webhooks/alertmanager, /webhooks/grafana, /webhooks/pagerduty or /webhooks/generic"
            ),
        );
    };
    let name = source_name(source);
    let response = handle(&shared, source, &headers, body).await;
    shared
        .metrics
        .webhook_request(name, response.status().as_u16());
    response
}

async fn handle(
    shared: &Arc<Shared>,
    source: AlertSource,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is over the limit of {} bytes: send fewer alerts per request (Alertmanager: max_alerts in webhook_config) or raise --webhook-max-body-bytes",
                    shared.config.max_body_bytes
                ),
            );
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let creds = shared.config.credentials.current();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match auth::authenticate(&creds, source, header, &body, now) {
        Ok(()) => {}
        Err(Refusal::Unauthenticated(why)) => {
            let mut r = text(StatusCode::UNAUTHORIZED, why);
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
        Err(Refusal::Forbidden(why)) => return text(StatusCode::FORBIDDEN, why),
    }
    let alerts = match alert::parse(source, &body) {
        Ok(a) => a,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.0),
    };
    if !*shared.triggers_ready.borrow() {
        return unavailable(
            "the operator has not listed the Triggers yet (starting up): retry shortly",
        );
    }
    // Templates are user code: they run on a blocking thread, each within its
    // budget and all of them within MATCH_TIMEOUT, so this runtime keeps serving.
    let deadline = Instant::now() + MATCH_TIMEOUT;
    let matching = {
        let shared = Arc::clone(shared);
        tokio::task::spawn_blocking(move || {
            template::with_deadline(deadline, || match_all(&shared, &alerts, deadline))
        })
    };
    let (plan, mut accepted) = match matching.await {
        Ok(Some(matched)) => matched,
        Ok(None) => {
            return unavailable(&format!(
                "matching the alerts against the Triggers took longer than {} s: retry, or send fewer alerts per request (Alertmanager: max_alerts)",
                MATCH_TIMEOUT.as_secs()
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "matching alerts failed");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "matching the alerts failed inside the operator: retry; the operator's log has the reason",
            );
        }
    };
    // So far `duplicates` holds the alerts whose runs were pruned.
    let matched = plan.starts.len() + accepted.duplicates.len();

    // Bounded: a request needs room in the queue for all its creates (at most the
    // whole queue, so a huge request still gets in when the queue is empty).
    let wanted =
        u32::try_from(plan.starts.len().min(shared.config.queue.max(1))).unwrap_or(u32::MAX);
    let _permits = if wanted == 0 {
        None
    } else {
        match shared.queue.try_acquire_many(wanted) {
            Ok(p) => Some(p),
            Err(_) => {
                let mut r = text(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "{} Executions are waiting to be created (--webhook-queue {}): retry later",
                        shared
                            .config
                            .queue
                            .saturating_sub(shared.queue.available_permits()),
                        shared.config.queue
                    ),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                return r;
            }
        }
    };

    let work = async {
        let created = create::create_all(shared, plan.starts).await;
        let cancelled = cancel_all(shared, plan.cancels).await?;
        Ok::<_, kube::Error>((created, cancelled))
    };
    let outcome = tokio::time::timeout(API_TIMEOUT, work).await;
    let name = source_name(source);
    let (created, cancelled) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return api_failure(&e),
        Err(_) => {
            return unavailable(&format!(
                "the API server did not answer within {} s: retry (Executions created so far are found as duplicates then)",
                API_TIMEOUT.as_secs()
            ));
        }
    };
    let mut failed = Vec::new();
    let mut refused = 0;
    for (exec, done) in created {
        let full = exec.full_name();
        match done {
            Done::Created | Done::Duplicate => {
                let was_created = matches!(done, Done::Created);
                shared
                    .stats
                    .record(&exec.namespace, &exec.trigger, was_created);
                if was_created {
                    accepted.created.push(full);
                } else {
                    accepted.duplicates.push(full);
                }
            }
            Done::Refused(why) => {
                tracing::warn!(execution = %full, error = %why, "Execution refused");
                refused += 1;
                if accepted.errors.len() < MAX_ERRORS {
                    accepted.errors.push(why);
                }
            }
            Done::Failed(why) => failed.push(why),
        }
    }
    if let Some(first) = failed.first() {
        return unavailable(&format!(
            "{} of the Executions could not be created now ({first}): retry (those created are found as duplicates then)",
            failed.len()
        ));
    }
    if refused > 0 && accepted.errors.len() >= MAX_ERRORS {
        accepted.errors.push(format!(
            "{refused} Executions were refused in all; the operator's log lists each"
        ));
    }
    accepted.cancelled = cancelled;
    shared.metrics.webhook_alerts(
        name,
        matched as u64,
        accepted.created.len() as u64,
        accepted.duplicates.len() as u64,
    );
    tracing::info!(
        source = name,
        alerts = accepted.alerts,
        created = accepted.created.len(),
        duplicates = accepted.duplicates.len(),
        cancelled = accepted.cancelled.len(),
        errors = accepted.errors.len(),
        "alerts received"
    );
    // serde_json by hand: axum's `json` feature would add serde_path_to_error for
    // this one response.
    let body = serde_json::to_string(&accepted).unwrap_or_else(|_| "{}".into());
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        body + "\n",
    )
        .into_response()
}

/// What one request asks of the API server.
#[derive(Default)]
struct Plan {
    starts: Vec<Execution>,
    /// (namespace, label selector) of Executions to cancel.
    cancels: Vec<(String, String)>,
}

/// Every alert against every Trigger in the cache. A trigger that cannot compile (a
/// bad regex) or render (`when`, params) adds an error to the answer and the log,
/// and starts nothing; the alert still reaches the other triggers. A trigger whose
/// template went past its budget is skipped for the rest of the request. None when
/// `deadline` passed first (the caller answers 503: the sender retries).
fn match_all(
    shared: &Shared,
    alerts: &[AlertEvent],
    deadline: Instant,
) -> Option<(Plan, Accepted)> {
    let mut accepted = Accepted {
        alerts: alerts.len(),
        ..Accepted::default()
    };
    let mut triggers = Vec::new();
    for t in shared.triggers.state() {
        match &t.0 {
            Ok(trigger) if trigger.spec.enabled => {
                let ns = trigger.namespace().unwrap_or_default();
                match CompiledTrigger::new(&ns, &trigger.name_any(), &trigger.spec) {
                    Ok(c) => {
                        triggers.push((c.with_tenancy(&shared.config.tenancy), Arc::clone(&t)))
                    }
                    Err(e) => accepted
                        .errors
                        .push(format!("trigger {ns}/{}: {e}", trigger.name_any())),
                }
            }
            Ok(_) => {}
            // A Trigger the API server accepted but we cannot read (a newer schema):
            // the controller's log already says so for its kind; say it here too.
            Err(e) => accepted
                .errors
                .push(format!("a Trigger could not be read: {e}")),
        }
    }
    let mut plan = Plan::default();
    let mut seen = BTreeSet::new();
    let mut over_budget = BTreeSet::new();
    for alert in alerts {
        if Instant::now() >= deadline {
            return None;
        }
        for (i, (t, obj)) in triggers.iter().enumerate() {
            let status = obj.0.as_ref().ok().and_then(|o| o.status.as_ref());
            // A resolution renders no template: it cancels even through a
            // trigger that is skipped.
            if let Some(selector) = t.cancels(alert) {
                plan.cancels.push((t.namespace.clone(), selector));
            }
            if over_budget.contains(&i) {
                continue;
            }
            match t.evaluate(alert, &shared.config.requested_by) {
                Outcome::NoMatch => {}
                // Its Execution was pruned (the name is free again): handled already.
                Outcome::Start(exec) if ledger::was_pruned(status, &exec.name_any()) => {
                    let full = format!("{}/{}", t.namespace, exec.name_any());
                    if !accepted.duplicates.contains(&full) {
                        shared.stats.record(&t.namespace, &t.name, false);
                        accepted.duplicates.push(full);
                    }
                }
                Outcome::Start(exec) => {
                    // The same alert twice in one body is one Execution.
                    let key = (t.namespace.clone(), exec.name_any());
                    if seen.insert(key) {
                        plan.starts.push(*exec);
                    }
                }
                // One line per distinct error: a storm of alerts through a broken
                // trigger must not become a storm of identical lines.
                Outcome::Error(e) => {
                    if !accepted.errors.contains(&e) {
                        accepted.errors.push(e);
                    }
                }
                Outcome::OverBudget(_) if Instant::now() >= deadline => return None,
                Outcome::OverBudget(e) => {
                    over_budget.insert(i);
                    accepted.errors.push(e);
                }
            }
        }
    }
    if accepted.errors.len() > MAX_ERRORS {
        let more = accepted.errors.len() - MAX_ERRORS;
        accepted.errors.truncate(MAX_ERRORS);
        accepted.errors.push(format!("... and {more} more"));
    }
    for e in &accepted.errors {
        tracing::warn!(error = %e, "alert not matched");
    }
    Some((plan, accepted))
}

/// Sets `spec.cancel` on the Executions a resolved alert's firing started (those
/// not finished and not cancelled yet); returns their names.
async fn cancel_all(
    shared: &Shared,
    cancels: Vec<(String, String)>,
) -> Result<Vec<String>, kube::Error> {
    let mut cancelled = Vec::new();
    for (ns, selector) in cancels {
        let api: Api<Execution> = Api::namespaced(shared.client.clone(), &ns);
        let list = api.list(&ListParams::default().labels(&selector)).await?;
        for exec in list.items {
            let finished = exec.status.as_ref().is_some_and(|s| s.phase.is_final());
            if finished || exec.spec.cancel {
                continue;
            }
            let name = exec.name_any();
            let patch = json!({"spec": {"cancel": true}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => cancelled.push(format!("{ns}/{name}")),
                // Deleted in between: nothing left to cancel.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(cancelled)
}

fn text(code: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    message.push('\n');
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

fn unavailable(why: &str) -> Response {
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, why);
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    r
}

/// An API failure during the creates: 503 when retrying can help (the API server
/// is down, overloaded or timed out), 500 with its message when it refused (RBAC,
/// validation): the sender retries either way, and nothing is acknowledged.
fn api_failure(e: &kube::Error) -> Response {
    match e {
        kube::Error::Api(s) if matches!(s.code, 429 | 500 | 502 | 503 | 504) => {
            unavailable(&format!(
                "the API server is unavailable ({}: {}): retry",
                s.code, s.message
            ))
        }
        kube::Error::Api(s) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the API server refused an Execution ({}: {}); check the operator's RBAC and the Trigger",
                s.code, s.message
            ),
        ),
        other => unavailable(&format!("cannot reach the API server ({other}): retry")),
    }
}

#[cfg(test)]
mod tests;
