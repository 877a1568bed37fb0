//! The operator's own HTTP endpoints: `/metrics`, `/livez`, `/readyz`
//! (ready once this replica leads and its controller runs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    pub leading: Arc<AtomicBool>,
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(health)
}

async fn metrics(State(health): State<Health>) -> (StatusCode, String) {
    match health.metrics.encode() {
        Ok(text) => (StatusCode::OK, text),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

async fn ready(State(health): State<Health>) -> (StatusCode, &'static str) {
    if health.leading.load(Ordering::Relaxed) {
        (StatusCode::OK, "leading")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the leader lease",
        )
    }
}

pub async fn serve(address: SocketAddr, health: Health) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    axum::serve(listener, router(health)).await
}
