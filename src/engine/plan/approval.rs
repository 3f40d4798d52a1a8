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
                    "approval by {user} is for plan {hash}, the step will now run {}: approve again",
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
