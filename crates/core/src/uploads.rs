//! Upload sessions: multipart uploads of every protocol, first-class in the core.
//!
//! A session has a kind ([`UploadKind`]), which fixes its part-size rule and its default
//! lifetime. The core enforces the lifetime (an expired session takes no parts, cannot be
//! completed, and is aborted by GC), admits every call for the session's key, and completes
//! a session in one transaction that references the part blobs (no data is copied), after
//! checking the parts (listed by the client, or "all of 1..=n"), the declared size and the
//! client's whole-file digest claim — a claim that does not match aborts the session, since
//! the bytes are not the file the client meant.

use chuan_store::*;
use futures::StreamExt;
use std::time::Duration;

use crate::access::{Op, Principal};
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};
use crate::hash::{multipart_etag, ufile_etag, ufile_etag_single, AllHasher, UFILE_BLOCK};
use crate::ingest::Staged;
use crate::names::validate_key;

/// Most parts a session may hold.
pub const MAX_PARTS: u32 = 10_000;

/// How long a session of `kind` lives unless the configuration says otherwise: S3 and UFile
/// sessions until completed or aborted (as those services keep them), the others a day
/// (COS, UpYun and Aliyun Drive drop unfinished uploads).
pub fn default_ttl(kind: UploadKind) -> Option<Duration> {
    match kind {
        UploadKind::S3 | UploadKind::Ufile => None,
        UploadKind::Cos | UploadKind::Upyun | UploadKind::UpyunBlock | UploadKind::Adrive | UploadKind::Tus => {
            Some(Duration::from_secs(24 * 3600))
        }
    }
}

/// Whether a session can still take parts.
pub(crate) fn live(u: &UploadRecord) -> bool {
    u.expires_ms.is_none_or(|e| e >= now_ms())
}

/// What every part but the last must measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartRule {
    /// At least this (S3's 5 MiB).
    AtLeast(u64),
    /// Exactly this, and the last at most this (UFile's 4 MiB blocks).
    Block(u64),
    /// Anything (the dialect checks each part against what the client declared).
    Any,
}

/// Which parts make the object.
#[derive(Debug, Clone)]
pub enum PartList {
    /// The parts the client listed, as (number, ETag), in ascending order (S3, UFile).
    Listed(Vec<(u32, String)>),
    /// Every part numbered 1..=count, none missing (COS slices, UpYun, Aliyun Drive).
    All { count: u32 },
    /// Every part stored, which must be numbered 1..=n without a gap (an upload whose length
    /// was not declared: UpYun's parallel upload started without `X-Upyun-Multi-Length`).
    Stored,
}

/// A whole-file digest the client claims, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Md5(String),
    Sha1(String),
    Sha256(String),
}

impl Claim {
    fn holds(&self, d: &Digests) -> bool {
        match self {
            Claim::Md5(h) => h.eq_ignore_ascii_case(&d.md5),
            Claim::Sha1(h) => h.eq_ignore_ascii_case(&d.sha1),
            Claim::Sha256(h) => h.eq_ignore_ascii_case(&d.sha256),
        }
    }
    fn algorithm(&self) -> &'static str {
        match self {
            Claim::Md5(_) => "MD5",
            Claim::Sha1(_) => "SHA-1",
            Claim::Sha256(_) => "SHA-256",
        }
    }
}

/// How to complete a session.
#[derive(Debug, Clone)]
pub struct Completion {
    pub parts: PartList,
    /// The file size the client declared: `SizeMismatch` (session kept) when the parts differ.
    pub size: Option<u64>,
    /// Whole-file digests the client claims: every one must hold, else the session is
    /// aborted and `BadDigest` answered.
    pub claims: Vec<Claim>,
    /// Compute whole-file digests now even without a claim (to answer with them).
    pub digests: bool,
    /// Keep the session as the record of the finished upload (resumable uploads) instead of
    /// removing it: (the state it must still have, the state it keeps).
    pub(crate) keep_session: Option<(String, String)>,
    /// The id the new object must have (announced to the client at upload start).
    pub object_id: Option<String>,
    /// Store the object under this key instead of the session's (admitted for writing).
    pub key: Option<String>,
    /// Complete only if the key's current state matches (checked in the same transaction).
    pub condition: Option<WriteCondition>,
    /// Every part but the last must be exactly this many bytes and the last at most this
    /// (`InvalidPart` otherwise), in place of the kind's own rule: the part size the client
    /// declared when it started (UpYun `X-Upyun-Multi-Part-Size`).
    pub block: Option<u64>,
}

impl Completion {
    pub fn new(parts: PartList) -> Self {
        Self {
            parts,
            size: None,
            claims: Vec::new(),
            digests: false,
            keep_session: None,
            object_id: None,
            key: None,
            condition: None,
            block: None,
        }
    }
}

/// A completed session.
#[derive(Debug, Clone)]
pub struct Completed {
    pub object: ObjectRecord,
    /// The parts that make the object, in order.
    pub parts: Vec<PartRecord>,
    /// Whole-file digests, when a claim or the caller asked for them.
    pub digests: Option<Digests>,
}

/// A new session.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub kind: UploadKind,
    pub bucket: String,
    pub key: String,
    pub meta: ObjectMeta,
    /// The dialect's protocol state (JSON).
    pub state: String,
    /// Overrides the kind's lifetime (`Some(None)`: never expires).
    pub ttl: Option<Option<Duration>>,
}

impl NewUpload {
    pub fn new(kind: UploadKind, bucket: &str, key: &str) -> Self {
        Self {
            kind,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            meta: ObjectMeta::default(),
            state: "{}".into(),
            ttl: None,
        }
    }
}

impl Engine {
    fn part_rule(&self, kind: UploadKind) -> PartRule {
        match kind {
            UploadKind::S3 => PartRule::AtLeast(self.config.min_part_size),
            UploadKind::Ufile => PartRule::Block(UFILE_BLOCK),
            UploadKind::Cos | UploadKind::Upyun | UploadKind::UpyunBlock | UploadKind::Adrive | UploadKind::Tus => {
                PartRule::Any
            }
        }
    }

    fn ttl_of(&self, kind: UploadKind) -> Option<Duration> {
        match self.config.upload_ttls.iter().find(|(k, _)| *k == kind) {
            Some((_, ttl)) => *ttl,
            None => default_ttl(kind),
        }
    }

    /// Opens a session for writing `key` of `bucket`.
    pub async fn create_upload(&self, p: &Principal, mut new: NewUpload) -> CoreResult<UploadRecord> {
        validate_key(&new.key)?;
        crate::names::validate_meta(&new.meta)?;
        let b = self.admit(p, Op::Write, &new.bucket, &new.key).await?;
        self.charge_request(p, &b).await?;
        new.meta.acl = Self::acl_on_write(p, &b, new.meta.acl.take());
        let ttl = new.ttl.unwrap_or_else(|| self.ttl_of(new.kind));
        let now = now_ms();
        let rec = UploadRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            kind: new.kind,
            bucket: new.bucket,
            key: new.key,
            tenant: b.tenant,
            created_ms: now,
            meta: new.meta,
            state: new.state,
            expires_ms: ttl.map(|t| now + t.as_millis() as i64),
        };
        self.meta.create_upload(rec.clone()).await?;
        Ok(rec)
    }

    /// The live session `upload_id`, checked against the bucket and key the request names.
    pub async fn upload(&self, p: &Principal, bucket: &str, key: &str, upload_id: &str) -> CoreResult<UploadRecord> {
        let b = self.admit(p, Op::Write, bucket, key).await?;
        self.charge_request(p, &b).await?;
        match self.meta.get_upload(upload_id).await? {
            Some(u) if u.bucket == bucket && u.key == key && live(&u) && u.kind != UploadKind::Tus => Ok(u),
            _ => Err(CoreError::NoSuchUpload),
        }
    }

    /// The session a record names, as stored now (live), admitted for writing its key: every
    /// call on a session re-reads it, so a stale or altered record grants nothing.
    async fn admitted_session(&self, p: &Principal, upload: &UploadRecord) -> CoreResult<(UploadRecord, BucketRecord)> {
        let u = self.meta.get_upload(&upload.id).await?.filter(live).ok_or(CoreError::NoSuchUpload)?;
        let b = self.admit(p, Op::Write, &u.bucket, &u.key).await?;
        Ok((u, b))
    }

    /// The live session `upload_id`, for protocols whose requests carry only its id: `p` must
    /// be allowed to write the session's key (so a scoped credential cannot reach sessions
    /// outside its scope by guessing ids).
    pub async fn upload_by_id(&self, p: &Principal, upload_id: &str) -> CoreResult<UploadRecord> {
        let u = self
            .meta
            .get_upload(upload_id)
            .await?
            .filter(|u| live(u) && u.kind != UploadKind::Tus)
            .ok_or(CoreError::NoSuchUpload)?;
        match self.admit(p, Op::Write, &u.bucket, &u.key).await {
            Ok(b) => {
                self.charge_request(p, &b).await?;
                Ok(u)
            }
            // Another tenant's session is answered like one that does not exist.
            Err(CoreError::AccessDenied) if u.tenant != p.tenant && !p.admin => Err(CoreError::NoSuchUpload),
            Err(e) => Err(e),
        }
    }

    /// The live sessions of `kind` for exactly `key`, newest first (to resume an upload).
    pub async fn open_uploads(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        kind: UploadKind,
    ) -> CoreResult<Vec<UploadRecord>> {
        let b = self.admit(p, Op::Write, bucket, key).await?;
        self.charge_request(p, &b).await?;
        Ok(self.meta.uploads_of_key(bucket, key).await?.into_iter().filter(|u| u.kind == kind).collect())
    }

    /// Sessions under `prefix` (the listing prefix is admitted for `List`, so a scoped
    /// credential sees only sessions inside its scope).
    pub async fn list_uploads(
        &self,
        p: &Principal,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> CoreResult<Vec<UploadRecord>> {
        let b = self.admit(p, Op::List, bucket, prefix).await?;
        self.charge_request(p, &b).await?;
        Ok(self.meta.list_uploads(bucket, prefix, after, limit).await?)
    }

    /// Stores a staged part (replacing a part with the same number).
    pub async fn commit_part(
        &self,
        p: &Principal,
        upload: &UploadRecord,
        number: u32,
        staged: Staged,
    ) -> CoreResult<PartRecord> {
        if number == 0 || number > MAX_PARTS {
            return Err(CoreError::InvalidPart(format!("part numbers are 1 to {MAX_PARTS}")));
        }
        let (upload, b) = self.admitted_session(p, upload).await?;
        if let PartRule::Block(block) = self.part_rule(upload.kind) {
            if staged.size > block {
                return Err(CoreError::InvalidPart(format!("a part holds at most {block} bytes")));
            }
        }
        self.charge_request(p, &b).await?;
        let part = PartWrite {
            upload_id: upload.id.clone(),
            number,
            blob: staged.digests.sha256.clone(),
            size: staged.size,
            etag: staged.digests.md5.clone(),
            digests: staged.digests.clone(),
            data: staged.inline_data(),
        };
        let rec = self
            .publish(staged, async {
                match self.meta.put_part(part).await {
                    Err(StoreError::NotFound) => Err(CoreError::NoSuchUpload),
                    r => Ok(r?),
                }
            })
            .await?;
        self.metrics.parts_committed.inc();
        Ok(rec)
    }

    /// A part made of bytes `[start, end)` of another object (`None`: all of it), which `p`
    /// must be allowed to read. The range becomes a blob of its own (a whole-blob source
    /// dedups to the same blob and costs no space).
    pub async fn copy_part(
        &self,
        p: &Principal,
        upload: &UploadRecord,
        number: u32,
        src: &ObjectRecord,
        range: Option<(u64, u64)>,
    ) -> CoreResult<PartRecord> {
        // The source as stored now, readable by `p`.
        let src = self.lookup(p, &src.bucket, &src.key).await?;
        self.admitted_session(p, upload).await?;
        let content = self.content(src.content_id).await?;
        let (start, end) = range.unwrap_or((0, content.size));
        if start > end || end > content.size {
            return Err(CoreError::InvalidRange);
        }
        let staged = self.stage(p, self.read(&content, start, end)).await?;
        self.commit_part(p, upload, number, staged).await
    }

    /// Parts after `after`, in number order.
    pub async fn list_parts(
        &self,
        p: &Principal,
        upload: &UploadRecord,
        after: u32,
        limit: usize,
    ) -> CoreResult<Vec<PartRecord>> {
        let (upload, b) = self.admitted_session(p, upload).await?;
        self.charge_request(p, &b).await?;
        Ok(self.meta.list_parts(&upload.id, after, limit).await?)
    }

    /// The first bytes `[0, len)` of the file the session's parts 1..=count make, in order (to
    /// check a file's header before completing it); `MissingParts` unless all are there.
    pub async fn read_upload_head(
        &self,
        p: &Principal,
        upload: &UploadRecord,
        count: u32,
        len: u64,
    ) -> CoreResult<Vec<u8>> {
        let parts = self.list_parts(p, upload, 0, count as usize).await?;
        let missing: Vec<u32> = (1..=count).filter(|n| !parts.iter().any(|x| x.number == *n)).take(10).collect();
        if !missing.is_empty() {
            return Err(CoreError::MissingParts(missing));
        }
        let extents: Vec<Extent> = parts.iter().map(PartRecord::extent).collect();
        let mut out = Vec::new();
        let mut s = self.read_extents(&extents, 0, len);
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// Aborts a session, dropping its parts.
    pub async fn abort_upload(&self, p: &Principal, upload: &UploadRecord) -> CoreResult<()> {
        let (upload, b) = self.admitted_session(p, upload).await?;
        self.charge_request(p, &b).await?;
        match self.meta.abort_upload(&upload.id).await {
            Err(StoreError::NotFound) => Err(CoreError::NoSuchUpload),
            r => Ok(r?),
        }
    }

    /// The parts a completion names, checked against what is stored and the kind's rule.
    async fn chosen_parts(
        &self,
        upload: &UploadRecord,
        list: &PartList,
        block: Option<u64>,
    ) -> CoreResult<Vec<PartRecord>> {
        let stored = self.meta.list_parts(&upload.id, 0, MAX_PARTS as usize + 1).await?;
        let chosen: Vec<PartRecord> = match list {
            PartList::Listed(parts) => {
                if parts.is_empty() {
                    return Err(CoreError::InvalidPart("at least one part must be listed".into()));
                }
                if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
                    return Err(CoreError::InvalidPartOrder);
                }
                let mut chosen = Vec::with_capacity(parts.len());
                for (number, etag) in parts {
                    let part = stored
                        .iter()
                        .find(|p| p.number == *number)
                        .ok_or_else(|| CoreError::InvalidPart(format!("part {number} was not uploaded")))?;
                    if !part.etag.eq_ignore_ascii_case(etag.trim_matches('"')) {
                        return Err(CoreError::InvalidPart(format!("part {number}'s ETag does not match")));
                    }
                    chosen.push(part.clone());
                }
                chosen
            }
            PartList::All { count } => {
                let missing: Vec<u32> =
                    (1..=*count).filter(|n| !stored.iter().any(|p| p.number == *n)).take(10).collect();
                if !missing.is_empty() || *count == 0 {
                    return Err(CoreError::MissingParts(missing));
                }
                stored.into_iter().filter(|p| p.number <= *count).collect()
            }
            PartList::Stored => {
                let n = stored.last().map_or(0, |p| p.number);
                let missing: Vec<u32> = (1..=n).filter(|i| !stored.iter().any(|p| p.number == *i)).take(10).collect();
                if n == 0 || !missing.is_empty() {
                    return Err(CoreError::MissingParts(if n == 0 { vec![1] } else { missing }));
                }
                stored
            }
        };
        let rule = match block {
            Some(b) => PartRule::Block(b),
            None => self.part_rule(upload.kind),
        };
        for (i, part) in chosen.iter().enumerate() {
            let last = i + 1 == chosen.len();
            match rule {
                PartRule::AtLeast(min) if !last && part.size < min => {
                    return Err(CoreError::EntityTooSmall { part: part.number, size: part.size, min })
                }
                PartRule::Block(block) if (!last && part.size != block) || part.size > block => {
                    return Err(CoreError::InvalidPart(format!(
                        "part {} is {} bytes; every part but the last must be {block} bytes",
                        part.number, part.size
                    )))
                }
                _ => {}
            }
        }
        Ok(chosen)
    }

    /// Whole-content digests of parts, read in one pass (no copy).
    async fn digest_parts(&self, parts: &[PartRecord]) -> CoreResult<Digests> {
        if let [one] = parts {
            let mut d = one.digests.clone();
            if !d.is_complete() {
                // The part's SHA-1 was deferred: only it is computed.
                let mut sha1 = crate::hash::Sha1Hasher::default();
                let mut stream = self.read_extents(&[one.extent()], 0, one.size);
                while let Some(chunk) = stream.next().await {
                    sha1.update(&chunk?);
                }
                d.sha1 = sha1.finish_hex();
            }
            return Ok(d);
        }
        let extents: Vec<Extent> = parts.iter().map(PartRecord::extent).collect();
        let total = parts.iter().map(|x| x.size).sum();
        let mut hasher = AllHasher::default();
        let mut stream = self.read_extents(&extents, 0, total);
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk?);
        }
        Ok(hasher.finish())
    }

    /// Completes a session: the chosen parts' blobs become the object's content (no copy).
    pub async fn complete_upload(&self, p: &Principal, upload: &UploadRecord, c: Completion) -> CoreResult<Completed> {
        let (upload, _) = self.admitted_session(p, upload).await?;
        let upload = &upload;
        let key = c.key.clone().unwrap_or_else(|| upload.key.clone());
        validate_key(&key)?;
        let b = self.admit(p, Op::Write, &upload.bucket, &key).await?;
        self.charge_request(p, &b).await?;
        let chosen = self.chosen_parts(upload, &c.parts, c.block).await?;
        let total: u64 = chosen.iter().map(|x| x.size).sum();
        if let Some(size) = c.size {
            if size != total {
                return Err(CoreError::SizeMismatch { expected: size, actual: total });
            }
        }
        let digests = if c.digests || !c.claims.is_empty() { Some(self.digest_parts(&chosen).await?) } else { None };
        if let Some(d) = &digests {
            if let Some(bad) = c.claims.iter().find(|claim| !claim.holds(d)) {
                // The bytes are not the file the client meant: nothing of it is kept.
                self.meta.abort_upload(&upload.id).await?;
                return Err(CoreError::BadDigest { algorithm: bad.algorithm() });
            }
        }
        // A resumable upload sent in one append is one plain upload: its ETag is its MD5.
        let etag = match (&chosen[..], upload.kind) {
            ([one], UploadKind::Tus) => one.etag.clone(),
            _ => multipart_etag(chosen.iter().map(|p| p.etag.as_str())),
        };
        let complete = CompleteUpload {
            upload_id: upload.id.clone(),
            parts: chosen.iter().map(|p| (p.number, p.etag.clone())).collect(),
            etag,
            modified_ms: now_ms(),
            object_id: c.object_id,
            digests: digests.clone(),
            ufile_etag: ufile_etag_of_parts(&chosen),
            key: c.key,
            condition: c.condition,
            keep_session: c.keep_session,
            // S3, UFile and resumable uploads' keys are plain; UpYun keeps the directories an
            // upload makes.
            tree: match upload.kind {
                UploadKind::S3 | UploadKind::Ufile | UploadKind::Tus => TreeRule::Flat,
                UploadKind::Upyun | UploadKind::UpyunBlock => TreeRule::KeepFolders,
                _ => TreeRule::Folders,
            },
        };
        let object = match self.meta.complete_upload(complete).await {
            Err(StoreError::NotFound) => return Err(CoreError::NoSuchUpload),
            Err(StoreError::Conflict(m)) if m.contains("precondition") => return Err(CoreError::PreconditionFailed),
            Err(StoreError::Conflict(m)) => return Err(CoreError::InvalidPart(m)),
            Err(StoreError::KindConflict) => return Err(CoreError::NameConflict),
            r => r?,
        };
        self.metrics.objects_committed.inc();
        Ok(Completed { object, parts: chosen, digests })
    }
}

/// The UFile ETag of parts that are whole 4 MiB blocks (all but a shorter last one), from
/// their SHA-1s: no data is read. `None` when the parts do not fall on block boundaries.
fn ufile_etag_of_parts(parts: &[PartRecord]) -> Option<String> {
    let (last, rest) = parts.split_last()?;
    if rest.iter().any(|p| p.size != UFILE_BLOCK) || last.size > UFILE_BLOCK {
        return None;
    }
    if !parts.iter().all(|p| p.digests.is_complete()) {
        return None; // a part's SHA-1 was deferred: the background job computes the ETag
    }
    if parts.len() == 1 {
        return ufile_etag_single(last.size, &last.digests.sha1);
    }
    let raw: Vec<Vec<u8>> = parts.iter().map(|p| hex::decode(&p.digests.sha1).unwrap_or_default()).collect();
    Some(ufile_etag(raw.iter().map(Vec::as_slice)))
}
