//! The body of every error answer.

use serde::{Deserialize, Serialize};

use crate::Revision;

/// Stable, machine-readable error codes; the HTTP status goes with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed; `field` names the culprit.
    InvalidArgument,
    /// 404
    KeyNotFound,
    /// 404
    LeaseNotFound,
    /// 404
    MemberNotFound,
    /// 409: e.g. the lease id exists, or the membership is not the expected one.
    Conflict,
    /// 410: the revision asked for was compacted.
    Compacted,
    /// 412: a compare-and-swap did not hold.
    CompareFailed,
    /// 413
    TooLarge,
    /// 421: this node cannot serve it; retry on `leader_url`.
    NotLeader,
    /// 429
    TooManyWatchers,
    /// 503: no leader, or the cluster cannot commit now.
    Unavailable,
    /// 500
    Internal,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::KeyNotFound | ErrorCode::LeaseNotFound | ErrorCode::MemberNotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::Compacted => 410,
            ErrorCode::CompareFailed => 412,
            ErrorCode::TooLarge => 413,
            ErrorCode::NotLeader => 421,
            ErrorCode::TooManyWatchers => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
    /// The request field that was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `compare_failed`: the key's current `mod_revision` (0 if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<Revision>,
    /// For `compacted`: the oldest revision still readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacted_revision: Option<Revision>,
    /// For `not_leader` and `unavailable`: where the leader is, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_url: Option<String>,
}

impl ErrorBody {
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            error,
            message: message.into(),
            field: None,
            current_revision: None,
            compacted_revision: None,
            leader_url: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}
