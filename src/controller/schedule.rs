//! The Schedule reconciler: starts the run of each due tick, applies the
//! concurrency policy, prunes the Schedule's history, and writes its status.
//! Decisions are `engine::schedule::plan`'s; this is the I/O around it.
//!
//! Exactly one run per tick: the run's name is a function of the Schedule and the
//! tick, and it is created with `create`, so a second leader (after a SIGKILL, the
//! old one may not have known it lost the Lease) or a restart between the create and
//! the status write gets AlreadyExists, which means done. The status may lag: the
//! planner also counts the newest run it sees as scheduled.
//!
//! Runs are found by their `stackpulse.io/schedule` label through a watch of their
//! own (only scheduled runs, so small): a run's change wakes its Schedule (a `Forbid`
//! tick held back, the last run's phase in status). The Schedule is requeued at its
//! next tick. Runs carry no owner reference: deleting a Schedule leaves its runs,
//! and pruning goes through the history ledger like every other deletion.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::watch;

use super::apply::{publish, to_event, write_status};
use super::error::{Failures, error_action};
use super::history::prune_runs;
use super::{Context, Error, FIELD_MANAGER, api, log_stream_error};
use crate::api::{Execution, Schedule, ScheduleStatus, ScheduledRun};
use crate::engine::lint::{READY, schedule_ready_condition};
use crate::engine::plan::{EventType, Intent};
use crate::engine::schedule::{
    Input, LABEL_SCHEDULE, Note, Run, execution, from_time, history_limit, plan, summary, tick_of,
    to_time,
};

/// How long a reconcile waits for the first list of scheduled runs.
const CACHE_WAIT: Duration = Duration::from_secs(30);
/// Added to the wait for the next tick: the reconcile must see the tick passed.
const TICK_SLACK: Duration = Duration::from_millis(250);

/// What the Schedule reconciles share.
pub struct ScheduleContext {
    main: Arc<Context>,
    runs: Store<DeserializeGuard<Execution>>,
    runs_listed: watch::Receiver<bool>,
    failures: Failures<DeserializeGuard<Schedule>>,
}

/// The Schedule controller, beside the Execution controller (whose context it shares
/// for the client, the config and the history ledger); runs until `shutdown`.
pub fn controller(
    main: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    let ns = main.config.namespace.clone();
    let client = main.client.clone();
    let (runs, writer) = reflector::store::<DeserializeGuard<Execution>>();
    let run_events = reflector::reflector(
        writer,
        watcher(
            api::<DeserializeGuard<Execution>>(&client, ns.as_deref()),
            watcher::Config::default().labels(LABEL_SCHEDULE),
        ),
    )
    .touched_objects();
    // The store's only waiter raises the flag (see `super::caches_ready`).
    let (listed, runs_listed) = watch::channel(false);
    let store = runs.clone();
    tokio::spawn(async move {
        listed.send_replace(store.wait_until_ready().await.is_ok());
    });
    let ctx = Arc::new(ScheduleContext {
        main,
        runs,
        runs_listed,
        failures: Failures::default(),
    });
    let schedules = api::<DeserializeGuard<Schedule>>(&client, ns.as_deref());
    Controller::new(schedules, watcher::Config::default())
        .watches_stream(run_events, |run: DeserializeGuard<Execution>| {
            let exec = run.0.ok()?;
            let schedule = exec.spec.schedule_ref.as_ref()?;
            Some(ObjectRef::new(&schedule.name).within(&exec.namespace()?))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(log_stream_error)
}

/// Reconciles one Schedule (timed, errors counted by reason).
pub async fn reconcile(
    obj: Arc<DeserializeGuard<Schedule>>,
    ctx: Arc<ScheduleContext>,
) -> Result<Action, Error> {
    let metrics = ctx.main.config.metrics.clone();
    metrics.reconcile("schedule", tick(obj, ctx)).await
}

async fn tick(
    obj: Arc<DeserializeGuard<Schedule>>,
    ctx: Arc<ScheduleContext>,
) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let schedule = match &obj.0 {
        Ok(s) => s,
        Err(invalid) => {
            return Err(Error::Malformed {
                kind: "Schedule",
                name: format!("{ns}/{name}"),
                message: invalid.error.clone(),
            });
        }
    };
    // Before the first list, "no runs" would let `Forbid` start a second one.
    let mut listed = ctx.runs_listed.clone();
    match tokio::time::timeout(CACHE_WAIT, listed.wait_for(|l| *l)).await {
        Ok(Ok(_)) => {}
        _ => return Err(Error::CachesNotReady),
    }
    let cached = ctx.runs.state();
    let mine: Vec<&Execution> = cached
        .iter()
        .filter_map(|e| e.0.as_ref().ok())
        .filter(|e| {
            e.namespace().as_deref() == Some(ns.as_str())
                && e.spec.schedule_ref.as_ref().is_some_and(|r| r.name == name)
        })
        .collect();
    let mut runs: Vec<Run> = mine
        .iter()
        .map(|e| Run {
            name: e.name_any(),
            tick: tick_of(e.annotations()),
            phase: e.status.as_ref().map(|s| s.phase),
            cancelling: e.spec.cancel,
        })
        .collect();
    let current = schedule.status.clone().unwrap_or_default();
    let now = Utc::now();
    let decided = plan(&Input {
        name: &name,
        spec: &schedule.spec,
        created: schedule
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(from_time)
            .unwrap_or(now),
        last_schedule: current.last_schedule_time.as_ref().and_then(from_time),
        now,
        runs: &runs,
    });
    let executions: Api<Execution> = Api::namespaced(ctx.main.client.clone(), &ns);
    for run in &decided.cancel {
        tracing::info!(schedule = %name, cancelled = %run, "concurrencyPolicy Replace: cancelling the running run");
        executions
            .patch(
                run,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"cancel": true}})),
            )
            .await
            .map_err(|source| Error::CancelExecution {
                name: format!("{ns}/{run}"),
                source,
            })?;
    }
    if let Some((at, run)) = &decided.start {
        match executions
            .create(
                &PostParams::default(),
                &execution(&name, &ns, &schedule.spec, *at),
            )
            .await
        {
            Ok(_) => {
                tracing::info!(schedule = %name, execution = %run, tick = %at, "scheduled run started")
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::info!(schedule = %name, execution = %run, "scheduled run exists already")
            }
            Err(source) => {
                return Err(Error::CreateExecution {
                    name: format!("{ns}/{run}"),
                    source,
                });
            }
        }
        if !runs.iter().any(|r| &r.name == run) {
            runs.push(Run {
                name: run.clone(),
                tick: Some(*at),
                phase: None,
                cancelling: false,
            });
        }
    }
    record(&ctx, schedule, &decided.notes).await;
    let (last, active) = summary(&runs);
    let old = current.conditions.iter().find(|c| c.type_ == READY);
    let status = ScheduleStatus {
        last_schedule_time: decided.last_schedule.and_then(to_time),
        next_schedule_time: decided.next.and_then(to_time),
        last_execution: last.map(|r| ScheduledRun {
            name: r.name.clone(),
            phase: r.phase,
        }),
        active,
        conditions: vec![schedule_ready_condition(
            decided.invalid.as_deref(),
            schedule.spec.suspend,
            decided.next,
            schedule.metadata.generation,
            old,
            Timestamp::now(),
        )],
    };
    if status != current {
        write_status::<Schedule>(&ctx.main.client, &ns, &name, &status).await?;
    }
    let limit = history_limit(&schedule.spec);
    prune_runs(
        &ctx.main,
        &executions,
        &ns,
        &mine,
        &limit,
        "the Schedule's historyLimit",
    )
    .await?;
    ctx.failures.clear(obj.as_ref());
    Ok(match decided.next {
        Some(next) => Action::requeue((next - now).to_std().unwrap_or_default() + TICK_SLACK),
        None => Action::await_change(),
    })
}

/// One Event on the Schedule per note (named after it, so a repeat is not a second).
async fn record(ctx: &ScheduleContext, schedule: &Schedule, notes: &[Note]) {
    let events: Api<Event> = Api::namespaced(
        ctx.main.client.clone(),
        &schedule.namespace().unwrap_or_default(),
    );
    let instance = ctx.main.config.instance.as_deref().unwrap_or(FIELD_MANAGER);
    for note in notes {
        let (type_, reason, message) = match note {
            Note::TooManyMissed => (
                EventType::Warning,
                "TooManyMissedTimes",
                "more than 100 ticks were missed; the most recent one starts: set or lower spec.startingDeadlineSeconds, or check the operator's clock".to_string(),
            ),
            Note::Forbidden { tick, running } => (
                EventType::Normal,
                "Skipped",
                format!(
                    "concurrencyPolicy Forbid: the run of {} waits while {} has not finished",
                    tick.to_rfc3339(),
                    running.join(", ")
                ),
            ),
        };
        tracing::info!(schedule = %schedule.name_any(), reason, message = %message, "schedule note");
        let intent = Intent::Event {
            type_,
            reason: reason.into(),
            message,
        };
        if let Some(event) = to_event(&intent, schedule, instance, Timestamp::now()) {
            publish(&events, &event).await;
        }
    }
}

/// What to do after a failed reconcile: a malformed Schedule waits for its next
/// change, the rest backs off per Schedule.
pub fn error_policy(
    obj: Arc<DeserializeGuard<Schedule>>,
    error: &Error,
    ctx: Arc<ScheduleContext>,
) -> Action {
    error_action("Schedule", obj.as_ref(), error, &ctx.failures)
}
