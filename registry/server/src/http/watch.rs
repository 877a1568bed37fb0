//! `GET /v1/watch`: every change to a key or prefix after a revision, in
//! order, as NDJSON or (with `Accept: text/event-stream`) as SSE whose event
//! ids are revisions, so `Last-Event-ID` resumes exactly.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use muster_types::Revision;
use muster_types::limits;
use muster_types::watch::{Event, WatchMessage};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::change_stream::{self, EndLine, Framer, Spec, Start, StreamEnd};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Ndjson,
    Sse,
}

fn parse(uri: &Uri, headers: &HeaderMap) -> ApiResult<(Spec, Option<Revision>, KvFramer)> {
    let params = Params::parse(uri.query())?;
    let key = params.text("key").unwrap_or("").to_owned();
    let prefix = params.flag("prefix")?;
    if !prefix {
        limits::check_key(&key).map_err(|message| ApiError::invalid("key", message))?;
    }
    let sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|text| {
            text.trim().parse::<Revision>().map_err(|_| {
                ApiError::invalid(
                    "Last-Event-ID",
                    format!("Last-Event-ID must be a revision, not {text:?}"),
                )
            })
        })
        .transpose()?;
    let framing = if sse { Framing::Sse } else { Framing::Ndjson };
    let spec = Spec {
        key,
        prefix,
        progress: change_stream::progress_interval(&params)?,
        content_type: match framing {
            Framing::Ndjson => "application/x-ndjson",
            Framing::Sse => "text/event-stream",
        },
    };
    let framer = KvFramer {
        framing,
        with_prev: params.flag("prev_value")?,
    };
    Ok((
        spec,
        last_event_id.or(params.number("from_revision")?),
        framer,
    ))
}

pub async fn watch(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    match parse(&uri, &headers) {
        Ok((spec, from, framer)) => {
            let start = from.map_or(Start::Now, Start::After);
            change_stream::respond(&state, spec, start, framer)
        }
        Err(err) => err.into_response(),
    }
}

struct KvFramer {
    framing: Framing,
    with_prev: bool,
}

impl KvFramer {
    fn frame(&self, message: &WatchMessage) -> Bytes {
        let json = serde_json::to_string(message).expect("watch messages always serialize");
        match self.framing {
            Framing::Ndjson => Bytes::from(json + "\n"),
            Framing::Sse => {
                let kind = match message {
                    WatchMessage::Put(_) => "put",
                    WatchMessage::Delete(_) => "delete",
                    WatchMessage::Progress { .. } => "progress",
                    WatchMessage::Error { .. } => "error",
                };
                let id = message
                    .revision()
                    .map(|revision| format!("id: {revision}\n"))
                    .unwrap_or_default();
                Bytes::from(format!("{id}event: {kind}\ndata: {json}\n\n"))
            }
        }
    }
}

impl Framer for KvFramer {
    fn event(&mut self, event: &Event) -> Option<Bytes> {
        Some(self.frame(&WatchMessage::from_event(event, self.with_prev)))
    }

    fn progress(&mut self, revision: Revision) -> Bytes {
        self.frame(&WatchMessage::Progress { revision })
    }

    fn end(&mut self, end: StreamEnd) -> Bytes {
        let EndLine {
            code,
            message,
            compacted_revision,
            resume_revision,
        } = end.line("read the current state, then watch from its revision");
        self.frame(&WatchMessage::Error {
            code,
            message,
            compacted_revision,
            resume_revision,
        })
    }
}
