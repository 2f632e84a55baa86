//! [`SqlMetaStore`]: the [`MetaStore`](crate::MetaStore) over SQL, on SQLite (the embedded
//! default) or PostgreSQL (several nodes sharing one database).
//!
//! The store's logic — every statement, reference count, quota check and tree rule — is
//! written once, in the files per concern below, against [`db::Db`]: one transaction on either
//! engine. What differs between the engines is how a transaction runs:
//! - SQLite ([`sqlite`]): one writer thread with group commit (each write in a savepoint of a
//!   shared commit; a syncer thread fsyncs the WAL before the batch is answered); reads on WAL snapshots, point lookups on the calling thread
//!   ([`SqlMetaStore::lookup`]), everything else on reader threads.
//! - PostgreSQL ([`postgres`]): a pool of connections, each write one `SERIALIZABLE`
//!   transaction, retried from the start when the server reports a serialization conflict
//!   (so reference counts, quotas and single-use grants hold across nodes exactly as they do
//!   under SQLite's single writer), each read one `REPEATABLE READ` snapshot.
//!
//! One file per concern of the contract: `identity.rs` (tenants, credentials, aliases,
//! settings, grants), `objects.rs` (buckets, objects, contents, hash index), `tree.rs`,
//! `uploads.rs`, `usage.rs` (usage and callbacks), `maintenance.rs` (GC and checks);
//! `refs.rs` has the reference-counting steps several of them share, `rows.rs` the row
//! mappings, `sqlite_schema.rs` and `postgres_schema.rs` each engine's schema and migrations.

mod db;
mod identity;
mod maintenance;
mod objects;
mod postgres;
mod postgres_schema;
mod quotas;
mod refs;
mod rows;
mod sqlite;
mod sqlite_schema;
mod tree;
mod uploads;
mod usage;

use std::path::Path;

use crate::meta::StoreResult;
use db::{Db, Dialect};

enum Engine {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

/// The SQL [`MetaStore`](crate::MetaStore): open it with [`SqlMetaStore::open_sqlite`] or
/// [`SqlMetaStore::connect_postgres`].
pub struct SqlMetaStore {
    engine: Engine,
    /// The embedded store's token buckets (see [`SqlMetaStore::local_tokens`]).
    tokens: crate::rate::TokenBuckets,
}

impl SqlMetaStore {
    /// Opens (creating or migrating) the SQLite database at `path`.
    pub fn open_sqlite(path: &Path) -> StoreResult<Self> {
        Ok(Self { engine: Engine::Sqlite(sqlite::Sqlite::open(path)?), tokens: Default::default() })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@host:port/db`;
    /// libpq's key=value form works here too, though `chuan --meta` takes URLs only),
    /// creating or migrating its schema. Fails with
    /// [`StoreError::Backend`](crate::StoreError::Backend) naming the server when it cannot be
    /// reached or refuses the login.
    pub fn connect_postgres(url: &str) -> StoreResult<Self> {
        Ok(Self { engine: Engine::Postgres(postgres::Postgres::connect(url)?), tokens: Default::default() })
    }

    /// Waits for what the store holds to be committed and stops its threads.
    pub fn close(&self) {
        match &self.engine {
            Engine::Sqlite(s) => s.close(),
            Engine::Postgres(p) => p.close(),
        }
    }

    /// The PostgreSQL engine, when that is the one.
    pub(crate) fn postgres(&self) -> Option<&postgres::Postgres> {
        match &self.engine {
            Engine::Sqlite(_) => None,
            Engine::Postgres(p) => Some(p),
        }
    }

    /// Which engine's SQL statements built outside [`Self::read`]/[`Self::write`] are for.
    pub(crate) fn dialect(&self) -> Dialect {
        match &self.engine {
            Engine::Sqlite(_) => Dialect::Sqlite,
            Engine::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs `f` as one write transaction; answers once it is durable. `f` may run more than
    /// once (PostgreSQL retries a transaction that lost a serialization conflict), each time
    /// from the start, so it must not have effects outside the transaction.
    /// Token buckets kept in memory, for the embedded store only: one process serves a data
    /// directory, so its memory is where every user of the store meets. (`None` for
    /// PostgreSQL, which several nodes share: its buckets are rows.)
    pub(crate) fn local_tokens(&self) -> Option<&crate::rate::TokenBuckets> {
        match self.engine {
            Engine::Sqlite(_) => Some(&self.tokens),
            Engine::Postgres(_) => None,
        }
    }

    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl Fn(&Db<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        match &self.engine {
            Engine::Sqlite(s) => s.write(f).await,
            Engine::Postgres(p) => p.write(f).await,
        }
    }

    /// Runs `f`, a point lookup (rows found by key, never a scan), on one consistent
    /// snapshot: SQLite runs it on the calling thread (see `Sqlite::lookup`; `f` may run
    /// twice there), PostgreSQL as any read.
    pub(crate) async fn lookup<T: Send + 'static>(
        &self,
        f: impl Fn(&Db<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        match &self.engine {
            Engine::Sqlite(s) => s.lookup(f).await,
            Engine::Postgres(p) => p.read(f).await,
        }
    }

    /// Runs `f` on one consistent snapshot.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        match &self.engine {
            Engine::Sqlite(s) => s.read(f).await,
            Engine::Postgres(p) => p.read(f).await,
        }
    }
}

impl Drop for SqlMetaStore {
    fn drop(&mut self) {
        self.close();
    }
}
