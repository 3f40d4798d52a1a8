//! Blast-radius limits: whether one more run of a playbook may remediate, given the
//! remediations its other runs recorded (`status.remediation`).
//!
//! Pure: the controller gathers the records (from its Execution cache, plus the
//! claims it wrote that the cache does not show yet) and the planner renders the
//! key; [`verdict`] only counts.

use crate::api::RemediationLimit;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
