//! Test harness for integration tests that run against a real Kubernetes cluster.
//!
//! By default that is the local control plane of `tests/cluster/` (kube-apiserver,
//! etcd, kube-controller-manager, kube-scheduler and kwok, started by `make
//! cluster-up`); any other cluster works by pointing `PLAYBOOK_OPERATOR_KUBECONFIG`
//! or `KUBECONFIG` at it (see `tests/cluster/README.md`).
//!
//! A test that needs the cluster and cannot reach it **panics** with a message that
//! names `make cluster-up`: it never skips, so a green run always means the cluster
//! tests really ran.
//!
//! Typical use:
//! ```ignore
//! mod common;
//! #[tokio::test]
//! async fn my_test() {
//!     let ns = common::TestNamespace::new("my-test").await;
//!     ns.set_container_log("get-info", "hello\n").await; // the log of step get-info
//!     let jobs: Api<Job> = ns.api();
//!     // ...
//!     ns.cleanup().await; // or just let it drop
//! }
//! ```
#![allow(dead_code)] // each test target uses a different subset

pub mod alertmanager;
pub mod browser;
pub mod catalogue;
pub mod helm;
pub mod http;
pub mod on_call;
pub mod operator;
pub mod process;
pub mod rbac;
pub mod realnode;
pub mod service_account;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind, NamespaceResourceScope};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;

/// What to do when the cluster is not there; part of every panic message.
pub const START_HINT: &str = "start the local test cluster with `make cluster-up` \
     (or run `make test-e2e`, which starts and stops it), or point \
     PLAYBOOK_OPERATOR_KUBECONFIG / KUBECONFIG at another cluster";

/// Field manager for everything the harness applies server-side.
pub const FIELD_MANAGER: &str = "playbook-operator-e2e";

/// Label on every namespace the harness creates (handy for `kubectl delete ns -l`).
pub const TEST_NAMESPACE_LABEL: &str = "playbook-operator.test/e2e";

/// kwok annotation: the pod's containers terminate with this exit code (pod `Failed`).
pub const EXIT_CODE_ANNOTATION: &str = "kwok.stackpulse.io/exit-code";
/// kwok annotation: the terminated state's message (with a non-zero exit code).
pub const MESSAGE_ANNOTATION: &str = "kwok.stackpulse.io/message";
/// kwok annotation: how long the pod stays Running before it terminates (Go duration).
pub const DURATION_ANNOTATION: &str = "kwok.stackpulse.io/duration";

/// Default time to wait for anything in the cluster.
pub const TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Reaching the cluster

/// The kubeconfig the tests use, in this order:
/// 1. `PLAYBOOK_OPERATOR_KUBECONFIG`,
/// 2. `KUBECONFIG` (first entry if it is a list),
/// 3. the local cluster's `kubeconfig` in its state dir
///    (`PLAYBOOK_OPERATOR_CLUSTER_DIR`, default `/tmp/playbook-operator-cluster-$USER`).
///
/// `~/.kube/config` is deliberately never used implicitly: tests create and delete
/// namespaces, and must not land on whatever cluster a developer last used.
pub fn kubeconfig_path() -> PathBuf {
    if let Some(p) = env_nonempty("PLAYBOOK_OPERATOR_KUBECONFIG") {
        return PathBuf::from(p);
    }
    if let Some(p) = env_nonempty("KUBECONFIG") {
        let first = std::env::split_paths(&p).next().unwrap_or_default();
        return first;
    }
    local_cluster_dir().join("kubeconfig")
}

/// State dir of the local cluster started by `tests/cluster/up.sh`.
pub fn local_cluster_dir() -> PathBuf {
    if let Some(p) = env_nonempty("PLAYBOOK_OPERATOR_CLUSTER_DIR") {
        return PathBuf::from(p);
    }
    let user = env_nonempty("USER").unwrap_or_else(|| "root".into());
    PathBuf::from(format!("/tmp/playbook-operator-cluster-{user}"))
}

/// The `env` file up.sh writes next to the kubeconfig, if the tests run against the
/// local cluster (ports, bin dir). `None` against any other cluster.
pub fn local_cluster_env() -> Option<BTreeMap<String, String>> {
    let dir = kubeconfig_path().parent()?.to_path_buf();
    let text = std::fs::read_to_string(dir.join("env")).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

/// Client config for the admin user of the test cluster. Panics (naming the start
/// command) if there is no kubeconfig.
pub async fn config() -> Config {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read kubeconfig {}: {e}\nNo test cluster: {START_HINT}",
            path.display()
        )
    });
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("bad kubeconfig {}: {e}\n{START_HINT}", path.display()))
}

/// An admin client for the test cluster; panics with [`START_HINT`] if the API
/// server does not answer.
pub async fn client() -> Client {
    let config = config().await;
    let url = config.cluster_url.clone();
    let client = Client::try_from(config).expect("building a kube client");
    check_reachable(&client, &url.to_string()).await;
    client
}

async fn check_reachable(client: &Client, url: &str) {
    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!(
            "the test cluster at {url} (kubeconfig {}) does not answer: {e}\n{START_HINT}",
            kubeconfig_path().display()
        ),
        Err(_) => panic!(
            "the test cluster at {url} (kubeconfig {}) did not answer within 10 s\n{START_HINT}",
            kubeconfig_path().display()
        ),
    }
}

/// A client acting as an ordinary user (`alice` or `bob`): with the local cluster,
/// the user's own kubeconfig (`kubeconfig-<user>`, a real bearer token); with any
/// other cluster, the admin kubeconfig impersonating the user (cluster admins may).
pub async fn user_client(user: &str) -> Client {
    let own = kubeconfig_path().with_file_name(format!("kubeconfig-{user}"));
    let config = if own.is_file() {
        let kc = Kubeconfig::read_from(&own)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", own.display()));
        Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("bad kubeconfig {}: {e}", own.display()))
    } else {
        let mut c = config().await;
        c.auth_info.impersonate = Some(user.to_string());
        c.auth_info.impersonate_groups = Some(vec!["system:authenticated".to_string()]);
        c
    };
    Client::try_from(config).expect("building a kube client")
}

/// The bearer token of a user of the local cluster (`alice`, `bob`, `admin`): what
/// their kubeconfig holds, as a person would paste it into the execution page.
pub fn user_token(user: &str) -> String {
    let path = local_cluster_dir()
        .join("pki")
        .join(format!("{user}.token"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {} ({e}): {START_HINT}", path.display()))
        .trim()
        .to_string()
}

/// `kubectl` for the test cluster: the pinned one the local cluster was built with,
/// else `kubectl` from PATH. KUBECONFIG is set.
pub fn kubectl() -> std::process::Command {
    let bin = local_cluster_env()
        .and_then(|env| env.get("BIN_DIR").cloned())
        .map(|d| Path::new(&d).join("kubectl"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("kubectl"));
    let mut cmd = std::process::Command::new(bin);
    cmd.env("KUBECONFIG", kubeconfig_path());
    cmd
}

/// The Kubernetes version the local cluster is pinned to (tests/cluster/versions.env).
pub fn pinned_kubernetes_version() -> String {
    let text = include_str!("../cluster/versions.env");
    text.lines()
        .find_map(|l| l.strip_prefix("KUBERNETES_VERSION="))
        .expect("KUBERNETES_VERSION in tests/cluster/versions.env")
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------
// Namespaces

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

// ---------------------------------------------------------------------------
// kwok log fixtures

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

fn log_entries(map: &BTreeMap<Option<String>, PathBuf>) -> Vec<serde_json::Value> {
    map.iter()
        .map(|(container, file)| match container {
            Some(c) => json!({ "containers": [c], "logsFile": file }),
            None => json!({ "logsFile": file }),
        })
        .collect()
}

fn kwok_api(client: &Client, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
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

async fn apply_kwok(
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

// ---------------------------------------------------------------------------
// CRDs

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

use serde::Deserialize as _;

// ---------------------------------------------------------------------------
// Waiting for pods

/// Polls until `pred` holds for the pod (or `timeout`); returns the pod. Panics with
/// the pod's last state on timeout.
pub async fn wait_pod(
    api: &Api<Pod>,
    name: &str,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Pod) -> bool,
) -> Pod {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok(Some(pod)) = api.get_opt(name).await {
            if pred(&pod) {
                return pod;
            }
            last = Some(pod);
        }
        if Instant::now() > deadline {
            panic!(
                "pod {name}: not {what} within {timeout:?}; last status: {}",
                last.and_then(|p| p.status)
                    .map(|s| serde_json::to_string_pretty(&s).unwrap())
                    .unwrap_or_else(|| "(pod not found)".into())
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The phase of a pod ("" if none yet).
pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Waits for the (first) pod of Job `job` to reach a terminal phase (Succeeded or
/// Failed) and returns it.
pub async fn wait_job_pod_terminal(pods: &Api<Pod>, job: &str, timeout: Duration) -> Pod {
    let deadline = Instant::now() + timeout;
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    loop {
        let list = pods
            .list(&lp)
            .await
            .unwrap_or_else(|e| panic!("listing pods of job {job}: {e}"));
        if let Some(pod) = list
            .items
            .into_iter()
            .find(|p| matches!(pod_phase(p), "Succeeded" | "Failed"))
        {
            return pod;
        }
        if Instant::now() > deadline {
            panic!("no pod of job {job} reached Succeeded or Failed within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// small things

/// One GET to the operator's HTTP server: status and body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http::get(addr, path).await
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// 8 random lowercase hex-ish characters (no `rand` dependency: std's randomly
/// seeded hasher, the time and a counter).
pub fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// A pod's log through the `pods/log` API. kwok learns of a new ClusterLogs/Logs
/// object through its own watch, so right after a fixture is set it may still answer
/// 400 "no logs found" (more so on a busy machine): retry that until [`TIMEOUT`].
pub async fn pod_log(pods: &Api<Pod>, pod: &str, params: &kube::api::LogParams) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match pods.logs(pod, params).await {
            Ok(text) => return text,
            Err(kube::Error::Api(s))
                if s.code == 400
                    && s.message.contains("no logs found")
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("reading the log of pod {pod}: {e}"),
        }
    }
}
