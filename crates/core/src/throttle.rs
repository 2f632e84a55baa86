//! Fairness between tenants: request rates, concurrent uploads and existence probes, limited
//! in one place for every protocol.
//!
//! * **Requests**: a token bucket per tenant (per client address for anonymous callers),
//!   taken once per request when the engine first admits it — after the credential was
//!   verified, so nobody can spend another tenant's budget by sending bad signatures.
//! * **Uploads**: a count of bodies being received per tenant; a slot is held from
//!   [`Engine::stage`] until the body is staged (or refused), never while a request waits.
//! * **Probes** (instant-upload claims, native challenges): a token bucket per tenant *and* per
//!   client address, so minting fresh tokens (UFile, Aliyun Drive) gives no fresh burst.
//!
//! Every refusal is [`CoreError::SlowDown`], which each dialect answers with its protocol's
//! throttling error. The client address comes from the listener ([`with_client`]), so the
//! rules hold whatever the dialect.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Token buckets by key.
pub(crate) struct RateLimiter {
    buckets: parking_lot::Mutex<HashMap<String, (f64, Instant)>>,
    burst: f64,
    per_sec: f64,
}

impl RateLimiter {
    pub(crate) fn new(burst: f64, per_sec: f64) -> Self {
        Self { buckets: Default::default(), burst: burst.max(1.0), per_sec }
    }

    fn unlimited(&self) -> bool {
        self.per_sec <= 0.0
    }

    /// The key's tokens, refilled up to now.
    fn refilled<'m>(&self, map: &'m mut HashMap<String, (f64, Instant)>, key: &str, now: Instant) -> &'m mut f64 {
        if map.len() > 100_000 {
            // Buckets untouched for this long are full again: forgetting them changes nothing.
            let idle = Duration::from_secs_f64((self.burst / self.per_sec).max(60.0));
            map.retain(|_, (_, t)| now.duration_since(*t) < idle);
        }
        let (tokens, last) = map.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_sec).min(self.burst);
        *last = now;
        tokens
    }

    /// Takes one token from `key`'s bucket, or none when it is empty.
    pub(crate) fn allow(&self, key: &str) -> bool {
        allow_all(&[(self, key)])
    }
}

/// Takes one token from each `(limiter, key)` bucket, or none when any of them is empty. The
/// limiters must be distinct (each is locked once, in the order given).
pub(crate) fn allow_all(checks: &[(&RateLimiter, &str)]) -> bool {
    let now = Instant::now();
    let mut maps: Vec<_> = checks.iter().map(|(l, _)| l.buckets.lock()).collect();
    let mut ok = true;
    for ((limiter, key), map) in checks.iter().zip(maps.iter_mut()) {
        if !limiter.unlimited() {
            ok &= *limiter.refilled(map, key, now) >= 1.0;
        }
    }
    if ok {
        for ((limiter, key), map) in checks.iter().zip(maps.iter_mut()) {
            if !limiter.unlimited() {
                *limiter.refilled(map, key, now) -= 1.0;
            }
        }
    }
    ok
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
        if self.requests.allow(&key) {
            Ok(())
        } else {
            self.metrics.refused("request_rate");
            Err(CoreError::SlowDown)
        }
    }

    /// Counts one existence probe against the principal's tenant and client address;
    /// `SlowDown` when either is over its limit.
    pub(crate) fn probe(&self, p: &Principal) -> CoreResult<()> {
        let tenant = p.tenant().to_owned();
        let allowed = match p.client().map(addr_key) {
            Some(addr) => allow_all(&[(&self.probes, &tenant), (&self.address_probes, &addr)]),
            None => self.probes.allow(&tenant),
        };
        if allowed {
            Ok(())
        } else {
            self.metrics.refused("probe_rate");
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
    fn a_key_gets_its_burst_then_the_rate() {
        let r = RateLimiter::new(3.0, 0.001);
        assert!((0..3).all(|_| r.allow("a")));
        assert!(!r.allow("a"));
        assert!(r.allow("b"), "another key has its own bucket");
        let off = RateLimiter::new(1.0, 0.0);
        assert!((0..100).all(|_| off.allow("a")), "a rate of 0 is no limit");
    }

    #[test]
    fn several_buckets_are_charged_together_or_not_at_all() {
        let (tenants, addrs) = (RateLimiter::new(2.0, 0.001), RateLimiter::new(2.0, 0.001));
        assert!(allow_all(&[(&tenants, "t"), (&addrs, "x")]));
        assert!(allow_all(&[(&tenants, "t"), (&addrs, "x")]));
        assert!(!allow_all(&[(&tenants, "t"), (&addrs, "y")]), "the tenant's bucket is empty");
        assert!(allow_all(&[(&tenants, "u"), (&addrs, "y")]), "y was not charged by the refused call");
        assert!(allow_all(&[(&tenants, "u"), (&addrs, "y")]));
        assert!(!allow_all(&[(&tenants, "v"), (&addrs, "y")]), "the address's bucket is empty, whatever the tenant");
    }

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
