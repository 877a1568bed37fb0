//! The MVCC keyspace, modelled on etcd's mvcc store.
//!
//! Every key keeps its history: one [`Record`] per put, and a tombstone per
//! delete. A command that changes anything takes the next revision, and every
//! change it makes carries that revision, so reads at a past revision and
//! watches from a past revision are answered from the same history. Compaction
//! drops the history no read at or after the compacted revision can need.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use muster_types::kv::{
    CompactResponse, Compare, CompareOp, CompareTarget, DeleteRequest, DeleteResponse, KeyValue,
    PutRequest, PutResponse, RangeRequest, RangeResponse, TxnOp, TxnOpResponse, TxnRequest,
    TxnResponse,
};
use muster_types::lease::{LeaseGrantResponse, LeaseRevokeResponse};
use muster_types::limits;
use muster_types::watch::{Event, EventKind};
use muster_types::{Blob, LeaseId, Revision};
use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResult, Rejection};

/// One version of a key: what a put wrote, or a delete's tombstone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    mod_revision: Revision,
    /// 0 for a tombstone.
    create_revision: Revision,
    /// 0 for a tombstone.
    version: u64,
    /// `None` marks a tombstone. Shared so that cloning the keyspace (or
    /// handing a value out) does not copy large values.
    value: Option<Arc<Blob>>,
    lease: Option<LeaseId>,
}

impl Record {
    fn tombstone(revision: Revision) -> Self {
        Record {
            mod_revision: revision,
            create_revision: 0,
            version: 0,
            value: None,
            lease: None,
        }
    }

    fn is_live(&self) -> bool {
        self.value.is_some()
    }

    fn to_kv(&self, key: &str, keys_only: bool) -> KeyValue {
        let value = match &self.value {
            Some(value) if !keys_only => Blob::clone(value),
            _ => Blob::default(),
        };
        KeyValue {
            key: key.to_owned(),
            value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        }
    }
}

/// The record of `history` visible at `revision`, if the key was live then.
fn visible_at(history: &[Record], revision: Revision) -> Option<&Record> {
    let after = history.partition_point(|record| record.mod_revision <= revision);
    after
        .checked_sub(1)
        .map(|index| &history[index])
        .filter(|record| record.is_live())
}

/// The change `history[index]` made, with the version it replaced when that
/// is still in the history.
fn event_at(key: &str, history: &[Record], index: usize) -> Event {
    let record = &history[index];
    let prev_kv = index
        .checked_sub(1)
        .map(|prev| &history[prev])
        .filter(|prev| prev.is_live())
        .map(|prev| prev.to_kv(key, false));
    Event {
        kind: if record.is_live() {
            EventKind::Put
        } else {
            EventKind::Delete
        },
        kv: record.to_kv(key, false),
        prev_kv,
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    ttl: i64,
    /// Live keys attached to the lease.
    keys: BTreeSet<String>,
}

/// A lease as the keyspace knows it: expiry is the leader's business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseState {
    pub id: LeaseId,
    /// The TTL it was granted with, in seconds.
    pub ttl: i64,
    /// The live keys attached to it, sorted.
    pub keys: Vec<String>,
}

/// Everything a snapshot carries; the rest of [`Keyspace`] is derived from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    revision: Revision,
    compacted: Revision,
    /// Each key's retained history, oldest first; never empty.
    history: BTreeMap<String, Vec<Record>>,
    leases: BTreeMap<LeaseId, Lease>,
}

/// The snapshot format. A new layout gets a new variant, so an old snapshot
/// stays readable.
#[derive(Serialize, Deserialize)]
enum Envelope<S> {
    V1(S),
}

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot decode the snapshot: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("the snapshot is inconsistent: {0}")]
    Inconsistent(String),
}

/// The replicated keyspace: keys with their history, and leases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keyspace {
    state: State,
    /// The keys changed at each revision after the compacted one, sorted, so
    /// a prefix watch catches up without scanning every key's history.
    changes: BTreeMap<Revision, Vec<String>>,
    /// Keys whose latest record is not a tombstone.
    live: usize,
}

fn invalid(field: &str, message: impl Into<String>) -> Rejection {
    Rejection::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Checks the key of a read or delete; an empty prefix means every key.
fn check_key(key: &str, prefix: bool) -> Result<(), Rejection> {
    if prefix && key.is_empty() {
        return Ok(());
    }
    limits::check_key(key).map_err(|message| invalid("key", message))
}

/// Checks what a put can be checked for without looking at the keyspace.
fn check_put(put: &PutRequest) -> Result<(), Rejection> {
    check_key(&put.key, false)?;
    limits::check_value(put.value.as_bytes()).map_err(|message| invalid("value", message))
}

/// The lease a put attaches; 0 means none, as in etcd.
fn put_lease(put: &PutRequest) -> Option<LeaseId> {
    put.lease.filter(|&id| id != 0)
}

/// Whether two writes, each a key or (`true`) a prefix, can touch one key.
fn overlaps((a, a_prefix): (&str, bool), (b, b_prefix): (&str, bool)) -> bool {
    match (a_prefix, b_prefix) {
        (false, false) => a == b,
        (false, true) => a.starts_with(b),
        (true, false) => b.starts_with(a),
        (true, true) => a.starts_with(b) || b.starts_with(a),
    }
}

/// Checks a transaction branch without looking at the keyspace: valid keys
/// and values, and no two writes to one key, since every write of a
/// transaction takes the same revision.
fn check_branch(name: &str, ops: &[TxnOp]) -> Result<(), Rejection> {
    let mut writes: Vec<(&str, bool)> = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        let in_txn = |rejection: Rejection| match rejection {
            Rejection::Invalid { message, .. } => {
                invalid("txn", format!("{name}[{index}]: {message}"))
            }
            other => other,
        };
        let write = match op {
            TxnOp::Put(put) => {
                check_put(put).map_err(in_txn)?;
                (put.key.as_str(), false)
            }
            TxnOp::Delete(delete) => {
                check_key(&delete.key, delete.prefix).map_err(in_txn)?;
                (delete.key.as_str(), delete.prefix)
            }
            TxnOp::Get(get) => {
                check_key(&get.key, get.prefix).map_err(in_txn)?;
                continue;
            }
        };
        if writes.iter().any(|&earlier| overlaps(earlier, write)) {
            return Err(invalid(
                "txn",
                format!(
                    "{name}[{index}]: {:?} overlaps an earlier write of the branch",
                    write.0
                ),
            ));
        }
        writes.push(write);
    }
    Ok(())
}

impl Keyspace {
    pub fn new() -> Self {
        Self::default()
    }

    /// The revision of the last change; 0 before any.
    pub fn revision(&self) -> Revision {
        self.state.revision
    }

    /// Reads and watches below this revision are refused.
    pub fn compacted_revision(&self) -> Revision {
        self.state.compacted
    }

    /// Live keys.
    pub fn key_count(&self) -> usize {
        self.live
    }

    /// Applies one command. Returns the result and the events it produced:
    /// all of one revision, in op order for a transaction and in key order
    /// for a prefix delete or a lease revoke. A rejected command changes
    /// nothing and produces no events.
    pub fn apply(&mut self, command: &Command) -> (CommandResult, Vec<Event>) {
        let outcome = match command {
            Command::Put(put) => self.put(put),
            Command::Delete(delete) => self.delete(delete),
            Command::Txn(txn) => self.txn(txn),
            Command::Compact { revision } => self.compact(*revision),
            Command::LeaseGrant { id, ttl } => self.lease_grant(*id, *ttl),
            Command::LeaseRevoke { id } => self.lease_revoke(*id),
        };
        outcome.unwrap_or_else(|rejection| (CommandResult::Rejected(rejection), Vec::new()))
    }

    /// Reads one key (`kvs` has 0 or 1 entry) or the keys under a prefix, at
    /// the current revision or at `req.revision`.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, Rejection> {
        check_key(&req.key, req.prefix)?;
        let revision = self.read_revision(req.revision)?;
        Ok(self.range_at(req, revision))
    }

    /// The changes to `key` (or, with `prefix`, to keys under it) after
    /// revision `after`, oldest first and in key order within a revision.
    ///
    /// Returns whole revisions: once `limit` events are collected no further
    /// revision is started, but the last one is always completed, so a caller
    /// can resume from the last event's revision. A `limit` of 0 returns
    /// nothing.
    pub fn events_since(
        &self,
        key: &str,
        prefix: bool,
        after: Revision,
        limit: usize,
    ) -> Result<Vec<Event>, Rejection> {
        if after < self.state.compacted {
            return Err(Rejection::Compacted {
                requested: after,
                compacted_revision: self.state.compacted,
            });
        }
        let mut events = Vec::new();
        if !prefix {
            // One key changes at most once per revision: its history suffices.
            if let Some(history) = self.state.history.get(key) {
                let first = history.partition_point(|record| record.mod_revision <= after);
                events.extend(
                    (first..history.len())
                        .take(limit)
                        .map(|index| event_at(key, history, index)),
                );
            }
            return Ok(events);
        }
        for (&revision, keys) in self
            .changes
            .range((Bound::Excluded(after), Bound::Unbounded))
        {
            if events.len() >= limit {
                break;
            }
            for changed in keys.iter().filter(|changed| changed.starts_with(key)) {
                let Some(history) = self.state.history.get(changed) else {
                    continue;
                };
                if let Ok(index) = history.binary_search_by_key(&revision, |r| r.mod_revision) {
                    events.push(event_at(changed, history, index));
                }
            }
        }
        Ok(events)
    }

    pub fn lease(&self, id: LeaseId) -> Option<LeaseState> {
        self.state
            .leases
            .get(&id)
            .map(|lease| Self::lease_state(id, lease))
    }

    /// Every lease, by id.
    pub fn leases(&self) -> Vec<LeaseState> {
        self.state
            .leases
            .iter()
            .map(|(&id, lease)| Self::lease_state(id, lease))
            .collect()
    }

    /// Encodes the whole keyspace, history and leases included.
    pub fn to_snapshot(&self) -> Vec<u8> {
        rmp_serde::to_vec(&Envelope::V1(&self.state))
            .expect("the keyspace holds only types MessagePack encodes")
    }

    /// Restores a keyspace from [`Keyspace::to_snapshot`]'s output.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let Envelope::V1(state) = rmp_serde::from_slice::<Envelope<State>>(bytes)?;
        Self::check_state(&state).map_err(SnapshotError::Inconsistent)?;
        let mut changes: BTreeMap<Revision, Vec<String>> = BTreeMap::new();
        let mut live = 0;
        // Keys come in order, so each revision's list is built sorted.
        for (key, history) in &state.history {
            live += usize::from(history.last().is_some_and(Record::is_live));
            for record in history.iter().filter(|r| r.mod_revision > state.compacted) {
                changes
                    .entry(record.mod_revision)
                    .or_default()
                    .push(key.clone());
            }
        }
        Ok(Keyspace {
            state,
            changes,
            live,
        })
    }

    /// The invariants the rest of the code relies on.
    fn check_state(state: &State) -> Result<(), String> {
        if state.compacted > state.revision {
            return Err(format!(
                "compacted revision {} is after revision {}",
                state.compacted, state.revision
            ));
        }
        for (key, history) in &state.history {
            let last = history.last().map_or(0, |record| record.mod_revision);
            let ordered = history
                .windows(2)
                .all(|pair| pair[0].mod_revision < pair[1].mod_revision);
            if history.is_empty() || !ordered || last > state.revision {
                return Err(format!("the history of {key:?} is malformed"));
            }
            let current = history.last().filter(|record| record.is_live());
            if let Some(id) = current.and_then(|record| record.lease) {
                let attached = state
                    .leases
                    .get(&id)
                    .is_some_and(|lease| lease.keys.contains(key));
                if !attached {
                    return Err(format!("{key:?} is not in the key set of its lease {id}"));
                }
            }
        }
        for (id, lease) in &state.leases {
            for key in &lease.keys {
                let current = state.history.get(key).and_then(|history| history.last());
                if current.and_then(|record| record.lease) != Some(*id) {
                    return Err(format!("lease {id} lists {key:?}, which is not attached"));
                }
            }
        }
        Ok(())
    }

    fn lease_state(id: LeaseId, lease: &Lease) -> LeaseState {
        LeaseState {
            id,
            ttl: lease.ttl,
            keys: lease.keys.iter().cloned().collect(),
        }
    }

    /// The revision a read asks for (0 or none: the current one), if readable.
    fn read_revision(&self, requested: Option<Revision>) -> Result<Revision, Rejection> {
        match requested {
            None | Some(0) => Ok(self.state.revision),
            Some(requested) if requested > self.state.revision => Err(Rejection::FutureRevision {
                requested,
                current: self.state.revision,
            }),
            Some(requested) if requested < self.state.compacted => Err(Rejection::Compacted {
                requested,
                compacted_revision: self.state.compacted,
            }),
            Some(requested) => Ok(requested),
        }
    }

    /// The keys `key` names (one key, or those under a prefix), with their
    /// histories, in key order, starting after `after` for a prefix.
    fn matching<'a>(
        &'a self,
        key: &'a str,
        prefix: bool,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a String, &'a Vec<Record>)> + 'a {
        let start = match after {
            Some(after) if prefix && after >= key => Bound::Excluded(after),
            _ => Bound::Included(key),
        };
        self.state
            .history
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(move |(candidate, _)| {
                if prefix {
                    candidate.starts_with(key)
                } else {
                    candidate.as_str() == key
                }
            })
    }

    /// A read at `revision`, which the caller has checked is readable.
    fn range_at(&self, req: &RangeRequest, revision: Revision) -> RangeResponse {
        let limit = match req.limit {
            0 => limits::DEFAULT_RANGE_LIMIT,
            limit => limit.min(limits::MAX_RANGE_LIMIT),
        };
        let mut kvs = Vec::new();
        let mut more = false;
        let visible = self
            .matching(&req.key, req.prefix, req.after.as_deref())
            .filter_map(|(key, history)| visible_at(history, revision).map(|r| (key, r)));
        for (key, record) in visible {
            if kvs.len() == limit {
                more = true;
                break;
            }
            kvs.push(record.to_kv(key, req.keys_only));
        }
        let next = if more {
            kvs.last().map(|kv| kv.key.clone())
        } else {
            None
        };
        RangeResponse {
            revision,
            kvs,
            more,
            next,
        }
    }

    /// The key's latest record, if it is live.
    fn current(&self, key: &str) -> Option<&Record> {
        self.state
            .history
            .get(key)
            .and_then(|history| history.last())
            .filter(|record| record.is_live())
    }

    /// Checks what a put needs from the keyspace: its lease and its
    /// compare-and-swap revision.
    fn check_put_against_state(&self, put: &PutRequest) -> Result<(), Rejection> {
        if let Some(id) = put_lease(put)
            && !self.state.leases.contains_key(&id)
        {
            return Err(Rejection::LeaseNotFound { id });
        }
        if let Some(expected) = put.prev_revision {
            let current_revision = self.current(&put.key).map_or(0, |r| r.mod_revision);
            if current_revision != expected {
                return Err(Rejection::CompareFailed {
                    key: put.key.clone(),
                    current_revision,
                });
            }
        }
        Ok(())
    }

    fn compare_holds(&self, compare: &Compare) -> bool {
        let current = self.current(&compare.key);
        let ordering = match &compare.target {
            CompareTarget::Value(value) => current
                .and_then(|record| record.value.as_deref())
                .map_or(&[][..], Blob::as_bytes)
                .cmp(value.as_bytes()),
            CompareTarget::Version(version) => current.map_or(0, |r| r.version).cmp(version),
            CompareTarget::CreateRevision(revision) => {
                current.map_or(0, |r| r.create_revision).cmp(revision)
            }
            CompareTarget::ModRevision(revision) => {
                current.map_or(0, |r| r.mod_revision).cmp(revision)
            }
            CompareTarget::Lease(id) => current.and_then(|r| r.lease).unwrap_or(0).cmp(id),
        };
        match compare.op {
            CompareOp::Equal => ordering.is_eq(),
            CompareOp::NotEqual => ordering.is_ne(),
            CompareOp::Less => ordering.is_lt(),
            CompareOp::Greater => ordering.is_gt(),
        }
    }

    /// Records that `key` changed at `revision`.
    fn note_change(&mut self, revision: Revision, key: &str) {
        let keys = self.changes.entry(revision).or_default();
        if let Err(index) = keys.binary_search_by(|changed| changed.as_str().cmp(key)) {
            keys.insert(index, key.to_owned());
        }
    }

    fn detach(&mut self, lease: Option<LeaseId>, key: &str) {
        if let Some(lease) = lease.and_then(|id| self.state.leases.get_mut(&id)) {
            lease.keys.remove(key);
        }
    }

    /// Writes a checked put at `revision` (not yet made current).
    fn write_put(&mut self, revision: Revision, put: &PutRequest) -> Event {
        let lease = put_lease(put);
        let previous = self.current(&put.key).cloned();
        let record = Record {
            mod_revision: revision,
            create_revision: previous.as_ref().map_or(revision, |r| r.create_revision),
            version: previous.as_ref().map_or(1, |r| r.version + 1),
            value: Some(Arc::new(put.value.clone())),
            lease,
        };
        match &previous {
            Some(previous) => self.detach(previous.lease, &put.key),
            None => self.live += 1,
        }
        if let Some(lease) = lease.and_then(|id| self.state.leases.get_mut(&id)) {
            lease.keys.insert(put.key.clone());
        }
        self.note_change(revision, &put.key);
        let history = self.state.history.entry(put.key.clone()).or_default();
        history.push(record);
        event_at(&put.key, history, history.len() - 1)
    }

    /// Deletes the live keys `key` names at `revision` (not yet made current).
    fn write_delete(&mut self, revision: Revision, key: &str, prefix: bool) -> Vec<Event> {
        let doomed: Vec<(String, Option<LeaseId>)> = self
            .matching(key, prefix, None)
            .filter_map(|(key, history)| {
                let last = history.last().filter(|record| record.is_live())?;
                Some((key.clone(), last.lease))
            })
            .collect();
        doomed
            .into_iter()
            .filter_map(|(key, lease)| {
                let history = self.state.history.get_mut(&key)?;
                history.push(Record::tombstone(revision));
                let event = event_at(&key, history, history.len() - 1);
                self.detach(lease, &key);
                self.note_change(revision, &key);
                self.live -= 1;
                Some(event)
            })
            .collect()
    }

    fn put(&mut self, put: &PutRequest) -> Result<(CommandResult, Vec<Event>), Rejection> {
        check_put(put)?;
        self.check_put_against_state(put)?;
        let revision = self.state.revision + 1;
        let event = self.write_put(revision, put);
        self.state.revision = revision;
        let response = PutResponse {
            revision,
            prev_kv: event.prev_kv.clone().filter(|_| put.prev_kv),
        };
        Ok((CommandResult::Put(response), vec![event]))
    }

    fn delete(&mut self, delete: &DeleteRequest) -> Result<(CommandResult, Vec<Event>), Rejection> {
        check_key(&delete.key, delete.prefix)?;
        let revision = self.state.revision + 1;
        let events = self.write_delete(revision, &delete.key, delete.prefix);
        if !events.is_empty() {
            self.state.revision = revision;
        }
        let response = self.delete_response(delete, &events);
        Ok((CommandResult::Delete(response), events))
    }

    /// Describes a delete that produced `events`, once the revision is settled.
    fn delete_response(&self, delete: &DeleteRequest, events: &[Event]) -> DeleteResponse {
        DeleteResponse {
            revision: self.state.revision,
            deleted: events.len() as u64,
            prev_kvs: if delete.prev_kv {
                events.iter().filter_map(|e| e.prev_kv.clone()).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Runs a transaction. Everything that can refuse it is checked before
    /// the first write, so a refused transaction changes nothing. A put's
    /// `prev_revision` that does not match refuses the whole transaction with
    /// `CompareFailed`, like a standalone put, rather than skipping the put.
    fn txn(&mut self, txn: &TxnRequest) -> Result<(CommandResult, Vec<Event>), Rejection> {
        if txn.op_count() > limits::MAX_TXN_OPS {
            return Err(invalid(
                "txn",
                format!(
                    "{} ops, the limit is {}",
                    txn.op_count(),
                    limits::MAX_TXN_OPS
                ),
            ));
        }
        for (index, compare) in txn.compare.iter().enumerate() {
            limits::check_key(&compare.key)
                .map_err(|message| invalid("txn", format!("compare[{index}]: {message}")))?;
        }
        check_branch("success", &txn.success)?;
        check_branch("failure", &txn.failure)?;

        let succeeded = txn.compare.iter().all(|c| self.compare_holds(c));
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let mut writes = false;
        for op in ops {
            match op {
                TxnOp::Put(put) => {
                    self.check_put_against_state(put)?;
                    writes = true;
                }
                TxnOp::Delete(delete) => {
                    // No earlier op of the branch writes under this delete,
                    // so whether it deletes anything is known now.
                    writes |= self
                        .matching(&delete.key, delete.prefix, None)
                        .any(|(_, history)| history.last().is_some_and(Record::is_live));
                }
                TxnOp::Get(get) => {
                    self.read_revision(get.revision)?;
                }
            }
        }

        let revision = self.state.revision + 1;
        // The revision the transaction leaves, which reads "now" see: its
        // writes so far are already recorded at it.
        let now = if writes {
            revision
        } else {
            self.state.revision
        };
        let mut events = Vec::new();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match op {
                TxnOp::Put(put) => {
                    let event = self.write_put(revision, put);
                    let prev_kv = event.prev_kv.clone().filter(|_| put.prev_kv);
                    events.push(event);
                    TxnOpResponse::Put(PutResponse { revision, prev_kv })
                }
                TxnOp::Delete(delete) => {
                    let deleted = self.write_delete(revision, &delete.key, delete.prefix);
                    let mut response = self.delete_response(delete, &deleted);
                    response.revision = now;
                    events.extend(deleted);
                    TxnOpResponse::Delete(response)
                }
                TxnOp::Get(get) => {
                    let at = get.revision.filter(|&r| r != 0).unwrap_or(now);
                    TxnOpResponse::Get(self.range_at(get, at))
                }
            };
            responses.push(response);
        }
        self.state.revision = now;
        let response = TxnResponse {
            succeeded,
            revision: now,
            responses,
        };
        Ok((CommandResult::Txn(response), events))
    }

    /// Drops the history reads at or after `revision` cannot see: per key,
    /// everything before its latest record at or before `revision`, and that
    /// record too when it is a tombstone.
    fn compact(&mut self, revision: Revision) -> Result<(CommandResult, Vec<Event>), Rejection> {
        if revision > self.state.revision {
            return Err(Rejection::FutureRevision {
                requested: revision,
                current: self.state.revision,
            });
        }
        if revision < self.state.compacted {
            return Err(Rejection::Compacted {
                requested: revision,
                compacted_revision: self.state.compacted,
            });
        }
        self.state.history.retain(|_, history| {
            let later = history.partition_point(|record| record.mod_revision <= revision);
            if let Some(latest) = later.checked_sub(1) {
                let keep_from = if history[latest].is_live() {
                    latest
                } else {
                    later
                };
                history.drain(..keep_from);
            }
            !history.is_empty()
        });
        self.changes = self.changes.split_off(&revision.saturating_add(1));
        self.state.compacted = revision;
        let response = CompactResponse {
            compacted_revision: revision,
            revision: self.state.revision,
        };
        Ok((CommandResult::Compact(response), Vec::new()))
    }

    fn lease_grant(
        &mut self,
        id: LeaseId,
        ttl: i64,
    ) -> Result<(CommandResult, Vec<Event>), Rejection> {
        if id == 0 {
            return Err(invalid("id", "lease id 0 means no lease"));
        }
        if !(limits::MIN_LEASE_TTL_SECS..=limits::MAX_LEASE_TTL_SECS).contains(&ttl) {
            return Err(invalid(
                "ttl",
                format!(
                    "ttl {ttl} is outside {}..={} seconds",
                    limits::MIN_LEASE_TTL_SECS,
                    limits::MAX_LEASE_TTL_SECS
                ),
            ));
        }
        if self.state.leases.contains_key(&id) {
            return Err(Rejection::LeaseExists { id });
        }
        self.state.leases.insert(
            id,
            Lease {
                ttl,
                keys: BTreeSet::new(),
            },
        );
        Ok((
            CommandResult::LeaseGrant(LeaseGrantResponse { id, ttl }),
            Vec::new(),
        ))
    }

    /// Removes the lease and deletes its keys, all at one revision.
    fn lease_revoke(&mut self, id: LeaseId) -> Result<(CommandResult, Vec<Event>), Rejection> {
        let lease = self
            .state
            .leases
            .remove(&id)
            .ok_or(Rejection::LeaseNotFound { id })?;
        let revision = self.state.revision + 1;
        let events: Vec<Event> = lease
            .keys
            .iter()
            .flat_map(|key| self.write_delete(revision, key, false))
            .collect();
        if !events.is_empty() {
            self.state.revision = revision;
        }
        let response = LeaseRevokeResponse {
            revision: self.state.revision,
            deleted: events.len() as u64,
        };
        Ok((CommandResult::LeaseRevoke(response), events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(state: &State) -> Vec<u8> {
        rmp_serde::to_vec(&Envelope::V1(state)).unwrap()
    }

    fn live(revision: Revision, lease: Option<LeaseId>) -> Record {
        Record {
            mod_revision: revision,
            create_revision: revision,
            version: 1,
            value: Some(Arc::new(Blob::from("v"))),
            lease,
        }
    }

    fn refused(state: &State) -> String {
        match Keyspace::from_snapshot(&encode(state)) {
            Err(SnapshotError::Inconsistent(message)) => message,
            other => panic!("expected an inconsistent snapshot, got {other:?}"),
        }
    }

    #[test]
    fn decodable_but_inconsistent_snapshots_are_refused() {
        let mut good = State {
            revision: 2,
            ..State::default()
        };
        good.history
            .insert("a".into(), vec![live(1, None), Record::tombstone(2)]);
        good.history.insert("b".into(), vec![live(2, Some(7))]);
        good.leases.insert(
            7,
            Lease {
                ttl: 5,
                keys: BTreeSet::from(["b".to_owned()]),
            },
        );
        let restored = Keyspace::from_snapshot(&encode(&good)).unwrap();
        assert_eq!(restored.key_count(), 1);
        assert_eq!(restored.changes.get(&2).unwrap(), &["a", "b"]);

        let mut bad = good.clone();
        bad.compacted = 3;
        assert!(refused(&bad).contains("compacted"));

        let mut bad = good.clone();
        bad.history.insert("c".into(), Vec::new());
        assert!(refused(&bad).contains("\"c\""));

        let mut bad = good.clone();
        bad.history
            .insert("c".into(), vec![live(2, None), live(1, None)]);
        assert!(refused(&bad).contains("\"c\""));

        let mut bad = good.clone();
        bad.history.insert("c".into(), vec![live(3, None)]);
        assert!(refused(&bad).contains("\"c\""));

        let mut bad = good.clone();
        bad.leases.get_mut(&7).unwrap().keys.clear();
        assert!(refused(&bad).contains("lease 7"));

        let mut bad = good;
        bad.leases.get_mut(&7).unwrap().keys.insert("a".to_owned());
        assert!(refused(&bad).contains("lease 7"));
    }
}
