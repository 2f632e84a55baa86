//! Instant upload (秒传) with proof of possession, for every dialect.
//!
//! Threat model (see ARCHITECTURE.md): a client may know a file's digests without having the
//! file (leaked hash lists, a hash in a URL). Knowing a digest must neither give a copy of the
//! file nor reveal that someone else stored it. So:
//! * content the caller could read already (its tenant holds it, in an object inside the
//!   credential's scope) is granted on its digest alone — a write-only or prefix-scoped token
//!   cannot claim, nor learn of, content outside what it may read;
//! * another tenant's content is granted only with a proof of possession: bytes at positions
//!   the caller cannot choose ([`Possession::Bytes`], Aliyun `proof_version v1`), or a keyed
//!   hash over server-chosen ranges with a single-use nonce ([`Possession::Mac`], Chuan's
//!   native challenge);
//! * every other case is a miss, answered exactly like unknown content and no sooner than
//!   the lookup floor (but at once over the probe limit, or for a right proof whose content
//!   went since: neither depends on what anyone stores), and probes are rate-limited per
//!   tenant and per client address (`throttle.rs`). A hit by a whole digest is answered at
//!   once: its time can only tell its caller about content the caller may read or has just
//!   shown it has.

use chuan_store::{ContentRecord, ContentSource, GrantKind, ObjectMeta, ObjectRecord};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;

use crate::access::{Op, Principal};
use crate::engine::{write_error, Engine};
use crate::error::{CoreError, CoreResult};
use crate::grants::Redeemed;
use crate::names::validate_key;
use crate::objects::PutTarget;

/// What a caller offers as proof that it has the file.
#[derive(Debug, Clone)]
pub enum Possession {
    None,
    /// These bytes are at these offsets. Proves nothing unless they cover at least 8 distinct
    /// bytes of the file (all of it when it is shorter).
    Bytes(Vec<(u64, Vec<u8>)>),
    /// HMAC-SHA256 keyed with `nonce` over the concatenation of the given (offset, length) ranges.
    Mac {
        nonce: Vec<u8>,
        ranges: Vec<(u64, u64)>,
        mac: Vec<u8>,
    },
}

/// Content a principal may share by digest: what [`Engine::claimable_content`] and
/// [`Engine::own_content`] grant, and what [`Engine::instant_put`] takes. Only the engine makes
/// one, so no caller can point an object at content it was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldContent(i64);

impl HeldContent {
    /// The content's id (to compare with [`chuan_store::ObjectRecord::content_id`]).
    pub fn content_id(&self) -> i64 {
        self.0
    }
}

/// How long every instant-upload lookup that misses takes at least, with local blobs
/// ([`EngineConfig::lookup_floor`](crate::EngineConfig::lookup_floor)). A miss on content
/// another tenant holds reads its bytes to check a proof, a miss on unknown content reads
/// nothing; both answer after this floor, so the time taken does not tell them apart
/// (measured by `tests/compat/test_hardening.py::test_claim_timing_does_not_reveal_content`).
/// A hit is answered at once: it goes only to a caller that could read the content already
/// or has shown it has the bytes.
pub const DEFAULT_LOOKUP_FLOOR: Duration = Duration::from_millis(10);

/// The floor to use with a blob store whose reads take a network round trip or more (an S3
/// backend): a proof read of a few ranges there takes several milliseconds, tens on a remote
/// service.
pub const REMOTE_LOOKUP_FLOOR: Duration = Duration::from_millis(100);

/// Lookups over the floor are logged at most this often.
const OVERRUN_LOG_EVERY: Duration = Duration::from_secs(60);

impl Engine {
    /// Runs `f`, a lookup; a hit (`Ok(Some(_))`) is answered at once, anything else (a miss,
    /// an error) once the lookup floor has passed since `f` started. A hit goes only to a
    /// caller that could read the content already or has just shown it has the bytes, so its
    /// time tells nothing the hit itself does not; a miss must not tell content that someone
    /// else holds from content nobody holds, which the floor hides. A miss that took longer
    /// than the floor answers late, and its timing could tell the two apart: counted
    /// (`chuan_lookup_floor_overruns_total`) and logged for the operator, who should raise
    /// the floor.
    async fn floored_unless_hit<T, F>(&self, f: F) -> CoreResult<Option<T>>
    where
        F: std::future::Future<Output = CoreResult<Option<T>>>,
    {
        self.floored(f, false).await
    }

    /// [`Engine::floored_unless_hit`], or with `hits_wait` every answer after the floor: for a
    /// lookup by a digest too weak to show that the caller has the file (Aliyun Drive's
    /// pre-hash of the first KiB), whose hit's time could tell how many other objects share
    /// what it covers.
    async fn floored<T, F>(&self, f: F, hits_wait: bool) -> CoreResult<Option<T>>
    where
        F: std::future::Future<Output = CoreResult<Option<T>>>,
    {
        let start = tokio::time::Instant::now();
        let out = f.await;
        if !hits_wait && matches!(out, Ok(Some(_))) {
            return out;
        }
        let floor = self.config.lookup_floor;
        let took = start.elapsed();
        if took > floor {
            self.metrics.lookup_floor_overruns.inc();
            let mut last = self.overrun_logged.lock();
            if last.is_none_or(|at| at.elapsed() >= OVERRUN_LOG_EVERY) {
                *last = Some(std::time::Instant::now());
                tracing::warn!(
                    took_ms = took.as_millis() as u64,
                    floor_ms = floor.as_millis() as u64,
                    "an instant-upload lookup that missed took longer than the lookup floor, so its timing may tell whether someone else holds the content: raise --lookup-floor-ms"
                );
            }
        }
        tokio::time::sleep_until(start + floor).await;
        out
    }
}

/// Pending contents of one size settled by a lookup at most (the probe limit bounds how often).
const PENDING_SETTLE_LIMIT: usize = 4;

/// The fewest bytes a [`Possession::Bytes`] proof must show (all of a shorter file): Aliyun
/// Drive's `proof_version v1` window is 8 bytes, fewer only where it runs into the file's end.
const MIN_PROOF_BYTES: u64 = 8;

/// How many distinct bytes of the file `pieces` show (overlaps counted once).
fn covered(pieces: &[(u64, Vec<u8>)]) -> u64 {
    let mut spans: Vec<(u64, u64)> =
        pieces.iter().map(|(offset, bytes)| (*offset, offset.saturating_add(bytes.len() as u64))).collect();
    spans.sort_unstable();
    let (mut total, mut reached) = (0, 0);
    for (start, end) in spans {
        let start = start.max(reached);
        if end > start {
            total += end - start;
            reached = end;
        }
    }
    total
}

/// Ranges in a native challenge, and the most bytes each covers.
const CHALLENGE_RANGES: usize = 4;
const CHALLENGE_RANGE_BYTES: u64 = 64;

/// A native proof-of-possession challenge: what step two must match. Kept as the payload of a
/// single-use grant (its id is the grant's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    #[serde(skip)]
    pub id: String,
    pub tenant: String,
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub sha256: String,
    /// Hex of the 32-byte HMAC key.
    pub nonce: String,
    /// (offset, length) ranges the proof covers; empty when no proof is required.
    pub ranges: Vec<(u64, u64)>,
    pub proof_required: bool,
    pub expires_ms: i64,
    /// The content type the object gets on a hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The proof that answers this challenge, worked out when it was issued (under the lookup
    /// floor) from whichever stored content has the digest; random when none has. Never shown
    /// to the caller. Empty in a challenge issued with [`ChallengeOptions::prove`] or by a
    /// version that did not keep it: such a challenge's answer is checked against the stored
    /// bytes.
    #[serde(default, skip_serializing_if = "ExpectedProof::is_empty")]
    pub(crate) expected: ExpectedProof,
}

/// The HMAC-SHA256 a right answer to a [`Challenge`] carries (32 bytes, hex in the grant's
/// payload). Its `Debug` shows nothing, so it cannot reach a log line.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct ExpectedProof(String);

impl ExpectedProof {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `mac` is this proof (constant time; false when none was kept).
    fn matches(&self, mac: &[u8]) -> bool {
        !self.0.is_empty() && hex::decode(&self.0).is_ok_and(|want| crate::constant_time_eq(&want, mac))
    }
}

impl std::fmt::Debug for ExpectedProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "ExpectedProof(none)" } else { "ExpectedProof(..)" })
    }
}

/// How a native challenge is asked for ([`Engine::issue_challenge_with`]).
#[derive(Debug, Clone, Default)]
pub struct ChallengeOptions {
    /// The object's content type on a hit; `None` or empty: none.
    pub content_type: Option<String>,
    /// The caller has the file and will answer with a proof whoever holds the content: the
    /// challenge asks for one without looking anything up, so it is answered at once, and the
    /// answer is checked against the stored bytes. A right one is a hit at once; any other
    /// answer is a hit at once only when the caller's tenant holds the content within the
    /// credential's scope (as without `prove`), else a miss after the lookup floor. Without it
    /// the challenge looks the content up (under the floor unless the caller's tenant holds
    /// it) to ask no proof of the content's own tenant.
    pub prove: bool,
}

/// The outcome of answering a native challenge.
#[derive(Debug)]
pub enum ChallengeOutcome {
    Hit(ObjectRecord),
    Miss,
    Used,
    Expired,
    Unknown,
}

impl Engine {
    /// Content with this digest and size that the principal could read already (see
    /// [`Engine::own_content_now`]), for a claim by a partial digest (Aliyun Drive's
    /// `pre_hash`, SHA-1 of the first KiB). Counted as a probe; over the probe limit it is a
    /// miss, like any other. Hit or miss, it answers after the lookup floor: the caller may
    /// have no more than the bytes the digest covers, and a hit's time grows with the other
    /// objects that share them (`find_held_content` walks them).
    pub async fn own_content(
        &self,
        p: &Principal,
        algo: &str,
        digest: &str,
        size: u64,
    ) -> CoreResult<Option<HeldContent>> {
        if self.probe(p).await.is_err() {
            return Ok(None);
        }
        self.floored(self.own_content_now(p, algo, digest, size), true).await
    }

    /// Content with this digest and size that the principal could read already: held by its
    /// tenant in an object inside its scope. A principal that may read nothing (write-only,
    /// anonymous) holds nothing. Contents of that size whose digests the background job has
    /// not computed yet (just assembled from parts, or larger than one UFile block) are
    /// settled first, so a hit does not depend on the job's timing.
    pub(crate) async fn own_content_now(
        &self,
        p: &Principal,
        algo: &str,
        digest: &str,
        size: u64,
    ) -> CoreResult<Option<HeldContent>> {
        let Some(within) = p.readable() else { return Ok(None) };
        if let Some(id) = self.meta.find_held_content(&p.tenant, algo, digest, size, &within).await? {
            return Ok(Some(HeldContent(id)));
        }
        let pending = self.meta.pending_held_contents(&p.tenant, size, &within, PENDING_SETTLE_LIMIT).await?;
        if pending.is_empty() {
            return Ok(None);
        }
        for content in pending {
            self.full_digests(&content).await?;
        }
        Ok(self.meta.find_held_content(&p.tenant, algo, digest, size, &within).await?.map(HeldContent))
    }

    /// Content the principal may claim by digest, or `None` (a miss, whatever the reason: not
    /// held, not proven, or over the probe limit). Every miss takes the lookup floor; a hit
    /// (content the caller could read, or proved it has) is answered at once.
    pub async fn claimable_content(
        &self,
        p: &Principal,
        algo: &str,
        digest: &str,
        size: u64,
        proof: &Possession,
    ) -> CoreResult<Option<HeldContent>> {
        if self.probe(p).await.is_err() {
            return Ok(None);
        }
        self.floored_unless_hit(async {
            if let Some(held) = self.own_content_now(p, algo, digest, size).await? {
                return Ok(Some(held));
            }
            Ok(self.proven_content(algo, digest, size, proof).await)
        })
        .await
    }

    /// Content of anyone's with this digest that `proof` proves the caller holds. A failure
    /// on the way (the content deleted between the lookup and the read, a blob store that does
    /// not answer) is `None` too, logged for the operator only: only content someone holds can
    /// fail so, and an error in the caller's answer would tell that someone holds it.
    async fn proven_content(&self, algo: &str, digest: &str, size: u64, proof: &Possession) -> Option<HeldContent> {
        if matches!(proof, Possession::None) {
            return None;
        }
        let found = async {
            // Contents with one digest hold the same bytes: any one of them decides.
            let Some(&id) = self.meta.find_content(algo, digest, size, 1).await?.first() else { return Ok(None) };
            let content = self.content(id).await?;
            Ok::<_, CoreError>(self.proves(&content, proof).await?.then_some(HeldContent(id)))
        };
        match found.await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "could not check a proof of possession; answering as if nobody held the content");
                None
            }
        }
    }

    async fn proves(&self, content: &ContentRecord, proof: &Possession) -> CoreResult<bool> {
        Ok(match proof {
            Possession::None => false,
            Possession::Bytes(pieces) => {
                // Too few bytes prove nothing: a client that can pick where its window falls
                // (Aliyun's v1 offset comes from the access token, and a caller can get
                // another token) would else be asked for a guessable byte or two.
                if covered(pieces) < MIN_PROOF_BYTES.min(content.size) {
                    return Ok(false);
                }
                let mut ok = !pieces.is_empty();
                for (offset, bytes) in pieces {
                    let len = bytes.len() as u64;
                    if offset + len > content.size {
                        return Ok(false);
                    }
                    ok &= crate::constant_time_eq(&self.read_range(content, *offset, len).await?, bytes);
                }
                ok
            }
            Possession::Mac { nonce, ranges, mac } => {
                self.mac_over(content, nonce, ranges).await?.is_some_and(|want| crate::constant_time_eq(&want, mac))
            }
        })
    }

    /// HMAC-SHA256 keyed with `nonce` over `content`'s bytes at `ranges`, in order; `None` when
    /// a range runs past its end.
    async fn mac_over(
        &self,
        content: &ContentRecord,
        nonce: &[u8],
        ranges: &[(u64, u64)],
    ) -> CoreResult<Option<Vec<u8>>> {
        let mut h = <Hmac<Sha256> as Mac>::new_from_slice(nonce).map_err(|e| CoreError::Internal(e.to_string()))?;
        for (offset, len) in ranges {
            if offset + len > content.size {
                return Ok(None);
            }
            h.update(&self.read_range(content, *offset, *len).await?);
        }
        Ok(Some(h.finalize().into_bytes().to_vec()))
    }

    /// The answer to a challenge (`nonce`, `ranges`) from anyone's stored content with this
    /// digest and size; `None` when nobody's. A failure on the way (the content deleted between
    /// the lookup and the read, a blob store that does not answer) is `None` too and logged for
    /// the operator only: an error in the caller's answer would tell that someone holds it.
    async fn stored_proof(&self, sha256: &str, size: u64, nonce: &[u8], ranges: &[(u64, u64)]) -> Option<Vec<u8>> {
        let found = async {
            let Some(&id) = self.meta.find_content("sha256", sha256, size, 1).await?.first() else {
                return Ok(None);
            };
            self.mac_over(&self.content(id).await?, nonce, ranges).await
        };
        match found.await {
            Ok(proof) => proof,
            Err(e) => {
                tracing::warn!(error = %e, "could not work out the answer to an instant-upload challenge; answering as if nobody held the content");
                None
            }
        }
    }

    /// Creates `target` sharing content granted by [`Engine::claimable_content`]: the instant
    /// upload itself, no bytes received.
    pub async fn instant_put(
        &self,
        p: &Principal,
        mut target: PutTarget,
        held: HeldContent,
        object_id: Option<String>,
    ) -> CoreResult<ObjectRecord> {
        validate_key(&target.key)?;
        let b = self.admit(p, Op::Write, &target.bucket, &target.key).await?;
        self.charge_request(p, &b).await?;
        target.meta.acl = Self::acl_on_write(p, &b, target.meta.acl.take());
        let write = self.object_write(target, ContentSource::Existing(held.0), object_id);
        let rec = self.meta.put_object(write).await.map_err(write_error)?;
        self.metrics.instant_hits.inc();
        self.metrics.objects_committed.inc();
        Ok(rec)
    }

    /// Native challenge, step one. Answered the same way whether or not the content exists;
    /// only a caller that could read it already learns (by `proof_required: false`) that its
    /// tenant holds it.
    pub async fn issue_challenge(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        size: u64,
        sha256: &str,
    ) -> CoreResult<Challenge> {
        self.issue_challenge_with(p, bucket, key, size, sha256, &ChallengeOptions::default()).await
    }

    /// [`Engine::issue_challenge`] with [`ChallengeOptions`].
    pub async fn issue_challenge_with(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        size: u64,
        sha256: &str,
        options: &ChallengeOptions,
    ) -> CoreResult<Challenge> {
        validate_key(key)?;
        let content_type = options.content_type.as_deref().filter(|t| !t.is_empty()).map(str::to_owned);
        crate::names::validate_meta(&ObjectMeta { content_type: content_type.clone(), ..ObjectMeta::default() })?;
        let b = self.admit(p, Op::Write, bucket, key).await?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CoreError::InvalidArgument("sha256 must be 64 hex digits".into()));
        }
        self.probe(p).await?;
        self.charge_request(p, &b).await?;
        let sha256 = sha256.to_ascii_lowercase();
        let (ranges, nonce, decoy) = {
            let mut rng = rand::thread_rng();
            let len = CHALLENGE_RANGE_BYTES.min(size);
            let ranges: Vec<(u64, u64)> = if size == 0 {
                Vec::new()
            } else {
                (0..CHALLENGE_RANGES).map(|_| (rng.gen_range(0..=size - len), len)).collect()
            };
            (ranges, rng.gen::<[u8; 32]>(), rng.gen::<[u8; 32]>())
        };
        // Everything that depends on who stores the content happens here: whether the caller's
        // tenant holds it (then no proof is asked, at once), and else, under the floor, the
        // proof that answers the challenge, from anyone's content with this digest (a decoy no
        // answer can match when nobody's). Step two then compares an answer with that proof and
        // reads no content for a wrong one, so it needs no floor of its own: one floor per
        // instant upload by another tenant, none for the content's own tenant.
        // With `prove`, nothing is looked up here (so nothing waits): the answer is checked
        // against the stored bytes at step two, a right one at once, any other under the floor.
        let mut expected = ExpectedProof::default();
        let own = if options.prove {
            false
        } else {
            self.floored_unless_hit(async {
                if self.own_content_now(p, "sha256", &sha256, size).await?.is_some() {
                    return Ok(Some(()));
                }
                let stored = self.stored_proof(&sha256, size, &nonce, &ranges).await;
                expected = ExpectedProof(hex::encode(stored.unwrap_or_else(|| decoy.to_vec())));
                Ok(None)
            })
            .await?
            .is_some()
        };
        let ttl = self.config.challenge_ttl;
        let mut c = Challenge {
            id: String::new(),
            tenant: p.tenant.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size,
            sha256,
            nonce: hex::encode(nonce),
            ranges: if own { Vec::new() } else { ranges },
            proof_required: !own,
            expires_ms: chuan_store::now_ms() + ttl.as_millis() as i64,
            content_type,
            expected,
        };
        // Kept an hour past its expiry, so a late answer gets "expired" rather than "unknown".
        c.id = self.issue_grant(GrantKind::Challenge, &c, ttl + Duration::from_secs(3600)).await?;
        Ok(c)
    }

    /// Native challenge, step two: single use, before its expiry, by the tenant it was issued to.
    pub async fn answer_challenge(&self, p: &Principal, id: &str, mac: Option<&[u8]>) -> CoreResult<ChallengeOutcome> {
        let mut c: Challenge = match self.redeem_grant(GrantKind::Challenge, id).await? {
            Redeemed::Granted(c) => c,
            Redeemed::Used => return Ok(ChallengeOutcome::Used),
            Redeemed::Expired => return Ok(ChallengeOutcome::Expired),
            Redeemed::Unknown => return Ok(ChallengeOutcome::Unknown),
        };
        c.id = id.to_owned();
        if c.tenant != p.tenant {
            return Ok(ChallengeOutcome::Unknown);
        }
        if chuan_store::now_ms() > c.expires_ms {
            return Ok(ChallengeOutcome::Expired);
        }
        let content = if c.proof_required && mac.is_some_and(|m| c.expected.matches(m)) {
            // A right answer to the proof worked out at issue: the caller has the bytes, so
            // this lookup may take what time it takes (the content can have gone since).
            self.meta.find_content("sha256", &c.sha256, c.size, 1).await?.first().map(|&id| HeldContent(id))
        } else {
            // Every other answer (none or a wrong one, to a challenge that needs no proof, or
            // any to one issued with `prove` or by a version that kept no proof) looks the
            // content up again: a hit (the caller's tenant holds it, or the proof checks out
            // against the stored bytes) at once, a miss after the floor, which keeps that
            // lookup's time from telling whether anyone else holds it. (A challenge that needs no proof is not committed on what its
            // issue found: the caller's object may be gone since, and on SQLite the content's
            // id taken by other bytes.)
            let proof = match mac {
                Some(m) if c.expected.is_empty() => Possession::Mac {
                    nonce: hex::decode(&c.nonce).unwrap_or_default(),
                    ranges: c.ranges.clone(),
                    mac: m.to_vec(),
                },
                _ => Possession::None,
            };
            // Probes were counted when the challenge was issued.
            self.floored_unless_hit(async {
                match self.own_content_now(p, "sha256", &c.sha256, c.size).await? {
                    Some(id) => Ok(Some(id)),
                    None if c.proof_required => Ok(self.proven_content("sha256", &c.sha256, c.size, &proof).await),
                    None => Ok(None),
                }
            })
            .await?
        };
        let Some(held) = content else { return Ok(ChallengeOutcome::Miss) };
        let mut target = PutTarget::new(&c.bucket, &c.key);
        target.meta.content_type = c.content_type.take();
        Ok(ChallengeOutcome::Hit(self.instant_put(p, target, held, None).await?))
    }
}
