//! Approving and rejecting on the execution page, on the local control plane, in a
//! real headless Chromium: the page writes the decision with the signed-in person's
//! own token, so the API server's admission policies judge them as they judge
//! `kubectl`. alice (the requester) is refused with the API server's message; bob
//! approves her step, which then runs, and the record says bob and the plan hash; a
//! rejection needs a reason and, with one, fails the step and the run. The timeline
//! shows the approval wait. A POST without the form's CSRF value is refused.
//!
//! Needs the cluster (`make cluster-up`) and Debian's `chromium` and
//! `chromium-driver`, then `cargo test --test page_approve_e2e`.

mod common;

use std::time::{Duration, Instant};

use common::TestNamespace;
use common::browser::*;
use common::on_call::*;
use common::operator::*;
use fantoccini::{Client as Browser, Locator};
use kube::api::PostParams;
use playbook_operator::api::{Decision, ExecutionPhase, StepState};
use serde_json::json;

/// Opens `url` (signing in with `user`'s token when the page asks) and waits for the
/// run's page.
async fn open_as(b: &Browser, url: &str, user: &str) {
    b.goto(url).await.expect("opening the page");
    if b.find(Locator::Css("#signin")).await.is_ok() {
        sign_in(b, &common::user_token(user)).await;
    }
    b.wait()
        .for_element(Locator::Css("#live"))
        .await
        .expect("the run's page");
}

/// Waits until the page shows a refusal of a decision; its text.
async fn refusal(b: &Browser) -> String {
    let el = b
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#refused"))
        .await
        .expect("the page says the decision was not written");
    el.text().await.expect("the refusal's text")
}

/// Signs out and waits for the sign-in page.
async fn sign_out(b: &Browser) {
    click(b, "form.signout button").await;
    b.wait()
        .for_element(Locator::Css("#signin"))
        .await
        .expect("the sign-in page after signing out");
}

async fn setup_guarded() -> TestNamespace {
    let ns = setup_on_call("page-approve").await;
    playbook(
        &ns,
        "guarded",
        json!([
            {"id": "check", "phase": "enrich", "image": "busybox"},
            {"id": "restart", "phase": "remediate", "image": "busybox",
             "approval": {"required": true}}
        ]),
    )
    .await;
    ns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bob_approves_alices_step_on_the_page_and_her_own_click_is_refused() {
    let ns = setup_guarded().await;
    let (addr, page_task) = serve_page().await;
    let controller = controller_for(&ns, addr);
    let alice = executions_as("alice", &ns).await;
    for name in ["run-ok", "run-no"] {
        alice
            .create(
                &PostParams::default(),
                &from_json(execution_json(name, None)),
            )
            .await
            .expect("alice starts a run");
    }
    let hash = plan_hash(&ns, "run-ok", "restart").await;
    plan_hash(&ns, "run-no", "restart").await;
    let url = |name: &str| format!("http://{addr}/ui/executions/{}/{name}", ns.name);

    // Without the form's token, with another session's, or with a value planted as
    // a cookie and repeated (double submit, which a sibling host could forge), a
    // signed-in POST is refused: only this session's own form token passes.
    let session = common::http::page_sign_in(addr, &common::user_token("bob"))
        .await
        .unwrap_or_else(|a| panic!("bob signs in: {} {}", a.status, a.body));
    let other = common::http::page_sign_in(addr, &common::user_token("bob"))
        .await
        .unwrap_or_else(|a| panic!("bob signs in again: {} {}", a.status, a.body));
    let decide = format!("/ui/executions/{}/run-ok/decide", ns.name);
    let form = format!("step=restart&decision=approve&plan={hash}");
    let page = format!("/ui/executions/{}/run-ok", ns.name);
    let mut tokens = Vec::new();
    for s in [&session, &other] {
        let shown = common::http::request("GET", addr, &page, &[("Cookie", s)], &[]).await;
        tokens.push(form_token(&shown.body).expect("the detail page carries a form token"));
    }
    let (mine, theirs) = (&tokens[0], &tokens[1]);
    assert_ne!(mine, theirs, "each session has a form token of its own");
    let planted = "A".repeat(mine.len());
    let with_planted = format!("{session}; pbo_csrf={planted}");
    for (cookie, body) in [
        (session.clone(), form.clone()),
        (session.clone(), format!("{form}&csrf={theirs}")),
        (with_planted, format!("{form}&csrf={planted}")),
    ] {
        let answer = common::http::request(
            "POST",
            addr,
            &decide,
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
        .await;
        assert_eq!(answer.status, 403, "{}", answer.body);
        assert!(
            answer.body.contains("not from this page"),
            "{}",
            answer.body
        );
    }

    let (_chrome, b) = chrome().await;
    b.set_window_size(1000, 1400)
        .await
        .expect("resizing the window");

    // alice's own click: the API server refuses, and the page says what it said.
    open_as(&b, &url("run-ok"), "alice").await;
    let plan_text = text_of(&b, "#waiting-restart").await;
    assert!(plan_text.contains(&hash), "the plan's hash: {plan_text}");
    click(&b, "#decide-restart button.approve").await;
    let refused = refusal(&b).await;
    assert!(
        refused.contains(
            "you ('alice') requested this Execution, so you cannot approve its step 'restart'"
        ),
        "the admission policy's message: {refused}"
    );
    let exec = alice.get("run-ok").await.expect("run-ok");
    assert!(exec.spec.approvals.is_empty(), "{:?}", exec.spec.approvals);
    sign_out(&b).await;

    // bob: a rejection without a reason is refused; with one the step and run fail.
    open_as(&b, &url("run-no"), "bob").await;
    click(&b, "#decide-restart button.reject").await;
    assert!(
        refusal(&b).await.contains("a rejection needs a reason"),
        "a reason is asked for"
    );
    let exec = alice.get("run-no").await.expect("run-no");
    assert!(
        exec.spec.approvals.is_empty(),
        "nothing written without a reason"
    );
    find(&b, "#reason-restart")
        .await
        .send_keys("the disk is fine")
        .await
        .expect("typing a reason");
    click(&b, "#decide-restart button.reject").await;
    let status = wait_final(&ns, "run-no").await;
    assert_eq!(status.phase, ExecutionPhase::Failed, "{status:?}");
    assert_eq!(
        step(&status, "restart").message.as_deref(),
        Some("rejected by bob: the disk is fine")
    );

    // bob approves alice's step: it runs, the record says bob and the plan he saw.
    open_as(&b, &url("run-ok"), "bob").await;
    click(&b, "#decide-restart button.approve").await;
    let status = wait_final(&ns, "run-ok").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    assert_eq!(step(&status, "restart").state, StepState::Succeeded);
    let exec = alice.get("run-ok").await.expect("run-ok");
    let records: Vec<_> = exec
        .spec
        .approvals
        .iter()
        .map(|a| {
            (
                a.step.as_str(),
                a.user.as_str(),
                a.decision,
                a.plan_hash.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        records,
        [("restart", "bob", Decision::Approve, Some(hash.as_str()))]
    );

    // The timeline: restart's wait for approval, then its run.
    let deadline = Instant::now() + Duration::from_secs(15);
    while text_of(&b, "#phase").await != "Succeeded" {
        assert!(Instant::now() < deadline, "the page did not show the end");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let wait = find(&b, "#tl-restart rect.wait").await;
    let title = wait.text().await.unwrap_or_default();
    let html = wait.html(false).await.expect("the wait span's markup");
    assert!(
        html.contains("restart: waiting for approval") || title.contains("waiting for approval"),
        "{html}"
    );
    assert!(b.find(Locator::Css("#tl-restart rect.run")).await.is_ok());
    assert!(b.find(Locator::Css("#tl-check rect.run")).await.is_ok());
    screenshot(&b, "approved.png").await;

    b.close().await.expect("closing the browser");
    controller.abort();
    page_task.abort();
    ns.cleanup().await;
}

/// A form POST as a browser without JavaScript sends it: the detail page's own form
/// (its hidden token, the session's) with the session.
async fn post_decision(
    addr: std::net::SocketAddr,
    page: &str,
    session: &str,
    fields: &str,
) -> common::http::Answer {
    let shown = common::http::request("GET", addr, page, &[("Cookie", session)], &[]).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let csrf = form_token(&shown.body).expect("the page's form carries the session's token");
    common::http::request(
        "POST",
        addr,
        &format!("{page}/decide"),
        &[
            ("Cookie", session),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("{fields}&csrf={csrf}").as_bytes(),
    )
    .await
}

/// The hidden `csrf` value of a page's approve/reject form.
fn form_token(body: &str) -> Option<String> {
    let start = body.find(r#"name="csrf" value=""#)? + r#"name="csrf" value=""#.len();
    let len = body[start..].find('"')?;
    Some(body[start..start + len].to_string()).filter(|t| !t.is_empty())
}

/// Without any script (plain HTTP, as a browser with JavaScript off): bob's form POST
/// is answered with a redirect back and recorded; once the Runner changes the plan,
/// the page shows what changed since bob approved, and a form naming the old plan
/// writes nothing and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_the_form_decides_and_the_page_shows_what_changed() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Patch, PatchParams};
    use playbook_operator::api::Runner;

    let ns = setup_on_call("page-nojs").await;
    ns.api::<ServiceAccount>()
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "restarter"}})),
        )
        .await
        .expect("creating ServiceAccount restarter");
    create::<Runner>(
        &ns,
        json!({"apiVersion": "stackpulse.io/v1", "kind": "Runner",
               "metadata": {"name": "default"}, "spec": {}}),
    )
    .await;
    playbook(
        &ns,
        "guarded",
        json!([
            {"id": "check", "image": "busybox"},
            {"id": "restart", "image": "busybox", "approval": {"required": true, "count": 2}}
        ]),
    )
    .await;
    let (addr, page_task) = serve_page().await;
    let controller = controller_for(&ns, addr);
    executions_as("alice", &ns)
        .await
        .create(
            &PostParams::default(),
            &from_json(execution_json("run-1", None)),
        )
        .await
        .expect("alice starts a run");
    let before = plan_hash(&ns, "run-1", "restart").await;
    let page = format!("/ui/executions/{}/run-1", ns.name);
    let bob = common::http::page_sign_in(addr, &common::user_token("bob"))
        .await
        .unwrap_or_else(|a| panic!("bob signs in: {} {}", a.status, a.body));

    // bob's plain form POST: a redirect back to the page, and his record.
    let fields = format!("step=restart&decision=approve&reason=&plan={before}");
    let answer = post_decision(addr, &page, &bob, &fields).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(
        answer
            .headers
            .iter()
            .any(|(k, v)| k == "location" && *v == page),
        "{:?}",
        answer.headers
    );
    let exec = executions_as("alice", &ns)
        .await
        .get("run-1")
        .await
        .expect("run-1");
    let records: Vec<_> = exec
        .spec
        .approvals
        .iter()
        .map(|a| (a.user.as_str(), a.plan_hash.as_deref()))
        .collect();
    assert_eq!(records, [("bob", Some(before.as_str()))]);
    wait_status(&ns, "run-1", "counting bob", common::TIMEOUT, |s| {
        step(s, "restart")
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("1 of 2 approvals (bob)"))
    })
    .await;

    // The Runner's service account changes: another plan, and the page says what
    // changed since bob approved the first.
    ns.api::<Runner>()
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"serviceAccountName": "restarter"}})),
        )
        .await
        .expect("patching the Runner");
    let deadline = Instant::now() + common::TIMEOUT;
    let shown = loop {
        let (status, body) = common::http::get_with(addr, &page, &[("Cookie", bob.as_str())]).await;
        assert_eq!(status, 200, "{body}");
        if body.contains("changed-restart-1") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed what changed since bob's approval:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        shown.contains(&format!(
            "Changed since bob approved plan <code>{before}</code>:"
        )),
        "{shown}"
    );
    assert!(
        shown.contains("<code>serviceAccount</code>") && shown.contains("<ins>restarter</ins>"),
        "the changed field, old and new: {shown}"
    );

    // carol decides on the page she loaded before the change: nothing is written.
    let carol = common::http::page_sign_in(addr, &common::user_token("carol"))
        .await
        .unwrap_or_else(|a| panic!("carol signs in: {} {}", a.status, a.body));
    let answer = post_decision(addr, &page, &carol, &fields).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(
        answer.body.contains(r#"id="refused""#)
            && answer
                .body
                .contains(&format!("changed since you looked at it (hash {before}")),
        "{}",
        answer.body
    );
    let exec = executions_as("alice", &ns)
        .await
        .get("run-1")
        .await
        .expect("run-1");
    assert_eq!(exec.spec.approvals.len(), 1, "{:?}", exec.spec.approvals);

    controller.abort();
    page_task.abort();
    ns.cleanup().await;
}
