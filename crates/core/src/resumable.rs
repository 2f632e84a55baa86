//! Resumable uploads: the sessions behind tus 1.0 and the IETF "Resumable Uploads for HTTP"
//! draft, which are one kind of upload session ([`UploadKind::Tus`]) seen through two wire
//! formats.
//!
//! A resumable upload is a session whose bytes arrive as *appends at an offset*. Each append's
//! bytes become one part (numbered after the last), stored only if the session's parts still
//! sum to the offset the client named — checked in the same store transaction
//! ([`UploadStore::append_part`]), so two appends racing for one offset cannot both land, on one
//! node or several. The offset is therefore never stored: it is the sum of the parts, and a
//! client asking for it learns only bytes that are durable.
//!
//! Rules kept here, for every dialect:
//! - **Length**: declared at creation or later (deferred), once; an append past it is refused
//!   while streaming ([`CoreError::EntityTooLarge`]), nothing stored. The most any upload may
//!   declare is [`EngineConfig::resumable_max_size`](crate::EngineConfig::resumable_max_size).
//! - **Completion**: when the offset reaches the length the parts become the object in one
//!   transaction, without copying, and the session stays as a record of the finished upload
//!   (an offset equal to its length) until it expires, so a client that asks again learns it
//!   is done. A *partial* upload (tus concatenation) never becomes an object by itself.
//! - **Cut-off bodies**: with [`Append::keep_prefix`] the bytes that arrived before the body
//!   failed (connection dropped, stalled) are kept as an append of their own, as tus asks; with
//!   a checksum nothing of such a body is kept (the checksum covers the whole of it).
//! - **Checksums** of an append (md5, sha1, sha256, crc32) are checked after the bytes are
//!   staged and before they are stored: a mismatch stores nothing.
//! - **Concatenation** adopts the parts of finished partial uploads of the same tenant and
//!   bucket, each admitted for the caller as its own upload, into a new finished upload: the
//!   blobs gain references; no byte is read or copied.
//! - **Instant upload**: a creation that declares the whole content's digest (and length) of
//!   content the caller's tenant can already read completes at once, through the same lookup
//!   as every protocol (rate-limited, with the lookup floor: invariant 15); content only another
//!   tenant holds needs the native challenge's proof first, so a declared digest reveals
//!   nothing.
//! - **Expiry**: the kind's lifetime (24 h unless configured), fixed at creation; an expired
//!   session is [`CoreError::UploadExpired`] until GC removes it, then unknown.

use bytes::Bytes;
use chuan_store::*;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

use crate::access::{Op, Principal};
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};
use crate::ingest::{BodyError, StageOptions, Staged};
use crate::instant::Possession;
use crate::objects::PutTarget;
use crate::uploads::{live, Claim, Completion, NewUpload, PartList, MAX_PARTS};
use chuan_store::Appended as Appended_;

/// The most bytes a resumable upload may declare unless configured otherwise (5 TiB, S3's
/// largest object).
pub const DEFAULT_RESUMABLE_MAX_SIZE: u64 = 5 << 40;

/// The session state the core keeps for a resumable upload (JSON in `UploadRecord::state`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ResumableState {
    /// The declared total length, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    length: Option<u64>,
    /// A tus partial upload: never an object by itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    partial: bool,
    /// Made by concatenation: takes no appends.
    #[serde(default, rename = "final", skip_serializing_if = "std::ops::Not::not")]
    concatenated: bool,
    /// The upload finished: its object was written (the parts are gone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    done: bool,
    /// The whole content's digest the client declared (checked at completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim: Option<(String, String)>,
    /// What the dialect keeps to answer with (tus `Upload-Metadata`, `Upload-Concat`).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    echo: serde_json::Value,
}

impl ResumableState {
    fn of(rec: &UploadRecord) -> CoreResult<Self> {
        serde_json::from_str(&rec.state).map_err(|e| CoreError::Internal(format!("upload {}: {e}", rec.id)))
    }

    fn json(&self) -> String {
        serde_json::to_string(self).expect("serializable")
    }

    fn claim(&self) -> Option<Claim> {
        let (algo, hex) = self.claim.as_ref()?;
        Some(match algo.as_str() {
            "md5" => Claim::Md5(hex.clone()),
            "sha1" => Claim::Sha1(hex.clone()),
            _ => Claim::Sha256(hex.clone()),
        })
    }
}

/// A new resumable upload.
#[derive(Debug, Clone)]
pub struct NewResumable {
    pub bucket: String,
    /// The key the object will have (for a partial upload: the key it is admitted for).
    pub key: String,
    pub meta: ObjectMeta,
    /// The total length in bytes, when the client declares it now.
    pub length: Option<u64>,
    /// A tus partial upload (`Upload-Concat: partial`).
    pub partial: bool,
    /// The whole content's digest the client declares: with a length, content the caller's
    /// tenant already holds completes the upload at once; otherwise it is checked at completion
    /// (a mismatch drops the upload: [`CoreError::BadDigest`]).
    pub claim: Option<Claim>,
    /// What the dialect wants back with every [`Resumable`].
    pub echo: serde_json::Value,
}

impl NewResumable {
    pub fn new(bucket: &str, key: &str) -> Self {
        Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            meta: ObjectMeta::default(),
            length: None,
            partial: false,
            claim: None,
            echo: serde_json::Value::Null,
        }
    }
}

/// A resumable upload as it stands.
#[derive(Debug, Clone)]
pub struct Resumable {
    pub id: String,
    pub bucket: String,
    pub key: String,
    /// Bytes received and durable.
    pub offset: u64,
    /// The declared length, once known.
    pub length: Option<u64>,
    pub partial: bool,
    /// Made by concatenation (takes no appends).
    pub concatenated: bool,
    /// Finished: the object is written (or, for a partial upload, all its bytes are in).
    pub complete: bool,
    /// When the upload expires (ms since the epoch).
    pub expires_ms: Option<i64>,
    pub echo: serde_json::Value,
    pub meta: ObjectMeta,
}

/// Which checksum an append carries (tus `Upload-Checksum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendChecksum {
    Md5,
    Sha1,
    Sha256,
    Crc32,
}

impl AppendChecksum {
    /// The algorithms, by their tus names (lower case, as the tus checksum extension and the
    /// IANA hash-function registry spell them).
    pub const ALL: [(&'static str, AppendChecksum); 4] =
        [("md5", Self::Md5), ("sha1", Self::Sha1), ("sha256", Self::Sha256), ("crc32", Self::Crc32)];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// Whether `raw` (the digest's bytes; CRC32 big-endian) is the staged bytes' digest.
    fn holds(self, d: &Digests, raw: &[u8]) -> bool {
        let hex = hex::encode(raw);
        match self {
            Self::Md5 => d.md5 == hex,
            Self::Sha1 => d.sha1 == hex,
            Self::Sha256 => d.sha256 == hex,
            Self::Crc32 => raw == d.crc32.to_be_bytes(),
        }
    }
}

/// One append.
/// A checksum that arrives after the bytes it covers (tus `checksum-trailer`): read once the
/// body has ended; `Err` (the trailer missing or malformed) stores nothing.
pub type LateChecksum = Box<dyn FnOnce() -> CoreResult<(AppendChecksum, Vec<u8>)> + Send>;

/// An append's checksum.
pub enum AppendCheck {
    /// Sent before the bytes (tus `Upload-Checksum`).
    Now(AppendChecksum, Vec<u8>),
    /// Announced before the bytes and sent after them.
    Later(LateChecksum),
}

impl std::fmt::Debug for AppendCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Now(a, raw) => f.debug_tuple("Now").field(a).field(&hex::encode(raw)).finish(),
            Self::Later(_) => f.write_str("Later"),
        }
    }
}

#[derive(Debug)]
pub struct Append {
    /// Where the client says the bytes go: the upload's current offset, else
    /// [`CoreError::OffsetMismatch`] and nothing is read or stored.
    pub offset: u64,
    /// The total length, declared now (a deferred length; must agree when already known).
    pub length: Option<u64>,
    /// The bytes' checksum: a mismatch stores none of them ([`CoreError::ChecksumMismatch`]).
    pub checksum: Option<AppendCheck>,
    /// Keep the bytes that arrived before the body failed (ignored with a checksum).
    pub keep_prefix: bool,
    /// These bytes end the upload (the IETF draft's `Upload-Complete: ?1`): the length becomes
    /// the new offset. `false` leaves completion to the declared length.
    pub last: bool,
}

/// What an append did.
#[derive(Debug)]
pub struct Appended {
    pub upload: Resumable,
    /// The object, when this append completed the upload.
    pub object: Option<ObjectRecord>,
    /// The body failed after some bytes arrived: they were kept (the upload's offset says how
    /// many), and this is why the body ended.
    pub cut: Option<CoreError>,
}

impl Engine {
    /// Opens a resumable upload for writing `key` of `bucket`: its id is the session's.
    ///
    /// Errors: `EntityTooLarge` when the length is over the configured maximum; what
    /// [`Engine::create_upload`] refuses (access, scope, names, metadata).
    pub async fn create_resumable(&self, p: &Principal, new: NewResumable) -> CoreResult<Resumable> {
        let claim = new.claim.clone();
        let (rec, state) = self.new_session(p, new, false).await?;
        if state.length == Some(0) && !state.partial {
            // Nothing to send: the empty object exists at once.
            self.finish_resumable(p, &rec, &state, 0).await?;
            return Ok(view(&rec, &ResumableState { done: true, ..state }, 0));
        }
        if let (Some(claim), Some(length), false) = (&claim, state.length, state.partial) {
            let (algo, hex) = claim_pair(claim);
            if let Some(held) = self.claimable_content(p, &algo, &hex, length, &Possession::None).await? {
                let target = PutTarget { meta: rec.meta.clone(), ..PutTarget::new(&rec.bucket, &rec.key) };
                self.instant_put(p, target, held, None).await?;
                let done = ResumableState { done: true, ..state.clone() };
                self.meta.set_upload_state(&rec.id, &rec.state, &done.json()).await?;
                return Ok(view(&rec, &done, length));
            }
        }
        Ok(view(&rec, &state, 0))
    }

    /// Creates the session of a new resumable upload (concatenated: made of other uploads'
    /// parts, taking no appends).
    async fn new_session(
        &self,
        p: &Principal,
        new: NewResumable,
        concatenated: bool,
    ) -> CoreResult<(UploadRecord, ResumableState)> {
        let max = self.config.resumable_max_size;
        if new.length.is_some_and(|l| l > max) {
            return Err(CoreError::EntityTooLarge { limit: max });
        }
        let state = ResumableState {
            length: new.length,
            partial: new.partial,
            concatenated,
            claim: new.claim.as_ref().map(claim_pair),
            echo: new.echo,
            ..ResumableState::default()
        };
        let mut upload = NewUpload::new(UploadKind::Tus, &new.bucket, &new.key);
        upload.meta = new.meta;
        upload.state = state.json();
        Ok((self.create_upload(p, upload).await?, state))
    }

    /// The resumable upload `id`, which `p` must be allowed to write: another tenant's is
    /// answered like an unknown one (`NoSuchUpload`); an expired one not yet collected is
    /// `UploadExpired`. An upload whose bytes are all in but whose completion failed (or was
    /// cut off by a crash) is completed now: its offset is reported only once the object
    /// exists, else the completion's error.
    pub async fn resumable(&self, p: &Principal, id: &str) -> CoreResult<Resumable> {
        let (rec, state) = self.resumable_record(p, id).await?;
        if state.done {
            return Ok(view(&rec, &state, state.length.unwrap_or(0)));
        }
        let offset = self.meta.upload_progress(&rec.id).await?.0;
        if state.length == Some(offset) && !state.partial {
            self.finish_resumable(p, &rec, &state, offset).await?;
            return Ok(view(&rec, &ResumableState { done: true, ..state }, offset));
        }
        Ok(view(&rec, &state, offset))
    }

    async fn resumable_record(&self, p: &Principal, id: &str) -> CoreResult<(UploadRecord, ResumableState)> {
        let rec =
            self.meta.get_upload(id).await?.filter(|u| u.kind == UploadKind::Tus).ok_or(CoreError::NoSuchUpload)?;
        let b = match self.admit(p, Op::Write, &rec.bucket, &rec.key).await {
            Ok(b) => b,
            Err(CoreError::AccessDenied) if rec.tenant != p.tenant && !p.admin => return Err(CoreError::NoSuchUpload),
            Err(e) => return Err(e),
        };
        self.charge_request(p, &b).await?;
        if !live(&rec) {
            return Err(CoreError::UploadExpired);
        }
        let state = ResumableState::of(&rec)?;
        Ok((rec, state))
    }

    /// Appends a body to the resumable upload `id` at `a.offset`; completes the upload when
    /// the offset reaches its length (or `a.last`).
    ///
    /// Errors, each storing nothing (but a kept prefix, see [`Appended::cut`]):
    /// `OffsetMismatch` (with the upload's offset), `EntityTooLarge` past the length or the
    /// maximum, `SizeMismatch` for a length that disagrees, `ChecksumMismatch`,
    /// `UploadComplete` for an append to a finished or a concatenated upload, `UploadExpired`, `NoSuchUpload`, `InvalidPart` past
    /// [`MAX_PARTS`] appends; a body error when nothing was kept.
    pub async fn append_resumable<S, E>(&self, p: &Principal, id: &str, a: Append, body: S) -> CoreResult<Appended>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BodyError>,
    {
        let (mut rec, mut state) = self.resumable_record(p, id).await?;
        if state.concatenated {
            return Err(CoreError::UploadComplete); // complete from its creation
        }
        let (offset, parts) = match state.done {
            true => (state.length.unwrap_or(0), 0),
            false => self.meta.upload_progress(&rec.id).await?,
        };
        if a.offset != offset {
            return Err(CoreError::OffsetMismatch { actual: offset });
        }
        if state.done {
            // Nothing more goes in; an empty append (a client re-sending its last one) is
            // answered with the finished upload.
            return match self.stage_with(p, body, StageOptions::at_most(0)).await {
                Ok(_) => Ok(Appended { upload: view(&rec, &state, offset), object: None, cut: None }),
                Err(CoreError::EntityTooLarge { .. }) => Err(CoreError::UploadComplete),
                Err(e) => Err(e),
            };
        }
        if let Some(length) = a.length {
            match state.length {
                Some(known) if known != length => {
                    return Err(CoreError::SizeMismatch { expected: known, actual: length })
                }
                Some(_) => {}
                None if length < offset => return Err(CoreError::SizeMismatch { expected: length, actual: offset }),
                None if length > self.config.resumable_max_size => {
                    return Err(CoreError::EntityTooLarge { limit: self.config.resumable_max_size })
                }
                None => {
                    state = self.set_state(&mut rec, ResumableState { length: Some(length), ..state }).await?;
                }
            }
        }
        if parts >= MAX_PARTS {
            return Err(CoreError::InvalidPart(format!("an upload takes at most {MAX_PARTS} appends")));
        }
        // The most this append may bring (a maximum lowered since the upload began leaves none).
        let max = self.config.resumable_max_size;
        let room = state.length.unwrap_or(max).checked_sub(offset).ok_or(CoreError::EntityTooLarge { limit: max })?;
        // A SHA-1 named up front is computed in the pass; one named in a trailer afterwards.
        let sha1_needed = matches!(a.checksum, Some(AppendCheck::Now(AppendChecksum::Sha1, _)));
        let options = StageOptions { max_size: Some(room), defer_sha1: !sha1_needed, ..StageOptions::default() };
        let cut_error: Arc<Mutex<Option<BodyError>>> = Arc::default();
        let mut staged = if a.keep_prefix && a.checksum.is_none() {
            let slot = cut_error.clone();
            let body = body.scan((), move |_, item| {
                futures::future::ready(match item {
                    Ok(b) => Some(Ok::<Bytes, BodyError>(b)),
                    Err(e) => {
                        *slot.lock().expect("not poisoned") = Some(e.into());
                        None
                    }
                })
            });
            self.stage_with(p, body, options).await?
        } else {
            self.stage_with(p, body, options).await?
        };
        let cut = cut_error.lock().expect("not poisoned").take().map(crate::ingest::body_error);
        let checksum = match a.checksum {
            Some(AppendCheck::Now(algo, raw)) => Some((algo, raw)),
            Some(AppendCheck::Later(read)) => Some(read()?),
            None => None,
        };
        if let Some((algo, raw)) = checksum {
            if algo == AppendChecksum::Sha1 {
                staged.ensure_sha1().await?;
            }
            if !algo.holds(&staged.digests, &raw) {
                return Err(CoreError::ChecksumMismatch);
            }
        }
        // The last bytes (IETF `Upload-Complete: ?1`) fix the length: checked or recorded
        // before anything is stored.
        let end = offset + staged.size;
        if a.last && cut.is_none() {
            match state.length {
                Some(length) if length != end => return Err(CoreError::SizeMismatch { expected: length, actual: end }),
                Some(_) => {}
                None => state = self.set_state(&mut rec, ResumableState { length: Some(end), ..state }).await?,
            }
        }
        let mut offset = offset;
        if staged.size > 0 {
            offset = match self.append_staged(&rec, offset, staged).await {
                // Completed or changed meanwhile: the client learns where the upload stands.
                Err(CoreError::UploadComplete) => {
                    let now = self.resumable(p, id).await?;
                    return Err(CoreError::OffsetMismatch { actual: now.offset });
                }
                r => r?,
            };
        }
        let mut object = None;
        if state.length == Some(offset) && !state.partial {
            object = self.finish_resumable(p, &rec, &state, offset).await?;
            state.done = true;
        } else if state.length == Some(offset) {
            state.done = true; // a finished partial upload
        }
        Ok(Appended { upload: view(&rec, &state, offset), object, cut })
    }

    /// Replaces the session's state if it is still `rec.state` (`SlowDown` when it changed
    /// meanwhile: the client retries); `rec` follows.
    async fn set_state(&self, rec: &mut UploadRecord, next: ResumableState) -> CoreResult<ResumableState> {
        let json = next.json();
        if !self.meta.set_upload_state(&rec.id, &rec.state, &json).await? {
            return Err(CoreError::SlowDown);
        }
        rec.state = json;
        Ok(next)
    }

    /// Stores staged bytes as the next part, if the upload still holds `offset` bytes and its
    /// state is still `rec.state` (`UploadComplete` when it changed: completed meanwhile).
    async fn append_staged(&self, rec: &UploadRecord, offset: u64, staged: Staged) -> CoreResult<u64> {
        let part = PartWrite {
            upload_id: rec.id.clone(),
            number: 0, // the store numbers it after the last
            blob: staged.digests.sha256.clone(),
            size: staged.size,
            etag: staged.digests.md5.clone(),
            digests: staged.digests.clone(),
            data: staged.inline_data(),
        };
        let appended = self
            .publish(staged, async {
                match self.meta.append_part(offset, &rec.state, part).await {
                    Err(StoreError::NotFound) => Err(CoreError::NoSuchUpload),
                    r => Ok(r?),
                }
            })
            .await?;
        match appended {
            Appended_::Part { offset, .. } => {
                self.metrics.parts_committed.inc();
                Ok(offset)
            }
            Appended_::OffsetMismatch { actual } => Err(CoreError::OffsetMismatch { actual }),
            Appended_::StateChanged => Err(CoreError::UploadComplete),
        }
    }

    /// Turns a finished upload's parts into its object, keeping the session as its record
    /// (only if its state is still `rec.state`). `None` when another request completed it
    /// meanwhile.
    async fn finish_resumable(
        &self,
        p: &Principal,
        rec: &UploadRecord,
        state: &ResumableState,
        length: u64,
    ) -> CoreResult<Option<ObjectRecord>> {
        if length == 0 {
            // An empty upload: one empty part makes the empty object.
            let staged = self.stage(p, futures::stream::empty::<Result<Bytes, BodyError>>()).await?;
            self.append_staged(rec, 0, staged).await?;
        }
        let mut c = Completion::new(PartList::Stored);
        c.size = Some(length);
        c.claims = state.claim().into_iter().collect();
        c.keep_session = Some((rec.state.clone(), ResumableState { done: true, ..state.clone() }.json()));
        match self.complete_upload(p, rec, c).await {
            Ok(done) => Ok(Some(done.object)),
            Err(e) => match self.meta.get_upload(&rec.id).await? {
                Some(now) if ResumableState::of(&now)?.done => Ok(None),
                _ => Err(e),
            },
        }
    }

    /// The first append of a creation that carries data (tus creation-with-upload, the IETF
    /// draft's creation with content), as [`Engine::append_resumable`] — but when the append
    /// is refused for what the request sent (over the length or the maximum, a checksum or
    /// length mismatch, a quota, a malformed trailer), the upload it was to start goes too, so
    /// a refused creation leaves nothing behind. It stays when anything else went wrong (a cut
    /// body keeps its prefix, an outage, a completion to be retried) and when another request
    /// appended meanwhile (an IETF client resuming at the URL of the 104): only a session with
    /// no parts is removed, checked in the removal's transaction.
    pub async fn append_creation<S, E>(&self, p: &Principal, id: &str, a: Append, body: S) -> CoreResult<Appended>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BodyError>,
    {
        let result = self.append_resumable(p, id, a, body).await;
        if let Err(
            CoreError::EntityTooLarge { .. }
            | CoreError::ChecksumMismatch
            | CoreError::SizeMismatch { .. }
            | CoreError::QuotaExceeded(_)
            | CoreError::InvalidArgument(_),
        ) = &result
        {
            // The creation already counted as the caller's request: removed without a charge.
            match self.meta.abort_empty_upload(id).await {
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => tracing::warn!(upload = id, error = %e, "a refused creation's upload stays until it expires"),
            }
        }
        result
    }

    /// Ends the resumable upload `id` (tus termination, IETF cancellation): its parts are
    /// dropped; a finished upload's object stays.
    pub async fn terminate_resumable(&self, p: &Principal, id: &str) -> CoreResult<()> {
        let (rec, _) = self.resumable_record(p, id).await?;
        match self.meta.abort_upload(&rec.id).await {
            Err(StoreError::NotFound) => Err(CoreError::NoSuchUpload),
            r => Ok(r?),
        }
    }

    /// tus concatenation: a new upload for `new.bucket`/`new.key` made of the finished partial
    /// uploads `sources`, in order, without copying their bytes; it completes at once.
    ///
    /// Errors: `NoSuchUpload` for an id that is unknown, another tenant's, in another bucket or
    /// not writable by `p`; `InvalidArgument` for one that is not a partial upload or not
    /// finished; `EntityTooLarge` over the maximum.
    pub async fn concatenate_resumable(
        &self,
        p: &Principal,
        mut new: NewResumable,
        sources: &[String],
    ) -> CoreResult<Resumable> {
        if sources.is_empty() {
            return Err(CoreError::InvalidArgument("a final upload names at least one partial upload".into()));
        }
        let mut adopted = Vec::with_capacity(sources.len());
        let mut parts = 0u32;
        for id in sources {
            let u = self.resumable(p, id).await?;
            if u.bucket != new.bucket {
                return Err(CoreError::NoSuchUpload);
            }
            if !u.partial {
                return Err(CoreError::InvalidArgument(format!("upload {id} is not a partial upload")));
            }
            if u.length != Some(u.offset) {
                return Err(CoreError::InvalidArgument(format!("partial upload {id} is not finished")));
            }
            parts += self.meta.upload_progress(&u.id).await?.1;
            adopted.push((u.id, u.offset));
        }
        if parts > MAX_PARTS {
            return Err(CoreError::InvalidArgument(format!(
                "the partial uploads hold {parts} appends; a final upload takes at most {MAX_PARTS}"
            )));
        }
        let total: u64 = adopted.iter().map(|(_, n)| n).sum();
        new.length = Some(total); // over the maximum: refused by `new_session`
        new.partial = false;
        let (rec, state) = self.new_session(p, new, true).await?;
        let result = async {
            match self.meta.adopt_parts(&rec.id, &adopted).await {
                Err(StoreError::NotFound) => return Err(CoreError::NoSuchUpload),
                Err(StoreError::Conflict(m)) => return Err(CoreError::InvalidArgument(m)),
                r => r?,
            };
            self.finish_resumable(p, &rec, &state, total).await
        }
        .await;
        match result {
            Ok(_) => Ok(view(&rec, &ResumableState { done: true, ..state }, total)),
            Err(e) => {
                let _ = self.meta.abort_upload(&rec.id).await;
                Err(e)
            }
        }
    }
}

fn claim_pair(c: &Claim) -> (String, String) {
    match c {
        Claim::Md5(h) => ("md5".into(), h.to_ascii_lowercase()),
        Claim::Sha1(h) => ("sha1".into(), h.to_ascii_lowercase()),
        Claim::Sha256(h) => ("sha256".into(), h.to_ascii_lowercase()),
    }
}

fn view(rec: &UploadRecord, state: &ResumableState, offset: u64) -> Resumable {
    Resumable {
        id: rec.id.clone(),
        bucket: rec.bucket.clone(),
        key: rec.key.clone(),
        offset,
        length: state.length,
        partial: state.partial,
        concatenated: state.concatenated,
        complete: state.done || (state.partial && state.length == Some(offset)),
        expires_ms: rec.expires_ms,
        echo: state.echo.clone(),
        meta: rec.meta.clone(),
    }
}
