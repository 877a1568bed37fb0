//! Publishing a version: one compare-and-swap transaction that writes the
//! item, appends its version record and trims the oldest records beyond
//! the history limit, so history and item never disagree.

use muster_catalog::digest::{md5_hex, sha256_hex};
use muster_catalog::format;
use muster_types::config::{ConfigFormat, ConfigItem, ConfigVersion};
use muster_types::error::{ErrorBody, ErrorCode};
use muster_types::kv::{DeleteRequest, PutRequest, RangeRequest, TxnOp};
use muster_types::limits::{MAX_RANGE_LIMIT, MAX_TXN_OPS, MAX_VALUE_BYTES};
use serde::Serialize;

use super::{ItemId, read_item};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::typed::{
    self, CAS_ATTEMPTS, NAMESPACE_CHANGES, cas, contended, now_ms, require_namespace, unchanged,
};

/// Old versions one publish deletes at most, so its transaction stays
/// within the operation limit; after the limit is lowered, history shrinks
/// over the next few publishes.
const MAX_TRIM_PER_PUBLISH: usize = MAX_TXN_OPS - 8;

/// What happens to a gray release when stable content is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GrayAfter {
    /// It stays (while the format is unchanged), as Nacos's beta does.
    Keep,
    /// It is gone: it was promoted.
    Clear,
}

pub(super) struct Publication {
    pub content: String,
    pub format: ConfigFormat,
    pub author: String,
    pub rolled_back_from: Option<u64>,
    pub gray: GrayAfter,
    /// Publish only if the item is still at this revision (a promotion
    /// must not publish a gray release that was replaced meanwhile).
    pub expect_revision: Option<u64>,
}

/// Content must fit in one value and parse as its format.
pub(super) fn check_content(format: ConfigFormat, content: &str) -> ApiResult<()> {
    if content.len() > MAX_VALUE_BYTES {
        return Err(too_large(content.len()));
    }
    format::validate(format, content).map_err(|err| ApiError::invalid("content", err.to_string()))
}

fn too_large(bytes: usize) -> ApiError {
    ApiError(
        ErrorBody::new(
            ErrorCode::TooLarge,
            format!("content is {bytes} bytes, the limit is {MAX_VALUE_BYTES}"),
        )
        .with_field("content"),
    )
}

/// Versions kept in the item's history, oldest first.
pub(super) fn history_versions(state: &AppState, id: &ItemId) -> ApiResult<Vec<u64>> {
    let prefix = id.history_prefix();
    let mut versions = Vec::new();
    let mut after = None;
    let mut at_revision = None;
    loop {
        let page = state.store.read(|ks| {
            ks.range(&RangeRequest {
                key: prefix.clone(),
                prefix: true,
                limit: MAX_RANGE_LIMIT,
                after: after.clone(),
                revision: at_revision,
                keys_only: true,
            })
        })?;
        at_revision = Some(page.revision);
        versions.extend(
            page.kvs
                .iter()
                .filter_map(|kv| kv.key.strip_prefix(&prefix)?.parse::<u64>().ok()),
        );
        if !page.more {
            return Ok(versions);
        }
        after = page.next;
    }
}

/// The oldest versions to delete so that, with one more, at most `limit`
/// remain.
pub(super) fn overflow(existing: &[u64], limit: usize) -> &[u64] {
    let excess = (existing.len() + 1).saturating_sub(limit.max(1));
    &existing[..excess.min(MAX_TRIM_PER_PUBLISH)]
}

pub(super) fn put_json(key: String, value: &impl Serialize) -> TxnOp {
    TxnOp::Put(PutRequest {
        key,
        value: serde_json::to_vec(value)
            .expect("config records always serialize")
            .into(),
        lease: None,
        prev_revision: None,
        prev_kv: false,
    })
}

fn delete(key: String) -> TxnOp {
    TxnOp::Delete(DeleteRequest {
        key,
        prefix: false,
        prev_kv: false,
    })
}

/// A value the store refused as too large is the content's fault (the
/// stored item carries the content, a gray release and some metadata).
pub(super) fn blame_content(mut err: ApiError) -> ApiError {
    if err.0.error == ErrorCode::TooLarge {
        err.0.field = Some("content".into());
        err.0.message = format!(
            "{} (the stored item holds the content and any gray release)",
            err.0.message
        );
    }
    err
}

/// Publishes a new version on this node, which must lead.
pub(super) async fn publish(
    state: &AppState,
    id: &ItemId,
    publication: Publication,
) -> ApiResult<ConfigItem> {
    // Config items live in the catalog's namespaces: held shared so a
    // namespace cannot be deleted under a publish.
    let _shared = NAMESPACE_CHANGES.read().await;
    let namespace = require_namespace(state, &id.namespace)?;
    let limit = state.node.config_history_limit();
    let md5 = md5_hex(publication.content.as_bytes());
    let sha256 = sha256_hex(publication.content.as_bytes());
    for _ in 0..CAS_ATTEMPTS {
        let current = read_item(state, id)?;
        if let Some(expected) = publication.expect_revision
            && current.as_ref().map(|(_, kv)| kv.mod_revision) != Some(expected)
        {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "the config item changed meanwhile; read it again and retry",
            ));
        }
        let versions = history_versions(state, id)?;
        // Versions continue across a delete and re-create, because the
        // history of the deleted item is kept.
        let last = current
            .as_ref()
            .map(|(item, _)| item.version)
            .into_iter()
            .chain(versions.last().copied())
            .max()
            .unwrap_or(0);
        let version = last + 1;
        let gray = match (publication.gray, current.as_ref()) {
            (GrayAfter::Keep, Some((item, _))) if item.format == publication.format => {
                item.gray.clone()
            }
            _ => None,
        };
        let published_at_ms = now_ms();
        let item = ConfigItem {
            namespace: id.namespace.clone(),
            group: id.group.clone(),
            data_id: id.data_id.clone(),
            content: publication.content.clone(),
            format: publication.format,
            md5: md5.clone(),
            sha256: sha256.clone(),
            version,
            published_at_ms,
            published_by: publication.author.clone(),
            gray,
            revision: 0,
            served_gray: false,
        };
        let record = ConfigVersion {
            version,
            content: publication.content.clone(),
            format: publication.format,
            md5: md5.clone(),
            sha256: sha256.clone(),
            published_at_ms,
            published_by: publication.author.clone(),
            rolled_back_from: publication.rolled_back_from,
        };
        let mut ops = vec![
            put_json(id.key(), &item),
            put_json(id.version_key(version), &record),
        ];
        ops.extend(
            overflow(&versions, limit)
                .iter()
                .map(|&old| delete(id.version_key(old))),
        );
        let mut compare = vec![unchanged(&id.key(), current.as_ref().map(|(_, kv)| kv))];
        if let Some(namespace) = &namespace {
            compare.push(unchanged(&namespace.key, Some(namespace)));
        }
        if let Some(response) = cas(state, compare, ops).await.map_err(blame_content)? {
            return Ok(ConfigItem {
                revision: response.revision,
                ..item
            });
        }
    }
    Err(contended("the config item"))
}

/// Rewrites the item (gray changes) without a new version.
pub(super) async fn rewrite(
    state: &AppState,
    id: &ItemId,
    change: impl Fn(&mut ConfigItem) -> ApiResult<()>,
) -> ApiResult<ConfigItem> {
    for _ in 0..CAS_ATTEMPTS {
        let Some((mut item, kv)) = read_item(state, id)? else {
            return Err(id.not_found());
        };
        change(&mut item)?;
        item.revision = 0;
        let ops = vec![put_json(id.key(), &item)];
        if let Some(response) = cas(state, vec![unchanged(&id.key(), Some(&kv))], ops)
            .await
            .map_err(blame_content)?
        {
            item.revision = response.revision;
            return Ok(item);
        }
    }
    Err(contended("the config item"))
}

/// Deletes the item; its history stays (as in Nacos), so a re-created item
/// continues its version numbers and old versions can still be restored.
pub(super) async fn remove(state: &AppState, id: &ItemId) -> ApiResult<u64> {
    for _ in 0..CAS_ATTEMPTS {
        let Some((_, kv)) = read_item(state, id)? else {
            return Err(id.not_found());
        };
        let ops = vec![delete(id.key())];
        if let Some(response) = cas(state, vec![unchanged(&id.key(), Some(&kv))], ops).await? {
            return Ok(response.revision);
        }
    }
    Err(contended("the config item"))
}

/// Reads one stored version.
pub(super) fn read_version(
    state: &AppState,
    id: &ItemId,
    version: u64,
) -> ApiResult<ConfigVersion> {
    match typed::read_json::<ConfigVersion>(state, &id.version_key(version))? {
        Some((record, _)) => Ok(record),
        None => Err(ApiError(
            ErrorBody::new(
                ErrorCode::KeyNotFound,
                format!(
                    "version {version} of {}/{}/{} is not in its history (never published, or trimmed by the history limit)",
                    id.namespace, id.group, id.data_id
                ),
            )
            .with_field("version"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_keeps_room_for_the_new_version() {
        assert_eq!(overflow(&[1, 2, 3], 5), &[] as &[u64]);
        assert_eq!(overflow(&[1, 2, 3], 3), &[1]);
        assert_eq!(overflow(&[1, 2, 3], 1), &[1, 2, 3]);
        let many: Vec<u64> = (1..=500).collect();
        assert_eq!(overflow(&many, 10).len(), MAX_TRIM_PER_PUBLISH);
    }
}
