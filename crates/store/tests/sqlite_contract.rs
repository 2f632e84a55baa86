//! The embedded SQLite store against the shared `MetaStore` contract.

use chuan_store::{MetaStore, SqlMetaStore};
use std::sync::Arc;

async fn open() -> (Arc<dyn MetaStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlMetaStore::open_sqlite(&dir.path().join("meta.db")).unwrap();
    (Arc::new(store), dir)
}

chuan_store::meta_store_contract!(open());
