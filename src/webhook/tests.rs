//! The answers that need an API server misbehaving: against a fake one, through the
//! real routes. (The happy paths and 400/401/403/404/413 run against a real API
//! server in tests/alerts_e2e.rs.)

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use http::{Request, Response};
use kube::runtime::watcher::Event;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::engine::alert::trigger::{CompiledTrigger, Outcome};
use crate::webhook::auth::{CredentialFiles, LinesFile};

const TOKEN: &str = "t0ken";

/// A client whose API server answers every request with `code` after `delay`.
fn fake_client(code: u16, delay: Duration) -> Client {
    fake_client_with(code, delay, BTreeMap::new())
}

/// Like [`fake_client`], but a list by name (how a 409 is read back) finds an
/// object with the labels `existing` holds for that name (none: no labels).
fn fake_client_with(
    code: u16,
    delay: Duration,
    existing: BTreeMap<String, BTreeMap<String, String>>,
) -> Client {
    let existing = Arc::new(existing);
    let service = tower::service_fn(move |req: Request<kube::client::Body>| {
        let existing = existing.clone();
        async move {
            tokio::time::sleep(delay).await;
            if req.method() == http::Method::GET {
                let query = req.uri().query().unwrap_or_default().to_string();
                let name = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("fieldSelector=metadata.name%3D"))
                    .unwrap_or_default()
                    .to_string();
                let labels = existing.get(&name).cloned().unwrap_or_default();
                let body = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                                  "metadata": {}, "items": [{"apiVersion": "meta.k8s.io/v1",
                                  "kind": "PartialObjectMetadata",
                                  "metadata": {"name": name, "namespace": "ns", "labels": labels}}]});
                return Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(body.to_string().into_bytes()));
            }
            let reason = match code {
                409 => "AlreadyExists",
                403 => "Forbidden",
                _ => "Unknown",
            };
            let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                              "code": code, "reason": reason,
                              "message": format!("the fake API server says {code}")});
            let body = if code < 300 {
                json!({"apiVersion": "stackpulse.io/v1", "kind": "Execution",
                       "metadata": {"name": "x", "namespace": "ns"}, "spec": {"playbookRef": {"name": "pb"}}})
            } else {
                body
            };
            Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(body.to_string().into_bytes()))
        }
    });
    Client::new(service, "ns")
}

/// The name and labels of the Execution each of [`alerts`]`(n)` starts through the
/// test Trigger `ns/t`.
fn made_for(n: usize) -> BTreeMap<String, BTreeMap<String, String>> {
    let trigger = serde_json::from_value(json!({"playbookRef": {"name": "pb"}})).expect("a spec");
    let trigger = CompiledTrigger::new("ns", "t", &trigger).expect("compiles");
    let body = alerts(n).to_string();
    alert::parse(AlertSource::Generic, body.as_bytes())
        .expect("parses")
        .iter()
        .map(|a| match trigger.evaluate(a, "me") {
            Outcome::Start(exec) => (exec.name_any(), exec.labels().clone()),
            _ => panic!("the test trigger starts every alert"),
        })
        .collect()
}

/// A credentials file holding `text`, read once. The file is a fresh one per call
/// (tests run in parallel: one shared path was rewritten under another test's read)
/// and is deleted right away: a `LinesFile` keeps what it read when its file is gone.
fn lines_file(text: &str) -> LinesFile {
    let file = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(file.path(), text).expect("writing the temp file");
    LinesFile::open(file.path()).expect("opens")
}

fn token_file() -> LinesFile {
    lines_file(&format!("{TOKEN}\n"))
}

/// The routes over a fake API server, with one Trigger matching every alert;
/// `listed`: whether the Trigger cache has listed.
fn router(client: Client, queue: usize, listed: bool) -> Router {
    let credentials = CredentialFiles {
        tokens: Some(token_file()),
        ..CredentialFiles::default()
    };
    let shared = shared(
        client,
        queue,
        listed,
        json!({"playbookRef": {"name": "pb"}}),
        credentials,
    );
    routes(shared, DEFAULT_MAX_BODY_BYTES)
}

/// What the routes share, with one Trigger (`spec`) in namespace `ns`.
fn shared(
    client: Client,
    queue: usize,
    listed: bool,
    spec: Value,
    credentials: CredentialFiles,
) -> Arc<Shared> {
    let (triggers, mut writer) = reflector::store::<DeserializeGuard<Trigger>>();
    let trigger: Trigger = serde_json::from_value(json!({
        "apiVersion": "stackpulse.io/v1", "kind": "Trigger",
        "metadata": {"name": "t", "namespace": "ns"},
        "spec": spec
    }))
    .expect("a Trigger");
    writer.apply_watcher_event(&Event::Apply(DeserializeGuard(Ok(trigger))));
    Arc::new(Shared {
        client,
        config: Config {
            namespace: Some("ns".into()),
            requested_by: "system:serviceaccount:ops:playbook-operator".into(),
            credentials,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            queue,
            tenancy: Default::default(),
            concurrency: 4,
        },
        triggers,
        triggers_ready: watch::channel(listed).1,
        queue: Semaphore::new(queue),
        in_flight: Semaphore::new(4),
        metrics: Arc::default(),
        stats: TriggerStats::default(),
    })
}

async fn send(router: Router, body: Value) -> (StatusCode, Option<String>, String) {
    let request = Request::post("/webhooks/generic")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(body.to_string()))
        .expect("a request");
    let response = router.oneshot(request).await.expect("routers do not fail");
    let status = response.status();
    let retry = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    (status, retry, String::from_utf8_lossy(&body).into_owned())
}

fn alerts(n: usize) -> Value {
    json!({"alerts": (0..n).map(|i| json!({"id": format!("a-{i}")})).collect::<Vec<_>>()})
}

#[tokio::test]
async fn created_and_duplicates_are_accepted() {
    let (code, _, body) = send(
        router(fake_client(201, Duration::ZERO), 10, true),
        alerts(2),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        answer["created"].as_array().map(Vec::len),
        Some(2),
        "{answer}"
    );
    // 409, and the object there was made for the same alert: a duplicate.
    let (code, _, body) = send(
        router(fake_client_with(409, Duration::ZERO, made_for(2)), 10, true),
        alerts(2),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        answer["duplicates"].as_array().map(Vec::len),
        Some(2),
        "{answer}"
    );
}

#[tokio::test]
async fn an_object_that_only_has_the_name_is_no_duplicate() {
    let mut existing = made_for(2);
    let foreign = existing.keys().next().cloned().expect("two names");
    existing.insert(foreign.clone(), BTreeMap::new());
    let (code, _, body) = send(
        router(fake_client_with(409, Duration::ZERO, existing), 10, true),
        alerts(2),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        answer["duplicates"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    let errors = answer["errors"].to_string();
    assert!(
        errors.contains(&format!(
            "an Execution named ns/{foreign} exists but was not made for this alert"
        )),
        "{answer}"
    );
}

#[tokio::test]
async fn an_unavailable_api_server_is_a_503_to_retry() {
    for api in [503, 429, 500] {
        let (code, retry, body) = send(
            router(fake_client(api, Duration::ZERO), 10, true),
            alerts(1),
        )
        .await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "API {api}: {body}");
        assert_eq!(retry.as_deref(), Some("5"));
        assert!(body.contains("retry"), "{body}");
    }
    // A refusal that retrying does not fix fails those Executions only: listed with
    // the API server's reason, and the request is answered (no retry could help).
    let (code, _, body) = send(
        router(fake_client(403, Duration::ZERO), 10, true),
        alerts(2),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    let errors = answer["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 2, "{answer}");
    assert!(
        errors[0]
            .as_str()
            .is_some_and(|e| e.contains("403 Forbidden: the fake API server says 403")),
        "{answer}"
    );
    assert_eq!(answer["created"], json!([]), "{answer}");
}

#[tokio::test]
async fn before_the_triggers_are_listed_the_answer_is_503() {
    let (code, _, body) = send(
        router(fake_client(201, Duration::ZERO), 10, false),
        alerts(1),
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("has not listed the Triggers yet"), "{body}");
}

#[tokio::test]
async fn a_full_queue_is_a_429() {
    // Creates take 300 ms; the queue holds 2 Executions.
    let routes = router(fake_client(201, Duration::from_millis(300)), 2, true);
    let first = tokio::spawn(send(routes.clone(), alerts(2)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (code, retry, body) = send(routes.clone(), alerts(1)).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(body.contains("--webhook-queue 2"), "{body}");
    let (code, _, body) = first.await.expect("the first request");
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    // Room again once the first is done.
    let (code, _, _) = send(routes, alerts(1)).await;
    assert_eq!(code, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_pagerduty_signature_in_any_header_case_replaces_the_token() {
    let credentials = CredentialFiles {
        pagerduty: Some(lines_file("old-secret\nnew-secret\n")),
        ..CredentialFiles::default()
    };
    let spec = json!({"playbookRef": {"name": "pb"}, "sources": ["pagerduty"]});
    let shared = shared(
        fake_client(201, Duration::ZERO),
        10,
        true,
        spec,
        credentials,
    );
    let body = include_bytes!("../../examples/alerts/pagerduty-triggered.json");
    let sig = crate::engine::alert::signature::sign_hex(b"new-secret", body);
    let post = |signature: String| {
        Request::post("/webhooks/pagerduty")
            .header("X-PAGERDUTY-SIGNATURE", signature)
            .body(Body::from(body.to_vec()))
            .expect("a request")
    };
    let routes = routes(shared, DEFAULT_MAX_BODY_BYTES);
    let ok = routes
        .clone()
        .oneshot(post(format!("v1=deadbeef,v1={sig}")))
        .await
        .expect("answer");
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
    let bad = routes
        .oneshot(post("v1=deadbeef".into()))
        .await
        .expect("answer");
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
}
