//! A follower hands writes to the leader: it replays the request on the
//! leader's client port and relays the answer, so clients may talk to any
//! member. A request that was already forwarded once is not forwarded
//! again (no loops while leadership moves); it gets `421` with the leader.

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use muster_types::error::{ErrorBody, ErrorCode};
use muster_types::limits;

use super::error::{ApiError, ApiResult};
use crate::raft::LeaderInfo;

const FORWARDED: &str = "x-muster-forwarded";

/// Headers that describe one connection, not the request, and so are not
/// replayed (the marker is set anew).
const HOP_BY_HOP: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    FORWARDED,
];

#[derive(Clone)]
pub struct Forwarder {
    http: reqwest::Client,
}

/// A request as a handler receives it, kept whole so it can be replayed on
/// the leader. As an extractor it reads the body (within the body limit,
/// refused with a JSON error past it), so it comes last among extractors.
pub struct Replay {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Replay {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let method = request.method().clone();
        let uri = request.uri().clone();
        let headers = request.headers().clone();
        let body = body_of(Bytes::from_request(request, state).await)?;
        Ok(Replay {
            method,
            uri,
            headers,
            body,
        })
    }
}

/// The body, or the JSON error that says why it could not be read.
fn body_of(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(
                ErrorBody::new(
                    ErrorCode::TooLarge,
                    format!(
                        "request body is larger than {} bytes",
                        limits::MAX_REQUEST_BYTES
                    ),
                )
                .with_field("body"),
            )
        } else {
            ApiError::invalid("body", rejection.body_text())
        }
    })
}

impl Forwarder {
    pub fn new(http: reqwest::Client) -> Self {
        Forwarder { http }
    }

    pub async fn forward(&self, leader: Option<&LeaderInfo>, request: Replay) -> Response {
        let Some(leader) = leader else {
            return ApiError::new(
                ErrorCode::Unavailable,
                "no leader is known; retry after an election timeout",
            )
            .into_response();
        };
        if request.headers.contains_key(FORWARDED) {
            return ApiError::not_leader(Some(leader)).into_response();
        }
        let path = request.uri.path_and_query().map_or("/", |p| p.as_str());
        let url = format!("{}{}", leader.client_url.trim_end_matches('/'), path);
        let mut outgoing = self
            .http
            .request(request.method.clone(), &url)
            .header(FORWARDED, "1")
            .body(request.body);
        for (name, value) in &request.headers {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                outgoing = outgoing.header(name, value);
            }
        }
        let answer = match outgoing.send().await {
            Ok(answer) => answer,
            Err(err) => {
                let mut error = ApiError::new(
                    ErrorCode::Unavailable,
                    format!("forwarding to leader {} failed: {err}", leader.name),
                );
                error.0.leader_url = Some(leader.client_url.clone());
                return error.into_response();
            }
        };
        let status =
            StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut headers = HeaderMap::new();
        for (name, value) in answer.headers() {
            if name.as_str().starts_with("x-muster-") || name == axum::http::header::CONTENT_TYPE {
                headers.insert(name.clone(), value.clone());
            }
        }
        match answer.bytes().await {
            Ok(body) => (status, headers, Body::from(body)).into_response(),
            Err(err) => ApiError::new(
                ErrorCode::Unavailable,
                format!("reading the leader's answer failed: {err}"),
            )
            .into_response(),
        }
    }
}
