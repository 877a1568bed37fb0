//! The client port: the JSON/HTTP API, watch streams, health and metrics.

mod cluster;
pub(crate) mod error;
pub(crate) mod forward;
pub(crate) mod kv;
mod lease;
pub(crate) mod params;
mod watch;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use muster_types::headers;
use muster_types::limits::MAX_REQUEST_BYTES;

use crate::metrics::Metrics;
use crate::raft::RaftNode;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub node: Arc<RaftNode>,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub forwarder: forward::Forwarder,
}

impl AppState {
    /// `forward_http` carries writes a follower hands to the leader.
    pub fn new(node: Arc<RaftNode>, metrics: Arc<Metrics>, forward_http: reqwest::Client) -> Self {
        AppState {
            store: node.store().clone(),
            node,
            metrics,
            forwarder: forward::Forwarder::new(forward_http),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/kv", get(kv::get_root))
        .route("/v1/kv/", get(kv::get_root).delete(kv::delete_root))
        .route(
            "/v1/kv/{*key}",
            get(kv::get).put(kv::put).delete(kv::delete),
        )
        .route("/v1/txn", post(kv::txn))
        .route("/v1/compact", post(kv::compact))
        .route("/v1/leases", post(lease::grant).get(lease::list))
        .route("/v1/leases/{id}", get(lease::show).delete(lease::revoke))
        .route("/v1/leases/{id}/keepalive", post(lease::keep_alive))
        .route("/v1/watch", get(watch::watch))
        .route(
            "/v1/cluster/members",
            get(cluster::members).post(cluster::add_member),
        )
        .route(
            "/v1/cluster/members/{name}",
            axum::routing::delete(cluster::remove_member),
        )
        .route(
            "/v1/cluster/members/{name}/promote",
            post(cluster::promote_member),
        )
        .route(
            "/v1/cluster/leader/transfer",
            post(cluster::transfer_leader),
        )
        .route("/v1/status", get(cluster::status))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(cluster::readyz))
        .route("/metrics", get(metrics))
        .merge(crate::catalog::routes())
        .merge(crate::config_center::routes())
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            common_headers,
        ))
        .with_state(state)
}

async fn not_found() -> Response {
    let body = muster_types::error::ErrorBody::new(
        muster_types::error::ErrorCode::InvalidArgument,
        "no such endpoint; the README lists the API",
    )
    .with_field("path");
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    state
        .metrics
        .watch_watchers
        .set(state.store.watcher_count() as i64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Adds the revision/leader/node headers to every answer (a forwarded
/// answer keeps the leader's) and counts the request.
async fn common_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let mut response = next.run(request).await;
    let response_headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        let name = HeaderName::from_static(name);
        if !response_headers.contains_key(&name)
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            response_headers.insert(name, value);
        }
    };
    set(headers::REVISION, state.store.revision().to_string());
    set(headers::NODE, state.node.name().to_owned());
    if let Some(leader) = state.node.leader() {
        set(headers::LEADER, leader.name);
        set(headers::LEADER_URL, leader.client_url);
    }
    let status = response.status().as_u16().to_string();
    state
        .metrics
        .http_requests
        .with_label_values(&[&method, &route, &status])
        .inc();
    state
        .metrics
        .http_request_seconds
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    response
}
