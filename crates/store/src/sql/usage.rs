//! Usage counters, stored-byte totals and the outgoing callback queue.

use async_trait::async_trait;
use rusqlite::params;

use super::rows::*;
use super::SqlMetaStore;
use crate::meta::*;
use crate::now_ms;

#[async_trait]
impl UsageStore for SqlMetaStore {
    async fn add_usage(&self, rows: Vec<UsageDelta>) -> StoreResult<()> {
        self.write(move |txn| {
            for u in &rows {
                exec(
                    txn,
                    "INSERT INTO usage(tenant, bucket, day, storage, downloads, requests)
                     VALUES(?1, ?2, ?3, (SELECT CAST(coalesce(sum(bytes), 0) AS BIGINT) FROM bucket_bytes WHERE bucket = ?2), ?4, ?5)
                     ON CONFLICT(tenant, day, bucket) DO UPDATE SET
                       downloads = usage.downloads + ?4, requests = usage.requests + ?5,
                       storage = CASE WHEN usage.storage > excluded.storage THEN usage.storage ELSE excluded.storage END",
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
            c.query_map("SELECT day, CAST(sum(storage) AS BIGINT), CAST(sum(downloads) AS BIGINT), CAST(sum(requests) AS BIGINT) FROM usage
                     WHERE tenant = ?1 AND day BETWEEN ?2 AND ?3 GROUP BY day ORDER BY day", params![tenant, from_day, to_day], |r| {
                    Ok(UsageDay {
                        day: r.get(0)?,
                        storage: r.get::<i64>(1)? as u64,
                        downloads: r.get::<i64>(2)? as u64,
                        requests: r.get::<i64>(3)? as u64,
                    })
                }).map_err(backend)
        })
        .await
    }

    async fn tenant_bytes(&self, tenant: &str) -> StoreResult<u64> {
        let tenant = tenant.to_owned();
        self.read(move |c| {
            query_one(c, super::refs::TENANT_BYTES_OF, params![tenant], |r| r.get::<i64>(0))
                .map(|v| v as u64)
                .map_err(backend)
        })
        .await
    }

    async fn bucket_bytes(&self, bucket: &str) -> StoreResult<u64> {
        let bucket = bucket.to_owned();
        self.read(move |c| {
            query_one(c, super::refs::BUCKET_BYTES_OF, params![bucket], |r| r.get::<i64>(0))
                .map(|v| v as u64)
                .map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl CallbackStore for SqlMetaStore {
    async fn enqueue_callback(&self, url: String, headers: Vec<(String, String)>, body: String) -> StoreResult<()> {
        let headers = serde_json::to_string(&headers).map_err(backend)?;
        self.write(move |txn| {
            let now = now_ms();
            exec(
                txn,
                "INSERT INTO callbacks(url, body, next_at, created, headers) VALUES(?1, ?2, ?3, ?3, ?4)",
                params![url, body, now, headers],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn claim_callbacks(&self, now: i64, lease_until: i64, limit: usize) -> StoreResult<Vec<Callback>> {
        self.write(move |c| {
            c.query_map(
                "UPDATE callbacks SET next_at = ?3 WHERE id IN (
                     SELECT id FROM callbacks WHERE next_at <= ?1 ORDER BY next_at, id LIMIT ?2)
                 RETURNING id, url, body, attempts, headers",
                params![now, limit as i64, lease_until],
                |r| {
                    Ok(Callback {
                        id: r.get(0)?,
                        url: r.get(1)?,
                        body: r.get(2)?,
                        attempts: r.get::<i64>(3)? as u32,
                        headers: serde_json::from_str(&r.get::<String>(4)?).unwrap_or_default(),
                    })
                },
            )
            .map_err(backend)
        })
        .await
    }

    async fn finish_callback(&self, id: i64, retry_at: Option<i64>) -> StoreResult<()> {
        self.write(move |txn| {
            match retry_at {
                Some(at) => exec(
                    txn,
                    "UPDATE callbacks SET attempts = attempts + 1, next_at = ?2 WHERE id = ?1",
                    params![id, at],
                ),
                None => exec(txn, "DELETE FROM callbacks WHERE id = ?1", params![id]),
            }
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
