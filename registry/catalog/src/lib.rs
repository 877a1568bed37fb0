//! The rules of Muster's typed layers, as pure functions over the types in
//! `muster_types::{catalog, config}`: which names are valid, where each
//! object lives in the keyspace, how health reports move an instance's
//! status, which instances discovery returns, and whether config content
//! parses as its format. No IO, no clock (callers pass the time in).

pub mod diff;
pub mod digest;
pub mod discovery;
pub mod format;
pub mod health;
pub mod keys;
pub mod names;
pub mod selector;
