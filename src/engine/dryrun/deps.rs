//! What a template depends on that a dry run cannot know: earlier steps' outputs
//! and states, the alert when none was given, how the main steps end (for `finally`
//! steps), and the items of a loop over any of those.

use std::collections::BTreeSet;

use crate::engine::context::RESERVED;
use crate::engine::template;

/// One thing only a real run knows.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Dep {
    /// `.steps.ID…` or `.ID…`: that step's outputs or state.
    Step(String),
    /// `.steps` as a whole (`index .steps "x"`): some earlier step's.
    Steps,
    /// A root key no param or context root has: an output merged at the root.
    Output(String),
    /// `.alert` or `.event` in a dry run that was given no alert.
    Alert,
    /// `.execution.phase` / `.execution.failedStep` in a `finally` step.
    Outcome,
    /// A loop variable of a loop whose items are not known.
    Items(String),
}

/// What the templates of one step may read, and what of it is known.
#[derive(Clone, Debug, Default)]
pub(super) struct Scope {
    /// Root keys whose values are known: params, the context roots, loop variables
    /// of known items.
    pub known: BTreeSet<String>,
    /// Every step and block id of the playbook (they name outputs at the root).
    pub step_ids: BTreeSet<String>,
    pub has_alert: bool,
    /// Rendering a `finally` step: the run's outcome is not known.
    pub finally: bool,
    /// Loop variables whose items are not known, with their loop's id.
    pub unknown_vars: Vec<(String, String)>,
}

impl Scope {
    /// A scope over the context roots, the given params' names and the step ids.
    pub fn new(params: impl IntoIterator<Item = String>, has_alert: bool) -> Self {
        let mut known: BTreeSet<String> = RESERVED
            .iter()
            .filter(|r| **r != "steps" && (has_alert || !matches!(**r, "alert" | "event")))
            .map(|r| (*r).to_string())
            .collect();
        known.extend(params);
        Self {
            known,
            has_alert,
            ..Self::default()
        }
    }

    /// What `src` reads that is not known; empty when it renders the same in a real
    /// run. `Err` is the template's parse error.
    pub fn deps(&self, src: &str) -> Result<BTreeSet<Dep>, String> {
        let refs = template::references(src).map_err(|e| e.to_string())?;
        Ok(refs.iter().filter_map(|path| self.dep(path)).collect())
    }

    fn dep(&self, path: &[String]) -> Option<Dep> {
        let root = path.first()?.as_str();
        let second = path.get(1).map(String::as_str);
        if let Some((_, id)) = self.unknown_vars.iter().find(|(var, _)| var == root) {
            return Some(Dep::Items(id.clone()));
        }
        match root {
            "steps" => Some(second.map_or(Dep::Steps, |id| Dep::Step(id.to_string()))),
            "execution"
                if self.finally && matches!(second, None | Some("phase" | "failedStep")) =>
            {
                Some(Dep::Outcome)
            }
            "alert" | "event" if !self.has_alert => Some(Dep::Alert),
            _ if self.known.contains(root) => None,
            _ if self.step_ids.contains(root) => Some(Dep::Step(root.to_string())),
            _ => Some(Dep::Output(root.to_string())),
        }
    }
}

/// The template a `foreach.path` amounts to, for [`Scope::deps`]: `pods`,
/// `$.get-pods.items` and `.steps.x.outputs.items` read from the root.
pub(super) fn path_template(path: &str) -> String {
    let p = path.trim();
    if p.contains("{{") {
        p.to_string()
    } else if p.starts_with('$') || p.starts_with('.') {
        format!("{{{{ {p} }}}}")
    } else {
        format!("{{{{ .{p} }}}}")
    }
}

/// "depends on step pod's outputs", for a person; `deps` is not empty.
pub(super) fn describe(deps: &BTreeSet<Dep>) -> String {
    let steps: Vec<&str> = deps
        .iter()
        .filter_map(|d| match d {
            Dep::Step(id) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let outputs: Vec<String> = deps
        .iter()
        .filter_map(|d| match d {
            Dep::Output(key) => Some(format!(".{key}")),
            _ => None,
        })
        .collect();
    let mut parts = Vec::new();
    match steps.as_slice() {
        [] => {}
        [one] => parts.push(format!("step {one}'s outputs")),
        many => parts.push(format!("the outputs of steps {}", many.join(", "))),
    }
    if deps.contains(&Dep::Steps) && steps.is_empty() {
        parts.push("earlier steps' outputs".to_string());
    }
    if !outputs.is_empty() {
        parts.push(format!("earlier steps' outputs ({})", outputs.join(", ")));
    }
    if deps.contains(&Dep::Alert) {
        parts.push("the alert (this dry run was given none)".to_string());
    }
    if deps.contains(&Dep::Outcome) {
        parts.push("how the main steps end".to_string());
    }
    for d in deps {
        if let Dep::Items(id) = d {
            parts.push(format!("the items of loop {id}"));
        }
    }
    format!("depends on {}", parts.join(" and "))
}
