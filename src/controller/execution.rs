//! The Execution reconciler: observe → plan → apply, and nothing else.
//!
//! Decisions live in `engine::plan` (pure); this file only gathers its input
//! ([`super::observe`]), calls it with the current time, and hands the result to
//! [`super::apply`]. A finished run, which the cache keeps slimmed, is planned only
//! from the whole object read from the API server (`engine::slim::Full`), and only
//! when its plan can change something. Errors go to [`error_policy`]: a malformed
//! Execution waits for its next change, transient errors back off per Execution.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use tracing::Instrument;

use super::error::error_action;
use super::workload::{self, Unseen};
use super::{Context, Error, apply, dryrun, history, observe, spilled};
use crate::api::Execution;
use crate::engine::plan::{Plan, PlanInput, parser_inputs_to_check, plan, spilled_refs};
use crate::engine::slim::{Full, needs_plan};
use crate::engine::template;

/// How long a reconcile waits for the caches' first list before giving up (and
/// retrying with backoff).
const CACHE_WAIT: Duration = Duration::from_secs(30);
/// How long the templates of one reconcile's plan may take together.
const PLAN_TIMEOUT: Duration = Duration::from_secs(10);

/// How soon to plan again after the API server refused a Job.
const REPLAN: Duration = Duration::from_millis(100);

/// Reconciles one Execution (timed, errors counted by reason).
pub async fn reconcile(
    obj: Arc<DeserializeGuard<Execution>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let metrics = ctx.config.metrics.clone();
    metrics
        .reconcile("execution", reconcile_guarded(obj, ctx))
        .await
}

async fn reconcile_guarded(
    obj: Arc<DeserializeGuard<Execution>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let exec = match &obj.0 {
        Ok(exec) => exec,
        Err(invalid) => {
            return Err(Error::Malformed {
                kind: "Execution",
                name: format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()),
                message: invalid.error.clone(),
            });
        }
    };
    let span = tracing::info_span!(
        "reconcile",
        execution = %format!("{}/{}", exec.namespace().unwrap_or_default(), exec.name_any())
    );
    let action = reconcile_execution(exec, &ctx).instrument(span).await?;
    ctx.failures.clear(obj.as_ref());
    Ok(action)
}

async fn reconcile_execution(exec: &Execution, ctx: &Context) -> Result<Action, Error> {
    // Planning on an empty cache would re-create Jobs that exist (harmless, 409) but
    // also miss ended containers; the first list is only ever waited for once.
    let mut listed = ctx.caches_ready.clone();
    let ready = async { listed.wait_for(|l| *l).await.is_ok() };
    if !tokio::time::timeout(CACHE_WAIT, ready)
        .await
        .unwrap_or(false)
    {
        return Err(Error::CachesNotReady);
    }
    // The cache keeps finished runs slimmed (`engine::slim`): one is planned only from
    // the whole object, read from the API server, and only when its plan can change
    // something; otherwise only its TTL and history limit apply.
    let fetched;
    let exec = match Full::of(exec) {
        Some(full) => full,
        None if exec.spec.dry_run || !needs_plan(exec, &observe::attempts(exec, ctx)) => {
            let status = exec.status.clone().unwrap_or_default();
            let ttl = history::enforce(ctx, exec, &status).await?;
            return Ok(ttl.map_or_else(Action::await_change, Action::requeue));
        }
        None => {
            let Some(whole) = read_whole(ctx, exec).await? else {
                return Ok(Action::await_change());
            };
            fetched = whole;
            // An object from the API server is never marked slim.
            let Some(full) = Full::of(&fetched) else {
                return Ok(Action::await_change());
            };
            full
        }
    };
    let (mut input, mut reads) = observe::from_caches(exec, ctx, &Unseen::default());
    // A Job the last reconcile created may not be cached yet (not deleted): read from
    // the API server and observed with the cached Pods, whose end may be what woke
    // this reconcile (no later change of the Job would).
    let unseen = workload::read_unseen(&ctx.client, &input.execution.namespace, &input).await?;
    if !unseen.is_empty() {
        (input, reads) = observe::from_caches(exec, ctx, &unseen);
    }
    observe::take_refusals(ctx, &mut input);
    if exec.spec.dry_run {
        return dryrun::reconcile(&exec, ctx, input).await;
    }
    if !reads.is_empty() {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &input.execution.namespace);
        observe::read_logs(&pods, &mut input, &reads, ctx.config.log_limit_bytes).await?;
    }
    let refs = spilled_refs(&input.status);
    if !refs.is_empty() {
        let ns = &input.execution.namespace;
        let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
        input.spilled = spilled::read(&config_maps, ns, &ctx.spilled, &refs).await?;
    }
    let parser_inputs = parser_inputs_to_check(&input);
    if !parser_inputs.is_empty() {
        let config_maps: Api<ConfigMap> =
            Api::namespaced(ctx.client.clone(), &input.execution.namespace);
        input.parser_inputs = spilled::read_parser_inputs(&config_maps, &parser_inputs).await?;
    }
    input.runner_access = Some(ctx.access.runner_access(&ctx.client, &input).await?);
    // A limited run's turn: held until its plan is applied (see `remediation`).
    let mut turn = ctx
        .remediations
        .count(&mut input, &ctx.executions, &ctx.playbooks)
        .await;
    let (input, mut plan) = plan_off_runtime(input).await?;
    if let Some(turn) = turn.as_mut() {
        turn.note(&input, &plan);
    }
    let again = apply::apply(ctx, &exec, &input.status, &mut plan).await?;
    drop(turn);
    let ttl = history::enforce(ctx, &exec, &plan.status).await?;
    // A refused Job fails its step in the next plan, which reads the refusal; one
    // found existing is looked at by it, ended or not.
    let again = again.then_some(REPLAN);
    Ok(
        match plan.requeue_after.into_iter().chain(ttl).chain(again).min() {
            Some(after) => Action::requeue(after),
            // Every change that matters (a pod ending, a Job failing, an edit) is an event.
            None => Action::await_change(),
        },
    )
}

/// `exec` as the API server has it now (`None`: deleted meanwhile).
async fn read_whole(ctx: &Context, exec: &Execution) -> Result<Option<Execution>, Error> {
    let ns = exec.namespace().unwrap_or_default();
    let api: Api<Execution> = Api::namespaced(ctx.client.clone(), &ns);
    api.get_opt(&exec.name_any())
        .await
        .map_err(|source| Error::ReadExecution {
            name: format!("{ns}/{}", exec.name_any()),
            source,
        })
}

/// Plans on a blocking thread: the templates `plan` renders are user code, and a
/// slow one must not hold a runtime worker (with one CPU, the only one, which also
/// serves `/healthz` and renews the leader Lease). Each template has its budget
/// (`template::Budget`); [`PLAN_TIMEOUT`] bounds them all together, past it a
/// template fails its step like any other template error.
async fn plan_off_runtime(input: PlanInput) -> Result<(PlanInput, Plan), Error> {
    let now = Timestamp::now();
    let deadline = Instant::now() + PLAN_TIMEOUT;
    let name = format!("{}/{}", input.execution.namespace, input.execution.name);
    tokio::task::spawn_blocking(move || {
        let plan = template::with_deadline(deadline, || plan(&input, now));
        (input, plan)
    })
    .await
    .map_err(|e| Error::Plan {
        name,
        message: e.to_string(),
    })
}

/// What to do after a failed reconcile.
pub fn error_policy(
    obj: Arc<DeserializeGuard<Execution>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    error_action("Execution", obj.as_ref(), error, &ctx.failures)
}
