//! The Helm chart ships copies of what `playbook-operator crd` generates: its `crds/`
//! holds the CRDs, and `files/admission-policies.yaml` the admission policies its
//! template renders. They must equal the repository's `crds/` byte for byte (`make
//! crds` refreshes both). Rendering the chart is `make chart-check`'s job (it needs
//! helm); this test needs nothing but the files.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    names
}

const FIX: &str = "run `make crds` and commit the result";

#[test]
fn chart_crds_are_the_repository_crds() {
    let chart_crds = repo().join("charts/playbook-operator/crds");
    let crds: Vec<String> = yaml_names(&repo().join("crds"))
        .into_iter()
        .filter(|n| n != "admission-policies.yaml")
        .collect();
    assert_eq!(crds.len(), 5, "one CRD file per kind");
    assert_eq!(
        yaml_names(&chart_crds),
        crds,
        "charts/playbook-operator/crds/ must hold exactly the CRD files of crds/: {FIX}"
    );
    for name in &crds {
        assert!(
            read(&chart_crds.join(name)) == read(&repo().join("crds").join(name)),
            "charts/playbook-operator/crds/{name} differs from crds/{name}: {FIX}"
        );
    }
}

#[test]
fn chart_admission_policies_are_the_repository_ones() {
    let ours = read(&repo().join("charts/playbook-operator/files/admission-policies.yaml"));
    let generated = read(&repo().join("crds/admission-policies.yaml"));
    assert!(
        ours == generated,
        "charts/playbook-operator/files/admission-policies.yaml differs from \
         crds/admission-policies.yaml: {FIX}"
    );
    // The template splits the file on "\n---\n" to leave out the mutating policy
    // before Kubernetes 1.36: every document must stay whole under that split.
    let docs: Vec<&str> = ours.split("\n---\n").collect();
    assert_eq!(docs.len(), 10, "five policies and their bindings");
    for doc in docs {
        let value: serde_yaml::Value =
            serde_yaml::from_str(doc).expect("each document parses on its own");
        assert!(
            value["kind"]
                .as_str()
                .is_some_and(|k| k.contains("AdmissionPolicy")),
            "{doc}"
        );
    }
}

/// Every metric the shipped Grafana dashboard queries is one the operator exports
/// (a renamed metric would otherwise leave an empty panel nobody notices).
#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let path = repo().join("charts/playbook-operator/dashboards/playbook-operator.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let exported: std::collections::BTreeSet<String> = playbook_operator::metrics::Metrics::new()
        .names()
        .iter()
        .cloned()
        .collect();
    assert!(
        exported.contains("playbook_step_handoff_seconds"),
        "{exported:?}"
    );
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expr");
            queried.extend(
                expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with("playbook_"))
                    .map(str::to_string),
            );
        }
    }
    assert!(queried.len() >= 10, "{queried:?}");
    for name in queried {
        let family = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        assert!(
            exported.contains(family) || exported.contains(&name),
            "the dashboard queries {name}, which the operator does not export (exported: {exported:?})"
        );
    }
}

/// The Dockerfile's final stage as image-config fields: User, ExposedPorts, Entrypoint,
/// Cmd, Labels, and where the binary is copied to.
fn dockerfile_image() -> (serde_json::Value, String) {
    let text = read(&repo().join("Dockerfile")).replace("\\\n", " ");
    let last = text.rsplit_once("\nFROM ").expect("a FROM line").1;
    let mut config = serde_json::json!({"Labels": {}});
    let mut binary = String::new();
    for line in last.lines().map(str::trim) {
        let (op, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        match op {
            "USER" => config["User"] = rest.into(),
            "EXPOSE" => config["ExposedPorts"] = serde_json::json!({ format!("{rest}/tcp"): {} }),
            "ENTRYPOINT" | "CMD" => {
                let key = if op == "CMD" { "Cmd" } else { "Entrypoint" };
                config[key] = serde_json::from_str(rest).expect("exec-form JSON");
            }
            "LABEL" => {
                for pair in rest.split_whitespace() {
                    let (k, v) = pair.split_once('=').expect("LABEL key=value");
                    config["Labels"][k] = v.trim_matches('"').into();
                }
            }
            "COPY" => binary = rest.rsplit(' ').next().unwrap_or_default().to_string(),
            _ => {}
        }
    }
    (config, binary)
}

/// tests/cluster/operator-image.sh assembles the Dockerfile's image without Docker for
/// the real node: same user, entrypoint, command, port and labels; and the chart runs
/// it as that user on that port.
#[test]
fn the_image_script_builds_the_dockerfiles_image() {
    let out = std::process::Command::new(repo().join("tests/cluster/operator-image.sh"))
        .arg("config")
        .output()
        .expect("running tests/cluster/operator-image.sh config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the script's config is JSON");
    let (docker, binary) = dockerfile_image();
    for key in ["User", "ExposedPorts", "Entrypoint", "Cmd", "Labels"] {
        assert_eq!(
            script[key], docker[key],
            "{key}: tests/cluster/operator-image.sh and the Dockerfile differ; change both"
        );
    }
    assert_eq!(
        docker["Entrypoint"][0],
        binary.as_str(),
        "ENTRYPOINT runs the copied binary"
    );

    let values: serde_json::Value =
        serde_yaml::from_str(&read(&repo().join("charts/playbook-operator/values.yaml")))
            .expect("values.yaml");
    let pod = &values["podSecurityContext"];
    let user = format!("{}:{}", pod["runAsUser"], pod["runAsGroup"]);
    assert_eq!(
        docker["User"],
        user.as_str(),
        "the chart's runAsUser:runAsGroup"
    );
    let port = format!("{}/tcp", values["http"]["port"]);
    assert!(
        docker["ExposedPorts"].get(&port).is_some(),
        "the chart's http.port {port}"
    );
}
