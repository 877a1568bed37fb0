//! `/v1/services/{ns}/{service}/instances/{id}`: register, deregister,
//! heart-beat, health reports, drain and enable.

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use muster_catalog::health::{apply_report, initial_health};
use muster_catalog::keys;
use muster_store::{Command, CommandResult};
use muster_types::LeaseId;
use muster_types::catalog::{HealthReport, Instance, InstanceSpec};
use muster_types::error::ErrorCode;
use muster_types::kv::{DeleteRequest, DeleteResponse, KeyValue, PutRequest, TxnOp};
use muster_types::lease::LeaseKeepAliveResponse;

use super::{check_name, instance_of, not_found, parse_body, reply, validate};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiResult};
use crate::http::forward::Replay;
use crate::http::kv::consistent;
use crate::http::params::Params;
use crate::typed::{CAS_ATTEMPTS, cas, contended, now_ms, on_leader, propose, read_key, unchanged};
use crate::typed::{NAMESPACE_CHANGES, require_namespace};

type InstancePath = Path<(String, String, String)>;

fn check_path(ns: &str, service: &str, id: &str) -> ApiResult<()> {
    check_name("namespace", ns)?;
    check_name("service", service)?;
    check_name("id", id)
}

fn gone(ns: &str, service: &str, id: &str) -> ApiError {
    not_found(
        "id",
        format!("instance {id:?} of service {service:?} in namespace {ns:?} is not registered"),
    )
}

/// The put that stores an instance, keeping it on `lease`.
fn put_instance(key: &str, instance: &Instance, lease: Option<LeaseId>) -> TxnOp {
    TxnOp::Put(PutRequest {
        key: key.to_owned(),
        value: serde_json::to_vec(instance)
            .expect("an instance serializes")
            .into(),
        lease,
        prev_revision: None,
        prev_kv: false,
    })
}

pub async fn show(
    State(state): State<AppState>,
    Path((ns, service, id)): InstancePath,
    uri: Uri,
) -> Response {
    let result: ApiResult<Instance> = async {
        check_path(&ns, &service, &id)?;
        consistent(&state, &Params::parse(uri.query())?).await?;
        let kv = read_key(&state, &keys::instance(&ns, &service, &id))
            .ok_or_else(|| gone(&ns, &service, &id))?;
        instance_of(&kv)
    }
    .await;
    reply(result)
}

pub async fn register(
    State(state): State<AppState>,
    Path((ns, service, id)): InstancePath,
    replay: Replay,
) -> Response {
    let parsed = check_path(&ns, &service, &id)
        .and_then(|()| parse_body::<InstanceSpec>(&replay.body, validate::instance));
    let spec = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    on_leader(&state, replay, || async {
        reply(register_here(&state, &ns, &service, &id, spec).await)
    })
    .await
}

async fn register_here(
    state: &AppState,
    ns: &str,
    service: &str,
    id: &str,
    spec: InstanceSpec,
) -> ApiResult<Instance> {
    let _shared = NAMESPACE_CHANGES.read().await;
    let namespace = require_namespace(state, ns)?;
    let key = keys::instance(ns, service, id);
    let lease = match (spec.ephemeral, spec.lease, spec.ttl) {
        (false, _, _) => None,
        (true, Some(lease), _) => {
            if state.store.read(|ks| ks.lease(lease)).is_none() {
                return Err(ApiError(
                    muster_types::error::ErrorBody::new(
                        ErrorCode::LeaseNotFound,
                        format!("lease {lease} does not exist (expired or never granted)"),
                    )
                    .with_field("lease"),
                ));
            }
            Some(lease)
        }
        (true, None, ttl) => Some(lease_for(state, &key, ttl.unwrap_or_default()).await?),
    };
    for _ in 0..CAS_ATTEMPTS {
        let current = read_key(state, &key);
        let previous = current.as_ref().map(instance_of).transpose()?;
        // Re-registering keeps the health record unless the check changed.
        let health = match &previous {
            Some(previous) if previous.check == spec.check => previous.health.clone(),
            _ => initial_health(spec.check.as_ref(), now_ms()),
        };
        let mut instance = Instance {
            namespace: ns.to_owned(),
            service: service.to_owned(),
            id: id.to_owned(),
            address: spec.address.clone(),
            port: spec.port,
            weight: spec.weight,
            tags: spec.tags.clone(),
            metadata: spec.metadata.clone(),
            zone: spec.zone.clone(),
            enabled: spec.enabled,
            ephemeral: spec.ephemeral,
            lease,
            health,
            check: spec.check.clone(),
            revision: 0,
        };
        let mut compare = vec![unchanged(&key, current.as_ref())];
        if let Some(namespace) = &namespace {
            compare.push(unchanged(&namespace.key, Some(namespace)));
        }
        if let Some(response) =
            cas(state, compare, vec![put_instance(&key, &instance, lease)]).await?
        {
            instance.revision = response.revision;
            return Ok(instance);
        }
    }
    Err(contended("the instance"))
}

/// The lease of an ephemeral instance registered with a TTL: its current
/// lease when it is alive with that TTL (renewed), else a new one.
async fn lease_for(state: &AppState, key: &str, ttl: i64) -> ApiResult<LeaseId> {
    if let Some(lease) = read_key(state, key).and_then(|kv| kv.lease)
        && state
            .store
            .read(|ks| ks.lease(lease))
            .is_some_and(|granted| granted.ttl == ttl)
        && state.store.leases.keep_alive(lease).is_some()
    {
        return Ok(lease);
    }
    // The proposer picks the id, so every replica stores the same one.
    let id = (rand::random::<u64>() >> 1).max(1);
    match propose(state, Command::LeaseGrant { id, ttl }).await? {
        CommandResult::LeaseGrant(granted) => Ok(granted.id),
        other => Err(ApiError::new(
            ErrorCode::Internal,
            format!("a lease grant returned {other:?}"),
        )),
    }
}

pub async fn deregister(
    State(state): State<AppState>,
    Path((ns, service, id)): InstancePath,
    replay: Replay,
) -> Response {
    if let Err(err) = check_path(&ns, &service, &id) {
        return err.into_response();
    }
    on_leader(&state, replay, || async {
        let result: ApiResult<DeleteResponse> = async {
            let command = Command::Delete(DeleteRequest {
                key: keys::instance(&ns, &service, &id),
                prefix: false,
                prev_kv: false,
            });
            match propose(&state, command).await? {
                CommandResult::Delete(response) if response.deleted > 0 => Ok(response),
                CommandResult::Delete(_) => Err(gone(&ns, &service, &id)),
                other => Err(ApiError::new(
                    ErrorCode::Internal,
                    format!("a delete returned {other:?}"),
                )),
            }
        }
        .await;
        reply(result)
    })
    .await
}

/// Keeps an ephemeral instance alive: renews its lease on the leader.
pub async fn heartbeat(
    State(state): State<AppState>,
    Path((ns, service, id)): InstancePath,
    replay: Replay,
) -> Response {
    if let Err(err) = check_path(&ns, &service, &id) {
        return err.into_response();
    }
    on_leader(&state, replay, || async {
        let result: ApiResult<LeaseKeepAliveResponse> = (|| {
            let kv = read_key(&state, &keys::instance(&ns, &service, &id))
                .ok_or_else(|| gone(&ns, &service, &id))?;
            let instance = instance_of(&kv)?;
            let lease = match (instance.ephemeral, kv.lease) {
                (true, Some(lease)) => lease,
                _ => {
                    return Err(ApiError::invalid(
                        "ephemeral",
                        format!(
                            "instance {id:?} is persistent: it has no heart-beat; report its health instead"
                        ),
                    ));
                }
            };
            let ttl = state
                .store
                .leases
                .keep_alive(lease)
                .ok_or_else(|| gone(&ns, &service, &id))?;
            Ok(LeaseKeepAliveResponse { id: lease, ttl })
        })();
        reply(result)
    })
    .await
}

/// Reads, changes and compare-and-swaps one instance; `change` returns
/// false when there is nothing to write.
async fn update(
    state: &AppState,
    (ns, service, id): (&str, &str, &str),
    change: impl Fn(&mut Instance) -> bool,
) -> ApiResult<Instance> {
    let key = keys::instance(ns, service, id);
    for _ in 0..CAS_ATTEMPTS {
        let kv: KeyValue = read_key(state, &key).ok_or_else(|| gone(ns, service, id))?;
        let mut instance = instance_of(&kv)?;
        if !change(&mut instance) {
            return Ok(instance);
        }
        let put = put_instance(&key, &instance, kv.lease);
        if let Some(response) = cas(state, vec![unchanged(&key, Some(&kv))], vec![put]).await? {
            instance.revision = response.revision;
            return Ok(instance);
        }
    }
    Err(contended("the instance"))
}

pub async fn report_health(
    State(state): State<AppState>,
    Path((ns, service, id)): InstancePath,
    replay: Replay,
) -> Response {
    let parsed = check_path(&ns, &service, &id)
        .and_then(|()| parse_body::<HealthReport>(&replay.body, validate::report));
    let report = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    on_leader(&state, replay, || async {
        let result = update(&state, (&ns, &service, &id), |instance| {
            instance.health =
                apply_report(&instance.health, instance.check.as_ref(), &report, now_ms());
            true
        })
        .await;
        reply(result)
    })
    .await
}

async fn set_enabled(
    state: AppState,
    (ns, service, id): (String, String, String),
    replay: Replay,
    enabled: bool,
) -> Response {
    if let Err(err) = check_path(&ns, &service, &id) {
        return err.into_response();
    }
    on_leader(&state, replay, || async {
        let result = update(&state, (&ns, &service, &id), |instance| {
            let changed = instance.enabled != enabled;
            instance.enabled = enabled;
            changed
        })
        .await;
        reply(result)
    })
    .await
}

/// Takes an instance out of discovery without deregistering it.
pub async fn drain(
    State(state): State<AppState>,
    Path(path): InstancePath,
    replay: Replay,
) -> Response {
    set_enabled(state, path, replay, false).await
}

pub async fn enable(
    State(state): State<AppState>,
    Path(path): InstancePath,
    replay: Replay,
) -> Response {
    set_enabled(state, path, replay, true).await
}
