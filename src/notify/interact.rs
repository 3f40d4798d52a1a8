//! `POST /slack/interactions`: Slack's callback when someone clicks Approve or Reject
//! in a run's message. The request is verified (v0 signature under the app's signing
//! secret, timestamp within the replay window) before anything in it is believed;
//! the Slack user is mapped to a Kubernetes user and groups (`slackApprovals.users`),
//! and the decision is written by the same code as `playbook-operator approve`, with
//! a client that impersonates that person: the API server's RBAC and admission
//! policies see them, not the operator, and its audit log names both.
//!
//! Slack wants an answer within 3 s, so the route answers 200 at once and the result
//! (done, or why not) goes to the click's `response_url` as an ephemeral reply.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use k8s_openapi::jiff::Timestamp;

use crate::api::Decision;
use crate::cli::approve::{self, Asked, Requester, Written};
use crate::cli::cluster::Session;
use crate::engine::alert::signature::{Secrets, verify_slack};
use crate::engine::notify::config::{Identity, NotifyConfig};
use crate::engine::notify::slack::{self, Click};

/// The route's path (the Slack app's "Interactivity Request URL" under `--external-url`).
pub const PATH: &str = "/slack/interactions";

/// What the route needs.
pub struct Interactions {
    pub channels: Arc<NotifyConfig>,
    /// The operator's own connection; each write clones it with impersonation headers.
    pub kube: kube::Config,
    /// Only runs in this namespace are decided (`run -n`).
    pub namespace: Option<String>,
    pub replay_window_seconds: u64,
    pub timeout: Duration,
}

struct RouteState {
    config: Interactions,
    secrets: Secrets,
    http: reqwest::Client,
}

/// The route, or none without `slackApprovals` in the config.
pub fn routes(config: Interactions) -> Option<Router> {
    let secret = config
        .channels
        .slack_approvals
        .as_ref()?
        .signing_secret
        .0
        .clone();
    let state = Arc::new(RouteState {
        secrets: Secrets::new([secret]),
        http: super::send::client(config.timeout),
        config,
    });
    Some(
        Router::new()
            .route(PATH, post(interaction))
            .with_state(state),
    )
}

async fn interaction(
    State(st): State<Arc<RouteState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let now = Timestamp::now().as_second();
    if let Err(e) = verify_slack(
        header("x-slack-signature"),
        header("x-slack-request-timestamp"),
        &body,
        now,
        st.config.replay_window_seconds,
        &st.secrets,
    ) {
        tracing::warn!(error = %e, "refused a Slack interaction");
        return (StatusCode::UNAUTHORIZED, format!("{e}\n"));
    }
    let payload = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned());
    let Some(payload) = payload else {
        return (
            StatusCode::BAD_REQUEST,
            "no payload field in the form body\n".into(),
        );
    };
    match slack::click(&payload) {
        Ok(Some(click)) => {
            tokio::spawn(async move { decide(&st, click).await });
            (StatusCode::OK, String::new())
        }
        Ok(None) => (StatusCode::OK, String::new()),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

/// Writes the click's decision as the mapped person and tells them how it went.
async fn decide(st: &RouteState, click: Click) {
    let reply = match write(st, &click).await {
        Ok(text) => text,
        Err(text) => text,
    };
    tracing::info!(slack_user = %click.slack_user, run = %format!("{}/{}", click.target.ns, click.target.run), step = %click.target.step, reply = %reply, "Slack interaction");
    let sent = st
        .http
        .post(&click.response_url)
        .json(&slack::ephemeral(&reply))
        .send()
        .await;
    if let Err(e) = sent {
        tracing::warn!(error = %e.without_url(), "replying to a Slack interaction");
    }
}

async fn write(st: &RouteState, click: &Click) -> Result<String, String> {
    let t = &click.target;
    if st.config.namespace.as_ref().is_some_and(|ns| *ns != t.ns) {
        return Err(format!("this operator does not watch namespace {}", t.ns));
    }
    let who = st.config.channels.identity(&click.slack_user)?;
    let client = impersonating(&st.config.kube, who)
        .map_err(|e| format!("cannot build a client as {}: {e}", who.user))?;
    let reason = match click.decision {
        Decision::Approve => None,
        Decision::Reject => Some(format!("rejected from Slack by {}", click.slack_user_name)),
    };
    let verb = match click.decision {
        Decision::Approve => "approved",
        Decision::Reject => "rejected",
    };
    // The one approval write of the CLI and the page, with the impersonating client:
    // the record names the user the API server authenticates (a 403 there: the chart
    // grants no `impersonate` on this user or group), and the requester's own click
    // is refused by the admission policy, as for kubectl.
    let session = Session {
        client,
        namespace: t.ns.clone(),
    };
    let asked = Asked {
        step: &t.step,
        decision: click.decision,
        reason: reason.as_deref(),
        plan: Some(&t.hash),
        requester: Requester::LeaveToApiServer,
    };
    match approve::write(&session, &t.run, &asked).await {
        Ok(Written::Records { user, .. }) => Ok(format!(
            "{verb} step {} of {}/{} (plan {}) as {}",
            t.step, t.ns, t.run, t.hash, user
        )),
        Ok(Written::AlreadyApproved { user }) => Ok(format!(
            "you ({user}) already approved step {} of {}/{} as it is planned now",
            t.step, t.ns, t.run
        )),
        Err(e) => Err(slack::refusal(verb, &who.user, &format!("{e:#}"))),
    }
}

/// The operator's connection, sending `Impersonate-User`/`Impersonate-Group` for
/// `who`: the chart grants `impersonate` on exactly the mapped users and groups.
fn impersonating(base: &kube::Config, who: &Identity) -> Result<kube::Client, kube::Error> {
    let mut config = base.clone();
    config.auth_info.impersonate = Some(who.user.clone());
    config.auth_info.impersonate_groups = (!who.groups.is_empty()).then(|| who.groups.clone());
    kube::Client::try_from(config)
}
