//! Which changes of a step's Pod or Job can change its Execution's plan, so the
//! controller wakes the Execution on those only.
//!
//! A step's Pod changes five to ten times on its way (created, scheduled, bound,
//! container creating, running, ended) and its Job as often; planning on each costs a
//! reconcile and the API reads and writes it does. The planner acts on few of them:
//! the step container ending, what [`health::judge`] fails an attempt on, and a Job
//! that failed or is going away. Everything else ("on its way") is judged by the clock
//! the last plan already requeued for.
//!
//! The shell reduces each Pod and Job to a [`Wake`] and wakes its Execution when the
//! Wake differs from the one seen before; an object first seen counts as having been
//! [`Wake::default`] (quiet). A new Job (or bare Pod) needs no plan either: the status
//! that says its step runs already records its uid (`Plan::created`).

use super::plan::JobFailure;
use super::plan::health::{PodFacts, TROUBLE_REASONS};

/// What of a step's Pod or Job the planner acts on. Equal Wakes: nothing to plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Wake {
    /// The step container has ended (exit code, `OOMKilled`, …: read when planning).
    pub ended: bool,
    /// What `health::judge` or the Job failure handling would act on, in a few words
    /// (`None`: on its way).
    pub trouble: Option<String>,
}

/// The Wake of a step's Pod: `ended` when its step container has terminated, else
/// what `health::judge` looks at in `facts`, in the order it looks.
pub fn pod(ended: bool, facts: &PodFacts) -> Wake {
    let trouble = if let Some(d) = &facts.disruption {
        Some(format!("disrupted: {}", d.reason))
    } else if facts.phase == "Failed" {
        Some(format!(
            "failed: {}",
            facts.reason.as_deref().unwrap_or_default()
        ))
    } else if facts.deleting {
        Some("deleting".into())
    } else if let Some(w) = facts
        .waiting
        .as_ref()
        .filter(|w| TROUBLE_REASONS.contains(&w.reason.as_str()))
    {
        Some(format!("waiting: {}", w.reason))
    } else {
        facts.unschedulable.as_ref().map(|_| "unschedulable".into())
    };
    Wake { ended, trouble }
}

/// The Wake of a step's Job: its `Failed` condition (a deadline, a backoff limit) or
/// its deletion.
pub fn job(failed: Option<&JobFailure>, deleting: bool) -> Wake {
    let trouble = match failed {
        Some(f) => Some(format!("failed: {}", f.reason)),
        None => deleting.then(|| "deleting".into()),
    };
    Wake {
        ended: false,
        trouble,
    }
}

#[cfg(test)]
mod tests;
