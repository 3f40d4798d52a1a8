//! The webhook's create path on the local control plane: one tenant's refusal fails
//! only its own Execution, and an object that merely has an Execution's name is not
//! taken for a duplicate.
//!
//! Needs a cluster: `make cluster-up`, then `cargo test --test intake_e2e`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestNamespace;
use common::http::post;
use common::operator::*;
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::Api;
use playbook_operator::api::{AlertSource, Execution, Trigger};
use playbook_operator::engine::alert::{self, trigger::execution_name};
use playbook_operator::webhook;
use playbook_operator::{metrics::Metrics, server};
use serde_json::{Value, json};

const TOKEN: &str = "intake-e2e-token";

/// Whether the quota controller fills in `no-runs`'s count of Executions within `wait`.
async fn counted_within(quotas: &Api<ResourceQuota>, wait: Duration) -> bool {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        let counted = quotas
            .get("no-runs")
            .await
            .ok()
            .and_then(|q| q.status)
            .and_then(|s| s.used)
            .is_some_and(|used| used.contains_key("count/executions.stackpulse.io"));
        if counted {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// The webhooks as `run` serves them, over Triggers of all namespaces (the alerts
/// of one request reach two tenants); their address.
async fn serve_webhooks(ns: &TestNamespace) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let file = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(file.path(), format!("{TOKEN}\n")).expect("writing the token file");
    let config = webhook::Config {
        namespace: None,
        ..common::webhook::config(ns, file.path()).await
    };
    let listener = server::bind("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("binding a port");
    let addr = listener.local_addr().expect("the bound address");
    let (routes, task) = webhook::start(
        ns.client.clone(),
        config,
        Arc::new(Metrics::default()),
        futures::future::pending(),
    );
    let handle = tokio::spawn(async move {
        let serve = server::serve(listener, routes, futures::future::pending());
        let _ = futures::join!(serve, task);
    });
    (addr, handle)
}

async fn trigger(ns: &TestNamespace, name: &str, tenant: &str, alertname: &str) -> Trigger {
    create(
        ns,
        json!({"apiVersion": "stackpulse.io/v1", "kind": "Trigger", "metadata": {"name": name},
               "spec": {"playbookRef": {"name": "fix"}, "sources": ["generic"],
                        "match": {"labels": {"alertname": alertname, "tenant": tenant}}}}),
    )
    .await
}

/// POSTs `body` to /webhooks/generic until the Trigger cache has listed both
/// Triggers (a 202 that is not about them yet is retried too); the answer.
async fn deliver(
    addr: std::net::SocketAddr,
    body: &Value,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let auth = format!("Bearer {TOKEN}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, text) = post(
            addr,
            "/webhooks/generic",
            &[("Authorization", &auth)],
            body.to_string().as_bytes(),
        )
        .await;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if code == 202 && ready(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "no fitting answer within 20 s: {code} {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_refusal_fails_only_its_execution() {
    let a = setup("intake-a").await;
    let b = setup("intake-b").await;
    let alertname = format!("IntakeE2E{}", common::random_suffix());
    for (ns, tenant) in [(&a, "a"), (&b, "b")] {
        playbook(ns, "fix", json!([{"id": "look", "image": "busybox"}])).await;
        trigger(ns, "tenant", tenant, &alertname).await;
    }
    // Tenant B may hold no Executions at all; wait until the quota controller has
    // counted them, so the refusal is the quota's own ("exceeded quota").
    // kube-controller-manager's quota controller finds new resources (the CRDs) every
    // 30 s, and a quota it synced before that waits for its 5-minute resync: on a
    // fresh cluster the quota is made again every 10 s until it is counted.
    let quotas: Api<ResourceQuota> = b.api();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        create::<ResourceQuota>(
            &b,
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-runs"},
                   "spec": {"hard": {"count/executions.stackpulse.io": "0"}}}),
        )
        .await;
        if counted_within(&quotas, Duration::from_secs(10)).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "quota not counted within 90 s (is kube-controller-manager up?)"
        );
        quotas
            .delete("no-runs", &Default::default())
            .await
            .expect("deleting the quota to make it again");
        while quotas.get_opt("no-runs").await.ok().flatten().is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let (addr, server) = serve_webhooks(&a).await;
    let body = json!({"alerts": [
        {"id": "disk-a", "labels": {"alertname": alertname, "tenant": "a"}},
        {"id": "disk-b", "labels": {"alertname": alertname, "tenant": "b"}}
    ]});
    let b_refused = |answer: &Value| {
        strings(&answer["errors"])
            .iter()
            .any(|e| e.contains(&format!("{}/tenant-", b.name)))
    };
    let answer = deliver(addr, &body, b_refused).await;
    let created = strings(&answer["created"]);
    assert_eq!(created.len(), 1, "{answer}");
    assert!(
        created[0].starts_with(&format!("{}/tenant-", a.name)),
        "{answer}"
    );
    let refusal = strings(&answer["errors"])
        .into_iter()
        .find(|e| e.contains(&format!("{}/tenant-", b.name)))
        .expect("B's refusal");
    assert!(
        refusal.contains("403 Forbidden") && refusal.contains("exceeded quota"),
        "the API server's reason: {refusal}"
    );
    let a_name = created[0].split('/').nth(1).expect("ns/name").to_string();
    let execs: Api<Execution> = a.api();
    assert!(execs.get(&a_name).await.is_ok(), "A's Execution exists");
    let in_b: Api<Execution> = b.api();
    assert!(
        in_b.list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty(),
        "nothing in B"
    );

    // The same request again: A's is a duplicate (made for this alert), B still refused.
    let again = deliver(addr, &body, b_refused).await;
    assert_eq!(strings(&again["duplicates"]), created, "{again}");
    assert!(strings(&again["created"]).is_empty(), "{again}");

    // Someone pre-creates an object with the name a new alert's Execution will have:
    // it is reported, not counted as a duplicate, and the alert is not acknowledged
    // as handled in silence.
    let fresh = json!({"id": "disk-a-2", "labels": {"alertname": alertname, "tenant": "a"}});
    let parsed = alert::parse(AlertSource::Generic, fresh.to_string().as_bytes()).expect("parses");
    let squatted = execution_name("tenant", &parsed[0]);
    execution(&a, &squatted, "fix", json!({})).await;
    let body = json!({"alerts": [fresh]});
    let answer = deliver(addr, &body, |answer| !strings(&answer["errors"]).is_empty()).await;
    assert!(strings(&answer["duplicates"]).is_empty(), "{answer}");
    assert!(strings(&answer["created"]).is_empty(), "{answer}");
    let want = format!(
        "an Execution named {}/{squatted} exists but was not made for this alert",
        a.name
    );
    assert!(
        strings(&answer["errors"]).iter().any(|e| e.contains(&want)),
        "{answer}"
    );

    server.abort();
    a.cleanup().await;
    b.cleanup().await;
}
