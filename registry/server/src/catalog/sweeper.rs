//! The leader's health sweeper: every half second, only while this node
//! leads, it counts missed TTL checks as failures and deletes instances
//! critical for longer than their `deregister_critical_after`, each with a
//! compare-and-swap so a concurrent report or registration wins.

use std::time::Duration;

use muster_catalog::health::{self, Sweep};
use muster_catalog::keys;
use muster_types::kv::{DeleteRequest, KeyValue, PutRequest, TxnOp};

use super::instance_of;
use crate::http::AppState;
use crate::http::error::ApiResult;
use crate::typed::{cas, now_ms, read_prefix, unchanged};

const SWEEP_EVERY: Duration = Duration::from_millis(500);

pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When this node last became leader: TTLs count from then at the
    // earliest, as reports may have gone to the previous leader.
    let mut leader_since: Option<u64> = None;
    loop {
        tick.tick().await;
        if !state.node.is_leader() {
            leader_since = None;
            continue;
        }
        let grace_from = *leader_since.get_or_insert_with(now_ms);
        if let Err(err) = sweep_once(&state, grace_from).await {
            tracing::debug!(error = %err.0.message, "health sweep interrupted");
        }
    }
}

async fn sweep_once(state: &AppState, grace_from: u64) -> ApiResult<()> {
    let (kvs, _) = read_prefix(state, &keys::all_instances_prefix())?;
    for kv in kvs {
        let instance = match instance_of(&kv) {
            Ok(instance) => instance,
            Err(err) => {
                tracing::warn!(key = %kv.key, error = %err.0.message, "skipping an undecodable instance");
                continue;
            }
        };
        let Some(check) = &instance.check else {
            continue;
        };
        match health::sweep(check, &instance.health, now_ms(), grace_from) {
            Sweep::Keep => {}
            Sweep::Expire(health) => {
                let mut updated = instance.clone();
                updated.health = health;
                let put = TxnOp::Put(PutRequest {
                    key: kv.key.clone(),
                    value: serde_json::to_vec(&updated)
                        .expect("an instance serializes")
                        .into(),
                    lease: kv.lease,
                    prev_revision: None,
                    prev_kv: false,
                });
                if swap(state, &kv, put).await? {
                    tracing::info!(
                        instance = %kv.key,
                        status = ?updated.health.status,
                        "health check TTL expired"
                    );
                }
            }
            Sweep::Deregister => {
                let delete = TxnOp::Delete(DeleteRequest {
                    key: kv.key.clone(),
                    prefix: false,
                    prev_kv: false,
                });
                if swap(state, &kv, delete).await? {
                    tracing::info!(instance = %kv.key, "deregistered after staying critical");
                }
            }
        }
    }
    Ok(())
}

/// Applies `op` if the instance is still as read; false if it changed
/// (the next sweep looks again).
async fn swap(state: &AppState, kv: &KeyValue, op: TxnOp) -> ApiResult<bool> {
    Ok(cas(state, vec![unchanged(&kv.key, Some(kv))], vec![op])
        .await?
        .is_some())
}
