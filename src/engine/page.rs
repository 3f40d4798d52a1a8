//! What the execution page shows, decided without I/O: which Executions a person may
//! see, filtered and sorted for the list; one Execution's steps grouped by incident
//! phase with their durations, outputs and approvals. The shell (`crate::page`) reads
//! the caches, asks the API server who the person is, and renders these views with
//! its templates.

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::api::{Decision, Execution, ExecutionPhase, Phase, StepPlan, StepState, StepStatus};
use crate::engine::context::{phase_name, state_name};
use crate::engine::plan::human_bytes;

pub mod decision;
pub mod dryrun;
pub mod events;
pub mod timeline;

/// Path prefix of every page route.
pub const PREFIX: &str = "/ui";

/// The page of one Execution under `base` (the `--external-url`): `.execution.url`.
pub fn execution_url(base: &str, namespace: &str, name: &str) -> String {
    format!(
        "{}{}",
        base.trim_end_matches('/'),
        execution_path(namespace, name)
    )
}

/// The page of one Execution, relative to the server's root.
pub fn execution_path(namespace: &str, name: &str) -> String {
    format!("{PREFIX}/executions/{namespace}/{name}")
}

/// The namespaces a person may see Executions of, from SubjectAccessReview answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// `get executions` allowed cluster-wide: every namespace.
    pub all: bool,
    /// Namespaces where it is allowed (when not `all`).
    pub namespaces: BTreeSet<String>,
}

impl Access {
    /// `cluster_wide`: the answer for all namespaces; `answers`: per namespace.
    pub fn from_answers<'a>(
        cluster_wide: bool,
        answers: impl IntoIterator<Item = (&'a str, bool)>,
    ) -> Self {
        let namespaces = if cluster_wide {
            BTreeSet::new()
        } else {
            answers
                .into_iter()
                .filter(|(_, allowed)| *allowed)
                .map(|(ns, _)| ns.to_string())
                .collect()
        };
        Self {
            all: cluster_wide,
            namespaces,
        }
    }

    pub fn allows(&self, namespace: &str) -> bool {
        self.all || self.namespaces.contains(namespace)
    }
}

/// The list's filters, as the form's query parameters say (empty = any).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(default)]
pub struct ListFilter {
    pub namespace: String,
    pub playbook: String,
    pub phase: String,
}

impl ListFilter {
    fn matches(&self, ns: &str, playbook: &str, phase: ExecutionPhase) -> bool {
        (self.namespace.is_empty() || self.namespace == ns)
            && (self.playbook.is_empty() || self.playbook == playbook)
            && (self.phase.is_empty() || self.phase.eq_ignore_ascii_case(phase_name(phase)))
    }
}

/// Every Execution phase, in the order the filter offers them.
pub const PHASES: [&str; 7] = [
    "Pending",
    "Running",
    "WaitingApproval",
    "Succeeded",
    "Failed",
    "Cancelled",
    "DryRun",
];

/// One line of the list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub href: String,
    pub playbook: String,
    pub phase: &'static str,
    pub severity: Option<String>,
    pub started: Option<String>,
    pub duration: Option<String>,
    /// The Trigger that created it, when an alert did.
    pub trigger: Option<String>,
    /// The Schedule that created it, when a tick did.
    pub schedule: Option<String>,
    /// The alert's name (`labels.alertname`), when it has one.
    pub alert: Option<String>,
}

/// The list page: the newest `cap` matching rows of the visible Executions.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ListView {
    pub rows: Vec<Row>,
    /// How many matched (more than `rows` when capped).
    pub matched: usize,
    /// What the filter's drop-downs offer: the visible namespaces and playbooks.
    pub namespaces: Vec<String>,
    pub playbooks: Vec<String>,
    pub phases: &'static [&'static str],
    pub filter: ListFilter,
}

/// The visible Executions matching `filter`, newest first, at most `cap` of them.
pub fn list(
    execs: &[&Execution],
    access: &Access,
    filter: &ListFilter,
    now: Timestamp,
    cap: usize,
) -> ListView {
    let visible: Vec<&Execution> = execs
        .iter()
        .copied()
        .filter(|e| access.allows(e.metadata.namespace.as_deref().unwrap_or_default()))
        .collect();
    let namespaces: BTreeSet<&str> = visible
        .iter()
        .filter_map(|e| e.metadata.namespace.as_deref())
        .collect();
    let playbooks: BTreeSet<&str> = visible
        .iter()
        .map(|e| e.spec.playbook_ref.name.as_str())
        .collect();
    let mut matched: Vec<&Execution> = visible
        .into_iter()
        .filter(|e| {
            filter.matches(
                e.metadata.namespace.as_deref().unwrap_or_default(),
                &e.spec.playbook_ref.name,
                e.status.as_ref().map(|s| s.phase).unwrap_or_default(),
            )
        })
        .collect();
    // Newest first; the name breaks ties so the order is stable between refreshes.
    let key = |e: &Execution| e.metadata.creation_timestamp.as_ref().map(|t| t.0);
    matched.sort_by(|a, b| {
        key(b)
            .cmp(&key(a))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    ListView {
        matched: matched.len(),
        rows: matched.iter().take(cap).map(|e| row(e, now)).collect(),
        namespaces: namespaces.into_iter().map(str::to_string).collect(),
        playbooks: playbooks.into_iter().map(str::to_string).collect(),
        phases: &PHASES,
        filter: filter.clone(),
    }
}

fn row(e: &Execution, now: Timestamp) -> Row {
    let ns = e.metadata.namespace.clone().unwrap_or_default();
    let name = e.metadata.name.clone().unwrap_or_default();
    let status = e.status.as_ref();
    let started = status.and_then(|s| s.started_at.as_ref()).map(|t| t.0);
    let finished = status.and_then(|s| s.finished_at.as_ref()).map(|t| t.0);
    Row {
        href: execution_path(&ns, &name),
        namespace: ns,
        name,
        playbook: e.spec.playbook_ref.name.clone(),
        phase: phase_name(status.map(|s| s.phase).unwrap_or_default()),
        severity: status.and_then(|s| s.severity.clone()),
        started: started.map(timestamp),
        duration: started.map(|s| duration(s, finished.unwrap_or(now))),
        trigger: e.spec.trigger_ref.as_ref().map(|t| t.name.clone()),
        schedule: e.spec.schedule_ref.as_ref().map(|t| t.name.clone()),
        alert: alert_name(e.spec.alert.as_ref()),
    }
}

fn alert_name(alert: Option<&Value>) -> Option<String> {
    alert?
        .pointer("/labels/alertname")?
        .as_str()
        .map(str::to_string)
}

/// `2026-11-25 14:15:27Z`: short, sortable, unambiguous.
pub fn timestamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// `from` to `to` for a person: `850ms`, `42s`, `3m 05s`, `2h 03m` (never negative).
pub fn duration(from: Timestamp, to: Timestamp) -> String {
    let ms = (to.as_millisecond() - from.as_millisecond()).max(0);
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// One step, as the detail page shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepView {
    pub id: String,
    pub state: &'static str,
    pub attempt: u32,
    pub started: Option<String>,
    pub duration: Option<String>,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    /// The parsed output, pretty-printed JSON (the template escapes it).
    pub outputs: Option<String>,
    pub outputs_truncated: bool,
    /// Where a spilled output is stored, when it was too large for status: the page
    /// shows where (reading it needs `get configmaps`, which the viewer may lack).
    pub outputs_stored: Option<String>,
    /// Where its log is fetched, once it has a Job.
    pub log_href: Option<String>,
}

/// The steps of one incident phase, in the order they ran.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseGroup {
    pub phase: &'static str,
    pub steps: Vec<StepView>,
}

/// A step waiting for someone to approve it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Waiting {
    pub step: String,
    pub since: Option<String>,
    pub message: Option<String>,
    /// What it will run once approved (`status.steps[].plan`).
    pub plan: Option<PlanView>,
    /// Approvals of earlier plans of this step, and what changed since (filled in
    /// by [`decision::since_approved`]).
    pub changed: Vec<decision::Earlier>,
}

/// The Job container a waiting step will run: what people approve.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanView {
    pub hash: String,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<EnvShown>,
    /// The Runner and the pod's service account: the rights the step runs with.
    pub runner: Option<String>,
    pub service_account: Option<String>,
}

/// One env var of a plan: a rendered value, or the Secret key it comes from (never
/// the secret's value: the plan holds only the reference).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnvShown {
    pub name: String,
    pub value: Option<String>,
    /// `secret NAME key KEY`.
    pub secret: Option<String>,
}

impl From<&StepPlan> for PlanView {
    fn from(plan: &StepPlan) -> Self {
        let env = plan
            .env
            .iter()
            .map(|e| {
                let secret = e
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref())
                    .map(|r| format!("secret {} key {}", r.name, r.key));
                EnvShown {
                    name: e.name.clone(),
                    value: if secret.is_some() {
                        None
                    } else {
                        e.value.clone()
                    },
                    secret,
                }
            })
            .collect();
        PlanView {
            hash: plan.hash.clone(),
            image: plan.image.clone(),
            command: plan.command.clone(),
            args: plan.args.clone(),
            env,
            runner: plan.runner.clone(),
            service_account: plan
                .pod
                .as_ref()
                .and_then(|p| p.spec.as_ref()?.service_account_name.clone()),
        }
    }
}

/// A decision recorded in `spec.approvals`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Given {
    pub step: String,
    pub user: String,
    /// `approved` or `rejected`.
    pub decision: &'static str,
    pub reason: Option<String>,
    /// The plan the decision was for.
    pub plan_hash: Option<String>,
    pub at: Option<String>,
}

/// A Kubernetes Event about the Execution, as the shell read it from its cache.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventView {
    pub at: Option<String>,
    /// Milliseconds since the epoch, for the order (`at` shows seconds only).
    #[serde(skip)]
    pub order: i64,
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
}

/// The alert that started the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertView {
    pub name: Option<String>,
    pub status: Option<String>,
    pub starts_at: Option<String>,
    pub generator_url: Option<String>,
    /// The whole alert, pretty-printed JSON.
    pub json: String,
}

/// The detail page of one Execution.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detail {
    pub namespace: String,
    pub name: String,
    pub href: String,
    pub playbook: String,
    pub phase: &'static str,
    /// Nothing changes any more: the page stops refreshing.
    pub done: bool,
    pub message: Option<String>,
    pub severity: Option<String>,
    pub requested_by: Option<String>,
    pub trigger: Option<String>,
    /// The Schedule that started the run, when a tick did.
    pub schedule: Option<String>,
    pub started: Option<String>,
    pub duration: Option<String>,
    pub alert: Option<AlertView>,
    pub params: Option<String>,
    pub phases: Vec<PhaseGroup>,
    pub finally: Vec<StepView>,
    /// The steps on a time axis (waits for approval as spans of their own).
    pub timeline: timeline::Timeline,
    pub waiting: Vec<Waiting>,
    pub approvals: Vec<Given>,
    pub events: Vec<EventView>,
    /// The chat message's state (`status.notify`), when the run has a channel.
    pub chat: Option<String>,
    /// A dry run's steps (`spec.dryRun`): what would run; nothing did.
    pub dry_run: Vec<dryrun::DryRunView>,
}

/// Most Events shown (the newest).
pub const MAX_EVENTS: usize = 50;

/// The detail view of `e`; `events` are those about it, in any order.
pub fn detail(e: &Execution, mut events: Vec<EventView>, now: Timestamp) -> Detail {
    let ns = e.metadata.namespace.clone().unwrap_or_default();
    let name = e.metadata.name.clone().unwrap_or_default();
    let href = execution_path(&ns, &name);
    let status = e.status.clone().unwrap_or_default();
    let view = |s: &StepStatus| step_view(s, &href, now);
    let phases = [
        Phase::Enrich,
        Phase::Triage,
        Phase::Communicate,
        Phase::Remediate,
    ]
    .into_iter()
    .map(|p| PhaseGroup {
        phase: phase_title(p),
        steps: status
            .steps
            .iter()
            .filter(|s| s.phase == p)
            .map(view)
            .collect(),
    })
    .collect();
    let waiting = status
        .steps
        .iter()
        .chain(&status.finally)
        .filter(|s| s.state == StepState::WaitingApproval)
        .map(|s| Waiting {
            step: s.id.clone(),
            since: s.waiting_since.as_ref().map(|t| timestamp(t.0)),
            message: s.message.clone(),
            plan: s.plan.as_deref().map(PlanView::from),
            changed: Vec::new(),
        })
        .collect();
    let approvals = e
        .spec
        .approvals
        .iter()
        .map(|a| Given {
            step: a.step.clone(),
            user: a.user.clone(),
            decision: match a.decision {
                Decision::Approve => "approved",
                Decision::Reject => "rejected",
            },
            reason: a.reason.clone(),
            plan_hash: a.plan_hash.clone(),
            at: a.at.as_ref().map(|t| timestamp(t.0)),
        })
        .collect();
    // Newest first: what just happened is what a person looks for.
    events.sort_by_key(|e| std::cmp::Reverse(e.order));
    events.truncate(MAX_EVENTS);
    let started = status.started_at.as_ref().map(|t| t.0);
    let finished = status.finished_at.as_ref().map(|t| t.0);
    Detail {
        playbook: e.spec.playbook_ref.name.clone(),
        phase: phase_name(status.phase),
        done: status.phase.is_final(),
        message: status.message.clone(),
        chat: status.notify.as_ref().map(super::notify::page_line),
        dry_run: dryrun::views(&status.dry_run),
        severity: status.severity.clone(),
        requested_by: e.spec.requested_by.clone(),
        trigger: e.spec.trigger_ref.as_ref().map(|t| t.name.clone()),
        schedule: e.spec.schedule_ref.as_ref().map(|t| t.name.clone()),
        started: started.map(timestamp),
        duration: started.map(|s| duration(s, finished.unwrap_or(now))),
        alert: e.spec.alert.as_ref().map(alert_view),
        params: e.spec.params.as_ref().map(pretty),
        phases,
        finally: status.finally.iter().map(view).collect(),
        timeline: timeline::layout(&status, now),
        waiting,
        approvals,
        events,
        namespace: ns,
        name,
        href,
    }
}

fn phase_title(p: Phase) -> &'static str {
    match p {
        Phase::Enrich => "Enrich",
        Phase::Triage => "Triage",
        Phase::Communicate => "Communicate",
        Phase::Remediate => "Remediate",
    }
}

fn step_view(s: &StepStatus, href: &str, now: Timestamp) -> StepView {
    let started = s.started_at.as_ref().map(|t| t.0);
    let finished = s.finished_at.as_ref().map(|t| t.0);
    StepView {
        id: s.id.clone(),
        state: state_name(s.state),
        attempt: s.attempt,
        started: started.map(timestamp),
        // A step that has not ended is timed until now (the page refreshes it).
        duration: started.map(|st| duration(st, finished.unwrap_or(now))),
        exit_code: s.exit_code,
        message: s.message.clone(),
        outputs: s.outputs.as_ref().map(pretty),
        outputs_truncated: s.outputs_truncated,
        outputs_stored: s.outputs_ref.as_ref().map(|r| {
            format!(
                "{} in ConfigMap {} (key {})",
                human_bytes(usize::try_from(r.bytes).unwrap_or(usize::MAX)),
                r.config_map_name,
                r.key
            )
        }),
        log_href: s
            .job_name
            .as_ref()
            .map(|_| format!("{href}/log?step={}", s.id)),
    }
}

fn alert_view(alert: &Value) -> AlertView {
    let text = |p: &str| alert.pointer(p).and_then(Value::as_str).map(str::to_string);
    AlertView {
        name: text("/labels/alertname"),
        status: text("/status"),
        starts_at: text("/startsAt"),
        generator_url: text("/generatorURL").filter(|u| is_web_link(u)),
        json: pretty(alert),
    }
}

/// Only http(s) links become `href`s: an alert's `generatorURL` comes from outside, and
/// a `javascript:` URL would run in the page.
fn is_web_link(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The step (main or finally) named `id`, and the Job of its current attempt.
pub fn step_job<'a>(e: &'a Execution, id: &str) -> Option<&'a str> {
    let status = e.status.as_ref()?;
    status
        .steps
        .iter()
        .chain(&status.finally)
        .find(|s| s.id == id)?
        .job_name
        .as_deref()
}

/// The namespaces Executions are in, each once: what the per-namespace access checks ask about.
pub fn namespaces_of<'a>(execs: impl IntoIterator<Item = &'a Execution>) -> BTreeSet<&'a str> {
    execs
        .into_iter()
        .filter_map(|e| e.metadata.namespace.as_deref())
        .collect()
}

#[cfg(test)]
mod tests;
