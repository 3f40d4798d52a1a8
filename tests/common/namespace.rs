//! [`TestNamespace`]: a namespace of its own per test, deleted when dropped, with
//! the kwok log fixtures that serve its pods' logs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource};
use serde_json::json;

use super::kwok::{apply_kwok, kwok_api, log_entries};
use super::{
    START_HINT, TEST_NAMESPACE_LABEL, TIMEOUT, client, config, env_nonempty, log_fixtures_dir,
    random_suffix, rbac, write_log_fixture,
};

/// A namespace of its own for one test, with a random suffix; deleted when dropped
/// (also when the test panics), or explicitly with [`TestNamespace::cleanup`].
/// Set `PLAYBOOK_OPERATOR_KEEP_NAMESPACES=1` to keep them for a post-mortem.
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
    /// kwok log fixtures set for this namespace: container name (None = any other
    /// container) -> file. Mirrored into one ClusterLogs object.
    container_logs: Mutex<BTreeMap<Option<String>, PathBuf>>,
    /// per-pod fixtures: pod -> container (None = any) -> file. One Logs object per pod.
    pod_logs: Mutex<BTreeMap<String, BTreeMap<Option<String>, PathBuf>>>,
    cleaned: bool,
}

impl TestNamespace {
    /// Creates `e2e-<prefix>-<random>` (prefix cut to keep a valid DNS label).
    pub async fn new(prefix: &str) -> Self {
        Self::with_client(client().await, prefix).await
    }

    pub async fn with_client(client: Client, prefix: &str) -> Self {
        let prefix: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let name = format!("e2e-{}-{}", prefix.trim_matches('-'), random_suffix());
        let ns: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": name, "labels": { TEST_NAMESPACE_LABEL: "true" } }
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}\n{START_HINT}"));
        // What the chart grants by default: any user may run steps on `default`.
        rbac::grant_default_runner(&client, &name).await;
        TestNamespace {
            name,
            client,
            container_logs: Mutex::default(),
            pod_logs: Mutex::default(),
            cleaned: false,
        }
    }

    /// A typed API for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace (and its log fixtures) without waiting for it to be
    /// gone: namespaces are unique per test, and kube-controller-manager's namespace
    /// controller always waits 5 s before it starts emptying a deleted namespace.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        if keep_namespaces() {
            return;
        }
        delete_namespace_and_fixtures(&self.client, &self.name).await;
    }

    /// Like [`TestNamespace::cleanup`], then waits until the namespace is gone
    /// (about 5-6 s; needs the namespace controller).
    pub async fn cleanup_and_wait(self) {
        let (client, name) = (self.client.clone(), self.name.clone());
        let keep = keep_namespaces();
        self.cleanup().await;
        if keep {
            return;
        }
        let api = Api::<Namespace>::all(client);
        let gone = async {
            loop {
                match api.get_opt(&name).await {
                    Ok(None) => break,
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        };
        if tokio::time::timeout(TIMEOUT, gone).await.is_err() {
            panic!("namespace {name} not deleted within {TIMEOUT:?}");
        }
    }

    // -----------------------------------------------------------------------
    // kwok pod log fixtures
    //
    // kwok serves `pods/log` from files in CRI log format, chosen by a ClusterLogs
    // (cluster-scoped: namespace + container name) or Logs (namespaced: one pod)
    // object. Files are read at request time by the kwok process, so they must be
    // on this machine (the local cluster) and may be written or changed at any time;
    // the objects should exist before the pod's log is read (kwok sees them through
    // a watch, within milliseconds). Set fixtures before creating the Job.

    /// Serves `text` as the log of every container named `container` in this
    /// namespace (all pods, e.g. all attempts of a step).
    pub async fn set_container_log(&self, container: &str, text: &str) {
        self.set_logs(Some(container), text).await;
    }

    /// Serves `text` as the log of any container in this namespace that has no
    /// fixture of its own.
    pub async fn set_default_log(&self, text: &str) {
        self.set_logs(None, text).await;
    }

    async fn set_logs(&self, container: Option<&str>, text: &str) {
        let file = self.fixture_file(&format!("ns.{}", container.unwrap_or("_default")));
        write_log_fixture(&file, text);
        let entries = {
            let mut map = self.container_logs.lock().unwrap();
            map.insert(container.map(str::to_string), file);
            log_entries(&map)
        };
        let obj = json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {
                "name": self.name,
                "labels": { TEST_NAMESPACE_LABEL: "true" }
            },
            "spec": {
                "selector": { "matchNamespaces": [self.name] },
                "logs": entries
            }
        });
        apply_kwok(&self.client, "ClusterLogs", None, &self.name, obj).await;
    }

    /// Serves `text` as the log of one pod (container `None`: all its containers).
    /// Takes precedence over the namespace-wide fixtures; needs the pod's name,
    /// so it suits pods the test creates itself.
    pub async fn set_pod_log(&self, pod: &str, container: Option<&str>, text: &str) {
        let file = self.fixture_file(&format!("pod.{pod}.{}", container.unwrap_or("_default")));
        write_log_fixture(&file, text);
        let entries = {
            let mut map = self.pod_logs.lock().unwrap();
            let per_pod = map.entry(pod.to_string()).or_default();
            per_pod.insert(container.map(str::to_string), file);
            log_entries(per_pod)
        };
        let obj = json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Logs",
            "metadata": { "name": pod, "namespace": self.name },
            "spec": { "logs": entries }
        });
        apply_kwok(&self.client, "Logs", Some(&self.name), pod, obj).await;
    }

    fn fixture_file(&self, stem: &str) -> PathBuf {
        log_fixtures_dir()
            .join(&self.name)
            .join(format!("{stem}.log"))
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.cleaned || keep_namespaces() {
            return;
        }
        // Drop cannot await, and the test's runtime may be gone or busy: delete from
        // a thread with its own runtime and client (fire and forget; the namespace
        // controller finishes the job).
        let name = self.name.clone();
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for namespace cleanup");
            rt.block_on(async {
                let config = config().await;
                if let Ok(client) = Client::try_from(config) {
                    delete_namespace_and_fixtures(&client, &name).await;
                }
            });
        });
        let _ = handle.join();
    }
}

fn keep_namespaces() -> bool {
    env_nonempty("PLAYBOOK_OPERATOR_KEEP_NAMESPACES").is_some_and(|v| v != "0")
}

async fn delete_namespace_and_fixtures(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::background())
        .await;
    // ClusterLogs is cluster-scoped: it does not go with the namespace.
    let _ = kwok_api(client, "ClusterLogs", None)
        .delete(name, &DeleteParams::default())
        .await;
    let _ = std::fs::remove_dir_all(log_fixtures_dir().join(name));
}
