//! Who may run a step where: using a Runner is a permission of the run's requester,
//! and a step reads only the Secrets its Runner lists.
//!
//! A Runner carries a service account, a Secret and placement, so whoever picks the
//! Runner picks the pod's identity. The Kubernetes idiom for "may pick this object"
//! (as PodSecurityPolicy did) is a custom verb: `use` on `runners/NAME` in the
//! namespace. The controller asks the API server (a SubjectAccessReview for
//! `spec.requestedBy` and the groups admission recorded) for each Runner a run may
//! reach ([`runners_to_check`]); the planner reads the answers as [`Verdict`]s and
//! fails a step whose Runner is denied before its Job exists.
//!
//! Pure: the controller's `access` module does the reviews and caches them.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{ExecutionSpec, PlaybookSpec, RunnerSpec};
use crate::engine::job::{DEFAULT_SECRET, RenderedStep};

/// The verb a run's requester needs on `runners/NAME` (API group `stackpulse.io`).
pub const USE_VERB: &str = "use";
/// The resource the verb applies to.
pub const RUNNERS: &str = "runners";
/// The Runner a step without `runner` uses (built-in defaults when it does not exist).
pub const DEFAULT_RUNNER: &str = "default";

/// Whom a run acts for: `spec.requestedBy` and the groups admission recorded with it
/// (empty for runs created before groups were recorded).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Requester {
    pub user: String,
    pub groups: Vec<String>,
}

impl Requester {
    /// The run's requester; `None` when `requestedBy` is unset (no admission policy).
    pub fn of(spec: &ExecutionSpec) -> Option<Self> {
        let user = spec.requested_by.as_deref().map(str::trim).unwrap_or("");
        (!user.is_empty()).then(|| Self {
            user: user.to_string(),
            groups: spec.requested_by_groups.clone(),
        })
    }
}

/// What the API server answered for one Runner, as the planner needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The step message: who lacks what, and the grant that would allow it.
    Denied(String),
}

/// The verdicts for the Runners a run may reach, by Runner name.
pub type RunnerAccess = BTreeMap<String, Verdict>;

/// The Runners whose `use` the planner may need for this playbook: each name a step
/// gives, [`DEFAULT_RUNNER`] when a step gives none, and every Runner of the
/// namespace when a name is a template (it renders only when the step starts).
pub fn runners_to_check<'a>(
    playbook: &PlaybookSpec,
    existing: impl IntoIterator<Item = &'a String>,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut templated = false;
    let steps = playbook
        .steps
        .iter()
        .chain(&playbook.finally)
        .flat_map(|e| std::iter::once(&e.step).chain(e.steps.iter().flatten()));
    for step in steps {
        // A block's own `step` has no image and never runs: only its steps name Runners.
        match step.runner.as_deref().map(str::trim) {
            _ if step.image.is_empty() => {}
            None | Some("") => {
                names.insert(DEFAULT_RUNNER.to_string());
            }
            Some(name) if name.contains("{{") => templated = true,
            Some(name) => {
                names.insert(name.to_string());
            }
        }
    }
    if templated {
        names.extend(existing.into_iter().cloned());
    }
    names
}

/// The verdict for `runner` from the API server's answer.
pub fn verdict(requester: &Requester, runner: &str, namespace: &str, allowed: bool) -> Verdict {
    if allowed {
        return Verdict::Allowed;
    }
    let subject = match requester.user.strip_prefix("system:serviceaccount:") {
        Some(sa) => format!("--serviceaccount={sa}"),
        None => format!("--user={}", requester.user),
    };
    let role = format!("use-runner-{runner}");
    Verdict::Denied(format!(
        "{} may not use Runner '{runner}' in namespace {namespace} (verb 'use' on \
         runners.stackpulse.io/{runner}): an admin can allow it with `kubectl create role \
         {role} -n {namespace} --verb=use --resource=runners.stackpulse.io \
         --resource-name={runner}` and `kubectl create rolebinding {role} -n {namespace} \
         --role={role} {subject}`, or the step can use another Runner",
        requester.user
    ))
}

/// The verdict for every Runner when the run names no requester: nobody can be
/// checked, so nothing may run.
pub fn no_requester(runner: &str) -> Verdict {
    Verdict::Denied(format!(
        "the run has no spec.requestedBy, so nobody can be checked for 'use' of Runner \
         '{runner}': install the admission policies (crds/admission-policies.yaml), which \
         fill it in, or create the run with playbook-operator start"
    ))
}

/// The Secrets a step on `runner` may read: its `secretName` (or
/// [`DEFAULT_SECRET`]) and its `allowedSecrets`.
pub fn allowed_secrets(runner: &RunnerSpec) -> BTreeSet<&str> {
    let own = runner.secret_name.as_deref().unwrap_or(DEFAULT_SECRET);
    std::iter::once(own)
        .chain(runner.allowed_secrets.iter().map(String::as_str))
        .collect()
}

/// Fails with what to change when the rendered step reads a Secret (`envFrom`, or
/// `secret "NAME" "KEY"`) that `runner` does not list. `secret "KEY"` reads the
/// Runner's own Secret and always passes.
pub fn check_secrets(
    step_id: &str,
    runner_name: &str,
    runner: &RunnerSpec,
    step: &RenderedStep,
) -> Result<(), String> {
    let allowed = allowed_secrets(runner);
    let from_env = step.env.iter().flat_map(|(name, r)| {
        r.secrets
            .iter()
            .filter_map(move |(_, s)| s.secret.as_deref().map(|s| (s, format!("env {name}"))))
    });
    let from_env_from = step.env_from.iter().flat_map(|e| {
        let secret = e
            .secret_ref
            .iter()
            .map(|s| (s.as_str(), "envFrom.secretRef"));
        let integration = e
            .integration_ref
            .iter()
            .map(|s| (s.as_str(), "envFrom.integrationRef"));
        secret
            .chain(integration)
            .map(|(s, field)| (s, field.to_string()))
    });
    match from_env
        .chain(from_env_from)
        .find(|(s, _)| !allowed.contains(s))
    {
        None => Ok(()),
        Some((secret, field)) => Err(secret_refused(step_id, &field, secret, runner_name)),
    }
}

/// The message for a Secret the Runner does not list.
pub fn secret_refused(step_id: &str, field: &str, secret: &str, runner_name: &str) -> String {
    format!(
        "step '{step_id}': {field} reads Secret '{secret}', which Runner '{runner_name}' does \
         not list: add '{secret}' to the Runner's spec.allowedSecrets (or use its own \
         secretName), or run the step on a Runner that lists it"
    )
}

#[cfg(test)]
mod tests;
