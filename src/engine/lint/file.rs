//! Lint of a whole file as written: every YAML document, canonical or StackPulse
//! dialect, with findings pointed at a line (`file:line: error: path: message`).
//!
//! Schema problems (bad YAML, unknown kind, missing or mistyped fields, fields the
//! CRD does not have) are findings like any other. Dialect documents are converted
//! first and the result is linted; the converter's path map leads each finding back
//! to the line the user wrote.

use std::fmt;

use kube::CustomResourceExt;
use serde_yaml::Value;

use super::{Finding, Severity, lint_playbook};
use crate::api::{Execution, Playbook, Runner, Schedule, Trigger};
use crate::engine::convert::{self, is_dns_subdomain};
use crate::engine::template;

/// A finding in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFinding {
    pub file: String,
    /// 1-based line, when it could be found.
    pub line: Option<usize>,
    pub severity: Severity,
    /// The field, in the canonical form (`spec.steps[2].env.X`); empty for the document.
    pub path: String,
    pub message: String,
}

impl fmt::Display for FileFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}: ", self.file, self.severity)?,
            None => write!(f, "{}: {}: ", self.file, self.severity)?,
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Lints every document of `text`; `file` is only used in the findings.
pub fn lint_file(text: &str, file: &str) -> Vec<FileFinding> {
    let mut out = Vec::new();
    for (start, doc) in documents(text) {
        let mut report = |line: Option<usize>, f: Finding| {
            out.push(FileFinding {
                file: file.into(),
                line: line.map(|l| l + start),
                severity: f.severity,
                path: f.path,
                message: f.message,
            });
        };
        let value: Value = match serde_yaml::from_str(doc) {
            Ok(v) => v,
            Err(e) => {
                report(
                    e.location().map(|l| l.line()),
                    err("", &format!("not valid YAML: {}", serde_message(&e))),
                );
                continue;
            }
        };
        if value.is_null() {
            continue;
        }
        let lines = Lines::new(doc);
        let api = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !api.starts_with("stackpulse.io/") {
            // Other resources (Secrets, Namespaces) may share the file; not ours to judge.
            if api.is_empty() || value.get("kind").is_none() {
                report(
                    Some(1),
                    err(
                        "",
                        "not a Kubernetes resource: set apiVersion: stackpulse.io/v1 and kind",
                    ),
                );
            }
            continue;
        }
        if api != "stackpulse.io/v1" {
            report(
                lines.locate("apiVersion"),
                err(
                    "apiVersion",
                    &format!("'{api}' is not served: use stackpulse.io/v1"),
                ),
            );
            continue;
        }
        if convert::is_dialect(&value) {
            match convert::convert_value(&value) {
                Err(e) => {
                    let (line, finding) = match &e {
                        convert::ConvertError::Yaml { line, .. } => {
                            (Some(*line), err("", &e.to_string()))
                        }
                        convert::ConvertError::Invalid { path, message } => {
                            (lines.locate(path), err("", &format!("{path}: {message}")))
                        }
                    };
                    report(line, finding);
                }
                Ok(conv) => {
                    for (resource, origins) in conv.resources.iter().zip(&conv.origins) {
                        for (f, _) in lint_resource(resource, None) {
                            report(lines.locate(&to_source(&f.path, origins)), f);
                        }
                    }
                }
            }
            continue;
        }
        for (f, serde_line) in lint_resource(&value, Some(doc)) {
            report(serde_line.or_else(|| lines.locate(&f.path)), f);
        }
    }
    // In file order (documents already are; findings within one follow its lines).
    out.sort_by_key(|f| f.line);
    out
}

/// serde_yaml's message without its " at line N column M": the finding carries the
/// line, counted from the file rather than the document.
fn serde_message(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn err(path: &str, message: &str) -> Finding {
    Finding {
        severity: Severity::Error,
        path: path.into(),
        message: message.into(),
    }
}

/// The documents of a multi-document stream with the 0-based line each starts on.
fn documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let (mut start_line, mut start_byte, mut at) = (0, 0, 0);
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        if bare == "---" || bare.starts_with("--- ") || bare == "..." {
            docs.push((start_line, &text[start_byte..at]));
            start_line = n + 1;
            start_byte = at + line.len();
        }
        at += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs
}

/// Lints one canonical resource. `source` is its text, when it has one, so schema
/// errors carry serde's line; findings are paired with that line if known.
fn lint_resource(value: &Value, source: Option<&str>) -> Vec<(Finding, Option<usize>)> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let crd = match kind {
        "Playbook" => Playbook::crd(),
        "Trigger" => Trigger::crd(),
        "Runner" => Runner::crd(),
        "Execution" => Execution::crd(),
        "Schedule" => Schedule::crd(),
        other => {
            let what = if other.is_empty() {
                "missing".to_string()
            } else {
                format!("unknown kind '{other}'")
            };
            let msg = format!(
                "{what}: stackpulse.io/v1 serves Playbook, Execution, Trigger, Runner and Schedule"
            );
            return vec![(err("kind", &msg), None)];
        }
    };
    let mut out = Vec::new();
    let schema = serde_json::to_value(&crd).ok();
    let schema = schema
        .as_ref()
        .and_then(|c| c.pointer("/spec/versions/0/schema/openAPIV3Schema"));
    if let Some(schema) = schema {
        unknown_fields(value, schema, "", &mut out);
    }
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str);
    match name {
        None => out.push(err("metadata.name", "missing: every resource needs a name")),
        Some(n) if !is_dns_subdomain(n) => {
            let msg = format!(
                "'{n}' is not a valid Kubernetes name: use lowercase letters, digits, '-' and '.', e.g. '{}'",
                convert::dns_subdomain(n)
            );
            out.push(err("metadata.name", &msg));
        }
        Some(_) => {}
    }
    let mut out: Vec<(Finding, Option<usize>)> = out.into_iter().map(|f| (f, None)).collect();
    // Typed decoding gives the type errors; from the text when there is one, so the
    // error carries a line.
    fn decode<T: serde::de::DeserializeOwned>(
        value: &Value,
        source: Option<&str>,
    ) -> Result<T, (Finding, Option<usize>)> {
        let res = match source {
            Some(text) => serde_yaml::from_str::<T>(text),
            None => serde_yaml::from_value::<T>(value.clone()),
        };
        res.map_err(|e| {
            let msg = format!("does not match the schema: {}", serde_message(&e));
            (err("", &msg), e.location().map(|l| l.line()))
        })
    }
    match kind {
        "Playbook" => match decode::<Playbook>(value, source) {
            Ok(pb) => out.extend(lint_playbook(&pb.spec, None).into_iter().map(|f| (f, None))),
            Err(e) => out.push(e),
        },
        "Trigger" => match decode::<Trigger>(value, source) {
            Ok(t) => {
                let templates = t.spec.when.iter().map(|w| ("spec.when".to_string(), w));
                let params = t
                    .spec
                    .params
                    .iter()
                    .map(|(k, v)| (format!("spec.params.{k}"), v));
                for (path, src) in templates.chain(params) {
                    if let Err(e) = template::references(src) {
                        out.push((err(&path, &format!("template does not parse: {e}")), None));
                    }
                }
            }
            Err(e) => out.push(e),
        },
        "Runner" => out.extend(decode::<Runner>(value, source).err()),
        // What the controller would say in `Ready=False`, before it is applied.
        "Schedule" => match decode::<Schedule>(value, source) {
            Ok(s) => {
                let zone = s.spec.time_zone.as_deref();
                if let Err(e) = crate::engine::schedule::compile(&s.spec.schedule, zone) {
                    let path = if e.starts_with("spec.timeZone") {
                        "spec.timeZone"
                    } else {
                        "spec.schedule"
                    };
                    let message = e
                        .strip_prefix(path)
                        .map_or(e.as_str(), |m| m.trim_start_matches([':', ' ']));
                    out.push((err(path, message), None));
                }
            }
            Err(e) => out.push(e),
        },
        _ => out.extend(decode::<Execution>(value, source).err()),
    }
    out
}

/// Fields the CRD schema does not have: the API server would drop or reject them,
/// and a typo (`continueOnFailure`) would silently do nothing.
fn unknown_fields(value: &Value, schema: &serde_json::Value, path: &str, out: &mut Vec<Finding>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match value {
        Value::Mapping(map) => {
            let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
                return;
            };
            let open = schema.get("x-kubernetes-preserve-unknown-fields").is_some()
                || schema.get("additionalProperties").is_some();
            for (k, v) in map {
                let Some(k) = k.as_str() else { continue };
                // The CRD schema leaves out what every object has.
                if path.is_empty() && matches!(k, "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match props.get(k) {
                    Some(sub) => unknown_fields(v, sub, &join(k), out),
                    None if !open => {
                        let hint = super::suggest(k, props.keys().map(String::as_str));
                        out.push(err(&join(k), &format!("unknown field '{k}'{hint}: the API server drops or rejects it; remove or rename it")));
                    }
                    None => {}
                }
            }
        }
        Value::Sequence(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    unknown_fields(v, sub, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// A canonical path of a converted resource → the path in the dialect source, by the
/// longest origin prefix, with renamed fields put back.
pub(super) fn to_source(path: &str, origins: &[(String, String)]) -> String {
    let best = origins
        .iter()
        .filter(|(canon, _)| {
            path == canon
                || path.starts_with(&format!("{canon}."))
                || path.starts_with(&format!("{canon}["))
        })
        .max_by_key(|(canon, _)| canon.len());
    let Some((canon, source)) = best else {
        return path.to_string();
    };
    let rest = &path[canon.len()..];
    let rest = [
        (".outputParser", ".output_parser"),
        (".continueOnError", ".ignoreFailure"),
        (".image", ".name"),
        (".foreach.path", ".foreach.in"),
        (".foreach.range", ".foreach.in"),
        (".foreach.items", ".foreach.in"),
        (".integrationType", ".options.integration_type"),
    ]
    .iter()
    .fold(rest.to_string(), |r, (from, to)| {
        if r.starts_with(from) {
            r.replacen(from, to, 1)
        } else {
            r
        }
    });
    format!("{source}{rest}")
}

/// Block-style YAML lines, enough to find the line of a path like
/// `spec.steps[2].env.X` without a position-aware parser.
struct Lines<'a> {
    lines: Vec<LineInfo<'a>>,
}

#[derive(Default)]
struct LineInfo<'a> {
    content: bool,
    /// Column of the first dash, or of the text when there is none.
    start: usize,
    dash: Option<usize>,
    /// Column of the key (after any dashes) and the key itself.
    key_col: usize,
    key: Option<&'a str>,
}

impl<'a> Lines<'a> {
    fn new(doc: &'a str) -> Self {
        let lines = doc.lines().map(LineInfo::new).collect();
        Lines { lines }
    }

    /// 1-based line of `path` within the document, or of its deepest ancestor found.
    fn locate(&self, path: &str) -> Option<usize> {
        let mut lo = 0;
        let mut hi = self.lines.len();
        let mut col = self.first_content(lo, hi)?;
        // Nothing found: the document's first line, so every finding has a line.
        let mut best = (lo..hi).find(|&i| self.lines[i].content).map(|i| i + 1);
        for seg in split_path(path) {
            let found = match seg {
                Seg::Key(k) => (lo..hi).find(|&i| {
                    let l = &self.lines[i];
                    l.content && l.key == Some(k) && l.key_col == col
                }),
                Seg::Index(n) => (lo..hi).filter(|&i| self.lines[i].dash == Some(col)).nth(n),
            };
            let Some(i) = found else { break };
            best = Some(i + 1);
            match seg {
                Seg::Key(_) => {
                    // The value: deeper lines, or a sequence written at the key's column.
                    let end = (i + 1..hi)
                        .find(|&j| {
                            let l = &self.lines[j];
                            l.content && (l.start < col || l.start == col && l.dash != Some(col))
                        })
                        .unwrap_or(hi);
                    lo = i + 1;
                    hi = end;
                    match self.first_content(lo, hi) {
                        Some(c) => col = c,
                        None => break,
                    }
                }
                Seg::Index(_) => {
                    let end = (i + 1..hi)
                        .find(|&j| self.lines[j].content && self.lines[j].start <= col)
                        .unwrap_or(hi);
                    col = self.lines[i].key_col;
                    lo = i;
                    hi = end;
                }
            }
        }
        best
    }

    fn first_content(&self, lo: usize, hi: usize) -> Option<usize> {
        (lo..hi)
            .map(|i| &self.lines[i])
            .find(|l| l.content)
            .map(|l| l.start)
    }
}

impl<'a> LineInfo<'a> {
    fn new(line: &'a str) -> Self {
        let trimmed = line.trim_start_matches(' ');
        if trimmed.trim().is_empty() || trimmed.starts_with('#') {
            return LineInfo::default();
        }
        let indent = line.len() - trimmed.len();
        let (mut col, mut rest, mut dash) = (indent, trimmed, None);
        while rest == "-" || rest.starts_with("- ") {
            dash.get_or_insert(col);
            let after = rest[1..].trim_start_matches(' ');
            col += rest.len() - after.len();
            rest = after;
        }
        // The key and the text after it; a key ends at ':' followed by a blank or EOL.
        let (key, after) = match rest.as_bytes().first() {
            Some(q @ (b'"' | b'\'')) => match rest[1..].find(char::from(*q)) {
                Some(e) => (&rest[1..=e], &rest[e + 2..]),
                None => ("", ""),
            },
            _ => match rest.find(':') {
                Some(e) => (&rest[..e], &rest[e..]),
                None => ("", ""),
            },
        };
        let is_key = after.starts_with(':')
            && (after.len() == 1 || after[1..].starts_with([' ', '\t']))
            && !key.is_empty()
            && !key.contains(" #")
            && !key.starts_with(['{', '[']);
        let key = is_key.then_some(key);
        LineInfo {
            content: true,
            start: dash.unwrap_or(indent),
            dash,
            key_col: col,
            key,
        }
    }
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, idx) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        for i in idx
            .split('[')
            .filter_map(|s| s.trim_end_matches(']').parse().ok())
        {
            out.push(Seg::Index(i));
        }
    }
    out
}
