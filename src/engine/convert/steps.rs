//! Dialect `steps` → canonical `spec.steps`: steps, conditional groups and loops.
//!
//! Ids are given where missing and made unique DNS labels; when an id a template
//! reads had to change, the templates after it are rewritten to the new id, so the
//! playbook reads the same outputs it did before conversion.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

use serde_yaml::Value;

use super::names::{self, Ids};
use super::{ConvertError, Cx, Obj, refs, scalar, yaml_text};
use crate::api::{EnvFrom, ForEach, OutputParser, PlaybookStep, Step};

/// Walk state for one playbook.
struct Walk<'c> {
    cx: &'c mut Cx,
    ids: Ids,
    /// Source id → the canonical id that source id now reads (last writer wins, as
    /// StackPulse's merged outputs do).
    renames: BTreeMap<String, String>,
    groups: usize,
    loops: usize,
    playbook: String,
    steps: usize,
    /// Names of the playbook's `type: secret` params.
    secret_params: BTreeSet<String>,
}

/// One dialect entry's shape.
enum Shape {
    Step,
    Group,
    Loop,
}

fn shape(v: &Value, path: &str) -> Result<Shape, ConvertError> {
    let has = |k: &str| v.get(k).is_some();
    match (has("foreach"), has("steps"), has("name")) {
        (true, _, false) => Ok(Shape::Loop),
        (false, true, false) => Ok(Shape::Group),
        (false, false, true) => Ok(Shape::Step),
        (_, _, true) => Err(ConvertError::invalid(
            path,
            "has both name (an image: a step) and steps/foreach (a group or loop): split it in two",
        )),
        _ => Err(ConvertError::invalid(
            path,
            "is neither a step (name: IMAGE), a group (when + steps) nor a loop (foreach)",
        )),
    }
}

/// An env value that is exactly one secret param printed (`{{ $.params.KEY }}`,
/// `{{ .params.KEY }}` or bare `{{ .KEY }}`): StackPulse authors wrote that meaning the
/// secret, and it would render the key's name. Returns the secret reference that
/// replaces it, and the param's name. A secret printed inside longer text is left for
/// `lint` to refuse: there the author's intent is not clear.
fn secret_reference(value: &str, secret_params: &BTreeSet<String>) -> Option<(String, String)> {
    static WHOLE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\{\{-?\s*\$?\.(?:params\.)?([A-Za-z_][A-Za-z0-9_-]*)\s*-?\}\}$")
            .expect("a valid regex")
    });
    let name = WHOLE.captures(value.trim())?.get(1)?.as_str();
    secret_params
        .contains(name)
        .then(|| (format!("{{{{ secret .params.{name} }}}}"), name.to_string()))
}

/// Converts the top-level `steps` list.
pub(super) fn convert(
    cx: &mut Cx,
    list: &[Value],
    playbook: &str,
    secret_params: BTreeSet<String>,
) -> Result<Vec<PlaybookStep>, ConvertError> {
    let mut ids = Ids::default();
    reserve(&mut ids, list);
    let mut w = Walk {
        cx,
        ids,
        renames: BTreeMap::new(),
        groups: 0,
        loops: 0,
        playbook: playbook.into(),
        steps: 0,
        secret_params,
    };
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let path = format!("steps[{i}]");
        match shape(v, &path)? {
            Shape::Step => {
                let canon = format!("spec.steps[{}]", out.len());
                let step = w.step(v, &path, &canon)?;
                out.push(PlaybookStep {
                    step,
                    foreach: None,
                    steps: None,
                });
            }
            Shape::Group => w.group(v, &path, &mut out)?,
            Shape::Loop => {
                let block = w.lp(v, &path, out.len(), None)?;
                out.push(block);
            }
        }
    }
    if w.steps > 0 {
        w.cx.note(format!(
            "Playbook {}: StackPulse steps have no phase: all {} set to enrich; set triage, communicate or remediate where a step does that",
            w.playbook, w.steps
        ));
    }
    Ok(out)
}

/// Reserves every id the source writes, so generated ids never take one.
fn reserve(ids: &mut Ids, list: &[Value]) {
    for v in list {
        if let Some(id) = v.get("id").and_then(scalar) {
            ids.reserve(&id);
        }
        let inner = v
            .get("steps")
            .or_else(|| v.get("foreach").and_then(|f| f.get("steps")));
        if let Some(Value::Sequence(inner)) = inner {
            reserve(ids, inner);
        }
    }
}

/// `{{ A }}` and `{{ B }}` → `{{ and (A) (B) }}`: the conditions of a flattened group
/// and of its step. Only single actions combine safely; anything else is refused
/// rather than guessed. (Conditions are comparisons that yield booleans, for which
/// Go's `and` is plain conjunction; the flattening is noted so a reviewer can check.)
fn both(
    outer: Option<&str>,
    inner: Option<String>,
    path: &str,
) -> Result<Option<String>, ConvertError> {
    let Some(outer) = outer else { return Ok(inner) };
    let Some(inner) = inner else {
        return Ok(Some(outer.to_string()));
    };
    let single = |s: &str| {
        let t = s.trim();
        let body = t.strip_prefix("{{")?.strip_suffix("}}")?;
        (!body.contains("{{") && !body.contains("}}"))
            .then(|| body.trim_matches('-').trim().to_string())
    };
    match (single(outer), single(&inner)) {
        (Some(a), Some(b)) => Ok(Some(format!("{{{{ and ({a}) ({b}) }}}}"))),
        _ => Err(ConvertError::invalid(
            path,
            "its when and the enclosing group's when cannot be combined automatically (not single {{ }} actions): merge them by hand",
        )),
    }
}

impl Walk<'_> {
    /// A template field with renamed step ids rewritten (and a note when it changed).
    fn template(&mut self, src: String, path: &str) -> String {
        match refs::rename_ids(&src, &self.renames) {
            Some(new) => {
                self.cx.note(format!(
                    "Playbook {}: {path}: reads a renamed step id: '{src}' → '{new}'",
                    self.playbook
                ));
                new
            }
            None => src,
        }
    }

    fn strings(&mut self, v: &Value, path: &str) -> Result<Vec<String>, ConvertError> {
        let items: Vec<String> = match v {
            Value::Sequence(list) => list.iter().map(yaml_text).collect(),
            other => vec![
                scalar(other)
                    .ok_or_else(|| ConvertError::invalid(path, "must be a list of strings"))?,
            ],
        };
        Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, s)| self.template(s, &format!("{path}[{i}]")))
            .collect())
    }

    /// The id for an entry: the source's (made a unique DNS label) or one made from
    /// `fallback`. Records renames after the entry's own templates were read.
    fn id(&mut self, source: Option<String>, fallback: &str, path: &str) -> String {
        let Some(source) = source else {
            let id = self.ids.take(fallback, false);
            self.cx.note(format!(
                "Playbook {}: {path} had no id: named it '{id}'",
                self.playbook
            ));
            return id;
        };
        let id = self.ids.take(&source, true);
        if id == source {
            self.renames.remove(&source);
        } else {
            let why = if names::is_dns_label(&source) {
                "is used by an earlier step too"
            } else {
                "is not a DNS label (lowercase letters, digits, '-')"
            };
            self.cx.note(format!(
                "Playbook {}: {path}: id '{source}' {why}: renamed '{id}'; later templates reading '{source}' now read '{id}'",
                self.playbook
            ));
            self.renames.insert(source, id.clone());
        }
        id
    }

    fn step(&mut self, v: &Value, path: &str, canon: &str) -> Result<Step, ConvertError> {
        self.cx.origins.push((canon.to_string(), path.to_string()));
        self.steps += 1;
        let mut o = Obj::new(v, path)?;
        let source_id = o.str("id")?;
        let image = o
            .str("name")?
            .ok_or_else(|| ConvertError::invalid(format!("{path}.name"), "missing"))?;
        let mut step = Step {
            image,
            ..Default::default()
        };
        step.runner = o
            .str("runner")?
            .map(|r| self.template(r, &format!("{path}.runner")));
        if let Some(env) = o.get("env") {
            let map = env
                .as_mapping()
                .ok_or_else(|| ConvertError::invalid(format!("{path}.env"), "must be a mapping"))?;
            for (k, v) in map {
                let key = yaml_text(k);
                let mut value = self.template(yaml_text(v), &format!("{path}.env.{key}"));
                if let Some((reference, param)) = secret_reference(&value, &self.secret_params) {
                    self.cx.note(format!(
                        "Playbook {}: {path}.env.{key}: secret param '{param}' as the whole value → {reference} (the secret itself, by reference, not the key's name)",
                        self.playbook
                    ));
                    value = reference;
                }
                step.env.insert(key, value);
            }
        }
        if let Some(args) = o.get("args") {
            step.args = Some(self.strings(args, &format!("{path}.args"))?);
        }
        if let Some(cmd) = o.get("command") {
            step.command = Some(self.strings(cmd, &format!("{path}.command"))?);
        }
        step.when = o
            .str("when")?
            .map(|w| self.template(w, &format!("{path}.when")));
        if o.bool("ignoreFailure")? == Some(true) {
            step.continue_on_error = true;
            self.cx.note(format!(
                "Playbook {}: {path}: ignoreFailure → continueOnError",
                self.playbook
            ));
        }
        if let Some(ef) = o.get("envFrom") {
            step.env_from = self.env_from(ef, &format!("{path}.envFrom"))?;
        }
        if let Some(p) = o.get("output_parser") {
            step.output_parser = Some(self.parser(p, &format!("{path}.output_parser"))?);
        }
        o.finish(self.cx);
        step.id = self.id(source_id, &names::id_from_image(&step.image), path);
        Ok(step)
    }

    fn env_from(&mut self, v: &Value, path: &str) -> Result<Vec<EnvFrom>, ConvertError> {
        let items: Vec<&Value> = match v {
            Value::Sequence(list) => list.iter().collect(),
            other => vec![other],
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let p = if v.is_sequence() {
                format!("{path}[{i}]")
            } else {
                path.to_string()
            };
            let mut o = Obj::new(item, &p)?;
            let integration_ref = o.str("integrationRef")?.map(|s| self.template(s, &p));
            let secret_ref = o.str("secretRef")?;
            o.finish(self.cx);
            out.push(EnvFrom {
                secret_ref,
                integration_ref,
            });
        }
        Ok(out)
    }

    /// `output_parser: {name: IMAGE}`; the SDK's json-parser and raw-output-parser
    /// images do exactly what the built-in `json` and `raw` do, without a second Job.
    fn parser(&mut self, v: &Value, path: &str) -> Result<OutputParser, ConvertError> {
        let mut parser = match v {
            Value::String(name) => OutputParser {
                name: name.clone(),
                ..Default::default()
            },
            _ => {
                let mut o = Obj::new(v, path)?;
                let name = o
                    .str("name")?
                    .ok_or_else(|| ConvertError::invalid(format!("{path}.name"), "missing"))?;
                let p = OutputParser {
                    name,
                    jq: o.str("jq")?,
                    pattern: o.str("pattern")?,
                    separator: o.str("separator")?,
                };
                o.finish(self.cx);
                p
            }
        };
        let image = parser.name.split(['@', ':']).next().unwrap_or_default();
        let builtin = match image.rsplit('/').next().unwrap_or_default() {
            "json-parser" if image.contains('/') => Some("json"),
            "raw-output-parser" if image.contains('/') => Some("raw"),
            _ => None,
        };
        if let Some(b) = builtin {
            self.cx.note(format!(
                "Playbook {}: {path} {} → outputParser {b}",
                self.playbook, parser.name
            ));
            parser.name = b.into();
        }
        Ok(parser)
    }

    /// The steps inside a group or loop, flattened to plain steps: a nested group's
    /// `when` moves onto each of its steps (blocks do not nest canonically).
    fn inner(
        &mut self,
        list: &Value,
        path: &str,
        canon: &str,
        start: usize,
        out: &mut Vec<Step>,
        cond: Option<&str>,
    ) -> Result<(), ConvertError> {
        let Value::Sequence(list) = list else {
            return Err(ConvertError::invalid(path, "must be a list of steps"));
        };
        for (i, v) in list.iter().enumerate().skip(start) {
            let p = format!("{path}[{i}]");
            match shape(v, &p)? {
                Shape::Step => {
                    let mut step = self.step(v, &p, &format!("{canon}.steps[{}]", out.len()))?;
                    step.when = both(cond, step.when.take(), &p)?;
                    out.push(step);
                }
                Shape::Group => {
                    let mut o = Obj::new(v, &p)?;
                    if let Some(id) = o.str("id")? {
                        self.cx.keep(format!("{p}.id"), &Value::String(id));
                    }
                    let when = o
                        .str("when")?
                        .map(|w| self.template(w, &format!("{p}.when")));
                    let steps = o.get("steps").unwrap_or(&Value::Null);
                    o.finish(self.cx);
                    let when = both(cond, when, &p)?;
                    self.cx.note(format!(
                        "Playbook {}: {p}: nested group flattened into the enclosing block; its when is now on each of its steps",
                        self.playbook
                    ));
                    self.inner(steps, &format!("{p}.steps"), canon, 0, out, when.as_deref())?;
                }
                Shape::Loop => {
                    return Err(ConvertError::invalid(
                        p,
                        "a loop inside a loop has no canonical form (blocks do not nest): move the inner loop to the top level",
                    ));
                }
            }
        }
        Ok(())
    }

    /// A conditional group. Canonical blocks do not nest, so a loop inside a group
    /// splits it: the steps before, the loop, the steps after, each with the group's
    /// `when` (re-evaluated at the start of each part).
    fn group(
        &mut self,
        v: &Value,
        path: &str,
        out: &mut Vec<PlaybookStep>,
    ) -> Result<(), ConvertError> {
        let mut o = Obj::new(v, path)?;
        let mut source_id = o.str("id")?;
        let when = o
            .str("when")?
            .map(|w| self.template(w, &format!("{path}.when")));
        let Some(Value::Sequence(list)) = o.get("steps") else {
            return Err(ConvertError::invalid(
                format!("{path}.steps"),
                "must be a list of steps",
            ));
        };
        o.finish(self.cx);
        self.groups += 1;
        let fallback = format!("group-{}", self.groups);
        // The first part holding plain steps gets the group's id; later ones `<id>-2`...
        let mut first_id: Option<String> = None;
        let (mut start, mut parts, mut loops) = (0, 0, 0);
        loop {
            // The next loop in this group ends the current part.
            let loop_at =
                (start..list.len()).find(|&j| matches!(shape(&list[j], ""), Ok(Shape::Loop)));
            let end = loop_at.unwrap_or(list.len());
            if end > start || parts == 0 && loop_at.is_none() {
                let id = match &first_id {
                    None => self.id(source_id.take(), &fallback, path),
                    Some(first) => self.ids.take(&format!("{first}-{}", parts + 1), false),
                };
                first_id.get_or_insert_with(|| id.clone());
                let canon = format!("spec.steps[{}]", out.len());
                self.cx.origins.push((canon.clone(), path.to_string()));
                let mut steps = Vec::new();
                let slice = Value::Sequence(list[..end].to_vec());
                self.inner(
                    &slice,
                    &format!("{path}.steps"),
                    &canon,
                    start,
                    &mut steps,
                    None,
                )?;
                let block = Step {
                    id,
                    when: when.clone(),
                    ..Default::default()
                };
                out.push(PlaybookStep {
                    step: block,
                    foreach: None,
                    steps: Some(steps),
                });
                parts += 1;
            }
            let Some(j) = loop_at else { break };
            let block = self.lp(
                &list[j],
                &format!("{path}.steps[{j}]"),
                out.len(),
                when.as_deref(),
            )?;
            out.push(block);
            parts += 1;
            loops += 1;
            start = j + 1;
        }
        if loops > 0 {
            self.cx.note(format!(
                "Playbook {}: {path}: group contains a loop and blocks do not nest: split into {parts} blocks, each with the group's when",
                self.playbook
            ));
        }
        Ok(())
    }

    /// A loop: `- foreach: {in, key, value, when, break, steps}` (steps may also sit
    /// beside `foreach`), as a block with `foreach`.
    fn lp(
        &mut self,
        v: &Value,
        path: &str,
        index: usize,
        cond: Option<&str>,
    ) -> Result<PlaybookStep, ConvertError> {
        let canon = format!("spec.steps[{index}]");
        self.cx.origins.push((canon.clone(), path.to_string()));
        let mut o = Obj::new(v, path)?;
        let source_id = o.str("id")?;
        let outer_when = o
            .str("when")?
            .map(|w| self.template(w, &format!("{path}.when")));
        let fe_v = o.get("foreach").unwrap_or(&Value::Null);
        let beside = o.get("steps");
        o.finish(self.cx);
        let fp = format!("{path}.foreach");
        let mut f = Obj::new(fe_v, &fp)?;
        let mut fe = ForEach::default();
        match f.get("in") {
            None => {
                return Err(ConvertError::invalid(
                    format!("{fp}.in"),
                    "missing: a path, {range: [from, to]} or a list",
                ));
            }
            Some(Value::Sequence(items)) => {
                fe.items = Some(
                    items
                        .iter()
                        .map(|i| serde_json::to_value(i).unwrap_or(serde_json::Value::Null))
                        .collect(),
                );
            }
            Some(Value::Mapping(m)) if m.contains_key("range") => {
                let range = m
                    .get("range")
                    .and_then(Value::as_sequence)
                    .filter(|r| r.len() == 2);
                let range: Option<Vec<i64>> =
                    range.and_then(|r| r.iter().map(Value::as_i64).collect());
                let range = range.ok_or_else(|| {
                    ConvertError::invalid(format!("{fp}.in.range"), "must be [from, to] integers")
                })?;
                fe.range = Some(range);
            }
            Some(other) => {
                let p = scalar(other).ok_or_else(|| {
                    ConvertError::invalid(
                        format!("{fp}.in"),
                        "must be a path, {range: [from, to]} or a list",
                    )
                })?;
                fe.path = Some(match refs::rename_path(&p, &self.renames) {
                    Some(new) => {
                        self.cx.note(format!(
                            "Playbook {}: {fp}.in: reads a renamed step id: '{p}' → '{new}'",
                            self.playbook
                        ));
                        new
                    }
                    None => p,
                });
            }
        }
        fe.key = f.str("key")?;
        fe.value = f.str("value")?;
        fe.when = f
            .str("when")?
            .map(|w| self.template(w, &format!("{fp}.when")));
        let break_src = f.str("break")?;
        let inside = f.get("steps");
        f.finish(self.cx);
        let (list, list_path) = match (inside, beside) {
            (Some(l), None) => (l, format!("{fp}.steps")),
            (None, Some(l)) => (l, format!("{path}.steps")),
            (Some(_), Some(_)) => {
                return Err(ConvertError::invalid(
                    path,
                    "steps both inside and beside foreach: keep one list",
                ));
            }
            (None, None) => {
                return Err(ConvertError::invalid(
                    format!("{fp}.steps"),
                    "missing: a loop needs steps",
                ));
            }
        };
        self.loops += 1;
        let id = self.id(source_id, &format!("loop-{}", self.loops), path);
        let mut steps = Vec::new();
        self.inner(list, &list_path, &canon, 0, &mut steps, None)?;
        // `break` is read after each iteration, so it sees the loop's own step ids.
        fe.break_when = break_src.map(|b| self.template(b, &format!("{fp}.break")));
        let when = both(cond, outer_when, path)?;
        Ok(PlaybookStep {
            step: Step {
                id,
                when,
                ..Default::default()
            },
            foreach: Some(fe),
            steps: Some(steps),
        })
    }
}
