//! `GET /v1/services/{ns}/{service}/watch`: a service's instance changes as
//! NDJSON [`ServiceEvent`]s. Without `from_revision`: a `snapshot` of the
//! current instances, then every change after it. With it: every change
//! after that revision (no snapshot). Revisions are the same on every node,
//! so a subscriber resumes on any node with the last revision it saw.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use muster_catalog::keys;
use muster_types::Revision;
use muster_types::catalog::ServiceEvent;
use muster_types::watch::{Event, EventKind, WatchErrorCode};

use super::discovery::read_together;
use super::{check_name, instance_of};
use crate::change_stream::{self, Framer, Spec, Start, StreamEnd};
use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::http::kv::consistent;
use crate::http::params::Params;
use crate::typed::require_namespace;

async fn parse(
    state: &AppState,
    ns: &str,
    service: &str,
    uri: &Uri,
) -> ApiResult<(Spec, Option<Revision>)> {
    check_name("service", service)?;
    let params = Params::parse(uri.query())?;
    let progress = change_stream::progress_interval(&params)?;
    let from = params.number("from_revision")?;
    consistent(state, &params).await?;
    require_namespace(state, ns)?;
    let spec = Spec {
        key: keys::instances_prefix(ns, service),
        prefix: true,
        progress,
        content_type: "application/x-ndjson",
    };
    Ok((spec, from))
}

pub async fn subscribe(
    State(state): State<AppState>,
    Path((ns, service)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let (spec, from) = match parse(&state, &ns, &service, &uri).await {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    let start = match from {
        Some(revision) => Start::After(revision),
        None => {
            // Read after the subscription started, at a revision at or past
            // where live delivery begins; changes it covers are skipped.
            let reader = state.clone();
            let prefix = spec.key.clone();
            Start::Snapshot(Box::new(move || snapshot(&reader, &prefix)))
        }
    };
    change_stream::respond(&state, spec, start, ServiceFramer)
}

fn snapshot(state: &AppState, prefix: &str) -> Result<(Bytes, Revision), Bytes> {
    let read = read_together(state, &[(prefix, true)]).and_then(|(reads, revision)| {
        let instances = reads[0].iter().map(instance_of).collect::<ApiResult<_>>()?;
        Ok((instances, revision))
    });
    match read {
        Ok((instances, revision)) => Ok((
            frame(&ServiceEvent::Snapshot {
                instances,
                revision,
            }),
            revision,
        )),
        Err(err) => Err(frame(&ServiceEvent::Error {
            code: WatchErrorCode::Unavailable,
            message: err.0.message,
        })),
    }
}

fn frame(event: &ServiceEvent) -> Bytes {
    let json = serde_json::to_string(event).expect("service events always serialize");
    Bytes::from(json + "\n")
}

struct ServiceFramer;

impl Framer for ServiceFramer {
    fn event(&mut self, event: &Event) -> Option<Bytes> {
        let message = match event.kind {
            EventKind::Put => match instance_of(&event.kv) {
                Ok(instance) => ServiceEvent::Upsert {
                    instance: Box::new(instance),
                },
                Err(err) => {
                    tracing::warn!(key = %event.kv.key, error = %err.0.message, "skipping an undecodable instance");
                    return None;
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
        Some(frame(&message))
    }

    fn progress(&mut self, revision: Revision) -> Bytes {
        frame(&ServiceEvent::Progress { revision })
    }

    fn end(&mut self, end: StreamEnd) -> Bytes {
        let (code, message) = match end {
            StreamEnd::Compacted { reason, .. } => (
                WatchErrorCode::Compacted,
                format!("{reason}; subscribe again without from_revision to get a fresh snapshot"),
            ),
            StreamEnd::SlowWatcher { resume_revision } => (
                WatchErrorCode::SlowWatcher,
                format!(
                    "the subscriber fell behind and was cut off; resume (on any member) with from_revision={resume_revision}"
                ),
            ),
            StreamEnd::Unavailable {
                resume_revision,
                reason,
            } => (
                WatchErrorCode::Unavailable,
                match resume_revision {
                    Some(revision) => {
                        format!("{reason}; resume (on any member) with from_revision={revision}")
                    }
                    None => reason,
                },
            ),
        };
        frame(&ServiceEvent::Error { code, message })
    }
}
