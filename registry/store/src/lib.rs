//! The Muster keyspace: one MVCC-versioned map of keys, with leases,
//! transactions, compaction and change events.
//!
//! It is a deterministic state machine: [`Keyspace::apply`] of the same
//! commands in the same order gives the same state, revisions and events on
//! every replica. It knows nothing of Raft, HTTP or time.

mod command;
mod keyspace;

pub use command::{Command, CommandResult, Rejection};
pub use keyspace::{Keyspace, LeaseState, SnapshotError};
