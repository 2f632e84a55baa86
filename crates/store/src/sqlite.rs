//! The embedded [`MetaStore`]: SQLite in WAL mode.
//!
//! Why SQLite rather than redb: the queries Chuan needs (ordered prefix listing with
//! start-after, listing upload sessions by key prefix, aggregate stats, reference-count checks
//! across tables) are one indexed SQL statement each, and SQLite's WAL gives concurrent
//! readers with one writer. Durability costs one WAL fsync per commit (`synchronous=FULL`);
//! [`SqliteMetaStore`] amortises it with group commit: a single writer thread drains every
//! write that is waiting, runs each in its own savepoint (so one failure does not undo its
//! neighbours), commits once, and only then answers them all.

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

use crate::meta::*;
use crate::model::*;
use crate::now_ms;

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&mut Transaction<'_>) -> Reply + Send>;

/// Most writes batched into one commit.
const MAX_BATCH: usize = 256;

pub struct SqliteMetaStore {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS credentials(
    access_key TEXT PRIMARY KEY, secret TEXT NOT NULL, tenant TEXT NOT NULL,
    kind TEXT NOT NULL, created INTEGER NOT NULL, expires INTEGER, scope TEXT);
CREATE TABLE IF NOT EXISTS settings(name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS challenges(id TEXT PRIMARY KEY, record TEXT NOT NULL, expires INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS buckets(
    name TEXT PRIMARY KEY, tenant TEXT NOT NULL, public INTEGER NOT NULL,
    region TEXT NOT NULL, created INTEGER NOT NULL, bytes INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS callbacks(
    id INTEGER PRIMARY KEY, url TEXT NOT NULL, body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL, created INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks(next_at);
CREATE TABLE IF NOT EXISTS usage(
    tenant TEXT NOT NULL, bucket TEXT NOT NULL, day INTEGER NOT NULL, storage INTEGER NOT NULL DEFAULT 0,
    downloads INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(tenant, day, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs(
    id TEXT PRIMARY KEY, size INTEGER NOT NULL, refs INTEGER NOT NULL, zero_since INTEGER);
CREATE INDEX IF NOT EXISTS blobs_unreferenced ON blobs(zero_since) WHERE refs = 0;
CREATE TABLE IF NOT EXISTS contents(
    id INTEGER PRIMARY KEY, size INTEGER NOT NULL, refs INTEGER NOT NULL, etag TEXT NOT NULL,
    digests TEXT, extents TEXT NOT NULL, created INTEGER NOT NULL, ufile_etag TEXT);
CREATE INDEX IF NOT EXISTS contents_pending ON contents(id) WHERE digests IS NULL OR ufile_etag IS NULL;
CREATE TABLE IF NOT EXISTS hash_index(
    algo TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL, content INTEGER NOT NULL,
    PRIMARY KEY(algo, digest, size, content)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hash_index_content ON hash_index(content);
CREATE TABLE IF NOT EXISTS objects(
    bucket TEXT NOT NULL, key TEXT NOT NULL, content INTEGER NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, modified INTEGER NOT NULL, meta TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY(bucket, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_content ON objects(content);
CREATE UNIQUE INDEX IF NOT EXISTS objects_id ON objects(bucket, id);
CREATE TABLE IF NOT EXISTS uploads(
    id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, tenant TEXT NOT NULL,
    created INTEGER NOT NULL, meta TEXT NOT NULL, state TEXT NOT NULL, expires INTEGER);
CREATE INDEX IF NOT EXISTS uploads_expiring ON uploads(expires) WHERE expires IS NOT NULL;
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads(bucket, key, id);
CREATE TABLE IF NOT EXISTS parts(
    upload TEXT NOT NULL, number INTEGER NOT NULL, blob TEXT NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, digests TEXT NOT NULL, modified INTEGER NOT NULL,
    PRIMARY KEY(upload, number)) WITHOUT ROWID;
"#;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
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
    pub fn open(path: &Path) -> StoreResult<Self> {
        let mut conn = open_conn(path).map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let writer = std::thread::Builder::new()
            .name("meta-writer".into())
            .spawn(move || writer_loop(&mut conn, rx))
            .map_err(backend)?;
        Ok(Self {
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            readers: Arc::new(Mutex::new(Vec::new())),
            path: path.to_owned(),
        })
    }

    /// Stops the writer thread after it has committed what it holds.
    pub fn close(&self) {
        self.jobs.lock().take();
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
    }

    async fn write<T: Send + 'static>(
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

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match readers.lock().pop() {
                Some(c) => c,
                None => open_conn(&path).map_err(backend)?,
            };
            let r = f(&conn);
            let mut pool = readers.lock();
            if pool.len() < 16 {
                pool.push(conn);
            }
            r
        })
        .await
        .map_err(backend)?
    }
}

impl Drop for SqliteMetaStore {
    fn drop(&mut self) {
        self.close();
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
        // Jobs never run (the transaction could not even begin) are answered by dropping
        // their senders: the waiting side sees "writer stopped"... answer them properly.
        for job in batch {
            drop(job);
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(backend)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> rusqlite::Result<T> {
    serde_json::from_str(s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn credential_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CredentialRecord> {
    Ok(CredentialRecord {
        access_key: r.get(0)?,
        secret: r.get(1)?,
        tenant: r.get(2)?,
        kind: r.get(3)?,
        created_ms: r.get(4)?,
        expires_ms: r.get(5)?,
        scope: r.get(6)?,
    })
}

fn object_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectRecord> {
    Ok(ObjectRecord {
        id: row.get(7)?,
        bucket: row.get(0)?,
        key: row.get(1)?,
        content_id: row.get(2)?,
        size: row.get::<_, i64>(3)? as u64,
        etag: row.get(4)?,
        modified_ms: row.get(5)?,
        meta: from_json(&row.get::<_, String>(6)?)?,
    })
}

const OBJECT_COLS: &str = "bucket, key, content, size, etag, modified, meta, id";

/// A new object id: 40 hex digits, the shape of Aliyun Drive file ids.
fn new_object_id() -> String {
    format!("{}{:08x}", uuid::Uuid::new_v4().simple(), rand::random::<u32>())
}

fn content_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ContentRecord> {
    let digests: Option<String> = row.get(4)?;
    Ok(ContentRecord {
        id: row.get(0)?,
        size: row.get::<_, i64>(1)? as u64,
        refs: row.get(2)?,
        etag: row.get(3)?,
        digests: digests.map(|d| from_json(&d)).transpose()?,
        extents: from_json(&row.get::<_, String>(5)?)?,
        ufile_etag: row.get(6)?,
    })
}

const CONTENT_COLS: &str = "id, size, refs, etag, digests, extents, ufile_etag";

fn upload_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRecord> {
    Ok(UploadRecord {
        id: row.get(0)?,
        bucket: row.get(1)?,
        key: row.get(2)?,
        tenant: row.get(3)?,
        created_ms: row.get(4)?,
        meta: from_json(&row.get::<_, String>(5)?)?,
        state: row.get(6)?,
        expires_ms: row.get(7)?,
    })
}

fn part_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PartRecord> {
    Ok(PartRecord {
        upload_id: row.get(0)?,
        number: row.get(1)?,
        blob: row.get(2)?,
        size: row.get::<_, i64>(3)? as u64,
        etag: row.get(4)?,
        digests: from_json(&row.get::<_, String>(5)?)?,
        modified_ms: row.get(6)?,
    })
}

fn blob_ref(txn: &Connection, id: &str, size: u64) -> StoreResult<()> {
    txn.execute(
        "INSERT INTO blobs(id, size, refs, zero_since) VALUES(?1, ?2, 1, NULL)
         ON CONFLICT(id) DO UPDATE SET refs = refs + 1, zero_since = NULL",
        params![id, size as i64],
    )
    .map_err(backend)?;
    Ok(())
}

fn blob_unref(txn: &Connection, id: &str) -> StoreResult<()> {
    txn.execute(
        "UPDATE blobs SET refs = refs - 1,
                zero_since = CASE WHEN refs - 1 <= 0 THEN ?2 ELSE zero_since END
         WHERE id = ?1",
        params![id, now_ms()],
    )
    .map_err(backend)?;
    Ok(())
}

fn insert_content(txn: &Connection, c: &NewContent) -> StoreResult<i64> {
    txn.execute(
        "INSERT INTO contents(size, refs, etag, digests, extents, created, ufile_etag) VALUES(?1, 0, ?2, ?3, ?4, ?5, ?6)",
        params![
            c.size as i64,
            c.etag,
            c.digests.as_ref().map(to_json).transpose()?,
            to_json(&c.extents)?,
            now_ms(),
            c.ufile_etag
        ],
    )
    .map_err(backend)?;
    let id = txn.last_insert_rowid();
    for e in &c.extents {
        blob_ref(txn, &e.blob, e.size)?;
    }
    if let Some(d) = &c.digests {
        index_content(txn, id, c.size, d)?;
    }
    if let Some(u) = &c.ufile_etag {
        index_one(txn, id, c.size, "ufile", u)?;
    }
    Ok(id)
}

fn index_one(txn: &Connection, id: i64, size: u64, algo: &str, digest: &str) -> StoreResult<()> {
    txn.execute(
        "INSERT OR IGNORE INTO hash_index(algo, digest, size, content) VALUES(?1, ?2, ?3, ?4)",
        params![algo, digest, size as i64, id],
    )
    .map_err(backend)?;
    Ok(())
}

fn index_content(txn: &Connection, id: i64, size: u64, d: &Digests) -> StoreResult<()> {
    for (algo, digest) in d.index_entries() {
        index_one(txn, id, size, algo, &digest)?;
    }
    Ok(())
}

/// Drops one object reference to a content; frees the content (and its blob references)
/// when it was the last.
fn content_unref(txn: &Connection, id: i64) -> StoreResult<()> {
    txn.execute("UPDATE contents SET refs = refs - 1 WHERE id = ?1", params![id]).map_err(backend)?;
    let row: Option<(i64, String)> = txn
        .query_row("SELECT refs, extents FROM contents WHERE id = ?1", params![id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(backend)?;
    if let Some((refs, extents)) = row {
        if refs <= 0 {
            let extents: Vec<Extent> = from_json(&extents).map_err(backend)?;
            txn.execute("DELETE FROM contents WHERE id = ?1", params![id]).map_err(backend)?;
            txn.execute("DELETE FROM hash_index WHERE content = ?1", params![id]).map_err(backend)?;
            for e in extents {
                blob_unref(txn, &e.blob)?;
            }
        }
    }
    Ok(())
}

fn get_object_tx(conn: &Connection, bucket: &str, key: &str) -> StoreResult<Option<ObjectRecord>> {
    conn.query_row(
        &format!("SELECT {OBJECT_COLS} FROM objects WHERE bucket = ?1 AND key = ?2"),
        params![bucket, key],
        object_from_row,
    )
    .optional()
    .map_err(backend)
}

/// Points (bucket, key) at `content_id` (taking a reference), releasing what it pointed at.
fn set_object(
    txn: &Connection,
    bucket: &str,
    key: &str,
    content_id: i64,
    etag: &str,
    meta: &ObjectMeta,
    modified_ms: i64,
    new_id: Option<&str>,
    quota_bytes: Option<u64>,
) -> StoreResult<ObjectRecord> {
    let size: i64 = txn
        .query_row("SELECT size FROM contents WHERE id = ?1", params![content_id], |r| r.get(0))
        .optional()
        .map_err(backend)?
        .ok_or_else(|| StoreError::Conflict("content was freed meanwhile".into()))?;
    txn.execute("UPDATE contents SET refs = refs + 1 WHERE id = ?1", params![content_id]).map_err(backend)?;
    let old = get_object_tx(txn, bucket, key)?;
    let id = match &old {
        Some(o) => o.id.clone(),
        None => new_id.map(str::to_owned).unwrap_or_else(new_object_id),
    };
    txn.execute(
        "INSERT INTO objects(bucket, key, content, size, etag, modified, meta, id) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)
         ON CONFLICT(bucket, key) DO UPDATE SET content=?3, size=?4, etag=?5, modified=?6, meta=?7",
        params![bucket, key, content_id, size, etag, modified_ms, to_json(meta)?, id],
    )
    .map_err(backend)?;
    let grown = size - old.as_ref().map_or(0, |o| o.size as i64);
    txn.execute("UPDATE buckets SET bytes = bytes + ?2 WHERE name = ?1", params![bucket, grown]).map_err(backend)?;
    if let (Some(quota), true) = (quota_bytes, grown > 0) {
        // Checked inside the transaction, after the write: the quota is never exceeded, even
        // by concurrent writers (the savepoint rolls this write back).
        let used: i64 = txn
            .query_row(
                "SELECT coalesce(sum(bytes), 0) FROM buckets WHERE tenant = (SELECT tenant FROM buckets WHERE name = ?1)",
                params![bucket],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if used as u64 > quota {
            return Err(StoreError::QuotaExceeded);
        }
    }
    if let Some(old) = old {
        content_unref(txn, old.content_id)?;
    }
    Ok(ObjectRecord {
        id,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        content_id,
        size: size as u64,
        etag: etag.to_owned(),
        modified_ms,
        meta: meta.clone(),
    })
}

fn drop_upload(txn: &Connection, id: &str) -> StoreResult<()> {
    let blobs: Vec<String> = {
        let mut st = txn.prepare("SELECT blob FROM parts WHERE upload = ?1").map_err(backend)?;
        let rows = st.query_map(params![id], |r| r.get(0)).map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)?
    };
    for b in blobs {
        blob_unref(txn, &b)?;
    }
    txn.execute("DELETE FROM parts WHERE upload = ?1", params![id]).map_err(backend)?;
    txn.execute("DELETE FROM uploads WHERE id = ?1", params![id]).map_err(backend)?;
    Ok(())
}

#[async_trait]
impl MetaStore for SqliteMetaStore {
    async fn put_credential(&self, c: CredentialRecord) -> StoreResult<()> {
        self.write(move |txn| {
            txn.execute(
                "INSERT INTO credentials(access_key, secret, tenant, kind, created, expires, scope) VALUES(?1,?2,?3,?4,?5,?6,?7)
                 ON CONFLICT(access_key) DO UPDATE SET secret=?2, tenant=?3, kind=?4, expires=?6, scope=?7",
                params![c.access_key, c.secret, c.tenant, c.kind, c.created_ms, c.expires_ms, c.scope],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_credential(&self, access_key: &str) -> StoreResult<Option<CredentialRecord>> {
        let ak = access_key.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT access_key, secret, tenant, kind, created, expires, scope FROM credentials WHERE access_key = ?1",
                params![ak],
                credential_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>> {
        self.read(move |c| {
            let mut st = c
                .prepare(
                    "SELECT access_key, secret, tenant, kind, created, expires, scope FROM credentials ORDER BY access_key",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([], credential_from_row)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn delete_credential(&self, access_key: &str) -> StoreResult<()> {
        let ak = access_key.to_owned();
        self.write(move |txn| {
            txn.execute("DELETE FROM credentials WHERE access_key = ?1", params![ak]).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_setting(&self, name: &str) -> StoreResult<Option<String>> {
        let name = name.to_owned();
        self.read(move |c| {
            c.query_row("SELECT value FROM settings WHERE name = ?1", params![name], |r| r.get(0))
                .optional()
                .map_err(backend)
        })
        .await
    }

    async fn put_settings(&self, pairs: Vec<(String, String)>) -> StoreResult<()> {
        self.write(move |txn| {
            for (name, value) in &pairs {
                txn.execute(
                    "INSERT INTO settings(name, value) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET value = ?2",
                    params![name, value],
                )
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn add_usage(&self, rows: Vec<UsageDelta>) -> StoreResult<()> {
        self.write(move |txn| {
            for u in &rows {
                txn.execute(
                    "INSERT INTO usage(tenant, bucket, day, storage, downloads, requests)
                     VALUES(?1, ?2, ?3, coalesce((SELECT bytes FROM buckets WHERE name = ?2), 0), ?4, ?5)
                     ON CONFLICT(tenant, day, bucket) DO UPDATE SET
                       downloads = downloads + ?4, requests = requests + ?5,
                       storage = max(storage, coalesce((SELECT bytes FROM buckets WHERE name = ?2), 0))",
                    params![u.tenant, u.bucket, u.day, u.downloads as i64, u.requests as i64],
                )
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn usage_report(&self, tenant: &str, from_day: i64, to_day: i64) -> StoreResult<Vec<UsageDay>> {
        let tenant = tenant.to_owned();
        self.read(move |c| {
            let mut st = c
                .prepare(
                    "SELECT day, sum(storage), sum(downloads), sum(requests) FROM usage
                     WHERE tenant = ?1 AND day BETWEEN ?2 AND ?3 GROUP BY day ORDER BY day",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![tenant, from_day, to_day], |r| {
                    Ok(UsageDay {
                        day: r.get(0)?,
                        storage: r.get::<_, i64>(1)? as u64,
                        downloads: r.get::<_, i64>(2)? as u64,
                        requests: r.get::<_, i64>(3)? as u64,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn tenant_bytes(&self, tenant: &str) -> StoreResult<u64> {
        let tenant = tenant.to_owned();
        self.read(move |c| {
            c.query_row("SELECT coalesce(sum(bytes), 0) FROM buckets WHERE tenant = ?1", params![tenant], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
            .map_err(backend)
        })
        .await
    }

    async fn enqueue_callback(&self, url: String, body: String) -> StoreResult<()> {
        self.write(move |txn| {
            let now = now_ms();
            txn.execute(
                "INSERT INTO callbacks(url, body, next_at, created) VALUES(?1, ?2, ?3, ?3)",
                params![url, body, now],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn due_callbacks(&self, now: i64, limit: usize) -> StoreResult<Vec<Callback>> {
        self.read(move |c| {
            let mut st = c
                .prepare("SELECT id, url, body, attempts FROM callbacks WHERE next_at <= ?1 ORDER BY next_at LIMIT ?2")
                .map_err(backend)?;
            let rows = st
                .query_map(params![now, limit as i64], |r| {
                    Ok(Callback {
                        id: r.get(0)?,
                        url: r.get(1)?,
                        body: r.get(2)?,
                        attempts: r.get::<_, i64>(3)? as u32,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn finish_callback(&self, id: i64, retry_at: Option<i64>) -> StoreResult<()> {
        self.write(move |txn| {
            match retry_at {
                Some(at) => txn.execute(
                    "UPDATE callbacks SET attempts = attempts + 1, next_at = ?2 WHERE id = ?1",
                    params![id, at],
                ),
                None => txn.execute("DELETE FROM callbacks WHERE id = ?1", params![id]),
            }
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn bucket_bytes(&self, bucket: &str) -> StoreResult<u64> {
        let bucket = bucket.to_owned();
        self.read(move |c| {
            c.query_row("SELECT coalesce(max(bytes), 0) FROM buckets WHERE name = ?1", params![bucket], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
            .map_err(backend)
        })
        .await
    }

    async fn setting_or_init(&self, name: &str, init: String) -> StoreResult<String> {
        let name = name.to_owned();
        self.write(move |txn| {
            txn.execute("INSERT OR IGNORE INTO settings(name, value) VALUES(?1, ?2)", params![name, init])
                .map_err(backend)?;
            txn.query_row("SELECT value FROM settings WHERE name = ?1", params![name], |r| r.get(0)).map_err(backend)
        })
        .await
    }

    async fn create_bucket(&self, b: BucketRecord) -> StoreResult<()> {
        self.write(move |txn| {
            let n = txn
                .execute(
                    "INSERT OR IGNORE INTO buckets(name, tenant, public, region, created) VALUES(?1,?2,?3,?4,?5)",
                    params![b.name, b.tenant, b.public, b.region, b.created_ms],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::Exists);
            }
            Ok(())
        })
        .await
    }

    async fn get_bucket(&self, name: &str) -> StoreResult<Option<BucketRecord>> {
        let name = name.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT name, tenant, public, region, created FROM buckets WHERE name = ?1",
                params![name],
                |r| {
                    Ok(BucketRecord {
                        name: r.get(0)?,
                        tenant: r.get(1)?,
                        public: r.get(2)?,
                        region: r.get(3)?,
                        created_ms: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn set_bucket_public(&self, name: &str, public: bool) -> StoreResult<()> {
        let name = name.to_owned();
        self.write(move |txn| {
            let n = txn
                .execute("UPDATE buckets SET public = ?2 WHERE name = ?1", params![name, public])
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn list_buckets(&self, tenant: Option<&str>) -> StoreResult<Vec<BucketRecord>> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |c| {
            let mut st = c
                .prepare(
                    "SELECT name, tenant, public, region, created FROM buckets
                     WHERE ?1 IS NULL OR tenant = ?1 ORDER BY name",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![tenant], |r| {
                    Ok(BucketRecord {
                        name: r.get(0)?,
                        tenant: r.get(1)?,
                        public: r.get(2)?,
                        region: r.get(3)?,
                        created_ms: r.get(4)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn delete_bucket(&self, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        self.write(move |txn| {
            let busy: bool = txn
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM objects WHERE bucket = ?1)
                         OR EXISTS(SELECT 1 FROM uploads WHERE bucket = ?1)",
                    params![name],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if busy {
                return Err(StoreError::NotEmpty);
            }
            let n = txn.execute("DELETE FROM buckets WHERE name = ?1", params![name]).map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn get_object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectRecord>> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.read(move |c| get_object_tx(c, &bucket, &key)).await
    }

    async fn get_object_by_id(&self, bucket: &str, id: &str) -> StoreResult<Option<ObjectRecord>> {
        let (bucket, id) = (bucket.to_owned(), id.to_owned());
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {OBJECT_COLS} FROM objects WHERE bucket = ?1 AND id = ?2"),
                params![bucket, id],
                object_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn rename(&self, bucket: &str, from: &str, to: &str, prefix: bool) -> StoreResult<ObjectRecord> {
        let (bucket, from, to) = (bucket.to_owned(), from.to_owned(), to.to_owned());
        self.write(move |txn| {
            if get_object_tx(txn, &bucket, &to)?.is_some() {
                return Err(StoreError::Exists);
            }
            let n = if prefix {
                // Children first would collide with nothing: keys under `to` are checked below.
                let clash: bool = txn
                    .query_row(
                        "SELECT EXISTS(SELECT 1 FROM objects WHERE bucket = ?1
                           AND substr(CAST(key AS BLOB), 1, ?2) = CAST(?3 AS BLOB))",
                        params![bucket, to.len() as i64, to],
                        |r| r.get(0),
                    )
                    .map_err(backend)?;
                if clash {
                    return Err(StoreError::Exists);
                }
                txn.execute(
                    "UPDATE objects SET key = ?4 || substr(key, ?2 + 1)
                     WHERE bucket = ?1 AND substr(CAST(key AS BLOB), 1, ?2) = CAST(?3 AS BLOB)",
                    params![bucket, from.len() as i64, from, to],
                )
                .map_err(backend)?
            } else {
                txn.execute("UPDATE objects SET key = ?3 WHERE bucket = ?1 AND key = ?2", params![bucket, from, to])
                    .map_err(backend)?
            };
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            get_object_tx(txn, &bucket, &to)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn tenant_holds_content(&self, tenant: &str, content_id: i64) -> StoreResult<bool> {
        let tenant = tenant.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM objects o JOIN buckets b ON b.name = o.bucket
                   WHERE o.content = ?1 AND b.tenant = ?2)",
                params![content_id, tenant],
                |r| r.get(0),
            )
            .map_err(backend)
        })
        .await
    }

    async fn get_content(&self, id: i64) -> StoreResult<Option<ContentRecord>> {
        self.read(move |c| {
            c.query_row(&format!("SELECT {CONTENT_COLS} FROM contents WHERE id = ?1"), params![id], content_from_row)
                .optional()
                .map_err(backend)
        })
        .await
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start: ListStart<'_>,
        limit: usize,
    ) -> StoreResult<ListPage> {
        // The scan starts at the later of the prefix and `start`; the prefix test (on bytes)
        // ends it. SQLite compares TEXT with memcmp: UTF-8 byte order, the order S3 lists in.
        let (from, inclusive) = match start {
            ListStart::After(a) if a >= prefix => (a.to_owned(), false),
            ListStart::From(a) if a >= prefix => (a.to_owned(), true),
            _ => (prefix.to_owned(), true),
        };
        let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
        self.read(move |c| {
            let sql = format!(
                "SELECT {OBJECT_COLS} FROM objects WHERE bucket = ?1 AND key {} ?2
                 AND substr(CAST(key AS BLOB), 1, ?3) = CAST(?4 AS BLOB)
                 ORDER BY key LIMIT ?5",
                if inclusive { ">=" } else { ">" }
            );
            let mut st = c.prepare_cached(&sql).map_err(backend)?;
            let rows = st
                .query_map(params![bucket, from, prefix.len() as i64, prefix, limit as i64], object_from_row)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn put_object(&self, w: ObjectWrite) -> StoreResult<ObjectRecord> {
        self.write(move |txn| {
            if let Some(cond) = &w.condition {
                let current = get_object_tx(txn, &w.bucket, &w.key)?;
                let ok = match (cond, &current) {
                    (WriteCondition::Absent, None) => true,
                    (WriteCondition::EtagIs(e), Some(cur)) => e == "*" || *e == cur.etag,
                    _ => false,
                };
                if !ok {
                    return Err(StoreError::Conflict("precondition failed".into()));
                }
            }
            let (content_id, etag) = match &w.content {
                ContentSource::New(c) => (insert_content(txn, c)?, c.etag.clone()),
                ContentSource::Existing(id) => {
                    let etag: String = txn
                        .query_row("SELECT etag FROM contents WHERE id = ?1", params![id], |r| r.get(0))
                        .optional()
                        .map_err(backend)?
                        .ok_or_else(|| StoreError::Conflict("content was freed meanwhile".into()))?;
                    (*id, etag)
                }
            };
            set_object(
                txn,
                &w.bucket,
                &w.key,
                content_id,
                &etag,
                &w.meta,
                w.modified_ms,
                w.id.as_deref(),
                w.quota_bytes,
            )
        })
        .await
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectRecord>> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.write(move |txn| {
            let old = get_object_tx(txn, &bucket, &key)?;
            if let Some(o) = &old {
                txn.execute("DELETE FROM objects WHERE bucket = ?1 AND key = ?2", params![bucket, key])
                    .map_err(backend)?;
                txn.execute("UPDATE buckets SET bytes = bytes - ?2 WHERE name = ?1", params![bucket, o.size as i64])
                    .map_err(backend)?;
                content_unref(txn, o.content_id)?;
            }
            Ok(old)
        })
        .await
    }

    async fn find_content(&self, algo: &str, digest: &str, size: u64) -> StoreResult<Vec<i64>> {
        let (algo, digest) = (algo.to_owned(), digest.to_owned());
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT content FROM hash_index WHERE algo = ?1 AND digest = ?2 AND size = ?3 ORDER BY content LIMIT 16",
                )
                .map_err(backend)?;
            let rows = st.query_map(params![algo, digest, size as i64], |r| r.get(0)).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn contents_missing_digests(&self, limit: usize) -> StoreResult<Vec<ContentRecord>> {
        self.read(move |c| {
            let mut st = c
                .prepare(&format!("SELECT {CONTENT_COLS} FROM contents WHERE digests IS NULL OR ufile_etag IS NULL ORDER BY id LIMIT ?1"))
                .map_err(backend)?;
            let rows = st.query_map(params![limit as i64], content_from_row).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn pending_contents_of_size(&self, size: u64, limit: usize) -> StoreResult<Vec<ContentRecord>> {
        self.read(move |c| {
            let mut st = c
                .prepare(&format!(
                    "SELECT {CONTENT_COLS} FROM contents WHERE (digests IS NULL OR ufile_etag IS NULL) AND size = ?1
                     ORDER BY id LIMIT ?2"
                ))
                .map_err(backend)?;
            let rows = st.query_map(params![size as i64, limit as i64], content_from_row).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn set_content_digests(&self, id: i64, d: Digests, ufile_etag: String) -> StoreResult<()> {
        self.write(move |txn| {
            let size: Option<i64> = txn
                .query_row("SELECT size FROM contents WHERE id = ?1", params![id], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            let Some(size) = size else { return Ok(()) };
            txn.execute(
                "UPDATE contents SET digests = ?2, ufile_etag = coalesce(ufile_etag, ?3) WHERE id = ?1",
                params![id, to_json(&d)?, ufile_etag],
            )
            .map_err(backend)?;
            index_content(txn, id, size as u64, &d)?;
            index_one(txn, id, size as u64, "ufile", &ufile_etag)
        })
        .await
    }

    async fn create_upload(&self, u: UploadRecord) -> StoreResult<()> {
        self.write(move |txn| {
            txn.execute(
                "INSERT INTO uploads(id, bucket, key, tenant, created, meta, state, expires) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
                params![u.id, u.bucket, u.key, u.tenant, u.created_ms, to_json(&u.meta)?, u.state, u.expires_ms],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_upload(&self, id: &str) -> StoreResult<Option<UploadRecord>> {
        let id = id.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT id, bucket, key, tenant, created, meta, state, expires FROM uploads WHERE id = ?1",
                params![id],
                upload_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> StoreResult<UploadListPage> {
        let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
        let (key_marker, id_marker) = after.map(|(k, i)| (k.to_owned(), i.to_owned())).unwrap_or_default();
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT id, bucket, key, tenant, created, meta, state, expires FROM uploads
                     WHERE bucket = ?1 AND substr(CAST(key AS BLOB), 1, ?2) = CAST(?3 AS BLOB)
                       AND (key > ?4 OR (key = ?4 AND id > ?5))
                     ORDER BY key, id LIMIT ?6",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(
                    params![bucket, prefix.len() as i64, prefix, key_marker, id_marker, limit as i64],
                    upload_from_row,
                )
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn put_part(&self, p: PartWrite) -> StoreResult<()> {
        self.write(move |txn| {
            let exists: bool = txn
                .query_row("SELECT EXISTS(SELECT 1 FROM uploads WHERE id = ?1)", params![p.upload_id], |r| r.get(0))
                .map_err(backend)?;
            if !exists {
                return Err(StoreError::NotFound);
            }
            let old: Option<String> = txn
                .query_row(
                    "SELECT blob FROM parts WHERE upload = ?1 AND number = ?2",
                    params![p.upload_id, p.number],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            blob_ref(txn, &p.blob, p.size)?;
            if let Some(old) = old {
                blob_unref(txn, &old)?;
            }
            txn.execute(
                "INSERT INTO parts(upload, number, blob, size, etag, digests, modified) VALUES(?1,?2,?3,?4,?5,?6,?7)
                 ON CONFLICT(upload, number) DO UPDATE SET blob=?3, size=?4, etag=?5, digests=?6, modified=?7",
                params![p.upload_id, p.number, p.blob, p.size as i64, p.etag, to_json(&p.digests)?, now_ms()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn list_parts(&self, upload_id: &str, after: u32, limit: usize) -> StoreResult<Vec<PartRecord>> {
        let id = upload_id.to_owned();
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT upload, number, blob, size, etag, digests, modified FROM parts
                     WHERE upload = ?1 AND number > ?2 ORDER BY number LIMIT ?3",
                )
                .map_err(backend)?;
            let rows = st.query_map(params![id, after, limit as i64], part_from_row).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn complete_upload(&self, cu: CompleteUpload) -> StoreResult<ObjectRecord> {
        self.write(move |txn| {
            let upload = txn
                .query_row(
                    "SELECT id, bucket, key, tenant, created, meta, state, expires FROM uploads WHERE id = ?1",
                    params![cu.upload_id],
                    upload_from_row,
                )
                .optional()
                .map_err(backend)?
                .ok_or(StoreError::NotFound)?;
            let mut extents = Vec::with_capacity(cu.parts.len());
            let mut size = 0u64;
            for (number, etag) in &cu.parts {
                let part = txn
                    .query_row(
                        "SELECT upload, number, blob, size, etag, digests, modified FROM parts
                         WHERE upload = ?1 AND number = ?2",
                        params![cu.upload_id, number],
                        part_from_row,
                    )
                    .optional()
                    .map_err(backend)?
                    .ok_or_else(|| StoreError::Conflict(format!("part {number} is missing")))?;
                if &part.etag != etag {
                    return Err(StoreError::Conflict(format!("part {number} has changed")));
                }
                size += part.size;
                extents.push(Extent { blob: part.blob, size: part.size, digests: part.digests });
            }
            // A single extent already has whole-content digests; more need the background job.
            let digests = if extents.len() == 1 { Some(extents[0].digests.clone()) } else { None };
            let content =
                NewContent { size, etag: cu.etag.clone(), digests, extents, ufile_etag: cu.ufile_etag.clone() };
            let key = cu.key.clone().unwrap_or_else(|| upload.key.clone());
            if let Some(cond) = &cu.condition {
                let current = get_object_tx(txn, &upload.bucket, &key)?;
                let ok = match (cond, &current) {
                    (WriteCondition::Absent, None) => true,
                    (WriteCondition::EtagIs(e), Some(cur)) => e == "*" || *e == cur.etag,
                    _ => false,
                };
                if !ok {
                    return Err(StoreError::Conflict("precondition failed".into()));
                }
            }
            let content_id = insert_content(txn, &content)?;
            let obj = set_object(
                txn,
                &upload.bucket,
                &key,
                content_id,
                &cu.etag,
                &upload.meta,
                cu.modified_ms,
                cu.object_id.as_deref(),
                cu.quota_bytes,
            )?;
            if let Some(d) = &cu.digests {
                txn.execute("UPDATE contents SET digests = ?2 WHERE id = ?1", params![content_id, to_json(d)?])
                    .map_err(backend)?;
                index_content(txn, content_id, size, d)?;
            }
            drop_upload(txn, &cu.upload_id)?;
            Ok(obj)
        })
        .await
    }

    async fn abort_upload(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |txn| {
            let exists: bool = txn
                .query_row("SELECT EXISTS(SELECT 1 FROM uploads WHERE id = ?1)", params![id], |r| r.get(0))
                .map_err(backend)?;
            if !exists {
                return Err(StoreError::NotFound);
            }
            drop_upload(txn, &id)
        })
        .await
    }

    async fn create_ticket(&self, id: &str, payload: String, expires_ms: i64) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |txn| {
            txn.execute(
                "INSERT INTO challenges(id, record, expires) VALUES(?1, ?2, ?3)",
                params![id, payload, expires_ms],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_ticket(&self, id: &str) -> StoreResult<Option<Ticket>> {
        let id = id.to_owned();
        self.read(move |c| {
            c.query_row("SELECT record, expires, used FROM challenges WHERE id = ?1", params![id], |r| {
                Ok(Ticket { payload: r.get(0)?, expires_ms: r.get(1)?, used: r.get(2)? })
            })
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn use_ticket(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |txn| {
            let n = txn
                .execute("UPDATE challenges SET used = 1 WHERE id = ?1 AND used = 0", params![id])
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn create_challenge(&self, c: ChallengeRecord) -> StoreResult<()> {
        self.write(move |txn| {
            txn.execute(
                "INSERT INTO challenges(id, record, expires) VALUES(?1, ?2, ?3)",
                params![c.id, to_json(&c)?, c.expires_ms],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_challenge(&self, id: &str) -> StoreResult<Option<(ChallengeRecord, bool)>> {
        let id = id.to_owned();
        self.write(move |txn| {
            let row: Option<(String, bool)> = txn
                .query_row("SELECT record, used FROM challenges WHERE id = ?1", params![id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(backend)?;
            let Some((record, used)) = row else { return Ok(None) };
            txn.execute("UPDATE challenges SET used = 1 WHERE id = ?1", params![id]).map_err(backend)?;
            Ok(Some((from_json(&record).map_err(backend)?, used)))
        })
        .await
    }

    async fn purge_challenges(&self, cutoff_ms: i64) -> StoreResult<u64> {
        self.write(move |txn| {
            let n = txn.execute("DELETE FROM challenges WHERE expires < ?1", params![cutoff_ms]).map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }

    async fn expired_uploads(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<String>> {
        self.read(move |c| {
            let mut st = c
                .prepare("SELECT id FROM uploads WHERE expires IS NOT NULL AND expires < ?1 LIMIT ?2")
                .map_err(backend)?;
            let rows = st.query_map(params![now_ms, limit as i64], |r| r.get(0)).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn blob_known(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.read(move |c| {
            c.query_row("SELECT EXISTS(SELECT 1 FROM blobs WHERE id = ?1)", params![id], |r| r.get(0)).map_err(backend)
        })
        .await
    }

    async fn unreferenced_blobs(&self, cutoff_ms: i64, limit: usize) -> StoreResult<Vec<BlobId>> {
        self.read(move |c| {
            let mut st =
                c.prepare("SELECT id FROM blobs WHERE refs <= 0 AND zero_since <= ?1 LIMIT ?2").map_err(backend)?;
            let rows = st.query_map(params![cutoff_ms, limit as i64], |r| r.get(0)).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn forget_blob(&self, id: &str, cutoff_ms: i64) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |txn| {
            let n = txn
                .execute("DELETE FROM blobs WHERE id = ?1 AND refs <= 0 AND zero_since <= ?2", params![id, cutoff_ms])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        self.read(move |c| {
            let q = |sql: &str| -> StoreResult<u64> {
                c.query_row(sql, [], |r| r.get::<_, i64>(0)).map(|v| v as u64).map_err(backend)
            };
            Ok(StoreStats {
                buckets: q("SELECT count(*) FROM buckets")?,
                objects: q("SELECT count(*) FROM objects")?,
                logical_bytes: q("SELECT coalesce(sum(size), 0) FROM objects")?,
                contents: q("SELECT count(*) FROM contents")?,
                blobs: q("SELECT count(*) FROM blobs")?,
                physical_bytes: q("SELECT coalesce(sum(size), 0) FROM blobs")?,
                uploads: q("SELECT count(*) FROM uploads")?,
                parts: q("SELECT count(*) FROM parts")?,
                unreferenced_blobs: q("SELECT count(*) FROM blobs WHERE refs <= 0")?,
                pending_digests: q("SELECT count(*) FROM contents WHERE digests IS NULL OR ufile_etag IS NULL")?,
            })
        })
        .await
    }

    async fn check(&self) -> StoreResult<(Vec<(BlobId, u64)>, Vec<String>)> {
        self.read(move |c| {
            let mut problems = Vec::new();
            // Expected blob references: content extents plus upload parts.
            let mut expected: std::collections::HashMap<String, i64> = Default::default();
            {
                let mut st = c.prepare("SELECT id, extents FROM contents").map_err(backend)?;
                let mut rows = st.query([]).map_err(backend)?;
                while let Some(r) = rows.next().map_err(backend)? {
                    let id: i64 = r.get(0).map_err(backend)?;
                    let extents: Vec<Extent> = from_json(&r.get::<_, String>(1).map_err(backend)?).map_err(backend)?;
                    if extents.is_empty() && id < 0 {
                        problems.push(format!("content {id} has no extents"));
                    }
                    for e in extents {
                        *expected.entry(e.blob).or_default() += 1;
                    }
                }
                let mut st = c.prepare("SELECT blob FROM parts").map_err(backend)?;
                let mut rows = st.query([]).map_err(backend)?;
                while let Some(r) = rows.next().map_err(backend)? {
                    *expected.entry(r.get(0).map_err(backend)?).or_default() += 1;
                }
            }
            let mut blobs = Vec::new();
            {
                let mut st = c.prepare("SELECT id, size, refs FROM blobs").map_err(backend)?;
                let mut rows = st.query([]).map_err(backend)?;
                while let Some(r) = rows.next().map_err(backend)? {
                    let id: String = r.get(0).map_err(backend)?;
                    let size: i64 = r.get(1).map_err(backend)?;
                    let refs: i64 = r.get(2).map_err(backend)?;
                    let want = expected.remove(&id).unwrap_or(0);
                    if want != refs {
                        problems.push(format!("blob {id}: refs {refs}, but {want} references exist"));
                    }
                    blobs.push((id, size as u64));
                }
            }
            for (id, n) in expected {
                problems.push(format!("blob {id} is referenced {n} times but has no row"));
            }
            // Content reference counts against objects.
            let mut st = c
                .prepare("SELECT c.id, c.refs, (SELECT count(*) FROM objects o WHERE o.content = c.id) FROM contents c")
                .map_err(backend)?;
            let mut rows = st.query([]).map_err(backend)?;
            while let Some(r) = rows.next().map_err(backend)? {
                let (id, refs, n): (i64, i64, i64) =
                    (r.get(0).map_err(backend)?, r.get(1).map_err(backend)?, r.get(2).map_err(backend)?);
                if refs != n || n == 0 {
                    problems.push(format!("content {id}: refs {refs}, referenced by {n} objects"));
                }
            }
            let dangling: i64 = c
                .query_row(
                    "SELECT count(*) FROM objects o WHERE NOT EXISTS(SELECT 1 FROM contents c WHERE c.id = o.content)",
                    [],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if dangling > 0 {
                problems.push(format!("{dangling} objects point at missing content"));
            }
            Ok((blobs, problems))
        })
        .await
    }
}
