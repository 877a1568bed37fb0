//! The error type shared by the log and the state-file helpers.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while opening, writing or reading the log.
///
/// Messages are written for an operator: they name the file, the byte offset
/// and what was found there.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An operating-system call on `path` failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Bytes on disk do not form a valid log. Nothing was modified; the data
    /// must be inspected (or the node rebuilt from its peers) before the log
    /// can be opened again.
    #[error("corrupt data in {} at byte offset {offset}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// An append did not continue the log at the next index.
    #[error("out-of-order append: expected index {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },

    /// An append to an empty log tried to reuse an index that was purged.
    #[error(
        "cannot append index {index}: the log was purged through index {purged_through}, \
         so new records must start above it"
    )]
    AtOrBelowPurged { index: u64, purged_through: u64 },

    /// `u64::MAX` is reserved so that "last index + 1" never overflows.
    #[error("index {index} is out of range: indices must be below u64::MAX")]
    IndexOverflow { index: u64 },

    /// A record payload does not fit the 32-bit length field.
    #[error("record {index} is {len} bytes; the maximum payload is 4294967295 bytes")]
    RecordTooLarge { index: u64, len: usize },

    /// Another `Wal` (in this or another process) holds the directory lock.
    #[error(
        "the log directory is locked by another process (lock file {}); \
         is another node running on the same data directory?",
        path.display()
    )]
    Locked { path: PathBuf },

    /// A write, fsync or delete failed earlier. The on-disk state is unknown
    /// (after a failed fsync the kernel may have dropped dirty pages), so the
    /// log refuses further changes; reopening re-reads the truth from disk.
    #[error(
        "the log refuses writes after an earlier I/O failure ({cause}); \
         restart the node to recover from what is on disk"
    )]
    Poisoned { cause: String },
}

/// Adapter for `map_err`: wraps an `io::Error` with the path it concerns.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> WalError {
    let path = path.into();
    move |source| WalError::Io { path, source }
}
