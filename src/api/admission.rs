//! The admission policies behind the four-eyes rule: who asked for a run and who
//! approved a step come from the API server's authenticated user, never from what a
//! client writes.
//!
//! The planner starts a step with `approval.required` only once `spec.approvals` holds
//! enough entries for it whose `user` is not `spec.requestedBy` and is allowed by
//! `approval.approvers` (by name or by `groups`). Those rules are only as good as
//! these fields, so the API server guards them with CEL policies on
//! `request.userInfo`:
//!
//! - a MutatingAdmissionPolicy fills in `spec.requestedBy` on create when it is
//!   missing, so `kubectl apply` of an Execution without it just works (GA, and so on
//!   by default, since Kubernetes 1.36);
//! - a second one fills in `groups` of each new approval that leaves it out;
//! - a ValidatingAdmissionPolicy rejects a create whose `requestedBy` is someone
//!   else, any change of `requestedBy`, `params` or `alert`, any removal or edit of
//!   an approval, any new approval in someone else's name or with groups other
//!   than the writer's, and an approval by the requester (a rejection passes).
//!
//! Both match the `executions` resource only, not `executions/status`, so the
//! controller's status writes are never checked. Updates that leave `spec` alone
//! (labels, finalizers) pass every rule. `requestedByGroups` is stamped with
//! `requestedBy` and checked the same way: the Runner `use` check asks with them.
//!
//! One writer may name someone else as the requester: whoever may `delegate`
//! executions in the namespace (a custom verb; the chart grants it to the operator
//! only), and only for an Execution with a `triggerRef` or `scheduleRef`. The
//! operator then copies the Trigger's or Schedule's `requestedBy`, which the
//! [`trigger`] policies stamp with its last writer: an alert's or a tick's run acts
//! for whoever wrote the Trigger or Schedule, who cannot approve it.
//!
//! `crds/admission-policies.yaml` is [`policies`] as YAML (`playbook-operator crd`).

use k8s_openapi::api::admissionregistration::v1::{
    JSONPatch, MatchCondition, MatchResources, MutatingAdmissionPolicy,
    MutatingAdmissionPolicyBinding, MutatingAdmissionPolicyBindingSpec,
    MutatingAdmissionPolicySpec, Mutation, NamedRuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
    ValidatingAdmissionPolicySpec, Validation, Variable,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::GROUP;

mod trigger;
pub use trigger::{TRIGGER_VALIDATING_POLICY, TRIGGER_WRITER_POLICY};

/// The verb that lets a writer create an Execution requested by someone else (for
/// runs from a Trigger: the operator).
pub const DELEGATE_VERB: &str = "delegate";

/// Name of the ValidatingAdmissionPolicy and of its binding.
pub const VALIDATING_POLICY: &str = "executions.stackpulse.io-four-eyes";
/// Name of the MutatingAdmissionPolicy and of its binding.
pub const MUTATING_POLICY: &str = "executions.stackpulse.io-requested-by";
/// Name of the MutatingAdmissionPolicy that stamps approvers' groups, and of its binding.
pub const GROUPS_POLICY: &str = "executions.stackpulse.io-approver-groups";

/// The objects of `crds/admission-policies.yaml`.
#[derive(Clone, Debug, PartialEq)]
pub struct Policies {
    pub mutating: MutatingAdmissionPolicy,
    pub mutating_binding: MutatingAdmissionPolicyBinding,
    pub groups: MutatingAdmissionPolicy,
    pub groups_binding: MutatingAdmissionPolicyBinding,
    pub validating: ValidatingAdmissionPolicy,
    pub validating_binding: ValidatingAdmissionPolicyBinding,
    pub trigger_writer: MutatingAdmissionPolicy,
    pub trigger_writer_binding: MutatingAdmissionPolicyBinding,
    pub trigger_validating: ValidatingAdmissionPolicy,
    pub trigger_validating_binding: ValidatingAdmissionPolicyBinding,
}

/// The policies and their bindings (every namespace).
pub fn policies() -> Policies {
    Policies {
        mutating: mutating_policy(),
        mutating_binding: mutating_binding(MUTATING_POLICY),
        groups: groups_policy(),
        groups_binding: mutating_binding(GROUPS_POLICY),
        validating: validating_policy(),
        validating_binding: validating_binding(VALIDATING_POLICY),
        trigger_writer: trigger::writer_policy(),
        trigger_writer_binding: mutating_binding(TRIGGER_WRITER_POLICY),
        trigger_validating: trigger::validating_policy(),
        trigger_validating_binding: validating_binding(TRIGGER_VALIDATING_POLICY),
    }
}

fn validating_binding(policy: &str) -> ValidatingAdmissionPolicyBinding {
    ValidatingAdmissionPolicyBinding {
        metadata: meta(policy),
        spec: ValidatingAdmissionPolicyBindingSpec {
            policy_name: policy.into(),
            validation_actions: vec!["Deny".into()],
            ..Default::default()
        },
    }
}

fn mutating_binding(policy: &str) -> MutatingAdmissionPolicyBinding {
    MutatingAdmissionPolicyBinding {
        metadata: meta(policy),
        spec: Some(MutatingAdmissionPolicyBindingSpec {
            policy_name: Some(policy.into()),
            ..Default::default()
        }),
    }
}

/// Sets `spec.requestedBy` and `spec.requestedByGroups` to the writer's own name and
/// groups. A JSON patch: an ApplyConfiguration may not replace an atomic list.
fn stamp_writer() -> Mutation {
    Mutation {
        patch_type: "JSONPatch".into(),
        json_patch: Some(JSONPatch {
            expression: Some(
                "[JSONPatch{op: 'add', path: '/spec/requestedBy', value: request.userInfo.username}, \
                 JSONPatch{op: 'add', path: '/spec/requestedByGroups', value: request.userInfo.groups}]"
                    .into(),
            ),
        }),
        ..Default::default()
    }
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

/// `executions` (not its subresources) for these operations.
fn executions(operations: &[&str]) -> MatchResources {
    resource("executions", operations)
}

/// A resource of ours (not its subresources) for these operations.
fn resource(name: &str, operations: &[&str]) -> MatchResources {
    MatchResources {
        resource_rules: Some(vec![NamedRuleWithOperations {
            api_groups: Some(vec![GROUP.into()]),
            api_versions: Some(vec!["v1".into()]),
            operations: Some(operations.iter().map(|o| o.to_string()).collect()),
            resources: Some(vec![name.into()]),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn mutating_policy() -> MutatingAdmissionPolicy {
    MutatingAdmissionPolicy {
        metadata: meta(MUTATING_POLICY),
        spec: Some(MutatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            reinvocation_policy: Some("Never".into()),
            match_constraints: Some(executions(&["CREATE"])),
            // Only fills a gap: a requestedBy naming someone else is left for the
            // validating policy to reject with a message, not silently rewritten. The
            // groups go with it, also when the writer named themself (as `start` does).
            match_conditions: Some(vec![MatchCondition {
                name: "requested-by-unset".into(),
                expression: "object.spec.?requestedBy.orValue('') == '' || \
                    (object.spec.requestedBy == request.userInfo.username && \
                    size(object.spec.?requestedByGroups.orValue([])) == 0)"
                    .into(),
            }]),
            mutations: Some(vec![stamp_writer()]),
            ..Default::default()
        }),
    }
}

/// Fills in `groups` of each new approval that leaves it out with the writer's
/// groups, so `approvers.groups` can be checked against what the API server
/// authenticated. New entries are the ones past the old list's end: the validating
/// policy refuses any other change to the list. A `groups` the writer did set is
/// left for the validating policy to judge (a forged one is refused, not rewritten).
fn groups_policy() -> MutatingAdmissionPolicy {
    MutatingAdmissionPolicy {
        metadata: meta(GROUPS_POLICY),
        spec: Some(MutatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            reinvocation_policy: Some("Never".into()),
            match_constraints: Some(executions(&["CREATE", "UPDATE"])),
            variables: Some(vec![Variable {
                name: "old".into(),
                expression:
                    "request.operation == 'UPDATE' ? size(oldObject.spec.?approvals.orValue([])) : 0"
                        .into(),
            }]),
            mutations: Some(vec![Mutation {
                patch_type: "JSONPatch".into(),
                json_patch: Some(JSONPatch {
                    expression: Some(
                        "object.spec.?approvals.orValue([]).transformList(i, a, \
                         i >= variables.old && !has(a.groups), \
                         JSONPatch{op: 'add', path: '/spec/approvals/' + string(i) + '/groups', \
                         value: request.userInfo.groups})"
                            .into(),
                    ),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn validating_policy() -> ValidatingAdmissionPolicy {
    let variable = |name: &str, expression: &str| Variable {
        name: name.into(),
        expression: expression.into(),
    };
    let rule = |expression: &str, message_expression: &str| Validation {
        expression: expression.into(),
        message_expression: Some(message_expression.into()),
        reason: Some("Forbidden".into()),
        ..Default::default()
    };
    ValidatingAdmissionPolicy {
        metadata: meta(VALIDATING_POLICY),
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(executions(&["CREATE", "UPDATE"])),
            variables: Some(vec![
                variable("user", "request.userInfo.username"),
                // Runs from a Trigger or Schedule act for its writer: only a writer
                // allowed to `delegate` (the operator) may name someone else.
                variable(
                    "delegated",
                    "(object.spec.?triggerRef.hasValue() || object.spec.?scheduleRef.hasValue()) && authorizer.group('stackpulse.io')\
                     .resource('executions').namespace(request.namespace).check('delegate').allowed()",
                ),
                variable("groups", "object.spec.?requestedByGroups.orValue([])"),
                variable("approvals", "object.spec.?approvals.orValue([])"),
                // On create every approval is new, so the approvals rules below cover
                // an Execution created with someone else's approval in it too.
                variable(
                    "oldApprovals",
                    "request.operation == 'UPDATE' ? oldObject.spec.?approvals.orValue([]) : []",
                ),
                // Entries are compared whole: an edited entry counts as removed plus
                // added. At most 100 x 100 comparisons (the CRD's maxItems).
                variable(
                    "added",
                    "variables.approvals.filter(a, !(a in variables.oldApprovals))",
                ),
                variable(
                    "removed",
                    "variables.oldApprovals.filter(a, !(a in variables.approvals))",
                ),
                variable(
                    "forged",
                    "variables.added.filter(a, a.user != variables.user)",
                ),
                // Compared as sets: the mutating policy stamped the writer's groups on
                // entries without any; an entry with other groups was forged.
                // The requester's approval never counts (the planner ignores it too):
                // refused here, so kubectl, the CLI and the page all hear why.
                variable(
                    "selfApproved",
                    "variables.added.filter(a, a.?decision.orValue('approve') == 'approve' && a.user == object.spec.?requestedBy.orValue(''))",
                ),
                variable(
                    "forgedGroups",
                    "variables.added.filter(a, !sets.equivalent(a.?groups.orValue([]), request.userInfo.groups))",
                ),
            ]),
            validations: Some(vec![
                rule(
                    "request.operation != 'CREATE' || object.spec.?requestedBy.orValue('') == variables.user || variables.delegated",
                    r#""spec.requestedBy must be your user name: set it to '" + variables.user + "' (playbook-operator start does this)""#,
                ),
                // Empty groups ask the Runner check with the user alone: never more.
                rule(
                    "request.operation != 'CREATE' || variables.delegated || size(variables.groups) == 0 || sets.equivalent(variables.groups, request.userInfo.groups)",
                    r#""spec.requestedByGroups must be your groups [" + request.userInfo.groups.join(', ') + "]: leave it out and the API server fills it in""#,
                ),
                rule(
                    "request.operation != 'UPDATE' || object.spec.?requestedBy.orValue('') == oldObject.spec.?requestedBy.orValue('')",
                    r#""spec.requestedBy cannot change: leave it '" + oldObject.spec.?requestedBy.orValue('') + "' (to run as someone else, they create a new Execution)""#,
                ),
                // The CRD's CEL rules refuse these too, but CEL sees a free-form object
                // through its schema and compares only the keys both sides have, so a
                // renamed key would pass there; here the objects are plain JSON.
                rule(
                    "request.operation != 'UPDATE' || object.spec.?params == oldObject.spec.?params",
                    r#""spec.params cannot be set, changed or removed after create: create a new Execution""#,
                ),
                rule(
                    "request.operation != 'UPDATE' || object.spec.?alert == oldObject.spec.?alert",
                    r#""spec.alert cannot be set, changed or removed after create: create a new Execution""#,
                ),
                rule(
                    "request.operation != 'UPDATE' || variables.groups == oldObject.spec.?requestedByGroups.orValue([])",
                    r#""spec.requestedByGroups cannot change: leave it as it was""#,
                ),
                rule(
                    "size(variables.removed) == 0",
                    r#""spec.approvals can only be appended to: the approval of step '" + variables.removed[0].step + "' by '" + variables.removed[0].user + "' was removed or changed; put it back as it was""#,
                ),
                rule(
                    "size(variables.forged) == 0",
                    r#""spec.approvals: a new approval must have user '" + variables.user + "' (you), but the one for step '" + variables.forged[0].step + "' has user '" + variables.forged[0].user + "' (playbook-operator approve writes it for you)""#,
                ),
                rule(
                    "size(variables.selfApproved) == 0",
                    r#""spec.approvals: you ('" + variables.user + "') requested this Execution, so you cannot approve its step '" + variables.selfApproved[0].step + "' (four eyes): ask someone else to approve it; you may still reject it""#,
                ),
                rule(
                    "size(variables.forgedGroups) == 0",
                    r#""spec.approvals: a new approval's groups must be your groups [" + request.userInfo.groups.join(', ') + "], but the one for step '" + variables.forgedGroups[0].step + "' has [" + variables.forgedGroups[0].?groups.orValue([]).join(', ') + "]: leave groups out and the API server fills them in""#,
                ),
            ]),
            ..Default::default()
        }),
        status: None,
    }
}

impl Policies {
    /// The objects as one multi-document YAML file, mutating policies first (they
    /// must be in place before the validating ones demand what they fill in).
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        Ok([
            serde_yaml::to_string(&self.mutating)?,
            serde_yaml::to_string(&self.mutating_binding)?,
            serde_yaml::to_string(&self.groups)?,
            serde_yaml::to_string(&self.groups_binding)?,
            serde_yaml::to_string(&self.trigger_writer)?,
            serde_yaml::to_string(&self.trigger_writer_binding)?,
            serde_yaml::to_string(&self.validating)?,
            serde_yaml::to_string(&self.validating_binding)?,
            serde_yaml::to_string(&self.trigger_validating)?,
            serde_yaml::to_string(&self.trigger_validating_binding)?,
        ]
        .join("---\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_match_executions_but_not_their_status() {
        let p = policies();
        let rules = |m: &Option<MatchResources>| {
            m.as_ref()
                .and_then(|m| m.resource_rules.clone())
                .unwrap_or_default()
        };
        let v = rules(
            &p.validating
                .spec
                .as_ref()
                .and_then(|s| s.match_constraints.clone()),
        );
        let m = rules(
            &p.mutating
                .spec
                .as_ref()
                .and_then(|s| s.match_constraints.clone()),
        );
        let g = rules(
            &p.groups
                .spec
                .as_ref()
                .and_then(|s| s.match_constraints.clone()),
        );
        for r in v.iter().chain(&m).chain(&g) {
            assert_eq!(
                r.resources.as_deref(),
                Some(&["executions".to_string()][..])
            );
            assert_eq!(r.api_groups.as_deref(), Some(&[GROUP.to_string()][..]));
        }
        assert_eq!(
            v[0].operations.as_deref(),
            Some(&["CREATE".into(), "UPDATE".into()][..])
        );
        assert_eq!(m[0].operations.as_deref(), Some(&["CREATE".into()][..]));
        assert_eq!(
            g[0].operations.as_deref(),
            Some(&["CREATE".into(), "UPDATE".into()][..])
        );
    }

    #[test]
    fn bindings_name_their_policies_and_deny() {
        let p = policies();
        let vb = p.validating_binding.spec;
        assert_eq!(vb.policy_name, VALIDATING_POLICY);
        assert_eq!(vb.validation_actions, vec!["Deny".to_string()]);
        let mb = p.mutating_binding.spec.expect("binding spec");
        assert_eq!(mb.policy_name.as_deref(), Some(MUTATING_POLICY));
        let gb = p.groups_binding.spec.expect("binding spec");
        assert_eq!(gb.policy_name.as_deref(), Some(GROUPS_POLICY));
    }

    #[test]
    fn yaml_has_ten_documents_with_kinds() {
        let yaml = policies().to_yaml().expect("serializes");
        let kinds: Vec<String> = serde_yaml::Deserializer::from_str(&yaml)
            .map(|d| {
                let v = <serde_yaml::Value as serde::Deserialize>::deserialize(d).expect("yaml");
                v["kind"].as_str().unwrap_or_default().to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "MutatingAdmissionPolicy",
                "MutatingAdmissionPolicyBinding",
                "MutatingAdmissionPolicy",
                "MutatingAdmissionPolicyBinding",
                "MutatingAdmissionPolicy",
                "MutatingAdmissionPolicyBinding",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding"
            ]
        );
        assert!(yaml.contains("apiVersion: admissionregistration.k8s.io/v1"));
    }
}
