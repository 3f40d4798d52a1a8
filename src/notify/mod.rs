//! Chat notifications, the shell: follows the process's Execution cache
//! (`crate::cache`), asks `engine::notify` what a run's message should be and
//! whether to post, update or skip, sends it, and records
//! what was sent in the Execution's `status.notify` (its own field manager). Also the
//! Slack interaction route ([`interact`]) that turns a button click into an approval
//! written as the clicking person.
//!
//! Off the reconcile path: the controller never waits for chat. The queue is one slot
//! per run holding only its latest state (a burst of transitions coalesces into one
//! update), and at most [`CONCURRENCY`] deliveries are in flight; a failed delivery is
//! retried with backoff, counted (`playbook_notify_messages{result="failed"}`) and
//! written to `status.notify.error`, which the execution page shows.

pub mod interact;
mod send;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::api::{Execution, NotifyStatus, Trigger};
use crate::cache::{Cached, Change, Executions};
use crate::engine::notify::config::{Channel, NotifyConfig};
use crate::engine::notify::{self as decide, Send, slack, teams};
use crate::metrics::Metrics;

/// Field manager of `status.notify`: the controller's own status applies leave it be.
pub const FIELD_MANAGER: &str = "playbook-operator-notify";
/// Deliveries in flight at once, all channels together.
pub const CONCURRENCY: usize = 8;
/// Default bound of one HTTP call to chat (`run --notify-timeout-seconds`).
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
/// Longest wait between two tries of a failing delivery.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Most events a post-only channel records per run (start, waits, end).
const MAX_SENT: usize = 200;

/// How the notifier runs.
#[derive(Clone, Debug)]
pub struct Config {
    pub channels: Arc<NotifyConfig>,
    /// Watch one namespace only (`None`: all).
    pub namespace: Option<String>,
    /// `--external-url`: messages link to the run's page under it.
    pub external_url: Option<String>,
    pub timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// Reads and checks `--notify-config-file`.
pub fn load(path: &Path) -> anyhow::Result<NotifyConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --notify-config-file {}", path.display()))?;
    NotifyConfig::parse(&text)
        .map_err(|e| anyhow::anyhow!("--notify-config-file {}: {e}", path.display()))
}

type Key = (String, String);

/// A run's place in the queue.
struct Slot {
    /// As the process's cache holds it (shared, not a copy; a finished run slimmed).
    latest: Arc<Cached>,
    /// A newer state (or a retry) waits to be looked at.
    dirty: bool,
    /// A task is working on this run: at most one, so a run's messages stay in order.
    running: bool,
    /// What was sent, as last written (the watch may not show our own write yet).
    record: Option<NotifyStatus>,
}

struct Shared {
    client: Client,
    config: Config,
    http: reqwest::Client,
    slots: Mutex<HashMap<Key, Slot>>,
    in_flight: Semaphore,
}

/// Runs the notifier until `shutdown` (only on the leader: one poster per run).
/// Watches Executions itself: [`run_with`] shares a process's cache.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + std::marker::Send,
) {
    if config.channels.channels.is_empty() {
        return;
    }
    let (executions, watch) = Executions::start(client.clone(), config.namespace.as_deref());
    tokio::select! {
        () = watch => {}
        () = run_with(client, config, &executions, shutdown) => {}
    }
}

/// [`run`] on the process's Execution cache (`crate::cache`), whose watch the caller
/// runs.
pub async fn run_with(
    client: Client,
    config: Config,
    executions: &Executions,
    shutdown: impl Future<Output = ()> + std::marker::Send,
) {
    if config.channels.channels.is_empty() {
        return;
    }
    let shared = Arc::new(Shared {
        http: send::client(config.timeout),
        client,
        config,
        slots: Mutex::default(),
        in_flight: Semaphore::new(CONCURRENCY),
    });
    let watch = executions.subscribe().for_each(|change| {
        match change {
            Change::Applied(cached) => {
                // A dry run ran nothing: nobody is told about it.
                if cached.0.as_ref().is_ok_and(|e| !e.spec.dry_run) {
                    offer(&shared, cached);
                }
            }
            Change::Deleted(cached) => {
                if let Ok(exec) = &cached.0 {
                    lock(&shared.slots).remove(&key(exec));
                }
            }
        }
        futures::future::ready(())
    });
    tokio::select! {
        () = watch => {}
        () = shutdown => {}
    }
}

fn key(exec: &Execution) -> Key {
    (exec.namespace().unwrap_or_default(), exec.name_any())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Puts the run's latest state in its slot; starts a task for it unless one runs.
/// `cached` holds an Execution (the caller checked).
fn offer(shared: &Arc<Shared>, cached: Arc<Cached>) {
    let Ok(exec) = &cached.0 else { return };
    let k = key(exec);
    let mut slots = lock(&shared.slots);
    let slot = slots.entry(k.clone()).or_insert_with(|| Slot {
        record: exec.status.as_ref().and_then(|s| s.notify.clone()),
        latest: cached.clone(),
        dirty: false,
        running: false,
    });
    slot.latest = cached.clone();
    slot.dirty = true;
    if !slot.running {
        slot.running = true;
        tokio::spawn(work(shared.clone(), k));
    }
}

/// What one look at a run did.
enum Outcome {
    /// Nothing (more) to send now.
    Idle,
    /// Delivered one message: look again (a Teams run may owe another event).
    Sent(NotifyStatus),
    /// Recorded a refusal or a failure; with a delay, try again after it.
    Failed(NotifyStatus, Option<Duration>),
}

async fn work(shared: Arc<Shared>, k: Key) {
    loop {
        let (exec, record) = {
            let mut slots = lock(&shared.slots);
            let Some(slot) = slots.get_mut(&k) else {
                return;
            };
            if !slot.dirty {
                slot.running = false;
                return;
            }
            slot.dirty = false;
            (slot.latest.clone(), slot.record.clone())
        };
        let outcome = {
            let Ok(_permit) = shared.in_flight.acquire().await else {
                return;
            };
            let Ok(exec) = &exec.0 else { continue };
            look(&shared, exec, record).await
        };
        let retry = match outcome {
            Outcome::Idle => None,
            Outcome::Sent(r) => {
                set(&shared, &k, r, true);
                None
            }
            Outcome::Failed(r, retry) => {
                set(&shared, &k, r, false);
                retry
            }
        };
        if let Some(delay) = retry {
            tokio::time::sleep(delay).await;
            if let Some(slot) = lock(&shared.slots).get_mut(&k) {
                slot.dirty = true;
            }
        }
    }
}

fn set(shared: &Shared, k: &Key, record: NotifyStatus, again: bool) {
    if let Some(slot) = lock(&shared.slots).get_mut(k) {
        slot.record = Some(record);
        slot.dirty |= again;
    }
}

/// The channel a run reports to: recorded already, else its Trigger's, else its
/// Playbook's (from the snapshot taken when it started). `None`: no channel, or the
/// run has not started yet.
async fn channel_name(
    shared: &Shared,
    exec: &Execution,
    record: Option<&NotifyStatus>,
) -> Option<String> {
    if let Some(r) = record {
        return Some(r.channel.clone());
    }
    let snapshot = exec.status.as_ref()?.playbook.as_ref()?;
    if let Some(t) = &exec.spec.trigger_ref {
        let ns = exec.namespace().unwrap_or_default();
        let triggers: Api<Trigger> = Api::namespaced(shared.client.clone(), &ns);
        // A Trigger deleted since (or unreadable) leaves the Playbook's choice.
        if let Ok(Some(n)) = triggers
            .get_opt(&t.name)
            .await
            .map(|t| t.and_then(|t| t.spec.notify))
        {
            return Some(n.channel);
        }
    }
    snapshot.notify.as_ref().map(|n| n.channel.clone())
}

async fn look(shared: &Shared, exec: &Execution, record: Option<NotifyStatus>) -> Outcome {
    let Some(name) = channel_name(shared, exec, record.as_ref()).await else {
        return Outcome::Idle;
    };
    let ns = exec.namespace().unwrap_or_default();
    let config = &shared.config;
    let mut rec = record.unwrap_or_else(|| NotifyStatus {
        channel: name.clone(),
        ..NotifyStatus::default()
    });
    let channel = match config.channels.channel_for(&name, &ns) {
        Ok(c) => c,
        Err(why) => {
            if rec.error.as_deref() == Some(why.as_str()) {
                return Outcome::Idle;
            }
            rec.error = Some(why);
            write(shared, exec, &rec).await;
            return Outcome::Failed(rec, None);
        }
    };
    let view = decide::view(exec, config.external_url.as_deref());
    let buttons = config.channels.slack_approvals.is_some();
    let content = match &channel.slack {
        Some(s) => slack::message(&view, &s.channel, None, buttons),
        None => json!(view),
    };
    let digest = decide::digest(&content);
    let result = match decide::next(channel.kind(), &view, Some(&rec), &digest, Timestamp::now()) {
        Send::Skip => return Outcome::Idle,
        Send::Post => deliver_slack(shared, channel, "chat.postMessage", content, &mut rec).await,
        Send::Update { ts, channel: conv } => {
            let s = channel.slack.as_ref().map_or("", |s| s.channel.as_str());
            let conv = if conv.is_empty() { s.to_string() } else { conv };
            let body = slack::message(&view, &conv, Some(&ts), buttons);
            deliver_slack(shared, channel, "chat.update", body, &mut rec).await
        }
        Send::Event(event) => {
            let (url, body) = match (&channel.teams, &channel.webhook) {
                (Some(t), _) => (&t.url.0, teams::card(&view, &event)),
                (None, Some(w)) => (&w.url.0, teams::webhook(&view, &event)),
                (None, None) => return Outcome::Idle,
            };
            let r = send::post(&shared.http, channel, url, &body).await;
            if r.is_ok() {
                rec.sent.push(event);
                let over = rec.sent.len().saturating_sub(MAX_SENT);
                rec.sent.drain(..over);
            }
            r
        }
    };
    match result {
        Ok(()) => {
            config.metrics.notify_message(&name, "sent");
            rec.digest = Some(digest);
            rec.error = None;
            rec.sent_at = Some(Time(Timestamp::now()));
            write(shared, exec, &rec).await;
            Outcome::Sent(rec)
        }
        Err(why) => {
            config.metrics.notify_message(&name, "failed");
            rec.failures = rec.failures.saturating_add(1);
            let delay = backoff(rec.failures);
            rec.error = Some(format!(
                "the message to chat channel {name} could not be sent ({} failures): {why}; retrying in {} s",
                rec.failures,
                delay.as_secs()
            ));
            tracing::warn!(execution = %format!("{ns}/{}", exec.name_any()), channel = %name, error = %why, "chat message not sent");
            write(shared, exec, &rec).await;
            Outcome::Failed(rec, Some(delay))
        }
    }
}

async fn deliver_slack(
    shared: &Shared,
    channel: &Channel,
    method: &str,
    body: serde_json::Value,
    rec: &mut NotifyStatus,
) -> Result<(), String> {
    let Some(s) = &channel.slack else {
        return Err("not a Slack channel".into());
    };
    let (conv, ts) = send::slack(&shared.http, s, method, &body).await?;
    if method == "chat.postMessage" {
        if ts.is_empty() {
            return Err("Slack's chat.postMessage answer has no ts".into());
        }
        rec.message_ts = Some(ts);
        rec.slack_channel = Some(if conv.is_empty() {
            s.channel.clone()
        } else {
            conv
        });
    }
    Ok(())
}

/// 1, 2, 4, ... seconds, at most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MAX_BACKOFF)
}

/// Writes `status.notify` by server-side apply under the notifier's field manager.
/// A failed write is logged: the in-memory record still holds it, and the next
/// delivery writes again (a restart in between may post a Slack message twice).
async fn write(shared: &Shared, exec: &Execution, rec: &NotifyStatus) {
    let ns = exec.namespace().unwrap_or_default();
    let api: Api<Execution> = Api::namespaced(shared.client.clone(), &ns);
    let patch = json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Execution",
        "status": {"notify": rec},
    });
    if let Err(e) = api
        .patch_status(
            &exec.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        tracing::warn!(execution = %format!("{ns}/{}", exec.name_any()), error = %e, "writing status.notify");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute() {
        let secs: Vec<u64> = [1, 2, 3, 4, 7, 30]
            .iter()
            .map(|f| backoff(*f).as_secs())
            .collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 60, 60]);
    }
}
