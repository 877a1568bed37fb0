//! `GET /v1/watch`: every change to a key or prefix after a revision, in
//! order, as NDJSON or (with `Accept: text/event-stream`) as SSE whose event
//! ids are revisions, so `Last-Event-ID` resumes exactly.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use muster_types::Revision;
use muster_types::error::ErrorCode;
use muster_types::limits;
use muster_types::watch::{Event, WatchErrorCode, WatchMessage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::dispatch::batch_revision;
use crate::store::{WatchStartError, Watcher};

/// Events read from history per step while a watcher catches up.
const HISTORY_PAGE: usize = 1000;
const DEFAULT_PROGRESS: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Ndjson,
    Sse,
}

struct WatchRequest {
    key: String,
    prefix: bool,
    from: Option<Revision>,
    with_prev: bool,
    progress: Duration,
    framing: Framing,
}

fn parse(uri: &Uri, headers: &HeaderMap) -> ApiResult<WatchRequest> {
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
    let progress_ms = params.number::<u64>("progress_interval_ms")?;
    if progress_ms.is_some_and(|ms| ms < 100) {
        return Err(ApiError::invalid(
            "progress_interval_ms",
            "progress_interval_ms is at least 100",
        ));
    }
    Ok(WatchRequest {
        key,
        prefix,
        from: last_event_id.or(params.number("from_revision")?),
        with_prev: params.flag("prev_value")?,
        progress: progress_ms.map_or(DEFAULT_PROGRESS, Duration::from_millis),
        framing: if sse { Framing::Sse } else { Framing::Ndjson },
    })
}

pub async fn watch(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let request = match parse(&uri, &headers) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    let (lines, body) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let framing = request.framing;
    // The revision the stream starts after, so a client that loses the
    // connection before the first message can resume without a gap.
    let mut starts_after = request.from;
    match state
        .store
        .watch(&request.key, request.prefix, request.from)
    {
        Ok(watcher) => {
            starts_after = Some(request.from.unwrap_or(watcher.live_after));
            tokio::spawn(stream(state, request, watcher, lines));
        }
        Err(WatchStartError::TooMany(err)) => {
            return ApiError::new(ErrorCode::TooManyWatchers, err.to_string()).into_response();
        }
        Err(WatchStartError::Rejected(rejection)) => {
            // Said in the stream, so a client reading events sees why it ended.
            let message = compacted_message(&rejection);
            tokio::spawn(async move {
                let _ = lines.send(Ok(frame(framing, &message))).await;
            });
        }
    }
    let content_type = match framing {
        Framing::Ndjson => "application/x-ndjson",
        Framing::Sse => "text/event-stream",
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(ReceiverStream::new(body)),
    )
        .into_response();
    if let Some(revision) = starts_after {
        response.headers_mut().insert(
            muster_types::headers::REVISION,
            axum::http::HeaderValue::from(revision),
        );
    }
    response
}

fn compacted_message(rejection: &muster_store::Rejection) -> WatchMessage {
    match rejection {
        muster_store::Rejection::Compacted {
            compacted_revision, ..
        } => WatchMessage::Error {
            code: WatchErrorCode::Compacted,
            message: format!("{rejection}; read the current state, then watch from its revision"),
            compacted_revision: Some(*compacted_revision),
            resume_revision: None,
        },
        other => WatchMessage::Error {
            code: WatchErrorCode::Unavailable,
            message: other.to_string(),
            compacted_revision: None,
            resume_revision: None,
        },
    }
}

fn frame(framing: Framing, message: &WatchMessage) -> Bytes {
    let json = serde_json::to_string(message).expect("watch messages always serialize");
    match framing {
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

/// Feeds one watch stream until the client goes away or the watch ends.
async fn stream(
    state: AppState,
    request: WatchRequest,
    watcher: Watcher,
    lines: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    let Watcher {
        mut subscription,
        live_after,
    } = watcher;
    let mut sender = Sender {
        lines,
        framing: request.framing,
        with_prev: request.with_prev,
        last: request.from.unwrap_or(live_after),
    };
    // History first: every change after `from` up to where live delivery
    // starts.
    if request.from.is_some() {
        while sender.last < live_after {
            match state.store.history(
                &request.key,
                request.prefix,
                sender.last,
                live_after,
                HISTORY_PAGE,
            ) {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    if !sender.events(&events).await {
                        return;
                    }
                }
                Err(rejection) => {
                    let _ = sender.send(&compacted_message(&rejection)).await;
                    return;
                }
            }
        }
        sender.last = sender.last.max(live_after);
    }
    let mut progress = tokio::time::interval(request.progress);
    progress.tick().await;
    loop {
        tokio::select! {
            batch = subscription.receiver.recv() => match batch {
                Some(batch) => {
                    if !sender.events(&batch).await {
                        return;
                    }
                }
                None => {
                    let message = if subscription.lagged() {
                        WatchMessage::Error {
                            code: WatchErrorCode::SlowWatcher,
                            message: "the watcher fell behind and was cut off; resume from resume_revision".into(),
                            compacted_revision: None,
                            resume_revision: Some(sender.last),
                        }
                    } else {
                        WatchMessage::Error {
                            code: WatchErrorCode::Unavailable,
                            message: "the node stopped serving this watch; resume on any member".into(),
                            compacted_revision: None,
                            resume_revision: Some(sender.last),
                        }
                    };
                    let _ = sender.send(&message).await;
                    return;
                }
            },
            _ = progress.tick() => {
                // Read the revision before draining: every event up to it
                // was queued before it became visible, so after the drain
                // all of them have been sent.
                let revision = state.store.revision();
                while let Ok(batch) = subscription.receiver.try_recv() {
                    if !sender.events(&batch).await {
                        return;
                    }
                }
                sender.last = sender.last.max(revision);
                let message = WatchMessage::Progress { revision: sender.last };
                if !sender.send(&message).await {
                    return;
                }
            }
            _ = sender.lines.closed() => return,
        }
    }
}

struct Sender {
    lines: mpsc::Sender<Result<Bytes, Infallible>>,
    framing: Framing,
    with_prev: bool,
    /// Every change up to this revision has been sent.
    last: Revision,
}

impl Sender {
    async fn send(&mut self, message: &WatchMessage) -> bool {
        self.lines
            .send(Ok(frame(self.framing, message)))
            .await
            .is_ok()
    }

    /// Sends events newer than what was sent; false once the client is gone.
    async fn events(&mut self, events: &[Event]) -> bool {
        for event in events {
            if event.kv.mod_revision <= self.last {
                continue;
            }
            let message = WatchMessage::from_event(event, self.with_prev);
            if !self.send(&message).await {
                return false;
            }
        }
        if let Some(revision) = batch_revision(events) {
            self.last = self.last.max(revision);
        }
        true
    }
}
