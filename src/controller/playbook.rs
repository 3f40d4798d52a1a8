//! The Playbook reconciler: lint the Playbook against the Runners of its namespace
//! and write the `Ready` condition.
//!
//! The verdict is `engine::lint::ready_condition` (pure); this file reads the Runner
//! cache, calls it with the current time, and writes status by server-side apply
//! only when the condition (or the observed generation) changed, so an unchanged
//! Playbook costs no write. A Runner event re-reconciles the Playbooks of its
//! namespace, so "unknown runner" clears when it appears. Its caches are its own,
//! fed with copies of the Execution controller's watch events (see `super`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use k8s_openapi::jiff::Timestamp;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use super::apply::write_status;
use super::error::{Failures, error_action};
use super::{Error, log_stream_error};
use crate::api::{Playbook, PlaybookStatus, Runner};
use crate::engine::lint::{READY, ready_condition};
use crate::metrics::Metrics;

/// How long a reconcile waits for the Runner cache's first list.
const CACHE_WAIT: Duration = Duration::from_secs(30);

/// What the Playbook reconciles share.
pub struct Context {
    client: Client,
    metrics: Arc<Metrics>,
    /// The Runners, to check the steps' `runner` against.
    runners: Store<DeserializeGuard<Runner>>,
    /// True once the Runners were listed (a watch channel: any number of reconciles
    /// may wait for it, unlike `Store::wait_until_ready`).
    runners_listed: watch::Receiver<bool>,
    /// Consecutive transient failures per Playbook, for the error backoff.
    failures: Failures<DeserializeGuard<Playbook>>,
}

/// The Playbook controller, fed with copies of the Playbook and Runner watch events;
/// runs until `shutdown` completes or the copies end.
pub fn controller(
    client: Client,
    metrics: Arc<Metrics>,
    playbook_events: UnboundedReceiver<watcher::Event<DeserializeGuard<Playbook>>>,
    runner_events: UnboundedReceiver<watcher::Event<DeserializeGuard<Runner>>>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    let (playbooks, pb_writer) = reflector::store::<DeserializeGuard<Playbook>>();
    // A deleted Playbook has nothing left to reconcile; a deleted Runner does.
    let pb_trigger = reflector::reflector(pb_writer, playbook_events.map(Ok)).applied_objects();
    let (runners, runner_writer) = reflector::store::<DeserializeGuard<Runner>>();
    let (listed, runners_listed) = watch::channel(false);
    let runner_trigger = reflector::reflector(runner_writer, runner_events.map(Ok))
        .inspect(move |e| {
            if matches!(e, Ok(watcher::Event::InitDone)) {
                listed.send_replace(true);
            }
        })
        .touched_objects();
    let ctx = Arc::new(Context {
        client,
        metrics,
        runners,
        runners_listed,
        failures: Failures::default(),
    });
    let runner_to_playbooks = {
        let playbooks = playbooks.clone();
        move |runner: DeserializeGuard<Runner>| playbooks_of_namespace(&runner, &playbooks)
    };
    Controller::for_stream(pb_trigger, playbooks)
        .watches_stream(runner_trigger, runner_to_playbooks)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(log_stream_error)
}

/// Reconciles one Playbook (timed, errors counted by reason).
pub async fn reconcile(
    obj: Arc<DeserializeGuard<Playbook>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let metrics = ctx.metrics.clone();
    metrics.reconcile("playbook", check(obj, ctx)).await
}

async fn check(obj: Arc<DeserializeGuard<Playbook>>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    let pb = match &obj.0 {
        Ok(pb) => pb,
        Err(invalid) => {
            return Err(Error::Malformed {
                kind: "Playbook",
                name,
                message: invalid.error.clone(),
            });
        }
    };
    // An empty cache would make every runner "unknown" for a moment.
    let mut listed = ctx.runners_listed.clone();
    let ready =
        tokio::time::timeout(CACHE_WAIT, async { listed.wait_for(|l| *l).await.is_ok() }).await;
    if ready != Ok(true) {
        return Err(Error::CachesNotReady);
    }
    let ns = pb.namespace().unwrap_or_default();
    let runners = runner_names(&ctx.runners, &ns);
    let current = pb.status.clone().unwrap_or_default();
    let old = current.conditions.iter().find(|c| c.type_ == READY);
    let generation = pb.metadata.generation;
    let condition = ready_condition(&pb.spec, generation, &runners, old, Timestamp::now());
    // Only the fields this reconciler owns: `remediationClaims` is the history
    // pruner's (another field manager), which this apply leaves alone.
    let status = PlaybookStatus {
        conditions: vec![condition],
        observed_generation: generation,
        ..PlaybookStatus::default()
    };
    if (&status.conditions, status.observed_generation)
        != (&current.conditions, current.observed_generation)
    {
        write_status::<Playbook>(&ctx.client, &ns, &pb.name_any(), &status).await?;
        let c = &status.conditions[0];
        tracing::info!(playbook = %name, ready = %c.status, message = %c.message, "Ready written");
    }
    ctx.failures.clear(obj.as_ref());
    // Every change that matters (an edit, a Runner created or deleted) is an event.
    Ok(Action::await_change())
}

/// The Runners of `ns` in the cache, sorted. A malformed Runner is left out, as the
/// Execution controller leaves it out: a step on it would not run.
pub fn runner_names(runners: &Store<DeserializeGuard<Runner>>, ns: &str) -> Vec<String> {
    let mut names: Vec<String> = runners
        .state()
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(ns) && r.0.is_ok())
        .map(|r| r.name_any())
        .collect();
    names.sort();
    names
}

/// The Playbooks of the Runner's namespace: a Runner created, changed or deleted may
/// change whether they are valid.
pub fn playbooks_of_namespace(
    runner: &DeserializeGuard<Runner>,
    playbooks: &Store<DeserializeGuard<Playbook>>,
) -> Vec<ObjectRef<DeserializeGuard<Playbook>>> {
    let ns = runner.namespace();
    playbooks
        .state()
        .iter()
        .filter(|p| p.namespace() == ns)
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// What to do after a failed reconcile: a malformed Playbook waits for its next
/// change, the rest backs off per Playbook.
pub fn error_policy(
    obj: Arc<DeserializeGuard<Playbook>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    error_action("Playbook", obj.as_ref(), error, &ctx.failures)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http::{Request, Response};
    use kube::client::Body;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;

    type Log = Arc<Mutex<Vec<String>>>;

    /// A client whose API server answers every request with the Playbook, and logs
    /// `METHOD path` of every request.
    fn fake_client() -> (Client, Log) {
        let log: Log = Arc::default();
        let seen = Arc::clone(&log);
        let service = tower::service_fn(move |req: Request<Body>| {
            seen.lock()
                .unwrap()
                .push(format!("{} {}", req.method(), req.uri().path()));
            let body = json!({
                "apiVersion": "stackpulse.io/v1", "kind": "Playbook",
                "metadata": {"name": "pb", "namespace": "ns"},
                "spec": {"steps": [{"id": "a", "image": "x"}]},
            });
            let response = Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string().into_bytes()));
            async move { response }
        });
        (Client::new(service, "ns"), log)
    }

    fn context(client: Client, runners: &[&str]) -> (Arc<Context>, watch::Sender<bool>) {
        let (store, mut writer) = reflector::store::<DeserializeGuard<Runner>>();
        for name in runners {
            writer.apply_watcher_event(&Event::Apply(DeserializeGuard(Ok(
                serde_json::from_value(json!({
                    "apiVersion": "stackpulse.io/v1", "kind": "Runner",
                    "metadata": {"name": name, "namespace": "ns"}, "spec": {},
                }))
                .expect("a Runner"),
            ))));
        }
        let (tx, rx) = watch::channel(true);
        let ctx = Context {
            client,
            metrics: Arc::default(),
            runners: store,
            runners_listed: rx,
            failures: Failures::default(),
        };
        (Arc::new(ctx), tx)
    }

    fn playbook(status: Option<serde_json::Value>) -> Arc<DeserializeGuard<Playbook>> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "stackpulse.io/v1", "kind": "Playbook",
                "metadata": {"name": "pb", "namespace": "ns", "generation": 2},
                "spec": {"steps": [{"id": "a", "image": "x"}]},
                "status": status,
            }))
            .expect("a guard"),
        )
    }

    #[tokio::test]
    async fn the_condition_is_written_once_and_not_again_when_unchanged() {
        let (client, log) = fake_client();
        let (ctx, _listed) = context(client, &["default"]);
        reconcile(playbook(None), ctx.clone())
            .await
            .expect("reconciled");
        assert_eq!(
            *log.lock().unwrap(),
            ["PATCH /apis/stackpulse.io/v1/namespaces/ns/playbooks/pb/status"]
        );
        let written = json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "Valid",
                "message": "1 step", "observedGeneration": 2,
                "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "observedGeneration": 2,
        });
        reconcile(playbook(Some(written)), ctx)
            .await
            .expect("reconciled");
        assert_eq!(log.lock().unwrap().len(), 1, "no second write");
    }

    #[tokio::test]
    async fn a_malformed_playbook_is_skipped_without_a_request() {
        let (client, log) = fake_client();
        let (ctx, _listed) = context(client, &[]);
        let bad: Arc<DeserializeGuard<Playbook>> = Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "stackpulse.io/v1", "kind": "Playbook",
                "metadata": {"name": "bad", "namespace": "ns"},
                "spec": {"steps": "not a list"},
            }))
            .expect("a guard holds even a malformed Playbook"),
        );
        let err = reconcile(bad, ctx).await.expect_err("malformed");
        assert!(err.is_user_error(), "{err}");
        assert!(
            err.to_string().starts_with("Playbook ns/bad is malformed"),
            "{err}"
        );
        assert!(log.lock().unwrap().is_empty());
    }
}
