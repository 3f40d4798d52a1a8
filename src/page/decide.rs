//! Approve and reject from the execution page: `POST /ui/executions/{ns}/{name}/decide`,
//! the one write the page makes.
//!
//! The approval is written with the signed-in person's own bearer token (a client
//! built per request from the operator's cluster address and CA, none of its
//! credentials), through the same function as `playbook-operator approve`. RBAC and
//! the admission policies therefore judge the person, never the operator's
//! ServiceAccount: the requester's own approval is refused by the API server, and the
//! page shows its message. The form repeats its session's form token (kept with the
//! session on the server, so a planted cookie cannot forge it) and the session cookie
//! is SameSite=Strict, so another site can neither post it nor ride the session. It
//! names the plan hash the person saw: if the plan changed since, nothing is written.
//! A plain form POST answered with a redirect back, so it works without JavaScript.

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth;
use super::{Shared, detail_response, signed_in, text};
use crate::cli::approve::{self, Asked, Requester, Written};
use crate::cli::cluster;
use crate::engine::page as view;

#[derive(Deserialize)]
pub(super) struct DecideForm {
    /// The waiting instance (`status.steps[].id`).
    step: String,
    /// `approve` or `reject`.
    decision: String,
    #[serde(default)]
    reason: String,
    /// The plan hash the page showed.
    #[serde(default)]
    plan: String,
    #[serde(default)]
    csrf: String,
}

/// What the page says about a decision that was not written, beside the step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Refusal {
    pub step: String,
    pub message: String,
}

pub(super) async fn decide(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    Form(form): Form<DecideForm>,
) -> Response {
    let href = view::execution_path(&ns, &name);
    let (session, _) = match signed_in(&shared, &headers, &href).await {
        Ok(u) => u,
        Err(page) => return page,
    };
    let expected = shared.sessions.form_token(&session);
    if !auth::csrf_matches(expected.as_deref(), &form.csrf) {
        return text(
            StatusCode::FORBIDDEN,
            "this form is not from this page (or it expired): open the run's page again and decide there"
                .into(),
        );
    }
    let refused = |status, message: String| {
        let refusal = Refusal {
            step: form.step.clone(),
            message,
        };
        let shared = shared.clone();
        let headers = headers.clone();
        let (ns, name) = (ns.clone(), name.clone());
        async move {
            let mut page =
                detail_response(&shared, &headers, &ns, &name, false, Some(refusal)).await;
            if page.status() == StatusCode::OK {
                *page.status_mut() = status;
            }
            page
        }
    };
    let decision = match view::decision::parse_decision(&form.decision) {
        Ok(d) => d,
        Err(why) => return refused(StatusCode::BAD_REQUEST, why).await,
    };
    let reason = form.reason.trim();
    if let Err(why) = view::decision::reason_given(decision, reason) {
        return refused(StatusCode::BAD_REQUEST, why).await;
    }
    let client = match shared.sessions.client_as(&session, &shared.cluster) {
        Ok(c) => c,
        Err(e) => return refused(StatusCode::UNAUTHORIZED, e.to_string()).await,
    };
    let as_person = cluster::Session {
        client,
        namespace: ns.clone(),
    };
    let asked = Asked {
        step: &form.step,
        decision,
        reason: Some(reason).filter(|r| !r.is_empty()),
        plan: Some(form.plan.as_str()).filter(|p| !p.is_empty()),
        requester: Requester::LeaveToApiServer,
    };
    match approve::write(&as_person, &name, &asked).await {
        Ok(Written::Records { user, steps }) => {
            tracing::info!(%user, execution = %name, namespace = %ns, ?steps, ?decision, "page: decision written");
            Redirect::to(&href).into_response()
        }
        Ok(Written::AlreadyApproved { .. }) => Redirect::to(&href).into_response(),
        // The API server's own words (an admission policy's message, RBAC's refusal).
        Err(e) => refused(StatusCode::FORBIDDEN, format!("{e:#}")).await,
    }
}
