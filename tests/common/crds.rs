//! Installing `crds/` into the test cluster: the CRDs (waiting until Established)
//! and the admission policies beside them.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Resource};
use serde::Deserialize as _;
use serde::de::DeserializeOwned;

use super::{FIELD_MANAGER, TIMEOUT};

/// Server-side applies every CustomResourceDefinition in `crds/*.yaml` (multi-document
/// files are fine) and waits until each is Established, then applies the admission
/// policies there (what `kubectl apply --server-side -f crds/` does). Returns the CRDs'
/// names. Idempotent, so concurrent tests may all call it.
pub async fn install_crds(client: &Client) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    let docs: Vec<serde_json::Value> = files.iter().flat_map(|f| read_yaml_docs(f)).collect();
    let is_crd = |d: &serde_json::Value| d["kind"] == "CustomResourceDefinition";
    let crds: Vec<CustomResourceDefinition> = docs
        .iter()
        .filter(|d| is_crd(d))
        .map(|d| serde_json::from_value(d.clone()).expect("a CRD in crds/"))
        .collect();
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let mut names = Vec::new();
    for crd in crds {
        let name = crd
            .metadata
            .name
            .clone()
            .expect("CRD without metadata.name");
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        names.push(name);
    }
    for name in &names {
        let established = await_condition(api.clone(), name, conditions::is_crd_established());
        match tokio::time::timeout(TIMEOUT, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("waiting for CRD {name}: {e}"),
            Err(_) => panic!("CRD {name} not Established within {TIMEOUT:?}"),
        }
    }
    for doc in docs.iter().filter(|d| !is_crd(d)) {
        apply_policy_object(client, doc).await;
    }
    names
}

/// Server-side applies one admission policy or binding of `crds/` (cluster-scoped,
/// shared by every test and session: apply, never delete).
async fn apply_policy_object(client: &Client, doc: &serde_json::Value) {
    use k8s_openapi::api::admissionregistration::v1::{
        MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding, ValidatingAdmissionPolicy,
        ValidatingAdmissionPolicyBinding,
    };
    async fn apply<K>(client: &Client, doc: &serde_json::Value)
    where
        K: Resource<Scope = k8s_openapi::ClusterResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + DeserializeOwned,
        <K as Resource>::DynamicType: Default,
    {
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        let kind = K::kind(&Default::default()).to_string();
        Api::<K>::all(client.clone())
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(doc),
            )
            .await
            .unwrap_or_else(|e| panic!("applying {kind} {name} from crds/: {e}"));
    }
    match doc["kind"].as_str().unwrap_or_default() {
        "MutatingAdmissionPolicy" => apply::<MutatingAdmissionPolicy>(client, doc).await,
        "MutatingAdmissionPolicyBinding" => {
            apply::<MutatingAdmissionPolicyBinding>(client, doc).await
        }
        "ValidatingAdmissionPolicy" => apply::<ValidatingAdmissionPolicy>(client, doc).await,
        "ValidatingAdmissionPolicyBinding" => {
            apply::<ValidatingAdmissionPolicyBinding>(client, doc).await
        }
        other => panic!("crds/ holds a {other:?}: teach tests/common::install_crds to apply it"),
    }
}

/// All YAML documents of `path` that are not empty, as `T`.
pub fn read_yaml_docs<T: DeserializeOwned>(path: &Path) -> Vec<T> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        if value.is_null() {
            continue;
        }
        out.push(
            serde_yaml::from_value(value)
                .unwrap_or_else(|e| panic!("decoding a document of {}: {e}", path.display())),
        );
    }
    out
}
