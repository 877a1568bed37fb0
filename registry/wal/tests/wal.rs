//! Behavioural tests of the segmented log against real files.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use muster_wal::{Recovery, Wal, WalError, WalOptions};

const SEGMENT_HEADER: u64 = 16;
const RECORD_HEADER: u64 = 16;

fn options(segment_bytes: u64) -> WalOptions {
    WalOptions { segment_bytes }
}

fn open(dir: &Path, segment_bytes: u64) -> (Wal, Recovery) {
    Wal::open(dir, options(segment_bytes)).expect("open WAL")
}

fn open_err(dir: &Path, segment_bytes: u64) -> WalError {
    match Wal::open(dir, options(segment_bytes)) {
        Ok((wal, _)) => panic!("expected open to fail, got log {wal:?}"),
        Err(err) => err,
    }
}

/// Variable-length payload so that offsets are not all alike.
fn payload(index: u64) -> Vec<u8> {
    format!("record {index};")
        .repeat((index % 5 + 1) as usize)
        .into_bytes()
}

/// Fixed 32-byte payload: 48 bytes per record on disk.
fn fixed(index: u64, tag: &str) -> Vec<u8> {
    let mut p = format!("{tag}-{index:08}").into_bytes();
    p.resize(32, b'.');
    p
}

fn append_range(wal: &mut Wal, indices: std::ops::RangeInclusive<u64>) {
    let records: Vec<(u64, Vec<u8>)> = indices.map(|i| (i, payload(i))).collect();
    wal.append(&records).expect("append");
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("wal-") && name.ends_with(".log")
        })
        .collect();
    files.sort();
    files
}

fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("wal-{first_index:020}.log"))
}

fn first_index_of(path: &Path) -> u64 {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name");
    name["wal-".len()..name.len() - ".log".len()]
        .parse()
        .expect("index in name")
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("metadata").len()
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open segment")
        .set_len(len)
        .expect("set_len");
}

fn flip_byte(path: &Path, offset: u64) {
    let mut data = fs::read(path).expect("read segment");
    data[offset as usize] ^= 0x5A;
    fs::write(path, data).expect("write segment");
}

fn assert_records(wal: &Wal, indices: std::ops::RangeInclusive<u64>) {
    for i in indices {
        assert_eq!(wal.read(i).expect("read"), Some(payload(i)), "record {i}");
    }
}

#[test]
fn append_read_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    {
        let (mut wal, recovery) = open(&dir, 1 << 20);
        assert_eq!(recovery, Recovery::default());
        assert!(wal.is_empty());
        assert_eq!(
            (wal.first_index(), wal.last_index(), wal.len()),
            (None, None, 0)
        );
        assert_eq!(wal.read(1).unwrap(), None);
        assert_eq!(wal.last_fsync_duration(), None);

        // The first append on an empty log may start anywhere.
        append_range(&mut wal, 5..=5);
        assert_eq!(wal.fsync_count(), 1);
        assert!(wal.last_fsync_duration().is_some());
        append_range(&mut wal, 6..=12);
        assert_eq!(wal.fsync_count(), 2, "one fdatasync per append call");
        wal.append::<&[u8]>(&[]).unwrap();
        assert_eq!(wal.fsync_count(), 2, "empty append does no I/O");

        assert_eq!(
            (wal.first_index(), wal.last_index(), wal.len()),
            (Some(5), Some(12), 8)
        );
        assert_records(&wal, 5..=12);
        assert_eq!(wal.read(4).unwrap(), None);
        assert_eq!(wal.read(13).unwrap(), None);
        let range = wal.read_range(7, 10).unwrap();
        assert_eq!(range, (7..10).map(|i| (i, payload(i))).collect::<Vec<_>>());
    }
    let (mut wal, recovery) = open(&dir, 1 << 20);
    assert_eq!(
        recovery,
        Recovery {
            first_index: Some(5),
            last_index: Some(12),
            segments: 1,
            ..Recovery::default()
        }
    );
    assert_records(&wal, 5..=12);
    // Borrowed payloads work too.
    wal.append(&[(13, &b"thirteen"[..]), (14, &b""[..])])
        .unwrap();
    assert_eq!(wal.read(13).unwrap().as_deref(), Some(&b"thirteen"[..]));
    assert_eq!(wal.read(14).unwrap(), Some(Vec::new()));
    drop(wal);
    let (wal, _) = open(&dir, 1 << 20);
    assert_eq!(wal.last_index(), Some(14));
    assert_eq!(wal.read(14).unwrap(), Some(Vec::new()));
}

#[test]
fn rotation_across_many_segments_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = 256;
    {
        let (mut wal, _) = open(tmp.path(), limit);
        let mut next = 1;
        while next <= 200 {
            let end = (next + 6).min(200);
            append_range(&mut wal, next..=end);
            next = end + 1;
        }
        assert_records(&wal, 1..=200);
        assert!(
            wal.segment_count() > 20,
            "got {} segments",
            wal.segment_count()
        );
        assert_eq!(wal.segment_count(), segment_files(tmp.path()).len());
    }
    let files = segment_files(tmp.path());
    assert_eq!(first_index_of(&files[0]), 1);
    for file in &files {
        assert!(
            file_len(file) <= limit,
            "{} is {} bytes",
            file.display(),
            file_len(file)
        );
    }
    let (wal, recovery) = open(tmp.path(), limit);
    assert_eq!(recovery.segments, files.len());
    assert_eq!(
        (recovery.first_index, recovery.last_index),
        (Some(1), Some(200))
    );
    assert_eq!(recovery.truncated_bytes, 0);
    let all = wal.read_range(0, u64::MAX).unwrap();
    assert_eq!(all, (1..=200).map(|i| (i, payload(i))).collect::<Vec<_>>());
    // A range that crosses several segment boundaries.
    let some = wal.read_range(37, 151).unwrap();
    assert_eq!(some, (37..151).map(|i| (i, payload(i))).collect::<Vec<_>>());
}

#[test]
fn batch_spanning_rotation_syncs_each_segment_once() {
    let tmp = tempfile::tempdir().unwrap();
    // 16-byte header + 3 records of 48 bytes.
    let (mut wal, _) = open(tmp.path(), 160);
    let records: Vec<(u64, Vec<u8>)> = (1..=5).map(|i| (i, fixed(i, "a"))).collect();
    wal.append(&records).unwrap();
    assert_eq!(wal.segment_count(), 2);
    assert_eq!(wal.fsync_count(), 2);
    assert_eq!(file_len(&segment_path(tmp.path(), 1)), 160);
    assert_eq!(file_len(&segment_path(tmp.path(), 4)), 16 + 2 * 48);
    // A record larger than the limit gets a segment of its own.
    wal.append(&[(6, vec![7u8; 1000]), (7, vec![8u8; 4])])
        .unwrap();
    assert_eq!(wal.segment_count(), 4);
    assert_eq!(wal.read(6).unwrap(), Some(vec![7u8; 1000]));
    assert_eq!(wal.read(7).unwrap(), Some(vec![8u8; 4]));
}

#[test]
fn out_of_order_appends_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(tmp.path(), 1 << 20);
    append_range(&mut wal, 1..=3);
    let syncs = wal.fsync_count();

    let err = wal.append(&[(5, b"x")]).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::OutOfOrder {
                expected: 4,
                got: 5
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "out-of-order append: expected index 4, got 5"
    );
    let err = wal.append(&[(3, b"x")]).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::OutOfOrder {
                expected: 4,
                got: 3
            }
        ),
        "{err:?}"
    );
    // A gap inside the batch is refused before anything is written.
    let err = wal.append(&[(4, b"x"), (6, b"y")]).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::OutOfOrder {
                expected: 5,
                got: 6
            }
        ),
        "{err:?}"
    );
    let err = wal.append(&[(4, b"x"), (4, b"y")]).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::OutOfOrder {
                expected: 5,
                got: 4
            }
        ),
        "{err:?}"
    );
    assert_eq!(wal.last_index(), Some(3));
    assert_eq!(wal.fsync_count(), syncs);

    // The log is still usable.
    append_range(&mut wal, 4..=4);
    drop(wal);
    let (wal, _) = open(tmp.path(), 1 << 20);
    assert_records(&wal, 1..=4);

    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(tmp.path(), 1 << 20);
    let err = wal.append(&[(u64::MAX, b"x")]).unwrap_err();
    assert!(
        matches!(err, WalError::IndexOverflow { index: u64::MAX }),
        "{err:?}"
    );
    assert!(wal.is_empty());
}

#[test]
fn truncate_after_across_segment_boundaries() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = 160; // 3 fixed records per segment: wal-1, wal-4, wal-7, ...
    let (mut wal, _) = open(tmp.path(), limit);
    let records: Vec<(u64, Vec<u8>)> = (1..=30).map(|i| (i, fixed(i, "old"))).collect();
    wal.append(&records).unwrap();
    assert_eq!(segment_files(tmp.path()).len(), 10);

    // No-ops.
    wal.truncate_after(30).unwrap();
    wal.truncate_after(99).unwrap();
    assert_eq!(wal.last_index(), Some(30));

    // Exactly at a segment boundary: later segments go, wal-10 stays whole.
    wal.truncate_after(12).unwrap();
    assert_eq!(wal.last_index(), Some(12));
    let files = segment_files(tmp.path());
    assert_eq!(
        files.iter().map(|f| first_index_of(f)).collect::<Vec<_>>(),
        [1, 4, 7, 10]
    );
    assert_eq!(file_len(&segment_path(tmp.path(), 10)), limit);
    assert_eq!(wal.read(13).unwrap(), None);

    // In the middle of a segment.
    wal.truncate_after(8).unwrap();
    assert_eq!(wal.last_index(), Some(8));
    assert_eq!(segment_files(tmp.path()).len(), 3);
    assert_eq!(
        file_len(&segment_path(tmp.path(), 7)),
        SEGMENT_HEADER + 2 * 48
    );
    assert_eq!(wal.read(9).unwrap(), None);
    assert_eq!(wal.read_range(1, 100).unwrap().len(), 8);

    // Conflicting entries get rewritten with new payloads.
    let fresh: Vec<(u64, Vec<u8>)> = (9..=14).map(|i| (i, fixed(i, "new"))).collect();
    wal.append(&fresh).unwrap();
    drop(wal);

    let (mut wal, recovery) = open(tmp.path(), limit);
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(
        (recovery.first_index, recovery.last_index),
        (Some(1), Some(14))
    );
    for i in 1..=8 {
        assert_eq!(wal.read(i).unwrap(), Some(fixed(i, "old")));
    }
    for i in 9..=14 {
        assert_eq!(wal.read(i).unwrap(), Some(fixed(i, "new")));
    }

    // Truncating below the first index empties the log and removes every file.
    wal.truncate_after(0).unwrap();
    assert!(wal.is_empty());
    assert!(segment_files(tmp.path()).is_empty());
    wal.append(&[(1, b"again")]).unwrap();
    drop(wal);
    let (wal, _) = open(tmp.path(), limit);
    assert_eq!((wal.first_index(), wal.last_index()), (Some(1), Some(1)));
    assert_eq!(wal.read(1).unwrap().as_deref(), Some(&b"again"[..]));
}

#[test]
fn purge_deletes_whole_segments_and_hides_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = 160;
    let (mut wal, _) = open(tmp.path(), limit);
    let records: Vec<(u64, Vec<u8>)> = (1..=30).map(|i| (i, fixed(i, "p"))).collect();
    wal.append(&records).unwrap();

    wal.purge_through(8).unwrap();
    assert_eq!(wal.purged_through(), Some(8));
    assert_eq!(
        (wal.first_index(), wal.last_index(), wal.len()),
        (Some(9), Some(30), 22)
    );
    // wal-1 (1..=3) and wal-4 (4..=6) are gone; wal-7 keeps 7 and 8 hidden.
    assert!(!segment_path(tmp.path(), 1).exists());
    assert!(!segment_path(tmp.path(), 4).exists());
    assert!(segment_path(tmp.path(), 7).exists());
    assert_eq!(wal.segment_count(), 8);
    for i in [1, 6, 7, 8] {
        assert_eq!(wal.read(i).unwrap(), None, "purged record {i}");
    }
    assert_eq!(wal.read(9).unwrap(), Some(fixed(9, "p")));
    let range = wal.read_range(1, 12).unwrap();
    assert_eq!(
        range.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [9, 10, 11]
    );

    // The purge point never moves back.
    wal.purge_through(2).unwrap();
    assert_eq!(
        (wal.purged_through(), wal.first_index()),
        (Some(8), Some(9))
    );
    drop(wal);

    // After reopen the hidden records are back until the purge is re-applied.
    let (mut wal, recovery) = open(tmp.path(), limit);
    assert_eq!(recovery.first_index, Some(7));
    assert_eq!(wal.read(7).unwrap(), Some(fixed(7, "p")));
    wal.purge_through(8).unwrap();
    assert_eq!(wal.first_index(), Some(9));
    assert_eq!(wal.read(8).unwrap(), None);

    // Purging everything empties the log and deletes every segment.
    wal.purge_through(40).unwrap();
    assert!(wal.is_empty());
    assert_eq!(
        (wal.first_index(), wal.last_index(), wal.len()),
        (None, None, 0)
    );
    assert!(segment_files(tmp.path()).is_empty());
    assert_eq!(wal.read(30).unwrap(), None);
    let err = wal.append(&[(31, b"x")]).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::AtOrBelowPurged {
                index: 31,
                purged_through: 40
            }
        ),
        "{err:?}"
    );
    let err = wal.append(&[(40, b"x")]).unwrap_err();
    assert!(matches!(err, WalError::AtOrBelowPurged { .. }), "{err:?}");
    wal.append(&[(41, b"snapshot+1")]).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (Some(41), Some(41)));
    drop(wal);

    let (mut wal, recovery) = open(tmp.path(), limit);
    assert_eq!(
        (recovery.first_index, recovery.last_index),
        (Some(41), Some(41))
    );
    wal.purge_through(40).unwrap();
    assert_eq!(wal.read(41).unwrap().as_deref(), Some(&b"snapshot+1"[..]));
    wal.append(&[(42, b"more")]).unwrap();
    assert_eq!(wal.len(), 2);
}

#[test]
fn purge_then_truncate_below_purge_point_empties_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(tmp.path(), 1 << 20);
    append_range(&mut wal, 1..=10);
    wal.purge_through(5).unwrap();
    wal.truncate_after(3).unwrap();
    assert!(wal.is_empty());
    assert!(segment_files(tmp.path()).is_empty());
    assert!(matches!(
        wal.append(&[(5, b"x")]).unwrap_err(),
        WalError::AtOrBelowPurged { .. }
    ));
    append_range(&mut wal, 6..=7);
    assert_eq!((wal.first_index(), wal.last_index()), (Some(6), Some(7)));
}

/// Builds a log whose last record (5) shares its segment with 1..=4, and
/// returns the segment path and the byte range of record 5.
fn build_shared_tail(dir: &Path) -> (PathBuf, u64, u64) {
    let (mut wal, _) = open(dir, 1 << 20);
    append_range(&mut wal, 1..=4);
    let path = segment_path(dir, 1);
    let start = file_len(&path);
    append_range(&mut wal, 5..=5);
    (path.clone(), start, file_len(&path))
}

#[test]
fn torn_tail_at_every_offset_in_last_record() {
    let mut cuts = 0;
    let probe = tempfile::tempdir().unwrap();
    let (_, start, end) = build_shared_tail(probe.path());
    assert_eq!(end - start, RECORD_HEADER + payload(5).len() as u64);
    for cut in start..end {
        let tmp = tempfile::tempdir().unwrap();
        let (path, _, _) = build_shared_tail(tmp.path());
        set_len(&path, cut);

        let (mut wal, recovery) = open(tmp.path(), 1 << 20);
        assert_eq!(recovery.last_index, Some(4), "cut at {cut}");
        assert_eq!(recovery.truncated_bytes, cut - start, "cut at {cut}");
        let expected_from = (cut > start).then_some(5);
        assert_eq!(recovery.truncated_from_index, expected_from, "cut at {cut}");
        assert!(recovery.removed_segments.is_empty());
        assert_eq!(file_len(&path), start, "file truncated back to record 4");
        assert_records(&wal, 1..=4);
        assert_eq!(wal.read(5).unwrap(), None);

        // Appending continues where the valid log ends.
        let err = wal.append(&[(6, b"x")]).unwrap_err();
        assert!(matches!(
            err,
            WalError::OutOfOrder {
                expected: 5,
                got: 6
            }
        ));
        wal.append(&[(5, b"rewritten")]).unwrap();
        drop(wal);
        let (wal, recovery) = open(tmp.path(), 1 << 20);
        assert_eq!(recovery.truncated_bytes, 0);
        assert_eq!(wal.read(5).unwrap().as_deref(), Some(&b"rewritten"[..]));
        assert_records(&wal, 1..=4);
        cuts += 1;
    }
    assert_eq!(cuts, end - start);
}

#[test]
fn torn_tail_in_a_freshly_rotated_segment() {
    // segment_bytes = 1: every record gets its own segment.
    let probe = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = open(probe.path(), 1);
        append_range(&mut wal, 1..=5);
        assert_eq!(wal.segment_count(), 5);
    }
    let full = file_len(&segment_path(probe.path(), 5));
    for cut in 0..full {
        let tmp = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = open(tmp.path(), 1);
            append_range(&mut wal, 1..=5);
        }
        let last = segment_path(tmp.path(), 5);
        set_len(&last, cut);

        let (mut wal, recovery) = open(tmp.path(), 1);
        assert_eq!(recovery.last_index, Some(4), "cut at {cut}");
        assert_eq!(recovery.segments, 4);
        assert_eq!(
            recovery.removed_segments,
            vec![last.clone()],
            "cut at {cut}"
        );
        assert_eq!(recovery.truncated_bytes, cut.saturating_sub(SEGMENT_HEADER));
        assert_eq!(
            recovery.truncated_from_index,
            (cut > SEGMENT_HEADER).then_some(5),
            "cut at {cut}"
        );
        assert!(!last.exists());
        assert_records(&wal, 1..=4);
        append_range(&mut wal, 5..=6);
        drop(wal);
        let (wal, recovery) = open(tmp.path(), 1);
        assert_eq!(recovery.last_index, Some(6));
        assert_records(&wal, 1..=6);
    }
}

#[test]
fn flipped_byte_in_last_record_is_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, start, end) = build_shared_tail(tmp.path());
    flip_byte(&path, start + RECORD_HEADER + 3);

    let (mut wal, recovery) = open(tmp.path(), 1 << 20);
    assert_eq!(recovery.last_index, Some(4));
    assert_eq!(recovery.truncated_bytes, end - start);
    assert_eq!(recovery.truncated_from_index, Some(5));
    assert_eq!(file_len(&path), start);
    assert_records(&wal, 1..=4);
    append_range(&mut wal, 5..=5);
    assert_records(&wal, 1..=5);
}

#[test]
fn flipped_byte_in_middle_record_is_corruption() {
    for target in [RECORD_HEADER + 2, 1, 9] {
        let tmp = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = open(tmp.path(), 1 << 20);
            append_range(&mut wal, 1..=5);
        }
        let path = segment_path(tmp.path(), 1);
        let record3 = SEGMENT_HEADER
            + (1..=2)
                .map(|i| RECORD_HEADER + payload(i).len() as u64)
                .sum::<u64>();
        let before = fs::read(&path).unwrap();
        // Damage the payload, the length field or the index field.
        flip_byte(&path, record3 + target);

        let err = open_err(tmp.path(), 1 << 20);
        match &err {
            WalError::Corrupt {
                path: p,
                offset,
                reason,
            } => {
                assert_eq!(p, &path);
                assert_eq!(*offset, record3, "reason: {reason}");
                assert!(reason.contains("not a torn tail"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(&format!("offset {record3}")), "{message}");
        // Nothing was repaired behind the operator's back.
        let mut after = fs::read(&path).unwrap();
        after[(record3 + target) as usize] ^= 0x5A;
        assert_eq!(after, before);
    }
}

#[test]
fn damage_in_an_earlier_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = open(tmp.path(), 1);
        append_range(&mut wal, 1..=3);
    }
    // Torn-looking end of a segment that is not the last one.
    let second = segment_path(tmp.path(), 2);
    set_len(&second, file_len(&second) - 1);
    match open_err(tmp.path(), 1) {
        WalError::Corrupt { path, offset, .. } => {
            assert_eq!((path, offset), (second, SEGMENT_HEADER));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn gap_between_segments_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = open(tmp.path(), 1);
        append_range(&mut wal, 1..=5);
    }
    fs::remove_file(segment_path(tmp.path(), 3)).unwrap();
    let err = open_err(tmp.path(), 1);
    match &err {
        WalError::Corrupt {
            path,
            offset,
            reason,
        } => {
            assert_eq!(path, &segment_path(tmp.path(), 4));
            assert_eq!(*offset, 0);
            assert!(reason.contains("gap"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn bad_segment_headers_are_corruption() {
    // Bad magic in a segment followed by others.
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = open(tmp.path(), 1);
        append_range(&mut wal, 1..=3);
    }
    flip_byte(&segment_path(tmp.path(), 2), 0);
    match open_err(tmp.path(), 1) {
        WalError::Corrupt { path, offset, .. } => {
            assert_eq!((path, offset), (segment_path(tmp.path(), 2), 0));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // Bad magic in the last segment that still holds a valid record.
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = open(tmp.path(), 1);
        append_range(&mut wal, 1..=3);
    }
    flip_byte(&segment_path(tmp.path(), 3), 2);
    match open_err(tmp.path(), 1) {
        WalError::Corrupt { path, reason, .. } => {
            assert_eq!(path, segment_path(tmp.path(), 3));
            assert!(reason.contains("valid record"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // Unknown format version.
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = open(tmp.path(), 1 << 20);
        append_range(&mut wal, 1..=3);
    }
    flip_byte(&segment_path(tmp.path(), 1), 8);
    match open_err(tmp.path(), 1 << 20) {
        WalError::Corrupt { reason, .. } => assert!(reason.contains("version"), "{reason}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn empty_trailing_segments_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = open(tmp.path(), 1 << 20);
        append_range(&mut wal, 1..=3);
    }
    // A header-only segment, as left by a crash right after rotation.
    let header_only = segment_path(tmp.path(), 4);
    let header = fs::read(segment_path(tmp.path(), 1)).unwrap()[..SEGMENT_HEADER as usize].to_vec();
    fs::write(&header_only, &header).unwrap();
    let (mut wal, recovery) = open(tmp.path(), 1 << 20);
    assert_eq!(recovery.removed_segments, vec![header_only.clone()]);
    assert_eq!(recovery.last_index, Some(3));
    assert!(!header_only.exists());
    append_range(&mut wal, 4..=4);
    drop(wal);

    // A zero-length segment.
    let zero = segment_path(tmp.path(), 5);
    fs::write(&zero, b"").unwrap();
    let (wal, recovery) = open(tmp.path(), 1 << 20);
    assert_eq!(recovery.removed_segments, vec![zero]);
    assert_eq!(recovery.truncated_bytes, 0);
    assert_records(&wal, 1..=4);
    drop(wal);

    // The only segment is empty: the log is empty and any start is fine.
    let tmp = tempfile::tempdir().unwrap();
    fs::write(segment_path(tmp.path(), 9), &header).unwrap();
    let (mut wal, recovery) = open(tmp.path(), 1 << 20);
    assert!(wal.is_empty());
    assert_eq!(recovery.removed_segments.len(), 1);
    wal.append(&[(100, b"x")]).unwrap();
    assert_eq!(wal.first_index(), Some(100));
}

#[test]
fn a_directory_is_opened_by_one_wal_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = open(tmp.path(), 1 << 20);
    let err = open_err(tmp.path(), 1 << 20);
    assert!(matches!(err, WalError::Locked { .. }), "{err:?}");
    drop(wal);
    open(tmp.path(), 1 << 20);
}

#[test]
fn unrelated_files_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = open(tmp.path(), 1 << 20);
        append_range(&mut wal, 1..=2);
    }
    fs::write(tmp.path().join("vote"), b"not a segment").unwrap();
    fs::write(tmp.path().join("wal-7.log"), b"short name").unwrap();
    let (wal, recovery) = open(tmp.path(), 1 << 20);
    assert_eq!(recovery.segments, 1);
    assert_records(&wal, 1..=2);
}

#[test]
fn reads_reverify_checksums() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(tmp.path(), 1 << 20);
    append_range(&mut wal, 1..=3);
    let path = segment_path(tmp.path(), 1);
    let record2 = SEGMENT_HEADER + RECORD_HEADER + payload(1).len() as u64;
    // Damage record 2 behind the log's back (same length, so offsets hold).
    flip_byte(&path, record2 + RECORD_HEADER);
    match wal.read(2) {
        Err(WalError::Corrupt {
            path: p,
            offset,
            reason,
        }) => {
            assert_eq!((p, offset), (path.clone(), record2));
            assert!(reason.contains("checksum mismatch"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        wal.read_range(1, 4),
        Err(WalError::Corrupt { .. })
    ));
    assert_eq!(wal.read(1).unwrap(), Some(payload(1)));
    assert_eq!(wal.read(3).unwrap(), Some(payload(3)));
}

#[test]
fn truncate_all_empties_the_log_including_index_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(tmp.path(), 160);
    let records: Vec<(u64, Vec<u8>)> = (0..10).map(|i| (i, fixed(i, "old"))).collect();
    wal.append(&records).unwrap();
    wal.truncate_all().unwrap();
    assert!(wal.is_empty());
    assert_eq!(wal.read(0).unwrap(), None);
    assert!(segment_files(tmp.path()).is_empty());
    wal.append(&[(0, fixed(0, "new"))]).unwrap();
    drop(wal);
    let (wal, _) = open(tmp.path(), 160);
    assert_eq!(wal.read(0).unwrap(), Some(fixed(0, "new")));
    assert_eq!(wal.last_index(), Some(0));
}
