//! Which finished Executions go: past their own `ttlSecondsAfterFinished`, or beyond
//! their Playbook's `historyLimit`.
//!
//! Incident history is worth keeping (reviews read it), so nothing is deleted unless
//! one of the two is set. Both are decided here from what the caches hold; the
//! controller only deletes what these functions name.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::{ExecutionPhase, ExecutionStatus, HistoryLimit};

/// Time left before a finished Execution with `ttl_seconds` should be deleted:
/// `Some(ZERO)` means now, `None` means never (no TTL, or the run has not finished).
pub fn ttl_left(
    ttl_seconds: Option<u32>,
    status: &ExecutionStatus,
    now: Timestamp,
) -> Option<Duration> {
    let ttl = ttl_seconds?;
    if !status.phase.is_final() {
        return None;
    }
    // A final phase without finishedAt (written by hand, or by an older version):
    // the TTL counts from now on, and the planner's next write sets finishedAt.
    let finished = status.finished_at.as_ref().map_or(now, |t| t.0);
    let expires = finished.as_second().saturating_add(i64::from(ttl));
    let left = expires.saturating_sub(now.as_second());
    Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
}

/// A finished Execution of one Playbook, as the history limit sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished<'a> {
    pub name: &'a str,
    pub phase: ExecutionPhase,
    pub finished_at: Option<Timestamp>,
    pub created_at: Option<Timestamp>,
}

/// The Executions to delete so that at most `limit.succeeded` Succeeded and
/// `limit.failed` Failed-or-Cancelled ones remain, keeping the newest. Runs that
/// have not finished are never named.
pub fn beyond_limit<'a>(finished: &[Finished<'a>], limit: &HistoryLimit) -> Vec<&'a str> {
    let mut doomed = Vec::new();
    let kinds = [
        (limit.succeeded, &[ExecutionPhase::Succeeded][..]),
        (
            limit.failed,
            &[ExecutionPhase::Failed, ExecutionPhase::Cancelled][..],
        ),
    ];
    for (keep, phases) in kinds {
        let Some(keep) = keep else { continue };
        let mut runs: Vec<&Finished> = finished
            .iter()
            .filter(|f| phases.contains(&f.phase))
            .collect();
        // Newest first. Timestamps have 1 s resolution, so runs that finish in the
        // same second are told apart by creation, then by name (every replica picks
        // the same ones); a run without timestamps counts as the oldest.
        runs.sort_by(|a, b| {
            (b.finished_at, b.created_at, b.name).cmp(&(a.finished_at, a.created_at, a.name))
        });
        doomed.extend(
            runs.iter()
                .skip(usize::try_from(keep).unwrap_or(usize::MAX))
                .map(|f| f.name),
        );
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecutionPhase::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("a valid second")
    }

    fn finished(phase: ExecutionPhase, at_second: Option<i64>) -> ExecutionStatus {
        ExecutionStatus {
            phase,
            finished_at: at_second.map(|s| Time(at(s))),
            ..Default::default()
        }
    }

    #[test]
    fn ttl_counts_from_finished_at() {
        let st = finished(Succeeded, Some(1_000));
        assert_eq!(
            ttl_left(Some(60), &st, at(1_010)),
            Some(Duration::from_secs(50))
        );
        assert_eq!(ttl_left(Some(60), &st, at(1_060)), Some(Duration::ZERO));
        assert_eq!(ttl_left(Some(60), &st, at(5_000)), Some(Duration::ZERO));
        assert_eq!(ttl_left(Some(0), &st, at(1_000)), Some(Duration::ZERO));
    }

    #[test]
    fn no_ttl_or_not_finished_means_keep() {
        assert_eq!(ttl_left(None, &finished(Failed, Some(1)), at(9_999)), None);
        for phase in [Pending, Running, WaitingApproval] {
            assert_eq!(ttl_left(Some(1), &finished(phase, None), at(9_999)), None);
        }
    }

    #[test]
    fn final_without_finished_at_waits_the_whole_ttl() {
        let st = finished(Cancelled, None);
        assert_eq!(
            ttl_left(Some(30), &st, at(100)),
            Some(Duration::from_secs(30))
        );
    }

    fn run(name: &str, phase: ExecutionPhase, second: Option<i64>) -> Finished<'_> {
        Finished {
            name,
            phase,
            finished_at: second.map(at),
            created_at: second.map(|s| at(s - 1)),
        }
    }

    #[test]
    fn keeps_the_newest_of_each_outcome() {
        let runs = [
            run("s1", Succeeded, Some(10)),
            run("s3", Succeeded, Some(30)),
            run("s2", Succeeded, Some(20)),
            run("f1", Failed, Some(15)),
            run("c1", Cancelled, Some(25)),
            run("f0", Failed, None),
        ];
        let limit = HistoryLimit {
            succeeded: Some(2),
            failed: Some(1),
        };
        assert_eq!(beyond_limit(&runs, &limit), ["s1", "f1", "f0"]);
    }

    #[test]
    fn an_unset_limit_keeps_everything_of_that_outcome() {
        let runs = [run("s1", Succeeded, Some(1)), run("f1", Failed, Some(1))];
        let limit = HistoryLimit {
            succeeded: Some(0),
            failed: None,
        };
        assert_eq!(beyond_limit(&runs, &limit), ["s1"]);
        assert!(beyond_limit(&runs, &HistoryLimit::default()).is_empty());
    }

    #[test]
    fn running_executions_are_never_pruned() {
        let runs = [
            run("r", Running, None),
            run("p", Pending, None),
            run("w", WaitingApproval, None),
        ];
        let limit = HistoryLimit {
            succeeded: Some(0),
            failed: Some(0),
        };
        assert!(beyond_limit(&runs, &limit).is_empty());
    }

    #[test]
    fn the_later_created_wins_a_tie_on_finish_then_the_name() {
        let limit = HistoryLimit {
            succeeded: Some(1),
            failed: None,
        };
        let mut older = run("run-2", Succeeded, Some(5));
        older.created_at = Some(at(1));
        let newer = run("run-1", Succeeded, Some(5));
        assert_eq!(
            beyond_limit(&[newer.clone(), older.clone()], &limit),
            ["run-2"]
        );
        assert_eq!(beyond_limit(&[older, newer], &limit), ["run-2"]);
        let (a, b) = (run("a", Succeeded, Some(5)), run("b", Succeeded, Some(5)));
        assert_eq!(beyond_limit(&[b.clone(), a.clone()], &limit), ["a"]);
        assert_eq!(beyond_limit(&[a, b], &limit), ["a"]);
    }
}
