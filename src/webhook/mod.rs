//! Alerts in over HTTP: `POST /webhooks/{alertmanager,grafana,pagerduty,generic}`.
//!
//! Thin around the pure core (`engine::alert`): read the body (bounded), check who
//! sent it ([`auth`]), parse it, match every alert against the Triggers in the cache,
//! create the Executions, and only then answer 2xx. Answers:
//!
//! - 202 `{"alerts", "created", "duplicates", "cancelled", "errors"}`: every
//!   Execution the request asked for exists (created now, or found: a duplicate);
//! - 400 the body does not parse (the reason says where); 401 no credentials, 403
//!   credentials not accepted; 404 an unknown source; 413 over
//!   `--webhook-max-body-bytes`;
//! - 429 more Executions are waiting to be created than `--webhook-queue` allows;
//! - 503 the Triggers are not listed yet, or the API server failed or timed out:
//!   the sender retries, and what was created before is found as a duplicate then.
//!
//! Exactly once comes from the names (`engine::alert::trigger::execution_name`):
//! the API server refuses a second object of the same name, across retries,
//! Alertmanager HA pairs and operator replicas alike.

pub mod auth;
mod status;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::{StreamExt, TryStreamExt};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::{Semaphore, watch};

use crate::api::{AlertSource, Execution, Trigger};
use crate::controller::FIELD_MANAGER;
use crate::engine::alert::trigger::{CompiledTrigger, Outcome, Tenancy};
use crate::engine::alert::{self, AlertEvent, source_from_name, source_name};
use crate::metrics::Metrics;
use auth::{CredentialFiles, Refusal};
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
    shared: &Shared,
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
    let (plan, mut accepted) = match_all(shared, &alerts);
    let matched = plan.starts.len();

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
        let created = create_all(shared, plan.starts).await?;
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
    for (exec, was_created) in created {
        let full = format!("{}/{}", exec.namespace, exec.name);
        shared
            .stats
            .record(&exec.namespace, &exec.trigger, was_created);
        if was_created {
            accepted.created.push(full);
        } else {
            accepted.duplicates.push(full);
        }
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
/// and starts nothing; the alert still reaches the other triggers.
fn match_all(shared: &Shared, alerts: &[AlertEvent]) -> (Plan, Accepted) {
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
                    Ok(c) => triggers.push(c.with_tenancy(&shared.config.tenancy)),
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
    for alert in alerts {
        for t in &triggers {
            match t.evaluate(alert, &shared.config.requested_by) {
                Outcome::NoMatch => {}
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
            }
            if let Some(selector) = t.cancels(alert) {
                plan.cancels.push((t.namespace.clone(), selector));
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
    (plan, accepted)
}

struct Created {
    namespace: String,
    name: String,
    trigger: String,
}

/// Creates the Executions (at most `--webhook-concurrency` in flight across all
/// requests); `true` for created, `false` for found (409). The first failure ends
/// the request (the sender retries the whole notification).
async fn create_all(
    shared: &Shared,
    starts: Vec<Execution>,
) -> Result<Vec<(Created, bool)>, kube::Error> {
    futures::stream::iter(starts)
        .map(|exec| async move {
            let _slot = shared.in_flight.acquire().await.ok();
            let namespace = exec.namespace().unwrap_or_default();
            let done = Created {
                name: exec.name_any(),
                trigger: exec
                    .spec
                    .trigger_ref
                    .as_ref()
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
                namespace: namespace.clone(),
            };
            let api: Api<Execution> = Api::namespaced(shared.client.clone(), &namespace);
            let pp = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            match api.create(&pp, &exec).await {
                Ok(_) => Ok((done, true)),
                Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                    Ok((done, false))
                }
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(shared.config.concurrency.max(1))
        .try_collect()
        .await
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
