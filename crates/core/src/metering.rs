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
//! commit, not one write per request). A quota's consumption (downloads, requests since the
//! quota was set) is kept with the quota and checked-and-reserved under one lock, so a quota
//! is never exceeded on this node; several nodes sharing a MetaStore would each enforce the
//! allowance they have seen (noted in ARCHITECTURE.md). The storage quota is checked inside
//! the write transaction itself and holds across nodes.

use chuan_store::{now_ms, BucketRecord, UsageDay, UsageDelta};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::access::Principal;
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};

/// A tenant's quota: `None` is unlimited. Downloads and requests are allowances consumed
/// from the moment the quota is set.
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

#[derive(Default)]
pub(crate) struct Meter {
    /// Quotas loaded so far (`None`: the tenant has none), and which changed since a flush.
    quotas: parking_lot::Mutex<HashMap<String, Option<Quota>>>,
    dirty: parking_lot::Mutex<std::collections::HashSet<String>>,
    pending: parking_lot::Mutex<HashMap<(String, String, i64), (u64, u64)>>,
}

fn setting_name(tenant: &str) -> String {
    format!("quota:{tenant}")
}

pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

impl Engine {
    async fn load_quota(&self, tenant: &str) -> CoreResult<()> {
        if self.meter.quotas.lock().contains_key(tenant) {
            return Ok(());
        }
        let q = match self.meta.get_setting(&setting_name(tenant)).await? {
            Some(json) => Some(
                serde_json::from_str(&json).map_err(|e| CoreError::Internal(format!("bad quota of {tenant}: {e}")))?,
            ),
            None => None,
        };
        self.meter.quotas.lock().entry(tenant.to_owned()).or_insert(q);
        Ok(())
    }

    /// The principal's tenant's quota (`None`: unlimited) and the bytes it stores.
    pub async fn quota_status(&self, p: &Principal) -> CoreResult<(Option<Quota>, u64)> {
        self.check_management(p)?;
        Ok((self.quota(&p.tenant).await?, self.meta.tenant_bytes(&p.tenant).await?))
    }

    /// A tenant's quota (`None`: unlimited).
    pub async fn quota(&self, tenant: &str) -> CoreResult<Option<Quota>> {
        self.load_quota(tenant).await?;
        Ok(self.meter.quotas.lock().get(tenant).cloned().flatten())
    }

    /// Sets (replacing) a tenant's quota; its download and request allowances start afresh.
    /// The root's to do.
    pub async fn set_quota(&self, p: &Principal, tenant: &str, mut quota: Quota) -> CoreResult<Quota> {
        if !p.admin {
            return Err(CoreError::AccessDenied);
        }
        if !self.tenant_exists(tenant).await? {
            return Err(CoreError::NoSuchTenant);
        }
        quota.used_download_bytes = 0;
        quota.used_requests = 0;
        self.meta
            .put_settings(vec![(setting_name(tenant), serde_json::to_string(&quota).expect("serialisable"))])
            .await?;
        self.meter.quotas.lock().insert(tenant.to_owned(), Some(quota.clone()));
        self.meter.dirty.lock().remove(tenant);
        Ok(quota)
    }

    /// The storage quota to hold a write to `bucket` to.
    pub(crate) async fn storage_quota(&self, owner: &str) -> CoreResult<Option<u64>> {
        Ok(self.quota(owner).await?.and_then(|q| q.storage_bytes))
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
        self.load_quota(&bucket.tenant).await?;
        let quotas = self.meter.quotas.lock();
        if let Some(Some(q)) = quotas.get(&bucket.tenant) {
            if q.requests.is_some_and(|max| q.used_requests >= max) {
                return Err(CoreError::QuotaExceeded("request count".into()));
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
        self.load_quota(owner).await?;
        {
            let mut quotas = self.meter.quotas.lock();
            if let Some(Some(q)) = quotas.get_mut(owner) {
                if q.requests.is_some_and(|max| q.used_requests + requests > max) {
                    return Err(CoreError::QuotaExceeded("request count".into()));
                }
                if q.download_bytes.is_some_and(|max| q.used_download_bytes + bytes > max) {
                    return Err(CoreError::QuotaExceeded("download traffic".into()));
                }
                q.used_requests += requests;
                q.used_download_bytes += bytes;
                self.meter.dirty.lock().insert(owner.to_owned());
            }
        }
        let mut pending = self.meter.pending.lock();
        let e = pending.entry((owner.to_owned(), bucket.to_owned(), day_of(now_ms()))).or_default();
        e.0 += bytes;
        e.1 += requests;
        Ok(())
    }

    /// Writes counted usage and quota consumption to the MetaStore.
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
        let dirty: Vec<String> = self.meter.dirty.lock().drain().collect();
        let settings: Vec<(String, String)> = {
            let quotas = self.meter.quotas.lock();
            dirty
                .iter()
                .filter_map(|t| Some((setting_name(t), serde_json::to_string(quotas.get(t)?.as_ref()?).ok()?)))
                .collect()
        };
        if !settings.is_empty() {
            self.meta.put_settings(settings).await?;
        }
        Ok(())
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
