//! The Raft log after a crash: a torn tail is cut away, damage in the
//! middle stops the node.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::{Api, Node, wait_until};

/// The WAL segment files, in index order.
fn segments(data_dir: &Path) -> Vec<PathBuf> {
    let dir = data_dir.join("raft").join("wal");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("wal-") && n.ends_with(".log"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no WAL segment in {}", dir.display());
    files
}

async fn ready(api: &Api, url: &str) {
    wait_until(
        Duration::from_secs(15),
        "the node to be ready",
        async || api.ready(url).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_recovered_and_mid_log_damage_is_fatal() {
    let mut node = Node::single("solo", &[]);
    let api = Api::new();
    let url = node.client_url();
    ready(&api, &url).await;
    let mut last = 0;
    for i in 0..100 {
        last = api
            .put_ok(&url, &format!("k/{i:03}"), &format!("v{i}"))
            .await
            .revision;
    }
    node.kill9();

    // A torn write at the end of the last segment.
    let files = segments(&node.data_dir());
    let tail = files.last().unwrap();
    let length = std::fs::metadata(tail).unwrap().len();
    let mut file = std::fs::OpenOptions::new().append(true).open(tail).unwrap();
    file.write_all(&[0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03])
        .unwrap();
    drop(file);
    assert_eq!(std::fs::metadata(tail).unwrap().len(), length + 7);

    node.start();
    ready(&api, &url).await;
    let kvs = api.list_all(&url, "k/").await.unwrap();
    assert_eq!(kvs.len(), 100);
    for (i, kv) in kvs.iter().enumerate() {
        assert_eq!(kv.key, format!("k/{i:03}"));
        assert_eq!(kv.value.as_bytes(), format!("v{i}").as_bytes());
    }
    assert_eq!(api.status(&url).await.unwrap().revision, last);
    let log = node.last_run_log();
    assert!(log.contains("torn tail"), "no torn tail reported:\n{log}");
    node.kill9();

    // One flipped byte inside the first record of a segment that has valid
    // records after it.
    let files = segments(&node.data_dir());
    let damaged = files
        .iter()
        .find(|path| std::fs::metadata(path).unwrap().len() > 1000)
        .expect("a segment with many records")
        .clone();
    let offset = 16 + 20;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&damaged)
        .unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    let mut byte = [0u8; 1];
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(&[byte[0] ^ 0xff]).unwrap();
    drop(file);

    node.start();
    let status = node
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the node must refuse to start on a corrupt log");
    assert!(!status.success(), "exited with {status}");
    let log = node.last_run_log();
    assert!(log.contains("corrupt"), "no 'corrupt' in the log:\n{log}");
    assert!(
        log.contains(&damaged.display().to_string()),
        "the log does not name {}:\n{log}",
        damaged.display()
    );
    // It did not serve anything.
    assert!(!api.ready(&url).await);
}
