//! Quotas (limits and the allowances taken from them) and the token buckets every node
//! shares.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::db::Db;
use super::rows::*;
use super::SqlMetaStore;
use crate::meta::*;
use crate::now_ms;

/// The share of what remains that one take may lease beyond its need (see
/// [`QuotaStore::take_allowance`]).
const LEASE_SHARE: u64 = 16;

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn get_quota_tx(c: &Db, tenant: &str) -> StoreResult<Option<QuotaRecord>> {
    query_one(
        c,
        "SELECT storage_bytes, download_bytes, requests, used_download_bytes, used_requests, generation
         FROM quotas WHERE tenant = ?1",
        params![tenant],
        |r| {
            let limit = |i| r.get::<Option<i64>>(i).map(|v| v.map(|v| v.max(0) as u64));
            Ok(QuotaRecord {
                limits: QuotaLimits { storage_bytes: limit(0)?, download_bytes: limit(1)?, requests: limit(2)? },
                used_download_bytes: r.get::<i64>(3)?.max(0) as u64,
                used_requests: r.get::<i64>(4)?.max(0) as u64,
                generation: r.get(5)?,
            })
        },
    )
    .optional()
    .map_err(backend)
}

/// What one limited allowance grants for `need` plus up to `extra`; `None` when less than
/// `need` remains.
fn grant(limit: Option<u64>, used: u64, need: u64, extra: u64) -> Option<u64> {
    let Some(limit) = limit else { return Some(need) };
    let remaining = limit.checked_sub(used).filter(|r| *r >= need)?;
    Some(need + extra.min((remaining - need) / LEASE_SHARE))
}

#[async_trait]
impl QuotaStore for SqlMetaStore {
    async fn set_quota(&self, tenant: &str, limits: QuotaLimits) -> StoreResult<QuotaRecord> {
        let tenant = tenant.to_owned();
        self.write(move |txn| {
            // Never reused, even across a quota removed and set again: a lease of an older
            // generation can never be given back into a newer one.
            let old = get_quota_tx(txn, &tenant)?.map_or(0, |q| q.generation + 1);
            let generation = old.max(now_ms());
            let limit = |v: Option<u64>| v.map(to_i64);
            exec(
                txn,
                "INSERT INTO quotas(tenant, storage_bytes, download_bytes, requests, used_download_bytes, used_requests, generation)
                 VALUES(?1, ?2, ?3, ?4, 0, 0, ?5)
                 ON CONFLICT(tenant) DO UPDATE SET storage_bytes = ?2, download_bytes = ?3, requests = ?4,
                   used_download_bytes = 0, used_requests = 0, generation = ?5",
                params![
                    tenant,
                    limit(limits.storage_bytes),
                    limit(limits.download_bytes),
                    limit(limits.requests),
                    generation
                ],
            )
            .map_err(backend)?;
            Ok(QuotaRecord { limits, used_download_bytes: 0, used_requests: 0, generation })
        })
        .await
    }

    async fn get_quota(&self, tenant: &str) -> StoreResult<Option<QuotaRecord>> {
        let tenant = tenant.to_owned();
        self.lookup(move |c| get_quota_tx(c, &tenant)).await
    }

    async fn take_allowance(&self, tenant: &str, need: Allowance, extra: Allowance) -> StoreResult<AllowanceTake> {
        let tenant = tenant.to_owned();
        self.write(move |txn| {
            let Some(mut q) = get_quota_tx(txn, &tenant)? else { return Ok(AllowanceTake::NoQuota) };
            let Some(requests) = grant(q.limits.requests, q.used_requests, need.requests, extra.requests) else {
                return Ok(AllowanceTake::Exhausted { kind: AllowanceKind::Requests, quota: q });
            };
            let Some(bytes) =
                grant(q.limits.download_bytes, q.used_download_bytes, need.download_bytes, extra.download_bytes)
            else {
                return Ok(AllowanceTake::Exhausted { kind: AllowanceKind::DownloadBytes, quota: q });
            };
            // Only a limited allowance counts what it grants.
            if q.limits.requests.is_some() {
                q.used_requests += requests;
            }
            if q.limits.download_bytes.is_some() {
                q.used_download_bytes += bytes;
            }
            if q.limits.requests.is_some() || q.limits.download_bytes.is_some() {
                exec(
                    txn,
                    "UPDATE quotas SET used_requests = ?2, used_download_bytes = ?3 WHERE tenant = ?1",
                    params![tenant, to_i64(q.used_requests), to_i64(q.used_download_bytes)],
                )
                .map_err(backend)?;
            }
            Ok(AllowanceTake::Granted { granted: Allowance { download_bytes: bytes, requests }, quota: q })
        })
        .await
    }

    async fn return_allowance(&self, tenant: &str, generation: i64, unused: Allowance) -> StoreResult<()> {
        if unused == Allowance::default() {
            return Ok(());
        }
        let tenant = tenant.to_owned();
        self.write(move |txn| {
            exec(
                txn,
                "UPDATE quotas SET
                   used_requests = CASE WHEN used_requests > ?3 THEN used_requests - ?3 ELSE 0 END,
                   used_download_bytes = CASE WHEN used_download_bytes > ?4 THEN used_download_bytes - ?4 ELSE 0 END
                 WHERE tenant = ?1 AND generation = ?2",
                params![tenant, generation, to_i64(unused.requests), to_i64(unused.download_bytes)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_tokens(&self, takes: Vec<TokenTake>) -> StoreResult<bool> {
        let now = now_ms();
        if let Some(local) = self.local_tokens() {
            // The embedded store serves one process (the data directory's server lock): its
            // buckets are shared by everything that uses it when kept in memory.
            return Ok(local.take_all(&takes, now));
        }
        self.write(move |txn| {
            let mut next = Vec::with_capacity(takes.len());
            for t in takes.iter().filter(|t| !crate::rate::unlimited(t)) {
                let row: Option<(i64, i64)> =
                    query_one(txn, "SELECT tokens, at FROM rate_buckets WHERE key = ?1", params![t.key], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()
                    .map_err(backend)?;
                let tokens = match row {
                    // Stored in millionths of a token: integers mean the same on every engine.
                    Some((micro, at)) => crate::rate::refilled(t, micro as f64 / 1e6, at, now),
                    None => crate::rate::burst(t),
                };
                if tokens < 1.0 {
                    return Ok(false);
                }
                next.push((&t.key, ((tokens - 1.0) * 1e6) as i64));
            }
            for (key, micro) in next {
                exec(
                    txn,
                    "INSERT INTO rate_buckets(key, tokens, at) VALUES(?1, ?2, ?3)
                     ON CONFLICT(key) DO UPDATE SET tokens = ?2, at = ?3",
                    params![key, micro, now],
                )
                .map_err(backend)?;
            }
            Ok(true)
        })
        .await
    }

    async fn purge_tokens(&self, cutoff_ms: i64) -> StoreResult<u64> {
        if let Some(local) = self.local_tokens() {
            return Ok(local.purge(cutoff_ms));
        }
        self.write(move |txn| {
            exec(txn, "DELETE FROM rate_buckets WHERE at < ?1", params![cutoff_ms]).map(|n| n as u64).map_err(backend)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::grant;

    #[test]
    fn leases_shrink_to_the_need_as_an_allowance_runs_out() {
        assert_eq!(grant(None, 0, 5, 100), Some(5), "unlimited: the need");
        assert_eq!(grant(Some(10_000), 0, 1, 100), Some(101));
        assert_eq!(grant(Some(1_000), 0, 1, 100), Some(1 + 999 / 16));
        assert_eq!(grant(Some(20), 0, 1, 100), Some(2));
        assert_eq!(grant(Some(16), 0, 1, 100), Some(1), "less than a sixteenth left over: the need alone");
        assert_eq!(grant(Some(10), 9, 1, 100), Some(1));
        assert_eq!(grant(Some(10), 10, 1, 100), None);
        assert_eq!(grant(Some(10), 12, 0, 100), None, "over (set lower meanwhile)");
        assert_eq!(grant(Some(10), 10, 0, 100), Some(0), "a need of 0 is always met");
    }
}
