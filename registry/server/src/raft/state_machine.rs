//! The Raft state machine: the in-memory keyspace of [`Store`], made
//! durable by snapshots on disk plus the Raft log after them.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use muster_store::{CommandResult, Keyspace};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::types::{LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};
use crate::store::Store;

pub struct StateMachine {
    store: Arc<Store>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    snapshots: SnapshotDir,
}

impl StateMachine {
    pub fn new(store: Arc<Store>, snapshot_dir: &Path) -> io::Result<Self> {
        Ok(StateMachine {
            store,
            last_applied: None,
            last_membership: StoredMembership::default(),
            snapshots: SnapshotDir::open(snapshot_dir)?,
        })
    }
}

/// A snapshot as stored on disk: the metadata and the encoded keyspace.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    keyspace: Vec<u8>,
}

#[derive(Clone)]
struct SnapshotDir {
    dir: PathBuf,
}

impl SnapshotDir {
    fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(SnapshotDir {
            dir: dir.to_owned(),
        })
    }

    fn path_for(&self, meta: &SnapshotMeta) -> PathBuf {
        let index = meta.last_log_id.as_ref().map_or(0, |id| id.index);
        self.dir.join(format!("snapshot-{index:020}.bin"))
    }

    /// Snapshot files, newest first.
    fn list(&self) -> io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("snapshot-") && n.ends_with(".bin"))
            })
            .collect();
        files.sort();
        files.reverse();
        Ok(files)
    }

    /// Writes a snapshot and removes every older one.
    fn save(&self, meta: &SnapshotMeta, keyspace: &[u8]) -> io::Result<()> {
        let path = self.path_for(meta);
        let file = SnapshotFile {
            meta: meta.clone(),
            keyspace: keyspace.to_vec(),
        };
        muster_wal::write_file_atomically(&path, &encode(&file)?)?;
        for old in self.list()? {
            if old != path {
                std::fs::remove_file(&old)?;
            }
        }
        Ok(())
    }

    fn load_latest(&self) -> io::Result<Option<SnapshotFile>> {
        let Some(path) = self.list()?.into_iter().next() else {
            return Ok(None);
        };
        let bytes = muster_wal::read_checksummed_file(&path)
            .map_err(io::Error::other)?
            .ok_or_else(|| io::Error::other(format!("{} vanished", path.display())))?;
        Ok(Some(decode(&bytes)?))
    }
}

pub struct SnapshotBuilder {
    keyspace: Keyspace,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    snapshots: SnapshotDir,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
        };
        let keyspace = std::mem::take(&mut self.keyspace);
        let snapshots = self.snapshots.clone();
        let saved_meta = meta.clone();
        let data = tokio::task::spawn_blocking(move || {
            let data = keyspace.to_snapshot();
            snapshots.save(&saved_meta, &data)?;
            Ok::<_, io::Error>(data)
        })
        .await
        .map_err(io::Error::other)??;
        tracing::info!(
            index = meta.last_log_id.as_ref().map(|id| id.index),
            bytes = data.len(),
            "snapshot taken"
        );
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            self.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => CommandResult::Empty,
                EntryPayload::Normal(command) => self.store.apply(&command),
                EntryPayload::Membership(membership) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    CommandResult::Empty
                }
            };
            if let Some(responder) = responder {
                responder.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            keyspace: self.store.read(Keyspace::clone),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let keyspace = Keyspace::from_snapshot(&snapshot).map_err(io::Error::other)?;
        let snapshots = self.snapshots.clone();
        let saved_meta = meta.clone();
        tokio::task::spawn_blocking(move || snapshots.save(&saved_meta, &snapshot))
            .await
            .map_err(io::Error::other)??;
        self.store.replace(keyspace);
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        tracing::info!(
            index = meta.last_log_id.as_ref().map(|id| id.index),
            "snapshot installed"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let snapshots = self.snapshots.clone();
        let file = tokio::task::spawn_blocking(move || snapshots.load_latest())
            .await
            .map_err(io::Error::other)??;
        Ok(file.map(|file| Snapshot {
            meta: file.meta,
            snapshot: file.keyspace,
        }))
    }
}
