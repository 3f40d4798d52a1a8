//! The approval decision for one step instance: a pure function of the step's
//! `approval` config, the run's requester, the recorded decisions and the plan the
//! step would run now.
//!
//! Kept apart from the planner's bookkeeping so any caller can ask it with a config
//! of its own (a step held by a blast-radius limit passes `{required: true}`).
//! The records' `user` and `groups` are trustworthy because the admission policies
//! (`api::admission`) refuse any other value than the writer's; this function only
//! decides which of them count.

use crate::api::{Approval, ApprovalRecord, Decision, OnTimeout};
use crate::engine::context::InstanceId;

/// What one step instance waiting for approval is up against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wait<'a> {
    pub config: &'a Approval,
    /// The Execution's name, for the command the message suggests.
    pub execution: &'a str,
    /// `spec.requestedBy`: never an approver.
    pub requester: Option<&'a str>,
    pub records: &'a [ApprovalRecord],
    pub instance: &'a InstanceId,
    /// Hash of the plan the step would run now (`status.steps[].plan.hash`).
    pub plan_hash: &'a str,
    /// When the step began waiting and now, in seconds.
    pub since: i64,
    pub now: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Enough approvals of this plan: run it. Says by whom.
    Granted(String),
    /// An allowed approver (or the requester) rejected it: the step fails with this.
    Rejected(String),
    /// The wait is over without enough approvals.
    TimedOut(OnTimeout, String),
    Waiting {
        /// What is missing, and what to run.
        message: String,
        /// Some decision was ignored (self-approval, not an approver, another plan).
        ignored: bool,
        /// When the wait times out: plan again then.
        deadline: Option<i64>,
    },
}

/// Whether the step may run, must fail or skip, or waits (and for what).
///
/// Rules: only records covering the instance ([`InstanceId::approved_by`]) are
/// looked at; a rejection by an allowed approver or by the requester ends the wait
/// (whatever plan it names: saying no is always safe); an approval counts when its
/// writer is allowed, is not the requester and named the current plan hash;
/// `count` distinct such users grant it.
pub(crate) fn decide(w: &Wait) -> Verdict {
    let requester = w.requester.map(str::trim).filter(|r| !r.is_empty());
    let count = w.config.count.unwrap_or(1).max(1) as usize;
    let relevant = || w.records.iter().filter(|r| w.instance.approved_by(&r.step));
    let is_requester = |user: &str| Some(user) == requester;

    if let Some(r) = relevant().find(|r| {
        r.decision == Decision::Reject && (is_requester(r.user.trim()) || allowed(w.config, r))
    }) {
        let reason = r
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or("no reason given");
        return Verdict::Rejected(format!("rejected by {}: {reason}", r.user.trim()));
    }

    let mut approvers: Vec<&str> = Vec::new();
    let mut ignored: Vec<String> = Vec::new();
    for r in relevant().filter(|r| r.decision == Decision::Approve) {
        let user = r.user.trim();
        if user.is_empty() || approvers.contains(&user) {
            continue;
        }
        let note = if is_requester(user) {
            Some(format!(
                "approval by '{user}' ignored: whoever requested a run cannot approve its steps"
            ))
        } else if !allowed(w.config, r) {
            Some(format!(
                "approval by '{user}' ignored: not among the approvers ({})",
                who(w.config, requester)
            ))
        } else {
            match r.plan_hash.as_deref().map(str::trim) {
                Some(hash) if hash == w.plan_hash => None,
                Some(hash) => Some(format!(
                    "the plan changed since {user} approved it (hash {hash}, now {}): approve again",
                    w.plan_hash
                )),
                None => Some(format!(
                    "approval by {user} names no plan, the step will run {}: approve again",
                    w.plan_hash
                )),
            }
        };
        match note {
            Some(note) if !ignored.contains(&note) => ignored.push(note),
            Some(_) => {}
            None => approvers.push(user),
        }
    }
    let given = if approvers.is_empty() {
        String::new()
    } else {
        format!(" ({})", approvers.join(", "))
    };
    if approvers.len() >= count {
        return Verdict::Granted(format!(
            "approved by {} (plan {})",
            approvers.join(", "),
            w.plan_hash
        ));
    }
    let tally = format!("{} of {count} approvals{given}", approvers.len());
    let deadline = w.config.timeout_seconds.map(|t| w.since.saturating_add(t));
    if let (Some(deadline), Some(t)) = (deadline, w.config.timeout_seconds)
        && w.now >= deadline
    {
        let what = match w.config.on_timeout {
            OnTimeout::Reject => "rejected (onTimeout: reject)",
            OnTimeout::Skip => "skipped (onTimeout: skip)",
        };
        return Verdict::TimedOut(
            w.config.on_timeout,
            format!("approval timed out after {t}s (approval.timeoutSeconds) with {tally}: {what}"),
        );
    }
    let missing = match count - approvers.len() {
        1 => "one more".to_string(),
        n => format!("{n} more"),
    };
    let mut message = format!(
        "{tally}; waiting for {missing} from {}: playbook-operator approve {} {}",
        who(w.config, requester),
        w.execution,
        w.instance
    );
    for note in &ignored {
        message.push_str("; ");
        message.push_str(note);
    }
    Verdict::Waiting {
        message,
        ignored: !ignored.is_empty(),
        deadline,
    }
}

/// Whether an attempt about to start runs the plan that was approved (`approved`,
/// the hash the step's status kept) when it renders to `now`. Anything else waits
/// for an approval again: what runs is only ever what someone approved.
pub(crate) fn pinned(approved: &str, now: &str) -> bool {
    !approved.is_empty() && approved == now
}

/// The writer is allowed by `approvers` (anyone when it names nobody).
fn allowed(config: &Approval, r: &ApprovalRecord) -> bool {
    let Some(a) = config.approvers.as_ref() else {
        return true;
    };
    let user = r.user.trim();
    (a.users.is_empty() && a.groups.is_empty())
        || a.users.iter().any(|u| u.trim() == user)
        || r.groups.iter().any(|g| a.groups.contains(g))
}

/// Who may approve, for a message.
fn who(config: &Approval, requester: Option<&str>) -> String {
    let list = |names: &[String]| format!("[{}]", names.join(", "));
    let but = requester.map_or(String::new(), |r| format!(" but '{r}'"));
    match config.approvers.as_ref() {
        Some(a) if !a.users.is_empty() && !a.groups.is_empty() => {
            format!("users {} or groups {}", list(&a.users), list(&a.groups))
        }
        Some(a) if !a.users.is_empty() => format!("users {}", list(&a.users)),
        Some(a) if !a.groups.is_empty() => format!("groups {}", list(&a.groups)),
        _ => format!("anyone{but}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Approvers;

    fn approve(step: &str, user: &str, hash: Option<&str>) -> ApprovalRecord {
        ApprovalRecord {
            step: step.into(),
            user: user.into(),
            plan_hash: hash.map(str::to_string),
            ..Default::default()
        }
    }

    fn reject(user: &str, reason: &str) -> ApprovalRecord {
        ApprovalRecord {
            decision: Decision::Reject,
            reason: Some(reason.into()),
            ..approve("restart", user, None)
        }
    }

    /// What `decide` says about step `restart` (plan `new`, requested by alice, waiting
    /// since 0, now 100) given `config` and `records`: the verdict's kind and text.
    fn verdict(config: &Approval, records: &[ApprovalRecord]) -> (&'static str, String) {
        let instance = InstanceId::top("restart", None);
        let w = Wait {
            config,
            execution: "run-1",
            requester: Some("alice"),
            records,
            instance: &instance,
            plan_hash: "new",
            since: 0,
            now: 100,
        };
        match decide(&w) {
            Verdict::Granted(m) => ("granted", m),
            Verdict::Rejected(m) => ("rejected", m),
            Verdict::TimedOut(OnTimeout::Reject, m) => ("timed out, reject", m),
            Verdict::TimedOut(OnTimeout::Skip, m) => ("timed out, skip", m),
            Verdict::Waiting { message, .. } => ("waiting", message),
        }
    }

    /// Case name, config, records, and the verdict's kind and a part of its text.
    type Row = (
        &'static str,
        Approval,
        Vec<ApprovalRecord>,
        (&'static str, &'static str),
    );

    #[test]
    fn decisions() {
        let one = Approval {
            required: true,
            ..Default::default()
        };
        let two = Approval {
            count: Some(2),
            ..one.clone()
        };
        let sre = Approval {
            approvers: Some(Approvers {
                users: vec![],
                groups: vec!["sre".into()],
            }),
            ..one.clone()
        };
        let timeout = |on_timeout| Approval {
            timeout_seconds: Some(60),
            on_timeout,
            ..one.clone()
        };
        let in_sre = ApprovalRecord {
            groups: vec!["sre".into()],
            ..approve("restart", "carol", Some("new"))
        };
        let cases: Vec<Row> = vec![
            (
                "nobody decided yet",
                one.clone(),
                vec![],
                (
                    "waiting",
                    "0 of 1 approvals; waiting for one more from anyone but 'alice': playbook-operator approve run-1 restart",
                ),
            ),
            (
                "someone else approved the current plan",
                one.clone(),
                vec![approve("restart", "bob", Some("new"))],
                ("granted", "approved by bob (plan new)"),
            ),
            (
                "the plan changed since the approval",
                one.clone(),
                vec![approve("restart", "bob", Some("old"))],
                (
                    "waiting",
                    "0 of 1 approvals; waiting for one more from anyone but 'alice': playbook-operator approve run-1 restart; the plan changed since bob approved it (hash old, now new): approve again",
                ),
            ),
            (
                "an approval naming no plan",
                one.clone(),
                vec![approve("restart", "bob", None)],
                (
                    "waiting",
                    "; approval by bob names no plan, the step will run new: approve again",
                ),
            ),
            (
                "an old and a new approval by the same person: the new one counts",
                one.clone(),
                vec![
                    approve("restart", "bob", Some("old")),
                    approve("restart", "bob", Some("new")),
                ],
                ("granted", "approved by bob (plan new)"),
            ),
            (
                "the requester's approval never counts",
                one.clone(),
                vec![approve("restart", "alice", Some("new"))],
                (
                    "waiting",
                    "; approval by 'alice' ignored: whoever requested a run cannot approve its steps",
                ),
            ),
            (
                "another step's approval is not this one's",
                one.clone(),
                vec![approve("check", "bob", Some("new"))],
                ("waiting", "0 of 1 approvals;"),
            ),
            (
                "count 2: one approver is not enough",
                two.clone(),
                vec![approve("restart", "bob", Some("new"))],
                (
                    "waiting",
                    "1 of 2 approvals (bob); waiting for one more from anyone but 'alice'",
                ),
            ),
            (
                "count 2: one current and one stale approval",
                two.clone(),
                vec![
                    approve("restart", "bob", Some("old")),
                    approve("restart", "carol", Some("new")),
                ],
                (
                    "waiting",
                    "1 of 2 approvals (carol); waiting for one more from anyone but 'alice': playbook-operator approve run-1 restart; the plan changed since bob approved it (hash old, now new)",
                ),
            ),
            (
                "count 2: two distinct approvers of the current plan",
                two,
                vec![
                    approve("restart", "bob", Some("new")),
                    approve("restart", "carol", Some("new")),
                ],
                ("granted", "approved by bob, carol (plan new)"),
            ),
            (
                "approvers by group: outsiders are ignored, members count",
                sre.clone(),
                vec![approve("restart", "bob", Some("new")), in_sre],
                ("granted", "approved by carol (plan new)"),
            ),
            (
                "approvers by group: an outsider alone",
                sre.clone(),
                vec![approve("restart", "bob", Some("new"))],
                (
                    "waiting",
                    "; approval by 'bob' ignored: not among the approvers (groups [sre])",
                ),
            ),
            (
                "a rejection by an approver ends the wait, whatever plan it names",
                one.clone(),
                vec![
                    approve("restart", "bob", Some("new")),
                    reject("carol", "disk is fine"),
                ],
                ("rejected", "rejected by carol: disk is fine"),
            ),
            (
                "the requester may reject",
                sre.clone(),
                vec![reject("alice", "false alarm")],
                ("rejected", "rejected by alice: false alarm"),
            ),
            (
                "an outsider's rejection is not a decision",
                sre,
                vec![reject("bob", "no")],
                (
                    "waiting",
                    "0 of 1 approvals; waiting for one more from groups [sre]",
                ),
            ),
            (
                "past the timeout: reject",
                timeout(OnTimeout::Reject),
                vec![approve("restart", "bob", Some("old"))],
                (
                    "timed out, reject",
                    "approval timed out after 60s (approval.timeoutSeconds) with 0 of 1 approvals: rejected (onTimeout: reject)",
                ),
            ),
            (
                "past the timeout: skip",
                timeout(OnTimeout::Skip),
                vec![],
                ("timed out, skip", "skipped (onTimeout: skip)"),
            ),
        ];
        for (name, config, records, (kind, text)) in cases {
            let (got_kind, got) = verdict(&config, &records);
            assert_eq!(got_kind, kind, "{name}: {got}");
            assert!(got.contains(text), "{name}: {got:?} lacks {text:?}");
        }
    }

    #[test]
    fn an_attempt_runs_only_the_approved_plan() {
        for (approved, now, runs) in [
            ("1a2b3c4d5e6f", "1a2b3c4d5e6f", true),
            ("1a2b3c4d5e6f", "9f8e7d6c5b4a", false),
            ("", "9f8e7d6c5b4a", false),
            ("", "", false),
        ] {
            assert_eq!(
                pinned(approved, now),
                runs,
                "approved {approved:?}, now {now:?}"
            );
        }
    }
}
