//! One engine for every stream of changes (KV watches, service
//! subscriptions, config watches): history after the start revision, then
//! live changes, with no gap and no duplicate; progress lines when idle;
//! and a last line saying why the stream ended. Each API only says how a
//! change, a progress mark and an ending are written ([`Framer`]).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use muster_store::Rejection;
use muster_types::Revision;
use muster_types::error::ErrorCode;
use muster_types::watch::{Event, WatchErrorCode};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::dispatch::{Subscription, batch_revision};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::params::Params;
use crate::store::{WatchStartError, Watcher};

/// Events read from history per step while a stream catches up.
const HISTORY_PAGE: usize = 1000;
/// How often an idle stream says how far it has got.
const DEFAULT_PROGRESS: Duration = Duration::from_secs(5);

/// `progress_interval_ms`, at least 100; 5 s when absent.
pub fn progress_interval(params: &Params) -> ApiResult<Duration> {
    let millis = params.number::<u64>("progress_interval_ms")?;
    if millis.is_some_and(|ms| ms < 100) {
        return Err(ApiError::invalid(
            "progress_interval_ms",
            "progress_interval_ms is at least 100",
        ));
    }
    Ok(millis.map_or(DEFAULT_PROGRESS, Duration::from_millis))
}

/// Why a stream ended.
pub enum StreamEnd {
    /// The history it needed was compacted.
    Compacted {
        compacted_revision: Revision,
        reason: String,
    },
    /// It fell too far behind and was cut off; resume after the revision.
    SlowWatcher { resume_revision: Revision },
    /// The node stopped serving it (its state was replaced, or it is
    /// shutting down); resume on any member.
    Unavailable {
        resume_revision: Option<Revision>,
        reason: String,
    },
}

/// An ending as the KV and config watches write it.
pub struct EndLine {
    pub code: WatchErrorCode,
    pub message: String,
    pub compacted_revision: Option<Revision>,
    pub resume_revision: Option<Revision>,
}

impl StreamEnd {
    /// The fields of an error line; `after_compaction` tells the reader
    /// how to start over when history is gone.
    pub fn line(self, after_compaction: &str) -> EndLine {
        match self {
            StreamEnd::Compacted {
                compacted_revision,
                reason,
            } => EndLine {
                code: WatchErrorCode::Compacted,
                message: format!("{reason}; {after_compaction}"),
                compacted_revision: Some(compacted_revision),
                resume_revision: None,
            },
            StreamEnd::SlowWatcher { resume_revision } => EndLine {
                code: WatchErrorCode::SlowWatcher,
                message: "the watcher fell behind and was cut off; resume from resume_revision"
                    .into(),
                compacted_revision: None,
                resume_revision: Some(resume_revision),
            },
            StreamEnd::Unavailable {
                resume_revision,
                reason,
            } => EndLine {
                code: WatchErrorCode::Unavailable,
                message: format!("{reason}; resume on any member"),
                compacted_revision: None,
                resume_revision,
            },
        }
    }

    fn from_rejection(rejection: &Rejection) -> Self {
        match rejection {
            Rejection::Compacted {
                compacted_revision, ..
            } => StreamEnd::Compacted {
                compacted_revision: *compacted_revision,
                reason: rejection.to_string(),
            },
            other => StreamEnd::Unavailable {
                resume_revision: None,
                reason: other.to_string(),
            },
        }
    }
}

/// How one API writes its stream.
pub trait Framer: Send + 'static {
    /// The line for one change, or None to leave it out.
    fn event(&mut self, event: &Event) -> Option<Bytes>;
    /// Every change up to `revision` has been written.
    fn progress(&mut self, revision: Revision) -> Bytes;
    fn end(&mut self, end: StreamEnd) -> Bytes;
}

/// What to watch.
pub struct Spec {
    pub key: String,
    pub prefix: bool,
    pub progress: Duration,
    pub content_type: &'static str,
}

/// Where the stream starts.
pub enum Start {
    /// Every change after this revision (history first).
    After(Revision),
    /// Changes from now on.
    Now,
    /// First the line a reader makes of the current state, read at or past
    /// the revision live delivery starts after; then every change after the
    /// revision it returns. An error ends the stream with that line.
    Snapshot(Box<dyn FnOnce() -> Result<(Bytes, Revision), Bytes> + Send>),
}

/// Opens the stream and answers with it. The `x-muster-revision` header is
/// the revision the stream starts after, so a client that loses the
/// connection before the first line resumes without a gap.
pub fn respond(state: &AppState, spec: Spec, start: Start, mut framer: impl Framer) -> Response {
    let from = match &start {
        Start::After(revision) => Some(*revision),
        Start::Now | Start::Snapshot(_) => None,
    };
    let (lines, body) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let mut starts_after = from;
    match state.store.watch(&spec.key, spec.prefix, from) {
        Ok(Watcher {
            subscription,
            live_after,
        }) => {
            let opening = match start {
                Start::After(revision) => Ok((None, revision)),
                Start::Now => Ok((None, live_after)),
                Start::Snapshot(read) => read().map(|(line, revision)| (Some(line), revision)),
            };
            match opening {
                Ok((opening, after)) => {
                    starts_after = Some(after);
                    let stream = Stream {
                        state: state.clone(),
                        key: spec.key.clone(),
                        prefix: spec.prefix,
                        lines,
                        last: after,
                        framer,
                    };
                    tokio::spawn(stream.run(subscription, live_after, opening, spec.progress));
                }
                Err(line) => send_and_close(lines, line),
            }
        }
        Err(WatchStartError::TooMany(err)) => {
            return ApiError::new(ErrorCode::TooManyWatchers, err.to_string()).into_response();
        }
        Err(WatchStartError::Rejected(rejection)) => {
            send_and_close(lines, framer.end(StreamEnd::from_rejection(&rejection)));
        }
    }
    let mut response = (
        [
            (header::CONTENT_TYPE, spec.content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(ReceiverStream::new(body)),
    )
        .into_response();
    if let Some(revision) = starts_after {
        response
            .headers_mut()
            .insert(muster_types::headers::REVISION, HeaderValue::from(revision));
    }
    response
}

/// Writes one last line; dropping the sender then ends the body.
fn send_and_close(lines: mpsc::Sender<Result<Bytes, Infallible>>, line: Bytes) {
    tokio::spawn(async move {
        let _ = lines.send(Ok(line)).await;
    });
}

struct Stream<F> {
    state: AppState,
    key: String,
    prefix: bool,
    lines: mpsc::Sender<Result<Bytes, Infallible>>,
    /// Every change up to this revision has been written.
    last: Revision,
    framer: F,
}

impl<F: Framer> Stream<F> {
    async fn send(&mut self, line: Bytes) -> bool {
        self.lines.send(Ok(line)).await.is_ok()
    }

    /// Writes the changes newer than what was written; false once the
    /// client is gone.
    async fn events(&mut self, events: &[Event]) -> bool {
        for event in events {
            if event.kv.mod_revision <= self.last {
                continue;
            }
            if let Some(line) = self.framer.event(event)
                && !self.send(line).await
            {
                return false;
            }
        }
        if let Some(revision) = batch_revision(events) {
            self.last = self.last.max(revision);
        }
        true
    }

    async fn end(&mut self, end: StreamEnd) {
        let line = self.framer.end(end);
        let _ = self.send(line).await;
    }

    async fn run(
        mut self,
        mut subscription: Subscription,
        live_after: Revision,
        opening: Option<Bytes>,
        progress_every: Duration,
    ) {
        if let Some(line) = opening
            && !self.send(line).await
        {
            return;
        }
        // History: every change after the start up to where live delivery
        // begins.
        while self.last < live_after {
            match self.state.store.history(
                &self.key,
                self.prefix,
                self.last,
                live_after,
                HISTORY_PAGE,
            ) {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    if !self.events(&events).await {
                        return;
                    }
                }
                Err(rejection) => {
                    self.end(StreamEnd::from_rejection(&rejection)).await;
                    return;
                }
            }
        }
        self.last = self.last.max(live_after);
        let mut progress = tokio::time::interval(progress_every);
        progress.tick().await;
        loop {
            tokio::select! {
                batch = subscription.receiver.recv() => match batch {
                    Some(batch) => {
                        if !self.events(&batch).await {
                            return;
                        }
                    }
                    None => {
                        let end = if subscription.lagged() {
                            StreamEnd::SlowWatcher { resume_revision: self.last }
                        } else {
                            StreamEnd::Unavailable {
                                resume_revision: Some(self.last),
                                reason: "the node stopped serving this stream".into(),
                            }
                        };
                        self.end(end).await;
                        return;
                    }
                },
                _ = progress.tick() => {
                    // Read the revision before draining: every change up to
                    // it was queued before it became visible, so after the
                    // drain all of them have been written.
                    let revision = self.state.store.revision();
                    while let Ok(batch) = subscription.receiver.try_recv() {
                        if !self.events(&batch).await {
                            return;
                        }
                    }
                    self.last = self.last.max(revision);
                    let line = self.framer.progress(self.last);
                    if !self.send(line).await {
                        return;
                    }
                }
                _ = self.lines.closed() => return,
            }
        }
    }
}
