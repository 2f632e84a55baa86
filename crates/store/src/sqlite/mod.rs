//! The embedded [`MetaStore`](crate::MetaStore): SQLite in WAL mode.
//!
//! Why SQLite rather than redb: the queries Chuan needs (ordered prefix listing with
//! start-after, listing upload sessions by key prefix, hash-index lookups joined with the
//! objects that hold a content, aggregate stats, reference-count checks across tables) are one
//! indexed SQL statement each, and SQLite's WAL gives concurrent readers with one writer.
//! Durability costs one WAL fsync per commit (`synchronous=FULL`); [`SqliteMetaStore`]
//! amortises it with group commit: a single writer thread drains every write that is waiting,
//! runs each in its own savepoint (so one failure does not undo its neighbours), commits once,
//! and only then answers them all.
//!
//! One file per concern of the contract: `identity.rs` (tenants, credentials, aliases,
//! settings, grants), `objects.rs` (buckets, objects, contents, hash index), `uploads.rs`,
//! `usage.rs` (usage and callbacks), `maintenance.rs` (GC and checks); `refs.rs` has the
//! reference-counting steps several of them share, `rows.rs` the row mappings, `schema.rs` the
//! schema and its migrations.

mod identity;
mod maintenance;
mod objects;
mod refs;
mod rows;
mod schema;
mod tree;
mod uploads;
mod usage;

use parking_lot::Mutex;
use rusqlite::{Connection, Transaction};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

use crate::meta::{StoreError, StoreResult};
use rows::backend;

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&mut Transaction<'_>) -> Reply + Send>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Most writes batched into one commit.
const MAX_BATCH: usize = 256;

/// Reader threads, each with its own connection. Reads run on these dedicated threads, not on
/// the runtime's shared blocking pool, so no amount of blob I/O (uploads, downloads) can delay
/// a metadata read: every request's lookups keep this capacity to themselves.
const READERS: usize = 8;

pub struct SqliteMetaStore {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    reads: Mutex<Option<mpsc::Sender<ReadJob>>>,
    readers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    Ok(conn)
}

impl SqliteMetaStore {
    /// Opens (creating or migrating) the database at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let mut conn = open_conn(path).map_err(backend)?;
        schema::migrate(&mut conn)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (read_tx, read_rx) = mpsc::channel::<ReadJob>();
        let read_rx = Arc::new(Mutex::new(read_rx));
        let mut readers = Vec::with_capacity(READERS);
        for i in 0..READERS {
            let conn = open_conn(path).map_err(backend)?;
            let rx = read_rx.clone();
            let h = std::thread::Builder::new()
                .name(format!("meta-reader-{i}"))
                .spawn(move || reader_loop(&conn, &rx))
                .map_err(backend)?;
            readers.push(h);
        }
        let writer = std::thread::Builder::new()
            .name("meta-writer".into())
            .spawn(move || writer_loop(&mut conn, rx))
            .map_err(backend)?;
        Ok(Self {
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            reads: Mutex::new(Some(read_tx)),
            readers: Mutex::new(readers),
        })
    }

    /// Stops the writer thread after it has committed what it holds, and the reader threads.
    pub fn close(&self) {
        self.jobs.lock().take();
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
        self.reads.lock().take();
        for h in self.readers.lock().drain(..) {
            let _ = h.join();
        }
    }

    /// Runs `f` in its own savepoint of the next group commit; answers once that commit is
    /// durable.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |txn: &mut Transaction<'_>| {
            let outcome = match txn.savepoint() {
                Ok(mut sp) => {
                    let r = f(&sp);
                    if r.is_ok() {
                        if let Err(e) = sp.commit() {
                            Err(backend(e))
                        } else {
                            r
                        }
                    } else {
                        sp.set_drop_behavior(rusqlite::DropBehavior::Rollback);
                        r
                    }
                }
                Err(e) => Err(backend(e)),
            };
            Box::new(move |committed: Result<(), String>| {
                let result = match committed {
                    Ok(()) => outcome,
                    Err(e) => Err(StoreError::Backend(e)),
                };
                let _ = tx.send(result);
            })
        });
        {
            let guard = self.jobs.lock();
            let sender = guard.as_ref().ok_or_else(|| StoreError::Backend("metadata store closed".into()))?;
            sender.send(job).map_err(|_| StoreError::Backend("metadata writer stopped".into()))?;
        }
        rx.await.map_err(|_| StoreError::Backend("metadata writer stopped".into()))?
    }

    /// Runs `f` on one of the reader threads' connections (a consistent WAL snapshot).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: ReadJob = Box::new(move |conn: &Connection| {
            // A panicking query answers an error and leaves the reader thread serving.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(StoreError::Backend("metadata read panicked".into())));
            let _ = tx.send(r);
        });
        {
            let guard = self.reads.lock();
            let sender = guard.as_ref().ok_or_else(|| StoreError::Backend("metadata store closed".into()))?;
            sender.send(job).map_err(|_| StoreError::Backend("metadata readers stopped".into()))?;
        }
        rx.await.map_err(|_| StoreError::Backend("metadata read failed".into()))?
    }
}

impl Drop for SqliteMetaStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn reader_loop(conn: &Connection, jobs: &Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
        // The lock is held only while waiting for the next job; whoever holds it takes it.
        let job = jobs.lock().recv();
        match job {
            Ok(job) => job(conn),
            Err(_) => return,
        }
    }
}

fn writer_loop(conn: &mut Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(batch.len());
        let result = (|| -> rusqlite::Result<()> {
            let mut txn = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for job in batch.drain(..) {
                replies.push(job(&mut txn));
            }
            txn.commit()
        })();
        let committed = result.map_err(|e| e.to_string());
        if let Err(e) = &committed {
            tracing::error!(error = %e, "metadata commit failed");
        }
        for reply in replies {
            reply(committed.clone());
        }
        // Jobs that never ran (the transaction could not begin) drop their reply senders:
        // their callers get "metadata writer stopped".
        drop(batch);
    }
}
