//! `GET /v1/services/{ns}` (the services of a namespace with their health
//! counts), `GET /v1/services/{ns}/{service}` (discovery, with Consul-style
//! blocking queries) and `PUT /v1/services/{ns}/{service}` (settings).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use muster_catalog::discovery::{
    DEFAULT_WAIT, Filter, HealthFilter, count, parse_metadata, parse_wait, select,
};
use muster_catalog::keys;
use muster_types::Revision;
use muster_types::catalog::{Discovery, Instance, ServiceList, ServiceSpec, ServiceSummary};
use muster_types::error::{ErrorBody, ErrorCode};
use muster_types::kv::{KeyValue, PutRequest, PutResponse, RangeRequest, TxnOp};
use muster_types::limits::MAX_RANGE_LIMIT;

use super::{check_name, instance_of, parse_body, reply, validate};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::forward::Replay;
use crate::http::kv::consistent;
use crate::http::params::{Params, percent_decode};
use crate::store::WatchStartError;
use crate::typed::{CAS_ATTEMPTS, cas, contended, decode, on_leader, unchanged};
use crate::typed::{NAMESPACE_CHANGES, require_namespace};

/// The revision a discovery answer reflects, for the next blocking query.
pub const INDEX_HEADER: &str = "x-muster-index";

/// Reads several keys or prefixes under one read lock, so they are one
/// consistent snapshot; returns each one's key-values and the revision.
pub fn read_together(
    state: &AppState,
    reads: &[(&str, bool)],
) -> ApiResult<(Vec<Vec<KeyValue>>, Revision)> {
    state.store.read(|ks| {
        let mut results = Vec::with_capacity(reads.len());
        let mut revision = ks.revision();
        for (key, prefix) in reads {
            let mut kvs = Vec::new();
            let mut after = None;
            loop {
                let page = ks.range(&RangeRequest {
                    key: (*key).to_owned(),
                    prefix: *prefix,
                    limit: MAX_RANGE_LIMIT,
                    after: after.take(),
                    ..RangeRequest::default()
                })?;
                revision = page.revision;
                kvs.extend(page.kvs);
                if !page.more {
                    break;
                }
                after = page.next;
            }
            results.push(kvs);
        }
        Ok((results, revision))
    })
}

/// Every value of a repeatable query parameter (`tag=a&tag=b`).
fn all_values(query: Option<&str>, name: &str) -> ApiResult<Vec<String>> {
    let mut values = Vec::new();
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(key, true).as_deref() == Some(name) {
            values.push(percent_decode(value, true).ok_or_else(|| {
                ApiError::invalid(
                    name,
                    format!("{name}: not valid UTF-8 after percent-decoding"),
                )
            })?);
        }
    }
    Ok(values)
}

fn filter_of(params: &Params, query: Option<&str>) -> ApiResult<Filter> {
    let healthy = match params.text("healthy") {
        None => HealthFilter::default(),
        Some(text) => HealthFilter::parse(text).map_err(|m| ApiError::invalid("healthy", m))?,
    };
    let metadata = all_values(query, "metadata")?
        .iter()
        .map(|text| parse_metadata(text).map_err(|m| ApiError::invalid("metadata", m)))
        .collect::<ApiResult<_>>()?;
    Ok(Filter {
        healthy,
        tags: all_values(query, "tag")?,
        zone: params.text("zone").map(str::to_owned),
        metadata,
    })
}

pub async fn list_services(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    uri: Uri,
) -> Response {
    let result: ApiResult<ServiceList> = async {
        consistent(&state, &Params::parse(uri.query())?).await?;
        require_namespace(&state, &ns)?;
        let instances_prefix = keys::namespace_instances_prefix(&ns);
        let services_prefix = keys::services_prefix(&ns);
        let (reads, revision) = read_together(
            &state,
            &[(&instances_prefix, true), (&services_prefix, true)],
        )?;
        let mut by_service: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        for kv in &reads[1] {
            let name = kv.key.strip_prefix(&services_prefix).unwrap_or(&kv.key);
            by_service.entry(name.to_owned()).or_default();
        }
        for kv in &reads[0] {
            let instance = instance_of(kv)?;
            by_service
                .entry(instance.service.clone())
                .or_default()
                .push(instance);
        }
        let services = by_service
            .into_iter()
            .map(|(name, instances)| ServiceSummary {
                name,
                instances: instances.len() as u64,
                health: count(&instances),
            })
            .collect();
        Ok(ServiceList {
            namespace: ns.clone(),
            services,
            revision,
        })
    }
    .await;
    reply(result)
}

pub async fn discover(
    State(state): State<AppState>,
    Path((ns, service)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let result: ApiResult<Discovery> = async {
        check_name("service", &service)?;
        let params = Params::parse(uri.query())?;
        let filter = filter_of(&params, uri.query())?;
        let index: Option<Revision> = params.number("index")?;
        let wait = match params.text("wait") {
            None => DEFAULT_WAIT,
            Some(text) => parse_wait(text).map_err(|m| ApiError::invalid("wait", m))?,
        };
        consistent(&state, &params).await?;
        require_namespace(&state, &ns)?;
        // Index 0 (or none) answers at once, as in Consul.
        if let Some(index) = index.filter(|index| *index > 0) {
            wait_for_change(&state, &ns, &service, index, wait).await?;
        }
        let spec_key = keys::service(&ns, &service);
        let instances_prefix = keys::instances_prefix(&ns, &service);
        let (reads, revision) =
            read_together(&state, &[(&spec_key, false), (&instances_prefix, true)])?;
        let spec: ServiceSpec = match reads[0].first() {
            Some(kv) => decode(kv)?,
            None => ServiceSpec::default(),
        };
        let instances = reads[1]
            .iter()
            .map(instance_of)
            .collect::<ApiResult<Vec<_>>>()?;
        let selection = select(instances, &filter, spec.protection_threshold);
        Ok(Discovery {
            namespace: ns.clone(),
            service: service.clone(),
            spec,
            instances: selection.instances,
            protection_triggered: selection.protection_triggered,
            revision,
        })
    }
    .await;
    match result {
        Ok(discovery) => {
            let index = HeaderValue::from(discovery.revision);
            let mut response = axum::Json(discovery).into_response();
            response.headers_mut().insert(INDEX_HEADER, index);
            response
        }
        Err(err) => err.into_response(),
    }
}

fn watch_error(err: WatchStartError) -> ApiError {
    match err {
        WatchStartError::TooMany(err) => ApiError::new(ErrorCode::TooManyWatchers, err.to_string()),
        WatchStartError::Rejected(rejection) => {
            let mut error = ApiError::from(rejection);
            error.0.field = Some("index".into());
            error
        }
    }
}

/// Returns once the service (its instances or its settings) changed after
/// `index`, or after `wait`. The subscriptions are registered before the
/// history is checked, so a change in between is not missed.
async fn wait_for_change(
    state: &AppState,
    ns: &str,
    service: &str,
    index: Revision,
    wait: Duration,
) -> ApiResult<()> {
    let instances_prefix = keys::instances_prefix(ns, service);
    let spec_key = keys::service(ns, service);
    let mut instances = state
        .store
        .watch(&instances_prefix, true, Some(index))
        .map_err(watch_error)?;
    let mut spec = state
        .store
        .watch(&spec_key, false, Some(index))
        .map_err(watch_error)?;
    let changed_since = |key: &str, prefix: bool, until: Revision| -> ApiResult<bool> {
        let events = state
            .store
            .history(key, prefix, index, until, 1)
            .map_err(|rejection| watch_error(rejection.into()))?;
        Ok(!events.is_empty())
    };
    if changed_since(&instances_prefix, true, instances.live_after)?
        || changed_since(&spec_key, false, spec.live_after)?
    {
        return Ok(());
    }
    tokio::select! {
        _ = instances.subscription.receiver.recv() => {}
        _ = spec.subscription.receiver.recv() => {}
        _ = tokio::time::sleep(wait) => {}
    }
    Ok(())
}

pub async fn set_service(
    State(state): State<AppState>,
    Path((ns, service)): Path<(String, String)>,
    replay: Replay,
) -> Response {
    let parsed = check_name("service", &service)
        .and_then(|()| parse_body::<ServiceSpec>(&replay.body, validate::service));
    let spec = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    on_leader(&state, replay, || async {
        reply(set_service_here(&state, &ns, &service, &spec).await)
    })
    .await
}

async fn set_service_here(
    state: &AppState,
    ns: &str,
    service: &str,
    spec: &ServiceSpec,
) -> ApiResult<PutResponse> {
    let _shared = NAMESPACE_CHANGES.read().await;
    let key = keys::service(ns, service);
    let value = serde_json::to_vec(spec).map_err(|err| {
        ApiError(ErrorBody::new(ErrorCode::InvalidArgument, err.to_string()).with_field("body"))
    })?;
    for _ in 0..CAS_ATTEMPTS {
        let namespace = require_namespace(state, ns)?;
        let compare = namespace
            .as_ref()
            .map(|kv| unchanged(&kv.key, Some(kv)))
            .into_iter()
            .collect();
        let put = TxnOp::Put(PutRequest {
            key: key.clone(),
            value: value.clone().into(),
            lease: None,
            prev_revision: None,
            prev_kv: false,
        });
        if let Some(response) = cas(state, compare, vec![put]).await? {
            return Ok(PutResponse {
                revision: response.revision,
                prev_kv: None,
            });
        }
    }
    Err(contended("the namespace"))
}
