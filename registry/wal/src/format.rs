//! On-disk layout of segment files.
//!
//! A segment is named `wal-<first index, 20 digits zero padded>.log` and is
//! laid out as
//!
//! ```text
//! segment header (16 bytes):
//!   [8]  magic  b"MUSTRWAL"
//!   [4]  u32 LE format version (currently 1)
//!   [4]  u32 LE reserved, must be zero
//! then records back to back, each:
//!   [4]  u32 LE payload length
//!   [4]  u32 LE crc32 (IEEE) of (index as u64 LE ++ payload)
//!   [8]  u64 LE index
//!   [n]  payload
//! ```
//!
//! The first record of a segment carries the index in the file name and every
//! following record carries the next index; the first record of the next
//! segment continues the sequence.

/// Magic bytes at the start of every segment.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"MUSTRWAL";
/// Current segment format version.
pub(crate) const SEGMENT_VERSION: u32 = 1;
/// Length of the segment header.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;
/// Length of a record header (length, crc, index).
pub(crate) const RECORD_HEADER_LEN: u64 = 16;

const NAME_PREFIX: &str = "wal-";
const NAME_SUFFIX: &str = ".log";
const NAME_DIGITS: usize = 20;

/// File name of the segment whose first record has index `first_index`.
pub(crate) fn segment_file_name(first_index: u64) -> String {
    format!("{NAME_PREFIX}{first_index:020}{NAME_SUFFIX}")
}

/// Parses a segment file name back into its first index; `None` for any file
/// that is not a segment.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(NAME_PREFIX)?.strip_suffix(NAME_SUFFIX)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The 16-byte header written at the start of each new segment.
pub(crate) fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    header[..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header
}

/// Problem with a segment header.
pub(crate) enum HeaderDefect {
    /// Too short or wrong magic: not (yet) a segment header at all.
    Missing(String),
    /// A well-formed header this build cannot accept.
    Unsupported(String),
}

/// Checks the segment header at the start of `data`.
pub(crate) fn check_segment_header(data: &[u8]) -> Result<(), HeaderDefect> {
    if data.len() < SEGMENT_HEADER_LEN as usize {
        return Err(HeaderDefect::Missing(format!(
            "segment header is incomplete ({} of {SEGMENT_HEADER_LEN} bytes)",
            data.len()
        )));
    }
    if data[..8] != SEGMENT_MAGIC {
        return Err(HeaderDefect::Missing(format!(
            "bad segment magic {:02x?} (expected {:02x?})",
            &data[..8],
            SEGMENT_MAGIC
        )));
    }
    let version = read_u32(data, 8);
    if version != SEGMENT_VERSION {
        return Err(HeaderDefect::Unsupported(format!(
            "unsupported segment format version {version} (this build reads version {SEGMENT_VERSION})"
        )));
    }
    let reserved = read_u32(data, 12);
    if reserved != 0 {
        return Err(HeaderDefect::Unsupported(format!(
            "reserved segment header field is {reserved:#x}, expected 0"
        )));
    }
    Ok(())
}

/// crc32 of `index ++ payload`, as stored in the record header.
pub(crate) fn record_crc(index: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&index.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Appends the encoding of one record to `buf`. The caller has checked that
/// the payload length fits in a `u32`.
pub(crate) fn encode_record(buf: &mut Vec<u8>, index: u64, payload: &[u8], payload_len: u32) {
    buf.extend_from_slice(&payload_len.to_le_bytes());
    buf.extend_from_slice(&record_crc(index, payload).to_le_bytes());
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// A record that decoded with a matching checksum.
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    pub(crate) index: u64,
    pub(crate) payload: &'a [u8],
}

impl Decoded<'_> {
    /// Bytes the record occupies on disk, header included.
    pub(crate) fn encoded_len(&self) -> u64 {
        RECORD_HEADER_LEN + self.payload.len() as u64
    }
}

/// Decodes the record at the start of `buf` (which may extend past it).
/// The error is a human-readable description of what is wrong.
pub(crate) fn decode_record(buf: &[u8]) -> Result<Decoded<'_>, String> {
    let header_len = RECORD_HEADER_LEN as usize;
    if buf.len() < header_len {
        return Err(format!(
            "incomplete record header ({} of {header_len} bytes)",
            buf.len()
        ));
    }
    let len = read_u32(buf, 0);
    let stored_crc = read_u32(buf, 4);
    let index = read_u64(buf, 8);
    let available = buf.len() - header_len;
    if u64::from(len) > available as u64 {
        return Err(format!(
            "record header claims a {len}-byte payload but only {available} bytes follow"
        ));
    }
    let payload = &buf[header_len..header_len + len as usize];
    let computed = record_crc(index, payload);
    if computed != stored_crc {
        return Err(format!(
            "checksum mismatch (stored {stored_crc:#010x}, computed {computed:#010x})"
        ));
    }
    Ok(Decoded { index, payload })
}

/// Looks for any valid record starting at or after `from` whose index is at
/// least `min_index` and plausible for its position, returning its offset
/// and index. Used to tell a torn tail (nothing valid follows) from damage in
/// the middle of the log.
pub(crate) fn find_valid_record(data: &[u8], from: usize, min_index: u64) -> Option<(usize, u64)> {
    let header_len = RECORD_HEADER_LEN as usize;
    let last_start = data.len().checked_sub(header_len)?;
    (from..=last_start).find_map(|pos| {
        // Cheap plausibility filter before the checksum: every record is at
        // least one header long, so an index further ahead than the space
        // left could hold cannot be the continuation of this log.
        let index = read_u64(data, pos + 8);
        let max_index = min_index.saturating_add(((data.len() - pos) / header_len) as u64);
        if index < min_index || index > max_index {
            return None;
        }
        decode_record(&data[pos..]).ok().map(|rec| (pos, rec.index))
    })
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(bytes)
}

fn read_u64(buf: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_file_name(42), "wal-00000000000000000042.log");
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("wal-42.log"), None);
        assert_eq!(
            parse_segment_file_name("wal-0000000000000000004x.log"),
            None
        );
        assert_eq!(parse_segment_file_name("wal.lock"), None);
    }

    #[test]
    fn record_round_trip_and_damage() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, b"hello", 5);
        assert_eq!(buf.len(), 21);
        let rec = decode_record(&buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (rec.index, rec.payload, rec.encoded_len()),
            (7, &b"hello"[..], 21)
        );

        let mut flipped = buf.clone();
        flipped[18] ^= 1;
        assert!(
            decode_record(&flipped)
                .unwrap_err()
                .contains("checksum mismatch")
        );
        assert!(
            decode_record(&buf[..20])
                .unwrap_err()
                .contains("5-byte payload")
        );
        assert!(
            decode_record(&buf[..3])
                .unwrap_err()
                .contains("incomplete record header")
        );

        let mut data = vec![0xAB; 5];
        data.extend_from_slice(&buf);
        assert_eq!(find_valid_record(&data, 0, 7), Some((5, 7)));
        assert_eq!(find_valid_record(&data, 0, 8), None);
        assert_eq!(find_valid_record(&data, 6, 7), None);
    }
}
