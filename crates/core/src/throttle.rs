//! Fairness between tenants: request rates, concurrent uploads and existence probes, limited
//! in one place for every protocol.
//!
//! * **Requests**: a token bucket per tenant (per client address for anonymous callers),
//!   taken once per request when the engine first admits it — after the credential was
//!   verified, so nobody can spend another tenant's budget by sending bad signatures. Kept in
//!   this node's memory: a limit on the rate one node serves (N nodes serve a tenant up to N
//!   times it), since sharing it would cost a metadata write per request.
//! * **Uploads**: a count of bodies being received per tenant; a slot is held from
//!   [`Engine::stage`] until the body is staged (or refused), never while a request waits.
//! * **Probes** (instant-upload claims, native challenges): a token bucket per tenant *and* per
//!   client address, so minting fresh tokens (UFile, Aliyun Drive) gives no fresh burst. Kept
//!   in the MetaStore ([`chuan_store::QuotaStore::take_tokens`]), so the budget is one for the
//!   whole cluster however many nodes a prober spreads its requests over.
//!
//! Every refusal is [`CoreError::SlowDown`], which each dialect answers with its protocol's
//! throttling error. The client address comes from the listener ([`with_client`]), so the
//! rules hold whatever the dialect.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use chuan_store::{now_ms, TokenTake};

use crate::access::Principal;
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};

/// The fairness limits; `0` turns a limit off.
#[derive(Debug, Clone)]
pub struct FairnessConfig {
    /// Requests a second one tenant (or, for anonymous callers, one client address) may make,
    /// sustained.
    pub requests_per_sec: f64,
    /// Requests above the sustained rate allowed in a burst.
    pub request_burst: f64,
    /// Request bodies one tenant may be sending at once.
    pub concurrent_uploads: usize,
    /// Instant-upload claims and challenges a second, per tenant.
    pub probes_per_sec: f64,
    pub probe_burst: f64,
    /// The same, per client address (whatever the tenant: several tenants' clients may share
    /// an address, so this is set higher).
    pub address_probes_per_sec: f64,
    pub address_probe_burst: f64,
}

/// Access tokens one refresh token may buy at once ([`Engine::exchange_slot`]); after that one
/// a minute. A client buys one per session and one per expiry (2 h).
pub(crate) const EXCHANGE_BURST: f64 = 60.0;

impl Default for FairnessConfig {
    fn default() -> Self {
        Self {
            requests_per_sec: 2000.0,
            request_burst: 4000.0,
            concurrent_uploads: 256,
            probes_per_sec: 20.0,
            probe_burst: 50.0,
            address_probes_per_sec: 80.0,
            address_probe_burst: 200.0,
        }
    }
}

impl FairnessConfig {
    /// How long a shared token bucket (probes) may sit untouched before it is forgotten: long
    /// enough for any of them to be full again, and at least ten minutes.
    pub fn idle_bucket_ms(&self) -> i64 {
        let full = |burst: f64, rate: f64| if rate > 0.0 { burst / rate * 1000.0 } else { 0.0 };
        let longest = full(self.probe_burst, self.probes_per_sec)
            .max(full(self.address_probe_burst, self.address_probes_per_sec));
        (longest.ceil() as i64).max(600_000)
    }
}

tokio::task_local! {
    static CLIENT: IpAddr;
}

/// Runs `f` (one request) on behalf of the client at `addr`: principals made while it runs
/// carry that address, which the per-address limits count against.
pub async fn with_client<F: std::future::Future>(addr: IpAddr, f: F) -> F::Output {
    CLIENT.scope(addr, f).await
}

/// The address of the client whose request is being served, if the listener said.
pub fn current_client() -> Option<IpAddr> {
    CLIENT.try_with(|a| *a).ok()
}

/// Bodies being received, by tenant.
type Inflight = Arc<parking_lot::Mutex<HashMap<String, usize>>>;

/// Request bodies being received, by tenant.
#[derive(Default)]
pub(crate) struct UploadSlots {
    inflight: Inflight,
}

/// One tenant's right to be sending one body; given back when dropped.
pub struct UploadSlot {
    inflight: Option<(Inflight, String)>,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        if let Some((map, tenant)) = self.inflight.take() {
            let mut map = map.lock();
            if let Some(n) = map.get_mut(&tenant) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&tenant);
                }
            }
        }
    }
}

impl UploadSlots {
    fn take(&self, tenant: &str, max: usize) -> Option<UploadSlot> {
        if max == 0 || tenant.is_empty() {
            return Some(UploadSlot { inflight: None });
        }
        let mut map = self.inflight.lock();
        let n = map.entry(tenant.to_owned()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(UploadSlot { inflight: Some((self.inflight.clone(), tenant.to_owned())) })
    }
}

fn addr_key(addr: IpAddr) -> String {
    format!("addr:{addr}")
}

impl Engine {
    /// Counts this request against its tenant's (or, anonymous, its address's) request rate,
    /// once per request; `SlowDown` over the limit.
    pub(crate) fn throttle(&self, p: &Principal) -> CoreResult<()> {
        if !p.first_admission() {
            return Ok(());
        }
        let key = if p.is_anonymous() {
            match p.client() {
                Some(a) => addr_key(a),
                None => return Ok(()),
            }
        } else {
            format!("tenant:{}", p.tenant())
        };
        let f = &self.config.fairness;
        let take = TokenTake { key, burst: f.request_burst, per_sec: f.requests_per_sec };
        if self.requests.take_all(&[take], now_ms()) {
            Ok(())
        } else {
            self.metrics.refused("request_rate");
            Err(CoreError::SlowDown)
        }
    }

    /// Counts one bearer-token exchange against the credential `from_key` that buys it;
    /// `SlowDown` over [`EXCHANGE_BURST`] then one a minute. An Aliyun Drive access token
    /// decides where its `proof_version v1` window falls in a file, so a caller able to buy
    /// tokens without limit could pick the window it knows (invariant 15).
    pub(crate) async fn exchange_slot(&self, from_key: &str) -> CoreResult<()> {
        let take = TokenTake { key: format!("exchange:{from_key}"), burst: EXCHANGE_BURST, per_sec: 1.0 / 60.0 };
        self.take_shared(vec![take], "token_exchange").await
    }

    /// Counts one existence probe against the principal's tenant and client address;
    /// `SlowDown` when either is over its limit.
    pub(crate) async fn probe(&self, p: &Principal) -> CoreResult<()> {
        let f = &self.config.fairness;
        let mut takes = vec![TokenTake {
            key: format!("probe:tenant:{}", p.tenant()),
            burst: f.probe_burst,
            per_sec: f.probes_per_sec,
        }];
        if let Some(addr) = p.client() {
            takes.push(TokenTake {
                key: format!("probe:{}", addr_key(addr)),
                burst: f.address_probe_burst,
                per_sec: f.address_probes_per_sec,
            });
        }
        self.take_shared(takes, "probe_rate").await
    }

    /// Takes one token from each of `takes` in the MetaStore (one budget for every node), all
    /// or none; `SlowDown`, counted under `limit`, when any is empty.
    async fn take_shared(&self, takes: Vec<TokenTake>, limit: &str) -> CoreResult<()> {
        if self.meta.take_tokens(takes).await? {
            Ok(())
        } else {
            self.metrics.refused(limit);
            Err(CoreError::SlowDown)
        }
    }

    /// A slot for one body of `p`'s tenant; `SlowDown` when the tenant is sending as many
    /// bodies as it may.
    pub(crate) fn upload_slot(&self, p: &Principal) -> CoreResult<UploadSlot> {
        self.uploads.take(p.tenant(), self.config.fairness.concurrent_uploads).ok_or_else(|| {
            self.metrics.refused("tenant_uploads");
            CoreError::SlowDown
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_tenant_and_given_back() {
        let s = UploadSlots::default();
        let a = s.take("t", 2).unwrap();
        let _b = s.take("t", 2).unwrap();
        assert!(s.take("t", 2).is_none());
        assert!(s.take("u", 2).is_some());
        drop(a);
        assert!(s.take("t", 2).is_some());
        assert!(s.take("t", 0).is_some(), "0 is unlimited");
    }
}
