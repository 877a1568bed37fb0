//! A follower hands writes to the leader: it replays the request on the
//! leader's client port and relays the answer, so clients may talk to any
//! member. A request that was already forwarded once is not forwarded
//! again (no loops while leadership moves); it gets `421` with the leader.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use muster_types::error::ErrorCode;

use super::error::ApiError;
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

/// The parts of a request needed to replay it.
pub struct Replay {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
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
