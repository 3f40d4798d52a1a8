//! The StackPulse dialect → canonical resources (`playbook-operator convert`).
//!
//! Pure: the CLI reads the files and prints what this returns. Nothing is dropped
//! silently: every dialect field maps to a canonical one, and anything without a
//! place (a key this converter does not know) is kept in the annotation
//! `stackpulse.io/unmapped` and named in a note. Notes are the lines the CLI prints
//! on stderr, one per change a reviewer should know about.

mod names;
pub(crate) mod refs;
mod steps;
mod trigger;

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use crate::api::{Param, ParamType, Playbook, PlaybookSpec};

pub use names::{dns_label, dns_subdomain, is_dns_label, is_dns_subdomain};

/// Annotation holding dialect fields that have no canonical place, as JSON keyed by
/// their path in the source (`{"steps[2].timeout": 30}`).
pub const UNMAPPED_ANNOTATION: &str = "stackpulse.io/unmapped";
/// Annotation holding the source's `metadata.name` when it had to be renamed.
pub const ORIGINAL_NAME_ANNOTATION: &str = "stackpulse.io/original-name";

/// What `convert` made of its input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversion {
    /// Canonical resources, in input order (a Trigger file gives one per scenario).
    pub resources: Vec<Value>,
    /// What changed, one human line each, for stderr.
    pub notes: Vec<String>,
    /// Per resource: (canonical path prefix, source path prefix) pairs, e.g.
    /// (`spec.steps[2]`, `steps[2]`), so lint can point at the line a user wrote.
    pub origins: Vec<Vec<(String, String)>>,
}

/// Why a document could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The text is not YAML.
    #[error("line {line}, column {column}: {message}")]
    Yaml {
        line: usize,
        column: usize,
        message: String,
    },
    /// The YAML is not a playbook or trigger this converter understands.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl ConvertError {
    fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConvertError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The error for a YAML syntax or shape error, with its position when known.
    pub fn from_yaml(e: &serde_yaml::Error) -> Self {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        ConvertError::Yaml {
            line,
            column,
            message: e.to_string(),
        }
    }
}

/// Converts every document of `yaml` (one or more, `---` separated).
pub fn convert(yaml: &str) -> Result<Conversion, ConvertError> {
    let mut all = Conversion::default();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = <Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| ConvertError::from_yaml(&e))?;
        if value.is_null() {
            continue;
        }
        let one = convert_value(&value)?;
        all.resources.extend(one.resources);
        all.notes.extend(one.notes);
        all.origins.extend(one.origins);
    }
    Ok(all)
}

/// The resources as one multi-document YAML stream, as `convert` prints them.
pub fn to_yaml(resources: &[Value]) -> String {
    let mut out = String::new();
    for r in resources {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(r).unwrap_or_default());
    }
    out
}

/// True when `doc` is a StackPulse-dialect Playbook or Trigger (no `spec`).
pub fn is_dialect(doc: &Value) -> bool {
    let kind = doc.get("kind").and_then(Value::as_str);
    matches!(kind, Some("Playbook" | "Trigger")) && doc.get("spec").is_none()
}

/// Converts one parsed document.
pub fn convert_value(doc: &Value) -> Result<Conversion, ConvertError> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    if doc.get("spec").is_some() {
        return Ok(Conversion {
            resources: vec![doc.clone()],
            notes: vec![format!(
                "{kind} {name}: already canonical (has spec): passed through unchanged"
            )],
            origins: vec![Vec::new()],
        });
    }
    match kind {
        "Playbook" => playbook(doc),
        "Trigger" => trigger::convert(doc),
        "" => Err(ConvertError::invalid(
            "kind",
            "missing: expected Playbook or Trigger",
        )),
        other => Err(ConvertError::invalid(
            "kind",
            format!(
                "'{other}' has no spec and is not a StackPulse Playbook or Trigger: nothing to convert"
            ),
        )),
    }
}

/// State shared while converting one document.
#[derive(Default)]
struct Cx {
    notes: Vec<String>,
    /// Source path → value, for keys with no canonical place.
    unmapped: serde_json::Map<String, serde_json::Value>,
    origins: Vec<(String, String)>,
}

impl Cx {
    fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }

    /// Keeps a key the converter has no place for, and says so.
    fn keep(&mut self, path: String, v: &Value) {
        let json =
            serde_json::to_value(v).unwrap_or_else(|_| serde_json::Value::String(yaml_text(v)));
        self.note(format!(
            "{path} has no canonical field: kept in annotation {UNMAPPED_ANNOTATION}"
        ));
        self.unmapped.insert(path, json);
    }

    /// Puts what was kept aside into the resource's annotations.
    fn annotate(&mut self, annotations: &mut BTreeMap<String, String>) {
        if !self.unmapped.is_empty() {
            let json = serde_json::Value::Object(std::mem::take(&mut self.unmapped));
            annotations.insert(UNMAPPED_ANNOTATION.into(), json.to_string());
        }
    }
}

/// A mapping being read: remembers which keys were used so the rest can be kept.
struct Obj<'a> {
    map: &'a Mapping,
    path: String,
    used: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, path: &str) -> Result<Self, ConvertError> {
        match v {
            Value::Mapping(map) => Ok(Obj {
                map,
                path: path.to_string(),
                used: Vec::new(),
            }),
            _ => Err(ConvertError::invalid(
                display_path(path),
                "must be a mapping",
            )),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn sub(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn str(&mut self, key: &'static str) -> Result<Option<String>, ConvertError> {
        let path = self.sub(key);
        self.get(key)
            .map(|v| scalar(v).ok_or_else(|| ConvertError::invalid(path, "must be a string")))
            .transpose()
    }

    fn bool(&mut self, key: &'static str) -> Result<Option<bool>, ConvertError> {
        let path = self.sub(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(_) => Err(ConvertError::invalid(path, "must be true or false")),
        }
    }

    /// Keeps every key not read, so nothing is dropped.
    fn finish(self, cx: &mut Cx) {
        for (k, v) in self.map {
            let key = scalar(k).unwrap_or_else(|| yaml_text(k));
            if !self.used.iter().any(|u| *u == key) {
                cx.keep(self.sub(&key), v);
            }
        }
    }
}

/// A scalar as the string a template or env var would see; `None` for collections.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Tagged(t) => scalar(&t.value),
        Value::Sequence(_) | Value::Mapping(_) => None,
    }
}

/// Any value as one line of text (collections as JSON), for places that take a string.
fn yaml_text(v: &Value) -> String {
    scalar(v).unwrap_or_else(|| serde_json::to_string(v).unwrap_or_default())
}

fn display_path(p: &str) -> String {
    if p.is_empty() {
        "(document)".into()
    } else {
        p.into()
    }
}

/// Copies name, namespace, labels and annotations; the name becomes a DNS subdomain.
fn metadata(
    cx: &mut Cx,
    doc: &Value,
    kind: &str,
    description: &mut Option<String>,
) -> Result<kube::api::ObjectMeta, ConvertError> {
    let meta_v = doc
        .get("metadata")
        .ok_or_else(|| ConvertError::invalid("metadata", "missing"))?;
    let mut meta = Obj::new(meta_v, "metadata")?;
    let original = meta
        .str("name")?
        .ok_or_else(|| ConvertError::invalid("metadata.name", "missing"))?;
    let name = dns_subdomain(&original);
    if name.is_empty() {
        return Err(ConvertError::invalid(
            "metadata.name",
            format!("'{original}' has no letter or digit"),
        ));
    }
    let mut annotations = string_map(&mut meta, "annotations")?;
    if name != original {
        cx.note(format!(
            "{kind} {name}: metadata.name '{original}' is not a valid Kubernetes name: renamed '{name}'"
        ));
        annotations.insert(ORIGINAL_NAME_ANNOTATION.into(), original);
    }
    *description = meta.str("description")?;
    if description.is_some() {
        cx.origins
            .push(("spec.description".into(), "metadata.description".into()));
    }
    let out = kube::api::ObjectMeta {
        name: Some(name),
        namespace: meta.str("namespace")?,
        labels: Some(string_map(&mut meta, "labels")?).filter(|m| !m.is_empty()),
        annotations: Some(annotations).filter(|m| !m.is_empty()),
        ..Default::default()
    };
    meta.finish(cx);
    Ok(out)
}

fn string_map(
    obj: &mut Obj<'_>,
    key: &'static str,
) -> Result<BTreeMap<String, String>, ConvertError> {
    let path = obj.sub(key);
    let Some(v) = obj.get(key) else {
        return Ok(BTreeMap::new());
    };
    let map = v
        .as_mapping()
        .ok_or_else(|| ConvertError::invalid(&path, "must be a mapping"))?;
    Ok(map
        .iter()
        .map(|(k, v)| (yaml_text(k), yaml_text(v)))
        .collect())
}

fn playbook(doc: &Value) -> Result<Conversion, ConvertError> {
    let mut cx = Cx::default();
    let mut top = Obj::new(doc, "")?;
    top.get("apiVersion");
    top.get("kind");
    top.get("metadata");
    let mut description = None;
    let mut meta = metadata(&mut cx, doc, "Playbook", &mut description)?;
    let name = meta.name.clone().unwrap_or_default();
    if let Some(d) = top.str("description")? {
        // Some files put it at the top level; metadata's wins, the other is kept.
        match &description {
            None => description = Some(d),
            Some(_) => cx.keep("description".into(), &Value::String(d)),
        }
    }
    let params = match top.get("parameters") {
        None => Vec::new(),
        Some(Value::Sequence(list)) => list
            .iter()
            .enumerate()
            .map(|(i, p)| param(&mut cx, p, i, &name))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ConvertError::invalid("parameters", "must be a list")),
    };
    let Some(Value::Sequence(list)) = top.get("steps") else {
        return Err(ConvertError::invalid(
            "steps",
            "missing or not a list: a playbook needs steps",
        ));
    };
    let secret_params = params
        .iter()
        .filter(|p: &&Param| p.kind == ParamType::Secret)
        .map(|p| p.name.clone())
        .collect();
    let steps = steps::convert(&mut cx, list, &name, secret_params)?;
    top.finish(&mut cx);
    let mut annotations = meta.annotations.take().unwrap_or_default();
    cx.annotate(&mut annotations);
    meta.annotations = Some(annotations).filter(|a| !a.is_empty());
    let spec = PlaybookSpec {
        description,
        params,
        steps,
        severity: None,
        history_limit: None,
        finally: Vec::new(),
        limits: None,
        notify: None,
    };
    let mut pb = Playbook::new(&name, spec);
    pb.metadata = meta;
    let value = serde_yaml::to_value(&pb)
        .map_err(|e| ConvertError::invalid("(document)", e.to_string()))?;
    Ok(Conversion {
        resources: vec![value],
        notes: cx.notes,
        origins: vec![cx.origins],
    })
}

fn param(cx: &mut Cx, v: &Value, i: usize, playbook: &str) -> Result<Param, ConvertError> {
    let path = format!("parameters[{i}]");
    cx.origins.push((format!("spec.params[{i}]"), path.clone()));
    let mut o = Obj::new(v, &path)?;
    let name = o
        .str("name")?
        .ok_or_else(|| ConvertError::invalid(format!("{path}.name"), "missing"))?;
    let kind = match o.str("type")?.map(|t| t.to_ascii_lowercase()).as_deref() {
        None | Some("var") => ParamType::Var,
        Some("secret") => ParamType::Secret,
        Some("integration") => ParamType::Integration,
        Some("spd") => {
            cx.note(format!(
                "Playbook {playbook}: parameter {name}: type spd → runner (it names a Runner)"
            ));
            ParamType::Runner
        }
        Some(other) => {
            cx.keep(format!("{path}.type"), &Value::String(other.into()));
            ParamType::Var
        }
    };
    let mut description = o.str("description")?;
    if let Some(d) = o.str("Description")? {
        match description {
            None => description = Some(d),
            Some(_) => cx.keep(format!("{path}.Description"), &Value::String(d)),
        }
    }
    let required = match (o.bool("required")?, o.bool("optional")?) {
        (Some(r), Some(opt)) if r == opt => {
            cx.note(format!(
                "Playbook {playbook}: parameter {name}: required: {r} and optional: {opt} disagree; kept required: {r}"
            ));
            r
        }
        (Some(r), _) => r,
        (None, Some(opt)) => !opt,
        (None, None) => false,
    };
    let default = o.get("default").map(yaml_text);
    let example = o.get("example").map(yaml_text);
    let mut integration_type = None;
    if let Some(opts) = o.get("options") {
        let mut opts = Obj::new(opts, &o.sub("options"))?;
        integration_type = opts.str("integration_type")?;
        opts.finish(cx);
    }
    o.finish(cx);
    Ok(Param {
        name,
        kind,
        description,
        default,
        required,
        example,
        integration_type,
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_secrets;
