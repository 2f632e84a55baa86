//! Usage metering and quotas: requests and download traffic counted per tenant, bucket and
//! day; stored bytes kept exactly by the metadata store; quotas enforced synchronously.
//!
//! Metering happens in the core, after authorization, for every protocol: a request is
//! charged to the bucket's owner when the engine admits it (once per request, however many
//! engine calls it takes), a download when its bytes are about to be sent. Refused requests
//! and anonymous requests (reads of public data) are never charged, so nobody can spend a
//! tenant's allowances but the tenant's own credentials and grants.
//!
//! Counts accumulate in memory and are flushed to the MetaStore every few seconds (one group
//! commit, not one write per request).
//!
//! Quotas live in the MetaStore ([`chuan_store::QuotaStore`]) and hold across every node
//! sharing it:
//! * the storage limit is read and checked inside each write transaction that grows a
//!   tenant's bytes, so it is exact and a new limit holds at once everywhere;
//! * the download and request allowances are one count per tenant in the store. A node takes
//!   what a charge needs plus a small lease (at most [`LEASE_REQUESTS`] requests or
//!   [`LEASE_BYTES`] bytes, and never more than a sixteenth of what remains, so the leases
//!   shrink to the exact need as an allowance runs out), spends the lease locally, and gives
//!   back what it did not spend at the next flush. The sum granted never exceeds a limit; a
//!   tenant near its limit may be refused on one node for up to one flush interval while
//!   another node holds an unspent lease; a limit set on one node reaches the others' cached
//!   view at their next flush (every 2 s), and the store refuses leases beyond it at once.

use chuan_store::{
    now_ms, Allowance, AllowanceKind, AllowanceTake, BucketRecord, QuotaLimits, QuotaRecord, UsageDay, UsageDelta,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::access::Principal;
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};

/// Most requests one charge leases beyond its need.
pub const LEASE_REQUESTS: u64 = 100;
/// Most download bytes one charge leases beyond its need.
pub const LEASE_BYTES: u64 = 64 << 20;

/// A tenant's quota: `None` is unlimited. Downloads and requests are allowances consumed
/// from the moment the quota is set; `used_*` is what every node has taken of them
/// (including leases other nodes hold unspent, at most a flush interval).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    #[serde(default)]
    pub used_download_bytes: u64,
    #[serde(default)]
    pub used_requests: u64,
}

impl Quota {
    fn limits(&self) -> QuotaLimits {
        QuotaLimits { storage_bytes: self.storage_bytes, download_bytes: self.download_bytes, requests: self.requests }
    }

    /// The stored record, less `lease` (what this node holds taken but unspent).
    fn of(q: &QuotaRecord, lease: Allowance) -> Self {
        Self {
            storage_bytes: q.limits.storage_bytes,
            download_bytes: q.limits.download_bytes,
            requests: q.limits.requests,
            used_download_bytes: q.used_download_bytes.saturating_sub(lease.download_bytes),
            used_requests: q.used_requests.saturating_sub(lease.requests),
        }
    }
}

/// One tenant's quota as this node last read it (`None`: it has none) and the allowance the
/// node holds taken but unspent, of that quota's generation.
#[derive(Clone, Copy)]
struct Held {
    quota: Option<QuotaRecord>,
    lease: Allowance,
}

/// Usage counted but not yet written: `(tenant, bucket, UTC day number)` → `(requests, download
/// bytes)`.
type PendingUsage = HashMap<(String, String, i64), (u64, u64)>;

#[derive(Default)]
pub(crate) struct Meter {
    /// Emptied by each flush (leases given back), so quotas are re-read at least that often.
    held: parking_lot::Mutex<HashMap<String, Held>>,
    pending: parking_lot::Mutex<PendingUsage>,
    /// Held shared while an allowance moves between this node's lease and the store (a take
    /// that asks the store, a flush giving leases back), exclusively by [`Engine::quota`]: the
    /// store's count and this node's lease are then read at one point of those moves. (Read
    /// in the middle of one, a lease given back but not yet returned counted as used: a quota
    /// answer that was too low by up to a lease, seen once in CI.)
    moves: tokio::sync::RwLock<()>,
}

fn exceeded(kind: AllowanceKind) -> CoreError {
    CoreError::QuotaExceeded(match kind {
        AllowanceKind::Requests => "request count".into(),
        AllowanceKind::DownloadBytes => "download traffic".into(),
    })
}

pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

impl Engine {
    /// The tenant's quota as this node holds it, read from the store when it holds none.
    async fn held(&self, tenant: &str) -> CoreResult<Held> {
        if let Some(h) = self.meter.held.lock().get(tenant) {
            return Ok(*h);
        }
        let quota = self.meta.get_quota(tenant).await?;
        Ok(*self.meter.held.lock().entry(tenant.to_owned()).or_insert(Held { quota, lease: Allowance::default() }))
    }

    /// Records what the store said of a tenant's quota; a new generation voids the lease.
    fn remember(&self, tenant: &str, quota: Option<QuotaRecord>, add_lease: Allowance) {
        let mut held = self.meter.held.lock();
        let h = held.entry(tenant.to_owned()).or_insert(Held { quota, lease: Allowance::default() });
        if h.quota.map(|q| q.generation) != quota.map(|q| q.generation) {
            h.lease = Allowance::default();
        }
        h.quota = quota;
        h.lease.requests += add_lease.requests;
        h.lease.download_bytes += add_lease.download_bytes;
    }

    /// The principal's tenant's quota (`None`: unlimited) and the bytes it stores.
    pub async fn quota_status(&self, p: &Principal) -> CoreResult<(Option<Quota>, u64)> {
        self.check_management(p)?;
        Ok((self.quota(&p.tenant).await?, self.meta.tenant_bytes(&p.tenant).await?))
    }

    /// A tenant's quota (`None`: unlimited), read from the store now.
    pub async fn quota(&self, tenant: &str) -> CoreResult<Option<Quota>> {
        let _no_moves = self.meter.moves.write().await;
        let Some(q) = self.meta.get_quota(tenant).await? else { return Ok(None) };
        let lease = match self.meter.held.lock().get(tenant) {
            Some(Held { quota: Some(mine), lease }) if mine.generation == q.generation => *lease,
            _ => Allowance::default(),
        };
        Ok(Some(Quota::of(&q, lease)))
    }

    /// Sets (replacing) a tenant's quota; its download and request allowances start afresh.
    /// The root's to do.
    pub async fn set_quota(&self, p: &Principal, tenant: &str, quota: Quota) -> CoreResult<Quota> {
        if !p.admin {
            return Err(CoreError::AccessDenied);
        }
        if !self.tenant_exists(tenant).await? {
            return Err(CoreError::NoSuchTenant);
        }
        let set = self.meta.set_quota(tenant, quota.limits()).await?;
        self.meter.held.lock().insert(tenant.to_owned(), Held { quota: Some(set), lease: Allowance::default() });
        Ok(Quota::of(&set, Allowance::default()))
    }

    /// Counts one request of an admitted principal against `bucket`'s owner (once per
    /// request, after every key the operation names was admitted); refused when the owner's
    /// request allowance is used up.
    pub(crate) async fn charge_request(&self, p: &Principal, bucket: &BucketRecord) -> CoreResult<()> {
        if p.is_anonymous() || !p.first_charge() {
            return Ok(());
        }
        if let Err(e) = self.charge(&bucket.tenant, &bucket.name, 0, 1).await {
            // Refused: this request consumed nothing, and a later call of it may try again.
            p.request_uncharged();
            return Err(e);
        }
        Ok(())
    }

    /// Refuses (`QuotaExceeded`) when the owner's request allowance is used up, without
    /// consuming it: for checks made before a body is read.
    pub(crate) async fn check_allowance(&self, p: &Principal, bucket: &BucketRecord) -> CoreResult<()> {
        if p.is_anonymous() || p.charged() {
            return Ok(());
        }
        let h = self.held(&bucket.tenant).await?;
        let Some(q) = h.quota else { return Ok(()) };
        let spent = |q: &QuotaRecord| q.limits.requests.is_some_and(|max| q.used_requests >= max);
        if h.lease.requests == 0 && spent(&q) {
            // Seen spent here: ask the store, where another node may have given leases back.
            let fresh = self.meta.get_quota(&bucket.tenant).await?;
            self.remember(&bucket.tenant, fresh, Allowance::default());
            if fresh.as_ref().is_some_and(spent) {
                return Err(exceeded(AllowanceKind::Requests));
            }
        }
        Ok(())
    }

    /// Reserves `bytes` of download traffic of `bucket`'s owner before a body is sent;
    /// refused (nothing sent) when it would exceed the allowance. Anonymous reads of public
    /// data are not charged.
    pub(crate) async fn charge_download(&self, p: &Principal, bucket: &BucketRecord, bytes: u64) -> CoreResult<()> {
        if p.is_anonymous() {
            return Ok(());
        }
        self.charge(&bucket.tenant, &bucket.name, bytes, 0).await
    }

    async fn charge(&self, owner: &str, bucket: &str, bytes: u64, requests: u64) -> CoreResult<()> {
        self.take(owner, bytes, requests).await?;
        let mut pending = self.meter.pending.lock();
        let e = pending.entry((owner.to_owned(), bucket.to_owned(), day_of(now_ms()))).or_default();
        e.0 += bytes;
        e.1 += requests;
        Ok(())
    }

    /// Takes `bytes` and `requests` from the owner's limited allowances: from this node's
    /// lease when it covers them, else from the store (with a new lease).
    async fn take(&self, owner: &str, bytes: u64, requests: u64) -> CoreResult<()> {
        let Some(q) = self.held(owner).await?.quota else { return Ok(()) };
        let need = Allowance {
            download_bytes: if q.limits.download_bytes.is_some() { bytes } else { 0 },
            requests: if q.limits.requests.is_some() { requests } else { 0 },
        };
        if need == Allowance::default() {
            return Ok(());
        }
        let _moving = self.meter.moves.read().await;
        // What the lease covers is taken from it now; the store is asked only for the rest,
        // so a node's own lease never makes it refuse what the allowance still holds.
        let from_lease = {
            let mut held = self.meter.held.lock();
            match held.get_mut(owner).filter(|h| h.quota.map(|q| q.generation) == Some(q.generation)) {
                Some(h) => {
                    let taken = Allowance {
                        download_bytes: h.lease.download_bytes.min(need.download_bytes),
                        requests: h.lease.requests.min(need.requests),
                    };
                    h.lease.download_bytes -= taken.download_bytes;
                    h.lease.requests -= taken.requests;
                    taken
                }
                None => Allowance::default(),
            }
        };
        let shortfall = Allowance {
            download_bytes: need.download_bytes - from_lease.download_bytes,
            requests: need.requests - from_lease.requests,
        };
        if shortfall == Allowance::default() {
            return Ok(());
        }
        let extra = Allowance {
            download_bytes: if shortfall.download_bytes > 0 { LEASE_BYTES } else { 0 },
            requests: if shortfall.requests > 0 { LEASE_REQUESTS } else { 0 },
        };
        match self.meta.take_allowance(owner, shortfall, extra).await {
            Ok(AllowanceTake::NoQuota) => {
                self.remember(owner, None, Allowance::default());
                Ok(())
            }
            Ok(AllowanceTake::Granted { granted, quota }) => {
                let lease = Allowance {
                    download_bytes: granted.download_bytes - shortfall.download_bytes,
                    requests: granted.requests - shortfall.requests,
                };
                self.remember(owner, Some(quota), lease);
                Ok(())
            }
            Ok(AllowanceTake::Exhausted { kind, quota }) => {
                // Nothing spent: what came from the lease goes back to it.
                self.remember(owner, Some(quota), from_lease);
                Err(exceeded(kind))
            }
            Err(e) => {
                self.remember(owner, Some(q), from_lease);
                Err(e.into())
            }
        }
    }

    /// Writes counted usage to the MetaStore and gives back this node's unspent leases
    /// (forgetting the quotas it read, so they are read afresh).
    pub async fn flush_usage(&self) -> CoreResult<()> {
        let rows: Vec<UsageDelta> = std::mem::take(&mut *self.meter.pending.lock())
            .into_iter()
            .map(|((tenant, bucket, day), (downloads, requests))| UsageDelta {
                tenant,
                bucket,
                day,
                downloads,
                requests,
            })
            .collect();
        if !rows.is_empty() {
            self.meta.add_usage(rows).await?;
        }
        let _moving = self.meter.moves.read().await;
        let held = std::mem::take(&mut *self.meter.held.lock());
        let mut failed = None;
        for (tenant, h) in held {
            if let Some(q) = h.quota.filter(|_| h.lease != Allowance::default()) {
                // Given back or not, the lease is gone from this node: a failure only leaves
                // it counted as used (the limit still holds).
                if let Err(e) = self.meta.return_allowance(&tenant, q.generation, h.lease).await {
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Per-day usage of the principal's tenant between two times (ms), flushed first so it is
    /// current. Not for scoped credentials.
    pub async fn usage_report(&self, p: &Principal, from_ms: i64, to_ms: i64) -> CoreResult<Vec<UsageDay>> {
        if p.scope.is_some() || p.is_anonymous() {
            return Err(CoreError::AccessDenied);
        }
        self.flush_usage().await?;
        Ok(self.meta.usage_report(&p.tenant, day_of(from_ms), day_of(to_ms)).await?)
    }

    /// Bytes stored in a bucket the principal may use.
    pub async fn bucket_bytes(&self, p: &Principal, bucket: &str) -> CoreResult<u64> {
        let b = self.admit_bucket(p, bucket).await?;
        self.charge_request(p, &b).await?;
        Ok(self.meta.bucket_bytes(bucket).await?)
    }

    /// Bytes stored across a tenant's buckets.
    pub async fn tenant_bytes(&self, tenant: &str) -> CoreResult<u64> {
        Ok(self.meta.tenant_bytes(tenant).await?)
    }
}
