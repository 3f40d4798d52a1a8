//! Blast-radius limits: whether one more run of a playbook may remediate, given the
//! remediations its other runs recorded (`status.remediation`).
//!
//! Pure: the controller gathers the records (from its Execution cache, plus the
//! claims it wrote that the cache does not show yet) and the planner renders the
//! key; [`verdict`] only counts.

use crate::api::{Execution, ExecutionStatus, PlaybookSpec, RemediationLimit};
use crate::engine::report::human;

/// One run's recorded remediation: which Execution (uid), for which rendered key, and
/// when (whole seconds since the epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub uid: String,
    pub key: String,
    pub at: i64,
}

/// What the limit says about one more remediation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Go,
    /// Past the cap: why, for a person (the step's message and the Event).
    Hold(String),
}

/// Counts the claims of other runs (not `own`, whose own record may be among them)
/// with the same `key` made within the last `perSeconds` before `now`: a claim
/// exactly `perSeconds` old has left the window, one from the future (another
/// replica's clock ahead of ours) is in it. At `max` or more, the next one is
/// held. `claims` are of one playbook's runs; a uid listed twice (the cache and a
/// claim it does not show yet) counts once.
pub fn verdict(
    limit: &RemediationLimit,
    key: &str,
    claims: &[Claim],
    own: &str,
    now: i64,
) -> Verdict {
    let window = i64::try_from(limit.per_seconds).unwrap_or(i64::MAX);
    let mut counted: Vec<&str> = claims
        .iter()
        .filter(|c| c.uid != own && c.key == key && now - c.at < window)
        .map(|c| c.uid.as_str())
        .collect();
    counted.sort_unstable();
    counted.dedup();
    let used = counted.len();
    if used < usize::try_from(limit.max).unwrap_or(usize::MAX) {
        return Verdict::Go;
    }
    let plural = if used == 1 { "" } else { "s" };
    Verdict::Hold(format!(
        "{used} remediation{plural} for key '{key}' in the last {}; limit {}",
        human(window),
        limit.max
    ))
}

/// True while a run may still claim a remediation under a limit: the controller
/// then counts the other runs for it (and serializes it with them). `live`: the
/// Playbook as cached, which the run snapshots when it starts.
pub fn may_claim(status: &ExecutionStatus, live: Option<&PlaybookSpec>) -> bool {
    limit_of(status, live).is_some()
        && !status.phase.is_final()
        && status.remediation.as_ref().is_none_or(|r| r.at.is_none())
}

/// The remediation limit a run is counted under: its snapshot's, or before it took
/// one, the live Playbook's.
pub fn limit_of<'a>(
    status: &'a ExecutionStatus,
    live: Option<&'a PlaybookSpec>,
) -> Option<&'a RemediationLimit> {
    status
        .playbook
        .as_ref()
        .or(live)?
        .limits
        .as_ref()?
        .remediations
        .as_ref()
}

/// The claim a run's status records, if it counts.
fn claim_of(uid: &str, status: &ExecutionStatus) -> Option<Claim> {
    let r = status.remediation.as_ref()?;
    Some(Claim {
        uid: uid.to_string(),
        key: r.key.clone(),
        at: r.at.as_ref()?.0.as_second(),
    })
}

/// The claims recorded by the runs of Playbook `namespace/playbook` among `runs`.
pub fn recorded<'a>(
    runs: impl IntoIterator<Item = &'a Execution>,
    namespace: &str,
    playbook: &str,
) -> Vec<Claim> {
    runs.into_iter()
        .filter(|e| {
            e.metadata.namespace.as_deref() == Some(namespace)
                && e.spec.playbook_ref.name == playbook
        })
        .filter_map(|e| claim_of(e.metadata.uid.as_deref()?, e.status.as_ref()?))
        .collect()
}

/// The claim one plan of run `uid` makes: its status counts after, not before.
pub fn claimed(uid: &str, before: &ExecutionStatus, after: &ExecutionStatus) -> Option<Claim> {
    claim_of(uid, before)
        .is_none()
        .then(|| claim_of(uid, after))?
}

/// The claims a controller wrote that `cached` (the records its cache shows) may
/// not show yet, to count beside them. A pending claim is dropped once the cache
/// shows a record of that run, or the run is gone from the cache (`exists` is
/// false: deleted; history pruning keeps a claim that still counts in the
/// Playbook's ledger, and the pruned runs are counted from there).
pub fn still_pending(pending: &mut Vec<Claim>, cached: &[Claim], exists: impl Fn(&str) -> bool) {
    pending.retain(|p| exists(&p.uid) && !cached.iter().any(|c| c.uid == p.uid));
}

/// The claims a controller wrote to a Playbook's ledger that the cached Playbook may
/// not show yet, to count beside it: dropped once `shown` (the cached ledger) lists
/// that run, or once `perSeconds` old (the ledger drops it then too).
pub fn still_ledgered(
    ledgered: &mut Vec<Claim>,
    shown: &[Claim],
    limit: &RemediationLimit,
    now: i64,
) {
    let window = i64::try_from(limit.per_seconds).unwrap_or(i64::MAX);
    ledgered.retain(|l| now - l.at < window && !shown.iter().any(|s| s.uid == l.uid));
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::api::{ExecutionPhase, ExecutionSpec, LocalRef, PlaybookLimits, RemediationRecord};

    const NOW: i64 = 1_700_000_000;

    fn claim(uid: &str, key: &str, ago: i64) -> Claim {
        Claim {
            uid: uid.into(),
            key: key.into(),
            at: NOW - ago,
        }
    }

    #[test]
    fn counts_same_key_within_the_window_and_not_the_own_run() {
        let limit = RemediationLimit {
            max: 2,
            per_seconds: 3600,
            key: "{{ .alert.labels.namespace }}".into(),
        };
        let hold = |n: usize| {
            Verdict::Hold(format!(
                "{n} remediation{} for key 'shop' in the last 1h; limit 2",
                if n == 1 { "" } else { "s" }
            ))
        };
        let cases: Vec<(&str, Vec<Claim>, Verdict)> = vec![
            ("no claims", vec![], Verdict::Go),
            (
                "one below the cap",
                vec![claim("a", "shop", 10)],
                Verdict::Go,
            ),
            (
                "at the cap",
                vec![claim("a", "shop", 10), claim("b", "shop", 20)],
                hold(2),
            ),
            (
                "past the cap",
                vec![
                    claim("a", "shop", 10),
                    claim("b", "shop", 20),
                    claim("c", "shop", 0),
                ],
                hold(3),
            ),
            (
                "other keys are counted apart",
                vec![claim("a", "shop", 10), claim("b", "cart", 20)],
                Verdict::Go,
            ),
            (
                "key comparison is exact",
                vec![claim("a", "shop", 10), claim("b", "Shop", 20)],
                Verdict::Go,
            ),
            (
                "the own run is not counted (its record may be in the cache)",
                vec![claim("a", "shop", 10), claim("me", "shop", 5)],
                Verdict::Go,
            ),
            (
                "one run seen twice (cache and pending claim) counts once",
                vec![claim("a", "shop", 10), claim("a", "shop", 2)],
                Verdict::Go,
            ),
            (
                "just inside the window",
                vec![claim("a", "shop", 3599), claim("b", "shop", 0)],
                hold(2),
            ),
            (
                "exactly the window ago has left it",
                vec![claim("a", "shop", 3600), claim("b", "shop", 0)],
                Verdict::Go,
            ),
            (
                "a claim from the future (another replica's clock) counts",
                vec![claim("a", "shop", -5), claim("b", "shop", 0)],
                hold(2),
            ),
        ];
        for (name, claims, want) in cases {
            assert_eq!(verdict(&limit, "shop", &claims, "me", NOW), want, "{name}");
        }
    }

    fn status(key: &str, at: Option<i64>) -> ExecutionStatus {
        ExecutionStatus {
            remediation: Some(RemediationRecord {
                key: key.into(),
                at: at.map(|s| Time(Timestamp::from_second(s).expect("time"))),
                held: None,
            }),
            ..Default::default()
        }
    }

    fn run(ns: &str, playbook: &str, uid: &str, status: ExecutionStatus) -> Execution {
        let mut e = Execution::new(
            "run",
            ExecutionSpec {
                playbook_ref: LocalRef {
                    name: playbook.into(),
                },
                ..Default::default()
            },
        );
        e.metadata.namespace = Some(ns.into());
        e.metadata.uid = Some(uid.into());
        e.status = Some(status);
        e
    }

    #[test]
    fn recorded_reads_the_playbooks_runs_that_count() {
        let runs = [
            run("prod", "pb", "a", status("shop", Some(NOW))),
            run("prod", "pb", "held", status("shop", None)),
            run("prod", "other", "b", status("shop", Some(NOW))),
            run("dev", "pb", "c", status("shop", Some(NOW))),
            run("prod", "pb", "none", ExecutionStatus::default()),
        ];
        assert_eq!(recorded(&runs, "prod", "pb"), vec![claim("a", "shop", 0)]);
    }

    #[test]
    fn a_plan_claims_when_the_record_gets_its_time() {
        let none = ExecutionStatus::default();
        let waiting = status("shop", None);
        let counted = status("shop", Some(NOW));
        let want = Some(claim("me", "shop", 0));
        assert_eq!(claimed("me", &none, &counted), want);
        assert_eq!(claimed("me", &waiting, &counted), want);
        assert_eq!(claimed("me", &none, &waiting), None);
        assert_eq!(claimed("me", &counted, &counted), None, "claimed before");
    }

    #[test]
    fn only_limited_runs_that_have_not_claimed_are_counted_for() {
        let limited = PlaybookSpec {
            limits: Some(PlaybookLimits {
                remediations: Some(RemediationLimit::default()),
            }),
            ..Default::default()
        };
        let snapshot = |mut s: ExecutionStatus| {
            s.playbook = Some(limited.clone());
            s
        };
        let cases = [
            (
                "new run, limited live playbook",
                ExecutionStatus::default(),
                Some(&limited),
                true,
            ),
            (
                "new run, unlimited playbook",
                ExecutionStatus::default(),
                Some(&PlaybookSpec::default()),
                false,
            ),
            (
                "new run, no playbook yet",
                ExecutionStatus::default(),
                None,
                false,
            ),
            (
                "the snapshot is limited",
                snapshot(ExecutionStatus::default()),
                None,
                true,
            ),
            ("held", snapshot(status("shop", None)), None, true),
            ("claimed", snapshot(status("shop", Some(NOW))), None, false),
            (
                "final",
                ExecutionStatus {
                    phase: ExecutionPhase::Failed,
                    ..snapshot(ExecutionStatus::default())
                },
                None,
                false,
            ),
        ];
        for (name, status, live, want) in cases {
            assert_eq!(may_claim(&status, live), want, "{name}");
        }
    }

    #[test]
    fn pending_claims_last_until_the_cache_shows_them() {
        let mut pending = vec![
            claim("shown", "shop", 5),
            claim("lagging", "shop", 1),
            claim("deleted", "shop", 9),
        ];
        let cached = [claim("shown", "shop", 5), claim("old", "shop", 100)];
        still_pending(&mut pending, &cached, |uid| uid != "deleted");
        assert_eq!(pending, vec![claim("lagging", "shop", 1)]);
    }

    #[test]
    fn ledgered_claims_last_until_the_cached_ledger_shows_them() {
        let limit = RemediationLimit {
            max: 1,
            per_seconds: 3600,
            key: String::new(),
        };
        let mut ledgered = vec![
            claim("shown", "shop", 5),
            claim("lagging", "shop", 1),
            claim("expired", "shop", 3600),
        ];
        still_ledgered(&mut ledgered, &[claim("shown", "shop", 5)], &limit, NOW);
        assert_eq!(ledgered, vec![claim("lagging", "shop", 1)]);
    }
}
