//! Static checks of a playbook (`playbook-operator lint`, and the `Ready` condition):
//! what would fail at run time, found before anything runs.
//!
//! Pure: takes a spec (or a file's text, in [`file`]) and returns findings, each with
//! the path of the field and a message that says what to change. Errors are what the
//! API server or the controller would reject or fail on; warnings are what only
//! running can settle (a bare `.Clients` may be an output field no one declared).

mod file;
mod ready;
mod runners;
mod shell;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::api::{ParamType, PlaybookSpec, PlaybookStep, Step};
use crate::engine::convert::{is_dns_label, refs};
use crate::engine::plan::finally_problems;
use crate::engine::{parse, template};

pub use file::{FileFinding, lint_file};
pub use ready::{
    READY, REASON_INVALID, REASON_SECRET_NOT_FOUND, REASON_VALID, SecretCheck, ready_condition,
    runner_ready_condition, schedule_ready_condition, trigger_ready_condition,
};
pub use runners::lint_secrets;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The playbook is rejected or fails when it runs.
    Error,
    /// Suspicious; may be fine once the playbook runs.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// The field, e.g. `spec.steps[2].env.REDIS_URL`.
    pub path: String,
    /// What is wrong and what to change.
    pub message: String,
}

/// Roots a template may read besides the context's own (`context::RESERVED`):
/// `output`, the field StackPulse steps print most, and the default loop names.
const OTHER_ROOTS: &[&str] = &["output", "value", "key"];

/// Checks a playbook spec. `known_runners`: the Runners that exist, when known; a
/// step naming another one is an error.
pub fn lint_playbook(spec: &PlaybookSpec, known_runners: Option<&[String]>) -> Vec<Finding> {
    let mut l = Lint {
        out: Vec::new(),
        ids: BTreeSet::new(),
        params: BTreeMap::new(),
        runners: known_runners,
    };
    l.collect_ids(spec);
    l.check_params(spec);
    for (i, entry) in spec.steps.iter().enumerate() {
        l.entry(entry, &format!("spec.steps[{i}]"));
    }
    // Finally steps are checked like the others (their templates may also read
    // `.execution.phase` and `.execution.failedStep`).
    for (i, entry) in spec.finally.iter().enumerate() {
        l.entry(entry, &format!("spec.finally[{i}]"));
    }
    let none = BTreeSet::new();
    if let Some(s) = &spec.severity {
        l.template("spec.severity", s, &none);
    }
    if let Some(r) = spec.limits.as_ref().and_then(|l| l.remediations.as_ref()) {
        l.template("spec.limits.remediations.key", &r.key, &none);
    }
    l.check_depends_on(spec);
    for (path, message) in finally_problems(spec) {
        l.error(&path, &message);
    }
    l.out
}

struct Lint<'a> {
    out: Vec<Finding>,
    ids: BTreeSet<String>,
    params: BTreeMap<String, ParamType>,
    runners: Option<&'a [String]>,
}

impl Lint<'_> {
    /// Checks one entry of `steps` or `finally`: a step, or a block, maybe looped.
    fn entry(&mut self, entry: &PlaybookStep, path: &str) {
        let l = self;
        let none = BTreeSet::new();
        let is_block = entry.steps.is_some();
        match (is_block, !entry.step.image.is_empty()) {
        (true, true) => l.error(path, "is both a step (image) and a block (steps): move the image into a step inside steps, or remove steps"),
        (false, false) => l.error(path, "has neither image nor steps: set image to run a container, or steps to make a block"),
        _ => {}
    }
        let mut scope = BTreeSet::new();
        if let Some(fe) = &entry.foreach {
            scope.insert(fe.key.clone().unwrap_or_else(|| "key".into()));
            scope.insert(fe.value.clone().unwrap_or_else(|| "value".into()));
            let set = [fe.path.is_some(), fe.range.is_some(), fe.items.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if set != 1 {
                l.error(
                    &format!("{path}.foreach"),
                    "needs exactly one of path, range and items",
                );
            }
            if let Some(r) = &fe.range {
                match r.as_slice() {
                    [from, to] if from > to => l.warn(
                        &format!("{path}.foreach.range"),
                        &format!(
                            "[{from}, {to}] is empty (the end is exclusive): the loop never runs"
                        ),
                    ),
                    [_, _] => {}
                    _ => l.error(
                        &format!("{path}.foreach.range"),
                        "must be [from, to]: two integers, the end exclusive",
                    ),
                }
            }
            if let Some(p) = fe.path.as_deref().filter(|p| p.contains("{{")) {
                l.template(&format!("{path}.foreach.path"), p, &none);
            }
            if let Some(w) = &fe.when {
                l.template(&format!("{path}.foreach.when"), w, &scope);
            }
            if let Some(b) = &fe.break_when {
                l.template(&format!("{path}.foreach.break"), b, &scope);
            }
        }
        match &entry.steps {
            Some(inner) => {
                l.block_fields(&entry.step, path);
                if inner.is_empty() {
                    l.error(
                        &format!("{path}.steps"),
                        "is empty: a block needs at least one step",
                    );
                }
                if let Some(w) = &entry.step.when {
                    l.template(&format!("{path}.when"), w, &none);
                }
                for (j, step) in inner.iter().enumerate() {
                    if step.image.is_empty() {
                        l.error(
                            &format!("{path}.steps[{j}]"),
                            "has no image: every step in a block runs a container",
                        );
                    }
                    l.step(step, &format!("{path}.steps[{j}]"), &scope);
                }
            }
            None => l.step(&entry.step, path, &scope),
        }
    }

    fn error(&mut self, path: &str, message: &str) {
        self.out.push(Finding {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
        });
    }

    fn warn(&mut self, path: &str, message: &str) {
        self.out.push(Finding {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
        });
    }

    /// Every id (entries and the steps inside blocks) is in one namespace: Jobs,
    /// `dependsOn` and `.steps.<id>` all name them.
    fn collect_ids(&mut self, spec: &PlaybookSpec) {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut all = Vec::new();
        for (i, e) in spec.steps.iter().enumerate() {
            all.push((format!("spec.steps[{i}].id"), &e.step.id));
            for (j, s) in e.steps.iter().flatten().enumerate() {
                all.push((format!("spec.steps[{i}].steps[{j}].id"), &s.id));
            }
        }
        for (path, id) in all {
            if !is_dns_label(id) {
                let hint = crate::engine::convert::dns_label(id);
                let hint = if hint.is_empty() || hint == *id {
                    String::new()
                } else {
                    format!(", e.g. '{hint}'")
                };
                self.error(&path, &format!("'{id}' is not a DNS label: use lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit{hint}"));
            }
            match seen.get(id.as_str()) {
                Some(first) => {
                    let msg = format!(
                        "'{id}' is already the id of {}: ids are unique in the whole playbook, blocks included; rename one",
                        first.trim_end_matches(".id")
                    );
                    self.error(&path, &msg);
                }
                None => {
                    seen.insert(id.clone(), path.clone());
                }
            }
            self.ids.insert(id.clone());
        }
    }

    fn check_params(&mut self, spec: &PlaybookSpec) {
        let none = BTreeSet::new();
        for (i, p) in spec.params.iter().enumerate() {
            let path = format!("spec.params[{i}]");
            let valid = p
                .name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                self.error(&format!("{path}.name"), &format!("'{}' is not a valid param name: start with a letter or '_', then letters, digits, '_' or '-'", p.name));
            }
            if self.params.insert(p.name.clone(), p.kind).is_some() {
                self.error(
                    &format!("{path}.name"),
                    &format!("param '{}' is declared twice: remove one", p.name),
                );
            }
            if let Some(d) = &p.default {
                self.template(&format!("{path}.default"), d, &none);
            }
        }
    }

    /// Fields that only mean something on a step, set on a block, are ignored there.
    fn block_fields(&mut self, s: &Step, path: &str) {
        let set = [
            ("runner", s.runner.is_some()),
            ("command", s.command.is_some()),
            ("args", s.args.is_some()),
            ("env", !s.env.is_empty()),
            ("envFrom", !s.env_from.is_empty()),
            ("outputParser", s.output_parser.is_some()),
            ("retries", s.retries.is_some()),
            ("timeoutSeconds", s.timeout_seconds.is_some()),
            ("approval", s.approval.is_some()),
            ("resources", s.resources.is_some()),
        ];
        for (field, _) in set.iter().filter(|(_, on)| *on) {
            self.warn(&format!("{path}.{field}"), &format!("a block runs no container, so {field} here does nothing: move it onto the steps inside the block"));
        }
    }

    fn step(&mut self, s: &Step, path: &str, scope: &BTreeSet<String>) {
        for (k, v) in &s.env {
            self.template(&format!("{path}.env.{k}"), v, scope);
        }
        for (field, list) in [("args", &s.args), ("command", &s.command)] {
            for (i, a) in list.iter().flatten().enumerate() {
                self.template(&format!("{path}.{field}[{i}]"), a, scope);
            }
        }
        if let Some(w) = &s.when {
            self.template(&format!("{path}.when"), w, scope);
        }
        self.shell_script(s, path);
        for (i, ef) in s.env_from.iter().enumerate() {
            if ef.secret_ref.is_some() == ef.integration_ref.is_some() {
                self.error(
                    &format!("{path}.envFrom[{i}]"),
                    "set exactly one of secretRef and integrationRef",
                );
            }
            // Both are templates that the Job builder renders (an integration param
            // names the Secret), so both are checked as templates.
            for (field, name) in [
                ("secretRef", &ef.secret_ref),
                ("integrationRef", &ef.integration_ref),
            ] {
                if let Some(r) = name {
                    self.template(&format!("{path}.envFrom[{i}].{field}"), r, scope);
                }
            }
        }
        if let Some(p) = &s.output_parser
            && let Err(e) = parse::validate(p)
        {
            self.error(&format!("{path}.outputParser"), &e.to_string());
        }
        // No runner set is always fine: the step runs on Runner `default` when there
        // is one, else as a plain Job (what the planner does).
        let Some(runner) = s.runner.as_deref() else {
            return;
        };
        if runner.contains("{{") {
            self.template(&format!("{path}.runner"), runner, scope);
        } else if let Some(known) = self.runners
            && !known.iter().any(|r| r == runner)
        {
            let msg = format!(
                "Runner '{runner}' does not exist (known: {}){}: create it or name one of those",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                },
                suggest(runner, known.iter().map(String::as_str))
            );
            self.error(&format!("{path}.runner"), &msg);
        }
    }

    /// Parses a template and checks what it reads.
    fn template(&mut self, path: &str, src: &str, scope: &BTreeSet<String>) {
        let refs = match template::references(src) {
            Ok(r) => r,
            Err(e) => {
                self.error(path, &format!("template does not parse: {e}"));
                return;
            }
        };
        let mut warned = BTreeSet::new();
        for r in refs {
            let Some(first) = r.first() else { continue };
            match (first.as_str(), r.get(1)) {
                ("steps", Some(id)) if !self.ids.contains(id) => {
                    let msg = format!(
                        "reads .steps.{id}, but no step has id '{id}'{}: use the id of a step that runs before this one",
                        suggest(id, self.ids.iter().map(String::as_str))
                    );
                    self.error(path, &msg);
                }
                ("params", Some(name))
                    if !self.params.contains_key(name)
                        && warned.insert(format!("params.{name}")) =>
                {
                    let msg = format!(
                        "reads .params.{name}, which spec.params does not declare: declare it, so a run without it fails with a clear message"
                    );
                    self.warn(path, &msg);
                }
                (root, _) => {
                    let known = crate::engine::context::RESERVED.contains(&root)
                        || OTHER_ROOTS.contains(&root)
                        || scope.contains(root)
                        || self.ids.contains(root)
                        || self.params.contains_key(root);
                    if !known && warned.insert(root.to_string()) {
                        let msg = format!(
                            "reads .{root}: not a param, a step id or a context root; fine if an earlier step outputs '{root}' (outputs merge at the root), else declare it in spec.params"
                        );
                        self.warn(path, &msg);
                    }
                }
            }
        }
        self.secret_as_text(path, src);
    }

    /// Alert text printed into a `sh -c` script without `shellQuote` ([`shell`]).
    fn shell_script(&mut self, s: &Step, path: &str) {
        let fields = [("command", &s.command), ("args", &s.args)];
        let argv: Vec<(String, &str)> = fields
            .iter()
            .flat_map(|(field, list)| {
                list.iter()
                    .flatten()
                    .enumerate()
                    .map(move |(i, a)| (format!("{path}.{field}[{i}]"), a.as_str()))
            })
            .collect();
        let words: Vec<&str> = argv.iter().map(|(_, a)| *a).collect();
        let Some(i) = shell::script_index(&words) else {
            return;
        };
        let params = self.params.keys().cloned().collect();
        for msg in shell::script_problems(words[i], &params) {
            self.warn(&argv[i].0, &msg);
        }
    }

    /// `{{ .params.X }}` with X a secret param prints the key's name, not the secret.
    fn secret_as_text(&mut self, path: &str, src: &str) {
        for rp in refs::root_paths(src) {
            if !rp.printed || rp.secret_arg {
                continue;
            }
            let name = match rp.segments.as_slice() {
                [p, name, ..] if p == "params" => name,
                [name, ..] if !self.ids.contains(name) => name,
                _ => continue,
            };
            if self.params.get(name) == Some(&ParamType::Secret) {
                let msg = format!(
                    "prints secret param '{name}' as text, which renders the secret key's name, not the secret: use {{{{ secret .params.{name} }}}}"
                );
                self.error(path, &msg);
            }
        }
    }

    /// Unknown ids in `dependsOn`, and cycles. An entry without `dependsOn` waits for
    /// the entry before it in its list, so that edge counts too.
    fn check_depends_on(&mut self, spec: &PlaybookSpec) {
        let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut lists: Vec<(String, Vec<&Step>)> = vec![(
            "spec.steps".into(),
            spec.steps.iter().map(|e| &e.step).collect(),
        )];
        for (i, e) in spec.steps.iter().enumerate() {
            if let Some(inner) = &e.steps {
                lists.push((format!("spec.steps[{i}].steps"), inner.iter().collect()));
            }
        }
        for (list_path, list) in lists {
            for (i, s) in list.iter().enumerate() {
                let deps = match &s.depends_on {
                    Some(d) => d.clone(),
                    None => i
                        .checked_sub(1)
                        .map(|p| vec![list[p].id.clone()])
                        .unwrap_or_default(),
                };
                for (j, d) in s.depends_on.iter().flatten().enumerate() {
                    let path = format!("{list_path}[{i}].dependsOn[{j}]");
                    if d == &s.id {
                        self.error(&path, &format!("step '{d}' depends on itself: remove it"));
                    } else if !self.ids.contains(d) {
                        let msg = format!(
                            "no step has id '{d}'{}: name an existing step",
                            suggest(d, self.ids.iter().map(String::as_str))
                        );
                        self.error(&path, &msg);
                    }
                }
                edges
                    .entry(s.id.clone())
                    .or_default()
                    .extend(deps.into_iter().filter(|d| d != &s.id));
            }
        }
        for cycle in cycles(&edges) {
            let msg = format!(
                "dependsOn forms a cycle: {}: break it by removing one of these dependencies",
                cycle.join(" → ")
            );
            self.error("spec.steps", &msg);
        }
    }
}

/// Each cycle of the graph once, as the ids along it (first repeated at the end).
fn cycles(edges: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    let mut found = Vec::new();
    for start in edges.keys() {
        if marks.contains_key(start.as_str()) {
            continue;
        }
        // Iterative DFS: (node, next edge to follow); `stack` is the current path.
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Open);
        while let Some((node, next)) = stack.last().copied() {
            let out = edges.get(node).map(Vec::as_slice).unwrap_or_default();
            match out.get(next) {
                None => {
                    marks.insert(node, Mark::Done);
                    stack.pop();
                }
                Some(to) => {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    match marks.get(to.as_str()) {
                        Some(Mark::Open) => {
                            let at = stack
                                .iter()
                                .position(|(n, _)| *n == to.as_str())
                                .unwrap_or(0);
                            let mut cycle: Vec<String> =
                                stack[at..].iter().map(|(n, _)| n.to_string()).collect();
                            cycle.push(to.clone());
                            found.push(cycle);
                        }
                        Some(Mark::Done) => {}
                        None => {
                            marks.insert(to, Mark::Open);
                            stack.push((to, 0));
                        }
                    }
                }
            }
        }
    }
    found
}

/// ", did you mean 'x'?" for the closest candidate within two edits.
fn suggest<'a>(wrong: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    crate::engine::message::close_to(wrong, candidates)
        .first()
        .map(|c| format!(" (did you mean '{c}'?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
