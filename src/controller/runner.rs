//! The Runner reconciler: `Ready` False when the Secret the Runner names in
//! `secretName` does not exist, True otherwise.
//!
//! Secrets are not watched (a watch would cache every Secret's data): the Secret is
//! read by name, metadata only, and the Runner re-checked after [`RECHECK_MISSING`]
//! while it is missing, after [`RECHECK_FOUND`] while it exists. Without permission
//! to read it (403) the check is skipped, not failed. Status is written by
//! server-side apply only when the condition changed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::apply::write_status;
use super::error::{Failures, error_action};
use super::{Error, log_stream_error};
use crate::api::{Runner, RunnerStatus};
use crate::engine::lint::{READY, SecretCheck, runner_ready_condition};
use crate::metrics::Metrics;

/// Re-check of a Runner whose Secret is missing: soon, it is probably being created.
pub const RECHECK_MISSING: Duration = Duration::from_secs(10);
/// Re-check of a Runner whose Secret exists (it may be deleted).
pub const RECHECK_FOUND: Duration = Duration::from_secs(300);

/// What the Runner reconciles share.
pub struct Context {
    client: Client,
    metrics: Arc<Metrics>,
    /// Consecutive transient failures per Runner, for the error backoff.
    failures: Failures<DeserializeGuard<Runner>>,
}

/// The Runner controller, fed with copies of the Runner watch events (its own cache:
/// see `super`); runs until `shutdown` completes or the copies end.
pub fn controller(
    client: Client,
    metrics: Arc<Metrics>,
    runner_events: UnboundedReceiver<watcher::Event<DeserializeGuard<Runner>>>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    let (runners, writer) = reflector::store::<DeserializeGuard<Runner>>();
    let trigger = reflector::reflector(writer, runner_events.map(Ok)).applied_objects();
    let ctx = Arc::new(Context {
        client,
        metrics,
        failures: Failures::default(),
    });
    Controller::for_stream(trigger, runners)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(log_stream_error)
}

/// Reconciles one Runner (timed, errors counted by reason).
pub async fn reconcile(
    obj: Arc<DeserializeGuard<Runner>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let metrics = ctx.metrics.clone();
    metrics.reconcile("runner", check(obj, ctx)).await
}

async fn check(obj: Arc<DeserializeGuard<Runner>>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    let runner = match &obj.0 {
        Ok(runner) => runner,
        Err(invalid) => {
            return Err(Error::Malformed {
                kind: "Runner",
                name,
                message: invalid.error.clone(),
            });
        }
    };
    let ns = runner.namespace().unwrap_or_default();
    let check = match &runner.spec.secret_name {
        None => SecretCheck::NotNamed,
        Some(secret) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            match secrets.get_metadata_opt(secret).await {
                Ok(Some(_)) => SecretCheck::Found(secret.clone()),
                Ok(None) => SecretCheck::Missing(secret.clone()),
                Err(kube::Error::Api(s)) if s.code == 403 => SecretCheck::Unchecked(secret.clone()),
                Err(source) => {
                    return Err(Error::ReadSecret {
                        name: format!("{ns}/{secret}"),
                        source,
                    });
                }
            }
        }
    };
    let current = runner.status.clone().unwrap_or_default();
    let old = current.conditions.iter().find(|c| c.type_ == READY);
    let condition =
        runner_ready_condition(runner.metadata.generation, &check, old, Timestamp::now());
    let status = RunnerStatus {
        conditions: vec![condition],
    };
    if status != current {
        write_status::<Runner>(&ctx.client, &ns, &runner.name_any(), &status).await?;
        let c = &status.conditions[0];
        tracing::info!(runner = %name, ready = %c.status, message = %c.message, "Ready written");
    }
    ctx.failures.clear(obj.as_ref());
    Ok(Action::requeue(match check {
        SecretCheck::Missing(_) => RECHECK_MISSING,
        _ => RECHECK_FOUND,
    }))
}

/// What to do after a failed reconcile: a malformed Runner waits for its next
/// change, the rest backs off per Runner.
pub fn error_policy(
    obj: Arc<DeserializeGuard<Runner>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    error_action("Runner", obj.as_ref(), error, &ctx.failures)
}
