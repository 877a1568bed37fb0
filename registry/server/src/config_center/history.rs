//! History of an item: `…/history`, `…/history/{version}`, `…/diff`,
//! `…/rollback`.

use axum::extract::{Path, State};
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use muster_catalog::diff;
use muster_types::config::{ConfigHistory, ConfigVersion, ConfigVersionSummary, RollbackRequest};

use super::items::respond;
use super::publish::{GrayAfter, Publication, publish, read_version};
use super::{ItemId, author_of, read_item};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::forward::Replay;
use crate::http::kv::{consistent, json_of};
use crate::http::params::Params;
use crate::typed::{self, on_leader};

/// Versions listed when the request names no `limit`.
const DEFAULT_HISTORY_LIMIT: usize = 100;

pub(super) async fn list(
    State(state): State<AppState>,
    Path((namespace, group, data_id)): Path<(String, String, String)>,
    uri: Uri,
) -> Response {
    respond(
        async {
            let id = ItemId::new(namespace, group, data_id)?;
            let params = Params::parse(uri.query())?;
            let limit = params
                .number::<usize>("limit")?
                .unwrap_or(DEFAULT_HISTORY_LIMIT);
            consistent(&state, &params).await?;
            let (kvs, _) = typed::read_prefix(&state, &id.history_prefix())?;
            let mut versions = Vec::with_capacity(kvs.len().min(limit));
            for kv in kvs.iter().rev().take(limit) {
                let record: ConfigVersion = typed::decode(kv)?;
                versions.push(ConfigVersionSummary {
                    version: record.version,
                    md5: record.md5,
                    published_at_ms: record.published_at_ms,
                    published_by: record.published_by,
                    rolled_back_from: record.rolled_back_from,
                });
            }
            if versions.is_empty() && read_item(&state, &id)?.is_none() {
                return Err(id.not_found());
            }
            Ok(ConfigHistory { versions })
        }
        .await,
    )
}

fn version_param(text: &str, field: &str) -> ApiResult<u64> {
    text.parse().map_err(|_| {
        ApiError::invalid(
            field,
            format!("{field} must be a version number, not {text:?}"),
        )
    })
}

pub(super) async fn version(
    State(state): State<AppState>,
    Path((namespace, group, data_id, version)): Path<(String, String, String, String)>,
    uri: Uri,
) -> Response {
    respond(
        async {
            let id = ItemId::new(namespace, group, data_id)?;
            let version = version_param(&version, "version")?;
            consistent(&state, &Params::parse(uri.query())?).await?;
            read_version(&state, &id, version)
        }
        .await,
    )
}

/// `?from=V1[&to=V2]`: a unified diff, `to` defaulting to the current
/// content. Text, as `diff -u` prints it; empty when equal.
pub(super) async fn diff(
    State(state): State<AppState>,
    Path((namespace, group, data_id)): Path<(String, String, String)>,
    uri: Uri,
) -> Response {
    let result = async {
        let id = ItemId::new(namespace, group, data_id)?;
        let params = Params::parse(uri.query())?;
        let from = params
            .number::<u64>("from")?
            .ok_or_else(|| ApiError::invalid("from", "from (a version number) is required"))?;
        let to = params.number::<u64>("to")?;
        consistent(&state, &params).await?;
        let old = read_version(&state, &id, from)?;
        let (new_content, new_name) = match to {
            Some(to) => (read_version(&state, &id, to)?.content, format!("v{to}")),
            None => {
                let (item, _) = read_item(&state, &id)?.ok_or_else(|| id.not_found())?;
                (item.content, format!("v{} (current)", item.version))
            }
        };
        let name =
            |version: &str| format!("{}/{}/{} {version}", id.namespace, id.group, id.data_id);
        Ok::<_, ApiError>(diff::unified(
            &old.content,
            &new_content,
            &name(&format!("v{from}")),
            &name(&new_name),
        ))
    }
    .await;
    match result {
        Ok(text) => ([(header::CONTENT_TYPE, "text/x-diff; charset=utf-8")], text).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Publishes an old version's content and format as a new version.
pub(super) async fn rollback(
    State(state): State<AppState>,
    Path((namespace, group, data_id)): Path<(String, String, String)>,
    replay: Replay,
) -> Response {
    let prepared = (|| {
        let id = ItemId::new(namespace, group, data_id)?;
        let params = Params::parse(replay.uri.query())?;
        let request: RollbackRequest = json_of(&replay.body)?;
        let author = author_of(params.text("author"), &replay.headers);
        Ok::<_, ApiError>((id, request, author))
    })();
    let (id, request, author) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => return err.into_response(),
    };
    on_leader(&state, replay, || async {
        let result = async {
            let old = read_version(&state, &id, request.version)?;
            let publication = Publication {
                content: old.content,
                format: old.format,
                author,
                rolled_back_from: Some(request.version),
                gray: GrayAfter::Keep,
                expect_revision: None,
            };
            publish(&state, &id, publication).await
        }
        .await;
        respond(result)
    })
    .await
}
