//! Gray (canary) releases: `PUT …/gray` sets content for clients whose
//! labels match a selector, `POST …/gray/promote` publishes it as the next
//! stable version, `DELETE …/gray` cancels it.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use muster_catalog::digest::{md5_hex, sha256_hex};
use muster_catalog::selector;
use muster_types::config::{GrayRelease, GrayRequest};
use muster_types::error::{ErrorBody, ErrorCode};

use super::items::respond;
use super::publish::{GrayAfter, Publication, check_content, publish, rewrite};
use super::{ItemId, author_of, read_item};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::forward::Replay;
use crate::http::kv::json_of;
use crate::http::params::Params;
use crate::typed::{now_ms, on_leader};

fn no_gray(id: &ItemId) -> ApiError {
    ApiError(
        ErrorBody::new(
            ErrorCode::KeyNotFound,
            format!(
                "config {}/{}/{} has no gray release",
                id.namespace, id.group, id.data_id
            ),
        )
        .with_field("gray"),
    )
}

/// The parts every gray request needs, checked before it is forwarded.
fn prepare(
    namespace: String,
    group: String,
    data_id: String,
    request: &Replay,
) -> ApiResult<(ItemId, String)> {
    let id = ItemId::new(namespace, group, data_id)?;
    let params = Params::parse(request.uri.query())?;
    Ok((id, author_of(params.text("author"), &request.headers)))
}

pub(super) async fn set(
    State(state): State<AppState>,
    Path((namespace, group, data_id)): Path<(String, String, String)>,
    replay: Replay,
) -> Response {
    let prepared = (|| {
        let (id, author) = prepare(namespace, group, data_id, &replay)?;
        let request: GrayRequest = json_of(&replay.body)?;
        selector::check_selector(&request.selector)
            .map_err(|message| ApiError::invalid("selector", message))?;
        Ok::<_, ApiError>((id, author, request))
    })();
    let (id, author, request) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => return err.into_response(),
    };
    on_leader(&state, replay, || async {
        let gray = GrayRelease {
            md5: md5_hex(request.content.as_bytes()),
            sha256: sha256_hex(request.content.as_bytes()),
            content: request.content,
            selector: request.selector,
            published_at_ms: now_ms(),
            published_by: author,
        };
        respond(
            rewrite(&state, &id, |item| {
                // The item's format decides, so it is read on the leader.
                check_content(item.format, &gray.content)?;
                item.gray = Some(gray.clone());
                Ok(())
            })
            .await,
        )
    })
    .await
}

pub(super) async fn promote(
    State(state): State<AppState>,
    Path((namespace, group, data_id)): Path<(String, String, String)>,
    replay: Replay,
) -> Response {
    let (id, author) = match prepare(namespace, group, data_id, &replay) {
        Ok(prepared) => prepared,
        Err(err) => return err.into_response(),
    };
    on_leader(&state, replay, || async {
        let result = async {
            let (item, kv) = read_item(&state, &id)?.ok_or_else(|| id.not_found())?;
            let gray = item.gray.ok_or_else(|| no_gray(&id))?;
            let publication = Publication {
                content: gray.content,
                format: item.format,
                author,
                rolled_back_from: None,
                gray: GrayAfter::Clear,
                expect_revision: Some(kv.mod_revision),
            };
            publish(&state, &id, publication).await
        }
        .await;
        respond(result)
    })
    .await
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    Path((namespace, group, data_id)): Path<(String, String, String)>,
    replay: Replay,
) -> Response {
    let (id, _) = match prepare(namespace, group, data_id, &replay) {
        Ok(prepared) => prepared,
        Err(err) => return err.into_response(),
    };
    on_leader(&state, replay, || async {
        respond(
            rewrite(&state, &id, |item| {
                item.gray.take().map(drop).ok_or_else(|| no_gray(&id))
            })
            .await,
        )
    })
    .await
}
