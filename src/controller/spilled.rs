//! Reading spilled step outputs back for the planner (`engine::plan::spill`).
//!
//! Part of observe: before planning a run that is not over, the ConfigMaps its steps'
//! `outputsRef`s name are read into `PlanInput::spilled`. They are immutable and the
//! key includes the content's SHA-256, so an in-process cache can never serve stale
//! data (an Execution deleted and created again under the same name has its own
//! content, so its own key): each is fetched with one GET the first time, then
//! served from memory. The cache is bounded by bytes (quick_cache, a maintained
//! weighted cache: least recently used large values go first), so a burst of large
//! outputs cannot grow the controller without limit. Runs with small outputs have no
//! refs: no call, no cache entry.
//!
//! A ConfigMap that is gone, lacks its key, holds other content than the ref's hash
//! or no JSON is an `Err` for the planner (it fails the run with that message); any
//! other API error is transient and the reconcile is retried.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::Value;

use super::Error;
use crate::api::OutputsRef;
use crate::engine::plan::{input_sha256, sha256_hex};

/// Default bound of the cache: 16 MiB of JSON text (18 outputs at the hard cap; parsed,
/// a few times that in memory, well inside the chart's 512 MiB limit).
pub const DEFAULT_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Parsed spilled outputs by `namespace/name@sha256`, weighed by their JSON bytes.
pub struct SpilledCache(quick_cache::sync::Cache<String, Entry, ByBytes>);

#[derive(Clone)]
struct Entry {
    value: Arc<Value>,
    bytes: u64,
}

#[derive(Clone)]
struct ByBytes;

impl quick_cache::Weighter<String, Entry> for ByBytes {
    fn weight(&self, _key: &String, entry: &Entry) -> u64 {
        entry.bytes.max(1)
    }
}

impl SpilledCache {
    pub fn new(max_bytes: u64) -> Self {
        // quick_cache wants a rough item count: outputs past the inline budget are
        // tens of KiB and more.
        let items = usize::try_from(max_bytes / (32 * 1024))
            .unwrap_or(1024)
            .max(16);
        Self(quick_cache::sync::Cache::with_weighter(
            items, max_bytes, ByBytes,
        ))
    }
}

impl Default for SpilledCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_BYTES)
    }
}

impl std::fmt::Debug for SpilledCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpilledCache")
            .field("entries", &self.0.len())
            .field("bytes", &self.0.weight())
            .finish()
    }
}

/// The outputs `refs` name, from the cache or by one GET each.
pub async fn read(
    api: &Api<ConfigMap>,
    namespace: &str,
    cache: &SpilledCache,
    refs: &[&OutputsRef],
) -> Result<BTreeMap<String, Result<Arc<Value>, String>>, Error> {
    let mut out = BTreeMap::new();
    for r in refs {
        let key = format!("{namespace}/{}@{}", r.config_map_name, r.sha256);
        if let Some(hit) = cache.0.get(&key) {
            out.insert(r.config_map_name.clone(), Ok(hit.value));
            continue;
        }
        let found = match api.get_opt(&r.config_map_name).await {
            Ok(found) => found,
            Err(source) => {
                return Err(Error::ReadConfigMap {
                    name: r.config_map_name.clone(),
                    source,
                });
            }
        };
        let read = decode(found.as_ref(), r);
        if let Ok((value, bytes)) = &read {
            let entry = Entry {
                value: value.clone(),
                bytes: *bytes,
            };
            cache.0.insert(key, entry);
        }
        out.insert(r.config_map_name.clone(), read.map(|(v, _)| v));
    }
    Ok(out)
}

/// The SHA-256 of the input in each parser-input ConfigMap `names` (`None`: gone),
/// one GET each: read only for parser runs whose Job is about to be created
/// (`engine::plan::parser_inputs_to_check`), so the planner never feeds a parser an
/// input the operator did not write.
pub async fn read_parser_inputs(
    api: &Api<ConfigMap>,
    names: &[String],
) -> Result<BTreeMap<String, Option<String>>, Error> {
    let mut out = BTreeMap::new();
    for name in names {
        let found = api
            .get_opt(name)
            .await
            .map_err(|source| Error::ReadConfigMap {
                name: name.clone(),
                source,
            })?;
        out.insert(name.clone(), found.as_ref().map(input_sha256));
    }
    Ok(out)
}

/// The output in `cm` (absent: deleted) if it is what `r` recorded, and its bytes.
pub fn decode(cm: Option<&ConfigMap>, r: &OutputsRef) -> Result<(Arc<Value>, u64), String> {
    let cm = cm.ok_or("not found")?;
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .ok_or_else(|| format!("it has no key '{}'", r.key))?;
    if sha256_hex(text) != r.sha256 {
        return Err("its content is not the output the step recorded (sha256 differs)".into());
    }
    let value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    Ok((Arc::new(value), text.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::apply::tests::{fake_client, status};
    use serde_json::json;
    use std::collections::BTreeMap;

    const TEXT: &str = r#"{"deep":{"x":1}}"#;

    fn reference(name: &str) -> OutputsRef {
        OutputsRef {
            config_map_name: name.into(),
            key: "outputs.json".into(),
            bytes: TEXT.len() as u64,
            original_bytes: TEXT.len() as u64,
            sha256: sha256_hex(TEXT),
        }
    }

    /// ConfigMap `kept` exists, `gone` does not, `flaky` fails with a 500.
    fn answer(_method: &str, path: &str) -> (u16, Value) {
        match path.rsplit('/').next() {
            Some("kept") => (
                200,
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept"}, "data": {"outputs.json": TEXT}}),
            ),
            Some("gone") => (404, status(404, "NotFound")),
            _ => (500, status(500, "InternalError")),
        }
    }

    #[tokio::test]
    async fn one_get_per_output_then_the_cache_a_missing_one_is_an_error_for_the_planner() {
        let (client, log) = fake_client(answer);
        let api: Api<ConfigMap> = Api::namespaced(client, "ns");
        let cache = SpilledCache::default();
        let (kept, gone) = (reference("kept"), reference("gone"));
        let read1 = read(&api, "ns", &cache, &[&kept, &gone])
            .await
            .expect("read");
        assert_eq!(read1["kept"].as_deref(), Ok(&json!({"deep": {"x": 1}})));
        assert_eq!(read1["gone"], Err("not found".to_string()));
        let read2 = read(&api, "ns", &cache, &[&kept]).await.expect("read");
        assert_eq!(read2["kept"], read1["kept"]);
        let gets = log.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(
            gets,
            [
                "GET /api/v1/namespaces/ns/configmaps/kept",
                "GET /api/v1/namespaces/ns/configmaps/gone"
            ],
            "the second read of 'kept' is served from the cache"
        );
        // Another content under the same name (an Execution made again) is not a hit.
        let other = OutputsRef {
            sha256: sha256_hex("{}"),
            ..reference("kept")
        };
        let read3 = read(&api, "ns", &cache, &[&other]).await.expect("read");
        assert!(
            read3["kept"]
                .as_ref()
                .is_err_and(|e| e.contains("sha256 differs"))
        );
        // An API error is the reconcile's, retried: not an answer for the planner.
        let flaky = reference("flaky");
        let err = read(&api, "ns", &cache, &[&flaky]).await;
        assert!(matches!(err, Err(Error::ReadConfigMap { .. })), "{err:?}");
    }

    fn cm(key: &str, text: &str) -> ConfigMap {
        ConfigMap {
            data: Some(BTreeMap::from([(key.to_string(), text.to_string())])),
            ..Default::default()
        }
    }

    #[test]
    fn decode_checks_presence_key_hash_and_json() {
        let text = r#"{"deep":{"x":1}}"#;
        let r = OutputsRef {
            config_map_name: "cm".into(),
            key: "outputs.json".into(),
            bytes: text.len() as u64,
            original_bytes: text.len() as u64,
            sha256: sha256_hex(text),
        };
        let table: Vec<(Option<ConfigMap>, Result<Value, &str>)> = vec![
            (
                Some(cm("outputs.json", text)),
                Ok(serde_json::json!({"deep": {"x": 1}})),
            ),
            (None, Err("not found")),
            (Some(cm("other", text)), Err("no key 'outputs.json'")),
            (Some(cm("outputs.json", "{}")), Err("sha256 differs")),
        ];
        for (given, want) in table {
            let got = decode(given.as_ref(), &r);
            match (got, want) {
                (Ok((v, bytes)), Ok(w)) => {
                    assert_eq!(*v, w);
                    assert_eq!(bytes, text.len() as u64);
                }
                (Err(e), Err(w)) => assert!(e.contains(w), "{e}"),
                (got, want) => panic!("got {got:?}, want {want:?}"),
            }
        }
        let bad = "not json";
        let r = OutputsRef {
            sha256: sha256_hex(bad),
            ..r
        };
        let got = decode(Some(&cm("outputs.json", bad)), &r);
        assert!(got.is_err_and(|e| e.starts_with("not JSON")));
    }
}
