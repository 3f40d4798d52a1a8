//! Hand-written schema fragments where the derived one cannot say what Kubernetes needs.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Free-form JSON object (params, alert payloads, parsed step outputs): the API server
/// keeps every field instead of pruning what the schema does not list.
pub fn any_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A list of arbitrary JSON values.
pub fn any_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "x-kubernetes-preserve-unknown-fields": true },
    })
}
