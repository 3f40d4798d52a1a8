//! The operator's HTTP server: `/metrics`, `/healthz`, `/readyz`.
//!
//! [`router`] builds the routes from what they read; later routes (alert webhooks,
//! the execution page) are routers of their own, merged into this one by the caller
//! (`router(metrics).merge(...)`), so one port serves them all. [`bind`] and
//! [`serve`] are separate so a caller can bind port 0 and learn the real address.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::{self, Metrics};

/// Default listen address of `run --http-addr`.
pub const DEFAULT_ADDR: &str = "0.0.0.0:8080";

/// The routes that report on the operator itself.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics.render(),
    )
}

/// 200 while the process answers at all: a liveness probe.
async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 once the controller's caches hold their first list; until then its view of
/// the cluster is partial, so a readiness probe (and a rollout) should wait. A
/// standby replica (leader election) runs no controller and is ready at once: it
/// serves webhooks, and a rollout must not wait for a Lease the old pods hold.
async fn readyz(State(metrics): State<Arc<Metrics>>) -> (StatusCode, &'static str) {
    if metrics.standby() {
        (
            StatusCode::OK,
            "ready (standby: another replica holds the leader Lease)\n",
        )
    } else if metrics.caches_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not listed yet\n")
    }
}

/// What can stop the HTTP server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {why}; set --http-addr")]
    Bind { addr: SocketAddr, why: String },
    #[error("HTTP server: {0}")]
    Serve(#[source] std::io::Error),
}

/// Listens on `addr`. The error names the address and the flag that sets it.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => "address in use".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        Error::Bind { addr, why }
    })
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes the
/// requests in flight. Logs the real address first (port 0 picks one).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let local = listener.local_addr().map_err(Error::Serve)?;
    tracing::info!(addr = %local, "serving HTTP");
    // The peer address reaches handlers (the page throttles failed sign-ins by it).
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
}

#[cfg(test)]
mod tests;
