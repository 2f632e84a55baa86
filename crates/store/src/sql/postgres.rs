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

type Job = Box<dyn FnOnce(Result<&mut PgConn, &str>) + Send>;

pub(crate) struct Postgres {
    jobs: Mutex<Option<crossbeam_channel::Sender<Job>>>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
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
        Ok(Self { jobs: Mutex::new(Some(tx)), workers: Mutex::new(workers) })
    }

    pub(crate) fn close(&self) {
        self.jobs.lock().take();
        for h in self.workers.lock().drain(..) {
            let _ = h.join();
        }
    }

    async fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce(Result<&mut PgConn, &str>) -> StoreResult<T> + Send + 'static,
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
        self.submit(move |conn| write_tx(conn.map_err(unreachable)?, &f)).await
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.submit(move |conn| read_tx(conn.map_err(unreachable)?, f)).await
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.close();
    }
}

fn unreachable(why: &str) -> StoreError {
    StoreError::Backend(why.to_owned())
}

fn pg_error(e: postgres::Error) -> StoreError {
    StoreError::Backend(match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
        None => format!("PostgreSQL: {e}"),
    })
}

fn retryable(code: Option<&postgres::error::SqlState>) -> bool {
    use postgres::error::SqlState;
    matches!(code, Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

/// A short random pause before another attempt, longer after each conflict (at most ~64 ms).
fn backoff(attempt: u32) {
    let cap_us = 1_000u64 << attempt.min(6);
    std::thread::sleep(Duration::from_micros(rand::random::<u64>() % cap_us));
}

fn write_tx<T>(conn: &mut PgConn, f: &impl Fn(&Db<'_>) -> StoreResult<T>) -> StoreResult<T> {
    for attempt in 1..=MAX_ATTEMPTS {
        let tx = conn.client.build_transaction().isolation_level(IsolationLevel::Serializable).start();
        let tx = tx.map_err(pg_error)?;
        let db = Db::postgres(PgTx { tx, statements: &mut conn.statements, failure: None });
        let result = f(&db);
        let PgTx { tx, failure, .. } = db.into_postgres().expect("a PostgreSQL transaction");
        match failure {
            None if result.is_ok() => match tx.commit() {
                Ok(()) => return result,
                Err(e) if retryable(e.code()) => {}
                Err(e) => return Err(pg_error(e)),
            },
            None => {
                // The closure refused (NotFound, QuotaExceeded, ...): nothing it wrote stays.
                let _ = tx.rollback();
                return result;
            }
            Some(code) => {
                let _ = tx.rollback();
                if !retryable(Some(&code)) {
                    return match result {
                        Err(e) => Err(e),
                        Ok(_) => Err(StoreError::Backend(format!("PostgreSQL error {}", code.code()))),
                    };
                }
            }
        }
        backoff(attempt);
    }
    Err(StoreError::Backend(format!(
        "PostgreSQL: the write conflicted with concurrent writes {MAX_ATTEMPTS} times in a row"
    )))
}

fn read_tx<T>(conn: &mut PgConn, f: impl FnOnce(&Db<'_>) -> StoreResult<T>) -> StoreResult<T> {
    let tx = conn
        .client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(pg_error)?;
    let db = Db::postgres(PgTx { tx, statements: &mut conn.statements, failure: None });
    let result = f(&db);
    let PgTx { tx, .. } = db.into_postgres().expect("a PostgreSQL transaction");
    let _ = tx.commit();
    result
}

fn worker_loop(conn: PgConn, config: &postgres::Config, name: &str, jobs: &crossbeam_channel::Receiver<Job>) {
    let mut conn = Some(conn);
    while let Ok(job) = jobs.recv() {
        if conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            tracing::warn!(server = name, "metadata connection lost; reconnecting");
            conn = None;
        }
        if conn.is_none() {
            match open(config, name) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    job(Err(e.as_str()));
                    continue;
                }
            }
        }
        job(Ok(conn.as_mut().expect("connected")));
    }
}
