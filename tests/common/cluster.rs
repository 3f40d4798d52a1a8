//! Reaching the test cluster: which kubeconfig, the admin client (panicking with
//! [`START_HINT`] when the cluster does not answer), clients and tokens of the
//! local cluster's users, and its pinned `kubectl`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::{START_HINT, env_nonempty};

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
