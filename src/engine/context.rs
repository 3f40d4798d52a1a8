//! The template context: what `.` (and `$`) holds when a step's templates render.
//!
//! Pipeline: the planner (`engine::plan`) calls [`resolve_params`] when a run starts
//! and [`build`] each time a step becomes ready, a `when`/`break` is evaluated or a
//! Job is (re)built; `engine::template` renders against the result. The shape is
//! DESIGN §2 plus the StackPulse names (`.event`, `.metadata`, `$.'step-id'`), so
//! converted playbooks read their data where they always did.
//!
//! Also here: [`InstanceId`], the grammar of `status.steps[].id` (`step`, `step[2]`,
//! `block.step`, `block[2].step`), because it is how templates name a step's data.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Map, Value, json};

use crate::api::{ExecutionPhase, Param, StepState, StepStatus};
use crate::engine::template::{self, TemplateError};

/// Keys of the context that step outputs and params can never shadow: a step that
/// prints `{"alert": ...}` must not change what later templates see as the alert.
pub const RESERVED: &[&str] = &[
    "params",
    "steps",
    "alert",
    "event",
    "execution",
    "metadata",
    "playbook",
];

/// What templates may know about the Execution itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecutionMeta {
    /// The Execution's `metadata.uid` (`.execution.id`, `.metadata.executionId`).
    pub uid: String,
    pub name: String,
    pub namespace: String,
    /// Link to the run in a UI, when one is configured.
    pub url: Option<String>,
    pub started_at: Option<Time>,
    pub phase: ExecutionPhase,
    /// For `finally` steps: the main step that failed the run (`.execution.failedStep`).
    pub failed_step: Option<String>,
    /// Name of the Playbook the Execution runs (`.playbook.name`).
    pub playbook: String,
}

/// The identity of one entry of `status.steps`: a step, optionally inside a block,
/// optionally one item of a `foreach`.
///
/// Written `step`, `step[INDEX]` (a looped step), `block.step` or
/// `block[INDEX].step` (a step of a looped block). Step and block ids are DNS labels,
/// so `.` and `[` cannot occur inside them and the form parses back unambiguously.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId {
    /// The block entry holding the step, if any.
    pub block: Option<String>,
    /// The foreach item, for a looped step or a step of a looped block.
    pub index: Option<u32>,
    /// The step's own id (what templates and approvals name it by).
    pub step: String,
}

impl InstanceId {
    pub fn top(step: &str, index: Option<u32>) -> Self {
        Self {
            block: None,
            index,
            step: step.to_string(),
        }
    }

    pub fn in_block(block: &str, index: Option<u32>, step: &str) -> Self {
        Self {
            block: Some(block.to_string()),
            index,
            step: step.to_string(),
        }
    }

    /// Parses a `status.steps[].id`; `None` for text this module did not write.
    pub fn parse(id: &str) -> Option<Self> {
        fn split_index(s: &str) -> Option<(&str, Option<u32>)> {
            match s.strip_suffix(']') {
                None => Some((s, None)),
                Some(rest) => {
                    let (name, n) = rest.split_once('[')?;
                    Some((name, Some(n.parse().ok()?)))
                }
            }
        }
        let valid = |s: &str| !s.is_empty() && !s.contains(['.', '[', ']']);
        match id.split_once('.') {
            Some((block, step)) => {
                let (block, index) = split_index(block)?;
                (valid(block) && valid(step)).then(|| Self::in_block(block, index, step))
            }
            None => {
                let (step, index) = split_index(id)?;
                valid(step).then(|| Self::top(step, index))
            }
        }
    }

    /// The id of the playbook entry (`spec.steps[]`) this instance belongs to.
    pub fn entry(&self) -> &str {
        self.block.as_deref().unwrap_or(&self.step)
    }

    /// The step's place in the playbook without the item: `step` or `block.step`.
    pub fn path(&self) -> String {
        match &self.block {
            Some(b) => format!("{b}.{}", self.step),
            None => self.step.clone(),
        }
    }

    /// Whether an approval naming `name` approves this instance: it names the
    /// instance (`restart[2]`), its path (`blk.restart`) or the step id (`restart`,
    /// which approves every item of a loop). The planner and `playbook-operator
    /// approve` both ask this, so they agree on what an approval covers.
    pub fn approved_by(&self, name: &str) -> bool {
        name == self.step || name == self.path() || name == self.to_string()
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let index = |f: &mut fmt::Formatter<'_>| match self.index {
            Some(i) => write!(f, "[{i}]"),
            None => Ok(()),
        };
        match &self.block {
            Some(b) => {
                f.write_str(b)?;
                index(f)?;
                write!(f, ".{}", self.step)
            }
            None => {
                f.write_str(&self.step)?;
                index(f)
            }
        }
    }
}

/// Builds the context for the templates of a run.
///
/// From lowest to highest precedence at the root: params; each final step's outputs
/// in `steps` order (StackPulse: last writer wins, so `.output` is the latest step
/// that printed an `output` field); each step's outputs under its id (`$.'redis-info'`);
/// then the reserved keys. `.steps.<id>` holds `{outputs, exitCode, state}`; for a
/// looped step that is its last item that produced outputs, which is what StackPulse
/// shows for a loop step referenced from outside.
pub fn build(
    meta: &ExecutionMeta,
    params: &Map<String, Value>,
    alert: Option<&Value>,
    steps: &[StepStatus],
) -> Value {
    let mut root = params.clone();
    let mut by_step: Map<String, Value> = Map::new();
    for status in steps {
        let Some(iid) = InstanceId::parse(&status.id) else {
            continue;
        };
        if status.state.is_final()
            && let Some(Value::Object(outputs)) = &status.outputs
        {
            for (k, v) in outputs {
                root.insert(k.clone(), v.clone());
            }
        }
        // A later item replaces an earlier one, unless it has nothing to show and
        // the earlier one did (an item skipped by `when` must not hide the last output).
        let keep_earlier = status.outputs.is_none()
            && by_step
                .get(&iid.step)
                .is_some_and(|prev| prev.get("outputs").is_some_and(|o| !o.is_null()));
        if !keep_earlier {
            by_step.insert(
                iid.step.clone(),
                json!({
                    "outputs": status.outputs.clone().unwrap_or(Value::Null),
                    "exitCode": status.exit_code,
                    "state": state_name(status.state),
                }),
            );
        }
    }
    for (id, entry) in &by_step {
        if let Some(outputs) = entry.get("outputs").filter(|o| !o.is_null()) {
            root.insert(id.clone(), outputs.clone());
        }
    }
    let alert = alert.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let url = meta.url.clone().map(Value::String).unwrap_or(Value::Null);
    let started_at = meta
        .started_at
        .as_ref()
        .map(|t| Value::String(t.0.to_string()))
        .unwrap_or(Value::Null);
    root.insert("params".into(), Value::Object(params.clone()));
    root.insert("steps".into(), Value::Object(by_step));
    root.insert("event".into(), alert.clone());
    root.insert("alert".into(), alert);
    root.insert(
        "execution".into(),
        json!({
            "id": meta.uid,
            "name": meta.name,
            "namespace": meta.namespace,
            "url": url,
            "startedAt": started_at,
            "phase": phase_name(meta.phase),
            "failedStep": meta.failed_step,
        }),
    );
    root.insert(
        "metadata".into(),
        json!({"executionId": meta.uid, "executionName": meta.name, "executionUrl": url}),
    );
    root.insert("playbook".into(), json!({"name": meta.playbook}));
    debug_assert!(RESERVED.iter().all(|k| root.contains_key(*k)));
    Value::Object(root)
}

/// Adds a foreach item's variables (`.key`/`.value` or the names the loop chose) at
/// the root. They win over everything, like Go's `range` rebinding.
pub fn with_item(ctx: &mut Value, key_name: &str, key: Value, value_name: &str, value: Value) {
    if let Value::Object(root) = ctx {
        root.insert(key_name.to_string(), key);
        root.insert(value_name.to_string(), value);
    }
}

/// Why the params of a run could not be resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamsError {
    #[error("spec.params must be an object of NAME: value, not {0}")]
    NotAnObject(&'static str),
    #[error("{}", missing_message(.0))]
    Missing(Vec<String>),
    #[error("param '{param}': default: {error}")]
    Default { param: String, error: TemplateError },
}

impl ParamsError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotAnObject(_) => "params_not_object",
            Self::Missing(_) => "param_missing",
            Self::Default { .. } => "param_default",
        }
    }
}

fn missing_message(names: &[String]) -> String {
    match names {
        [one] => {
            format!("required param '{one}' is missing: set spec.params.{one} (it has no default)")
        }
        many => format!(
            "required params {} are missing: set them in spec.params (they have no default)",
            many.iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The params a run's templates see: the Execution's `spec.params`, plus each
/// declared param's default where none was given.
///
/// Defaults are templates over `.alert`, `.event`, `.execution`, `.metadata` and the
/// given `.params`; they are rendered each time the planner runs, so a default should
/// not depend on the clock. Params given but not declared are kept (StackPulse
/// triggers pass extra ones). Every missing required param is named in one error.
pub fn resolve_params(
    declared: &[Param],
    given: Option<&Value>,
    meta: &ExecutionMeta,
    alert: Option<&Value>,
) -> Result<Map<String, Value>, ParamsError> {
    let mut params = match given {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => return Err(ParamsError::NotAnObject(json_type(other))),
    };
    let ctx = build(meta, &params, alert, &[]);
    let mut missing = Vec::new();
    for p in declared {
        if params.get(&p.name).is_some_and(|v| !v.is_null()) {
            continue;
        }
        match &p.default {
            Some(default) => {
                let text =
                    template::render(default, &ctx).map_err(|error| ParamsError::Default {
                        param: p.name.clone(),
                        error,
                    })?;
                params.insert(p.name.clone(), Value::String(text));
            }
            None if p.required => missing.push(p.name.clone()),
            None => {}
        }
    }
    if missing.is_empty() {
        Ok(params)
    } else {
        Err(ParamsError::Missing(missing))
    }
}

/// The JSON type of a value, for messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// The API spelling of a step state (`Succeeded`), as templates compare it.
pub fn state_name(state: StepState) -> &'static str {
    match state {
        StepState::Pending => "Pending",
        StepState::Running => "Running",
        StepState::Retrying => "Retrying",
        StepState::WaitingApproval => "WaitingApproval",
        StepState::Succeeded => "Succeeded",
        StepState::Failed => "Failed",
        StepState::Skipped => "Skipped",
        StepState::Cancelled => "Cancelled",
    }
}

/// The API spelling of an Execution phase (`WaitingApproval`).
pub fn phase_name(phase: ExecutionPhase) -> &'static str {
    match phase {
        ExecutionPhase::Pending => "Pending",
        ExecutionPhase::Running => "Running",
        ExecutionPhase::WaitingApproval => "WaitingApproval",
        ExecutionPhase::Succeeded => "Succeeded",
        ExecutionPhase::Failed => "Failed",
        ExecutionPhase::Cancelled => "Cancelled",
        ExecutionPhase::DryRun => "DryRun",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn meta() -> ExecutionMeta {
        ExecutionMeta {
            uid: "u-1".into(),
            name: "redis-x1".into(),
            namespace: "prod".into(),
            url: None,
            started_at: None,
            phase: ExecutionPhase::Running,
            failed_step: None,
            playbook: "redis".into(),
        }
    }

    fn done(id: &str, outputs: Value) -> StepStatus {
        StepStatus {
            id: id.into(),
            state: StepState::Succeeded,
            exit_code: Some(0),
            outputs: Some(outputs),
            ..Default::default()
        }
    }

    #[test]
    fn instance_ids_round_trip() {
        for id in ["a", "a[3]", "blk.a", "blk[0].a", "get-redis-info[12]"] {
            let parsed = InstanceId::parse(id).expect(id);
            assert_eq!(parsed.to_string(), id);
        }
        assert_eq!(
            InstanceId::parse("blk[2].s").map(|i| (i.entry().to_string(), i.path())),
            Some(("blk".into(), "blk.s".into()))
        );
        for bad in ["", "a[x]", "a.b.c", "[1]", "a[1", ".a"] {
            assert_eq!(InstanceId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_approval_covers_the_instance_its_path_or_every_item_of_the_step() {
        let item = InstanceId::in_block("blk", Some(2), "restart");
        for name in ["blk[2].restart", "blk.restart", "restart"] {
            assert!(item.approved_by(name), "{name}");
        }
        for name in ["blk[1].restart", "blk", "other.restart", "restart[2]", ""] {
            assert!(!item.approved_by(name), "{name}");
        }
        let top = InstanceId::top("restart", None);
        assert!(top.approved_by("restart"));
        assert!(!top.approved_by("restart[0]"));
    }

    #[test]
    fn outputs_merge_at_root_in_step_order_and_under_steps() {
        let params = json!({"Namespace": "prod", "x": "param"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let steps = vec![
            done(
                "a",
                json!({"x": "from-a", "Clients": {"connected_clients": 3}}),
            ),
            done("b", json!({"x": "from-b", "output": "text"})),
            StepStatus {
                id: "c".into(),
                state: StepState::Running,
                ..Default::default()
            },
        ];
        let alert = json!({"labels": {"instance": "redis:6379"}});
        let ctx = build(&meta(), &params, Some(&alert), &steps);
        assert_eq!(ctx["x"], "from-b", "last writer wins");
        assert_eq!(ctx["Namespace"], "prod");
        assert_eq!(ctx["params"]["x"], "param");
        assert_eq!(ctx["Clients"]["connected_clients"], 3);
        assert_eq!(ctx["output"], "text");
        assert_eq!(
            ctx["a"]["x"], "from-a",
            "outputs under the step id, for $.'a'"
        );
        assert_eq!(
            ctx["steps"]["a"],
            json!({"outputs": {"x": "from-a", "Clients": {"connected_clients": 3}}, "exitCode": 0, "state": "Succeeded"})
        );
        assert_eq!(ctx["steps"]["c"]["state"], "Running");
        assert_eq!(ctx["alert"], ctx["event"]);
        assert_eq!(ctx["execution"]["id"], "u-1");
        assert_eq!(ctx["metadata"]["executionId"], "u-1");
        assert_eq!(ctx["playbook"]["name"], "redis");
    }

    #[test]
    fn a_step_output_cannot_shadow_reserved_keys() {
        let steps = vec![done(
            "a",
            json!({"alert": "forged", "params": {}, "execution": 1}),
        )];
        let alert = json!({"status": "firing"});
        let ctx = build(&meta(), &Map::new(), Some(&alert), &steps);
        assert_eq!(ctx["alert"]["status"], "firing");
        assert_eq!(ctx["execution"]["name"], "redis-x1");
    }

    #[test]
    fn a_loop_step_shows_its_last_item_with_output() {
        let steps = vec![
            done("n[0]", json!({"i": 0})),
            done("n[1]", json!({"i": 1})),
            StepStatus {
                id: "n[2]".into(),
                state: StepState::Skipped,
                ..Default::default()
            },
        ];
        let ctx = build(&meta(), &Map::new(), None, &steps);
        assert_eq!(ctx["steps"]["n"]["outputs"]["i"], 1);
        assert_eq!(ctx["i"], 1);
    }

    #[test]
    fn params_resolve_given_default_and_required() {
        let declared = vec![
            Param {
                name: "Namespace".into(),
                default: Some("prod".into()),
                ..Default::default()
            },
            Param {
                name: "Port".into(),
                required: true,
                ..Default::default()
            },
            Param {
                name: "Optional".into(),
                ..Default::default()
            },
        ];
        let given = json!({"Port": 6379, "extra": true});
        let params = resolve_params(&declared, Some(&given), &meta(), None).expect("resolves");
        assert_eq!(
            Value::Object(params),
            json!({"Namespace": "prod", "Port": 6379, "extra": true})
        );

        let err = resolve_params(&declared, None, &meta(), None).expect_err("Port is required");
        assert_eq!(
            err.to_string(),
            "required param 'Port' is missing: set spec.params.Port (it has no default)"
        );
        let two = [
            declared[1].clone(),
            Param {
                name: "Host".into(),
                required: true,
                ..Default::default()
            },
        ];
        let err = resolve_params(&two, Some(&json!({"Port": null})), &meta(), None)
            .expect_err("both missing");
        assert!(err.to_string().contains("'Port', 'Host'"), "{err}");
        assert_eq!(
            resolve_params(&declared, Some(&json!([1])), &meta(), None).map_err(|e| e.kind()),
            Err("params_not_object")
        );
    }

    /// Needs the real template engine (defaults are templates over the alert).
    #[test]
    fn param_defaults_render_over_the_alert() {
        let declared = vec![Param {
            name: "Host".into(),
            default: Some("{{ .alert.labels.instance }}".into()),
            ..Default::default()
        }];
        let alert = json!({"labels": {"instance": "redis-0"}});
        let params = resolve_params(&declared, None, &meta(), Some(&alert)).expect("resolves");
        assert_eq!(params["Host"], "redis-0");
    }
}
