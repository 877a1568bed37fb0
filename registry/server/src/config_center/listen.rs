//! `POST /v1/config/listen`: the Nacos listener long-poll. It answers as
//! soon as an item's effective MD5 (gray-aware, for the listener's labels)
//! differs from the one the listener holds, or empty after the timeout.

use std::collections::HashMap;
use std::time::Duration;

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use muster_catalog::keys;
use muster_catalog::selector::{self, effective_md5};
use muster_types::config::{ConfigItem, ListenItem, ListenRequest, ListenResponse};
use muster_types::error::ErrorCode;
use muster_types::watch::EventKind;

use super::{ItemId, read_item};
use crate::dispatch::{Subscription, batch_revision};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::forward::Replay;
use crate::http::kv::json_of;
use crate::store::WatchStartError;
use crate::typed;

pub(super) const DEFAULT_TIMEOUT_MS: u64 = 30_000;
pub(super) const MAX_TIMEOUT_MS: u64 = 60_000;
/// Items one listener may hold.
pub(super) const MAX_ITEMS: usize = 1000;

fn check(request: &ListenRequest) -> ApiResult<(Vec<ItemId>, Duration)> {
    if request.items.len() > MAX_ITEMS {
        return Err(ApiError::invalid(
            "items",
            format!(
                "a listener holds at most {MAX_ITEMS} items; this one has {}",
                request.items.len()
            ),
        ));
    }
    selector::check_labels(&request.labels).map_err(|m| ApiError::invalid("labels", m))?;
    let timeout_ms = request.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if timeout_ms > MAX_TIMEOUT_MS {
        return Err(ApiError::invalid(
            "timeout_ms",
            format!("timeout_ms is at most {MAX_TIMEOUT_MS}"),
        ));
    }
    let ids = request
        .items
        .iter()
        .map(|item| {
            ItemId::new(
                item.namespace.clone(),
                item.group.clone(),
                item.data_id.clone(),
            )
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok((ids, Duration::from_millis(timeout_ms)))
}

/// The headers go out as soon as the request is accepted and the JSON
/// answer follows when there is one, so clients (and proxies) with a
/// request deadline shorter than the poll only need the first byte soon.
pub(super) async fn listen(State(state): State<AppState>, body: Replay) -> Response {
    let accepted = async {
        let request: ListenRequest = json_of(&body.body)?;
        let (ids, timeout) = check(&request)?;
        // Subscribe before reading, so a publish between the read and the
        // wait is still heard.
        let subscription = match state.store.watch(&keys::all_configs_prefix(), true, None) {
            Ok(watcher) => watcher.subscription,
            Err(WatchStartError::TooMany(err)) => {
                return Err(ApiError::new(ErrorCode::TooManyWatchers, err.to_string()));
            }
            Err(WatchStartError::Rejected(rejection)) => return Err(rejection.into()),
        };
        state.node.linearize().await?;
        Ok((request, ids, timeout, subscription))
    }
    .await;
    let (request, ids, timeout, subscription) = match accepted {
        Ok(accepted) => accepted,
        Err(err) => return err.into_response(),
    };
    let answer = async move {
        let response = wait_for_change(&state, &request, &ids, timeout, subscription).await;
        let json = serde_json::to_vec(&response).expect("listen answers always serialize");
        Ok::<_, Infallible>(Bytes::from(json))
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(futures::stream::once(answer)),
    )
        .into_response()
}

/// The listened items whose effective MD5 differs from what the listener
/// holds, given each item's current state. An item that cannot be read
/// counts as changed (with an empty MD5), so the listener reads it itself.
fn differing(
    request: &ListenRequest,
    indexes: impl IntoIterator<Item = usize>,
    mut current: impl FnMut(usize) -> ApiResult<Option<ConfigItem>>,
) -> Vec<ListenItem> {
    let mut changed = Vec::new();
    for index in indexes {
        let held = &request.items[index];
        let md5 = match current(index) {
            Ok(item) => effective_md5(item.as_ref(), &request.labels).to_owned(),
            Err(err) => {
                tracing::warn!(data_id = %held.data_id, error = ?err.0, "config listener cannot read an item");
                changed.push(ListenItem {
                    md5: String::new(),
                    ..held.clone()
                });
                continue;
            }
        };
        if md5 != held.md5 {
            changed.push(ListenItem {
                md5,
                ..held.clone()
            });
        }
    }
    changed
}

async fn wait_for_change(
    state: &AppState,
    request: &ListenRequest,
    ids: &[ItemId],
    timeout: Duration,
    mut subscription: Subscription,
) -> ListenResponse {
    let deadline = tokio::time::Instant::now() + timeout;
    let read_current = |index: usize| Ok(read_item(state, &ids[index])?.map(|(item, _)| item));
    let answer = |changed| ListenResponse {
        changed,
        revision: state.store.revision(),
    };
    let changed = differing(request, 0..ids.len(), read_current);
    if !changed.is_empty() {
        return answer(changed);
    }
    let mut listened: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, id) in ids.iter().enumerate() {
        listened.entry(id.key()).or_default().push(index);
    }
    loop {
        tokio::select! {
            batch = subscription.receiver.recv() => {
                let Some(batch) = batch else {
                    // Cut off (too slow) or the node stops: answer with what
                    // differs now; the listener polls again.
                    return answer(differing(request, 0..ids.len(), read_current));
                };
                let mut latest: HashMap<usize, ApiResult<Option<ConfigItem>>> = HashMap::new();
                for event in &batch {
                    let Some(indexes) = listened.get(&event.kv.key) else {
                        continue;
                    };
                    for &index in indexes {
                        let item = match event.kind {
                            EventKind::Put => typed::decode::<ConfigItem>(&event.kv).map(Some),
                            EventKind::Delete => Ok(None),
                        };
                        latest.insert(index, item);
                    }
                }
                let mut touched: Vec<usize> = latest.keys().copied().collect();
                touched.sort_unstable();
                let changed = differing(request, touched, |index| {
                    latest.remove(&index).unwrap_or(Ok(None))
                });
                if !changed.is_empty() {
                    // The batch is delivered before its revision becomes
                    // the store's, so the answer names it explicitly.
                    let revision = batch_revision(&batch).unwrap_or(0);
                    return ListenResponse {
                        changed,
                        revision: revision.max(state.store.revision()),
                    };
                }
            }
            _ = tokio::time::sleep_until(deadline) => return answer(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use muster_catalog::selector::Labels;

    use super::*;

    fn item(data_id: &str) -> ListenItem {
        ListenItem {
            namespace: "default".into(),
            group: "g".into(),
            data_id: data_id.into(),
            md5: String::new(),
        }
    }

    #[test]
    fn limits_are_enforced() {
        let mut request = ListenRequest {
            items: vec![item("a"); MAX_ITEMS + 1],
            labels: Labels::new(),
            timeout_ms: None,
        };
        assert_eq!(
            check(&request).unwrap_err().0.field.as_deref(),
            Some("items")
        );
        request.items.truncate(1);
        assert_eq!(check(&request).unwrap().1, Duration::from_secs(30));
        request.timeout_ms = Some(MAX_TIMEOUT_MS + 1);
        assert_eq!(
            check(&request).unwrap_err().0.field.as_deref(),
            Some("timeout_ms")
        );
        request.timeout_ms = None;
        request.items[0].data_id = "a/b".into();
        assert_eq!(
            check(&request).unwrap_err().0.field.as_deref(),
            Some("data_id")
        );
    }
}
