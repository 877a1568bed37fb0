//! Replication through openraft. This module tree is the only place that
//! names openraft types; the rest of the server uses [`RaftNode`].

mod codec;
mod log_store;
mod membership;
mod network;
mod node;
mod rpc;
mod state_machine;
mod types;

pub use membership::MembershipError;
pub use node::{LeaderInfo, ProposeError, RaftNode};

#[cfg(test)]
mod suite_test;
