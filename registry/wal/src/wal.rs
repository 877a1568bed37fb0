//! The segmented, checksummed, fsynced Raft log.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{WalError, io_err};
use crate::format::{
    self, HeaderDefect, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, decode_record, encode_record,
    find_valid_record,
};

/// Name of the lock file that keeps two `Wal`s off the same directory.
const LOCK_FILE: &str = "wal.lock";

/// Tuning knobs for [`Wal::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// A new segment is started before a record that would make the current
    /// segment larger than this many bytes (header included). A segment
    /// always holds at least one record, so a single record larger than this
    /// gets a segment of its own. Default: 64 MiB.
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What [`Wal::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// First index on disk after recovery. Records the caller purged before
    /// the restart may still be here: re-apply [`Wal::purge_through`].
    pub first_index: Option<u64>,
    /// Last index on disk after recovery.
    pub last_index: Option<u64>,
    /// Number of segment files in use after recovery.
    pub segments: usize,
    /// Bytes cut from the end of the last segment because they held a torn or
    /// corrupt final write (never acknowledged, since acknowledgement follows
    /// the fsync of a complete append).
    pub truncated_bytes: u64,
    /// Index of the first record that was cut away, when bytes were cut.
    pub truncated_from_index: Option<u64>,
    /// Trailing segment files that held no complete record (for example a
    /// segment whose creation was interrupted) and were deleted.
    pub removed_segments: Vec<PathBuf>,
}

/// Location of one record inside its segment.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Byte offset of the record header.
    offset: u64,
    /// Payload length.
    len: u32,
}

impl Entry {
    fn end(self) -> u64 {
        self.offset + RECORD_HEADER_LEN + u64::from(self.len)
    }
}

/// One open segment file. Every segment held in memory contains at least one
/// record.
#[derive(Debug)]
struct Segment {
    first_index: u64,
    path: PathBuf,
    file: File,
    /// Bytes of the file that belong to the log.
    len: u64,
    /// `entries[i]` is the record with index `first_index + i`.
    entries: Vec<Entry>,
}

impl Segment {
    /// Index the record after this segment's last one would have.
    fn next_index(&self) -> u64 {
        self.first_index + self.entries.len() as u64
    }

    fn entry(&self, index: u64) -> Entry {
        self.entries[(index - self.first_index) as usize]
    }
}

/// The durable Raft log of a node.
///
/// Records are opaque payloads at contiguous `u64` indices. Appends are
/// durable when [`Wal::append`] returns; reads take `&self` and use
/// positional reads, re-verifying each record's checksum.
///
/// Invariant: when any segment is held, the last physical record lies above
/// the purge point, so the visible range `first_index()..=last_index()` is
/// non-empty exactly when `segments` is non-empty.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    segments: Vec<Segment>,
    purged_through: Option<u64>,
    poisoned: Option<String>,
    fsync_count: u64,
    last_fsync: Option<Duration>,
    /// Held (locked) for the lifetime of the `Wal`; closing it releases the lock.
    _lock: File,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`.
    ///
    /// Every segment is read and every checksum verified. A torn or corrupt
    /// tail of the last segment — damage after which no valid record follows
    /// — is truncated away durably and reported in [`Recovery`]. Damage
    /// followed by valid data, gaps between segments, non-contiguous indices
    /// and bad segment headers are reported as [`WalError::Corrupt`]; nothing
    /// is modified in that case.
    ///
    /// Each segment is read into memory once while scanning, so opening needs
    /// transient memory of about one segment.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, Recovery), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock = lock_dir(dir)?;
        let segment_files = list_segment_files(dir)?;

        let mut recovery = Recovery::default();
        let mut segments: Vec<Segment> = Vec::with_capacity(segment_files.len());
        let mut dir_changed = false;
        let count = segment_files.len();
        for (position, (first_index, path)) in segment_files.into_iter().enumerate() {
            let is_last = position + 1 == count;
            if let Some(prev) = segments.last() {
                let expected = prev.next_index();
                if first_index != expected {
                    return Err(WalError::Corrupt {
                        path,
                        offset: 0,
                        reason: format!(
                            "segment starts at index {first_index} but the previous segment \
                             ({}) ends at index {}; the log has a gap",
                            prev.path.display(),
                            expected - 1
                        ),
                    });
                }
            }
            let data = fs::read(&path).map_err(io_err(&path))?;
            match scan_segment(&path, first_index, &data, is_last)? {
                Scan::Abandoned { reason } => {
                    tracing::warn!(
                        path = %path.display(),
                        bytes = data.len(),
                        %reason,
                        "removing last WAL segment: it holds no complete record \
                         (interrupted segment creation)"
                    );
                    fs::remove_file(&path).map_err(io_err(&path))?;
                    recovery.removed_segments.push(path);
                    dir_changed = true;
                }
                Scan::Records { entries, len, torn } => {
                    let file = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&path)
                        .map_err(io_err(&path))?;
                    if let Some(torn) = torn {
                        let cut = data.len() as u64 - len;
                        tracing::warn!(
                            path = %path.display(),
                            offset = len,
                            bytes = cut,
                            from_index = torn.index,
                            reason = %torn.reason,
                            "truncating torn tail of the WAL (an unacknowledged write \
                             interrupted by a crash)"
                        );
                        file.set_len(len).map_err(io_err(&path))?;
                        file.sync_all().map_err(io_err(&path))?;
                        recovery.truncated_bytes = cut;
                        recovery.truncated_from_index = Some(torn.index);
                    }
                    if entries.is_empty() {
                        if !is_last {
                            return Err(WalError::Corrupt {
                                path,
                                offset: SEGMENT_HEADER_LEN,
                                reason: "segment holds no records but later segments follow"
                                    .to_owned(),
                            });
                        }
                        tracing::warn!(
                            path = %path.display(),
                            "removing empty last WAL segment"
                        );
                        drop(file);
                        fs::remove_file(&path).map_err(io_err(&path))?;
                        recovery.removed_segments.push(path);
                        dir_changed = true;
                    } else {
                        segments.push(Segment {
                            first_index,
                            path,
                            file,
                            len,
                            entries,
                        });
                    }
                }
            }
        }
        if dir_changed {
            sync_dir(dir)?;
        }

        let wal = Wal {
            dir: dir.to_path_buf(),
            options,
            segments,
            purged_through: None,
            poisoned: None,
            fsync_count: 0,
            last_fsync: None,
            _lock: lock,
        };
        recovery.first_index = wal.first_index();
        recovery.last_index = wal.last_index();
        recovery.segments = wal.segments.len();
        tracing::debug!(
            dir = %dir.display(),
            first_index = ?recovery.first_index,
            last_index = ?recovery.last_index,
            segments = recovery.segments,
            "opened WAL"
        );
        Ok((wal, recovery))
    }

    /// Appends `records`, which must carry contiguous indices continuing the
    /// log at `last_index() + 1`. On an empty log the first index may be
    /// anything above the purge point (see [`Wal::purge_through`]).
    ///
    /// All records are written, then the segment is flushed with a single
    /// `fdatasync` (plus a directory fsync if a segment file was created)
    /// before this returns. If a batch spans a segment rotation, the finished
    /// segment is synced before the next one is created, so a crash can only
    /// ever tear the last segment.
    ///
    /// Validation errors ([`WalError::OutOfOrder`] and friends) leave the log
    /// untouched. An I/O error leaves the outcome unknown and poisons the log
    /// against further writes.
    pub fn append<P: AsRef<[u8]>>(&mut self, records: &[(u64, P)]) -> Result<(), WalError> {
        self.check_poisoned()?;
        let Some((start, _)) = records.first() else {
            return Ok(());
        };
        let start = *start;
        match self.last_index() {
            Some(last) if start != last + 1 => {
                return Err(WalError::OutOfOrder {
                    expected: last + 1,
                    got: start,
                });
            }
            None => {
                if let Some(purged_through) = self.purged_through.filter(|&p| start <= p) {
                    return Err(WalError::AtOrBelowPurged {
                        index: start,
                        purged_through,
                    });
                }
            }
            Some(_) => {}
        }
        for (offset, (index, payload)) in (0u64..).zip(records) {
            let Some(expected) = start.checked_add(offset) else {
                return Err(WalError::IndexOverflow { index: *index });
            };
            if *index != expected {
                return Err(WalError::OutOfOrder {
                    expected,
                    got: *index,
                });
            }
            if *index == u64::MAX {
                return Err(WalError::IndexOverflow { index: *index });
            }
            let len = payload.as_ref().len();
            if u32::try_from(len).is_err() {
                return Err(WalError::RecordTooLarge { index: *index, len });
            }
        }

        let segment_count = self.segments.len();
        let tail = self.segments.last().map(|s| (s.len, s.entries.len()));
        let result = self.write_records(records);
        if let Err(err) = &result {
            // Forget what this call added; the log is poisoned anyway, but
            // reads must not serve records that were never made durable.
            self.segments.truncate(segment_count);
            if let (Some(seg), Some((len, entries))) = (self.segments.last_mut(), tail) {
                seg.len = len;
                seg.entries.truncate(entries);
            }
            self.poison(err);
        }
        result
    }

    /// Reads the record at `index`, or `None` if it is not in the visible
    /// range (`first_index()..=last_index()`).
    pub fn read(&self, index: u64) -> Result<Option<Vec<u8>>, WalError> {
        if !self.is_visible(index) {
            return Ok(None);
        }
        let seg = self.segment_for(index);
        let entry = seg.entry(index);
        let range = entry.offset..entry.end();
        let buf = read_span(seg, range)?;
        verify(seg, entry, index, &buf).map(|payload| Some(payload.to_vec()))
    }

    /// Reads the records with indices in `start..end_exclusive`, in order.
    /// Indices outside the visible range are skipped, so the result is the
    /// contiguous run starting at `max(start, first_index())`; callers that
    /// need the whole range should check its length.
    pub fn read_range(
        &self,
        start: u64,
        end_exclusive: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, WalError> {
        let (Some(first), Some(last)) = (self.first_index(), self.last_index()) else {
            return Ok(Vec::new());
        };
        let lo = start.max(first);
        let hi = end_exclusive.min(last + 1);
        if lo >= hi {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(usize::try_from(hi - lo).unwrap_or(0));
        let mut index = lo;
        while index < hi {
            let seg = self.segment_for(index);
            let seg_hi = hi.min(seg.next_index());
            // One positional read for the whole run inside this segment.
            let base = seg.entry(index).offset;
            let span = base..seg.entry(seg_hi - 1).end();
            let buf = read_span(seg, span)?;
            for i in index..seg_hi {
                let entry = seg.entry(i);
                let at = (entry.offset - base) as usize;
                let record = &buf[at..(entry.end() - base) as usize];
                out.push((i, verify(seg, entry, i, record)?.to_vec()));
            }
            index = seg_hi;
        }
        Ok(out)
    }

    /// Removes every record with an index above `index` (Raft conflict
    /// resolution), durably: later segments are deleted newest first and the
    /// directory synced, then the segment holding `index` is truncated and
    /// synced. A no-op if `index >= last_index()`. If nothing visible would
    /// remain (`index` below `first_index()`), the log becomes empty.
    pub fn truncate_after(&mut self, index: u64) -> Result<(), WalError> {
        self.check_poisoned()?;
        let Some(last) = self.last_index() else {
            return Ok(());
        };
        if index >= last {
            return Ok(());
        }
        let result = self.truncate_inner(index);
        if let Err(err) = &result {
            self.poison(err);
        }
        result
    }

    /// Removes every record (Raft's "truncate after nothing": the whole log
    /// conflicts with the leader's). The next append may start at any index
    /// above the purge point.
    pub fn truncate_all(&mut self) -> Result<(), WalError> {
        self.check_poisoned()?;
        if self.segments.is_empty() {
            return Ok(());
        }
        let result = self.remove_all_segments();
        if let Err(err) = &result {
            self.poison(err);
        }
        result
    }

    fn remove_all_segments(&mut self) -> Result<(), WalError> {
        while let Some(seg) = self.segments.pop() {
            remove_segment(seg)?;
        }
        sync_dir(&self.dir)
    }

    /// Declares records up to and including `index` no longer needed. They
    /// disappear from reads and `first_index()` at once; segments holding
    /// only such records are deleted (oldest first, then the directory is
    /// synced). Purged records sharing a segment with later ones stay on disk
    /// until that segment goes, and reappear after a reopen: the caller
    /// persists its purge point and calls this again right after
    /// [`Wal::open`].
    ///
    /// If `index >= last_index()` the log becomes empty and the next append
    /// may start at any index above `index`. The purge point never moves
    /// backwards.
    pub fn purge_through(&mut self, index: u64) -> Result<(), WalError> {
        self.check_poisoned()?;
        let purged = self.purged_through.map_or(index, |p| p.max(index));
        self.purged_through = Some(purged);
        let Some(last) = self.last_index() else {
            return Ok(());
        };
        let result = self.purge_inner(purged, last);
        if let Err(err) = &result {
            self.poison(err);
        }
        result
    }

    /// First visible index, or `None` if the log is empty.
    pub fn first_index(&self) -> Option<u64> {
        let physical = self.segments.first()?.first_index;
        Some(match self.purged_through {
            Some(purged) => physical.max(purged + 1),
            None => physical,
        })
    }

    /// Last index, or `None` if the log is empty.
    pub fn last_index(&self) -> Option<u64> {
        self.segments.last().map(|seg| seg.next_index() - 1)
    }

    /// Number of visible records.
    pub fn len(&self) -> u64 {
        match (self.first_index(), self.last_index()) {
            (Some(first), Some(last)) => last - first + 1,
            _ => 0,
        }
    }

    /// Whether no record is visible.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The highest index passed to [`Wal::purge_through`] since open.
    pub fn purged_through(&self) -> Option<u64> {
        self.purged_through
    }

    /// Number of segment files currently in use.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Options the log was opened with.
    pub fn options(&self) -> &WalOptions {
        &self.options
    }

    /// Number of segment-file fsyncs (`fdatasync` on append, `fsync` after a
    /// truncation) issued since open. Directory fsyncs are not counted.
    pub fn fsync_count(&self) -> u64 {
        self.fsync_count
    }

    /// Duration of the most recent segment-file fsync, for latency metrics.
    pub fn last_fsync_duration(&self) -> Option<Duration> {
        self.last_fsync
    }

    fn check_poisoned(&self) -> Result<(), WalError> {
        match &self.poisoned {
            Some(cause) => Err(WalError::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, err: &WalError) {
        tracing::error!(error = %err, "WAL write failed; refusing further writes");
        self.poisoned = Some(err.to_string());
    }

    fn is_visible(&self, index: u64) -> bool {
        match (self.first_index(), self.last_index()) {
            (Some(first), Some(last)) => (first..=last).contains(&index),
            _ => false,
        }
    }

    /// The segment holding `index`; the caller has checked it is present.
    fn segment_for(&self, index: u64) -> &Segment {
        let after = self.segments.partition_point(|s| s.first_index <= index);
        &self.segments[after - 1]
    }

    fn write_records<P: AsRef<[u8]>>(&mut self, records: &[(u64, P)]) -> Result<(), WalError> {
        let limit = self.options.segment_bytes;
        let mut buf = Vec::new();
        let mut created = false;
        for (index, payload) in records {
            let payload = payload.as_ref();
            // Checked by `append`.
            let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
            let encoded = RECORD_HEADER_LEN + u64::from(len);
            let rotate = match self.segments.last() {
                None => true,
                Some(seg) => {
                    !seg.entries.is_empty() && seg.len + buf.len() as u64 + encoded > limit
                }
            };
            if rotate {
                if !buf.is_empty() {
                    self.flush(&mut buf)?;
                    self.sync_last()?;
                }
                self.create_segment(*index)?;
                created = true;
            }
            let Some(seg) = self.segments.last_mut() else {
                unreachable!("a segment was just ensured");
            };
            seg.entries.push(Entry {
                offset: seg.len + buf.len() as u64,
                len,
            });
            encode_record(&mut buf, *index, payload, len);
        }
        self.flush(&mut buf)?;
        self.sync_last()?;
        if created {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Writes `buf` at the end of the last segment and clears it.
    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<(), WalError> {
        if let Some(seg) = self.segments.last_mut() {
            seg.file
                .write_all_at(buf, seg.len)
                .map_err(io_err(&seg.path))?;
            seg.len += buf.len() as u64;
        }
        buf.clear();
        Ok(())
    }

    fn sync_last(&mut self) -> Result<(), WalError> {
        let Some(seg) = self.segments.last() else {
            return Ok(());
        };
        let started = Instant::now();
        seg.file.sync_data().map_err(io_err(&seg.path))?;
        self.record_fsync(started.elapsed());
        Ok(())
    }

    fn record_fsync(&mut self, took: Duration) {
        self.fsync_count += 1;
        self.last_fsync = Some(took);
    }

    fn create_segment(&mut self, first_index: u64) -> Result<(), WalError> {
        let path = self.dir.join(format::segment_file_name(first_index));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.write_all_at(&format::segment_header(), 0)
            .map_err(io_err(&path))?;
        tracing::debug!(path = %path.display(), "created WAL segment");
        self.segments.push(Segment {
            first_index,
            path,
            file,
            len: SEGMENT_HEADER_LEN,
            entries: Vec::new(),
        });
        Ok(())
    }

    fn truncate_inner(&mut self, index: u64) -> Result<(), WalError> {
        // Keep records <= index. If only purged records would be left, drop
        // everything so that a held segment always has a visible record.
        let keep_segments = if self.purged_through.is_some_and(|p| index <= p) {
            0
        } else {
            self.segments.partition_point(|s| s.first_index <= index)
        };
        let mut removed = false;
        while self.segments.len() > keep_segments {
            if let Some(seg) = self.segments.pop() {
                remove_segment(seg)?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        if let Some(seg) = self.segments.last_mut() {
            let keep = (index - seg.first_index + 1) as usize;
            if keep < seg.entries.len() {
                let new_len = seg.entries[keep].offset;
                tracing::debug!(
                    path = %seg.path.display(),
                    after_index = index,
                    new_len,
                    "truncating WAL segment"
                );
                seg.file.set_len(new_len).map_err(io_err(&seg.path))?;
                let started = Instant::now();
                seg.file.sync_all().map_err(io_err(&seg.path))?;
                seg.len = new_len;
                seg.entries.truncate(keep);
                let took = started.elapsed();
                self.record_fsync(took);
            }
        }
        Ok(())
    }

    fn purge_inner(&mut self, purged: u64, last: u64) -> Result<(), WalError> {
        let remove = if purged >= last {
            self.segments.len()
        } else {
            // Segment i holds only purged records iff the next one starts at
            // or below purged + 1 (no overflow: purged < last < u64::MAX).
            self.segments
                .windows(2)
                .take_while(|pair| pair[1].first_index <= purged + 1)
                .count()
        };
        if remove == 0 {
            return Ok(());
        }
        for seg in self.segments.drain(..remove) {
            remove_segment(seg)?;
        }
        sync_dir(&self.dir)
    }
}

/// Outcome of scanning one segment file at open.
enum Scan {
    /// The last segment has no usable header and no valid record: its
    /// creation was interrupted. Delete it.
    Abandoned { reason: String },
    /// The segment's records; `len` is the byte length of the valid prefix,
    /// and `torn` is set if bytes after it must be cut away.
    Records {
        entries: Vec<Entry>,
        len: u64,
        torn: Option<TornTail>,
    },
}

struct TornTail {
    index: u64,
    reason: String,
}

fn scan_segment(
    path: &Path,
    first_index: u64,
    data: &[u8],
    is_last: bool,
) -> Result<Scan, WalError> {
    let corrupt = |offset: usize, reason: String| WalError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    match format::check_segment_header(data) {
        Ok(()) => {}
        Err(HeaderDefect::Missing(reason)) => {
            if !is_last {
                return Err(corrupt(0, format!("{reason}; later segments follow")));
            }
            if let Some((at, index)) = find_valid_record(data, 0, first_index) {
                return Err(corrupt(
                    0,
                    format!("{reason}, yet a valid record (index {index}) follows at offset {at}"),
                ));
            }
            return Ok(Scan::Abandoned { reason });
        }
        Err(HeaderDefect::Unsupported(reason)) => return Err(corrupt(0, reason)),
    }

    let mut entries = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN as usize;
    let mut next = first_index;
    while pos < data.len() {
        match decode_record(&data[pos..]) {
            Ok(record) => {
                if record.index != next {
                    return Err(corrupt(
                        pos,
                        format!(
                            "record has index {} but index {next} was expected \
                             (indices must be contiguous)",
                            record.index
                        ),
                    ));
                }
                if next == u64::MAX {
                    return Err(corrupt(
                        pos,
                        "record index u64::MAX is not allowed".to_owned(),
                    ));
                }
                entries.push(Entry {
                    offset: pos as u64,
                    len: record.payload.len() as u32,
                });
                pos += record.encoded_len() as usize;
                next += 1;
            }
            Err(defect) => {
                if !is_last {
                    return Err(corrupt(
                        pos,
                        format!("{defect}; later segments follow, so this is not a torn tail"),
                    ));
                }
                if let Some((at, index)) = find_valid_record(data, pos + 1, next) {
                    return Err(corrupt(
                        pos,
                        format!(
                            "{defect} in record {next}; a valid record (index {index}) follows \
                             at offset {at}, so this is not a torn tail"
                        ),
                    ));
                }
                return Ok(Scan::Records {
                    entries,
                    len: pos as u64,
                    torn: Some(TornTail {
                        index: next,
                        reason: defect,
                    }),
                });
            }
        }
    }
    Ok(Scan::Records {
        entries,
        len: pos as u64,
        torn: None,
    })
}

/// Reads `range` of the segment file.
fn read_span(seg: &Segment, range: Range<u64>) -> Result<Vec<u8>, WalError> {
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    seg.file
        .read_exact_at(&mut buf, range.start)
        .map_err(io_err(&seg.path))?;
    Ok(buf)
}

/// Re-verifies a record read back from disk against the in-memory index.
fn verify<'a>(
    seg: &Segment,
    entry: Entry,
    index: u64,
    buf: &'a [u8],
) -> Result<&'a [u8], WalError> {
    let corrupt = |reason: String| WalError::Corrupt {
        path: seg.path.clone(),
        offset: entry.offset,
        reason: format!("{reason} (the file changed after the log was opened)"),
    };
    let record = decode_record(buf).map_err(corrupt)?;
    if record.index != index || record.payload.len() != entry.len as usize {
        return Err(corrupt(format!(
            "expected record {index} with a {}-byte payload, found record {} with {} bytes",
            entry.len,
            record.index,
            record.payload.len()
        )));
    }
    Ok(record.payload)
}

fn remove_segment(seg: Segment) -> Result<(), WalError> {
    tracing::debug!(path = %seg.path.display(), "deleting WAL segment");
    let Segment { path, file, .. } = seg;
    drop(file);
    fs::remove_file(&path).map_err(io_err(&path))
}

/// Takes an exclusive advisory lock on the directory's lock file.
fn lock_dir(dir: &Path) -> Result<File, WalError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(WalError::Locked { path }),
        Err(TryLockError::Error(source)) => Err(WalError::Io { path, source }),
    }
}

/// Segment files in `dir`, sorted by first index.
fn list_segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if let Some(first_index) = name.to_str().and_then(format::parse_segment_file_name) {
            found.push((first_index, entry.path()));
        }
    }
    found.sort_unstable_by_key(|(first_index, _)| *first_index);
    Ok(found)
}

/// Makes creations, renames and deletions in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}
