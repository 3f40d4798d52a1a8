//! The execution page's Events on the local control plane: an Event a tenant creates
//! in its own namespace naming another namespace's Execution (the API server accepts
//! it: an Event with `eventTime` may name an object anywhere) never reaches that
//! run's page; a flood of Events about one run shows the newest 50.
//!
//! Needs a cluster: `make cluster-up`, then `cargo test --test page_events_e2e`.

mod common;

use std::time::{Duration, Instant};

use common::TestNamespace;
use common::http::{page_sign_in, request};
use common::operator::*;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::ResourceExt;
use playbook_operator::engine::page::MAX_EVENTS;
use serde_json::{Value, json};

/// alice may read Executions in `ns`.
async fn grant_alice(ns: &TestNamespace) {
    create::<Role>(
        ns,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "page-alice"},
               "rules": [{"apiGroups": ["stackpulse.io"], "resources": ["executions"],
                          "verbs": ["get", "list", "watch"]}]}),
    )
    .await;
    create::<RoleBinding>(
        ns,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "page-alice"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "page-alice"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}),
    )
    .await;
}

/// A new-style Event (with `eventTime`) in `ns` about the Execution `object`.
fn event(name: &str, object: &Value, second: u32, message: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": object,
        "reason": "Note", "message": message, "type": "Normal",
        "eventTime": format!("2026-11-25T10:{:02}:{:02}.000000Z", second / 60, second % 60),
        "action": "Note", "reportingComponent": "tenant.example/tool",
        "reportingInstance": "tool-1"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_event_about_another_namespaces_run_stays_off_its_page_and_a_flood_shows_the_newest()
 {
    let prod = setup("page-events").await;
    let tenant = TestNamespace::new("page-events-tenant").await;
    grant_alice(&prod).await;
    let run = execution(&prod, "r1", "absent", json!({})).await;
    let object = json!({"kind": "Execution", "apiVersion": "stackpulse.io/v1",
                        "namespace": prod.name, "name": "r1", "uid": run.uid()});

    // The tenant's Event names prod's run, uid and all, and is the newest of all.
    let forged: Event = create(
        &tenant,
        event("forged", &object, 3599, "forged by the tenant"),
    )
    .await;
    assert_eq!(
        forged.involved_object.namespace.as_deref(),
        Some(prod.name.as_str()),
        "the API server kept the other namespace in the tenant's Event"
    );
    let flood = MAX_EVENTS + 10;
    for i in 0..flood {
        create::<Event>(
            &prod,
            event(
                &format!("flood-{i:03}"),
                &object,
                i as u32,
                &format!("flood {i:03}"),
            ),
        )
        .await;
    }

    let (addr, server) = common::browser::serve_page().await;
    let cookie = page_sign_in(addr, &common::user_token("alice"))
        .await
        .unwrap_or_else(|a| panic!("signing in: {} {}", a.status, a.body));
    let path = format!("/ui/executions/{}/r1", prod.name);
    let newest = format!("flood {:03}", flood - 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let page = request("GET", addr, &path, &[("Cookie", &cookie)], &[]).await;
        if page.status == 200 && page.body.contains(&newest) {
            break page.body;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {newest:?}: {} {}",
            page.status,
            page.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        !page.contains("forged by the tenant"),
        "another namespace's Event is on the run's page:\n{page}"
    );
    let shown = (0..flood)
        .filter(|i| page.contains(&format!("flood {i:03}")))
        .count();
    assert_eq!(shown, MAX_EVENTS, "the newest {MAX_EVENTS} of {flood}");
    assert!(!page.contains("flood 000"), "the oldest is not shown");
    server.abort();
    tenant.cleanup().await;
    prod.cleanup().await;
}
