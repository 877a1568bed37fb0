//! The node's live keyspace, shared by the Raft state machine (which
//! applies), the HTTP API (which reads) and watchers (which subscribe).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use muster_store::{Command, CommandResult, Keyspace, Rejection};
use muster_types::watch::Event;
use muster_types::{LeaseId, Revision};
use tokio::sync::watch;

use crate::dispatch::{Dispatcher, Subscription, TooManyWatchers};
use crate::metrics::{Metrics, Timer};

pub struct Store {
    keyspace: RwLock<Keyspace>,
    dispatcher: Dispatcher,
    revision: watch::Sender<Revision>,
    pub leases: LeaseClock,
    metrics: Arc<Metrics>,
}

/// A new watcher: its subscription to live changes plus where live changes
/// begin, so history up to `live_after` is read from the keyspace and
/// nothing is missed or seen twice.
pub struct Watcher {
    pub subscription: Subscription,
    pub live_after: Revision,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchStartError {
    #[error(transparent)]
    TooMany(#[from] TooManyWatchers),
    #[error(transparent)]
    Rejected(#[from] Rejection),
}

impl Store {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Store {
            keyspace: RwLock::new(Keyspace::new()),
            dispatcher: Dispatcher::default(),
            revision: watch::Sender::new(0),
            leases: LeaseClock::default(),
            metrics,
        }
    }

    /// Applies a committed command and notifies watchers, in that order and
    /// under the write lock, so a watcher that registers under the read lock
    /// sees every later change exactly once.
    pub fn apply(&self, command: &Command) -> CommandResult {
        let _timer = Timer::start(&self.metrics.store_apply_seconds);
        let mut keyspace = self.write();
        let (result, events) = keyspace.apply(command);
        self.track_leases(command, &result);
        self.dispatcher.publish(&events);
        self.publish_revision(&keyspace);
        result
    }

    fn track_leases(&self, command: &Command, result: &CommandResult) {
        match (command, result) {
            (Command::LeaseGrant { id, ttl }, CommandResult::LeaseGrant(_)) => {
                self.leases.granted(*id, *ttl)
            }
            (Command::LeaseRevoke { id }, CommandResult::LeaseRevoke(_)) => {
                self.leases.revoked(*id)
            }
            _ => {}
        }
    }

    fn publish_revision(&self, keyspace: &Keyspace) {
        self.metrics.store_revision.set(keyspace.revision() as i64);
        self.metrics.store_keys.set(keyspace.key_count() as i64);
        self.revision.send_replace(keyspace.revision());
    }

    /// Replaces the whole state (snapshot install). Watchers are cut off to
    /// resume from history, since the changes in between were never applied
    /// here one by one.
    pub fn replace(&self, replacement: Keyspace) {
        let mut keyspace = self.write();
        *keyspace = replacement;
        self.leases
            .reset(keyspace.leases().iter().map(|l| (l.id, l.ttl)));
        self.dispatcher.reset_all();
        self.publish_revision(&keyspace);
    }

    pub fn read<R>(&self, f: impl FnOnce(&Keyspace) -> R) -> R {
        f(&self.keyspace.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Keyspace> {
        self.keyspace.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn watcher_count(&self) -> usize {
        self.dispatcher.watcher_count()
    }

    pub fn revision(&self) -> Revision {
        *self.revision.borrow()
    }

    /// Registers a watcher. With `from`, history after `from` must still be
    /// available (not compacted).
    pub fn watch(
        &self,
        key: &str,
        prefix: bool,
        from: Option<Revision>,
    ) -> Result<Watcher, WatchStartError> {
        let keyspace = self.keyspace.read().unwrap_or_else(|p| p.into_inner());
        if let Some(from) = from
            && from < keyspace.compacted_revision()
        {
            return Err(Rejection::Compacted {
                requested: from,
                compacted_revision: keyspace.compacted_revision(),
            }
            .into());
        }
        let subscription = self.dispatcher.subscribe(key, prefix)?;
        Ok(Watcher {
            subscription,
            live_after: keyspace.revision(),
        })
    }

    /// History for a watcher: events after `after`, up to and including
    /// `until`, at most about `limit` of them.
    pub fn history(
        &self,
        key: &str,
        prefix: bool,
        after: Revision,
        until: Revision,
        limit: usize,
    ) -> Result<Vec<Event>, Rejection> {
        let mut events = self.read(|ks| ks.events_since(key, prefix, after, limit))?;
        events.retain(|event| event.kv.mod_revision <= until);
        Ok(events)
    }
}

/// When each lease expires, as this node would decide it if it led.
///
/// Only the leader acts on it; every node tracks grants and revocations so
/// that a new leader knows all leases, and gives each a fresh TTL from its
/// election (as etcd does) instead of expiring them all at once.
#[derive(Default)]
pub struct LeaseClock {
    deadlines: Mutex<HashMap<LeaseId, (i64, Instant)>>,
}

impl LeaseClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LeaseId, (i64, Instant)>> {
        self.deadlines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn granted(&self, id: LeaseId, ttl: i64) {
        self.lock()
            .insert(id, (ttl, Instant::now() + ttl_duration(ttl)));
    }

    fn revoked(&self, id: LeaseId) {
        self.lock().remove(&id);
    }

    fn reset(&self, leases: impl Iterator<Item = (LeaseId, i64)>) {
        let now = Instant::now();
        let mut deadlines = self.lock();
        deadlines.clear();
        deadlines.extend(leases.map(|(id, ttl)| (id, (ttl, now + ttl_duration(ttl)))));
    }

    /// Gives every lease its full TTL again: called when this node becomes leader.
    pub fn refresh_all(&self) {
        let now = Instant::now();
        for (ttl, deadline) in self.lock().values_mut() {
            *deadline = now + ttl_duration(*ttl);
        }
    }

    /// Renews one lease; returns its TTL, or None if it does not exist.
    pub fn keep_alive(&self, id: LeaseId) -> Option<i64> {
        let mut deadlines = self.lock();
        let (ttl, deadline) = deadlines.get_mut(&id)?;
        *deadline = Instant::now() + ttl_duration(*ttl);
        Some(*ttl)
    }

    /// Seconds left, rounded up; None if the lease does not exist.
    pub fn remaining(&self, id: LeaseId) -> Option<i64> {
        let deadlines = self.lock();
        let (_, deadline) = deadlines.get(&id)?;
        let left = deadline.saturating_duration_since(Instant::now());
        Some(left.as_millis().div_ceil(1000) as i64)
    }

    /// Leases past their deadline. Each is pushed one TTL into the future so
    /// that it is proposed for revocation once per TTL, not on every tick.
    pub fn take_expired(&self) -> Vec<LeaseId> {
        let now = Instant::now();
        let mut expired = Vec::new();
        for (id, (ttl, deadline)) in self.lock().iter_mut() {
            if *deadline <= now {
                expired.push(*id);
                *deadline = now + ttl_duration(*ttl);
            }
        }
        expired.sort_unstable();
        expired
    }
}

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use muster_types::kv::PutRequest;

    use super::*;

    fn put(key: &str) -> Command {
        Command::Put(PutRequest {
            key: key.into(),
            value: "v".into(),
            lease: None,
            prev_revision: None,
            prev_kv: false,
        })
    }

    #[test]
    fn a_watcher_sees_changes_after_it_registered_exactly_once() {
        let store = Store::new(Arc::new(Metrics::new()));
        store.apply(&put("a"));
        let mut watcher = store.watch("a", false, Some(0)).unwrap();
        assert_eq!(watcher.live_after, 1);
        store.apply(&put("a"));
        let history = store
            .history("a", false, 0, watcher.live_after, 100)
            .unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].kv.mod_revision, 1);
        let live = watcher.subscription.receiver.try_recv().unwrap();
        assert_eq!(live[0].kv.mod_revision, 2);
        assert!(watcher.subscription.receiver.try_recv().is_err());
    }

    #[test]
    fn lease_clock_follows_applied_grants_and_revokes() {
        let store = Store::new(Arc::new(Metrics::new()));
        store.apply(&Command::LeaseGrant { id: 7, ttl: 60 });
        assert_eq!(store.leases.keep_alive(7), Some(60));
        assert!(store.leases.remaining(7).unwrap() > 58);
        assert!(store.leases.take_expired().is_empty());
        store.apply(&Command::LeaseRevoke { id: 7 });
        assert_eq!(store.leases.keep_alive(7), None);
    }
}
