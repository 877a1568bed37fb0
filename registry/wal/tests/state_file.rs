//! Tests of the atomically replaced checksummed state files.

use std::fs;

use muster_wal::{WalError, read_checksummed_file, write_file_atomically};

#[test]
fn round_trip_and_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("vote");
    write_file_atomically(&path, b"term=3 voted_for=7").unwrap();
    assert_eq!(
        read_checksummed_file(&path).unwrap().as_deref(),
        Some(&b"term=3 voted_for=7"[..])
    );
    write_file_atomically(&path, b"term=4").unwrap();
    assert_eq!(
        read_checksummed_file(&path).unwrap().as_deref(),
        Some(&b"term=4"[..])
    );
    write_file_atomically(&path, b"").unwrap();
    assert_eq!(read_checksummed_file(&path).unwrap(), Some(Vec::new()));
    assert!(
        !tmp.path().join("vote.tmp").exists(),
        "temp file renamed away"
    );
}

#[test]
fn missing_file_is_none() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(
        read_checksummed_file(&tmp.path().join("absent")).unwrap(),
        None
    );
}

#[test]
fn stale_temp_file_is_ignored_and_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("identity");
    write_file_atomically(&path, b"old").unwrap();
    fs::write(tmp.path().join("identity.tmp"), b"half-written garbage").unwrap();
    assert_eq!(
        read_checksummed_file(&path).unwrap().as_deref(),
        Some(&b"old"[..])
    );
    write_file_atomically(&path, b"new").unwrap();
    assert_eq!(
        read_checksummed_file(&path).unwrap().as_deref(),
        Some(&b"new"[..])
    );
}

#[test]
fn corruption_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("vote");
    write_file_atomically(&path, b"term=3 voted_for=7").unwrap();
    let good = fs::read(&path).unwrap();

    // Every single-byte flip is caught.
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        fs::write(&path, &bad).unwrap();
        match read_checksummed_file(&path) {
            Err(WalError::Corrupt { path: p, .. }) => assert_eq!(p, path),
            other => panic!("flip at {at}: expected Corrupt, got {other:?}"),
        }
    }
    // Truncation and extension are caught.
    for len in 0..good.len() {
        fs::write(&path, &good[..len]).unwrap();
        assert!(
            matches!(read_checksummed_file(&path), Err(WalError::Corrupt { .. })),
            "truncated to {len}"
        );
    }
    let mut longer = good.clone();
    longer.push(0);
    fs::write(&path, &longer).unwrap();
    let err = read_checksummed_file(&path).unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}
