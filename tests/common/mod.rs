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
pub mod catalogue_files;
pub mod helm;
pub mod http;
pub mod on_call;
pub mod operator;
pub mod process;
pub mod rbac;
pub mod realnode;
pub mod service_account;
pub mod slack;
pub mod slack_approval;
pub mod webhook;

// The core of the harness, re-exported below as `common::*`.
mod cluster;
mod crds;
mod kwok;
mod namespace;
mod pods;

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

// Each test target uses a different subset of the core (as of everything here).
#[allow(unused_imports)]
pub use self::{
    cluster::{
        client, config, kubeconfig_path, kubectl, local_cluster_dir, local_cluster_env,
        pinned_kubernetes_version, user_client, user_token,
    },
    crds::{install_crds, read_yaml_docs},
    kwok::{cri_log, cri_log_stream, log_fixtures_dir, write_log_fixture},
    namespace::TestNamespace,
    pods::{pod_log, pod_phase, wait_job_pod_terminal, wait_pod},
};

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
