//! The Raft log and vote on disk: entries in the checksummed, fsynced
//! segment log of `muster-wal`; the vote and the purge point in small
//! checksummed files replaced atomically.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use muster_wal::{Wal, WalOptions};
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, RaftTypeConfig};

use super::codec::{decode, encode};
use super::types::{Entry, LogId, TypeConfig, Vote};
use crate::metrics::Metrics;

const VOTE_FILE: &str = "vote";
const PURGED_FILE: &str = "purged";
const COMMITTED_FILE: &str = "committed";

#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    wal: RwLock<Wal>,
    vote: Mutex<Option<Vote>>,
    purged: Mutex<Option<LogId>>,
    metrics: Option<Arc<Metrics>>,
}

fn to_io(err: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(err)
}

impl LogStore {
    /// Opens the log in `dir`, recovering from a torn tail and refusing to
    /// start on corruption in the middle.
    pub fn open(dir: &Path, metrics: Option<Arc<Metrics>>) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (mut wal, recovery) =
            Wal::open(&dir.join("wal"), WalOptions::default()).map_err(to_io)?;
        if recovery.truncated_bytes > 0 {
            tracing::warn!(
                bytes = recovery.truncated_bytes,
                "dropped a torn tail from the Raft log (never acknowledged)"
            );
        }
        let vote = read_state::<Vote>(&dir.join(VOTE_FILE))?;
        let purged = read_state::<LogId>(&dir.join(PURGED_FILE))?;
        if let Some(purged) = &purged {
            wal.purge_through(purged.index).map_err(to_io)?;
        }
        Ok(LogStore {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                wal: RwLock::new(wal),
                vote: Mutex::new(vote),
                purged: Mutex::new(purged),
                metrics,
            }),
        })
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogId>> {
        let wal = self.inner.wal.read().map_err(|_| poisoned())?;
        let Some(last) = wal.last_index() else {
            return Ok(None);
        };
        let bytes = wal
            .read(last)
            .map_err(to_io)?
            .ok_or_else(|| io::Error::other(format!("log entry {last} is missing")))?;
        let entry: Entry = decode(&bytes)?;
        Ok(Some(entry.log_id))
    }
}

fn poisoned() -> io::Error {
    io::Error::other("the Raft log lock is poisoned after a panic")
}

fn read_state<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match muster_wal::read_checksummed_file(path).map_err(to_io)? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

fn write_state<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    muster_wal::write_file_atomically(path, &encode(value)?)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(&start) => start,
            Bound::Excluded(&start) => start + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&end) => end + 1,
            Bound::Excluded(&end) => end,
            Bound::Unbounded => u64::MAX,
        };
        let inner = self.inner.clone();
        let records = tokio::task::spawn_blocking(move || {
            let wal = inner.wal.read().map_err(|_| poisoned())?;
            let (Some(first), Some(last)) = (wal.first_index(), wal.last_index()) else {
                return Ok(Vec::new());
            };
            let start = start.max(first);
            let end = end.min(last + 1);
            if start >= end {
                return Ok(Vec::new());
            }
            wal.read_range(start, end).map_err(to_io)
        })
        .await
        .map_err(to_io)??;
        records.iter().map(|(_, bytes)| decode(bytes)).collect()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(*self.inner.vote.lock().map_err(|_| poisoned())?)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let purged = *self.inner.purged.lock().map_err(|_| poisoned())?;
        let last = self.last_entry_log_id()?.or(purged);
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let path = self.inner.dir.join(VOTE_FILE);
        let owned = *vote;
        tokio::task::spawn_blocking(move || write_state(&path, &owned))
            .await
            .map_err(to_io)??;
        *self.inner.vote.lock().map_err(|_| poisoned())? = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not fsynced: a lost or stale value only means re-applying less of
        // the log at start; openraft then waits for the cluster's commit.
        let Some(committed) = committed else {
            return Ok(());
        };
        let path = self.inner.dir.join(COMMITTED_FILE);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, encode(&committed)?)?;
        std::fs::rename(&tmp, &path)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        match std::fs::read(self.inner.dir.join(COMMITTED_FILE)) {
            Ok(bytes) => Ok(decode(&bytes).ok()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = <TypeConfig as RaftTypeConfig>::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut records = Vec::new();
        for entry in entries {
            records.push((entry.log_id.index, encode(&entry)?));
        }
        if records.is_empty() {
            callback.io_completed(Ok(()));
            return Ok(());
        }
        let inner = self.inner.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut wal = inner.wal.write().map_err(|_| poisoned())?;
            let borrowed: Vec<(u64, &[u8])> = records
                .iter()
                .map(|(index, bytes)| (*index, bytes.as_slice()))
                .collect();
            wal.append(&borrowed).map_err(to_io)?;
            if let (Some(metrics), Some(took)) = (&inner.metrics, wal.last_fsync_duration()) {
                metrics.wal_fsync_seconds.observe(took.as_secs_f64());
            }
            Ok::<_, io::Error>(())
        })
        .await
        .map_err(to_io)?;
        match result {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(err) => {
                callback.io_completed(Err(io::Error::new(err.kind(), err.to_string())));
                Err(err)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut wal = inner.wal.write().map_err(|_| poisoned())?;
            match last_log_id {
                Some(log_id) => wal.truncate_after(log_id.index).map_err(to_io),
                None => wal.truncate_all().map_err(to_io),
            }
        })
        .await
        .map_err(to_io)?
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let inner = self.inner.clone();
        let purged = log_id;
        tokio::task::spawn_blocking(move || {
            // The purge point is saved first: entries hidden but not yet
            // deleted must stay hidden after a restart.
            write_state(&inner.dir.join(PURGED_FILE), &purged)?;
            inner
                .wal
                .write()
                .map_err(|_| poisoned())?
                .purge_through(purged.index)
                .map_err(to_io)
        })
        .await
        .map_err(to_io)??;
        *self.inner.purged.lock().map_err(|_| poisoned())? = Some(log_id);
        Ok(())
    }
}
