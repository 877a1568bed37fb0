//! The config center (Nacos's config side): `namespace / group / data_id`
//! items with validated formats, a bounded history with diff and rollback,
//! gray releases targeted by client labels, watch streams and the Nacos
//! listener long-poll. Items live in the keyspace under
//! `muster_catalog::keys::config`, each published version under
//! `keys::config_version`; every write is one compare-and-swap transaction
//! run on the leader.

mod gray;
mod history;
mod items;
mod listen;
mod publish;
mod watch;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use muster_catalog::keys;
use muster_catalog::names::check_name;
use muster_catalog::selector::{self, Labels};
use muster_types::config::ConfigItem;
use muster_types::error::ErrorCode;

use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::params::percent_decode;
use crate::typed;

/// The path segment that names a group's watch stream, so it cannot be a
/// data id.
const WATCH_SEGMENT: &str = "watch";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/config/listen", post(listen::listen))
        .route("/v1/config/{ns}/{group}/watch", get(watch::watch))
        .route(
            "/v1/config/{ns}/{group}/{data_id}",
            get(items::get).put(items::put).delete(items::delete),
        )
        .route(
            "/v1/config/{ns}/{group}/{data_id}/history",
            get(history::list),
        )
        .route(
            "/v1/config/{ns}/{group}/{data_id}/history/{version}",
            get(history::version),
        )
        .route("/v1/config/{ns}/{group}/{data_id}/diff", get(history::diff))
        .route(
            "/v1/config/{ns}/{group}/{data_id}/rollback",
            post(history::rollback),
        )
        .route(
            "/v1/config/{ns}/{group}/{data_id}/gray",
            put(gray::set).delete(gray::cancel),
        )
        .route(
            "/v1/config/{ns}/{group}/{data_id}/gray/promote",
            post(gray::promote),
        )
}

/// Which item a request is about, names checked.
#[derive(Clone, Debug)]
struct ItemId {
    namespace: String,
    group: String,
    data_id: String,
}

impl ItemId {
    fn new(namespace: String, group: String, data_id: String) -> ApiResult<Self> {
        check_group(&namespace, &group)?;
        check_name("data_id", &data_id).map_err(|m| ApiError::invalid("data_id", m))?;
        if data_id == WATCH_SEGMENT {
            return Err(ApiError::invalid(
                "data_id",
                "data_id \"watch\" is reserved: its path serves the group's watch stream",
            ));
        }
        Ok(ItemId {
            namespace,
            group,
            data_id,
        })
    }

    fn key(&self) -> String {
        keys::config(&self.namespace, &self.group, &self.data_id)
    }

    fn version_key(&self, version: u64) -> String {
        keys::config_version(&self.namespace, &self.group, &self.data_id, version)
    }

    fn history_prefix(&self) -> String {
        keys::config_history_prefix(&self.namespace, &self.group, &self.data_id)
    }

    fn not_found(&self) -> ApiError {
        ApiError(
            muster_types::error::ErrorBody::new(
                ErrorCode::KeyNotFound,
                format!(
                    "config {}/{}/{} does not exist",
                    self.namespace, self.group, self.data_id
                ),
            )
            .with_field("data_id"),
        )
    }
}

/// Config items may live in any validly named namespace: unlike services,
/// they do not require the namespace to have been created first.
fn check_group(namespace: &str, group: &str) -> ApiResult<()> {
    check_name("namespace", namespace).map_err(|m| ApiError::invalid("namespace", m))?;
    check_name("group", group).map_err(|m| ApiError::invalid("group", m))
}

/// The stored item, with `revision` set to its key's `mod_revision`.
fn read_item(
    state: &AppState,
    id: &ItemId,
) -> ApiResult<Option<(ConfigItem, muster_types::kv::KeyValue)>> {
    Ok(
        typed::read_json::<ConfigItem>(state, &id.key())?.map(|(mut item, kv)| {
            item.revision = kv.mod_revision;
            (item, kv)
        }),
    )
}

/// A reader's labels from `labels=k:v,k2:v2` and repeated `label=k:v`.
fn labels_of(query: Option<&str>) -> ApiResult<Labels> {
    let mut labels = Labels::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "labels" && name != "label" {
            continue;
        }
        let value = percent_decode(value, true)
            .ok_or_else(|| ApiError::invalid(name, format!("{name}: not valid UTF-8")))?;
        let result = if name == "labels" {
            selector::parse_labels(&value).map(|parsed| {
                for (key, value) in parsed {
                    labels.insert(key, value);
                }
            })
        } else {
            selector::add_label(&mut labels, &value)
        };
        result.map_err(|message| ApiError::invalid(name, message))?;
    }
    Ok(labels)
}

/// Who publishes: `?author=`, else the `x-muster-user` header, else
/// "anonymous".
fn author_of(query_author: Option<&str>, headers: &HeaderMap) -> String {
    query_author
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get("x-muster-user")
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "anonymous".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_both_parameters() {
        let labels = labels_of(Some("raw&labels=canary:true,zone:eu&label=ip%3A10.0.0.1")).unwrap();
        assert_eq!(labels.len(), 3);
        assert_eq!(labels["ip"], "10.0.0.1");
        let err = labels_of(Some("label=novalue")).unwrap_err();
        assert_eq!(err.0.field.as_deref(), Some("label"));
    }

    #[test]
    fn the_author_comes_from_the_query_then_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert("x-muster-user", "ops".parse().unwrap());
        assert_eq!(author_of(None, &headers), "ops");
        assert_eq!(author_of(Some("cli"), &headers), "cli");
        assert_eq!(author_of(None, &HeaderMap::new()), "anonymous");
    }

    #[test]
    fn watch_is_not_a_data_id() {
        assert!(ItemId::new("d".into(), "g".into(), "watch".into()).is_err());
        assert!(ItemId::new("d".into(), "g".into(), "a/b".into()).is_err());
        assert!(ItemId::new("d".into(), "g".into(), "app.yaml".into()).is_ok());
    }
}
