//! Instant upload (秒传) with proof of possession, for every dialect.
//!
//! Threat model (see ARCHITECTURE.md): a client may know a file's digests without having the
//! file (leaked hash lists, a hash in a URL). Knowing a digest must neither give a copy of the
//! file nor reveal that someone else stored it. So:
//! * content the caller's own tenant already holds is granted on its digest alone;
//! * another tenant's content is granted only with a proof of possession: bytes at positions
//!   the caller cannot choose ([`Possession::Bytes`], Aliyun `proof_version v1`), or a keyed
//!   hash over server-chosen ranges with a single-use nonce ([`Possession::Mac`], Chuan's
//!   native challenge);
//! * every other case is a miss, answered exactly like unknown content, and probes are
//!   rate-limited per principal.

use chuan_store::{ChallengeRecord, ContentRecord, ContentSource, ObjectRecord, ObjectWrite};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::engine::{Engine, Principal, PutTarget};
use crate::error::{CoreError, CoreResult};
use crate::names::validate_key;

/// What a caller offers as proof that it has the file.
#[derive(Debug, Clone)]
pub enum Possession {
    None,
    /// These bytes are at these offsets.
    Bytes(Vec<(u64, Vec<u8>)>),
    /// HMAC-SHA256 keyed with `nonce` over the concatenation of the given (offset, length) ranges.
    Mac {
        nonce: Vec<u8>,
        ranges: Vec<(u64, u64)>,
        mac: Vec<u8>,
    },
}

/// Pending contents of one size settled by a lookup at most (the probe limit bounds how often).
const PENDING_SETTLE_LIMIT: usize = 4;

/// Ranges in a native challenge, and the most bytes each covers.
const CHALLENGE_RANGES: usize = 4;
const CHALLENGE_RANGE_BYTES: u64 = 64;

/// The outcome of answering a native challenge.
#[derive(Debug)]
pub enum ChallengeOutcome {
    Hit(ObjectRecord),
    Miss,
    Used,
    Expired,
    Unknown,
}

/// Per-principal token bucket for existence probes.
pub(crate) struct ProbeLimiter {
    buckets: parking_lot::Mutex<HashMap<String, (f64, Instant)>>,
    burst: f64,
    per_sec: f64,
}

impl ProbeLimiter {
    pub(crate) fn new(burst: f64, per_sec: f64) -> Self {
        Self { buckets: Default::default(), burst, per_sec }
    }

    fn allow(&self, who: &str) -> bool {
        let mut map = self.buckets.lock();
        let now = Instant::now();
        if map.len() > 100_000 {
            map.retain(|_, (_, t)| now.duration_since(*t) < Duration::from_secs(60));
        }
        let (tokens, last) = map.entry(who.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_sec).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Engine {
    /// Counts one existence probe against the principal; `SlowDown` when over the limit.
    pub fn probe(&self, p: &Principal) -> CoreResult<()> {
        if self.limiter.allow(&p.access_key) {
            Ok(())
        } else {
            Err(CoreError::SlowDown)
        }
    }

    /// Content with this digest and size that the principal's own tenant holds. Contents of
    /// that size whose digests the background job has not computed yet (just assembled from
    /// parts, or larger than one UFile block) are settled first, so a hit does not depend on
    /// the job's timing.
    pub async fn own_content(&self, p: &Principal, algo: &str, digest: &str, size: u64) -> CoreResult<Option<i64>> {
        for id in self.meta.find_content(algo, digest, size).await? {
            if self.meta.tenant_holds_content(&p.tenant, id).await? {
                return Ok(Some(id));
            }
        }
        let mut settled = false;
        for content in self.meta.pending_contents_of_size(size, PENDING_SETTLE_LIMIT).await? {
            if self.meta.tenant_holds_content(&p.tenant, content.id).await? {
                self.full_digests(&content).await?;
                settled = true;
            }
        }
        if settled {
            for id in self.meta.find_content(algo, digest, size).await? {
                if self.meta.tenant_holds_content(&p.tenant, id).await? {
                    return Ok(Some(id));
                }
            }
        }
        Ok(None)
    }

    /// Content the principal may claim by digest, or `None` (a miss, whatever the reason).
    pub async fn claimable_content(
        &self,
        p: &Principal,
        algo: &str,
        digest: &str,
        size: u64,
        proof: &Possession,
    ) -> CoreResult<Option<i64>> {
        self.probe(p)?;
        if let Some(id) = self.own_content(p, algo, digest, size).await? {
            return Ok(Some(id));
        }
        if matches!(proof, Possession::None) {
            return Ok(None);
        }
        for id in self.meta.find_content(algo, digest, size).await? {
            let content = self.content(id).await?;
            if self.proves(&content, proof).await? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    async fn proves(&self, content: &ContentRecord, proof: &Possession) -> CoreResult<bool> {
        Ok(match proof {
            Possession::None => false,
            Possession::Bytes(pieces) => {
                let mut ok = !pieces.is_empty();
                for (offset, bytes) in pieces {
                    let len = bytes.len() as u64;
                    if offset + len > content.size {
                        return Ok(false);
                    }
                    ok &= constant_time_eq(&self.read_range(content, *offset, len).await?, bytes);
                }
                ok
            }
            Possession::Mac { nonce, ranges, mac } => {
                let mut h =
                    <Hmac<Sha256> as Mac>::new_from_slice(nonce).map_err(|e| CoreError::Internal(e.to_string()))?;
                for (offset, len) in ranges {
                    if offset + len > content.size {
                        return Ok(false);
                    }
                    h.update(&self.read_range(content, *offset, *len).await?);
                }
                h.verify_slice(mac).is_ok()
            }
        })
    }

    /// Bytes `[offset, offset + len)` of a content (small reads: proofs).
    pub async fn read_range(&self, content: &ContentRecord, offset: u64, len: u64) -> CoreResult<Vec<u8>> {
        let mut out = Vec::with_capacity(len as usize);
        let mut s = self.read(content, offset, offset + len);
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// Creates `target` sharing existing content: the instant upload itself, no bytes received.
    pub async fn instant_put(
        &self,
        p: &Principal,
        target: PutTarget,
        content_id: i64,
        object_id: Option<String>,
    ) -> CoreResult<ObjectRecord> {
        validate_key(&target.key)?;
        self.authorize(p, crate::Op::Write, &target.bucket, &target.key)?;
        let owner = self.check_bucket(p, &target.bucket).await?.tenant;
        let write = ObjectWrite {
            quota_bytes: self.storage_quota(&owner).await?,
            id: object_id,
            bucket: target.bucket,
            key: target.key,
            content: ContentSource::Existing(content_id),
            meta: target.meta,
            modified_ms: chuan_store::now_ms(),
            condition: target.condition,
        };
        let rec = self.meta.put_object(write).await.map_err(|e| match e {
            chuan_store::StoreError::Conflict(m) if m.contains("precondition") => CoreError::PreconditionFailed,
            other => other.into(),
        })?;
        self.metrics.instant_hits.inc();
        self.metrics.objects_committed.inc();
        Ok(rec)
    }

    /// Native challenge, step one. Answered the same way whether or not the content exists;
    /// only the caller's own tenant learns (by `proof_required: false`) that it holds it.
    pub async fn issue_challenge(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        size: u64,
        sha256: &str,
    ) -> CoreResult<ChallengeRecord> {
        validate_key(key)?;
        self.authorize(p, crate::Op::Write, bucket, key)?;
        self.check_bucket(p, bucket).await?;
        self.probe(p)?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CoreError::InvalidArgument("sha256 must be 64 hex digits".into()));
        }
        let sha256 = sha256.to_ascii_lowercase();
        let own = self.own_content(p, "sha256", &sha256, size).await?.is_some();
        let (ranges, nonce) = {
            let mut rng = rand::thread_rng();
            let len = CHALLENGE_RANGE_BYTES.min(size);
            let ranges: Vec<(u64, u64)> = if size == 0 {
                Vec::new()
            } else {
                (0..CHALLENGE_RANGES).map(|_| (rng.gen_range(0..=size - len), len)).collect()
            };
            (ranges, rng.gen::<[u8; 32]>())
        };
        let rec = ChallengeRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            tenant: p.tenant.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size,
            sha256,
            nonce: hex::encode(nonce),
            ranges: if own { Vec::new() } else { ranges },
            proof_required: !own,
            expires_ms: chuan_store::now_ms() + self.config.challenge_ttl.as_millis() as i64,
        };
        self.meta.create_challenge(rec.clone()).await?;
        Ok(rec)
    }

    /// Native challenge, step two: single use, before its expiry.
    pub async fn answer_challenge(&self, p: &Principal, id: &str, mac: Option<&[u8]>) -> CoreResult<ChallengeOutcome> {
        let Some((c, used)) = self.meta.take_challenge(id).await? else { return Ok(ChallengeOutcome::Unknown) };
        if c.tenant != p.tenant {
            return Ok(ChallengeOutcome::Unknown);
        }
        if used {
            return Ok(ChallengeOutcome::Used);
        }
        if chuan_store::now_ms() > c.expires_ms {
            return Ok(ChallengeOutcome::Expired);
        }
        let proof = match mac {
            Some(m) => Possession::Mac {
                nonce: hex::decode(&c.nonce).unwrap_or_default(),
                ranges: c.ranges.clone(),
                mac: m.to_vec(),
            },
            None => Possession::None,
        };
        // Probes were counted when the challenge was issued.
        let content = match self.own_content(p, "sha256", &c.sha256, c.size).await? {
            Some(id) => Some(id),
            None if c.proof_required => {
                let mut found = None;
                for id in self.meta.find_content("sha256", &c.sha256, c.size).await? {
                    if self.proves(&self.content(id).await?, &proof).await? {
                        found = Some(id);
                        break;
                    }
                }
                found
            }
            None => None,
        };
        let Some(content_id) = content else { return Ok(ChallengeOutcome::Miss) };
        let target = PutTarget { bucket: c.bucket, key: c.key, meta: Default::default(), condition: None };
        Ok(ChallengeOutcome::Hit(self.instant_put(p, target, content_id, None).await?))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
