//! openraft's own storage test suite, run against our log and state machine.

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::types::TypeConfig;
use crate::metrics::Metrics;
use crate::store::Store;

struct DiskStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for DiskStoreBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = LogStore::open(&dir.path().join("raft"), None).expect("opening the log");
        let store = Arc::new(Store::new(Arc::new(Metrics::new())));
        let state_machine =
            StateMachine::new(store, &dir.path().join("snapshots")).expect("opening snapshots");
        Ok((dir, log, state_machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    Suite::test_all(DiskStoreBuilder)
        .await
        .expect("the storage suite passes");
}
