//! `muster-wal`: the durable Raft log of a Muster node.
//!
//! * [`Wal`] — a segmented, checksummed, fsynced append-only log of opaque
//!   payloads addressed by contiguous `u64` indices (the Raft log index).
//! * [`write_file_atomically`] / [`read_checksummed_file`] — small
//!   checksummed files replaced atomically (vote, node identity).
//!
//! # Segment format
//!
//! Segments live in one directory as `wal-<first index, 20 digits>.log`:
//!
//! ```text
//! segment header (16 bytes): b"MUSTRWAL" | u32 LE version (1) | u32 LE reserved (0)
//! record:                    u32 LE payload length | u32 LE crc32(index LE ++ payload)
//!                            | u64 LE index | payload
//! ```
//!
//! A `wal.lock` file in the directory is locked while a [`Wal`] is open.
//!
//! All APIs are synchronous `std::fs` calls; async callers should run them
//! on a blocking thread.

mod error;
mod format;
mod state_file;
mod wal;

pub use error::WalError;
pub use state_file::{read_checksummed_file, write_file_atomically};
pub use wal::{Recovery, Wal, WalOptions};
