//! `PUT|GET|DELETE /v1/config/{ns}/{group}/{data_id}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use muster_catalog::{format, selector};
use muster_types::config::{ConfigFormat, ConfigItem};
use muster_types::kv::DeleteResponse;
use serde::Serialize;

use super::publish::{GrayAfter, Publication, check_content, publish, remove};
use super::{ItemId, author_of, labels_of, read_item};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::forward::Replay;
use crate::http::kv::consistent;
use crate::http::params::Params;
use crate::typed::on_leader;

pub(super) fn respond<T: Serialize>(result: ApiResult<T>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(err) => err.into_response(),
    }
}

pub(super) fn format_of(params: &Params) -> ApiResult<ConfigFormat> {
    match params.text("format") {
        None | Some("") => Ok(ConfigFormat::Text),
        Some(text) => ConfigFormat::parse(text).ok_or_else(|| {
            ApiError::invalid(
                "format",
                format!("format must be yaml, json, toml, properties or text, not {text:?}"),
            )
        }),
    }
}

pub(super) fn utf8_content(body: Bytes) -> ApiResult<String> {
    String::from_utf8(body.to_vec())
        .map_err(|err| ApiError::invalid("content", format!("content must be UTF-8: {err}")))
}

pub(super) async fn put(
    State(state): State<AppState>,
    Path((namespace, group, data_id)): Path<(String, String, String)>,
    replay: Replay,
) -> Response {
    let prepared = (|| {
        let id = ItemId::new(namespace, group, data_id)?;
        let params = Params::parse(replay.uri.query())?;
        let format = format_of(&params)?;
        let content = utf8_content(replay.body.clone())?;
        // Checked here too, so a follower refuses bad content itself.
        check_content(format, &content)?;
        let author = author_of(params.text("author"), &replay.headers);
        Ok::<_, ApiError>((id, format, content, author))
    })();
    let (id, format, content, author) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => return err.into_response(),
    };
    on_leader(&state, replay, || async {
        let publication = Publication {
            content,
            format,
            author,
            rolled_back_from: None,
            gray: GrayAfter::Keep,
            expect_revision: None,
        };
        respond(publish(&state, &id, publication).await)
    })
    .await
}

/// What a reader with `labels` gets: the gray content when the selector
/// matches, else the stable one.
pub(super) fn view_for(mut item: ConfigItem, labels: &selector::Labels) -> ConfigItem {
    if let Some(gray) = selector::gray_for(&item, labels).cloned() {
        item.content = gray.content;
        item.md5 = gray.md5;
        item.sha256 = gray.sha256;
        item.served_gray = true;
    }
    item
}

pub(super) async fn get(
    State(state): State<AppState>,
    Path((namespace, group, data_id)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let id = ItemId::new(namespace, group, data_id)?;
        let params = Params::parse(uri.query())?;
        let raw = params.flag("raw")?;
        let labels = labels_of(uri.query())?;
        consistent(&state, &params).await?;
        let (item, _) = read_item(&state, &id)?.ok_or_else(|| id.not_found())?;
        Ok::<_, ApiError>((view_for(item, &labels), raw))
    }
    .await;
    match result {
        Ok((item, true)) => raw_answer(item, &headers),
        Ok((item, false)) => Json(item).into_response(),
        Err(err) => err.into_response(),
    }
}

/// The content alone, with the MD5 as its entity tag.
fn raw_answer(item: ConfigItem, headers: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", item.md5);
    let held = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == etag || tag == "*")
        });
    let mut response = if held {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, format::content_type(item.format))],
            item.content,
        )
            .into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    if item.served_gray {
        response
            .headers_mut()
            .insert("x-muster-config-gray", HeaderValue::from_static("true"));
    }
    response
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path((namespace, group, data_id)): Path<(String, String, String)>,
    replay: Replay,
) -> Response {
    let id = match ItemId::new(namespace, group, data_id) {
        Ok(id) => id,
        Err(err) => return err.into_response(),
    };
    on_leader(&state, replay, || async {
        respond(remove(&state, &id).await.map(|revision| DeleteResponse {
            revision,
            deleted: 1,
            prev_kvs: Vec::new(),
        }))
    })
    .await
}
