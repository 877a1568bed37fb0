//! Who this node is: a Raft id generated on first start and kept in the
//! data directory, and the cluster it belongs to.
//!
//! The id is never derived from the name: a node whose data was wiped must
//! join as a new member, because a reused id with an empty log could vote
//! twice in one term and split the brain.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

const FILE: &str = "identity";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: u64,
    pub name: String,
    /// Set when this node initializes a cluster or is first contacted by one.
    pub cluster_id: Option<String>,
    /// The `--initial-cluster` the node was first started with; later starts
    /// ignore the flag and use this.
    pub initial_cluster: Vec<(String, String)>,
}

pub struct IdentityFile {
    path: PathBuf,
}

impl IdentityFile {
    pub fn new(data_dir: &Path) -> Self {
        IdentityFile {
            path: data_dir.join(FILE),
        }
    }

    /// Loads the identity, or creates one with a fresh random id.
    pub fn load_or_create(
        &self,
        name: &str,
        initial_cluster: &[(String, String)],
    ) -> anyhow::Result<(Identity, bool)> {
        if let Some(bytes) = muster_wal::read_checksummed_file(&self.path)
            .with_context(|| format!("reading {}", self.path.display()))?
        {
            let identity: Identity = serde_json::from_slice(&bytes)
                .with_context(|| format!("decoding {}", self.path.display()))?;
            anyhow::ensure!(
                identity.name == name,
                "data directory belongs to node {:?}, not {name:?}; use that name or an empty directory",
                identity.name
            );
            return Ok((identity, false));
        }
        let identity = Identity {
            node_id: new_node_id(),
            name: name.to_owned(),
            cluster_id: None,
            initial_cluster: initial_cluster.to_vec(),
        };
        self.save(&identity)?;
        Ok((identity, true))
    }

    pub fn save(&self, identity: &Identity) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(identity)?;
        muster_wal::write_file_atomically(&self.path, &bytes)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// The identity, shared by the parts of the node that read or adopt the
/// cluster id.
pub struct SharedIdentity {
    file: IdentityFile,
    current: std::sync::Mutex<Identity>,
}

impl SharedIdentity {
    pub fn new(file: IdentityFile, identity: Identity) -> Self {
        SharedIdentity {
            file,
            current: std::sync::Mutex::new(identity),
        }
    }

    pub fn get(&self) -> Identity {
        self.lock().clone()
    }

    pub fn node_id(&self) -> u64 {
        self.lock().node_id
    }

    pub fn cluster_id(&self) -> Option<String> {
        self.lock().cluster_id.clone()
    }

    /// Records the cluster this node belongs to, once. Joining another
    /// cluster later is refused: the data belongs to the first one.
    pub fn adopt_cluster(&self, cluster_id: &str) -> anyhow::Result<()> {
        let mut identity = self.lock();
        match &identity.cluster_id {
            Some(current) if current == cluster_id => Ok(()),
            Some(current) => anyhow::bail!(
                "node {} belongs to cluster {current}, not {cluster_id}",
                identity.name
            ),
            None => {
                let mut updated = identity.clone();
                updated.cluster_id = Some(cluster_id.to_owned());
                self.file.save(&updated)?;
                *identity = updated;
                Ok(())
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Identity> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn new_node_id() -> u64 {
    // Zero is kept out so that "no node" is never a valid id on the wire.
    loop {
        let id = rand::random::<u64>() >> 1;
        if id != 0 {
            return id;
        }
    }
}

pub fn new_cluster_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let file = IdentityFile::new(dir.path());
        let cluster = vec![("a".to_string(), "http://127.0.0.1:1".to_string())];
        let (first, created) = file.load_or_create("a", &cluster).unwrap();
        assert!(created);
        assert_ne!(first.node_id, 0);
        let (again, created) = file.load_or_create("a", &[]).unwrap();
        assert!(!created);
        assert_eq!(again, first);
        let err = file.load_or_create("b", &[]).unwrap_err();
        assert!(err.to_string().contains("belongs to node \"a\""), "{err}");
    }

    #[test]
    fn a_wiped_directory_gets_a_new_id() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let (a, _) = IdentityFile::new(one.path())
            .load_or_create("a", &[])
            .unwrap();
        let (b, _) = IdentityFile::new(two.path())
            .load_or_create("a", &[])
            .unwrap();
        assert_ne!(a.node_id, b.node_id);
    }
}
