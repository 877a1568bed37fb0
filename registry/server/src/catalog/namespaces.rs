//! `/v1/namespaces`: `default` always exists; others are created, listed,
//! and deleted only when empty.

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use muster_catalog::keys;
use muster_types::catalog::{DEFAULT_NAMESPACE, Namespace, NamespaceList};
use muster_types::error::ErrorCode;
use muster_types::kv::{DeleteRequest, DeleteResponse, PutRequest, RangeRequest, TxnOp};

use super::{check_name, not_found, parse_body, reply, validate};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::forward::Replay;
use crate::http::kv::consistent;
use crate::http::params::Params;
use crate::typed::NAMESPACE_CHANGES;
use crate::typed::{cas, decode, on_leader, read_json, read_prefix, unchanged};

fn default_namespace() -> Namespace {
    Namespace {
        name: DEFAULT_NAMESPACE.into(),
        description: "the default namespace".into(),
    }
}

pub async fn list(State(state): State<AppState>, uri: Uri) -> Response {
    let result: ApiResult<NamespaceList> = async {
        consistent(&state, &Params::parse(uri.query())?).await?;
        let (kvs, revision) = read_prefix(&state, &keys::namespaces_prefix())?;
        let mut namespaces = vec![default_namespace()];
        for kv in &kvs {
            namespaces.push(decode(kv)?);
        }
        Ok(NamespaceList {
            namespaces,
            revision,
        })
    }
    .await;
    reply(result)
}

pub async fn show(State(state): State<AppState>, Path(ns): Path<String>, uri: Uri) -> Response {
    let result: ApiResult<Namespace> = async {
        check_name("namespace", &ns)?;
        consistent(&state, &Params::parse(uri.query())?).await?;
        if ns == DEFAULT_NAMESPACE {
            return Ok(default_namespace());
        }
        read_json(&state, &keys::namespace(&ns))?
            .map(|(namespace, _)| namespace)
            .ok_or_else(|| not_found("namespace", format!("namespace {ns:?} does not exist")))
    }
    .await;
    reply(result)
}

pub async fn create(State(state): State<AppState>, replay: Replay) -> Response {
    let namespace = match parse_body::<Namespace>(&replay.body, validate::namespace) {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    on_leader(&state, replay, || async {
        match create_here(&state, namespace).await {
            Ok(namespace) => (StatusCode::CREATED, axum::Json(namespace)).into_response(),
            Err(err) => err.into_response(),
        }
    })
    .await
}

async fn create_here(state: &AppState, namespace: Namespace) -> ApiResult<Namespace> {
    let exists = || {
        ApiError::new(
            ErrorCode::Conflict,
            format!("namespace {:?} exists already", namespace.name),
        )
    };
    if namespace.name == DEFAULT_NAMESPACE {
        return Err(exists());
    }
    let key = keys::namespace(&namespace.name);
    let value = serde_json::to_vec(&namespace).expect("a namespace serializes");
    let put = TxnOp::Put(PutRequest {
        key: key.clone(),
        value: value.into(),
        lease: None,
        prev_revision: None,
        prev_kv: false,
    });
    match cas(state, vec![unchanged(&key, None)], vec![put]).await? {
        Some(_) => Ok(namespace),
        None => Err(exists()),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    replay: Replay,
) -> Response {
    if let Err(err) = check_name("namespace", &ns) {
        return err.into_response();
    }
    on_leader(&state, replay, || async {
        reply(delete_here(&state, &ns).await)
    })
    .await
}

/// Whether anything lives under `prefix`.
fn occupied(state: &AppState, prefix: &str) -> ApiResult<bool> {
    let page = state.store.read(|ks| {
        ks.range(&RangeRequest {
            key: prefix.to_owned(),
            prefix: true,
            limit: 1,
            keys_only: true,
            ..RangeRequest::default()
        })
    })?;
    Ok(!page.kvs.is_empty())
}

async fn delete_here(state: &AppState, ns: &str) -> ApiResult<DeleteResponse> {
    if ns == DEFAULT_NAMESPACE {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the default namespace always exists and cannot be deleted",
        ));
    }
    let _exclusive = NAMESPACE_CHANGES.write().await;
    let key = keys::namespace(ns);
    let Some((_, kv)) = read_json::<Namespace>(state, &key)? else {
        return Err(not_found(
            "namespace",
            format!("namespace {ns:?} does not exist"),
        ));
    };
    for (prefix, what) in [
        (keys::namespace_instances_prefix(ns), "instances"),
        (keys::services_prefix(ns), "services"),
        (keys::config_namespace_prefix(ns), "config items"),
    ] {
        if occupied(state, &prefix)? {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("namespace {ns:?} still has {what}; deregister them first"),
            ));
        }
    }
    let delete = TxnOp::Delete(DeleteRequest {
        key: key.clone(),
        prefix: false,
        prev_kv: false,
    });
    match cas(state, vec![unchanged(&key, Some(&kv))], vec![delete]).await? {
        Some(response) => Ok(DeleteResponse {
            revision: response.revision,
            deleted: 1,
            prev_kvs: Vec::new(),
        }),
        None => Err(crate::typed::contended("the namespace")),
    }
}
