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

    // Without the form's CSRF value (or with another one), a signed-in POST is refused.
    let session = common::http::page_sign_in(addr, &common::user_token("bob"))
        .await
        .unwrap_or_else(|a| panic!("bob signs in: {} {}", a.status, a.body));
    let decide = format!("/ui/executions/{}/run-ok/decide", ns.name);
    let form = format!("step=restart&decision=approve&plan={hash}");
    let with_csrf = format!("{session}; pbo_csrf={}", "ab".repeat(32));
    for (cookie, body) in [
        (session.clone(), form.clone()),
        (with_csrf, format!("{form}&csrf={}", "cd".repeat(32))),
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
