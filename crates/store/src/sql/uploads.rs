//! Upload sessions and their parts.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::db::Db;
use super::refs::*;
use super::rows::*;
use super::SqlMetaStore;
use crate::meta::*;
use crate::model::*;
use crate::now_ms;

/// The session if it exists and has not expired.
fn live_upload(txn: &Db, id: &str) -> StoreResult<Option<UploadRecord>> {
    txn.query_row(
        &format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = ?1 AND (expires IS NULL OR expires >= ?2)"),
        params![id, now_ms()],
        upload_from_row,
    )
    .optional()
    .map_err(backend)
}

/// `(bytes, highest part number)` of a session's parts.
fn progress(c: &Db, id: &str) -> StoreResult<(u64, u32)> {
    let (bytes, last): (i64, i64) = query_one(
        c,
        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT), CAST(COALESCE(MAX(number), 0) AS BIGINT) FROM parts WHERE upload = ?1",
        params![id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(backend)?;
    Ok((bytes as u64, last as u32))
}

/// Stores `p` as part `number` of its session, replacing (and unreferencing) a part with that
/// number.
fn insert_part(txn: &Db, p: &PartWrite, number: u32) -> StoreResult<PartRecord> {
    let old: Option<String> =
        query_one(txn, "SELECT blob FROM parts WHERE upload = ?1 AND number = ?2", params![p.upload_id, number], |r| {
            r.get(0)
        })
        .optional()
        .map_err(backend)?;
    let inline = blob_ref(txn, &p.blob, p.size, p.data.as_deref())?;
    let modified_ms = now_ms();
    if let Some(old) = old {
        blob_unref(txn, &old)?;
    }
    exec(
        txn,
        "INSERT INTO parts(upload, number, blob, size, etag, digests, modified) VALUES(?1,?2,?3,?4,?5,?6,?7)
         ON CONFLICT(upload, number) DO UPDATE SET blob=?3, size=?4, etag=?5, digests=?6, modified=?7",
        params![p.upload_id, number, p.blob, p.size as i64, p.etag, to_json(&p.digests)?, modified_ms],
    )
    .map_err(backend)?;
    Ok(PartRecord {
        upload_id: p.upload_id.clone(),
        number,
        blob: p.blob.clone(),
        size: p.size,
        etag: p.etag.clone(),
        digests: p.digests.clone(),
        modified_ms,
        inline,
    })
}

#[async_trait]
impl UploadStore for SqlMetaStore {
    async fn create_upload(&self, u: UploadRecord) -> StoreResult<()> {
        self.write(move |txn| {
            exec(
                txn,
                &format!("INSERT INTO uploads({UPLOAD_COLS}) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)"),
                params![
                    u.id,
                    u.bucket,
                    u.key,
                    u.tenant,
                    u.created_ms,
                    to_json(&u.meta)?,
                    u.state,
                    u.expires_ms,
                    u.kind.as_str()
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_upload(&self, id: &str) -> StoreResult<Option<UploadRecord>> {
        let id = id.to_owned();
        self.read(move |c| {
            c.query_row(&format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = ?1"), params![id], upload_from_row)
                .optional()
                .map_err(backend)
        })
        .await
    }

    async fn uploads_of_key(&self, bucket: &str, key: &str) -> StoreResult<Vec<UploadRecord>> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.read(move |c| {
            c.query_map(
                &format!(
                    "SELECT {UPLOAD_COLS} FROM uploads WHERE bucket = ?1 AND key = ?2
                       AND (expires IS NULL OR expires >= ?3) ORDER BY created DESC, id"
                ),
                params![bucket, key, now_ms()],
                upload_from_row,
            )
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
            c.query_map(
                &format!(
                    "SELECT {UPLOAD_COLS} FROM uploads
                     WHERE bucket = ?1 AND {} AND (key > ?4 OR (key = ?4 AND id > ?5)) AND kind <> 'tus'
                       AND (expires IS NULL OR expires >= ?7)
                     ORDER BY key, id LIMIT ?6",
                    prefix_test(c.dialect(), "key", 2, 3)
                ),
                params![bucket, prefix.len() as i64, prefix, key_marker, id_marker, limit as i64, now_ms()],
                upload_from_row,
            )
            .map_err(backend)
        })
        .await
    }

    async fn put_part(&self, p: PartWrite) -> StoreResult<PartRecord> {
        self.write(move |txn| {
            if live_upload(txn, &p.upload_id)?.is_none() {
                return Err(StoreError::NotFound);
            }
            insert_part(txn, &p, p.number)
        })
        .await
    }

    async fn append_part(&self, offset: u64, state: &str, p: PartWrite) -> StoreResult<Appended> {
        let state = state.to_owned();
        self.write(move |txn| {
            let Some(upload) = live_upload(txn, &p.upload_id)? else { return Err(StoreError::NotFound) };
            if upload.state != state {
                return Ok(Appended::StateChanged);
            }
            let (bytes, last) = progress(txn, &p.upload_id)?;
            if bytes != offset {
                return Ok(Appended::OffsetMismatch { actual: bytes });
            }
            let part = insert_part(txn, &p, last + 1)?;
            Ok(Appended::Part { offset: bytes + part.size, part })
        })
        .await
    }

    async fn upload_progress(&self, upload_id: &str) -> StoreResult<(u64, u32)> {
        let id = upload_id.to_owned();
        self.read(move |c| progress(c, &id)).await
    }

    async fn set_upload_state(&self, upload_id: &str, from: &str, to: &str) -> StoreResult<bool> {
        let (id, from, to) = (upload_id.to_owned(), from.to_owned(), to.to_owned());
        self.write(move |txn| {
            if live_upload(txn, &id)?.is_none() {
                return Err(StoreError::NotFound);
            }
            let n = exec(txn, "UPDATE uploads SET state = ?3 WHERE id = ?1 AND state = ?2", params![id, from, to])
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn adopt_parts(&self, upload_id: &str, sources: &[(String, u64)]) -> StoreResult<u64> {
        let (id, sources) = (upload_id.to_owned(), sources.to_vec());
        self.write(move |txn| {
            if live_upload(txn, &id)?.is_none() {
                return Err(StoreError::NotFound);
            }
            let (mut bytes, mut number) = progress(txn, &id)?;
            for (source, expected) in &sources {
                if live_upload(txn, source)?.is_none() {
                    return Err(StoreError::NotFound);
                }
                let parts: Vec<PartRecord> = txn
                    .query_map(
                        &format!("SELECT {PART_COLS} FROM parts WHERE upload = ?1 ORDER BY number"),
                        params![source],
                        part_from_row,
                    )
                    .map_err(backend)?;
                let held: u64 = parts.iter().map(|p| p.size).sum();
                if held != *expected {
                    return Err(StoreError::Conflict(format!("upload {source} holds {held} bytes, not {expected}")));
                }
                for part in parts {
                    number += 1;
                    let write = PartWrite {
                        upload_id: id.clone(),
                        number,
                        blob: part.blob,
                        size: part.size,
                        etag: part.etag,
                        digests: part.digests,
                        data: None, // the blob is referenced already: it stays where it is
                    };
                    insert_part(txn, &write, number)?;
                    bytes += write.size;
                }
            }
            Ok(bytes)
        })
        .await
    }

    async fn list_parts(&self, upload_id: &str, after: u32, limit: usize) -> StoreResult<Vec<PartRecord>> {
        let id = upload_id.to_owned();
        self.read(move |c| {
            c.query_map(
                &format!("SELECT {PART_COLS} FROM parts WHERE upload = ?1 AND number > ?2 ORDER BY number LIMIT ?3"),
                params![id, after, limit as i64],
                part_from_row,
            )
            .map_err(backend)
        })
        .await
    }

    async fn complete_upload(&self, cu: CompleteUpload) -> StoreResult<ObjectRecord> {
        self.write(move |txn| {
            let upload = live_upload(txn, &cu.upload_id)?.ok_or(StoreError::NotFound)?;
            let mut extents = Vec::with_capacity(cu.parts.len());
            let mut size = 0u64;
            for (number, etag) in &cu.parts {
                let part = txn
                    .query_row(
                        &format!("SELECT {PART_COLS} FROM parts WHERE upload = ?1 AND number = ?2"),
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
                extents.push(part.extent());
            }
            // A single extent already has whole-content digests (when they are complete); more
            // need the background job (unless the caller computed them).
            let digests = match (&cu.digests, extents.len()) {
                (Some(d), _) => Some(d.clone()),
                (None, 1) if extents[0].digests.is_complete() => Some(extents[0].digests.clone()),
                (None, _) => None,
            };
            let content =
                NewContent { size, etag: cu.etag.clone(), digests, extents, ufile_etag: cu.ufile_etag.clone() };
            let key = cu.key.clone().unwrap_or_else(|| upload.key.clone());
            if let Some(cond) = &cu.condition {
                check_condition(txn, &upload.bucket, &key, cond)?;
            }
            let owner = upload.meta.acl.as_ref().map(|a| a.owner.as_str());
            let content_id = content_for(txn, &upload.bucket, owner, &content)?;
            let obj = set_object(
                txn,
                SetObject {
                    bucket: &upload.bucket,
                    key: &key,
                    content_id,
                    etag: &cu.etag,
                    meta: &upload.meta,
                    modified_ms: cu.modified_ms,
                    new_id: cu.object_id.as_deref(),
                    tree: cu.tree,
                },
            )?;
            if let Some((from, _)) = &cu.keep_session {
                if &upload.state != from {
                    return Err(StoreError::Conflict("the upload session changed meanwhile".into()));
                }
            }
            match &cu.keep_session {
                Some((_, state)) => {
                    drop_parts(txn, &cu.upload_id)?;
                    exec(txn, "UPDATE uploads SET state = ?2 WHERE id = ?1", params![cu.upload_id, state])
                        .map_err(backend)?;
                }
                None => drop_upload(txn, &cu.upload_id)?,
            }
            Ok(obj)
        })
        .await
    }

    async fn abort_upload(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |txn| {
            require_upload(txn, &id)?;
            drop_upload(txn, &id)
        })
        .await
    }

    async fn abort_empty_upload(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |txn| {
            require_upload(txn, &id)?;
            let has_parts: bool =
                query_one(txn, "SELECT EXISTS(SELECT 1 FROM parts WHERE upload = ?1)", params![id], |r| r.get(0))
                    .map_err(backend)?;
            if has_parts {
                return Ok(false);
            }
            drop_upload(txn, &id)?;
            Ok(true)
        })
        .await
    }

    async fn expired_uploads(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<String>> {
        self.read(move |c| {
            c.query_map(
                "SELECT id FROM uploads WHERE expires IS NOT NULL AND expires < ?1 LIMIT ?2",
                params![now_ms, limit as i64],
                |r| r.get(0),
            )
            .map_err(backend)
        })
        .await
    }
}

/// `NotFound` unless the upload session `id` exists.
fn require_upload(txn: &Db, id: &str) -> StoreResult<()> {
    let exists: bool = query_one(txn, "SELECT EXISTS(SELECT 1 FROM uploads WHERE id = ?1)", params![id], |r| r.get(0))
        .map_err(backend)?;
    if !exists {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
