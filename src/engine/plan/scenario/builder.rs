//! The playbook side of a scenario: [`step`] and [`block`] build the entries of
//! `spec.steps`, and [`S`]'s methods set their fields as a reader would say them
//! (`step("a").retries(2, 10).after(&["b"])`).

use serde_json::Value;

use crate::api::{Approval, ForEach, OutputParser, Phase, PlaybookStep, Retries, Step};

/// Builds one entry of `spec.steps` (or of a block).
#[derive(Clone, Debug)]
pub struct S(pub PlaybookStep);

pub fn step(id: &str) -> S {
    S(PlaybookStep {
        step: Step {
            id: id.into(),
            image: format!("example.com/{id}:1"),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// A block entry (a `when` group or, with `foreach`, a loop over several steps).
pub fn block(id: &str, steps: Vec<S>) -> S {
    let mut b = step(id);
    b.0.step.image.clear();
    b.0.steps = Some(steps.into_iter().map(|s| s.0.step).collect());
    b
}

impl S {
    fn fe(mut self, f: impl FnOnce(&mut ForEach)) -> Self {
        f(self.0.foreach.get_or_insert_with(Default::default));
        self
    }
    pub fn when(mut self, w: &str) -> Self {
        self.0.step.when = Some(w.into());
        self
    }
    pub fn after(mut self, deps: &[&str]) -> Self {
        self.0.step.depends_on = Some(deps.iter().map(|d| d.to_string()).collect());
        self
    }
    pub fn retries(mut self, limit: u32, backoff_seconds: u32) -> Self {
        self.0.step.retries = Some(Retries {
            limit,
            backoff_seconds,
        });
        self
    }
    pub fn timeout(mut self, seconds: i64) -> Self {
        self.0.step.timeout_seconds = Some(seconds);
        self
    }
    pub fn continue_on_error(mut self) -> Self {
        self.0.step.continue_on_error = true;
        self
    }
    pub fn approval(self) -> Self {
        self.approval_with(|_| {})
    }
    /// A required approval, configured further by `f`.
    pub fn approval_with(mut self, f: impl FnOnce(&mut Approval)) -> Self {
        let mut approval = Approval {
            required: true,
            ..Default::default()
        };
        f(&mut approval);
        self.0.step.approval = Some(approval);
        self
    }
    pub fn runner(mut self, name: &str) -> Self {
        self.0.step.runner = Some(name.into());
        self
    }
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.0.step.env.insert(name.into(), value.into());
        self
    }
    pub fn parser(mut self, name: &str) -> Self {
        self.0.step.output_parser = Some(OutputParser {
            name: name.into(),
            ..Default::default()
        });
        self
    }
    pub fn phase(mut self, phase: Phase) -> Self {
        self.0.step.phase = phase;
        self
    }
    pub fn foreach_path(self, path: &str) -> Self {
        self.fe(|f| f.path = Some(path.into()))
    }
    pub fn foreach_range(self, from: i64, to: i64) -> Self {
        self.fe(|f| f.range = Some(vec![from, to]))
    }
    pub fn foreach_items(self, items: Vec<Value>) -> Self {
        self.fe(|f| f.items = Some(items))
    }
    pub fn break_when(self, t: &str) -> Self {
        self.fe(|f| f.break_when = Some(t.into()))
    }
    pub fn item_when(self, t: &str) -> Self {
        self.fe(|f| f.when = Some(t.into()))
    }
    pub fn parallel(self, n: u32) -> Self {
        self.fe(|f| f.parallelism = Some(n))
    }
}
