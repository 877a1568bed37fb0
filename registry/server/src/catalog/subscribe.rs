//! `GET /v1/services/{ns}/{service}/watch`: a service's instance changes as
//! NDJSON [`ServiceEvent`]s. Without `from_revision`: a `snapshot` of the
//! current instances, then every change after it. With it: every change
//! after that revision (no snapshot). Revisions are the same on every node,
//! so a subscriber resumes on any node with the last revision it saw.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use muster_catalog::keys;
use muster_store::Rejection;
use muster_types::Revision;
use muster_types::catalog::ServiceEvent;
use muster_types::error::ErrorCode;
use muster_types::watch::{Event, EventKind, WatchErrorCode};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::discovery::read_together;
use super::{check_name, instance_of};
use crate::dispatch::batch_revision;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::kv::consistent;
use crate::http::params::Params;
use crate::store::{WatchStartError, Watcher};
use crate::typed::require_namespace;

const HISTORY_PAGE: usize = 1000;
const DEFAULT_PROGRESS: Duration = Duration::from_secs(5);

type Lines = mpsc::Sender<Result<Bytes, Infallible>>;

struct Request {
    prefix: String,
    from: Option<Revision>,
    progress: Duration,
}

async fn parse(state: &AppState, ns: &str, service: &str, uri: &Uri) -> ApiResult<Request> {
    check_name("service", service)?;
    let params = Params::parse(uri.query())?;
    let progress_ms = params.number::<u64>("progress_interval_ms")?;
    if progress_ms.is_some_and(|ms| ms < 100) {
        return Err(ApiError::invalid(
            "progress_interval_ms",
            "progress_interval_ms is at least 100",
        ));
    }
    let from = params.number("from_revision")?;
    consistent(state, &params).await?;
    require_namespace(state, ns)?;
    Ok(Request {
        prefix: keys::instances_prefix(ns, service),
        from,
        progress: progress_ms.map_or(DEFAULT_PROGRESS, Duration::from_millis),
    })
}

pub async fn subscribe(
    State(state): State<AppState>,
    Path((ns, service)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let request = match parse(&state, &ns, &service, &uri).await {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    let (lines, body) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let mut starts_after = request.from;
    match state.store.watch(&request.prefix, true, request.from) {
        Ok(watcher) => {
            starts_after = Some(request.from.unwrap_or(watcher.live_after));
            tokio::spawn(stream(state, request, watcher, lines));
        }
        Err(WatchStartError::TooMany(err)) => {
            return ApiError::new(ErrorCode::TooManyWatchers, err.to_string()).into_response();
        }
        Err(WatchStartError::Rejected(rejection)) => {
            // Said in the stream, so a subscriber reading events sees why it ended.
            let message = rejected(&rejection);
            tokio::spawn(async move {
                let _ = lines.send(Ok(frame(&message))).await;
            });
        }
    }
    let mut response = (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
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

fn rejected(rejection: &Rejection) -> ServiceEvent {
    match rejection {
        Rejection::Compacted { .. } => ServiceEvent::Error {
            code: WatchErrorCode::Compacted,
            message: format!(
                "{rejection}; subscribe again without from_revision to get a fresh snapshot"
            ),
        },
        other => ServiceEvent::Error {
            code: WatchErrorCode::Unavailable,
            message: other.to_string(),
        },
    }
}

fn frame(event: &ServiceEvent) -> Bytes {
    let json = serde_json::to_string(event).expect("service events always serialize");
    Bytes::from(json + "\n")
}

/// Feeds one subscription until the client goes away or it ends.
async fn stream(state: AppState, request: Request, watcher: Watcher, lines: Lines) {
    let Watcher {
        mut subscription,
        live_after,
    } = watcher;
    let mut sender = Sender {
        lines,
        last: request.from.unwrap_or(live_after),
    };
    match request.from {
        None => {
            // The snapshot is read after the subscription started, at a
            // revision at or past `live_after`; live events it already
            // covers are skipped by revision.
            let snapshot =
                read_together(&state, &[(&request.prefix, true)]).and_then(|(reads, revision)| {
                    let instances = reads[0].iter().map(instance_of).collect::<ApiResult<_>>()?;
                    Ok(ServiceEvent::Snapshot {
                        instances,
                        revision,
                    })
                });
            match snapshot {
                Ok(snapshot) => {
                    if let ServiceEvent::Snapshot { revision, .. } = &snapshot {
                        sender.last = *revision;
                    }
                    if !sender.send(&snapshot).await {
                        return;
                    }
                }
                Err(err) => {
                    let message = ServiceEvent::Error {
                        code: WatchErrorCode::Unavailable,
                        message: err.0.message,
                    };
                    let _ = sender.send(&message).await;
                    return;
                }
            }
        }
        Some(_) => {
            // History first: every change after `from` up to where live
            // delivery starts.
            while sender.last < live_after {
                match state.store.history(
                    &request.prefix,
                    true,
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
                        let _ = sender.send(&rejected(&rejection)).await;
                        return;
                    }
                }
            }
            sender.last = sender.last.max(live_after);
        }
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
                    let (code, why) = if subscription.lagged() {
                        (WatchErrorCode::SlowWatcher, "the subscriber fell behind and was cut off")
                    } else {
                        (WatchErrorCode::Unavailable, "the node stopped serving this subscription")
                    };
                    let message = ServiceEvent::Error {
                        code,
                        message: format!(
                            "{why}; resume (on any member) with from_revision={}",
                            sender.last
                        ),
                    };
                    let _ = sender.send(&message).await;
                    return;
                }
            },
            _ = progress.tick() => {
                // Read the revision before draining: every event up to it
                // was queued before it became visible.
                let revision = state.store.revision();
                while let Ok(batch) = subscription.receiver.try_recv() {
                    if !sender.events(&batch).await {
                        return;
                    }
                }
                sender.last = sender.last.max(revision);
                if !sender.send(&ServiceEvent::Progress { revision: sender.last }).await {
                    return;
                }
            }
            _ = sender.lines.closed() => return,
        }
    }
}

struct Sender {
    lines: Lines,
    /// Every change up to this revision has been sent.
    last: Revision,
}

impl Sender {
    async fn send(&mut self, event: &ServiceEvent) -> bool {
        self.lines.send(Ok(frame(event))).await.is_ok()
    }

    /// Sends the instance changes newer than what was sent; false once the
    /// client is gone.
    async fn events(&mut self, events: &[Event]) -> bool {
        for event in events {
            if event.kv.mod_revision <= self.last {
                continue;
            }
            let message = match event.kind {
                EventKind::Put => match instance_of(&event.kv) {
                    Ok(instance) => ServiceEvent::Upsert {
                        instance: Box::new(instance),
                    },
                    Err(err) => {
                        tracing::warn!(key = %event.kv.key, error = %err.0.message, "skipping an undecodable instance");
                        continue;
                    }
                },
                EventKind::Delete => ServiceEvent::Remove {
                    id: event
                        .kv
                        .key
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                    revision: event.kv.mod_revision,
                },
            };
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
