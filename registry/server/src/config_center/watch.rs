//! `GET /v1/config/{ns}/{group}/watch[?data_id=X][&from_revision=N]`: the
//! changes of a group's items (or one item) as NDJSON [`ConfigEvent`]s,
//! history first when `from_revision` is given, then live, with progress
//! messages while idle. One item changes at most once per revision, so a
//! client resumes exactly with `from_revision` = the last revision it saw.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use muster_catalog::keys;
use muster_catalog::names::check_name;
use muster_types::Revision;
use muster_types::config::{ConfigEvent, ConfigItem};
use muster_types::error::ErrorCode;
use muster_types::limits::RESERVED_PREFIX;
use muster_types::watch::{Event, EventKind, WatchErrorCode};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::check_group;
use crate::dispatch::batch_revision;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::params::Params;
use crate::store::{WatchStartError, Watcher};

const HISTORY_PAGE: usize = 1000;
const DEFAULT_PROGRESS: Duration = Duration::from_secs(5);

struct Request {
    key: String,
    prefix: bool,
    from: Option<Revision>,
    progress: Duration,
}

fn parse(namespace: &str, group: &str, uri: &Uri) -> ApiResult<Request> {
    check_group(namespace, group)?;
    let params = Params::parse(uri.query())?;
    let (key, prefix) = match params.text("data_id") {
        Some(data_id) => {
            check_name("data_id", data_id).map_err(|m| ApiError::invalid("data_id", m))?;
            (keys::config(namespace, group, data_id), false)
        }
        None => (keys::config_group_prefix(namespace, group), true),
    };
    let progress_ms = params.number::<u64>("progress_interval_ms")?;
    if progress_ms.is_some_and(|ms| ms < 100) {
        return Err(ApiError::invalid(
            "progress_interval_ms",
            "progress_interval_ms is at least 100",
        ));
    }
    Ok(Request {
        key,
        prefix,
        from: params.number("from_revision")?,
        progress: progress_ms.map_or(DEFAULT_PROGRESS, Duration::from_millis),
    })
}

pub(super) async fn watch(
    State(state): State<AppState>,
    Path((namespace, group)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let request = match parse(&namespace, &group, &uri) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    let (lines, body) = mpsc::channel::<Result<Bytes, Infallible>>(64);
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
            let message = error_event(&rejection);
            tokio::spawn(async move {
                let _ = lines.send(Ok(line(&message))).await;
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

fn error_event(rejection: &muster_store::Rejection) -> ConfigEvent {
    match rejection {
        muster_store::Rejection::Compacted {
            compacted_revision, ..
        } => ConfigEvent::Error {
            code: WatchErrorCode::Compacted,
            message: format!("{rejection}; read the items, then watch from that revision"),
            compacted_revision: Some(*compacted_revision),
            resume_revision: None,
        },
        other => ConfigEvent::Error {
            code: WatchErrorCode::Unavailable,
            message: other.to_string(),
            compacted_revision: None,
            resume_revision: None,
        },
    }
}

fn line(event: &ConfigEvent) -> Bytes {
    let json = serde_json::to_string(event).expect("config events always serialize");
    Bytes::from(json + "\n")
}

/// The typed view of a change of an item key; None for a value that does
/// not decode (only the config center writes these keys).
fn to_config_event(event: &Event) -> Option<ConfigEvent> {
    let revision = event.kv.mod_revision;
    match event.kind {
        EventKind::Put => {
            let mut item: ConfigItem = serde_json::from_slice(event.kv.value.as_bytes())
                .inspect_err(
                    |err| tracing::warn!(key = %event.kv.key, %err, "undecodable config item"),
                )
                .ok()?;
            item.revision = revision;
            Some(ConfigEvent::Published {
                revision,
                item: Box::new(item),
            })
        }
        EventKind::Delete => {
            let path = event
                .kv
                .key
                .strip_prefix(RESERVED_PREFIX)?
                .strip_prefix("cfg/")?;
            let mut parts = path.splitn(3, '/');
            Some(ConfigEvent::Deleted {
                revision,
                namespace: parts.next()?.to_owned(),
                group: parts.next()?.to_owned(),
                data_id: parts.next()?.to_owned(),
            })
        }
    }
}

struct Sender {
    lines: mpsc::Sender<Result<Bytes, Infallible>>,
    /// Every change up to this revision has been sent.
    last: Revision,
}

impl Sender {
    async fn send(&self, event: &ConfigEvent) -> bool {
        self.lines.send(Ok(line(event))).await.is_ok()
    }

    async fn events(&mut self, events: &[Event]) -> bool {
        for event in events {
            if event.kv.mod_revision <= self.last {
                continue;
            }
            if let Some(typed) = to_config_event(event)
                && !self.send(&typed).await
            {
                return false;
            }
        }
        if let Some(revision) = batch_revision(events) {
            self.last = self.last.max(revision);
        }
        true
    }
}

async fn stream(
    state: AppState,
    request: Request,
    watcher: Watcher,
    lines: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    let Watcher {
        mut subscription,
        live_after,
    } = watcher;
    let mut sender = Sender {
        lines,
        last: request.from.unwrap_or(live_after),
    };
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
                    let _ = sender.send(&error_event(&rejection)).await;
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
                    let (code, message) = if subscription.lagged() {
                        (WatchErrorCode::SlowWatcher, "the watcher fell behind and was cut off; resume from resume_revision")
                    } else {
                        (WatchErrorCode::Unavailable, "the node stopped serving this watch; resume on any member")
                    };
                    let event = ConfigEvent::Error {
                        code,
                        message: message.into(),
                        compacted_revision: None,
                        resume_revision: Some(sender.last),
                    };
                    let _ = sender.send(&event).await;
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
                if !sender.send(&ConfigEvent::Progress { revision: sender.last }).await {
                    return;
                }
            }
            _ = sender.lines.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use muster_types::kv::KeyValue;

    use super::*;

    #[test]
    fn a_deleted_key_names_its_item() {
        let event = Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: keys::config("default", "web", "app.yaml"),
                value: Default::default(),
                create_revision: 0,
                mod_revision: 9,
                version: 0,
                lease: None,
            },
            prev_kv: None,
        };
        assert_eq!(
            to_config_event(&event),
            Some(ConfigEvent::Deleted {
                revision: 9,
                namespace: "default".into(),
                group: "web".into(),
                data_id: "app.yaml".into(),
            })
        );
    }
}
