//! The Trigger's and the Schedule's writer, recorded by the API server: runs started
//! by an alert or a tick act for whoever last wrote the Trigger's or Schedule's spec,
//! not for the operator. One pair of policies for both kinds (the same rule).
//!
//! Without this, a run from an alert is requested by the operator's ServiceAccount,
//! so the Trigger's author could approve it and pick any Runner the operator may
//! use. A MutatingAdmissionPolicy stamps `spec.requestedBy` and
//! `spec.requestedByGroups` with the writer on every create and on every update that
//! changes the spec (a label edit leaves the author as it was); a
//! ValidatingAdmissionPolicy refuses what does not name the writer, which only
//! happens where the mutating one is missing (before Kubernetes 1.36).

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MatchResources, MutatingAdmissionPolicy, MutatingAdmissionPolicySpec,
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicySpec, Validation,
};

use super::{meta, resource, stamp_writer};

/// Name of the MutatingAdmissionPolicy that stamps a Trigger's writer, and of its binding.
pub const TRIGGER_WRITER_POLICY: &str = "triggers.stackpulse.io-writer";
/// Name of the ValidatingAdmissionPolicy that refuses a forged writer, and of its binding.
pub const TRIGGER_VALIDATING_POLICY: &str = "triggers.stackpulse.io-writer-check";

/// A create, or an update that changes the spec: what makes the writer the author.
const SPEC_WRITTEN: &str = "request.operation == 'CREATE' || object.spec != oldObject.spec";

/// `triggers` and `schedules`: the kinds whose runs act for their writer.
fn written_kinds() -> MatchResources {
    let mut m = resource("triggers", &["CREATE", "UPDATE"]);
    if let Some(rule) = m.resource_rules.as_mut().and_then(|r| r.first_mut()) {
        rule.resources = Some(vec!["triggers".into(), "schedules".into()]);
    }
    m
}

pub(super) fn writer_policy() -> MutatingAdmissionPolicy {
    MutatingAdmissionPolicy {
        metadata: meta(TRIGGER_WRITER_POLICY),
        spec: Some(MutatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            reinvocation_policy: Some("Never".into()),
            match_constraints: Some(written_kinds()),
            match_conditions: Some(vec![MatchCondition {
                name: "spec-written".into(),
                expression: SPEC_WRITTEN.into(),
            }]),
            // Always overwritten: whatever the writer put there is not who they are.
            mutations: Some(vec![stamp_writer()]),
            ..Default::default()
        }),
    }
}

pub(super) fn validating_policy() -> ValidatingAdmissionPolicy {
    ValidatingAdmissionPolicy {
        metadata: meta(TRIGGER_VALIDATING_POLICY),
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(written_kinds()),
            match_conditions: Some(vec![MatchCondition {
                name: "spec-written".into(),
                expression: SPEC_WRITTEN.into(),
            }]),
            validations: Some(vec![Validation {
                expression: "object.spec.?requestedBy.orValue('') == request.userInfo.username && \
                     sets.equivalent(object.spec.?requestedByGroups.orValue([]), request.userInfo.groups)"
                    .into(),
                message_expression: Some(
                    r#""spec.requestedBy and spec.requestedByGroups must be you ('" + request.userInfo.username + "', [" + request.userInfo.groups.join(', ') + "]): the runs this " + request.kind.kind + " starts act for its last writer; leave them out and the API server fills them in""#
                        .into(),
                ),
                reason: Some("Forbidden".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}
