//! The embedded SQLite store against the shared `MetaStore` contract.

use chuan_store::{MetaStore, SqliteMetaStore};
use std::sync::Arc;

async fn open() -> (Arc<dyn MetaStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap();
    (Arc::new(store), dir)
}

chuan_store::meta_store_contract!(open());
