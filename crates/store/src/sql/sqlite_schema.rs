//! The schema and its migrations, versioned with SQLite's `user_version`.
//!
//! Version 1 is the layout before it was versioned (`user_version` 0 with tables present);
//! version 2 added tenants, aliases, single-use grants, credential labels and upload kinds;
//! version 3 the file tree (object parents and creation times, folder rows, the trash);
//! version 4 bucket settings (ACL, CORS); version 5 callback request headers; version 6
//! inline blobs (small blobs' bytes kept in `inline_blobs`, `blobs.inline` set); version 7 blob
//! reservations and deletion marks (`blobs.claim`, `blobs.deleting`: GC and writers on several
//! nodes, see `MaintenanceStore::reserve_blob`); version 8 quotas in a table of their own
//! (`quotas`, moved from the `quota:TENANT` settings, so a write transaction reads its
//! tenant's storage limit and allowances are taken from one count) and digest job claims
//! (`contents.digest_lease`, see `ObjectStore::claim_pending_digests`); version 9 one row per
//! writer's blob reservation (`blob_claims`, so one writer's commit no longer ends another's
//! reservation; `blobs.claim` is no longer used); version 10 bucket byte counts spread over
//! rows (`bucket_bytes`, so concurrent writes into one bucket do not all update one row;
//! `buckets.bytes` is no longer used). Indexes that need no other change are added by the
//! schema's `CREATE INDEX IF NOT EXISTS` when a database is opened, without a new version
//! (`objects_by_etag`, 2026-12-02).

use rusqlite::{params, Connection};

use super::rows::backend;
use crate::meta::StoreResult;

/// The schema version this code writes.
pub(crate) const VERSION: i64 = 10;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tenants(name TEXT PRIMARY KEY, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS credentials(
    access_key TEXT PRIMARY KEY, secret TEXT NOT NULL, tenant TEXT NOT NULL,
    kind TEXT NOT NULL, created INTEGER NOT NULL, expires INTEGER, scope TEXT,
    label TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS credentials_by_tenant ON credentials(tenant, kind);
CREATE TABLE IF NOT EXISTS aliases(
    kind TEXT NOT NULL, alias TEXT NOT NULL, tenant TEXT NOT NULL,
    PRIMARY KEY(kind, alias)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS aliases_of_tenant ON aliases(kind, tenant);
CREATE TABLE IF NOT EXISTS settings(name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quotas(
    tenant TEXT PRIMARY KEY, storage_bytes INTEGER, download_bytes INTEGER, requests INTEGER,
    used_download_bytes INTEGER NOT NULL DEFAULT 0, used_requests INTEGER NOT NULL DEFAULT 0,
    generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS grants(
    kind TEXT NOT NULL, id TEXT NOT NULL, payload TEXT NOT NULL, expires INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(kind, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS grants_expiry ON grants(expires);
CREATE TABLE IF NOT EXISTS buckets(
    name TEXT PRIMARY KEY, tenant TEXT NOT NULL, public INTEGER NOT NULL,
    region TEXT NOT NULL, created INTEGER NOT NULL, bytes INTEGER NOT NULL DEFAULT 0,
    config TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS buckets_of_tenant ON buckets(tenant);
CREATE TABLE IF NOT EXISTS bucket_bytes(
    bucket TEXT NOT NULL, shard INTEGER NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY(bucket, shard)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS callbacks(
    id INTEGER PRIMARY KEY, url TEXT NOT NULL, body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL, created INTEGER NOT NULL, headers TEXT NOT NULL DEFAULT '[]');
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks(next_at);
CREATE TABLE IF NOT EXISTS usage(
    tenant TEXT NOT NULL, bucket TEXT NOT NULL, day INTEGER NOT NULL, storage INTEGER NOT NULL DEFAULT 0,
    downloads INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(tenant, day, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs(
    id TEXT PRIMARY KEY, size INTEGER NOT NULL, refs INTEGER NOT NULL, zero_since INTEGER,
    inline INTEGER NOT NULL DEFAULT 0, claim TEXT, deleting INTEGER);
CREATE TABLE IF NOT EXISTS inline_blobs(id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blob_claims(
    blob TEXT NOT NULL, claim TEXT NOT NULL, until INTEGER NOT NULL, PRIMARY KEY(blob, claim)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_unreferenced ON blobs(zero_since) WHERE refs = 0;
CREATE TABLE IF NOT EXISTS contents(
    id INTEGER PRIMARY KEY, size INTEGER NOT NULL, refs INTEGER NOT NULL, etag TEXT NOT NULL,
    digests TEXT, extents TEXT NOT NULL, created INTEGER NOT NULL, ufile_etag TEXT, digest_lease INTEGER);
CREATE INDEX IF NOT EXISTS contents_pending ON contents(size, id) WHERE digests IS NULL OR ufile_etag IS NULL;
CREATE TABLE IF NOT EXISTS hash_index(
    algo TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL, content INTEGER NOT NULL,
    PRIMARY KEY(algo, digest, size, content)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hash_index_content ON hash_index(content);
CREATE TABLE IF NOT EXISTS objects(
    bucket TEXT NOT NULL, key TEXT NOT NULL, content INTEGER NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, modified INTEGER NOT NULL, meta TEXT NOT NULL, id TEXT NOT NULL,
    parent TEXT, created INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(bucket, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS objects_content ON objects(content);
CREATE UNIQUE INDEX IF NOT EXISTS objects_id ON objects(bucket, id);
CREATE INDEX IF NOT EXISTS objects_by_name ON objects(bucket, parent, key);
CREATE INDEX IF NOT EXISTS objects_by_modified ON objects(bucket, parent, modified, key);
CREATE INDEX IF NOT EXISTS objects_by_created ON objects(bucket, parent, created, key);
CREATE INDEX IF NOT EXISTS objects_by_size ON objects(bucket, parent, size, key);
CREATE INDEX IF NOT EXISTS objects_by_etag ON objects(bucket, etag, size, content);
CREATE TABLE IF NOT EXISTS folders(
    bucket TEXT NOT NULL, key TEXT NOT NULL, parent TEXT NOT NULL, id TEXT NOT NULL,
    created INTEGER NOT NULL, modified INTEGER NOT NULL, meta TEXT NOT NULL, explicit INTEGER NOT NULL,
    size INTEGER NOT NULL DEFAULT 0, kept INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(bucket, key)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS folders_id ON folders(bucket, id);
CREATE INDEX IF NOT EXISTS folders_by_size ON folders(bucket, parent, size, key);
CREATE INDEX IF NOT EXISTS folders_by_name ON folders(bucket, parent, key);
CREATE INDEX IF NOT EXISTS folders_by_modified ON folders(bucket, parent, modified, key);
CREATE INDEX IF NOT EXISTS folders_by_created ON folders(bucket, parent, created, key);
CREATE TABLE IF NOT EXISTS trash(
    bucket TEXT NOT NULL, id TEXT NOT NULL, key TEXT NOT NULL, folder INTEGER NOT NULL, size INTEGER NOT NULL,
    trashed INTEGER NOT NULL, created INTEGER NOT NULL, modified INTEGER NOT NULL, meta TEXT NOT NULL,
    parent_explicit INTEGER NOT NULL, PRIMARY KEY(bucket, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trash_by_time ON trash(bucket, trashed, id);
CREATE INDEX IF NOT EXISTS trash_expiry ON trash(trashed);
CREATE TABLE IF NOT EXISTS trash_objects(
    bucket TEXT NOT NULL, item TEXT NOT NULL, key TEXT NOT NULL, content INTEGER NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, modified INTEGER NOT NULL, created INTEGER NOT NULL, meta TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY(bucket, item, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trash_objects_content ON trash_objects(content);
CREATE TABLE IF NOT EXISTS trash_folders(
    bucket TEXT NOT NULL, item TEXT NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL, created INTEGER NOT NULL,
    modified INTEGER NOT NULL, meta TEXT NOT NULL, explicit INTEGER NOT NULL, kept INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(bucket, item, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads(
    id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, tenant TEXT NOT NULL,
    created INTEGER NOT NULL, meta TEXT NOT NULL, state TEXT NOT NULL, expires INTEGER,
    kind TEXT NOT NULL DEFAULT 's3');
CREATE INDEX IF NOT EXISTS uploads_expiring ON uploads(expires) WHERE expires IS NOT NULL;
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads(bucket, key, id);
CREATE TABLE IF NOT EXISTS parts(
    upload TEXT NOT NULL, number INTEGER NOT NULL, blob TEXT NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, digests TEXT NOT NULL, modified INTEGER NOT NULL,
    PRIMARY KEY(upload, number)) WITHOUT ROWID;
"#;

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        params![name],
        |r| r.get(0),
    )
}

/// Brings the database to [`VERSION`] in one transaction; refuses a newer one.
pub(crate) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let txn = conn.transaction().map_err(backend)?;
    let mut version: i64 = txn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
    if version == 0 && table_exists(&txn, "credentials").map_err(backend)? {
        version = 1;
    }
    if version > VERSION {
        return Err(backend(format!(
            "the metadata database is schema version {version}, newer than this chuan ({VERSION}): run a newer chuan"
        )));
    }
    if version == 1 {
        from_v1(&txn).map_err(backend)?;
    }
    if (1..=2).contains(&version) {
        from_v2(&txn).map_err(backend)?;
    }
    if (1..=3).contains(&version) {
        from_v3(&txn).map_err(backend)?;
    }
    if (1..=4).contains(&version) {
        from_v4(&txn).map_err(backend)?;
    }
    if (1..=5).contains(&version) {
        from_v5(&txn).map_err(backend)?;
    }
    if (1..=6).contains(&version) {
        from_v6(&txn).map_err(backend)?;
    }
    if (1..=7).contains(&version) {
        from_v7(&txn).map_err(backend)?;
    }
    txn.execute_batch(SCHEMA).map_err(backend)?;
    if version == 1 {
        after_v1(&txn).map_err(backend)?;
    }
    if (1..=2).contains(&version) {
        after_v2(&txn)?;
    }
    if (1..=7).contains(&version) {
        after_v7(&txn).map_err(backend)?;
    }
    if (1..=8).contains(&version) {
        after_v8(&txn).map_err(backend)?;
    }
    if (1..=9).contains(&version) {
        after_v9(&txn).map_err(backend)?;
    }
    txn.pragma_update(None, "user_version", VERSION).map_err(backend)?;
    txn.commit().map_err(backend)
}

/// Columns the version-1 tables lack (before the schema's indexes refer to them).
fn from_v1(txn: &Connection) -> rusqlite::Result<()> {
    txn.execute_batch(
        "ALTER TABLE credentials ADD COLUMN label TEXT NOT NULL DEFAULT '';
         ALTER TABLE uploads ADD COLUMN kind TEXT NOT NULL DEFAULT 's3';
         DROP INDEX IF EXISTS contents_pending;",
    )
}

/// The tree columns of objects (before the schema's indexes refer to them).
fn from_v2(txn: &Connection) -> rusqlite::Result<()> {
    txn.execute_batch(
        "ALTER TABLE objects ADD COLUMN parent TEXT;
         ALTER TABLE objects ADD COLUMN created INTEGER NOT NULL DEFAULT 0;
         UPDATE objects SET created = modified;",
    )
}

/// Bucket settings (ACL, CORS) arrived in version 4; existing buckets have none.
fn from_v3(txn: &Connection) -> rusqlite::Result<()> {
    txn.execute_batch("ALTER TABLE buckets ADD COLUMN config TEXT NOT NULL DEFAULT '{}';")
}

/// Callback request headers (signed UpYun notifications) arrived in version 5.
fn from_v4(txn: &Connection) -> rusqlite::Result<()> {
    if table_exists(txn, "callbacks")? {
        txn.execute_batch("ALTER TABLE callbacks ADD COLUMN headers TEXT NOT NULL DEFAULT '[]';")?;
    }
    Ok(())
}

/// Inline blobs arrived in version 6: every blob before them is in the BlobStore. (Their
/// bytes are in a table of their own, so a reference count change does not rewrite them.)
fn from_v5(txn: &Connection) -> rusqlite::Result<()> {
    if table_exists(txn, "blobs")? {
        txn.execute_batch("ALTER TABLE blobs ADD COLUMN inline INTEGER NOT NULL DEFAULT 0;")?;
    }
    Ok(())
}

/// Blob reservations and deletion marks arrived in version 7 (none are open in older data).
fn from_v6(txn: &Connection) -> rusqlite::Result<()> {
    if table_exists(txn, "blobs")? {
        txn.execute_batch("ALTER TABLE blobs ADD COLUMN claim TEXT; ALTER TABLE blobs ADD COLUMN deleting INTEGER;")?;
    }
    Ok(())
}

/// Digest job claims arrived in version 8 (`contents.digest_lease`).
fn from_v7(txn: &Connection) -> rusqlite::Result<()> {
    if table_exists(txn, "contents")? {
        txn.execute_batch("ALTER TABLE contents ADD COLUMN digest_lease INTEGER;")?;
    }
    Ok(())
}

/// Quotas were settings (`quota:TENANT`, a JSON object) before version 8; their consumption
/// carries over.
fn after_v7(txn: &Connection) -> rusqlite::Result<()> {
    txn.execute_batch(
        "INSERT INTO quotas(tenant, storage_bytes, download_bytes, requests, used_download_bytes, used_requests, generation)
         SELECT substr(name, 7), json_extract(value, '$.storage_bytes'), json_extract(value, '$.download_bytes'),
                json_extract(value, '$.requests'), coalesce(json_extract(value, '$.used_download_bytes'), 0),
                coalesce(json_extract(value, '$.used_requests'), 0), 1
         FROM settings WHERE name LIKE 'quota:%' AND json_valid(value) AND json_type(value) = 'object';
         DELETE FROM settings WHERE name LIKE 'quota:%';",
    )
}

/// Reservations were one claim per blob row (`blobs.claim`) before version 9; an open one
/// carries over for a whole reservation grace.
fn after_v8(txn: &Connection) -> rusqlite::Result<()> {
    txn.execute(
        "INSERT INTO blob_claims(blob, claim, until) SELECT id, claim, ?1 FROM blobs WHERE claim IS NOT NULL",
        params![crate::now_ms() + crate::RESERVATION_GRACE_MS],
    )?;
    txn.execute_batch("UPDATE blobs SET claim = NULL WHERE claim IS NOT NULL;")
}

/// Bucket byte counts were one column (`buckets.bytes`) before version 10.
fn after_v9(txn: &Connection) -> rusqlite::Result<()> {
    txn.execute_batch(
        "INSERT INTO bucket_bytes(bucket, shard, bytes) SELECT name, 0, bytes FROM buckets WHERE bytes <> 0;
         UPDATE buckets SET bytes = 0 WHERE bytes <> 0;",
    )
}

/// The tree of version-2 data: each object's parent, and a folder row for every folder its
/// keys imply (an explicit folder takes its marker object's id, which Aliyun Drive clients
/// already hold as the folder's `file_id`).
fn after_v2(txn: &Connection) -> StoreResult<()> {
    let rows: Vec<(String, String, String, i64)> = {
        let mut st =
            txn.prepare("SELECT bucket, key, id, modified FROM objects ORDER BY bucket, key").map_err(backend)?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)?
    };
    let db = super::db::Db::sqlite(txn);
    for (bucket, key, id, modified) in rows {
        txn.execute(
            "UPDATE objects SET parent = ?3 WHERE bucket = ?1 AND key = ?2",
            params![bucket, key, super::tree::file_parent(&key)],
        )
        .map_err(backend)?;
        super::tree::tree_added(&db, &bucket, &key, &id, modified, false)?;
    }
    Ok(())
}

/// Version-1 data in the version-2 places: tenants from their credentials, COS appids from
/// settings into aliases, UpYun form secrets from settings into credentials, upload kinds from the sessions' state; single-use tickets are
/// short-lived and are dropped with their table.
fn after_v1(txn: &Connection) -> rusqlite::Result<()> {
    txn.execute_batch(
        "INSERT OR IGNORE INTO tenants(name, created)
             SELECT tenant, min(created) FROM (
                 SELECT tenant, created FROM credentials WHERE kind <> 'root'
                 UNION ALL SELECT tenant, created FROM buckets WHERE tenant <> 'root')
             GROUP BY tenant;
         UPDATE credentials SET label = coalesce(json_extract(scope, '$.name'), '')
             WHERE kind = 'ufile-token' AND json_valid(scope);
         INSERT OR IGNORE INTO aliases(kind, alias, tenant)
             SELECT 'cos-appid', b.value, a.value FROM settings a
               JOIN settings b ON b.name = 'cos.appid-of-tenant.' || a.value
             WHERE a.name = 'cos.tenant-of-appid.' || b.value;
         DELETE FROM settings WHERE name LIKE 'cos.tenant-of-appid.%' OR name LIKE 'cos.appid-of-tenant.%';
         INSERT OR IGNORE INTO credentials(access_key, secret, tenant, kind, created, expires, scope, label)
             SELECT 'upyun-form:' || b.name, s.value, b.tenant, 'upyun-form-secret', b.created, NULL,
                    json_object('ops', json_array('write'), 'buckets', json_array(b.name)), ''
             FROM settings s JOIN buckets b ON s.name = 'upyun.form_secret:' || b.name;
         DELETE FROM settings WHERE substr(name, 1, 18) = 'upyun.form_secret:';
         DROP TABLE IF EXISTS challenges;",
    )?;
    let states: Vec<(String, String)> = {
        let mut st = txn.prepare("SELECT id, state FROM uploads")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, state) in states {
        let dialect = serde_json::from_str::<serde_json::Value>(&state)
            .ok()
            .and_then(|v| v.get("dialect").and_then(|d| d.as_str()).map(str::to_owned));
        let kind = match dialect.as_deref() {
            Some("ufile") => "ufile",
            Some("cos") => "cos",
            Some("upyun") => "upyun",
            Some("upyun-m0") => "upyun-block",
            _ if state.contains("\"file_id\"") => "adrive",
            _ => "s3",
        };
        txn.execute("UPDATE uploads SET kind = ?2 WHERE id = ?1", params![id, kind])?;
    }
    move_protocol_attributes(txn, "objects", "bucket || char(0) || key")?;
    move_protocol_attributes(txn, "uploads", "id")
}

/// Version 1 kept COS's `biz_attr`, `ctime`, `sha1` and `authority`, and UpYun's
/// `Content-Secret`, as user metadata (`cos-*`, `upyun-content-secret`): they become
/// attributes, and `cos-authority` the object's access, so no user-metadata header can set
/// them any more.
fn move_protocol_attributes(txn: &Connection, table: &str, row_id: &str) -> rusqlite::Result<()> {
    let rows: Vec<(String, String)> = {
        let mut st = txn.prepare(&format!(
            "SELECT {row_id}, meta FROM {table} WHERE meta LIKE '%\"cos-%' OR meta LIKE '%upyun-content-secret%'"
        ))?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, meta) in rows {
        let Ok(serde_json::Value::Object(mut m)) = serde_json::from_str::<serde_json::Value>(&meta) else { continue };
        let Some(serde_json::Value::Object(mut user)) = m.remove("user") else { continue };
        let mut attrs = match m.remove("attrs") {
            Some(serde_json::Value::Object(a)) => a,
            _ => serde_json::Map::new(),
        };
        let names: Vec<String> =
            user.keys().filter(|k| k.starts_with("cos-") || *k == "upyun-content-secret").cloned().collect();
        for name in names {
            let value = user.remove(&name).unwrap_or_default();
            if name == "cos-authority" {
                match value.as_str() {
                    Some("eWPrivateRPublic") => m.insert("access".into(), "public-read".into()),
                    Some("eWRPrivate") => m.insert("access".into(), "private".into()),
                    _ => None,
                };
            } else {
                attrs.insert(name, value);
            }
        }
        if !user.is_empty() {
            m.insert("user".into(), serde_json::Value::Object(user));
        }
        if !attrs.is_empty() {
            m.insert("attrs".into(), serde_json::Value::Object(attrs));
        }
        txn.execute(
            &format!("UPDATE {table} SET meta = ?2 WHERE {row_id} = ?1"),
            params![id, serde_json::Value::Object(m).to_string()],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::meta::*;
    use crate::model::*;

    /// The layout before versioning (`b679a9f`), as a data directory of that time has it.
    const V1: &str = r#"
CREATE TABLE credentials(access_key TEXT PRIMARY KEY, secret TEXT NOT NULL, tenant TEXT NOT NULL,
    kind TEXT NOT NULL, created INTEGER NOT NULL, expires INTEGER, scope TEXT);
CREATE TABLE settings(name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE challenges(id TEXT PRIMARY KEY, record TEXT NOT NULL, expires INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0);
CREATE TABLE buckets(name TEXT PRIMARY KEY, tenant TEXT NOT NULL, public INTEGER NOT NULL,
    region TEXT NOT NULL, created INTEGER NOT NULL, bytes INTEGER NOT NULL DEFAULT 0);
CREATE TABLE contents(id INTEGER PRIMARY KEY, size INTEGER NOT NULL, refs INTEGER NOT NULL, etag TEXT NOT NULL,
    digests TEXT, extents TEXT NOT NULL, created INTEGER NOT NULL, ufile_etag TEXT);
CREATE INDEX contents_pending ON contents(id) WHERE digests IS NULL OR ufile_etag IS NULL;
CREATE TABLE uploads(id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, tenant TEXT NOT NULL,
    created INTEGER NOT NULL, meta TEXT NOT NULL, state TEXT NOT NULL, expires INTEGER);
INSERT INTO credentials VALUES('AK', 'SK', 'alice', 's3', 5, NULL, NULL);
INSERT INTO credentials VALUES('root', 'x', 'root', 'root', 1, NULL, NULL);
INSERT INTO settings VALUES('cos.tenant-of-appid.1250000007', 'alice');
INSERT INTO settings VALUES('cos.appid-of-tenant.alice', '1250000007');
INSERT INTO settings VALUES('upyun.form_secret:photos', 'formsecret');
INSERT INTO settings VALUES('quota:alice', '{"storage_bytes":1000,"requests":50,"used_download_bytes":7,"used_requests":3}');
INSERT INTO buckets VALUES('photos', 'alice', 0, 'r', 9, 42);
INSERT INTO uploads VALUES('u1', 'photos', 'k', 'alice', 1, '{"user":{"cos-biz-attr":"b"}}', '{"dialect":"cos","filesize":1}', 5);
INSERT INTO credentials VALUES('TOKEN_x', 'y', 'alice', 'ufile-token', 7, NULL, '{"ops":["read"],"name":"reader"}');
INSERT INTO credentials VALUES('adrive-refresh:ab', 'z', 'drivers', 'adrive-refresh', 3, NULL, NULL);
CREATE TABLE objects(bucket TEXT NOT NULL, key TEXT NOT NULL, content INTEGER NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, modified INTEGER NOT NULL, meta TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY(bucket, key)) WITHOUT ROWID;
INSERT INTO objects VALUES('photos', 'a.txt', 1, 1, 'e', 1,
    '{"user":{"cos-authority":"eWRPrivate","cos-biz-attr":"x","color":"blue"}}', 'i1');
INSERT INTO objects VALUES('photos', 'b.txt', 1, 1, 'e', 1, '{"user":{"upyun-content-secret":"s"}}', 'i2');
INSERT INTO uploads VALUES('u2', 'photos', 'k', 'alice', 1, '{}', '{}', NULL);
INSERT INTO objects VALUES('photos', 'dir/', 1, 0, 'e', 3, '{}', 'marker-id');
INSERT INTO objects VALUES('photos', 'dir/sub/f.txt', 1, 1, 'e', 4, '{}', 'i4');
"#;

    #[tokio::test]
    async fn a_version_1_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        rusqlite::Connection::open(&path).unwrap().execute_batch(V1).unwrap();
        let s = crate::SqlMetaStore::open_sqlite(&path).unwrap();
        assert_eq!(s.get_tenant("alice").await.unwrap().unwrap().created_ms, 5);
        assert!(s.get_tenant("root").await.unwrap().is_none(), "the root credential is no tenant");
        assert_eq!(s.get_credential("AK").await.unwrap().unwrap().kind, CredentialKind::TenantKey);
        assert_eq!(s.resolve_alias("cos-appid", "1250000007").await.unwrap().as_deref(), Some("alice"));
        assert_eq!(s.get_setting("cos.appid-of-tenant.alice").await.unwrap(), None);
        let form = s.get_credential("upyun-form:photos").await.unwrap().unwrap();
        assert_eq!(
            (form.kind, form.secret.as_str(), form.tenant.as_str()),
            (CredentialKind::UpyunFormSecret, "formsecret", "alice")
        );
        assert_eq!(s.get_upload("u1").await.unwrap().unwrap().kind, UploadKind::Cos);
        assert_eq!(s.get_upload("u2").await.unwrap().unwrap().kind, UploadKind::S3);
        assert!(s.get_tenant("drivers").await.unwrap().is_some(), "tenants of any credential kind are kept");
        assert_eq!(s.get_credential("TOKEN_x").await.unwrap().unwrap().label, "reader");
        assert_eq!(form.scope.as_deref(), Some(r#"{"ops":["write"],"buckets":["photos"]}"#));
        let a = s.get_object("photos", "a.txt").await.unwrap().unwrap();
        assert_eq!(a.meta.access, ObjectAccess::Private);
        assert_eq!(a.meta.attrs.get("cos-biz-attr").map(String::as_str), Some("x"));
        assert_eq!(a.meta.user.len(), 1, "only the user's own metadata stays user metadata: {:?}", a.meta.user);
        let b = s.get_object("photos", "b.txt").await.unwrap().unwrap();
        assert_eq!(b.meta.attrs.get("upyun-content-secret").map(String::as_str), Some("s"));
        assert!(b.meta.user.is_empty());
        let u1 = s.get_upload("u1").await.unwrap().unwrap();
        assert_eq!(u1.meta.attrs.get("cos-biz-attr").map(String::as_str), Some("b"));
        // The tree of the old keys: the explicit folder keeps its marker's id, the implied
        // one has a row, files have parents and creation times.
        let dir = s.get_entry("photos", "dir/").await.unwrap().unwrap();
        assert!(matches!(&dir, TreeEntry::Folder(f) if f.explicit && f.id == "marker-id"), "{dir:?}");
        assert!(matches!(s.get_entry("photos", "dir/sub/").await.unwrap(), Some(TreeEntry::Folder(f)) if !f.explicit));
        let top = s.list_folder("photos", &FolderQuery::default(), None, 10).await.unwrap();
        assert_eq!(top.iter().map(|e| e.key()).collect::<Vec<_>>(), ["a.txt", "b.txt", "dir/"]);
        assert_eq!(s.get_object("photos", "dir/sub/f.txt").await.unwrap().unwrap().created_ms, 4);
        // Quotas moved from settings to their table, consumption kept.
        let q = s.get_quota("alice").await.unwrap().unwrap();
        assert_eq!(q.limits, QuotaLimits { storage_bytes: Some(1000), download_bytes: None, requests: Some(50) });
        assert_eq!((q.used_download_bytes, q.used_requests), (7, 3));
        assert_eq!(s.get_setting("quota:alice").await.unwrap(), None);
        // The bucket's byte count moved to its rows.
        assert_eq!(s.bucket_bytes("photos").await.unwrap(), 42);
        assert_eq!(s.tenant_bytes("alice").await.unwrap(), 42);
        drop(s);
        // Opening again is a no-op.
        let s = crate::SqlMetaStore::open_sqlite(&path).unwrap();
        assert_eq!(s.list_tenants().await.unwrap().len(), 2);
    }

    /// A version-8 database's open blob reservation (`blobs.claim`) becomes a claim.
    #[tokio::test]
    async fn a_version_8_reservation_carries_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        drop(crate::SqlMetaStore::open_sqlite(&path).unwrap());
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "DROP TABLE blob_claims; PRAGMA user_version = 8;
                 INSERT INTO blobs(id, size, refs, zero_since, inline, claim) VALUES('b1', 5, 0, 0, 0, 'w');",
            )
            .unwrap();
        let s = crate::SqlMetaStore::open_sqlite(&path).unwrap();
        assert_eq!(s.forget_blob("b1", crate::now_ms() + 1).await.unwrap(), None, "still reserved");
        assert!(s.release_blob("b1", "w").await.unwrap().is_some(), "the writer's claim carried over");
    }
}
