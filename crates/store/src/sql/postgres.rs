//! The scale-out engine: PostgreSQL, shared by every node.
//!
//! A pool of [`CONNECTIONS`] worker threads, each with its own connection (the synchronous
//! `postgres` client, because the store's statements run in synchronous closures shared with
//! the SQLite engine). A write is one `SERIALIZABLE` transaction: PostgreSQL then guarantees
//! the outcome of some serial order of all nodes' writes — what the SQLite engine gets from
//! its single writer — and reports a conflict (SQLSTATE 40001, or a deadlock, 40P01) instead
//! of committing a result no serial order gives; the worker then rolls back and runs the
//! whole closure again after a short random pause, up to [`MAX_ATTEMPTS`] times. A commit is
//! acknowledged once PostgreSQL has flushed it (its default `synchronous_commit = on`). A read
//! is one `REPEATABLE READ READ ONLY` transaction: one snapshot, never a conflict.
//!
//! A connection that breaks is replaced on the worker's next job; while the server cannot be
//! reached every call answers [`StoreError::Backend`] naming it, and service resumes by itself
//! when it is back.

use parking_lot::Mutex;
use postgres::IsolationLevel;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

use super::db::{Db, PgConn, PgTx};
use super::postgres_schema;
use crate::meta::{StoreError, StoreResult};

/// Connections (and worker threads) per node.
const CONNECTIONS: usize = 8;
/// Runs of one write before it gives up on conflicts.
const MAX_ATTEMPTS: u32 = 50;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type Job = Box<dyn FnOnce(&mut Slot) + Send>;

/// A worker's connection, opened again when it is found broken.
struct Slot {
    conn: Option<PgConn>,
    config: postgres::Config,
    name: String,
}

impl Slot {
    /// The connection, reconnecting first when there is none or it is known to be closed.
    fn conn(&mut self) -> StoreResult<&mut PgConn> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            tracing::warn!(server = %self.name, "metadata connection lost; reconnecting");
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = Some(open(&self.config, &self.name).map_err(StoreError::Unavailable)?);
        }
        Ok(self.conn.as_mut().expect("connected"))
    }

    /// Drops a connection found broken (the next [`Slot::conn`] opens a new one).
    fn reset(&mut self) {
        self.conn = None;
    }

    /// Runs `tx` on the connection; when it could not even begin a transaction (a connection
    /// that broke while idle: the server restarted, say), once more on a new connection —
    /// safe, as nothing was sent.
    fn run<T>(&mut self, mut tx: impl FnMut(&mut PgConn) -> Result<StoreResult<T>, StoreError>) -> StoreResult<T> {
        match tx(self.conn()?) {
            Ok(r) => r,
            Err(_) => {
                self.reset();
                tx(self.conn()?).unwrap_or_else(Err)
            }
        }
    }
}

pub(crate) struct Postgres {
    jobs: Mutex<Option<crossbeam_channel::Sender<Job>>>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Credential changes announced by the database ([`listen_loop`]).
    changes: tokio::sync::broadcast::Sender<Option<String>>,
    /// Set to stop the listener, which looks at it between waits.
    stop_listening: Arc<AtomicBool>,
    listener: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// How long the listener waits for a notification before it looks whether to stop.
const LISTEN_TICK: Duration = Duration::from_millis(250);
/// How often an idle listener asks the server something, so a connection that died without a
/// word (a crashed host, a moved address) is noticed within a few seconds.
const LISTEN_PING: Duration = Duration::from_secs(5);

/// Receives what [`postgres_schema::CREDENTIALS_CHANNEL`] announces on a connection of its own
/// and passes it on; after any interruption it reconnects (once a second) and sends `None`
/// (forget everything: announcements made meanwhile are lost). Returns soon after `stop` is
/// set, or after its current connection attempt.
fn listen_loop(
    config: &postgres::Config,
    name: &str,
    changes: &tokio::sync::broadcast::Sender<Option<String>>,
    stop: &AtomicBool,
) {
    // TCP keepalives bound how long a ping can wait on a dead peer.
    let mut config = config.clone();
    config.keepalives(true).keepalives_idle(Duration::from_secs(5)).keepalives_interval(Duration::from_secs(2));
    config.keepalives_retries(3);
    let pause = |d: Duration| {
        let until = std::time::Instant::now() + d;
        while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
            std::thread::sleep(LISTEN_TICK.min(until - std::time::Instant::now()));
        }
    };
    let mut warned = false;
    while !stop.load(Ordering::Relaxed) {
        let mut conn = match open(&config, name) {
            Ok(c) => c,
            Err(e) => {
                if !std::mem::replace(&mut warned, true) {
                    tracing::warn!(error = %e, "cannot listen for credential changes; retrying (cached credentials live 1 s meanwhile)");
                }
                pause(Duration::from_secs(1));
                continue;
            }
        };
        if let Err(e) = conn.client.batch_execute(&format!("LISTEN {}", postgres_schema::CREDENTIALS_CHANNEL)) {
            tracing::warn!(error = %e, "LISTEN for credential changes failed; retrying");
            pause(Duration::from_secs(1));
            continue;
        }
        if std::mem::replace(&mut warned, false) {
            tracing::info!(server = %name, "listening for credential changes again");
        }
        let _ = changes.send(None);
        let mut pinged = std::time::Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let next = {
                use postgres::fallible_iterator::FallibleIterator;
                conn.client.notifications().timeout_iter(LISTEN_TICK).next()
            };
            let alive = match next {
                Ok(Some(n)) => {
                    let _ = changes.send(Some(n.payload().to_owned()));
                    true
                }
                Ok(None) if pinged.elapsed() >= LISTEN_PING => {
                    pinged = std::time::Instant::now();
                    conn.client.simple_query("SELECT 1").is_ok()
                }
                Ok(None) => !conn.client.is_closed(),
                Err(_) => false,
            };
            if !alive {
                tracing::warn!(server = %name, "the credential-change listener lost its connection; reconnecting");
                warned = true;
                let _ = changes.send(None);
                break;
            }
        }
    }
}

/// `host:port/db` of a configuration, for messages (never the password).
fn describe(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "PostgreSQL at {}:{}/{}",
        hosts.join(","),
        if ports.is_empty() { "5432".into() } else { ports.join(",") },
        config.get_dbname().unwrap_or("(default database)")
    )
}

fn open(config: &postgres::Config, name: &str) -> Result<PgConn, String> {
    let client = config.connect(postgres::NoTls).map_err(|e| format!("cannot connect to {name}: {e}"))?;
    Ok(PgConn { client, statements: HashMap::new() })
}

impl Postgres {
    /// Connects, migrates and starts the workers. Runs on a thread of its own: the
    /// synchronous client drives a runtime of its own, which cannot run inside the caller's.
    pub(crate) fn connect(url: &str) -> StoreResult<Self> {
        let url = url.to_owned();
        std::thread::spawn(move || Self::connect_here(&url))
            .join()
            .unwrap_or_else(|_| Err(StoreError::Backend("connecting to PostgreSQL panicked".into())))
    }

    fn connect_here(url: &str) -> StoreResult<Self> {
        let mut config: postgres::Config = url.parse().map_err(|e| {
            StoreError::Backend(format!("the PostgreSQL address is not a valid connection string: {e}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("chuan");
        let name = describe(&config);
        let mut first = open(&config, &name).map_err(StoreError::Backend)?;
        postgres_schema::migrate(&mut first.client).map_err(|e| StoreError::Backend(format!("{name}: {e}")))?;
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut workers = Vec::with_capacity(CONNECTIONS);
        let mut first = Some(first);
        for i in 0..CONNECTIONS {
            let conn = match first.take() {
                Some(c) => c,
                None => open(&config, &name).map_err(StoreError::Backend)?,
            };
            let (rx, config, name) = (rx.clone(), config.clone(), name.clone());
            let h = std::thread::Builder::new()
                .name(format!("meta-pg-{i}"))
                .spawn(move || worker_loop(conn, &config, &name, &rx))
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            workers.push(h);
        }
        let (changes, _) = tokio::sync::broadcast::channel(4096);
        let stop_listening = Arc::new(AtomicBool::new(false));
        let listener = {
            let (changes, stop) = (changes.clone(), stop_listening.clone());
            std::thread::Builder::new()
                .name("meta-pg-listen".into())
                .spawn(move || listen_loop(&config, &name, &changes, &stop))
                .map_err(|e| StoreError::Backend(e.to_string()))?
        };
        Ok(Self {
            jobs: Mutex::new(Some(tx)),
            workers: Mutex::new(workers),
            changes,
            stop_listening,
            listener: Mutex::new(Some(listener)),
        })
    }

    /// Credential changes as the database announces them (see
    /// [`crate::IdentityStore::credential_changes`]).
    pub(crate) fn credential_changes(&self) -> tokio::sync::broadcast::Receiver<Option<String>> {
        self.changes.subscribe()
    }

    pub(crate) fn close(&self) {
        // The listener only sends to a channel: it is told to stop, not waited for (it may be
        // in a connection attempt of up to the connect timeout).
        self.stop_listening.store(true, Ordering::Relaxed);
        self.listener.lock().take();
        self.jobs.lock().take();
        for h in self.workers.lock().drain(..) {
            let _ = h.join();
        }
    }

    async fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Slot) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |conn| {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn)))
                .unwrap_or_else(|_| Err(StoreError::Backend("metadata transaction panicked".into())));
            let _ = tx.send(r);
        });
        {
            let guard = self.jobs.lock();
            let sender = guard.as_ref().ok_or_else(|| StoreError::Backend("metadata store closed".into()))?;
            sender.send(job).map_err(|_| StoreError::Backend("metadata workers stopped".into()))?;
        }
        rx.await.map_err(|_| StoreError::Backend("metadata workers stopped".into()))?
    }

    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl Fn(&Db<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.submit(move |slot| slot.run(|conn| write_tx(conn, &f))).await
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let mut f = Some(f);
        // `read_tx` takes `f` only once its transaction began, so the second run (after the
        // first could not begin) still has it.
        self.submit(move |slot| slot.run(|conn| read_tx(conn, &mut f))).await
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.close();
    }
}

/// Whether a failure is the server's or the connection's absence (connection exceptions,
/// shutdowns, a server still starting; an error the client raised itself, without SQLSTATE,
/// is the connection's): the call is worth retrying once the server is back.
fn connection_lost(code: &postgres::error::SqlState) -> bool {
    use postgres::error::SqlState;
    code.code().starts_with("08")
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
}

fn pg_error(e: postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) if connection_lost(db.code()) => {
            StoreError::Unavailable(format!("PostgreSQL: {} ({})", db.message(), db.code().code()))
        }
        Some(db) => StoreError::Backend(format!("PostgreSQL: {} ({})", db.message(), db.code().code())),
        None => StoreError::Unavailable(format!("PostgreSQL: {e}")),
    }
}

fn retryable(code: Option<&postgres::error::SqlState>) -> bool {
    use postgres::error::SqlState;
    matches!(code, Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

/// A short random pause before another attempt, longer after each conflict (at most ~256 ms,
/// so that 50 attempts span seconds: enough for a queue of writers of one row to drain).
fn backoff(attempt: u32) {
    let cap_us = 1_000u64 << attempt.min(8);
    std::thread::sleep(Duration::from_micros(rand::random::<u64>() % cap_us));
}

/// Begins a transaction: the outer `Err` when the connection failed before anything was sent.
fn begin<'c>(
    client: &'c mut postgres::Client,
    level: IsolationLevel,
    read_only: bool,
) -> Result<StoreResult<postgres::Transaction<'c>>, StoreError> {
    match client.build_transaction().isolation_level(level).read_only(read_only).start() {
        Ok(tx) => Ok(Ok(tx)),
        Err(e) => match pg_error(e) {
            lost @ StoreError::Unavailable(_) => Err(lost),
            other => Ok(Err(other)),
        },
    }
}

/// One write transaction, re-run from the start on serialization conflicts; the outer `Err`
/// as [`begin`] (every earlier attempt was rolled back, so the caller may run it all again).
fn write_tx<T>(conn: &mut PgConn, f: &impl Fn(&Db<'_>) -> StoreResult<T>) -> Result<StoreResult<T>, StoreError> {
    for attempt in 1..=MAX_ATTEMPTS {
        let tx = match begin(&mut conn.client, IsolationLevel::Serializable, false)? {
            Ok(tx) => tx,
            Err(e) => return Ok(Err(e)),
        };
        let db = Db::postgres(PgTx { tx, statements: &mut conn.statements, failure: None });
        let result = f(&db);
        let PgTx { tx, failure, .. } = db.into_postgres().expect("a PostgreSQL transaction");
        match failure {
            None if result.is_ok() => match tx.commit() {
                Ok(()) => return Ok(result),
                Err(e) if retryable(e.code()) => {}
                Err(e) => return Ok(Err(pg_error(e))),
            },
            None => {
                // The closure refused (NotFound, QuotaExceeded, ...): nothing it wrote stays.
                let _ = tx.rollback();
                return Ok(result);
            }
            Some(code) if connection_lost(&code) => {
                return Ok(Err(StoreError::Unavailable(format!(
                    "PostgreSQL: the connection failed ({})",
                    code.code()
                ))));
            }
            Some(code) => {
                let _ = tx.rollback();
                if !retryable(Some(&code)) {
                    return Ok(match result {
                        Err(e) => Err(e),
                        Ok(_) => Err(StoreError::Backend(format!("PostgreSQL error {}", code.code()))),
                    });
                }
            }
        }
        backoff(attempt);
    }
    Ok(Err(StoreError::Contended(format!(
        "PostgreSQL: the write conflicted with concurrent writes {MAX_ATTEMPTS} times in a row"
    ))))
}

/// One read snapshot; the outer `Err` as [`begin`], with `f` left in place for another run.
fn read_tx<T, F: FnOnce(&Db<'_>) -> StoreResult<T>>(
    conn: &mut PgConn,
    f: &mut Option<F>,
) -> Result<StoreResult<T>, StoreError> {
    let tx = match begin(&mut conn.client, IsolationLevel::RepeatableRead, true)? {
        Ok(tx) => tx,
        Err(e) => return Ok(Err(e)),
    };
    let Some(f) = f.take() else {
        return Ok(Err(StoreError::Backend("a read ran twice".into())));
    };
    let db = Db::postgres(PgTx { tx, statements: &mut conn.statements, failure: None });
    let result = f(&db);
    let PgTx { tx, failure, .. } = db.into_postgres().expect("a PostgreSQL transaction");
    if let Some(code) = failure.filter(connection_lost) {
        return Ok(Err(StoreError::Unavailable(format!("PostgreSQL: the connection failed ({})", code.code()))));
    }
    let _ = tx.commit();
    Ok(result)
}

fn worker_loop(conn: PgConn, config: &postgres::Config, name: &str, jobs: &crossbeam_channel::Receiver<Job>) {
    let mut slot = Slot { conn: Some(conn), config: config.clone(), name: name.to_owned() };
    while let Ok(job) = jobs.recv() {
        job(&mut slot);
    }
}
