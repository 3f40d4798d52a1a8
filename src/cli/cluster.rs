//! What the commands that talk to a cluster as a person (`start`, `approve`,
//! `reject`, `describe`) share:
//! a runtime, a client with the kubeconfig's namespace, who the API server says the
//! caller is, and API errors turned into what to do about them.

use std::future::Future;

use anyhow::{Context as _, anyhow};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, PostParams};
use kube::{Client, Config};

use crate::api::Execution;

/// A client and the namespace to work in.
pub struct Session {
    pub client: Client,
    pub namespace: String,
}

/// Runs one command's future on a runtime of its own (the CLI's `main` is synchronous).
pub fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?
        .block_on(future)
}

/// Connects with the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or the in-cluster
/// config; the namespace is `namespace`, else the kubeconfig context's, as with kubectl.
pub async fn connect(namespace: Option<&str>) -> anyhow::Result<Session> {
    // Its message already holds the causes; anyhow's context chain would repeat them.
    let config = Config::infer().await.map_err(|e| {
        anyhow!("no cluster to talk to: set KUBECONFIG (or ~/.kube/config) to a kubeconfig for the cluster ({e})")
    })?;
    let namespace = namespace
        .map(str::to_string)
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).context("building a client from the kubeconfig")?;
    Ok(Session { client, namespace })
}

/// The caller's user name as the API server authenticated it (a SelfSubjectReview,
/// which every authenticated user may create): the same name the admission policies
/// compare `requestedBy` and `approvals[].user` with.
pub async fn whoami(client: &Client) -> anyhow::Result<String> {
    Ok(identity(client).await?.0)
}

/// The caller's user name and groups as the API server authenticated them: the
/// groups are what the admission policy demands in `approvals[].groups`.
pub async fn identity(client: &Client) -> anyhow::Result<(String, Vec<String>)> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| api_error(e, "asking the API server who you are (SelfSubjectReview)"))?;
    let info = review.status.and_then(|s| s.user_info).unwrap_or_default();
    let user = info.username.filter(|u| !u.is_empty()).ok_or_else(|| {
        anyhow!(
            "the API server did not say who you are (SelfSubjectReview without a user name): \
             use credentials of a user, not an anonymous request"
        )
    })?;
    Ok((user, info.groups.unwrap_or_default()))
}

/// The Execution `name` in the session's namespace; not finding it says how to list them.
pub async fn execution(session: &Session, name: &str) -> anyhow::Result<Execution> {
    let ns = &session.namespace;
    Api::<Execution>::namespaced(session.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| api_error(e, &format!("reading Execution '{name}'")))?
        .ok_or_else(|| {
            anyhow!(
                "no Execution '{name}' in namespace '{ns}': `kubectl get pbx -n {ns}` lists them (or pass -n NAMESPACE)"
            )
        })
}

/// A kube error with what was being done and, for the usual refusals, what to change.
pub fn api_error(err: kube::Error, doing: &str) -> anyhow::Error {
    let hint = match &err {
        kube::Error::Api(s) if s.code == 401 => {
            "; your credentials were not accepted: check the kubeconfig's user (a token may have expired)"
        }
        kube::Error::Api(s)
            if s.code == 403 && s.reason == "Forbidden" && s.message.contains("denied request") =>
        {
            // An admission policy: its message already says what to change.
            ""
        }
        kube::Error::Api(s) if s.code == 403 => {
            "; ask a cluster admin for a Role that allows it (README: Approvals)"
        }
        _ => "",
    };
    anyhow!("{doing}: {}{hint}", describe(&err))
}

/// The API server's own message for API errors (not kube's `ApiError: ... (ErrorResponse {..})`).
fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}
