//! Row mappings and small helpers shared by the SQLite store's files.

use rusqlite::types::{Type, Value};
use rusqlite::ToSql;

use super::db::{Db, DbRow, Dialect, Params};
use crate::meta::StoreError;
use crate::model::*;

pub(crate) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// [`Db::execute`] (statements are cached: the writer runs the same ones thousands of times a
/// second, and compiling one costs more than running it).
pub(crate) fn exec(c: &Db, sql: &str, p: Params<'_>) -> rusqlite::Result<usize> {
    c.execute(sql, p)
}

/// [`Db::query_row`].
pub(crate) fn query_one<T>(
    c: &Db,
    sql: &str,
    p: Params<'_>,
    f: impl FnOnce(&DbRow<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.query_row(sql, p, f)
}

/// Parameters built at run time (a variable number of them) as [`Params`].
pub(crate) fn param_refs(values: &[Value]) -> Vec<&dyn ToSql> {
    values.iter().map(|v| v as &dyn ToSql).collect()
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(backend)
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> rusqlite::Result<T> {
    serde_json::from_str(s).map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))
}

fn bad_value(what: &str, v: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, Type::Text, format!("unknown {what} {v:?}").into())
}

/// [`Dialect::prefix_test`]: a byte-wise prefix test with the prefix's byte length as a
/// parameter, no `LIKE` (case folding, wildcards) in key matching.
pub(crate) fn prefix_test(d: Dialect, col: &str, len_param: usize, prefix_param: usize) -> String {
    d.prefix_test(col, len_param, prefix_param)
}

pub(crate) const CREDENTIAL_COLS: &str = "access_key, secret, tenant, kind, created, expires, scope, label";

pub(crate) fn credential_from_row(r: &DbRow<'_>) -> rusqlite::Result<CredentialRecord> {
    let kind: String = r.get(3)?;
    Ok(CredentialRecord {
        access_key: r.get(0)?,
        secret: r.get(1)?,
        tenant: r.get(2)?,
        kind: CredentialKind::parse(&kind).ok_or_else(|| bad_value("credential kind", &kind))?,
        created_ms: r.get(4)?,
        expires_ms: r.get(5)?,
        scope: r.get(6)?,
        label: r.get(7)?,
    })
}

pub(crate) const OBJECT_COLS: &str = "bucket, key, content, size, etag, modified, meta, id, created";

/// How many columns [`OBJECT_COLS`] names.
pub(crate) const OBJECT_COL_COUNT: usize = 9;

pub(crate) fn object_from_row(row: &DbRow<'_>) -> rusqlite::Result<ObjectRecord> {
    object_from_row_at(row, 0)
}

/// An object from [`OBJECT_COLS`] starting at column `at` of a wider row (a join).
pub(crate) fn object_from_row_at(row: &DbRow<'_>, at: usize) -> rusqlite::Result<ObjectRecord> {
    Ok(ObjectRecord {
        id: row.get(at + 7)?,
        bucket: row.get(at)?,
        key: row.get(at + 1)?,
        content_id: row.get(at + 2)?,
        size: row.get::<i64>(at + 3)? as u64,
        etag: row.get(at + 4)?,
        modified_ms: row.get(at + 5)?,
        created_ms: row.get(at + 8)?,
        meta: from_json(&row.get::<String>(at + 6)?)?,
    })
}

/// `cols` (a list such as [`OBJECT_COLS`]) with each column qualified by a table alias:
/// `qualified("a, b", "o")` is `"o.a, o.b"`.
pub(crate) fn qualified(cols: &str, alias: &str) -> String {
    cols.split(',').map(|c| format!("{alias}.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

/// A new object id: 40 hex digits, the shape of Aliyun Drive file ids.
pub(crate) fn new_object_id() -> String {
    format!("{}{:08x}", uuid::Uuid::new_v4().simple(), rand::random::<u32>())
}

pub(crate) const CONTENT_COLS: &str = "id, size, refs, etag, digests, extents, ufile_etag";

/// How many columns [`CONTENT_COLS`] names.
pub(crate) const CONTENT_COL_COUNT: usize = 7;

pub(crate) fn content_from_row(row: &DbRow<'_>) -> rusqlite::Result<ContentRecord> {
    content_from_row_at(row, 0)
}

/// A content from [`CONTENT_COLS`] starting at column `at` of a wider row (a join).
pub(crate) fn content_from_row_at(row: &DbRow<'_>, at: usize) -> rusqlite::Result<ContentRecord> {
    let digests: Option<String> = row.get(at + 4)?;
    Ok(ContentRecord {
        id: row.get(at)?,
        size: row.get::<i64>(at + 1)? as u64,
        refs: row.get(at + 2)?,
        etag: row.get(at + 3)?,
        digests: digests.map(|d| from_json(&d)).transpose()?,
        extents: from_json(&row.get::<String>(at + 5)?)?,
        ufile_etag: row.get(at + 6)?,
    })
}

pub(crate) const UPLOAD_COLS: &str = "id, bucket, key, tenant, created, meta, state, expires, kind";

pub(crate) fn upload_from_row(row: &DbRow<'_>) -> rusqlite::Result<UploadRecord> {
    let kind: String = row.get(8)?;
    Ok(UploadRecord {
        id: row.get(0)?,
        kind: UploadKind::parse(&kind).ok_or_else(|| bad_value("upload kind", &kind))?,
        bucket: row.get(1)?,
        key: row.get(2)?,
        tenant: row.get(3)?,
        created_ms: row.get(4)?,
        meta: from_json(&row.get::<String>(5)?)?,
        state: row.get(6)?,
        expires_ms: row.get(7)?,
    })
}

pub(crate) const PART_COLS: &str = "upload, number, blob, size, etag, digests, modified,
    coalesce((SELECT b.inline FROM blobs b WHERE b.id = parts.blob), 0)";

pub(crate) fn part_from_row(row: &DbRow<'_>) -> rusqlite::Result<PartRecord> {
    Ok(PartRecord {
        upload_id: row.get(0)?,
        number: row.get(1)?,
        blob: row.get(2)?,
        size: row.get::<i64>(3)? as u64,
        etag: row.get(4)?,
        digests: from_json(&row.get::<String>(5)?)?,
        modified_ms: row.get(6)?,
        inline: row.get(7)?,
    })
}

pub(crate) const BUCKET_COLS: &str = "name, tenant, public, region, created, config";

pub(crate) fn bucket_from_row(r: &DbRow<'_>) -> rusqlite::Result<BucketRecord> {
    let config: String = r.get(5)?;
    Ok(BucketRecord {
        name: r.get(0)?,
        tenant: r.get(1)?,
        public: r.get(2)?,
        region: r.get(3)?,
        created_ms: r.get(4)?,
        config: from_json(&config)?,
    })
}

pub(crate) fn grant_from_row(r: &DbRow<'_>, kind: GrantKind) -> rusqlite::Result<GrantRecord> {
    Ok(GrantRecord { kind, id: r.get(0)?, payload: r.get(1)?, expires_ms: r.get(2)?, used: r.get(3)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_counts_match_the_column_lists() {
        assert_eq!(OBJECT_COLS.split(',').count(), OBJECT_COL_COUNT);
        assert_eq!(CONTENT_COLS.split(',').count(), CONTENT_COL_COUNT);
        assert_eq!(qualified("a, b", "o"), "o.a, o.b");
    }
}
