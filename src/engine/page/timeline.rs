//! The run's timeline, laid out for an SVG the page's template draws: one row per
//! step (main steps, then `finally`), on one time axis from the run's start to its
//! end (or now). A step that waited for people has its wait as a span of its own
//! before its run, so where the time went is seen at a glance. Coordinates are
//! computed here (pure, tested); the template only writes them out.

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use super::duration;
use crate::api::{ExecutionStatus, StepState, StepStatus};
use crate::engine::context::state_name;

/// Width of the step names' column, in SVG units.
pub const LABEL_WIDTH: f64 = 150.0;
/// Width of the time axis.
pub const AXIS_WIDTH: f64 = 600.0;
/// Height of one step's row.
pub const ROW_HEIGHT: f64 = 20.0;
/// Height of the tick labels above the rows.
pub const HEAD: f64 = 18.0;
/// A span is drawn at least this wide, so a 50 ms step still shows.
pub const MIN_SPAN: f64 = 2.0;
/// Room right of the axis for the last tick's label (`1h30m`, written from the
/// tick's x + 2): without it the SVG clips the label at the run's end.
pub const TAIL: f64 = 40.0;

/// The whole drawing.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Timeline {
    pub width: f64,
    pub height: f64,
    pub rows: Vec<Row>,
    pub ticks: Vec<Tick>,
}

/// One step's row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub id: String,
    /// Top of the row.
    pub y: f64,
    /// Baseline of its name.
    pub text_y: f64,
    pub spans: Vec<Span>,
}

/// A time a step spent in one way: `wait` (for approval) or `run` (its attempt).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Span {
    pub kind: &'static str,
    /// CSS classes: the kind, the step's phase (`enrich`…) and state (`Failed`…).
    pub class: String,
    pub x: f64,
    pub width: f64,
    /// The tooltip: what, and how long.
    pub title: String,
}

/// A labelled mark on the axis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tick {
    pub x: f64,
    pub label: String,
}

/// Tick spacings, in seconds: the first that gives at most [`MAX_TICKS`] marks.
const STEPS: [i64; 14] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
];
const MAX_TICKS: i64 = 6;

/// Lays out `status`'s steps from the run's start to its end, or `now` while it goes
/// on. Steps that have not started are rows without spans.
pub fn layout(status: &ExecutionStatus, now: Timestamp) -> Timeline {
    let steps: Vec<&StepStatus> = status.steps.iter().chain(&status.finally).collect();
    let ms = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref().map(|t| t.0.as_millisecond())
    };
    let now = now.as_millisecond();
    let firsts = steps
        .iter()
        .filter_map(|s| ms(&s.waiting_since).or(ms(&s.started_at)));
    let Some(start) = ms(&status.started_at).into_iter().chain(firsts).min() else {
        return Timeline::default();
    };
    let end = ms(&status.finished_at).unwrap_or(now).max(start + 1000);
    let scale = AXIS_WIDTH / (end - start) as f64;
    let x = |t: i64| LABEL_WIDTH + round((t.clamp(start, end) - start) as f64 * scale);
    let span = |kind: &'static str, s: &StepStatus, from: i64, to: i64, what: &str| {
        let left = x(from);
        Span {
            kind,
            class: format!("{kind} {} {}", phase_class(s), state_name(s.state)),
            x: left,
            width: (x(to) - left).max(MIN_SPAN),
            title: format!("{}: {what} {}", s.id, seconds(from, to)),
        }
    };
    let rows = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let started = ms(&s.started_at);
            let finished = ms(&s.finished_at);
            let mut spans = Vec::new();
            if let Some(since) = ms(&s.waiting_since) {
                // The wait ends when the approved attempt starts, or with the step
                // (rejected, timed out), or goes on.
                let until = started
                    .filter(|&st| st >= since)
                    .or(finished)
                    .unwrap_or(now);
                spans.push(span("wait", s, since, until, "waiting for approval"));
            }
            if let Some(st) = started.filter(|_| s.state != StepState::WaitingApproval) {
                let what = if finished.is_some() { "ran" } else { "running" };
                spans.push(span("run", s, st, finished.unwrap_or(now), what));
            }
            let y = HEAD + i as f64 * ROW_HEIGHT;
            Row {
                id: s.id.clone(),
                y,
                text_y: y + ROW_HEIGHT * 0.7,
                spans,
            }
        })
        .collect::<Vec<_>>();
    let every = STEPS
        .iter()
        .copied()
        .find(|e| (end - start) / 1000 / e < MAX_TICKS)
        .unwrap_or(14_400);
    let ticks = (0..)
        .map(|n| n * every * 1000)
        .take_while(|off| start + off <= end)
        .map(|off| Tick {
            x: x(start + off),
            label: label(off / 1000),
        })
        .collect();
    Timeline {
        width: LABEL_WIDTH + AXIS_WIDTH + TAIL,
        height: HEAD + rows.len() as f64 * ROW_HEIGHT,
        rows,
        ticks,
    }
}

fn phase_class(s: &StepStatus) -> &'static str {
    use crate::api::Phase;
    match s.phase {
        Phase::Enrich => "enrich",
        Phase::Triage => "triage",
        Phase::Communicate => "communicate",
        Phase::Remediate => "remediate",
    }
}

/// One decimal place: enough for the eye, short in the markup.
fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn seconds(from: i64, to: i64) -> String {
    let t = |ms: i64| Timestamp::from_millisecond(ms).unwrap_or_default();
    duration(t(from), t(to))
}

/// `0s`, `30s`, `2m`, `1h30m`: the offset of a tick from the start.
fn label(s: i64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 if s % 60 == 0 => format!("{}m", s / 60),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ if s % 3600 == 0 => format!("{}h", s / 3600),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Phase;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use pretty_assertions::assert_eq;

    const T0: i64 = 1_700_000_000_000;

    fn at(s: i64) -> Option<Time> {
        Some(Time(
            Timestamp::from_millisecond(T0 + s * 1000).expect("a time"),
        ))
    }

    /// A step: (id, phase, state, waiting since, started, finished), in seconds from T0.
    type StepRow = (
        &'static str,
        Phase,
        StepState,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );

    fn status(finished: Option<i64>, steps: &[StepRow]) -> ExecutionStatus {
        ExecutionStatus {
            started_at: at(0),
            finished_at: finished.and_then(at),
            steps: steps
                .iter()
                .map(|&(id, phase, state, wait, start, end)| StepStatus {
                    id: id.into(),
                    phase,
                    state,
                    waiting_since: wait.and_then(at),
                    started_at: start.and_then(at),
                    finished_at: end.and_then(at),
                    ..StepStatus::default()
                })
                .collect(),
            ..ExecutionStatus::default()
        }
    }

    fn spans(t: &Timeline) -> Vec<(&str, &str, f64, f64)> {
        t.rows
            .iter()
            .flat_map(|r| {
                r.spans
                    .iter()
                    .map(move |s| (r.id.as_str(), s.kind, s.x, s.width))
            })
            .collect()
    }

    #[test]
    fn an_approval_wait_is_its_own_span_before_the_run() {
        use StepState::*;
        let s = status(
            Some(100),
            &[
                ("info", Phase::Enrich, Succeeded, None, Some(0), Some(10)),
                (
                    "restart",
                    Phase::Remediate,
                    Succeeded,
                    Some(10),
                    Some(70),
                    Some(100),
                ),
            ],
        );
        let t = layout(&s, Timestamp::from_millisecond(T0 + 500_000).expect("now"));
        // 600 units for 100 s: 6 per second, after the 150-unit label column.
        assert_eq!(
            spans(&t),
            vec![
                ("info", "run", 150.0, 60.0),
                ("restart", "wait", 210.0, 360.0),
                ("restart", "run", 570.0, 180.0),
            ]
        );
        let wait = &t.rows[1].spans[0];
        assert_eq!(wait.class, "wait remediate Succeeded");
        assert_eq!(wait.title, "restart: waiting for approval 1m 00s");
        assert_eq!(t.rows[1].y, HEAD + ROW_HEIGHT);
        assert_eq!(t.height, HEAD + 2.0 * ROW_HEIGHT);
        let labels: Vec<&str> = t.ticks.iter().map(|k| k.label.as_str()).collect();
        assert_eq!(labels, ["0s", "30s", "1m", "1m30s"]);
    }

    #[test]
    fn a_run_going_on_is_drawn_until_now_and_a_wait_still_open_too() {
        use StepState::*;
        let s = status(
            None,
            &[
                ("a", Phase::Triage, Succeeded, None, Some(0), Some(5)),
                ("b", Phase::Remediate, WaitingApproval, Some(5), None, None),
                ("c", Phase::Communicate, Running, None, Some(5), None),
                ("d", Phase::Remediate, Pending, None, None, None),
            ],
        );
        let t = layout(&s, Timestamp::from_millisecond(T0 + 20_000).expect("now"));
        assert_eq!(
            spans(&t),
            vec![
                ("a", "run", 150.0, 150.0),
                ("b", "wait", 300.0, 450.0),
                ("c", "run", 300.0, 450.0),
            ]
        );
        assert_eq!(t.rows[2].spans[0].title, "c: running 15s");
        assert!(t.rows[3].spans.is_empty(), "a step not started has no span");
    }

    #[test]
    fn a_rejected_wait_ends_with_the_step_and_short_steps_still_show() {
        use StepState::*;
        let s = status(
            Some(3600),
            &[
                ("quick", Phase::Enrich, Succeeded, None, Some(0), Some(0)),
                (
                    "restart",
                    Phase::Remediate,
                    Failed,
                    Some(0),
                    None,
                    Some(1800),
                ),
            ],
        );
        let t = layout(&s, Timestamp::from_millisecond(T0).expect("now"));
        assert_eq!(
            spans(&t),
            vec![
                ("quick", "run", 150.0, MIN_SPAN),
                ("restart", "wait", 150.0, 300.0),
            ]
        );
        let labels: Vec<&str> = t.ticks.iter().map(|k| k.label.as_str()).collect();
        assert_eq!(labels, ["0s", "15m", "30m", "45m", "1h"]);
    }

    #[test]
    fn the_last_ticks_label_fits_in_the_drawing() {
        // A tick at the run's very end (6 s, 1 h, 1h30m) is written from x + 2; at
        // about 7 units a character its label must end inside the drawing.
        for seconds in [6, 60, 3600, 5400, 100_000] {
            let s = status(Some(seconds), &[]);
            let t = layout(&s, Timestamp::from_millisecond(T0).expect("now"));
            let last = t.ticks.last().expect("a tick");
            let end = last.x + 2.0 + 7.0 * last.label.len() as f64;
            assert!(
                end <= t.width,
                "{seconds} s: {} ends at {end} > {}",
                last.label,
                t.width
            );
        }
    }

    #[test]
    fn a_run_that_has_not_started_has_no_timeline() {
        let t = layout(&ExecutionStatus::default(), Timestamp::UNIX_EPOCH);
        assert_eq!(t, Timeline::default());
    }
}
