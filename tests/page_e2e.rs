//! The execution page on the local control plane, in a real headless Chromium driven
//! over WebDriver (chromedriver): alice signs in with her own bearer token and sees
//! only the namespace RBAC grants her; the page shows the steps by phase, an output
//! value (escaped: the output carries a `<script>`), the waiting approval; it updates
//! by itself when bob's approval lets the run finish; a bad or missing token gets the
//! sign-in page, never data. Takes the README's screenshots (docs/screenshots/).
//!
//! Needs the cluster (`make cluster-up`) and Debian's `chromium` and
//! `chromium-driver` (tests/cluster/build.sh installs them), then
//! `cargo test --test page_e2e`.

mod common;

use std::time::{Duration, Instant};

use common::TestNamespace;
use common::browser::*;
use common::operator::*;
use fantoccini::Locator;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Patch, PatchParams};
use playbook_operator::api::{Execution, ExecutionPhase, StepState};
use serde_json::json;

/// alice may read Executions and pod logs in `ns`; bob may approve there.
async fn grant(ns: &TestNamespace) {
    for (user, rules) in [
        (
            "alice",
            json!([
                {"apiGroups": ["stackpulse.io"], "resources": ["executions"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}
            ]),
        ),
        (
            "bob",
            json!([{"apiGroups": ["stackpulse.io"], "resources": ["executions"], "verbs": ["get", "patch"]}]),
        ),
    ] {
        let name = format!("page-{user}");
        create::<Role>(
            ns,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                   "metadata": {"name": name}, "rules": rules}),
        )
        .await;
        create::<RoleBinding>(
            ns,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": name},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_signs_in_sees_her_namespace_and_watches_the_run_finish() {
    let ns = setup("page").await;
    let hidden = setup("page-hidden").await;
    grant(&ns).await;
    let output = json!({"connected_clients": 7, "note": "<script>window.pwned = 1</script>"});
    for n in [&ns, &hidden] {
        n.set_default_log(&step_log("checked redis", output.clone()))
            .await;
    }
    playbook(
        &ns,
        "redis-incident",
        json!([
            {"id": "redis-info", "phase": "enrich", "image": "redis-info"},
            {"id": "tell-teams", "phase": "communicate", "image": "teams-message",
             "env": {"TEAMS_URL": "{{ .execution.url }}"}},
            {"id": "restart-redis", "phase": "remediate", "image": "kubectl",
             "approval": {"required": true}}
        ]),
    )
    .await;
    playbook(
        &hidden,
        "secret-playbook",
        json!([{"id": "only", "image": "busybox"}]),
    )
    .await;

    let (addr, page_task) = serve_page().await;
    let controllers = [controller_for(&ns, addr), controller_for(&hidden, addr)];
    create::<Execution>(
        &ns,
        json!({"apiVersion": "stackpulse.io/v1", "kind": "Execution",
               "metadata": {"name": "redis-down-1"},
               "spec": {"playbookRef": {"name": "redis-incident"},
                        "alert": {"labels": {"alertname": "RedisDown", "instance": "redis-0"},
                                  "status": "firing"}}}),
    )
    .await;
    execution(&hidden, "hidden-run", "secret-playbook", json!({})).await;
    let waiting = wait_status(
        &ns,
        "redis-down-1",
        "waiting for approval",
        common::TIMEOUT,
        |s| s.phase == ExecutionPhase::WaitingApproval,
    )
    .await;
    let plan = step(&waiting, "restart-redis")
        .plan
        .clone()
        .expect("a waiting step shows its plan");
    wait_final(&hidden, "hidden-run").await;

    // .execution.url is the run's page under --external-url.
    let teams = jobs_of_step(&ns, "tell-teams").await;
    let page_url = format!("http://{addr}/ui/executions/{}/redis-down-1", ns.name);
    assert_eq!(
        teams.first().and_then(|j| env_value(j, "TEAMS_URL")),
        Some(page_url.clone())
    );

    // No cookie: the sign-in page, not data (also without a browser).
    let (status, body) =
        common::http::get(addr, &format!("/ui/executions/{}/redis-down-1", ns.name)).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains(r#"id="signin""#) && !body.contains("connected_clients"),
        "{body}"
    );

    let (_chrome, b) = chrome().await;
    b.goto(&page_url).await.expect("opening the page");
    assert!(
        !source(&b).await.contains("connected_clients"),
        "no data before sign-in"
    );

    // A bad token: the sign-in page again, saying why.
    sign_in(&b, "not-a-real-token").await;
    let error = b
        .wait()
        .for_element(Locator::Css("#signin-error"))
        .await
        .expect("a sign-in error");
    assert!(
        error
            .text()
            .await
            .expect("text")
            .contains("did not accept this token"),
        "the refusal says what to do"
    );
    assert!(!source(&b).await.contains("connected_clients"));

    // alice's own token: back to the page she asked for.
    sign_in(&b, &common::user_token("alice")).await;
    b.wait()
        .for_element(Locator::Css("#live"))
        .await
        .expect("the detail page after sign-in");
    let page = source(&b).await;
    for phase in ["Enrich", "Communicate", "Remediate"] {
        assert!(
            page.contains(&format!(">{phase}</h3>")),
            "phase {phase} in:\n{page}"
        );
    }
    assert!(
        page.contains("connected_clients"),
        "the output value is shown"
    );
    assert!(page.contains("RedisDown"), "the alert is shown");
    let waiting_text = text_of(&b, "#waiting-restart-redis").await;
    assert!(
        waiting_text.contains("restart-redis")
            && waiting_text.contains(&plan.hash)
            && waiting_text.contains(&plan.image),
        "the waiting approval with its plan: {waiting_text}"
    );
    assert_eq!(text_of(&b, "#phase").await, "WaitingApproval");
    assert_eq!(
        b.execute("return window.pwned === undefined", vec![])
            .await
            .expect("a script"),
        json!(true),
        "the <script> in the output did not run"
    );
    click(&b, "#out-redis-info summary").await;
    // Tall enough for the steps and the opened output.
    b.set_window_size(1000, 1500)
        .await
        .expect("resizing the window");
    screenshot(&b, "execution.png").await;

    // bob approves through the API; the page, untouched, shows the run finish.
    b.execute("window.stayed = true", vec![])
        .await
        .expect("marking the page");
    let bob = kube::Api::<Execution>::namespaced(common::user_client("bob").await, &ns.name);
    bob.patch(
        "redis-down-1",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([{"op": "add", "path": "/spec/approvals",
                "value": [{"step": "restart-redis", "user": "bob", "planHash": plan.hash}]}]))
            .expect("a JSON patch"),
        ),
    )
    .await
    .expect("bob approves");
    let status = wait_final(&ns, "redis-down-1").await;
    assert_eq!(status.phase, ExecutionPhase::Succeeded, "{status:?}");
    assert_eq!(step(&status, "restart-redis").state, StepState::Succeeded);
    let deadline = Instant::now() + Duration::from_secs(15);
    while text_of(&b, "#phase").await != "Succeeded" {
        assert!(
            Instant::now() < deadline,
            "the page did not update by itself within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        b.execute("return window.stayed === true", vec![])
            .await
            .expect("a script"),
        json!(true),
        "updated in place, without a reload"
    );
    assert!(
        source(&b).await.contains(&format!(
            "approved restart-redis (plan <code>{}</code>)",
            plan.hash
        )),
        "who approved which plan"
    );
    assert!(
        b.find(Locator::Css("#out-redis-info[open]")).await.is_ok(),
        "an opened output stays open across refreshes"
    );

    // The list: her namespace's run, not the hidden one.
    b.set_window_size(1000, 500)
        .await
        .expect("resizing the window");
    b.goto(&format!("http://{addr}/ui/"))
        .await
        .expect("the list");
    let list = source(&b).await;
    assert!(list.contains("redis-down-1"), "{list}");
    assert!(
        !list.contains("hidden-run") && !list.contains(&hidden.name),
        "{list}"
    );
    screenshot(&b, "executions.png").await;

    // The step's log, through pods/log (alice may get pods/log here).
    b.goto(&format!("{page_url}/log?step=redis-info"))
        .await
        .expect("the log");
    assert!(source(&b).await.contains("checked redis"));
    // A namespace she may not see reads as not found.
    b.goto(&format!(
        "http://{addr}/ui/executions/{}/hidden-run",
        hidden.name
    ))
    .await
    .expect("the hidden run");
    assert!(!source(&b).await.contains("secret-playbook"));

    // Signed out: the sign-in page again.
    b.goto(&format!("http://{addr}/ui/"))
        .await
        .expect("the list");
    click(&b, "form.signout button").await;
    // The sign-out POST must finish (it clears the cookie and answers with the sign-in
    // page) before the next navigation, which would otherwise cancel it.
    b.wait()
        .for_element(Locator::Css("#signin"))
        .await
        .expect("the sign-in page right after signing out");
    b.goto(&page_url).await.expect("the page again");
    b.wait()
        .for_element(Locator::Css("#signin"))
        .await
        .expect("the sign-in page after signing out");
    assert!(!source(&b).await.contains("connected_clients"));

    b.close().await.expect("closing the browser");
    for c in controllers {
        c.abort();
    }
    page_task.abort();
    ns.cleanup().await;
    hidden.cleanup().await;
}
