//! The JSON API of one node: round trips, listings, compare-and-swap, past
//! reads, transactions, and refused input.

#[path = "../common/mod.rs"]
mod util;

mod bad_input;
mod kv;

/// This target's port range.
pub const PORTS: (u16, u16) = (23000, 23999);
