//! Signing in and out of the execution page: `GET /ui/login`, `POST /ui/login`,
//! `POST /ui/logout`, and the sign-in page every route answers when nobody is
//! signed in.
//!
//! The form carries a CSRF value that must repeat the `pbo_csrf` cookie (double
//! submit): another site can make a browser post the form, but cannot read or set
//! our cookie, so it cannot sign a victim into the attacker's account. Failed
//! sign-ins are throttled per client address (`session::Throttle`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Extension;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;

use super::auth::{self, COOKIE, CSRF_COOKIE, Refused};
use super::{Shared, html, rendered};

/// A cookie of the request, by name.
pub(super) fn request_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie(h, name))
}

/// The sign-in page with `status`, carrying the CSRF value of the request's cookie,
/// or a new one (then set as the cookie).
pub(super) fn sign_in_page(
    shared: &Shared,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
    next: &str,
) -> Response {
    let (csrf, fresh) = csrf_value(shared, headers);
    let mut page = match shared.templates.login(error, next, &csrf) {
        Ok(body) => html(status, body),
        Err(e) => return rendered(Err(e)),
    };
    if let Some(cookie) = fresh {
        set(&mut page, &cookie);
    }
    page
}

/// The CSRF value a form repeats: the request's `pbo_csrf` cookie, or a new one with
/// the `Set-Cookie` that gives it to the browser.
pub(super) fn csrf_value(shared: &Shared, headers: &HeaderMap) -> (String, Option<String>) {
    let existing = request_cookie(headers, CSRF_COOKIE)
        .filter(|v| crate::page::session::well_formed(v))
        .map(str::to_string);
    match existing {
        Some(v) => (v, None),
        None => {
            let v = shared.sessions.random().unwrap_or_default();
            let cookie = auth::set_cookie(CSRF_COOKIE, Some(&v), secure(shared));
            (v, Some(cookie))
        }
    }
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    token: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    csrf: String,
}

/// Only a page of ours is a place to go after signing in (no open redirect).
pub(super) fn safe_next(next: &str) -> &str {
    if next.starts_with("/ui/") && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/ui/"
    }
}

pub(super) async fn login_page(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    // Answered 200 here: this is the page asked for, not a refusal.
    sign_in_page(&shared, &headers, StatusCode::OK, None, "/ui/")
}

pub(super) async fn login(
    State(shared): State<Arc<Shared>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(&form.next);
    let refuse = |status, why: &str| sign_in_page(&shared, &headers, status, Some(why), next);
    if !auth::csrf_matches(request_cookie(&headers, CSRF_COOKIE), &form.csrf) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this sign-in form is not from this page (or it expired): sign in again here",
        );
    }
    let token = form.token.trim();
    if !auth::token_shaped(token) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "that is not a bearer token: paste only the token, without `Bearer ` or quotes",
        );
    }
    // Without the peer (a server not set up for it) all share one budget: safe.
    let addr = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.0.ip());
    match shared.sessions.sign_in(token, addr).await {
        Ok((id, user)) => {
            tracing::info!(user = %user.name, "page: signed in");
            let mut r = Redirect::to(next).into_response();
            set(
                &mut r,
                &auth::set_cookie(COOKIE, Some(&id), secure(&shared)),
            );
            r
        }
        Err(e @ Refused::Throttled) => refuse(StatusCode::TOO_MANY_REQUESTS, &e.to_string()),
        Err(e) => refuse(StatusCode::UNAUTHORIZED, &e.to_string()),
    }
}

/// Ends the session on this replica and clears the cookie. No CSRF value needed:
/// the session cookie is SameSite=Strict, so another site cannot sign anyone out.
pub(super) async fn logout(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(id) = request_cookie(&headers, COOKIE) {
        shared.sessions.sign_out(id);
    }
    let mut r = Redirect::to("/ui/login").into_response();
    set(&mut r, &auth::set_cookie(COOKIE, None, secure(&shared)));
    r
}

/// Cookies are Secure unless the operator was told it is served over plain http.
fn secure(shared: &Shared) -> bool {
    !shared.config.plain_http
}

pub(super) fn set(r: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}
