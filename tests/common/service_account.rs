//! The operator as a chart's ServiceAccount: a kubeconfig holding a bound token from
//! the TokenRequest API (what a pod's projected token is), for running the operator
//! binary on this machine with exactly the rights the chart grants.

use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::TestNamespace;

/// A kubeconfig file holding a ServiceAccount token: created 0600, deleted when
/// dropped (also when the test panics), so no token outlives the test.
pub struct TokenKubeconfig(PathBuf);

impl TokenKubeconfig {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TokenKubeconfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A kubeconfig for the ServiceAccount `sa` of `ns`: the admin kubeconfig's cluster
/// and a bound token from the TokenRequest API (what a pod's projected token is).
pub async fn service_account_kubeconfig(ns: &TestNamespace, sa: &str) -> TokenKubeconfig {
    let request = TokenRequest {
        // No audiences: the API server's own (what a pod's projected token carries).
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = ns
        .api::<ServiceAccount>()
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {sa}: {e}"))
        .status
        .and_then(|s| s.token)
        .expect("a TokenRequest answer holds a token");
    let admin = Kubeconfig::read_from(super::kubeconfig_path()).expect("the admin kubeconfig");
    let cluster = admin
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .expect("a cluster in the admin kubeconfig");
    let server = cluster.server.expect("a server URL");
    let ca = cluster
        .certificate_authority_data
        .expect("inline CA data (tests/cluster/up.sh writes it)");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: {sa}\n  user:\n    token: {token}\n\
         contexts:\n- name: sa\n  context: {{cluster: c, user: {sa}, namespace: {ns}}}\n\
         current-context: sa\n",
        ns = ns.name
    );
    let path = std::env::temp_dir().join(format!("kubeconfig-{}-{sa}", ns.name));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = TokenKubeconfig(path);
    std::io::Write::write_all(
        &mut options
            .open(file.path())
            .expect("creating the ServiceAccount's kubeconfig"),
        text.as_bytes(),
    )
    .expect("writing the ServiceAccount's kubeconfig");
    file
}

pub async fn client_from(path: &Path) -> Client {
    let kc = Kubeconfig::read_from(path).expect("a kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("a valid kubeconfig");
    Client::try_from(config).expect("a client")
}
