//! `crds/` must be exactly what `playbook-operator crd` generates from the types
//! (the CRDs and `admission-policies.yaml`).

use std::path::Path;

#[test]
fn checked_in_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let generated = playbook_operator::cli::crd::files().expect("CRDs serialize");
    assert_eq!(
        generated.len(),
        6,
        "one CRD per kind, and the admission policies"
    );
    for (name, yaml) in &generated {
        assert!(
            !yaml.contains("format: uint"),
            "{name}: Kubernetes knows int32/int64, not uint formats"
        );
        let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(
            on_disk == *yaml,
            "crds/{name} is out of date with src/api: run `make crds` and commit the result"
        );
    }
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<_> = generated.iter().map(|(n, _)| n.clone()).collect();
    expected.sort();
    assert_eq!(
        names, expected,
        "crds/ holds a file no CRD generates: delete it"
    );
}

#[test]
fn every_schema_property_has_a_description() {
    // `kubectl explain` shows these; a field without one is a field nobody can look up.
    fn walk(path: &str, schema: &serde_json::Value, seen: &mut usize, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, sub) in props {
                let here = format!("{path}.{name}");
                *seen += 1;
                // metadata, apiVersion and kind come from Kubernetes itself.
                let builtin =
                    path.is_empty() && ["metadata", "apiVersion", "kind"].contains(&name.as_str());
                if !builtin && sub.get("description").is_none() {
                    missing.push(here.clone());
                }
                walk(&here, sub, seen, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, seen, missing);
        }
        if let Some(extra) = schema.get("additionalProperties") {
            walk(&format!("{path}{{}}"), extra, seen, missing);
        }
    }
    let (mut seen, mut missing) = (0, Vec::new());
    for crd in playbook_operator::api::crds() {
        let kind = crd.spec.names.kind.clone();
        for version in &crd.spec.versions {
            let schema = serde_json::to_value(&version.schema).expect("schema serializes");
            walk(&kind, &schema["openAPIV3Schema"], &mut seen, &mut missing);
        }
    }
    // Steps alone have ~40 fields: a walk that saw few has lost its way, not passed.
    assert!(seen > 200, "walked only {seen} fields");
    assert!(
        missing.is_empty(),
        "fields without a description (add a doc comment): {missing:#?}"
    );
}
