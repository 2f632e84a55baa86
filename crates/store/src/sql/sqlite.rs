//! The embedded engine: SQLite in WAL mode.
//!
//! Why SQLite rather than redb: the queries Chuan needs (ordered prefix listing with
//! start-after, listing upload sessions by key prefix, hash-index lookups joined with the
//! objects that hold a content, aggregate stats, reference-count checks across tables) are one
//! indexed SQL statement each, and SQLite's WAL gives concurrent readers with one writer.
//! Durability costs a WAL fsync before any write is answered; [`Sqlite`] amortises it with group commit: a
//! single writer thread drains every write that is waiting, runs each in its own savepoint (so
//! one failure does not undo its neighbours) and commits once; a second thread fsyncs the WAL
//! and only then answers them all, while the writer goes on with the next batch
//! ([`writer_loop`], [`sync_loop`]).

use parking_lot::Mutex;
use rusqlite::{Connection, Transaction};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, OnceLock};
use tokio::sync::oneshot;

use super::db::Db;
use super::rows::backend;
use super::sqlite_schema;
use crate::meta::{StoreError, StoreResult};

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&mut Transaction<'_>) -> Reply + Send>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;
/// A batch the writer has committed but not yet made durable: its replies, which
/// [`sync_loop`] sends once the WAL is fsynced.
type Committed = Vec<Reply>;

/// Most writes batched into one commit.
const MAX_BATCH: usize = 256;

/// Reader threads, each with its own connection, for the reads that are not point lookups
/// (listings, scans, reports; point lookups run on the calling thread: [`Sqlite::lookup`]).
/// Reads run on these dedicated threads, not on the runtime's shared blocking pool, so no
/// amount of blob I/O (uploads, downloads) can delay a metadata read.
///
/// Measured and rejected (2026-12-01, 4 KiB S3 GETs at 16 connections on 2 cores, 3
/// interleaved runs each, op/s):
/// - primary-key lookups on the runtime's own threads with pooled connections, to save the
///   hand-off: 19,300–20,100 against 20,500–21,400 through these threads (but adopted
///   2026-12-02, once the mutexes below were gone: see [`Sqlite::lookup`]);
/// - SQLite's mmap for the readers: +8–15 %, but each connection maps the file on its own and
///   the touched pages count in the process's RSS (peak 0.5–1.1 GB against 52 MB);
/// - 2 readers, or 2 for key lookups beside 4 for scans: within the noise of 8 (17,700–24,800
///   against 20,600–23,800 in the same runs; again 2026-12-02 with every body different: 2, 4
///   and 8 readers 14,300–17,500, 15,400–17,000, 16,200–18,300);
/// - a condition-variable job queue in place of the channel, whose idle receivers spin and
///   `sched_yield` before they sleep (the yields were 14 % of perf's samples): slower, 10,700–12,400
///   against 13,000–15,900 in the same runs (2026-12-02) — a reader that yields usually finds the
///   next job without a sleep and a wake-up.
///
/// Adopted (2026-12-02): the bundled SQLite built without `SQLITE_ENABLE_MEMORY_MANAGEMENT` and
/// with `SQLITE_DEFAULT_MEMSTATUS=0` (`.cargo/config.toml`). With them the readers' page
/// caches shared one mutex and every SQLite allocation took another; perf showed the readers
/// waiting on each other in `pcache1Fetch`, `pcache1Alloc` and `pcache1Unpin`. 4 KiB GETs of
/// distinct objects (`bench/inline.sh`'s bodies), 16 connections, 9 interleaved runs each:
/// median 12,050 op/s before (11,200–15,000), 14,050 after (12,800–17,600): +17 %.
const READERS: usize = 8;

/// Connections for point lookups on the calling thread ([`Sqlite::lookup`]): twice the
/// cores (at most 16), so the runtime's workers (one per core by default) each find one of
/// their own idle; a lookup that finds none idle goes to the readers.
fn lookup_connections() -> usize {
    2 * std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8)
}

/// How long a lookup connection waits for a lock another connection holds (`SQLITE_BUSY`: a
/// WAL reader meets it only while another process recovers or reconfigures the database).
/// Short, because it waits on a runtime thread: past it, the lookup is run again on a reader
/// thread, whose connection waits the full `busy_timeout`.
const LOOKUP_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(20);

thread_local! {
    /// Which of a store's lookup connections this thread tries first: threads are numbered as
    /// they first look something up (in a server, the runtime's workers and the thread that
    /// starts it), so each keeps to one connection and its page cache.
    static LOOKUP_SLOT: usize = {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    };
}

/// The SQLite engine: one writer thread (group commit), a WAL syncer thread, a checkpointer, [`READERS`] reader
/// threads, and [`lookup_connections`] connections for point lookups on the calling thread.
pub(crate) struct Sqlite {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// Joins the writer thread, which joins the WAL syncer once every commit is answered.
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Why writes are refused, once a WAL fsync has failed ([`sync_loop`]).
    sync_failed: Arc<OnceLock<String>>,
    /// Stops (by being dropped) and joins the checkpointer thread.
    checkpointer: Mutex<Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    reads: Mutex<Option<crossbeam_channel::Sender<ReadJob>>>,
    readers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Connections for [`Sqlite::lookup`], which runs on the calling thread; each thread
    /// starts with its own one of them ([`LOOKUP_SLOT`]).
    lookups: Vec<Mutex<Option<Connection>>>,
}

fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // SQLite's default page size (4 KiB) is kept. Smaller pages would write fewer bytes per
    // B-tree insert at a random place (a 4 KiB PUT makes about ten), but measured on new
    // databases (2026-12-02, `bench/ab.sh`, 4 interleaved runs, medians, op/s) they were no
    // faster for 4 KiB PUTs and slower for GETs: 1 KiB pages 2,747 PUT / 14,823 GET, 2 KiB
    // 3,108 / 14,701, 4 KiB 2,894 / 16,506.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    // Each write runs in a savepoint of the group commit; its statement journal (the pages a
    // rollback of that savepoint needs) is only ever read before the commit, so it lives in
    // memory rather than in a temporary file written page by page (measured: a fifth of the
    // writer thread's time went to those writes during a burst of small PUTs).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Room for every statement the store runs, so none is compiled twice.
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// A connection that runs no writes of the store's (a reader thread's, a lookup's, the
/// checkpointer's, which only copies committed WAL pages), with a page cache of
/// [`READER_CACHE_KIB`].
fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = open_conn(path)?;
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
    Ok(conn)
}

/// Pages each such connection caches (negative: KiB). There are [`READERS`], two lookup
/// connections per core (up to 16) and the checkpointer's (13 on two cores), and each one's
/// cache holds a copy of pages the kernel's page cache holds anyway; 1 MiB keeps the interior
/// pages of the indexes a read descends (the leaf a random read lands on is rarely hit again). Measured with `REPS=3
/// SMALL_SECS=10 bench/ab.sh` (2026-12-04, medians): SQLite's default (2 MiB) 5,616 PUT/s,
/// 39,672 GET/s, server peak RSS 46.8 MiB; 1 MiB 5,780, 40,347, 38.3 MiB.
const READER_CACHE_KIB: i64 = 1 << 10;

/// Pages the writer's connection caches (negative: KiB). Its B-tree inserts land on random
/// pages of the hash index and the blob tables; SQLite's default (2 MiB) sends many of them
/// back to the file.
const WRITER_CACHE_KIB: i64 = 4 << 10;
/// WAL pages after which the writer checkpoints by itself, as a backstop: normally the
/// checkpointer thread ([`CHECKPOINT_EVERY`]) has done it, off the writer's path.
///
/// Measured with `bench/inline.sh`'s unique 4 KiB PUTs at 16 connections (op/s, p99): the
/// writer checkpointing every 1,000 pages (SQLite's default) 3,143, 14 ms; every 16,000 pages
/// 4,325, 49 ms; with the checkpointer every 100 ms 4,258, 38 ms (every 50 ms 4,190, 34 ms).
/// Larger, rarer checkpoints copy each hot page once instead of many times; the price is a
/// longer tail while one runs.
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 16_000;
/// How often the checkpointer thread copies committed WAL pages into the database (a passive
/// checkpoint: it never blocks the writer or a reader).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Sqlite {
    /// Opens (creating or migrating) the database at `path`.
    pub(crate) fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, OnSyncFailure::Abort)
    }

    fn open_with(path: &Path, on_sync_failure: OnSyncFailure) -> StoreResult<Self> {
        let mut conn = open_conn(path).map_err(backend)?;
        sqlite_schema::migrate(&mut conn)?;
        let (tx, rx) = mpsc::channel::<Job>();
        // Many consumers, one wake-up per job (a mutex around one receiver woke a second
        // reader for every job: measured, a tenth of a small GET's CPU went to switching).
        let (read_tx, read_rx) = crossbeam_channel::unbounded::<ReadJob>();
        let mut readers = Vec::with_capacity(READERS);
        for i in 0..READERS {
            let conn = open_reader(path).map_err(backend)?;
            let rx = read_rx.clone();
            let h = std::thread::Builder::new()
                .name(format!("meta-reader-{i}"))
                .spawn(move || reader_loop(&conn, &rx))
                .map_err(backend)?;
            readers.push(h);
        }
        let lookups = (0..lookup_connections())
            .map(|_| {
                let c = open_reader(path)?;
                c.busy_timeout(LOOKUP_BUSY_TIMEOUT)?;
                Ok(Mutex::new(Some(c)))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB).map_err(backend)?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES).map_err(backend)?;
        // The writer's commits write the WAL without syncing it; `sync_loop` syncs it before
        // answering them. Checkpoints still sync the WAL before they copy it and the database
        // after (SQLite does so at NORMAL), whichever connection runs them.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(backend)?;
        let mut wal = WalFile::of(conn.path().filter(|p| !p.is_empty()).map_or_else(|| path.to_owned(), PathBuf::from));
        // Opened (and its directory synced) now, so a write-back error from here on is
        // reported to this handle; a disk that cannot sync is found at start.
        wal.sync().map_err(|e| backend(format!("cannot sync the metadata WAL {}: {e}", wal.path.display())))?;
        let sync_failed = Arc::new(OnceLock::new());
        let (committed_tx, committed_rx) = mpsc::channel::<Committed>();
        let failed = sync_failed.clone();
        let syncer = std::thread::Builder::new()
            .name("meta-sync".into())
            .spawn(move || sync_loop(wal, &committed_rx, &failed, on_sync_failure))
            .map_err(backend)?;
        let failed = sync_failed.clone();
        let writer = std::thread::Builder::new()
            .name("meta-writer".into())
            .spawn(move || {
                writer_loop(&mut conn, &rx, &committed_tx, &failed);
                drop(committed_tx);
                let _ = syncer.join();
            })
            .map_err(backend)?;
        let (stop_checkpoints, stopped) = mpsc::channel::<()>();
        let checkpoint_conn = open_reader(path).map_err(backend)?;
        let checkpointer = std::thread::Builder::new()
            .name("meta-checkpoint".into())
            .spawn({
                let failed = sync_failed.clone();
                move || checkpoint_loop(&checkpoint_conn, &stopped, &failed)
            })
            .map_err(backend)?;
        Ok(Self {
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            sync_failed,
            checkpointer: Mutex::new(Some((stop_checkpoints, checkpointer))),
            reads: Mutex::new(Some(read_tx)),
            readers: Mutex::new(readers),
            lookups,
        })
    }

    /// Stops the writer thread after it has committed what it holds, the checkpointer and the
    /// reader threads, and closes the lookup connections.
    pub(crate) fn close(&self) {
        self.jobs.lock().take();
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
        if let Some((stop, h)) = self.checkpointer.lock().take() {
            drop(stop);
            let _ = h.join();
        }
        self.reads.lock().take();
        for h in self.readers.lock().drain(..) {
            let _ = h.join();
        }
        for conn in &self.lookups {
            conn.lock().take();
        }
    }

    /// Runs `f` in its own savepoint of the next group commit; answers once that commit is
    /// durable (its WAL frames fsynced). Refuses every write once a WAL fsync has failed.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |txn: &mut Transaction<'_>| {
            let outcome = match txn.savepoint() {
                Ok(mut sp) => {
                    let r = f(&Db::sqlite(&sp));
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
        let stopped = || match self.sync_failed.get() {
            Some(why) => StoreError::Backend(why.clone()),
            None => StoreError::Backend("metadata writer stopped".into()),
        };
        {
            let guard = self.jobs.lock();
            let sender = guard.as_ref().ok_or_else(|| StoreError::Backend("metadata store closed".into()))?;
            sender.send(job).map_err(|_| stopped())?;
        }
        rx.await.map_err(|_| stopped())?
    }

    /// Runs `f`, a point lookup (a handful of rows found by key, never a scan; at most
    /// `CONTENT_BYTES_MAX` of inline bytes), on the calling thread with an idle connection of
    /// [`lookup_connections`] (this thread's own, if idle), or on a reader thread when none is
    /// idle. Sees one consistent WAL snapshot, as [`Sqlite::read`] does. A lookup that fails on
    /// the calling thread (a lock held elsewhere past [`LOOKUP_BUSY_TIMEOUT`], any error) is run
    /// once more on a reader thread, whose answer stands.
    ///
    /// Why on the calling thread, though it blocks a runtime worker for the lookup: handing a
    /// lookup to a reader thread and the answer back costs two thread switches, and the rows a
    /// reader allocated were freed on the runtime's threads, which made glibc's allocator lock
    /// its arenas across threads (perf: a third of a GET's samples were in the scheduler).
    /// Measured (2026-12-02, `bench/ab.sh`, 4 KiB S3 GETs of distinct objects at 16
    /// connections on 2 cores, 4 interleaved runs each, op/s): through the readers 14,610
    /// (11,836–17,645), here 20,392 (10,462–22,591), with less of the server's CPU (1.46 cores
    /// against 1.58); a shared stack of idle connections 18,454 (17,431–21,841), a connection
    /// per thread held in thread-local storage 17,765 (13,820–20,552). The price: a lookup
    /// whose pages are not in memory waits for the disk on a runtime worker, and other tasks
    /// wait with it unless another worker is free to take them. Each lookup spends the task's
    /// cooperative budget (`tokio::task::coop`), so a loop of many lookups (a listing page's
    /// contents) still yields to other tasks.
    pub(crate) async fn lookup<T: Send + 'static>(
        &self,
        f: impl Fn(&Db<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        tokio::task::coop::consume_budget().await;
        let n = self.lookups.len();
        let first = LOOKUP_SLOT.with(|s| *s);
        for i in 0..n {
            if let Some(guard) = self.lookups[(first + i) % n].try_lock() {
                if let Some(conn) = guard.as_ref() {
                    match run_read(conn, &f) {
                        Ok(found) => return Ok(found),
                        Err(e) => {
                            tracing::debug!(error = %e, "a metadata lookup failed on the calling thread: asking a reader");
                            break;
                        }
                    }
                }
            }
        }
        self.read(f).await
    }

    /// Runs `f` on one of the reader threads' connections (a consistent WAL snapshot).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: ReadJob = Box::new(move |conn: &Connection| {
            let _ = tx.send(run_read(conn, f));
        });
        {
            let guard = self.reads.lock();
            let sender = guard.as_ref().ok_or_else(|| StoreError::Backend("metadata store closed".into()))?;
            sender.send(job).map_err(|_| StoreError::Backend("metadata readers stopped".into()))?;
        }
        rx.await.map_err(|_| StoreError::Backend("metadata read failed".into()))?
    }
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        self.close();
    }
}

/// Runs a read on `conn`. A panicking query answers an error and leaves the connection
/// serving. A read's snapshot ends with its guard; should that fail, the connection would keep
/// serving one old view and hold back every checkpoint, so it is ended here instead.
fn run_read<T>(conn: &Connection, f: impl FnOnce(&Db<'_>) -> StoreResult<T>) -> StoreResult<T> {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&Db::sqlite(conn))))
        .unwrap_or_else(|_| Err(StoreError::Backend("metadata read panicked".into())));
    if !conn.is_autocommit() {
        tracing::error!("a metadata read left its transaction open: rolled back");
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "rolling back a metadata read failed");
        }
    }
    r
}

fn reader_loop(conn: &Connection, jobs: &crossbeam_channel::Receiver<ReadJob>) {
    while let Ok(job) = jobs.recv() {
        job(conn);
    }
}

/// Passive checkpoints every [`CHECKPOINT_EVERY`] until the store closes, so the writer
/// rarely has to copy WAL pages into the database itself.
/// None once a WAL fsync has failed: the frames it could not vouch for must not reach the
/// database file.
fn checkpoint_loop(conn: &Connection, stop: &mpsc::Receiver<()>, sync_failed: &OnceLock<String>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if sync_failed.get().is_some() {
            return;
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "metadata checkpoint failed (the writer will checkpoint itself)");
        }
    }
}

/// Group commit: takes every write waiting (up to [`MAX_BATCH`]), runs each in its own
/// savepoint of one transaction, commits it (the WAL written, not synced) and hands the
/// replies to [`sync_loop`]; then takes the next batch while that fsync runs. A batch whose
/// commit fails is answered at once. Stops when the store closes, or after the batch in which
/// it finds that a WAL fsync has failed.
///
/// Why the fsync is not the commit's own (`synchronous=FULL`): the writer thread is what
/// limits small PUTs, and with FULL it waited out every fsync before it could run the next
/// batch. Measured (2026-12-02, 4 KiB S3 PUTs at 16 connections on 2 cores, interleaved runs,
/// medians, op/s): every body different (`bench/ab.sh`, 4 runs) 3,001 (2,767–3,760) with FULL,
/// 3,792 (3,479–4,078) so, ahead in every round; one body under every key (the peers
/// harness's, 3 runs) 4,819 → 4,974, within the noise — there the writer's own work is the
/// limit ([`super::refs::content_for`]).
///
/// What a reader may see: a batch is visible to reads on this node from its commit, before
/// its writers are answered: for the rest of the fsync running when it commits and then its
/// own (each 0.2–1 ms here, median 0.5: `strace -T` of the syncer during a burst of PUTs). A process crash
/// (`kill -9`) loses none of it (the kernel holds the written WAL); a power failure in that
/// window can take back writes that a read had seen but whose writers were never answered —
/// never an answered one. Anything a write leads to (its answer, a callback, GC deleting
/// bytes) happens only after it is durable, and a batch is durable only when every batch
/// before it is (WAL frames are checksummed in a chain: recovery stops at the first gap).
fn writer_loop(
    conn: &mut Connection,
    rx: &mpsc::Receiver<Job>,
    committed: &mpsc::Sender<Committed>,
    sync_failed: &OnceLock<String>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(batch.len());
        let result = (|| -> Result<(), String> {
            let mut txn =
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| e.to_string())?;
            for job in batch.drain(..) {
                replies.push(job(&mut txn));
            }
            if let Some(why) = sync_failed.get() {
                // Rolled back (the transaction is dropped): nothing more is committed.
                return Err(why.clone());
            }
            txn.commit().map_err(|e| e.to_string())
        })();
        match result {
            Ok(()) => {
                if committed.send(replies).is_err() {
                    // The syncer is gone (it panicked): nothing can be made durable.
                    tracing::error!("metadata WAL syncer stopped: refusing writes");
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "metadata commit failed");
                for reply in replies {
                    reply(Err(e.clone()));
                }
            }
        }
        // Jobs that never ran (the transaction could not begin) drop their reply senders:
        // their callers get "metadata writer stopped".
        drop(batch);
        if sync_failed.get().is_some() {
            return;
        }
    }
}

/// The database's WAL file (`<database>-wal`), which [`sync_loop`] fsyncs. SQLite keeps it
/// (the same file, reused from its start after checkpoints) while any connection is open; it
/// is reopened, and its directory synced, should it ever be another file.
struct WalFile {
    path: PathBuf,
    /// The open file and its (device, inode).
    open: Option<(std::fs::File, (u64, u64))>,
}

impl WalFile {
    fn of(database: PathBuf) -> Self {
        let mut path = database.into_os_string();
        path.push("-wal");
        Self { path: path.into(), open: None }
    }

    /// Makes everything written to the WAL so far durable (`fdatasync`).
    fn sync(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&self.path)?;
        let current = (meta.dev(), meta.ino());
        if self.open.as_ref().map(|(_, id)| *id) != Some(current) {
            let file = std::fs::File::open(&self.path)?;
            let meta = file.metadata()?;
            let ino = (meta.dev(), meta.ino());
            // The file's name must survive a power failure as well as its bytes.
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            self.open = Some((file, ino));
        }
        let (file, _) = self.open.as_ref().expect("opened above");
        file.sync_data()
    }
}

/// What [`sync_loop`] does after a WAL fsync fails, once it has refused the batch.
#[derive(Clone, Copy, Debug)]
enum OnSyncFailure {
    /// Ends the process (the server; `kill -9` semantics), as PostgreSQL does.
    Abort,
    /// Goes on refusing every write (unit tests, which cannot end their process).
    #[cfg_attr(not(test), allow(dead_code))]
    Refuse,
}

/// Makes committed batches durable and answers them: one WAL fsync for every batch committed
/// by the time it starts (each was written before it), then their replies, in commit order.
///
/// A failed fsync refuses that batch and stops every later commit and checkpoint, then ends
/// the process ([`OnSyncFailure::Abort`]). Linux reports a failed write-back once per open
/// file and marks the pages clean, so no later fsync can vouch for those frames, and a
/// checkpoint would copy them into the database file; ended, the process leaves the WAL on
/// disk to SQLite's recovery at the next start, which keeps it up to the last commit whose
/// frames are intact (they are checksummed in a chain). PostgreSQL stops for the same reason.
///
/// One syncer, not two: a second thread with its own WAL handle, so that a batch committed
/// during an fsync need not wait for it to end (an fsync started after a commit vouches for
/// it and every earlier one; answers kept in commit order), was no faster (2026-12-02, 4 KiB
/// S3 PUTs of one body under every key, 16 connections, 3 interleaved runs, op/s: one syncer
/// 5,893, 5,975, 5,962; two 5,485, 5,560, 5,982) — two fdatasyncs of one file do not overlap
/// on this disk. Where a PUT's time in the store went then (timestamps per job and batch,
/// 7,500 writes/s): 536 µs queued behind the running batch, 464 µs per batch of 5.3 writes,
/// 151 µs from commit to the start of its fsync, 343 µs fsync, 168 µs from the answer to the
/// request's task running again: 1.7 ms of the request's 2.3.
fn sync_loop(
    mut wal: WalFile,
    committed: &mpsc::Receiver<Committed>,
    sync_failed: &OnceLock<String>,
    on_failure: OnSyncFailure,
) {
    while let Ok(first) = committed.recv() {
        let mut batches = vec![first];
        while let Ok(more) = committed.try_recv() {
            batches.push(more);
        }
        let mut failed_now = false;
        if sync_failed.get().is_none() {
            if let Err(e) = wal.sync() {
                let why = format!(
                    "the metadata WAL ({}) could not be made durable: {e}; chuan stops so that SQLite \
                     recovers the database at the next start (check the disk)",
                    wal.path.display()
                );
                tracing::error!("{why}");
                let _ = sync_failed.set(why);
                failed_now = true;
            }
        }
        let outcome = match sync_failed.get() {
            None => Ok(()),
            Some(why) => Err(why.clone()),
        };
        for reply in batches.into_iter().flatten() {
            reply(outcome.clone());
        }
        if failed_now {
            if let OnSyncFailure::Abort = on_failure {
                std::process::abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(db: &Db<'_>) -> StoreResult<i64> {
        db.query_row("SELECT count(*) FROM settings", &[], |r| r.get(0)).map_err(backend)
    }

    /// A WAL that cannot be fsynced (here: gone from its place) fails the write that waited on
    /// it, and every write after it, with an error that says so; reads go on.
    #[test]
    fn a_failed_wal_sync_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("meta.db");
        let s = Sqlite::open_with(&db, OnSyncFailure::Refuse).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let insert = |name: &'static str| {
            rt.block_on(s.write(move |db| {
                db.execute("INSERT INTO settings(name, value) VALUES(?1, 'v')", &[&name]).map_err(backend)
            }))
        };
        insert("a").unwrap();
        std::fs::rename(dir.path().join("meta.db-wal"), dir.path().join("elsewhere")).unwrap();
        for name in ["b", "c"] {
            let refused = insert(name);
            assert!(
                matches!(&refused, Err(StoreError::Backend(m)) if m.contains("could not be made durable")),
                "{refused:?}"
            );
        }
        assert_eq!(rt.block_on(s.lookup(count)).unwrap(), 2, "`b` was committed (then refused), `c` never");
    }

    /// A lookup sees every write answered before it, on the runtime's worker threads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_see_committed_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(Sqlite::open(&dir.path().join("meta.db")).unwrap());
        for i in 0..20 {
            s.write(move |db| {
                db.execute("INSERT INTO settings(name, value) VALUES(?1, 'v')", &[&format!("k{i}")]).map_err(backend)
            })
            .await
            .unwrap();
            let s2 = s.clone();
            let (n, on) = tokio::spawn(async move {
                let n = s2.lookup(count).await.unwrap();
                (n, std::thread::current().name().map(str::to_owned))
            })
            .await
            .unwrap();
            assert_eq!(n, i + 1);
            assert_eq!(on.as_deref(), Some("tokio-rt-worker"));
        }
    }

    /// A lookup that panics or leaves its snapshot open answers an error or its result, and
    /// the connection (the same thread's next lookup) goes on serving fresh snapshots.
    #[test]
    fn a_failed_lookup_leaves_its_connection_serving() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sqlite::open(&dir.path().join("meta.db")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let insert = |name: &'static str| {
            rt.block_on(s.write(move |db| {
                db.execute("INSERT INTO settings(name, value) VALUES(?1, 'v')", &[&name]).map_err(backend)
            }))
            .unwrap()
        };
        let panicked = rt.block_on(s.lookup(|db| -> StoreResult<i64> {
            let _ = count(db)?;
            panic!("a query that panics");
        }));
        assert!(matches!(&panicked, Err(StoreError::Backend(m)) if m.contains("panicked")), "{panicked:?}");
        let left_open = rt.block_on(s.lookup(|db| {
            std::mem::forget(db.snapshot().map_err(backend)?);
            count(db)
        }));
        assert_eq!(left_open.unwrap(), 0);
        insert("a");
        assert_eq!(rt.block_on(s.lookup(count)).unwrap(), 1, "a fresh snapshot, not the one left open");
        insert("b");
        assert_eq!(rt.block_on(s.lookup(count)).unwrap(), 2);
    }

    /// With every lookup connection busy (their locks held elsewhere), a lookup is answered by
    /// a reader thread rather than waiting; a closed store refuses lookups.
    #[test]
    fn a_lookup_with_no_idle_connection_goes_to_the_readers() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sqlite::open(&dir.path().join("meta.db")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let here = std::thread::current().id();
        let on = |s: &Sqlite| {
            rt.block_on(s.lookup(move |db| {
                count(db)?;
                Ok(std::thread::current().id())
            }))
            .unwrap()
        };
        assert_eq!(on(&s), here, "an idle connection: on the calling thread");
        let held: Vec<_> = s.lookups.iter().map(|c| c.lock()).collect();
        let there = on(&s);
        assert_ne!(there, here, "none idle: on a reader thread");
        drop(held);
        assert_eq!(on(&s), here);
        s.close();
        let refused = rt.block_on(s.lookup(count));
        assert!(matches!(refused, Err(StoreError::Backend(_))), "{refused:?}");
    }
}
