//! Small, atomically replaced, checksummed files (the Raft vote, the node
//! identity).
//!
//! Layout:
//!
//! ```text
//!   [8]  magic  b"MUSTRSTF"
//!   [4]  u32 LE crc32 (IEEE) of (length field ++ payload)
//!   [4]  u32 LE payload length
//!   [n]  payload
//! ```
//!
//! A write goes to `<path>.tmp`, which is fsynced, renamed over `<path>`, and
//! then the directory is fsynced: a reader sees either the old or the new
//! contents, never a mix. A stale `<path>.tmp` left by a crash is ignored and
//! overwritten by the next write.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{WalError, io_err};

const MAGIC: [u8; 8] = *b"MUSTRSTF";
const HEADER_LEN: usize = 16;

/// Durably replaces `path` with a checksummed frame holding `bytes`; read it
/// back with [`read_checksummed_file`].
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("state file payload of {} bytes is too large", bytes.len()),
        )
    })?;
    let len_bytes = len.to_le_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(bytes);
    let mut frame = Vec::with_capacity(HEADER_LEN + bytes.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&hasher.finalize().to_le_bytes());
    frame.extend_from_slice(&len_bytes);
    frame.extend_from_slice(bytes);

    let tmp = tmp_path(path);
    let mut file = File::create(&tmp)?;
    file.write_all(&frame)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    File::open(parent_dir(path))?.sync_all()
}

/// Reads a file written by [`write_file_atomically`]. `Ok(None)` if it does
/// not exist; [`WalError::Corrupt`] if its frame or checksum is wrong.
pub fn read_checksummed_file(path: &Path) -> Result<Option<Vec<u8>>, WalError> {
    let data = match fs::read(path) {
        Ok(data) => data,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io_err(path)(err)),
    };
    let corrupt = |offset: u64, reason: String| WalError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    if data.len() < HEADER_LEN {
        return Err(corrupt(
            0,
            format!(
                "state file is {} bytes, shorter than its {HEADER_LEN}-byte header",
                data.len()
            ),
        ));
    }
    if data[..8] != MAGIC {
        return Err(corrupt(0, "not a state file (bad magic)".to_owned()));
    }
    let stored_crc = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
    let len_bytes = [data[12], data[13], data[14], data[15]];
    let len = u32::from_le_bytes(len_bytes) as usize;
    let payload = &data[HEADER_LEN..];
    if payload.len() != len {
        return Err(corrupt(
            12,
            format!(
                "header says {len} payload bytes but the file holds {}",
                payload.len()
            ),
        ));
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(payload);
    let computed = hasher.finalize();
    if computed != stored_crc {
        return Err(corrupt(
            8,
            format!("checksum mismatch (stored {stored_crc:#010x}, computed {computed:#010x})"),
        ));
    }
    Ok(Some(payload.to_vec()))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".tmp");
    PathBuf::from(name)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}
