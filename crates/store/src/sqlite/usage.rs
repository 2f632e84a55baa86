//! Usage counters, stored-byte totals and the outgoing callback queue.

use async_trait::async_trait;
use rusqlite::params;

use super::rows::*;
use super::SqliteMetaStore;
use crate::meta::*;
use crate::now_ms;

#[async_trait]
impl UsageStore for SqliteMetaStore {
    async fn add_usage(&self, rows: Vec<UsageDelta>) -> StoreResult<()> {
        self.write(move |txn| {
            for u in &rows {
                exec(
                    txn,
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
            query_one(c, "SELECT coalesce(sum(bytes), 0) FROM buckets WHERE tenant = ?1", params![tenant], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
            .map_err(backend)
        })
        .await
    }

    async fn bucket_bytes(&self, bucket: &str) -> StoreResult<u64> {
        let bucket = bucket.to_owned();
        self.read(move |c| {
            query_one(c, "SELECT coalesce(max(bytes), 0) FROM buckets WHERE name = ?1", params![bucket], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
            .map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl CallbackStore for SqliteMetaStore {
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

    async fn due_callbacks(&self, now: i64, limit: usize) -> StoreResult<Vec<Callback>> {
        self.read(move |c| {
            let mut st = c
                .prepare(
                    "SELECT id, url, body, attempts, headers FROM callbacks WHERE next_at <= ?1 ORDER BY next_at LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![now, limit as i64], |r| {
                    Ok(Callback {
                        id: r.get(0)?,
                        url: r.get(1)?,
                        body: r.get(2)?,
                        attempts: r.get::<_, i64>(3)? as u32,
                        headers: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
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
