//! kwok's log fixtures: files in CRI log format that kwok serves as `pods/log`,
//! chosen by ClusterLogs and Logs objects (see [`super::TestNamespace`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::{FIELD_MANAGER, env_nonempty, random_suffix};

/// Where fixture files go: `PLAYBOOK_OPERATOR_LOG_FIXTURES_DIR`, default
/// `$TMPDIR/playbook-operator-log-fixtures`. kwok reads them by absolute path.
pub fn log_fixtures_dir() -> PathBuf {
    env_nonempty("PLAYBOOK_OPERATOR_LOG_FIXTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("playbook-operator-log-fixtures"))
}

/// `text` as a CRI log file (what a kubelet's container runtime writes and what
/// kwok serves): one `<RFC3339Nano time> stdout F <line>` per line. A last line
/// without a newline is written as a partial (`P`) line, so reading the log through
/// the API returns exactly `text`, byte for byte.
pub fn cri_log(text: &str) -> String {
    cri_log_stream(text, "stdout")
}

/// Like [`cri_log`] for `stream` = `stdout` or `stderr` (the API merges both).
pub fn cri_log_stream(text: &str, stream: &str) -> String {
    let now = chrono::Utc::now();
    let mut out = String::new();
    let mut rest = text;
    let mut i = 0i64;
    while !rest.is_empty() {
        // Strictly increasing timestamps keep sinceTime/timestamps queries meaningful.
        let ts = (now + chrono::Duration::microseconds(i))
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        i += 1;
        match rest.split_once('\n') {
            Some((line, tail)) => {
                writeln!(out, "{ts} {stream} F {line}").unwrap();
                rest = tail;
            }
            None => {
                writeln!(out, "{ts} {stream} P {rest}").unwrap();
                rest = "";
            }
        }
    }
    out
}

/// Writes `text` to `path` in CRI log format (creating parent dirs), atomically, so
/// kwok never serves half a file.
pub fn write_log_fixture(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    }
    let tmp = path.with_extension(format!("tmp.{}", random_suffix()));
    std::fs::write(&tmp, cri_log(text))
        .unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("renaming to {}: {e}", path.display()));
}

pub(super) fn log_entries(map: &BTreeMap<Option<String>, PathBuf>) -> Vec<serde_json::Value> {
    map.iter()
        .map(|(container, file)| match container {
            Some(c) => json!({ "containers": [c], "logsFile": file }),
            None => json!({ "logsFile": file }),
        })
        .collect()
}

pub(super) fn kwok_api(client: &Client, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let plural = match kind {
        "ClusterLogs" => "clusterlogs",
        "Logs" => "logs",
        other => panic!("unsupported kwok kind {other}"),
    };
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", kind),
        plural,
    );
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

pub(super) async fn apply_kwok(
    client: &Client,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    obj: serde_json::Value,
) {
    kwok_api(client, kind, namespace)
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "applying kwok {kind} {name}: {e}\nPod log fixtures need kwok with \
                 --enable-crds=ClusterLogs,Logs and its CRDs (the local cluster of \
                 tests/cluster/ has both; on another cluster, see tests/cluster/README.md)"
            )
        });
}
