//! The routes, called in process, and what binding an address in use says.

use axum::body::{Body, to_bytes};
use axum::http::Request;
use kube::runtime::reflector;
use tower::ServiceExt;

use super::*;

async fn get(router: Router, path: &str) -> (StatusCode, String, String) {
    let request = Request::get(path).body(Body::empty()).expect("a request");
    let response = router.oneshot(request).await.expect("routers do not fail");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn metrics_are_openmetrics_text_with_every_contract_name() {
    let metrics = Arc::new(Metrics::new());
    // Families with labels show once they have a series.
    metrics.job_created();
    metrics.webhook_request("generic", 202);
    let _ = metrics
        .reconcile("execution", async {
            Err::<(), _>(crate::controller::Error::CachesNotReady)
        })
        .await;
    metrics.status_written(
        "uid",
        "pb",
        &metrics::Transitions {
            finished: Some(crate::api::ExecutionPhase::Failed),
            ..Default::default()
        },
    );
    let (status, content_type, body) = get(router(metrics), "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, metrics::CONTENT_TYPE);
    for family in [
        "# TYPE playbook_executions counter",
        "# TYPE playbook_executions_running gauge",
        "# TYPE playbook_step_duration_seconds histogram",
        "# TYPE playbook_step_handoff_seconds histogram",
        "# TYPE playbook_reconcile_errors counter",
        "# TYPE playbook_reconcile_duration_seconds histogram",
        "# TYPE playbook_jobs_created counter",
        "# TYPE playbook_webhook_requests counter",
        "# TYPE playbook_alerts_matched counter",
        "# TYPE playbook_webhook_executions_created counter",
        "# TYPE playbook_webhook_duplicates counter",
        "# TYPE playbook_leader gauge",
    ] {
        assert!(body.contains(family), "{family} missing in:\n{body}");
    }
    assert!(body.contains("\nplaybook_jobs_created_total 1\n"), "{body}");
    // Without leader election the one process reconciles.
    assert!(body.contains("\nplaybook_leader 1\n"), "{body}");
    assert!(body.contains("playbook_step_handoff_seconds_bucket{le=\"0.001\"} 0"));
    assert!(body.contains("playbook_step_duration_seconds_count{phase=\"Remediate\"} 0"));
    assert!(body.contains("playbook_executions_total{playbook=\"pb\",result=\"Failed\"} 1"));
    assert!(body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn readyz_waits_for_the_controller_caches_and_healthz_does_not() {
    let metrics = Arc::new(Metrics::new());
    let app = router(metrics.clone());
    assert_eq!(get(app.clone(), "/healthz").await.0, StatusCode::OK);
    let (status, _, body) = get(app.clone(), "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "caches not listed yet\n")
    );

    let (listed, caches_ready) = tokio::sync::watch::channel(false);
    metrics.attach(reflector::store().0, caches_ready);
    assert_eq!(
        get(app.clone(), "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    listed.send_replace(true);
    assert_eq!(get(app.clone(), "/readyz").await.0, StatusCode::OK);
    assert_eq!(get(app, "/nope").await.0, StatusCode::NOT_FOUND);
}

/// A standby (leader election) runs no controller but serves webhooks: ready at once;
/// once it leads, readiness waits for its caches like any controller's.
#[tokio::test]
async fn a_standby_is_ready_and_a_new_leader_waits_for_its_caches() {
    let metrics = Arc::new(Metrics::new());
    let app = router(metrics.clone());
    metrics.set_leader(false);
    let (status, _, body) = get(app.clone(), "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("standby"), "{body}");
    assert!(
        get(app.clone(), "/metrics")
            .await
            .2
            .contains("\nplaybook_leader 0\n")
    );

    metrics.set_leader(true);
    assert_eq!(
        get(app.clone(), "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(
        get(app, "/metrics")
            .await
            .2
            .contains("\nplaybook_leader 1\n")
    );
}

#[tokio::test]
async fn a_taken_address_names_itself_and_the_flag() {
    let taken = bind("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("port 0 binds");
    let addr = taken.local_addr().expect("a local address");
    let err = bind(addr).await.expect_err("the port is taken");
    assert_eq!(
        err.to_string(),
        format!("cannot listen on {addr}: address in use; set --http-addr")
    );
}

#[tokio::test]
async fn serve_answers_on_the_bound_port_until_shutdown() {
    let listener = bind("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("port 0 binds");
    let addr = listener.local_addr().expect("a local address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        router(Arc::new(Metrics::new())),
        async move {
            let _ = stopped.await;
        },
    ));
    // A bare HTTP/1.0 request: no client crate needed for one GET.
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
        .await
        .expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("reads");
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("stops on shutdown")
        .expect("does not panic")
        .expect("serves without error");
}
