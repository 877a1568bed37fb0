//! The service catalog: namespaces, services and instances with health
//! (Consul's and Nacos's naming side), on the replicated keyspace.
//!
//! Writes are read-modify-write transactions run on the leader
//! ([`crate::typed::on_leader`]), compare-and-swapped on the keys they read.
//! Ephemeral instances are put with a lease, so their expiry is the
//! leader's lease expiry, committed once for every replica. The leader's
//! sweeper ([`sweeper`]) turns missed TTL checks into failures and removes
//! instances critical for too long.

mod discovery;
mod instances;
mod namespaces;
mod subscribe;
mod sweeper;
mod validate;

use axum::Json;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use muster_catalog::names;
use muster_types::catalog::Instance;
use muster_types::error::{ErrorBody, ErrorCode};
use muster_types::kv::KeyValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::kv::json_of;
use crate::typed::decode;

pub fn routes() -> Router<AppState> {
    const INSTANCE: &str = "/v1/services/{ns}/{service}/instances/{id}";
    Router::new()
        .route(
            "/v1/namespaces",
            get(namespaces::list).post(namespaces::create),
        )
        .route(
            "/v1/namespaces/{ns}",
            get(namespaces::show).delete(namespaces::delete),
        )
        .route("/v1/services/{ns}", get(discovery::list_services))
        .route(
            "/v1/services/{ns}/{service}",
            get(discovery::discover).put(discovery::set_service),
        )
        .route(
            "/v1/services/{ns}/{service}/watch",
            get(subscribe::subscribe),
        )
        .route(
            INSTANCE,
            get(instances::show)
                .put(instances::register)
                .delete(instances::deregister),
        )
        .route(&format!("{INSTANCE}/heartbeat"), post(instances::heartbeat))
        .route(&format!("{INSTANCE}/health"), put(instances::report_health))
        .route(&format!("{INSTANCE}/drain"), post(instances::drain))
        .route(&format!("{INSTANCE}/enable"), post(instances::enable))
}

pub fn spawn_background(state: AppState) {
    tokio::spawn(sweeper::run(state));
}

/// Parses and checks a JSON body before anything is forwarded.
pub(super) fn parse_body<T: DeserializeOwned>(
    body: &[u8],
    check: impl FnOnce(&T) -> ApiResult<()>,
) -> ApiResult<T> {
    let value: T = json_of(body)?;
    check(&value)?;
    Ok(value)
}

/// Answers with JSON, or with the error.
fn reply<T: Serialize>(result: ApiResult<T>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(err) => err.into_response(),
    }
}

fn check_name(field: &str, name: &str) -> ApiResult<()> {
    names::check_name(field, name).map_err(|message| ApiError::invalid(field, message))
}

fn not_found(field: &str, message: impl Into<String>) -> ApiError {
    ApiError(ErrorBody::new(ErrorCode::KeyNotFound, message).with_field(field))
}

/// A stored instance, with the revision and lease its key carries.
fn instance_of(kv: &KeyValue) -> ApiResult<Instance> {
    let mut instance: Instance = decode(kv)?;
    instance.revision = kv.mod_revision;
    instance.lease = kv.lease;
    Ok(instance)
}
