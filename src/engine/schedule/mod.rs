//! Schedules: which tick is due, what the concurrency policy does with it, and the
//! name of the run it starts. Pure: the controller (`controller::schedule`) observes
//! the Schedule, its runs and the clock, calls [`plan`], and applies the result.
//!
//! CronJob's semantics, where users know them: only the most recent missed tick
//! starts (after downtime, while suspended, or while `Forbid` held it back), and
//! only within `startingDeadlineSeconds` of it; more than 100 missed ticks are
//! reported (the CronJob controller's `TooManyMissedTimes`) and the most recent
//! still starts. Exactly one run per tick: its name is a function of the Schedule and
//! the tick, so a second replica or a restart creating it again gets AlreadyExists.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::{ConcurrencyPolicy, ExecutionPhase, ExecutionSpec, LocalRef, ScheduleSpec};
use crate::engine::job::{dns_part, hex_hash, label_value};

/// Label on every run a Schedule starts: the Schedule's name.
pub const LABEL_SCHEDULE: &str = "stackpulse.io/schedule";
/// Annotation on every run a Schedule starts: its tick (RFC 3339, UTC).
pub const ANNOTATION_TICK: &str = "stackpulse.io/scheduled-at";
/// Missed ticks past which a warning is due (the CronJob controller's number).
pub const TOO_MANY_MISSED: usize = 100;

/// A Schedule's cron expression and time zone, checked.
#[derive(Clone, Debug)]
pub struct Compiled {
    cron: Cron,
    tz: Tz,
}

/// Parses `schedule` (5 fields or a `@` macro) in `time_zone` (IANA, unset: UTC);
/// the error says what to change.
pub fn compile(schedule: &str, time_zone: Option<&str>) -> Result<Compiled, String> {
    let tz = match time_zone.map(str::trim).filter(|z| !z.is_empty()) {
        None => Tz::UTC,
        Some(z) => z.parse::<Tz>().map_err(|_| {
            format!("spec.timeZone: unknown time zone {z:?}: use an IANA name such as \"Europe/Berlin\" or \"UTC\"")
        })?,
    };
    let text = schedule.trim();
    // A CronJob refuses these too; croner would take a 6th field as seconds.
    if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
        return Err(format!(
            "spec.schedule {schedule:?}: a TZ= prefix is not supported: set spec.timeZone instead"
        ));
    }
    let fields = text.split_whitespace().count();
    if !text.starts_with('@') && fields != 5 {
        return Err(format!(
            "spec.schedule {schedule:?} has {fields} fields: write 5, 'minute hour day-of-month month day-of-week' (e.g. '*/15 * * * *'), or @hourly, @daily, @weekly, @monthly, @yearly"
        ));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| {
            format!(
                "spec.schedule {schedule:?}: {e}: fields are minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT"
            )
        })?;
    Ok(Compiled { cron, tz })
}

impl Compiled {
    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }

    /// The last tick at or before `t`.
    fn latest_until(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }

    /// Ticks in `(after, until]`, counted up to `cap + 1`.
    fn count_between(&self, after: DateTime<Utc>, until: DateTime<Utc>, cap: usize) -> usize {
        let mut n = 0;
        let mut t = after;
        while n <= cap {
            match self.next_after(t) {
                Some(next) if next <= until => {
                    n += 1;
                    t = next;
                }
                _ => break,
            }
        }
        n
    }
}

/// One Execution a Schedule started, as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub name: String,
    /// Its tick (the annotation), when readable.
    pub tick: Option<DateTime<Utc>>,
    /// Its phase; `None` before the controller first wrote one.
    pub phase: Option<ExecutionPhase>,
    /// Cancel already asked for.
    pub cancelling: bool,
}

impl Run {
    fn finished(&self) -> bool {
        self.phase.is_some_and(ExecutionPhase::is_final)
    }
}

/// What [`plan`] looks at.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    pub name: &'a str,
    pub spec: &'a ScheduleSpec,
    /// The Schedule's creation: no tick before it is missed.
    pub created: DateTime<Utc>,
    /// `status.lastScheduleTime`.
    pub last_schedule: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
    /// The Schedule's Executions (label [`LABEL_SCHEDULE`]).
    pub runs: &'a [Run],
}

/// Something worth an Event on the Schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// More than [`TOO_MANY_MISSED`] ticks were missed; the most recent one starts.
    TooManyMissed,
    /// `Forbid`: the tick waits while these runs have not finished.
    Forbidden {
        tick: DateTime<Utc>,
        running: Vec<String>,
    },
}

/// What the controller does now.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The tick to start a run for, and the run's name.
    pub start: Option<(DateTime<Utc>, String)>,
    /// `Replace`: runs to cancel before the new one starts.
    pub cancel: Vec<String>,
    /// `status.lastScheduleTime` to write.
    pub last_schedule: Option<DateTime<Utc>>,
    /// The next tick (`status.nextScheduleTime`): reconcile again then.
    pub next: Option<DateTime<Utc>>,
    /// `Ready` False with this message: the schedule or time zone is invalid.
    pub invalid: Option<String>,
    pub notes: Vec<Note>,
}

/// Decides one reconcile of a Schedule.
pub fn plan(input: &Input) -> Plan {
    let spec = input.spec;
    let compiled = match compile(&spec.schedule, spec.time_zone.as_deref()) {
        Ok(c) => c,
        Err(message) => {
            return Plan {
                start: None,
                cancel: Vec::new(),
                last_schedule: input.last_schedule,
                next: None,
                invalid: Some(message),
                notes: Vec::new(),
            };
        }
    };
    // The status may lag a create (a restart between the two writes): the newest run
    // seen counts as scheduled too.
    let last_schedule = input
        .runs
        .iter()
        .filter_map(|r| r.tick)
        .chain(input.last_schedule)
        .max();
    let mut out = Plan {
        start: None,
        cancel: Vec::new(),
        last_schedule,
        next: (!spec.suspend)
            .then(|| compiled.next_after(input.now))
            .flatten(),
        invalid: None,
        notes: Vec::new(),
    };
    if spec.suspend {
        return out;
    }
    let mut earliest = last_schedule.unwrap_or(input.created);
    if let Some(deadline) = spec.starting_deadline_seconds {
        earliest = earliest.max(input.now - Duration::seconds(deadline.max(0)));
    }
    let Some(tick) = compiled.latest_until(input.now).filter(|t| *t > earliest) else {
        return out;
    };
    if compiled.count_between(earliest, input.now, TOO_MANY_MISSED) > TOO_MANY_MISSED {
        out.notes.push(Note::TooManyMissed);
    }
    let name = execution_name(input.name, tick);
    if input.runs.iter().any(|r| r.name == name) {
        out.last_schedule = Some(tick);
        return out;
    }
    let running: Vec<&Run> = input.runs.iter().filter(|r| !r.finished()).collect();
    match spec.concurrency_policy {
        ConcurrencyPolicy::Forbid if !running.is_empty() => {
            out.notes.push(Note::Forbidden {
                tick,
                running: running.iter().map(|r| r.name.clone()).collect(),
            });
            return out;
        }
        ConcurrencyPolicy::Replace => {
            out.cancel = running
                .iter()
                .filter(|r| !r.cancelling)
                .map(|r| r.name.clone())
                .collect();
        }
        _ => {}
    }
    out.start = Some((tick, name));
    out.last_schedule = Some(tick);
    out
}

/// Longest Schedule name kept whole in its runs' names (63 - '-' - 10 digits).
const NAME_ROOM: usize = 52;

/// The run of `schedule` at `tick`: `SCHEDULE-MINUTES` (minutes since the epoch, as
/// a CronJob names its Jobs). A name too long for that is cut and gets a hash of the
/// whole, so two long names with one prefix never share runs.
pub fn execution_name(schedule: &str, tick: DateTime<Utc>) -> String {
    let minutes = tick.timestamp().div_euclid(60);
    let prefix = if schedule.len() <= NAME_ROOM {
        dns_part(schedule, NAME_ROOM)
    } else {
        format!(
            "{}-{}",
            dns_part(schedule, NAME_ROOM - 9),
            hex_hash(&[schedule], 8)
        )
    };
    format!("{prefix}-{minutes}")
}

/// The Execution a tick starts: the Schedule's params, labelled and annotated as
/// scheduled, acting for the Schedule's recorded writer (left out when none is
/// recorded: the admission policy then stamps the operator).
pub fn execution(
    schedule: &str,
    namespace: &str,
    spec: &ScheduleSpec,
    tick: DateTime<Utc>,
) -> crate::api::Execution {
    let writer = spec
        .requested_by
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty());
    crate::api::Execution {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(execution_name(schedule, tick)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                LABEL_SCHEDULE.to_string(),
                label_value(schedule),
            )])),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_TICK.to_string(),
                tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )])),
            ..Default::default()
        },
        spec: ExecutionSpec {
            playbook_ref: spec.playbook_ref.clone(),
            params: spec.params.clone(),
            schedule_ref: Some(LocalRef {
                name: schedule.to_string(),
            }),
            requested_by: writer.map(str::to_string),
            requested_by_groups: if writer.is_some() {
                spec.requested_by_groups.clone()
            } else {
                Vec::new()
            },
            ..Default::default()
        },
        status: None,
    }
}

/// The tick a run's annotation records.
pub fn tick_of(annotations: &BTreeMap<String, String>) -> Option<DateTime<Utc>> {
    annotations
        .get(ANNOTATION_TICK)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The newest run (by tick, then name) and the runs not finished: the status's
/// `lastExecution` and `active`.
pub fn summary(runs: &[Run]) -> (Option<&Run>, Vec<String>) {
    let last = runs
        .iter()
        .max_by(|a, b| (a.tick, &a.name).cmp(&(b.tick, &b.name)));
    let mut active: Vec<String> = runs
        .iter()
        .filter(|r| !r.finished())
        .map(|r| r.name.clone())
        .collect();
    active.sort();
    (last, active)
}

/// The history limit a Schedule's runs are pruned by: its own, else a CronJob's
/// defaults (3 succeeded, 1 failed).
pub fn history_limit(spec: &ScheduleSpec) -> crate::api::HistoryLimit {
    spec.history_limit.unwrap_or(crate::api::HistoryLimit {
        succeeded: Some(3),
        failed: Some(1),
    })
}

/// A status time as chrono's (the API types carry jiff's).
pub fn from_time(t: &Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
}

/// A chrono time as a status time (whole seconds, as the API server keeps them).
pub fn to_time(t: DateTime<Utc>) -> Option<Time> {
    Timestamp::from_second(t.timestamp()).ok().map(Time)
}

#[cfg(test)]
mod tests;
