//! What can go wrong talking to a Muster cluster.

use muster_types::Revision;
use muster_types::error::{ErrorBody, ErrorCode};

/// How a request failed to reach a node or to come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// No connection was made: the request certainly was not sent.
    Connect,
    /// No (complete) answer in time: a write may or may not have applied.
    Timeout,
    /// The connection broke while sending or receiving.
    Other,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{} (HTTP {status}, {})", body.message, code_name(body.error))]
    Api { status: u16, body: ErrorBody },
    #[error("cannot reach {endpoint}: {message}")]
    Transport {
        endpoint: String,
        kind: TransportKind,
        message: String,
    },
    #[error("unexpected answer from {endpoint}: {message}")]
    Decode { endpoint: String, message: String },
    #[error("invalid endpoint '{endpoint}': {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("no endpoint given")]
    NoEndpoint,
    /// Refused locally, before any request was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ClientError {
    /// The server's error code, for [`ClientError::Api`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.error),
            _ => None,
        }
    }

    /// For `compare_failed`: the key's current `mod_revision`.
    pub fn current_revision(&self) -> Option<Revision> {
        match self {
            ClientError::Api { body, .. } => body.current_revision,
            _ => None,
        }
    }

    /// For `compacted`: the oldest revision still available.
    pub fn compacted_revision(&self) -> Option<Revision> {
        match self {
            ClientError::Api { body, .. } => body.compacted_revision,
            _ => None,
        }
    }

    pub(crate) fn transport(endpoint: &str, err: &reqwest::Error) -> Self {
        let kind = if err.is_connect() {
            TransportKind::Connect
        } else if err.is_timeout() {
            TransportKind::Timeout
        } else {
            TransportKind::Other
        };
        ClientError::Transport {
            endpoint: endpoint.to_string(),
            kind,
            message: error_chain(err),
        }
    }

    pub(crate) fn timeout(endpoint: &str, what: &str) -> Self {
        ClientError::Transport {
            endpoint: endpoint.to_string(),
            kind: TransportKind::Timeout,
            message: format!("timed out {what}"),
        }
    }
}

fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{code:?}"))
}

/// reqwest's top-level message alone ("error sending request") hides the
/// cause ("connection refused"), so every source is appended.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Turns a non-2xx answer into an error. Bodies that are not an
/// [`ErrorBody`] (a proxy's page, `/readyz`'s reason) keep their text.
pub(crate) fn decode_error(status: u16, body: &[u8]) -> ClientError {
    if let Ok(body) = serde_json::from_slice::<ErrorBody>(body) {
        return ClientError::Api { status, body };
    }
    let code = match status {
        400 => ErrorCode::InvalidArgument,
        409 => ErrorCode::Conflict,
        410 => ErrorCode::Compacted,
        412 => ErrorCode::CompareFailed,
        413 => ErrorCode::TooLarge,
        421 => ErrorCode::NotLeader,
        429 => ErrorCode::TooManyWatchers,
        503 => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    };
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", truncate(text, 200))
    };
    ClientError::Api {
        status,
        body: ErrorBody::new(code, message),
    }
}

/// Shortens text for an error message, on a character boundary.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_body_is_kept() {
        let json = br#"{"error":"compare_failed","message":"mod_revision is 7, not 3","current_revision":7}"#;
        let err = decode_error(412, json);
        assert_eq!(err.code(), Some(ErrorCode::CompareFailed));
        assert_eq!(err.current_revision(), Some(7));
        assert_eq!(
            err.to_string(),
            "mod_revision is 7, not 3 (HTTP 412, compare_failed)"
        );
    }

    #[test]
    fn compacted_revision_is_exposed() {
        let json =
            br#"{"error":"compacted","message":"revision 3 is compacted","compacted_revision":10}"#;
        let err = decode_error(410, json);
        assert_eq!(err.code(), Some(ErrorCode::Compacted));
        assert_eq!(err.compacted_revision(), Some(10));
    }

    #[test]
    fn plain_text_bodies_map_by_status() {
        let err = decode_error(503, b"no leader\n");
        assert_eq!(err.code(), Some(ErrorCode::Unavailable));
        assert_eq!(
            err.to_string(),
            "HTTP 503: no leader (HTTP 503, unavailable)"
        );
        // A 404 without a body must not pass for "key not found".
        let err = decode_error(404, b"");
        assert_eq!(err.code(), Some(ErrorCode::Internal));
        assert!(err.to_string().starts_with("HTTP 404"), "{err}");
    }

    #[test]
    fn long_bodies_are_truncated() {
        let long = "é".repeat(500);
        let err = decode_error(500, long.as_bytes());
        let ClientError::Api { body, .. } = err else {
            panic!("not an API error");
        };
        assert_eq!(body.message.chars().count(), "HTTP 500: ".len() + 200 + 1);
    }
}
