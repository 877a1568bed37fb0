//! Every error answer: a status code and an [`ErrorBody`] naming the field.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use muster_store::Rejection;
use muster_types::error::{ErrorBody, ErrorCode};

use crate::raft::{LeaderInfo, MembershipError, ProposeError};

#[derive(Debug)]
pub struct ApiError(pub ErrorBody);

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(ErrorBody::new(code, message))
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError(ErrorBody::new(ErrorCode::InvalidArgument, message).with_field(field))
    }

    pub fn not_leader(leader: Option<&LeaderInfo>) -> Self {
        let mut body = ErrorBody::new(
            ErrorCode::NotLeader,
            match leader {
                Some(leader) => format!("not the leader; the leader is {}", leader.name),
                None => "not the leader, and no leader is known".into(),
            },
        );
        body.leader_url = leader.map(|l| l.client_url.clone());
        ApiError(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.error.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0)).into_response()
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        let message = rejection.to_string();
        match rejection {
            Rejection::CompareFailed {
                current_revision, ..
            } => {
                let mut body = ErrorBody::new(ErrorCode::CompareFailed, message);
                body.current_revision = Some(current_revision);
                ApiError(body)
            }
            Rejection::LeaseNotFound { .. } => {
                ApiError(ErrorBody::new(ErrorCode::LeaseNotFound, message).with_field("lease"))
            }
            Rejection::LeaseExists { .. } => {
                ApiError(ErrorBody::new(ErrorCode::Conflict, message).with_field("id"))
            }
            Rejection::Compacted {
                compacted_revision, ..
            } => {
                let mut body = ErrorBody::new(ErrorCode::Compacted, message).with_field("revision");
                body.compacted_revision = Some(compacted_revision);
                ApiError(body)
            }
            Rejection::FutureRevision { .. } => ApiError::invalid("revision", message),
            Rejection::Invalid { field, message } => {
                let code = if field == "value" && message.contains("limit") {
                    ErrorCode::TooLarge
                } else {
                    ErrorCode::InvalidArgument
                };
                ApiError(ErrorBody::new(code, message).with_field(field))
            }
        }
    }
}

impl From<ProposeError> for ApiError {
    fn from(err: ProposeError) -> Self {
        match err {
            ProposeError::NotLeader { leader } => ApiError::not_leader(leader.as_ref()),
            ProposeError::Unavailable(message) => ApiError::new(ErrorCode::Unavailable, message),
        }
    }
}

impl From<MembershipError> for ApiError {
    fn from(err: MembershipError) -> Self {
        let message = err.to_string();
        match err {
            MembershipError::NotLeader { leader } => ApiError::not_leader(leader.as_ref()),
            MembershipError::NotFound(_) => ApiError::new(ErrorCode::MemberNotFound, message),
            MembershipError::Conflict(_) => ApiError::new(ErrorCode::Conflict, message),
            MembershipError::Invalid(_) => ApiError::new(ErrorCode::InvalidArgument, message),
            MembershipError::Unavailable(_) => ApiError::new(ErrorCode::Unavailable, message),
        }
    }
}
