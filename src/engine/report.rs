//! The incident review: what `playbook-operator report` prints, computed from
//! Executions as they are in the cluster (their status holds every timestamp needed).
//!
//! Per playbook and in total: outcomes; time from the run's start to the end of its
//! last Enrich, Triage and Remediate step (p50/p90; a phase counts once all its steps
//! succeeded or were skipped); time people took to approve;
//! the share of finished runs that needed no person ("automated": no step waited
//! for an approval); the steps that failed most, with their latest message.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::{Execution, ExecutionPhase, ExecutionStatus, Phase, StepState};

/// How many failing steps a playbook's report lists.
const TOP_FAILING: usize = 5;

/// The whole review.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Executions created at or after this instant are counted.
    pub since: String,
    /// ... and before this one (the time the review was made, or `--until`).
    pub until: String,
    pub playbooks: Vec<PlaybookReport>,
    pub total: PlaybookReport,
}

/// The numbers of one playbook (`namespace/name`), or of all of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaybookReport {
    pub playbook: String,
    pub executions: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Not finished yet (Pending, Running, WaitingApproval).
    pub running: u64,
    pub to_enrich: Durations,
    pub to_triage: Durations,
    pub to_remediate: Durations,
    pub approval_wait: Durations,
    /// Finished runs in which no step waited for an approval.
    pub automated: u64,
    /// Runs a Schedule started (left out when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub scheduled: u64,
    /// `automated` over finished runs, 0..=1; `None` when none finished.
    pub automated_share: Option<f64>,
    pub failing_steps: Vec<FailingStep>,
}

/// Quantiles of a set of durations, in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Durations {
    pub count: usize,
    pub p50: Option<i64>,
    pub p90: Option<i64>,
}

/// A step that failed, how often, and what it said the last time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailingStep {
    pub step: String,
    pub failures: u64,
    pub last_message: String,
}

/// What one run contributes to the review (and, when it finishes, to the metrics of
/// the same numbers).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunReview {
    pub phase: ExecutionPhase,
    /// Seconds from the run's start to the end of each phase it completed.
    pub to_phase: BTreeMap<Phase, i64>,
    /// Seconds each approval took (to now, for a step still waiting).
    pub approval_waits: Vec<i64>,
    /// True when some step waited for a person.
    pub waited: bool,
    /// (step, message, when) of each failed step.
    pub failures: Vec<(String, String, Timestamp)>,
    /// Started by a Schedule's tick (not an alert or a person).
    pub scheduled: bool,
}

impl RunReview {
    /// Finished with no person in the loop.
    pub fn automated(&self) -> bool {
        self.phase.is_final() && !self.waited
    }
}

/// The review of one run whose status is `status`, started at `start`.
pub fn run_review(status: &ExecutionStatus, start: Option<Timestamp>, now: Timestamp) -> RunReview {
    let mut s = RunReview {
        phase: status.phase,
        ..Default::default()
    };
    let mut last_end: BTreeMap<Phase, (bool, Timestamp)> = BTreeMap::new();
    for step in &status.steps {
        let end = step.finished_at.as_ref().map(|t| t.0);
        let entry = last_end
            .entry(step.phase)
            .or_insert((true, Timestamp::UNIX_EPOCH));
        match end {
            Some(end) if matches!(step.state, StepState::Succeeded | StepState::Skipped) => {
                entry.1 = entry.1.max(end)
            }
            // A phase with a step still going, failed or cancelled was not reached.
            _ => entry.0 = false,
        }
        if let Some(since) = &step.waiting_since {
            s.waited = true;
            let until = step.started_at.as_ref().map_or(now, |t| t.0).max(since.0);
            s.approval_waits
                .push(until.as_second() - since.0.as_second());
        }
        if step.state == StepState::Failed {
            s.failures.push((
                step.id.clone(),
                step.message.clone().unwrap_or_default(),
                end.unwrap_or(Timestamp::UNIX_EPOCH),
            ));
        }
    }
    if let Some(start) = start {
        for (phase, (done, end)) in last_end {
            if done && end >= start {
                s.to_phase
                    .insert(phase, end.as_second() - start.as_second());
            }
        }
    }
    s
}

fn sample(exec: &Execution, now: Timestamp) -> RunReview {
    let status = exec.status.clone().unwrap_or_default();
    let start = status
        .started_at
        .as_ref()
        .or(exec.metadata.creation_timestamp.as_ref())
        .map(|t| t.0);
    RunReview {
        scheduled: exec.spec.schedule_ref.is_some(),
        ..run_review(&status, start, now)
    }
}

/// The review of `execs` created from `since` to `now`.
pub fn build(execs: &[Execution], since: Timestamp, now: Timestamp) -> Report {
    let mut by_playbook: BTreeMap<String, Vec<RunReview>> = BTreeMap::new();
    // A dry run ran nothing: it is no incident run.
    for exec in execs.iter().filter(|e| !e.spec.dry_run) {
        let created = exec.metadata.creation_timestamp.as_ref().map(|t| t.0);
        // `now` may be a window's end in the past (`report --until`).
        if created.is_some_and(|c| c < since || c > now) {
            continue;
        }
        let key = format!(
            "{}/{}",
            exec.namespace().unwrap_or_default(),
            exec.spec.playbook_ref.name
        );
        by_playbook.entry(key).or_default().push(sample(exec, now));
    }
    let playbooks: Vec<PlaybookReport> = by_playbook
        .iter()
        .map(|(name, samples)| summarize(name, samples.iter()))
        .collect();
    let total = summarize("(all)", by_playbook.values().flatten());
    Report {
        since: since.to_string(),
        until: now.to_string(),
        playbooks,
        total,
    }
}

fn summarize<'a>(name: &str, samples: impl Iterator<Item = &'a RunReview>) -> PlaybookReport {
    let mut r = PlaybookReport {
        playbook: name.to_string(),
        ..Default::default()
    };
    let mut to: BTreeMap<Phase, Vec<i64>> = BTreeMap::new();
    let mut waits = Vec::new();
    let mut failing: BTreeMap<&str, (u64, &str, Timestamp)> = BTreeMap::new();
    for s in samples {
        r.executions += 1;
        match s.phase {
            ExecutionPhase::Succeeded => r.succeeded += 1,
            ExecutionPhase::Failed => r.failed += 1,
            ExecutionPhase::Cancelled => r.cancelled += 1,
            _ => r.running += 1,
        }
        if s.automated() {
            r.automated += 1;
        }
        if s.scheduled {
            r.scheduled += 1;
        }
        for (phase, secs) in &s.to_phase {
            to.entry(*phase).or_default().push(*secs);
        }
        waits.extend(&s.approval_waits);
        for (step, message, at) in &s.failures {
            let e = failing
                .entry(step.as_str())
                .or_insert((0, message.as_str(), *at));
            e.0 += 1;
            if *at >= e.2 {
                (e.1, e.2) = (message.as_str(), *at);
            }
        }
    }
    let finished = r.succeeded + r.failed + r.cancelled;
    r.automated_share = (finished > 0).then(|| r.automated as f64 / finished as f64);
    let mut quantiles = |phase| durations(to.remove(&phase).unwrap_or_default());
    r.to_enrich = quantiles(Phase::Enrich);
    r.to_triage = quantiles(Phase::Triage);
    r.to_remediate = quantiles(Phase::Remediate);
    r.approval_wait = durations(waits);
    let mut failing: Vec<FailingStep> = failing
        .into_iter()
        .map(|(step, (failures, message, _))| FailingStep {
            step: step.to_string(),
            failures,
            last_message: message.to_string(),
        })
        .collect();
    failing.sort_by(|a, b| b.failures.cmp(&a.failures).then(a.step.cmp(&b.step)));
    failing.truncate(TOP_FAILING);
    r.failing_steps = failing;
    r
}

/// Nearest-rank quantiles (no interpolation: every value shown was observed).
fn durations(mut secs: Vec<i64>) -> Durations {
    secs.sort_unstable();
    let rank = |q: f64| -> Option<i64> {
        let n = secs.len();
        (n > 0).then(|| secs[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
    };
    Durations {
        count: secs.len(),
        p50: rank(0.5),
        p90: rank(0.9),
    }
}

/// `90s`, `12m30s`, `3h5m`: short enough for a table cell.
pub fn human(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => match s % 60 {
            0 => format!("{}m", s / 60),
            r => format!("{}m{r}s", s / 60),
        },
        s => match (s % 3600) / 60 {
            0 => format!("{}h", s / 3600),
            m => format!("{}h{m}m", s / 3600),
        },
    }
}

fn cell(d: &Durations) -> String {
    match (d.p50, d.p90) {
        (Some(p50), Some(p90)) => format!("{} / {}", human(p50), human(p90)),
        _ => "-".into(),
    }
}

fn share(r: &PlaybookReport) -> String {
    r.automated_share
        .map_or("-".into(), |s| format!("{:.0}%", s * 100.0))
}

const HEADERS: [&str; 9] = [
    "PLAYBOOK",
    "RUNS",
    "OK/FAILED/CANCELLED/RUNNING",
    "TO ENRICH p50/p90",
    "TO TRIAGE p50/p90",
    "TO REMEDIATE p50/p90",
    "APPROVAL WAIT p50/p90",
    "AUTOMATED",
    "",
];

fn row(r: &PlaybookReport) -> [String; 8] {
    [
        r.playbook.clone(),
        r.executions.to_string(),
        format!("{}/{}/{}/{}", r.succeeded, r.failed, r.cancelled, r.running),
        cell(&r.to_enrich),
        cell(&r.to_triage),
        cell(&r.to_remediate),
        cell(&r.approval_wait),
        share(r),
    ]
}

fn failing_lines(report: &Report) -> Vec<String> {
    report
        .playbooks
        .iter()
        .flat_map(|p| {
            p.failing_steps.iter().map(move |f| {
                format!(
                    "{} step '{}': {} failure{}; last: {}",
                    p.playbook,
                    f.step,
                    f.failures,
                    if f.failures == 1 { "" } else { "s" },
                    f.last_message
                )
            })
        })
        .collect()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// "Scheduled runs: ..." per playbook with any, so a review tells a Schedule's
/// routine checks from incidents; `None` when no run was scheduled.
fn scheduled_line(report: &Report) -> Option<String> {
    if report.total.scheduled == 0 {
        return None;
    }
    let each: Vec<String> = report
        .playbooks
        .iter()
        .filter(|p| p.scheduled > 0)
        .map(|p| format!("{} {} of {}", p.playbook, p.scheduled, p.executions))
        .collect();
    Some(format!(
        "Started by a Schedule: {} of {} runs ({})",
        report.total.scheduled,
        report.total.executions,
        each.join(", ")
    ))
}

/// Aligned columns for a terminal, then the scheduled runs, then the failing steps.
pub fn table(report: &Report) -> String {
    let rows: Vec<[String; 8]> = report
        .playbooks
        .iter()
        .chain(std::iter::once(&report.total))
        .map(row)
        .collect();
    let mut widths: Vec<usize> = HEADERS[..8].iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = format!(
        "Executions created from {} to {}\n\n",
        report.since, report.until
    );
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    out.push_str(&line(HEADERS[..8].to_vec()));
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    if let Some(line) = scheduled_line(report) {
        let _ = write!(out, "\n{line}\n");
    }
    let failing = failing_lines(report);
    if !failing.is_empty() {
        out.push_str("\nMost failing steps:\n");
        for f in failing {
            let _ = writeln!(out, "  {f}");
        }
    }
    out
}

/// The same as a Markdown table, for a weekly review document.
pub fn markdown(report: &Report) -> String {
    let mut out = format!(
        "## Executions created from {} to {}\n\n",
        report.since, report.until
    );
    let _ = writeln!(out, "| {} |", HEADERS[..8].join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(8));
    for r in report
        .playbooks
        .iter()
        .chain(std::iter::once(&report.total))
    {
        let cells: Vec<String> = row(r).iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    if let Some(line) = scheduled_line(report) {
        let _ = write!(out, "\n{line}\n");
    }
    let failing = failing_lines(report);
    if !failing.is_empty() {
        out.push_str("\n### Most failing steps\n\n");
        for f in failing {
            let _ = writeln!(out, "- {}", f.replace('|', "\\|"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
