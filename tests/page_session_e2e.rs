//! The execution page's sessions over plain HTTP on the local control plane (real
//! TokenReviews): the cookie holds a random id, never the token; sessions end after
//! their idle and absolute expiry and when signed out (on the server, not only in the
//! browser); the sign-in form needs its CSRF value; failed sign-ins are throttled.
//!
//! Needs a cluster: `make cluster-up`, then `cargo test --test page_session_e2e`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::http::{Answer, page_sign_in, request};
use playbook_operator::page::session::Limits;
use playbook_operator::{page, server};

/// The page as `run` serves it, with session expiries in seconds; its address.
async fn serve_page(idle: u64, absolute: u64) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = server::bind("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("binding a port");
    let addr = listener.local_addr().expect("the bound address");
    let (routes, task) = page::start(
        common::client().await,
        common::config().await,
        page::Config {
            namespace: None,
            external_url: None,
            log_limit_bytes: page::DEFAULT_LOG_LIMIT_BYTES,
            plain_http: false,
            sessions: Limits {
                idle: Duration::from_secs(idle),
                absolute: Duration::from_secs(absolute),
                ..Limits::default()
            },
        },
    );
    let handle = tokio::spawn(async move {
        let serve = server::serve(listener, routes, futures::future::pending());
        let _ = futures::join!(serve, task);
    });
    (addr, handle)
}

async fn list(addr: SocketAddr, cookie: &str) -> Answer {
    request("GET", addr, "/ui/", &[("Cookie", cookie)], &[]).await
}

async fn sign_in(addr: SocketAddr, token: &str) -> String {
    page_sign_in(addr, token)
        .await
        .unwrap_or_else(|a| panic!("signing in: {} {}", a.status, a.body))
}

async fn post_form(addr: SocketAddr, cookie: &str, body: &str) -> Answer {
    request(
        "POST",
        addr,
        "/ui/login",
        &[
            ("Cookie", cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_holds_a_session_id_that_expires_and_signs_out() {
    let token = common::user_token("alice");
    let (addr, server) = serve_page(2, 4).await;

    // Signed in: the cookie is a random 256-bit id, Secure, HttpOnly, Strict.
    let form = request("GET", addr, "/ui/login", &[], &[]).await;
    let csrf_header = form
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("pbo_csrf="))
        .map(|(_, v)| v.clone())
        .expect("the sign-in page sets its CSRF cookie");
    assert!(
        csrf_header.contains("HttpOnly; SameSite=Strict; Secure"),
        "{csrf_header}"
    );
    let cookie = sign_in(addr, &token).await;
    let id = cookie
        .strip_prefix("pbo_session=")
        .expect("a session cookie");
    assert_eq!(id.len(), 64, "{cookie}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{cookie}");
    assert!(
        !cookie.contains(&token) && !token.contains(id),
        "no token in the cookie"
    );
    let page = list(addr, &cookie).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("alice"), "{}", page.body);

    // The raw token as a cookie (what the page once set) is no session.
    let raw = list(addr, &format!("pbo_session={token}")).await;
    assert_eq!(raw.status, 401);

    // Idle expiry (2 s): requests within it keep the session; a pause ends it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        list(addr, &cookie).await.status,
        200,
        "within the idle time"
    );
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let ended = list(addr, &cookie).await;
    assert_eq!(ended.status, 401, "{}", ended.body);
    assert!(
        ended.body.contains("your session has ended"),
        "{}",
        ended.body
    );

    // Absolute expiry (4 s): busy all along, the session still ends.
    let cookie = sign_in(addr, &token).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(
            list(addr, &cookie).await.status,
            200,
            "before the absolute expiry"
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        list(addr, &cookie).await.status,
        401,
        "past the absolute expiry"
    );

    // Signing out ends the session on the server: the old cookie, replayed, is refused.
    let cookie = sign_in(addr, &token).await;
    let out = request("POST", addr, "/ui/logout", &[("Cookie", &cookie)], &[]).await;
    assert_eq!(out.status, 303);
    assert_eq!(
        out.cookie("pbo_session").as_deref(),
        Some(""),
        "cookie cleared"
    );
    assert_eq!(list(addr, &cookie).await.status, 401, "the session is gone");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_needs_the_forms_csrf_value_and_failures_are_throttled() {
    let token = common::user_token("alice");
    let (addr, server) = serve_page(3600, 43200).await;
    let form = request("GET", addr, "/ui/login", &[], &[]).await;
    let csrf = form.cookie("pbo_csrf").expect("a CSRF cookie");
    assert!(
        form.body
            .contains(&format!(r#"name="csrf" value="{csrf}""#)),
        "{}",
        form.body
    );

    // (cookie, form body): no CSRF value, none in the cookie, values that differ.
    let other = "ab".repeat(32);
    let cases = [
        (
            format!("pbo_csrf={csrf}"),
            format!("token={token}&next=%2Fui%2F"),
        ),
        (String::new(), format!("token={token}&csrf={csrf}")),
        (
            format!("pbo_csrf={other}"),
            format!("token={token}&csrf={csrf}"),
        ),
    ];
    for (cookie, body) in &cases {
        let answer = post_form(addr, cookie, body).await;
        assert_eq!(answer.status, 403, "{cookie} {body}: {}", answer.body);
        assert_eq!(
            answer.cookie("pbo_session"),
            None,
            "no session without CSRF"
        );
        assert!(
            answer.body.contains("not from this page"),
            "{}",
            answer.body
        );
    }

    // Five bad tokens from one address, then even a good one waits.
    let cookie = format!("pbo_csrf={csrf}");
    for i in 0..5 {
        let answer = post_form(addr, &cookie, &format!("token=not-a-token-{i}&csrf={csrf}")).await;
        assert_eq!(answer.status, 401, "{}", answer.body);
    }
    let answer = post_form(addr, &cookie, &format!("token={token}&csrf={csrf}")).await;
    assert_eq!(answer.status, 429, "{}", answer.body);
    assert!(
        answer.body.contains("too many failed sign-ins"),
        "{}",
        answer.body
    );
    assert_eq!(answer.cookie("pbo_session"), None);
    server.abort();
}
