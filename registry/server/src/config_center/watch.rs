//! `GET /v1/config/{ns}/{group}/watch[?data_id=X][&from_revision=N]`: the
//! changes of a group's items (or one item) as NDJSON [`ConfigEvent`]s,
//! history first when `from_revision` is given, then live, with progress
//! messages while idle. One item changes at most once per revision, so a
//! client resumes exactly with `from_revision` = the last revision it saw.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use muster_catalog::keys;
use muster_catalog::names::check_name;
use muster_types::Revision;
use muster_types::config::{ConfigEvent, ConfigItem};
use muster_types::limits::RESERVED_PREFIX;
use muster_types::watch::{Event, EventKind};

use super::check_group;
use crate::change_stream::{self, EndLine, Framer, Spec, Start, StreamEnd};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::params::Params;

fn parse(namespace: &str, group: &str, uri: &Uri) -> ApiResult<(Spec, Option<Revision>)> {
    check_group(namespace, group)?;
    let params = Params::parse(uri.query())?;
    let (key, prefix) = match params.text("data_id") {
        Some(data_id) => {
            check_name("data_id", data_id).map_err(|m| ApiError::invalid("data_id", m))?;
            (keys::config(namespace, group, data_id), false)
        }
        None => (keys::config_group_prefix(namespace, group), true),
    };
    let spec = Spec {
        key,
        prefix,
        progress: change_stream::progress_interval(&params)?,
        content_type: "application/x-ndjson",
    };
    Ok((spec, params.number("from_revision")?))
}

pub(super) async fn watch(
    State(state): State<AppState>,
    Path((namespace, group)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    match parse(&namespace, &group, &uri) {
        Ok((spec, from)) => {
            let start = from.map_or(Start::Now, Start::After);
            change_stream::respond(&state, spec, start, ConfigFramer)
        }
        Err(err) => err.into_response(),
    }
}

fn line(event: &ConfigEvent) -> Bytes {
    let json = serde_json::to_string(event).expect("config events always serialize");
    Bytes::from(json + "\n")
}

struct ConfigFramer;

impl Framer for ConfigFramer {
    fn event(&mut self, event: &Event) -> Option<Bytes> {
        to_config_event(event).map(|typed| line(&typed))
    }

    fn progress(&mut self, revision: Revision) -> Bytes {
        line(&ConfigEvent::Progress { revision })
    }

    fn end(&mut self, end: StreamEnd) -> Bytes {
        let EndLine {
            code,
            message,
            compacted_revision,
            resume_revision,
        } = end.line("read the items, then watch from that revision");
        line(&ConfigEvent::Error {
            code,
            message,
            compacted_revision,
            resume_revision,
        })
    }
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
