//! The config center: `namespace / group / data_id` items with validated
//! formats, full history, rollback and gray release (Nacos's config side).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Revision;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigFormat {
    Yaml,
    Json,
    Toml,
    Properties,
    #[default]
    Text,
}

impl ConfigFormat {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "yaml" | "yml" => ConfigFormat::Yaml,
            "json" => ConfigFormat::Json,
            "toml" => ConfigFormat::Toml,
            "properties" => ConfigFormat::Properties,
            "text" | "txt" => ConfigFormat::Text,
            _ => return None,
        })
    }
}

/// A gray (canary) version: clients whose labels match `selector` get it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrayRelease {
    pub content: String,
    pub md5: String,
    pub sha256: String,
    /// Every label here must be present with this value.
    pub selector: BTreeMap<String, String>,
    pub published_at_ms: u64,
    #[serde(default)]
    pub published_by: String,
}

/// A config item as stored and returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigItem {
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    pub content: String,
    pub format: ConfigFormat,
    pub md5: String,
    pub sha256: String,
    /// Publishes since the item was created, starting at 1.
    pub version: u64,
    pub published_at_ms: u64,
    #[serde(default)]
    pub published_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gray: Option<GrayRelease>,
    /// Revision of the last change.
    #[serde(default)]
    pub revision: Revision,
    /// In an answer to a reader that stated labels: `content`, `md5` and
    /// `sha256` are the gray release's, because its selector matched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub served_gray: bool,
}

/// One published version, as the history keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersion {
    pub version: u64,
    pub content: String,
    pub format: ConfigFormat,
    pub md5: String,
    pub sha256: String,
    pub published_at_ms: u64,
    #[serde(default)]
    pub published_by: String,
    /// Set when this version was published by a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_from: Option<u64>,
}

/// A history listing: versions without content, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigHistory {
    pub versions: Vec<ConfigVersionSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersionSummary {
    pub version: u64,
    pub md5: String,
    pub published_at_ms: u64,
    #[serde(default)]
    pub published_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_from: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRequest {
    pub version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrayRequest {
    pub content: String,
    pub selector: BTreeMap<String, String>,
}

/// One item a long-poll listener holds, with the hash it has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenItem {
    pub namespace: String,
    pub group: String,
    pub data_id: String,
    /// The MD5 the listener has; empty when it has nothing.
    #[serde(default)]
    pub md5: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenRequest {
    pub items: Vec<ListenItem>,
    /// Labels of the listener, for gray releases.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Milliseconds to wait for a change (at most 60000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The items whose hash differs from what the listener holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenResponse {
    pub changed: Vec<ListenItem>,
    pub revision: Revision,
}

/// One line of a config watch stream (`GET /v1/config/{ns}/{group}/watch`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConfigEvent {
    /// An item was published, rolled back, or its gray release changed.
    Published {
        revision: Revision,
        item: Box<ConfigItem>,
    },
    Deleted {
        revision: Revision,
        namespace: String,
        group: String,
        data_id: String,
    },
    /// Nothing watched changed up to `revision`; resume after it.
    Progress { revision: Revision },
    /// The stream ends: `compacted` (re-read, then watch from
    /// `compacted_revision` or later) or a cut-off watcher that should resume
    /// from `resume_revision`.
    Error {
        code: crate::watch::WatchErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compacted_revision: Option<Revision>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_revision: Option<Revision>,
    },
}
