//! Dialect `kind: Trigger` → canonical Triggers, one per scenario.
//!
//! A StackPulse trigger file holds several scenarios, each with its own condition,
//! integration and parameters; a canonical Trigger has one of each, so every scenario
//! becomes its own Trigger (a disabled scenario becomes `enabled: false`, never
//! dropped), and the scenario's name is kept in an annotation.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::names::{dns_label, dns_subdomain};
use super::{Conversion, ConvertError, Cx, Obj, metadata, yaml_text};
use crate::api::{AlertSource, LocalRef, Trigger, TriggerSpec};

/// The scenario's name as written in the source.
pub const SCENARIO_ANNOTATION: &str = "stackpulse.io/scenario";
/// The scenario's `integration` as written in the source (canonical Triggers name
/// alert sources, not integrations, so the exact value is kept here).
pub const INTEGRATION_ANNOTATION: &str = "stackpulse.io/integration";

pub(super) fn convert(doc: &Value) -> Result<Conversion, ConvertError> {
    let mut top_cx = Cx::default();
    let mut top = Obj::new(doc, "")?;
    top.get("apiVersion");
    top.get("kind");
    top.get("metadata");
    let mut description = None;
    let meta = metadata(&mut top_cx, doc, "Trigger", &mut description)?;
    if let Some(d) = description {
        top_cx.keep("metadata.description".into(), &Value::String(d));
    }
    let name = meta.name.clone().unwrap_or_default();
    let enabled = top.bool("enabled")?.unwrap_or(true);
    let source_playbook = top.str("playbook")?.ok_or_else(|| {
        ConvertError::invalid("playbook", "missing: which playbook the trigger starts")
    })?;
    let playbook = dns_subdomain(&source_playbook);
    if playbook != source_playbook {
        top_cx.note(format!("Trigger {name}: playbook '{source_playbook}' → playbookRef '{playbook}' (the Playbook's converted name)"));
    }
    let scenarios: Vec<Value> = match top.get("scenarios") {
        None => Vec::new(),
        Some(Value::Sequence(list)) => list.clone(),
        Some(_) => return Err(ConvertError::invalid("scenarios", "must be a list")),
    };
    top.finish(&mut top_cx);

    let mut out = Conversion {
        notes: std::mem::take(&mut top_cx.notes),
        ..Default::default()
    };
    if scenarios.is_empty() {
        out.notes.push(format!(
            "Trigger {name}: no scenarios, so it matches nothing: written with enabled: false"
        ));
        let spec = TriggerSpec {
            playbook_ref: LocalRef { name: playbook },
            enabled: false,
            ..Default::default()
        };
        push(
            &mut out,
            &mut top_cx.clone_unmapped(),
            meta,
            spec,
            Vec::new(),
        )?;
        return Ok(out);
    }
    let mut used = Vec::new();
    for (i, sc) in scenarios.iter().enumerate() {
        let path = format!("scenarios[{i}]");
        let mut cx = top_cx.clone_unmapped();
        let mut o = Obj::new(sc, &path)?;
        let scenario = o.str("name")?;
        let mut trigger_name = match (&scenario, scenarios.len()) {
            (_, 1) => name.clone(),
            (Some(s), _) if !dns_label(s).is_empty() => {
                dns_subdomain(&format!("{name}-{}", dns_label(s)))
            }
            _ => format!("{name}-{}", i + 1),
        };
        while used.contains(&trigger_name) {
            trigger_name = format!("{trigger_name}-{}", i + 1);
        }
        used.push(trigger_name.clone());
        let mut spec = TriggerSpec {
            playbook_ref: LocalRef {
                name: playbook.clone(),
            },
            ..Default::default()
        };
        let own = o.bool("enabled")?.unwrap_or(true);
        spec.enabled = enabled && own;
        if !spec.enabled {
            let why = if enabled {
                "the scenario is disabled"
            } else {
                "the trigger is disabled"
            };
            cx.note(format!(
                "Trigger {trigger_name}: {why}: written with enabled: false"
            ));
        }
        spec.when = o.str("when")?;
        let mut annotations = BTreeMap::new();
        if let Some(s) = &scenario {
            annotations.insert(SCENARIO_ANNOTATION.to_string(), s.clone());
        }
        if let Some(integration) = o.str("integration")? {
            match source(&integration) {
                Some(src) => spec.sources = vec![src],
                None => cx.note(format!(
                    "Trigger {trigger_name}: integration '{integration}' is not an alert source this operator receives (alertmanager, grafana, pagerduty, generic): the trigger listens to all of them; set spec.sources (kept in annotation {INTEGRATION_ANNOTATION})"
                )),
            }
            annotations.insert(INTEGRATION_ANNOTATION.to_string(), integration);
        }
        match o.get("parameters") {
            None => {}
            Some(Value::Mapping(m)) => {
                spec.params = m
                    .iter()
                    .map(|(k, v)| (yaml_text(k), yaml_text(v)))
                    .collect()
            }
            Some(_) => {
                return Err(ConvertError::invalid(
                    format!("{path}.parameters"),
                    "must be a mapping of name to template",
                ));
            }
        }
        o.finish(&mut cx);
        cx.origins = vec![
            ("spec.when".into(), format!("{path}.when")),
            ("spec.params".into(), format!("{path}.parameters")),
            ("spec".into(), path.clone()),
        ];
        let mut meta = meta.clone();
        meta.name = Some(trigger_name);
        push(
            &mut out,
            &mut cx,
            meta,
            spec,
            annotations.into_iter().collect(),
        )?;
    }
    Ok(out)
}

/// The webhook source a StackPulse integration name stands for, when it names one.
fn source(integration: &str) -> Option<AlertSource> {
    match integration.to_ascii_lowercase().as_str() {
        "alertmanager" => Some(AlertSource::Alertmanager),
        "grafana" => Some(AlertSource::Grafana),
        "pagerduty" => Some(AlertSource::Pagerduty),
        "generic" => Some(AlertSource::Generic),
        _ => None,
    }
}

impl Cx {
    /// A fresh context that carries the document-level keys kept aside, so every
    /// Trigger made from the file holds them.
    fn clone_unmapped(&self) -> Cx {
        Cx {
            unmapped: self.unmapped.clone(),
            ..Default::default()
        }
    }
}

fn push(
    out: &mut Conversion,
    cx: &mut Cx,
    mut meta: kube::api::ObjectMeta,
    spec: TriggerSpec,
    extra: Vec<(String, String)>,
) -> Result<(), ConvertError> {
    let mut annotations = meta.annotations.take().unwrap_or_default();
    annotations.extend(extra);
    cx.annotate(&mut annotations);
    meta.annotations = Some(annotations).filter(|a| !a.is_empty());
    let name = meta.name.clone().unwrap_or_default();
    let mut t = Trigger::new(&name, spec);
    t.metadata = meta;
    let value =
        serde_yaml::to_value(&t).map_err(|e| ConvertError::invalid("(document)", e.to_string()))?;
    out.resources.push(value);
    out.notes.append(&mut cx.notes);
    out.origins.push(std::mem::take(&mut cx.origins));
    Ok(())
}
