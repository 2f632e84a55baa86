//! Garbage collection support, statistics and the consistency check.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::rows::*;
use super::SqlMetaStore;
use crate::meta::*;
use crate::model::*;
use crate::now_ms;

#[async_trait]
impl MaintenanceStore for SqlMetaStore {
    async fn blob_inline(&self, id: &str) -> StoreResult<Option<bool>> {
        let id = id.to_owned();
        self.read(move |c| {
            c.query_row("SELECT inline FROM blobs WHERE id = ?1", params![id], |r| r.get(0)).optional().map_err(backend)
        })
        .await
    }

    async fn unreferenced_blobs(&self, cutoff_ms: i64, limit: usize) -> StoreResult<Vec<BlobId>> {
        self.read(move |c| {
            let now = now_ms();
            // Only what forget_blob would free: reserved rows and fresh marks would fill the
            // page and starve the rest.
            c.query_map(
                "SELECT id FROM blobs WHERE refs <= 0 AND zero_since <= ?1
                   AND NOT EXISTS (SELECT 1 FROM blob_claims c WHERE c.blob = blobs.id AND c.until > ?3)
                   AND (deleting IS NULL OR deleting <= ?4) LIMIT ?2",
                params![cutoff_ms, limit as i64, now, now - STALE_DELETION_MS],
                |r| r.get(0),
            )
            .map_err(backend)
        })
        .await
    }

    async fn forget_blob(&self, id: &str, cutoff_ms: i64) -> StoreResult<Option<ForgottenBlob>> {
        let id = id.to_owned();
        self.write(move |txn| {
            let now = now_ms();
            // Claims of writers that died lapse.
            txn.execute("DELETE FROM blob_claims WHERE blob = ?1 AND until <= ?2", params![id, now])
                .map_err(backend)?;
            // Unreferenced since the cutoff, and no writer's claim on it.
            const FREE: &str =
                "refs <= 0 AND zero_since <= ?2 AND NOT EXISTS (SELECT 1 FROM blob_claims c WHERE c.blob = ?1)";
            let inline: Option<i64> = txn
                .query_row(
                    &format!("DELETE FROM blobs WHERE id = ?1 AND inline = 1 AND {FREE} RETURNING size"),
                    params![id, cutoff_ms],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if let Some(size) = inline {
                txn.execute("DELETE FROM inline_blobs WHERE id = ?1", params![id]).map_err(backend)?;
                return Ok(Some(ForgottenBlob { size: size as u64, inline: true }));
            }
            let marked: Option<i64> = txn
                .query_row(
                    &format!(
                        "UPDATE blobs SET deleting = ?3 WHERE id = ?1 AND inline = 0 AND {FREE}
                           AND (deleting IS NULL OR deleting <= ?4) RETURNING size"
                    ),
                    params![id, cutoff_ms, now, now - STALE_DELETION_MS],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            Ok(marked.map(|size| ForgottenBlob { size: size as u64, inline: false }))
        })
        .await
    }

    async fn reserve_blob(&self, id: &str, size: u64, claim: &str) -> StoreResult<bool> {
        let (id, claim) = (id.to_owned(), claim.to_owned());
        self.write(move |txn| {
            let now = now_ms();
            let deleting: Option<Option<i64>> = txn
                .query_row("SELECT deleting FROM blobs WHERE id = ?1", params![id], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            if let Some(Some(since)) = deleting {
                if since > now - STALE_DELETION_MS {
                    return Err(StoreError::Conflict(format!("blob {id} is being deleted")));
                }
            }
            let created = deleting.is_none();
            // A stale mark is dropped: its deleter died, and the bytes are written again.
            txn.execute(
                "INSERT INTO blobs(id, size, refs, zero_since, inline) VALUES(?1, ?2, 0, ?3, 0)
                 ON CONFLICT(id) DO UPDATE SET deleting = NULL,
                     zero_since = CASE WHEN blobs.refs <= 0 THEN ?3 ELSE blobs.zero_since END
                 WHERE blobs.inline = 0",
                params![id, size as i64, now],
            )
            .map_err(backend)?;
            // One claim per writer (an inline row's too: it keeps GC off until the commit).
            txn.execute(
                "INSERT INTO blob_claims(blob, claim, until) VALUES(?1, ?2, ?3)
                 ON CONFLICT(blob, claim) DO UPDATE SET until = ?3",
                params![id, claim, now + RESERVATION_GRACE_MS],
            )
            .map_err(backend)?;
            Ok(created)
        })
        .await
    }

    async fn release_blob(&self, id: &str, claim: &str) -> StoreResult<Option<ForgottenBlob>> {
        let (id, claim) = (id.to_owned(), claim.to_owned());
        self.write(move |txn| {
            let now = now_ms();
            txn.execute("DELETE FROM blob_claims WHERE blob = ?1 AND claim = ?2", params![id, claim])
                .map_err(backend)?;
            let marked: Option<i64> = txn
                .query_row(
                    "UPDATE blobs SET deleting = ?2
                     WHERE id = ?1 AND refs <= 0 AND inline = 0 AND deleting IS NULL
                       AND NOT EXISTS (SELECT 1 FROM blob_claims c WHERE c.blob = ?1 AND c.until > ?2)
                     RETURNING size",
                    params![id, now],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            Ok(marked.map(|size| ForgottenBlob { size: size as u64, inline: false }))
        })
        .await
    }

    async fn end_claim(&self, id: &str, claim: &str) -> StoreResult<()> {
        let (id, claim) = (id.to_owned(), claim.to_owned());
        self.write(move |txn| {
            txn.execute("DELETE FROM blob_claims WHERE blob = ?1 AND claim = ?2", params![id, claim])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn drop_blob(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |txn| {
            let dropped = txn
                .execute("DELETE FROM blobs WHERE id = ?1 AND deleting IS NOT NULL AND refs <= 0", params![id])
                .map_err(backend)?;
            if dropped > 0 {
                // Only lapsed ones: nobody reserves a marked row.
                txn.execute("DELETE FROM blob_claims WHERE blob = ?1", params![id]).map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn unmark_blob(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |txn| {
            txn.execute(
                "UPDATE blobs SET deleting = NULL, zero_since = ?2
                 WHERE id = ?1 AND deleting IS NOT NULL AND refs <= 0",
                params![id, now_ms()],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        self.read(move |c| {
            let q = |sql: &str| -> StoreResult<u64> {
                c.query_row(sql, &[], |r| r.get::<i64>(0)).map(|v| v as u64).map_err(backend)
            };
            Ok(StoreStats {
                buckets: q("SELECT count(*) FROM buckets")?,
                objects: q("SELECT count(*) FROM objects")?,
                logical_bytes: q("SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM objects")?,
                contents: q("SELECT count(*) FROM contents")?,
                blobs: q("SELECT count(*) FROM blobs")?,
                physical_bytes: q("SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM blobs")?,
                inline_blobs: q("SELECT count(*) FROM blobs WHERE inline = 1")?,
                inline_bytes: q("SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM blobs WHERE inline = 1")?,
                uploads: q("SELECT count(*) FROM uploads")?,
                parts: q("SELECT count(*) FROM parts")?,
                unreferenced_blobs: q("SELECT count(*) FROM blobs WHERE refs <= 0")?,
                pending_digests: q("SELECT count(*) FROM contents WHERE digests IS NULL OR ufile_etag IS NULL")?,
            })
        })
        .await
    }

    async fn check(&self) -> StoreResult<(Vec<StoredBlob>, Vec<String>)> {
        self.read(move |c| {
            let mut problems = Vec::new();
            // Expected blob references: content extents plus upload parts.
            let mut expected: std::collections::HashMap<String, i64> = Default::default();
            {
                c.query_map("SELECT id, extents FROM contents", &[], |r| {
                    let id: i64 = r.get(0)?;
                    let extents: Vec<Extent> = from_json(&r.get::<String>(1)?)?;
                    if extents.is_empty() && id < 0 {
                        problems.push(format!("content {id} has no extents"));
                    }
                    for e in extents {
                        *expected.entry(e.blob).or_default() += 1;
                    }
                    Ok(())
                })
                .map_err(backend)?;
                c.query_map("SELECT blob FROM parts", &[], |r| {
                    *expected.entry(r.get(0)?).or_default() += 1;
                    Ok(())
                })
                .map_err(backend)?;
            }
            let mut blobs = Vec::new();
            {
                let rows = c
                    .query_map(
                        "SELECT b.id, b.size, b.refs, b.inline, length(i.data)
                         FROM blobs b LEFT JOIN inline_blobs i ON i.id = b.id",
                        &[],
                        |r| {
                            Ok((
                                r.get::<String>(0)?,
                                r.get::<i64>(1)?,
                                r.get::<i64>(2)?,
                                r.get::<bool>(3)?,
                                r.get::<Option<i64>>(4)?,
                            ))
                        },
                    )
                    .map_err(backend)?;
                for (id, size, refs, inline, held) in rows {
                    let want = expected.remove(&id).unwrap_or(0);
                    if want != refs {
                        problems.push(format!("blob {id}: refs {refs}, but {want} references exist"));
                    }
                    match (inline, held) {
                        (false, None) => blobs.push(StoredBlob { id, size: size as u64, referenced: refs > 0 }),
                        (true, Some(n)) if n == size => {}
                        (true, Some(n)) => {
                            problems.push(format!("inline blob {id} holds {n} bytes, {size} in its row"))
                        }
                        (true, None) => problems.push(format!("inline blob {id} has no bytes")),
                        (false, Some(_)) => problems.push(format!("blob {id} has inline bytes but is not inline")),
                    }
                }
            }
            let strays: i64 = c
                .query_row(
                    "SELECT count(*) FROM inline_blobs i WHERE NOT EXISTS(SELECT 1 FROM blobs b WHERE b.id = i.id)",
                    &[],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if strays > 0 {
                problems.push(format!("{strays} inline blobs without a blob row"));
            }
            for (id, n) in expected {
                problems.push(format!("blob {id} is referenced {n} times but has no row"));
            }
            // Content reference counts against objects.
            let rows = c
                .query_map(
                    "SELECT c.id, c.refs, (SELECT count(*) FROM objects o WHERE o.content = c.id)
                            + (SELECT count(*) FROM trash_objects t WHERE t.content = c.id) FROM contents c",
                    &[],
                    |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?, r.get::<i64>(2)?)),
                )
                .map_err(backend)?;
            for (id, refs, n) in rows {
                if refs != n || n == 0 {
                    problems.push(format!("content {id}: refs {refs}, referenced by {n} objects"));
                }
            }
            let dangling: i64 = c
                .query_row(
                    "SELECT count(*) FROM objects o WHERE NOT EXISTS(SELECT 1 FROM contents c WHERE c.id = o.content)",
                    &[],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if dangling > 0 {
                problems.push(format!("{dangling} objects point at missing content"));
            }
            // The tree: every entry's folder exists, and every folder has a marker or an entry.
            for (sql, what) in [
                (
                    "SELECT count(*) FROM objects o WHERE o.parent <> '' AND NOT EXISTS(
                         SELECT 1 FROM folders f WHERE f.bucket = o.bucket AND f.key = o.parent)",
                    "files in a folder that has no folder row",
                ),
                (
                    "SELECT count(*) FROM folders c WHERE c.parent <> '' AND NOT EXISTS(
                         SELECT 1 FROM folders f WHERE f.bucket = c.bucket AND f.key = c.parent)",
                    "folders in a folder that has no folder row",
                ),
                (
                    "SELECT count(*) FROM objects o WHERE o.parent IS NULL AND NOT EXISTS(
                         SELECT 1 FROM folders f WHERE f.bucket = o.bucket AND f.key = o.key AND f.explicit = 1)",
                    "folder markers without an explicit folder row",
                ),
                (
                    "SELECT count(*) FROM folders f WHERE f.explicit = 0 AND f.kept = 0
                         AND NOT EXISTS(SELECT 1 FROM objects o WHERE o.bucket = f.bucket AND o.parent = f.key)
                         AND NOT EXISTS(SELECT 1 FROM folders c WHERE c.bucket = f.bucket AND c.parent = f.key)",
                    "implied folders that hold nothing",
                ),
                (
                    "SELECT count(*) FROM folders f WHERE NOT EXISTS(SELECT 1 FROM buckets b WHERE b.name = f.bucket)",
                    "folders of buckets that do not exist",
                ),
                (
                    "SELECT count(*) FROM folders f WHERE f.explicit = 1 AND NOT EXISTS(
                         SELECT 1 FROM objects o WHERE o.bucket = f.bucket AND o.key = f.key)",
                    "explicit folders without a marker object",
                ),
            ] {
                let n: i64 = c.query_row(sql, &[], |r| r.get(0)).map_err(backend)?;
                if n > 0 {
                    problems.push(format!("{n} {what}"));
                }
            }
            Ok((blobs, problems))
        })
        .await
    }
}
