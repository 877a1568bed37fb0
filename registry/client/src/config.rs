//! The config center: publish, read (gray-aware), history, diff, rollback,
//! gray releases, the listener long-poll and a resumable watch.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use futures::stream::BoxStream;
use muster_types::Revision;
use muster_types::config::{
    ConfigEvent, ConfigFormat, ConfigHistory, ConfigItem, ConfigVersion, GrayRequest, ListenItem,
    ListenRequest, ListenResponse, RollbackRequest,
};
use muster_types::error::ErrorCode;
use muster_types::kv::DeleteResponse;
use muster_types::watch::WatchErrorCode;
use reqwest::Method;

use crate::reconnect::{self, Failure, Feed};
use crate::{Call, Client, ClientError, Reply, Result, encode_segment};

/// Names one config item.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConfigId {
    pub namespace: String,
    pub group: String,
    pub data_id: String,
}

impl ConfigId {
    pub fn new(
        namespace: impl Into<String>,
        group: impl Into<String>,
        data_id: impl Into<String>,
    ) -> Self {
        ConfigId {
            namespace: namespace.into(),
            group: group.into(),
            data_id: data_id.into(),
        }
    }

    fn path(&self, suffix: &str) -> String {
        format!(
            "{}{}{suffix}",
            group_path(&self.namespace, &self.group),
            encode_segment(&self.data_id)
        )
    }
}

fn group_path(namespace: &str, group: &str) -> String {
    format!(
        "/v1/config/{}/{}/",
        encode_segment(namespace),
        encode_segment(group)
    )
}

/// Labels a client states about itself; gray selectors match them.
pub type Labels = BTreeMap<String, String>;

/// Extra time a listen call waits beyond the poll for the answer to arrive.
const LISTEN_GRACE: Duration = Duration::from_secs(10);

fn format_name(format: ConfigFormat) -> &'static str {
    match format {
        ConfigFormat::Yaml => "yaml",
        ConfigFormat::Json => "json",
        ConfigFormat::Toml => "toml",
        ConfigFormat::Properties => "properties",
        ConfigFormat::Text => "text",
    }
}

fn labels_query(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(key, value)| format!("{key}:{value}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Client {
    /// Publishes `content` as the next version; refused (400, field
    /// `content`) when it does not parse as `format`.
    pub async fn config_publish(
        &self,
        id: &ConfigId,
        content: impl Into<String>,
        format: ConfigFormat,
        author: Option<&str>,
    ) -> Result<ConfigItem> {
        let call = Call::new(Method::PUT, id.path(""))
            .query("format", format_name(format))
            .raw(content.into().into_bytes());
        self.json(with_author(call, author)).await
    }

    /// The item as a client without labels sees it; None when absent.
    pub async fn config_get(&self, id: &ConfigId) -> Result<Option<ConfigItem>> {
        self.config_get_with_labels(id, &Labels::new()).await
    }

    /// The item as a client with `labels` sees it: the gray content (and
    /// `served_gray`) when the gray selector matches.
    pub async fn config_get_with_labels(
        &self,
        id: &ConfigId,
        labels: &Labels,
    ) -> Result<Option<ConfigItem>> {
        let mut call = Call::new(Method::GET, id.path(""));
        if !labels.is_empty() {
            call = call.query("labels", labels_query(labels));
        }
        not_found_is_none(self.json(call).await)
    }

    /// Deletes the item; its history stays.
    pub async fn config_delete(&self, id: &ConfigId) -> Result<DeleteResponse> {
        self.json(Call::new(Method::DELETE, id.path(""))).await
    }

    /// Versions, newest first, without content; `limit` 0: the server's
    /// default.
    pub async fn config_history(&self, id: &ConfigId, limit: usize) -> Result<ConfigHistory> {
        let mut call = Call::new(Method::GET, id.path("/history"));
        if limit > 0 {
            call = call.query("limit", limit);
        }
        self.json(call).await
    }

    pub async fn config_version(&self, id: &ConfigId, version: u64) -> Result<ConfigVersion> {
        self.json(Call::new(
            Method::GET,
            id.path(&format!("/history/{version}")),
        ))
        .await
    }

    /// A unified diff from version `from` to `to` (None: the current
    /// content); empty when equal.
    pub async fn config_diff(&self, id: &ConfigId, from: u64, to: Option<u64>) -> Result<String> {
        let mut call = Call::new(Method::GET, id.path("/diff")).query("from", from);
        if let Some(to) = to {
            call = call.query("to", to);
        }
        let answer = self.execute(&call, false).await?;
        match answer.reply {
            Reply::Body(body) => Ok(String::from_utf8_lossy(&body).into_owned()),
            Reply::Stream(_) => unreachable!("unary call"),
        }
    }

    /// Publishes an old version's content as a new version.
    pub async fn config_rollback(
        &self,
        id: &ConfigId,
        version: u64,
        author: Option<&str>,
    ) -> Result<ConfigItem> {
        let call =
            Call::new(Method::POST, id.path("/rollback")).json(&RollbackRequest { version })?;
        self.json(with_author(call, author)).await
    }

    /// Sets gray content for clients whose labels match every pair of
    /// `selector`.
    pub async fn config_gray_set(
        &self,
        id: &ConfigId,
        content: impl Into<String>,
        selector: Labels,
        author: Option<&str>,
    ) -> Result<ConfigItem> {
        let request = GrayRequest {
            content: content.into(),
            selector,
        };
        let call = Call::new(Method::PUT, id.path("/gray")).json(&request)?;
        self.json(with_author(call, author)).await
    }

    /// Publishes the gray content as the next stable version.
    pub async fn config_gray_promote(
        &self,
        id: &ConfigId,
        author: Option<&str>,
    ) -> Result<ConfigItem> {
        let call = Call::new(Method::POST, id.path("/gray/promote"));
        self.json(with_author(call, author)).await
    }

    pub async fn config_gray_cancel(&self, id: &ConfigId) -> Result<ConfigItem> {
        self.json(Call::new(Method::DELETE, id.path("/gray"))).await
    }

    /// The Nacos listener: returns as soon as one of `items` has an MD5
    /// (for these labels) other than the one given, or empty after
    /// `timeout` (at most 60 s).
    pub async fn config_listen(
        &self,
        items: Vec<ListenItem>,
        labels: Labels,
        timeout: Duration,
    ) -> Result<ListenResponse> {
        let request = ListenRequest {
            items,
            labels,
            timeout_ms: Some(timeout.as_millis() as u64),
        };
        // Polling twice is harmless, so a failed attempt moves on.
        let call = Call::new(Method::POST, "/v1/config/listen")
            .json(&request)?
            .idempotent();
        // The server sends its headers at once and the answer when ready.
        let answer = self.execute(&call, true).await?;
        let Reply::Stream(response) = answer.reply else {
            unreachable!("stream call");
        };
        let body = match tokio::time::timeout(timeout + LISTEN_GRACE, response.bytes()).await {
            Err(_) => {
                return Err(ClientError::timeout(
                    &answer.endpoint,
                    "waiting for the listen answer",
                ));
            }
            Ok(Err(err)) => return Err(ClientError::transport(&answer.endpoint, &err)),
            Ok(Ok(body)) => body,
        };
        crate::decode_json(&answer.endpoint, &body)
    }

    /// Streams the changes of a group's items (or, with `data_id`, one
    /// item's) after `from_revision` (None: from now). It reconnects on
    /// failures and resumes after the last revision seen, so each change is
    /// delivered once; it ends after an error it cannot recover from
    /// (`compacted`: re-read, then watch from a later revision).
    pub fn watch_config(
        &self,
        namespace: &str,
        group: &str,
        data_id: Option<&str>,
        from_revision: Option<Revision>,
    ) -> BoxStream<'static, Result<ConfigEvent>> {
        let feed = ConfigFeed {
            path: format!("{}watch", group_path(namespace, group)),
            data_id: data_id.map(str::to_owned),
            last: from_revision,
        };
        reconnect::stream(self.clone(), feed)
    }
}

/// Who the server records as the publisher (default: "anonymous").
fn with_author(call: Call, author: Option<&str>) -> Call {
    match author {
        Some(author) => call.query("author", author),
        None => call,
    }
}

fn not_found_is_none<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.code() == Some(ErrorCode::KeyNotFound) => Ok(None),
        Err(err) => Err(err),
    }
}

/// The config watch's side of the reconnecting stream. Each revision
/// changes at most one item, so the last revision seen is where to resume.
struct ConfigFeed {
    path: String,
    data_id: Option<String>,
    /// Every change up to here was delivered.
    last: Option<Revision>,
}

impl Feed for ConfigFeed {
    type Message = ConfigEvent;
    type Item = ConfigEvent;
    const NAME: &'static str = "config watch";

    fn open(&self) -> Call {
        let mut call = Call::new(Method::GET, self.path.clone());
        if let Some(data_id) = &self.data_id {
            call = call.query("data_id", data_id);
        }
        if let Some(last) = self.last {
            call = call.query("from_revision", last);
        }
        call
    }

    fn opened(&mut self, started_at: Option<Revision>) {
        if self.last.is_none() {
            self.last = started_at;
        }
    }

    fn message(
        &mut self,
        event: ConfigEvent,
        ready: &mut VecDeque<Result<ConfigEvent>>,
    ) -> std::result::Result<(), Failure> {
        match event {
            ConfigEvent::Published { revision, .. } | ConfigEvent::Deleted { revision, .. } => {
                if self.last.is_none_or(|last| revision > last) {
                    self.last = Some(revision);
                    ready.push_back(Ok(event));
                }
                Ok(())
            }
            ConfigEvent::Progress { revision } => {
                self.last = Some(self.last.unwrap_or(0).max(revision));
                Ok(())
            }
            ConfigEvent::Error {
                code,
                message,
                compacted_revision,
                resume_revision,
            } => {
                let mut body = muster_types::error::ErrorBody::new(
                    if code == WatchErrorCode::Compacted {
                        ErrorCode::Compacted
                    } else {
                        ErrorCode::Unavailable
                    },
                    message,
                );
                body.compacted_revision = compacted_revision;
                let error = ClientError::Api {
                    status: body.error.http_status(),
                    body,
                };
                if code == WatchErrorCode::Compacted {
                    return Err(Failure::Fatal(error));
                }
                if let Some(resume) = resume_revision {
                    self.last = Some(self.last.map_or(resume, |last| last.min(resume)));
                }
                Err(Failure::Retry {
                    error,
                    avoid: false,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_each_segment_once() {
        let id = ConfigId::new("default", "web", "app.yaml");
        assert_eq!(id.path(""), "/v1/config/default/web/app.yaml");
        assert_eq!(
            id.path("/history/3"),
            "/v1/config/default/web/app.yaml/history/3"
        );
        assert_eq!(
            group_path("default", "DEFAULT_GROUP") + "watch",
            "/v1/config/default/DEFAULT_GROUP/watch"
        );
        let labels: Labels = [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        assert_eq!(labels_query(&labels), "a:1,b:2");
    }
}
