//! The engine: every operation a dialect can ask for, with its rules.

use bytes::Bytes;
use chuan_store::*;
use futures::{Stream, StreamExt, TryStreamExt};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{CoreError, CoreResult};
use crate::hash::{multipart_etag, ufile_etag, ufile_etag_single, AllHasher, UFILE_BLOCK};
use crate::ingest::{self, Staged};
use crate::metrics::Metrics;
use crate::names::{validate_bucket, validate_key};
use crate::scope::{Op, Scope};

/// Who is asking. Every dialect's credentials resolve to one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub access_key: String,
    /// Root credentials: may act on every tenant's buckets and use the admin API.
    pub admin: bool,
    /// Restrictions of a scoped credential (tokens, devices).
    pub scope: Option<Scope>,
}

impl Principal {
    /// A principal with the tenant's full rights (no scope).
    pub fn of_tenant(tenant: &str, access_key: &str) -> Self {
        Self { tenant: tenant.to_owned(), access_key: access_key.to_owned(), admin: false, scope: None }
    }

    /// An unauthenticated caller: it may only read objects of public buckets.
    pub fn anonymous() -> Self {
        Self {
            tenant: String::new(),
            access_key: "anonymous".into(),
            admin: false,
            scope: Some(Scope { ops: Some(vec![Op::Read]), buckets: None, prefixes: None }),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.tenant.is_empty() && self.access_key == "anonymous"
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long an unreferenced blob is kept before GC may remove it.
    pub gc_grace: Duration,
    /// Smallest multipart part but the last (S3: 5 MiB).
    pub min_part_size: u64,
    pub region: String,
    /// How long a native instant-upload challenge may be answered.
    pub challenge_ttl: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            gc_grace: Duration::from_secs(15 * 60),
            min_part_size: 5 << 20,
            region: "us-east-1".into(),
            challenge_ttl: Duration::from_secs(60),
        }
    }
}

/// Striped locks over blob ids: a commit that makes a blob durable and references it, and a
/// GC pass that forgets and deletes it, never interleave for the same blob.
struct BlobLocks(Vec<tokio::sync::Mutex<()>>);

impl BlobLocks {
    fn new() -> Self {
        Self((0..256).map(|_| tokio::sync::Mutex::new(())).collect())
    }
    async fn lock(&self, id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = u8::from_str_radix(id.get(0..2).unwrap_or("00"), 16).unwrap_or(0);
        self.0[stripe as usize].lock().await
    }
}

pub struct Engine {
    pub(crate) meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    locks: BlobLocks,
    pub(crate) limiter: crate::instant::ProbeLimiter,
    pub(crate) meter: crate::metering::Meter,
    /// Bucket records read in the last moments: every request needs its bucket's owner and
    /// visibility, which change rarely. Changes made on this node invalidate at once; other
    /// nodes sharing the MetaStore see them within [`BUCKET_CACHE_TTL`].
    buckets: parking_lot::Mutex<std::collections::HashMap<String, (std::time::Instant, Option<BucketRecord>)>>,
    pub config: EngineConfig,
    pub metrics: Arc<Metrics>,
}

/// Result of a GC pass.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct GcReport {
    pub blobs_freed: u64,
    pub bytes_freed: u64,
    pub temps_removed: u64,
    pub tickets_purged: u64,
    pub uploads_expired: u64,
}

/// How long a cached bucket record is trusted (see `Engine::bucket_record`).
const BUCKET_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Extras a dialect may attach to a multipart completion.
#[derive(Debug, Clone, Default)]
pub struct CompleteOptions {
    /// The id the new object must have (announced to the client at upload start).
    pub object_id: Option<String>,
    /// Whole-content digests the dialect already computed (to verify a client's claim).
    pub digests: Option<Digests>,
    /// Smallest part but the last; `None` for the engine's default (S3's 5 MiB).
    pub min_part_size: Option<u64>,
    /// Store the object under this key instead of the session's.
    pub key: Option<String>,
    /// Complete only if the key's current state matches (checked in the same transaction).
    pub condition: Option<WriteCondition>,
}

/// What a request to write an object carries besides its bytes.
#[derive(Debug, Clone)]
pub struct PutTarget {
    pub bucket: String,
    pub key: String,
    pub meta: ObjectMeta,
    pub condition: Option<WriteCondition>,
}

impl Engine {
    pub fn new(meta: Arc<dyn MetaStore>, blobs: Arc<dyn BlobStore>, config: EngineConfig) -> Self {
        Self {
            meta,
            blobs,
            locks: BlobLocks::new(),
            // Existence probes: bursts of 50, 20 a second sustained, per access key.
            limiter: crate::instant::ProbeLimiter::new(50.0, 20.0),
            meter: Default::default(),
            buckets: Default::default(),
            config,
            metrics: Arc::new(Metrics::default()),
        }
    }

    pub fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    // ----- principals

    /// Resolves an access key of any dialect to its secret and principal.
    pub async fn credential(&self, access_key: &str) -> CoreResult<Option<(String, Principal)>> {
        let now = now_ms();
        let Some(c) = self.meta.get_credential(access_key).await?.filter(|c| c.expires_ms.is_none_or(|e| e > now))
        else {
            return Ok(None);
        };
        let scope = match &c.scope {
            Some(s) => Some(
                serde_json::from_str(s).map_err(|e| CoreError::Internal(format!("bad scope of {access_key}: {e}")))?,
            ),
            None => None,
        };
        let principal =
            Principal { tenant: c.tenant.clone(), access_key: c.access_key.clone(), admin: c.kind == "root", scope };
        Ok(Some((c.secret, principal)))
    }

    // ----- buckets

    async fn bucket_for(&self, p: &Principal, name: &str) -> CoreResult<BucketRecord> {
        if p.scope.as_ref().is_some_and(|s| !s.allows_bucket(name)) {
            return Err(CoreError::AccessDenied);
        }
        let b = self.bucket_record(name).await?.ok_or(CoreError::NoSuchBucket)?;
        // Anonymous callers reach public buckets only, and their scope allows reads alone.
        if b.tenant != p.tenant && !p.admin && !(b.public && p.is_anonymous()) {
            return Err(CoreError::AccessDenied);
        }
        Ok(b)
    }

    /// The bucket's record, from the short-lived cache or the MetaStore.
    pub(crate) async fn bucket_record(&self, name: &str) -> CoreResult<Option<BucketRecord>> {
        if let Some((at, rec)) = self.buckets.lock().get(name) {
            if at.elapsed() < BUCKET_CACHE_TTL {
                return Ok(rec.clone());
            }
        }
        let rec = self.meta.get_bucket(name).await?;
        let mut cache = self.buckets.lock();
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(name.to_owned(), (std::time::Instant::now(), rec.clone()));
        Ok(rec)
    }

    fn forget_bucket(&self, name: &str) {
        self.buckets.lock().remove(name);
    }

    /// Checks a scoped principal's grant for `op` on `key` (or listing prefix).
    pub fn authorize(&self, p: &Principal, op: Op, bucket: &str, key: &str) -> CoreResult<()> {
        match &p.scope {
            Some(s) if !s.allows(op, bucket, key) => Err(CoreError::AccessDenied),
            _ => Ok(()),
        }
    }

    /// Bucket management is not for scoped credentials.
    fn unscoped(p: &Principal) -> CoreResult<()> {
        if p.scope.is_some() {
            return Err(CoreError::AccessDenied);
        }
        Ok(())
    }

    /// Checks that the bucket exists and the principal may use it (before reading a body).
    pub async fn check_bucket(&self, p: &Principal, name: &str) -> CoreResult<BucketRecord> {
        self.bucket_for(p, name).await
    }

    pub async fn create_bucket(&self, p: &Principal, name: &str, region: Option<&str>) -> CoreResult<()> {
        Self::unscoped(p)?;
        validate_bucket(name)?;
        let rec = BucketRecord {
            name: name.to_owned(),
            tenant: p.tenant.clone(),
            public: false,
            region: region.unwrap_or(&self.config.region).to_owned(),
            created_ms: now_ms(),
        };
        let r = self.meta.create_bucket(rec).await;
        self.forget_bucket(name);
        match r {
            Err(StoreError::Exists) => Err(CoreError::BucketExists),
            r => Ok(r?),
        }
    }

    pub async fn delete_bucket(&self, p: &Principal, name: &str) -> CoreResult<()> {
        Self::unscoped(p)?;
        self.bucket_for(p, name).await?;
        let r = self.meta.delete_bucket(name).await;
        self.forget_bucket(name);
        match r {
            Err(StoreError::NotEmpty) => Err(CoreError::BucketNotEmpty),
            Err(StoreError::NotFound) => Err(CoreError::NoSuchBucket),
            r => Ok(r?),
        }
    }

    /// Public buckets serve reads unsigned (in dialects that have that notion).
    pub async fn set_bucket_public(&self, p: &Principal, name: &str, public: bool) -> CoreResult<()> {
        Self::unscoped(p)?;
        self.bucket_for(p, name).await?;
        let r = self.meta.set_bucket_public(name, public).await;
        self.forget_bucket(name);
        match r {
            Err(StoreError::NotFound) => Err(CoreError::NoSuchBucket),
            r => Ok(r?),
        }
    }

    pub async fn list_buckets(&self, p: &Principal) -> CoreResult<Vec<BucketRecord>> {
        let all = self.meta.list_buckets(if p.admin { None } else { Some(&p.tenant) }).await?;
        Ok(all.into_iter().filter(|b| p.scope.as_ref().is_none_or(|s| s.allows_bucket(&b.name))).collect())
    }

    // ----- writing

    /// Phase one of every write: stream the body into an invisible temporary blob.
    pub async fn stage<S, E>(&self, body: S) -> CoreResult<Staged>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        self.stage_with(body, ingest::StageOptions::default()).await
    }

    /// [`Engine::stage`] computing more than the standard digests.
    pub async fn stage_with<S, E>(&self, body: S, options: ingest::StageOptions) -> CoreResult<Staged>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let staged = ingest::stage(self.blobs.as_ref(), body, options).await?;
        self.metrics.bytes_ingested.inc_by(staged.size);
        Ok(staged)
    }

    /// Makes a staged blob durable under its name and runs `commit` (which must reference
    /// it) while no GC pass can free it.
    async fn publish<T>(
        &self,
        staged: Staged,
        commit: impl std::future::Future<Output = CoreResult<T>>,
    ) -> CoreResult<T> {
        let id = staged.digests.sha256.clone();
        let _guard = self.locks.lock(&id).await;
        let existed = self.blobs.size(&id)?.is_some();
        if existed {
            self.metrics.dedup_hits.inc();
        }
        let blobs = self.blobs.clone();
        let temp = staged.temp;
        let pid = id.clone();
        tokio::task::spawn_blocking(move || blobs.persist(temp, &pid))
            .await
            .map_err(|e| CoreError::Internal(e.to_string()))??;
        let result = commit.await;
        // A refused commit (quota, precondition, vanished session) must not leave the blob it
        // just made durable behind: under the lock no other writer can be about to reference it.
        if result.is_err() && !existed && !self.meta.blob_known(&id).await? {
            self.blobs.delete(&id)?;
        }
        result
    }

    /// Phase two of a simple upload: publish the staged bytes as `target`.
    pub async fn commit_put(&self, p: &Principal, target: PutTarget, staged: Staged) -> CoreResult<ObjectRecord> {
        validate_key(&target.key)?;
        self.authorize(p, Op::Write, &target.bucket, &target.key)?;
        let owner = self.bucket_for(p, &target.bucket).await?.tenant;
        let extent = Extent { blob: staged.digests.sha256.clone(), size: staged.size, digests: staged.digests.clone() };
        let content = NewContent {
            size: staged.size,
            etag: staged.digests.md5.clone(),
            digests: Some(staged.digests.clone()),
            extents: vec![extent],
            ufile_etag: staged.ufile_etag.clone(),
        };
        let quota_bytes = self.storage_quota(&owner).await?;
        let write = ObjectWrite {
            quota_bytes,
            id: None,
            bucket: target.bucket,
            key: target.key,
            content: ContentSource::New(content),
            meta: target.meta,
            modified_ms: now_ms(),
            condition: target.condition,
        };
        let rec = self.publish(staged, async { self.meta.put_object(write).await.map_err(write_error) }).await?;
        self.metrics.objects_committed.inc();
        Ok(rec)
    }

    /// Points `dst` at the content of `src`: no bytes are copied.
    pub async fn copy_object(
        &self,
        p: &Principal,
        src_bucket: &str,
        src_key: &str,
        dst: PutTarget,
        replace_meta: bool,
    ) -> CoreResult<ObjectRecord> {
        validate_key(&dst.key)?;
        self.authorize(p, Op::Read, src_bucket, src_key)?;
        self.authorize(p, Op::Write, &dst.bucket, &dst.key)?;
        self.bucket_for(p, src_bucket).await?;
        let owner = self.bucket_for(p, &dst.bucket).await?.tenant;
        let src = self.meta.get_object(src_bucket, src_key).await?.ok_or(CoreError::NoSuchKey)?;
        let write = ObjectWrite {
            quota_bytes: self.storage_quota(&owner).await?,
            id: None,
            bucket: dst.bucket,
            key: dst.key,
            content: ContentSource::Existing(src.content_id),
            meta: if replace_meta { dst.meta } else { src.meta },
            modified_ms: now_ms(),
            condition: dst.condition,
        };
        let rec = self.meta.put_object(write).await.map_err(write_error)?;
        self.metrics.objects_committed.inc();
        Ok(rec)
    }

    pub async fn delete_object(&self, p: &Principal, bucket: &str, key: &str) -> CoreResult<Option<ObjectRecord>> {
        self.authorize(p, Op::Delete, bucket, key)?;
        self.bucket_for(p, bucket).await?;
        Ok(self.meta.delete_object(bucket, key).await?)
    }

    // ----- reading

    pub async fn head_object(&self, p: &Principal, bucket: &str, key: &str) -> CoreResult<ObjectRecord> {
        self.authorize(p, Op::Read, bucket, key)?;
        self.bucket_for(p, bucket).await?;
        self.meta.get_object(bucket, key).await?.ok_or(CoreError::NoSuchKey)
    }

    pub async fn content(&self, id: i64) -> CoreResult<ContentRecord> {
        self.meta.get_content(id).await?.ok_or_else(|| CoreError::Internal(format!("content {id} is missing")))
    }

    /// Streams bytes `[start, end)` of a content, opening each extent's blob only when the
    /// stream reaches it.
    pub fn read(&self, content: &ContentRecord, start: u64, end: u64) -> ByteStream {
        let mut pieces = Vec::new();
        let mut offset = 0u64;
        for e in &content.extents {
            let (e_start, e_end) = (offset, offset + e.size);
            offset = e_end;
            if e_end <= start || e_start >= end {
                continue;
            }
            let from = start.max(e_start) - e_start;
            let to = end.min(e_end) - e_start;
            pieces.push((e.blob.clone(), from, to - from));
        }
        let blobs = self.blobs.clone();
        let metrics = self.metrics.clone();
        let s = futures::stream::iter(pieces)
            .map(move |(blob, off, len)| blobs.read(&blob, off, len))
            .try_flatten()
            .inspect_ok(move |b| {
                metrics.bytes_served.inc_by(b.len() as u64);
            });
        Box::pin(s)
    }

    // ----- listing

    pub async fn list_objects(
        &self,
        p: &Principal,
        bucket: &str,
        q: &crate::list::ListQuery,
    ) -> CoreResult<crate::list::ListResult> {
        self.authorize(p, Op::List, bucket, &q.prefix)?;
        self.bucket_for(p, bucket).await?;
        crate::list::list(self.meta.as_ref(), bucket, q).await
    }

    // ----- multipart

    pub async fn create_upload(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
    ) -> CoreResult<UploadRecord> {
        self.create_upload_with_state(p, bucket, key, meta, "{}".into()).await
    }

    /// An upload session carrying the dialect's protocol state (JSON).
    pub async fn create_upload_with_state(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        state: String,
    ) -> CoreResult<UploadRecord> {
        self.create_expiring_upload(p, bucket, key, meta, state, None).await
    }

    /// An upload session that GC aborts (dropping its parts) once `expires_ms` has passed.
    pub async fn create_expiring_upload(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        meta: ObjectMeta,
        state: String,
        expires_ms: Option<i64>,
    ) -> CoreResult<UploadRecord> {
        validate_key(key)?;
        self.authorize(p, Op::Write, bucket, key)?;
        let b = self.bucket_for(p, bucket).await?;
        let rec = UploadRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            tenant: b.tenant,
            created_ms: now_ms(),
            meta,
            state,
            expires_ms,
        };
        self.meta.create_upload(rec.clone()).await?;
        Ok(rec)
    }

    /// The upload session, checked against the bucket and key the request names.
    pub async fn upload(&self, p: &Principal, bucket: &str, key: &str, upload_id: &str) -> CoreResult<UploadRecord> {
        self.authorize(p, Op::Write, bucket, key)?;
        self.bucket_for(p, bucket).await?;
        match self.meta.get_upload(upload_id).await? {
            Some(u) if u.bucket == bucket && u.key == key => Ok(u),
            _ => Err(CoreError::NoSuchUpload),
        }
    }

    pub async fn commit_part(&self, upload: &UploadRecord, number: u32, staged: Staged) -> CoreResult<PartRecord> {
        let part = PartWrite {
            upload_id: upload.id.clone(),
            number,
            blob: staged.digests.sha256.clone(),
            size: staged.size,
            etag: staged.digests.md5.clone(),
            digests: staged.digests.clone(),
        };
        let rec = PartRecord {
            upload_id: part.upload_id.clone(),
            number,
            blob: part.blob.clone(),
            size: part.size,
            etag: part.etag.clone(),
            digests: part.digests.clone(),
            modified_ms: now_ms(),
        };
        self.publish(staged, async {
            match self.meta.put_part(part).await {
                Err(StoreError::NotFound) => Err(CoreError::NoSuchUpload),
                r => Ok(r?),
            }
        })
        .await?;
        self.metrics.parts_committed.inc();
        Ok(rec)
    }

    pub async fn list_parts(&self, upload: &UploadRecord, after: u32, limit: usize) -> CoreResult<Vec<PartRecord>> {
        Ok(self.meta.list_parts(&upload.id, after, limit).await?)
    }

    pub async fn list_uploads(
        &self,
        p: &Principal,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> CoreResult<Vec<UploadRecord>> {
        self.bucket_for(p, bucket).await?;
        Ok(self.meta.list_uploads(bucket, prefix, after, limit).await?)
    }

    /// Assembles the named parts into the object: a manifest of the part blobs, no copy.
    /// `parts` are (number, etag) as the client listed them.
    pub async fn complete_upload(
        &self,
        upload: &UploadRecord,
        parts: &[(u32, String)],
        options: CompleteOptions,
    ) -> CoreResult<(ObjectRecord, Vec<PartRecord>)> {
        if parts.is_empty() {
            return Err(CoreError::InvalidPart("at least one part must be listed".into()));
        }
        if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(CoreError::InvalidPartOrder);
        }
        let stored = self.meta.list_parts(&upload.id, 0, 10_001).await?;
        let mut chosen = Vec::with_capacity(parts.len());
        for (i, (number, etag)) in parts.iter().enumerate() {
            let want = etag.trim_matches('"');
            let part = stored
                .iter()
                .find(|p| p.number == *number)
                .ok_or_else(|| CoreError::InvalidPart(format!("part {number} was not uploaded")))?;
            if part.etag != want {
                return Err(CoreError::InvalidPart(format!("part {number}'s ETag does not match")));
            }
            let min = options.min_part_size.unwrap_or(self.config.min_part_size);
            if i + 1 < parts.len() && part.size < min {
                return Err(CoreError::EntityTooSmall { part: *number, size: part.size, min });
            }
            chosen.push(part.clone());
        }
        let etag = multipart_etag(chosen.iter().map(|p| p.etag.as_str()));
        let quota_bytes = self.storage_quota(&upload.tenant).await?;
        let complete = CompleteUpload {
            quota_bytes,
            upload_id: upload.id.clone(),
            parts: chosen.iter().map(|p| (p.number, p.etag.clone())).collect(),
            etag,
            modified_ms: now_ms(),
            object_id: options.object_id,
            digests: options.digests,
            ufile_etag: ufile_etag_of_parts(&chosen),
            key: options.key,
            condition: options.condition,
        };
        let rec = match self.meta.complete_upload(complete).await {
            Err(StoreError::NotFound) => return Err(CoreError::NoSuchUpload),
            Err(StoreError::Conflict(m)) if m.contains("precondition") => return Err(CoreError::PreconditionFailed),
            Err(StoreError::Conflict(m)) => return Err(CoreError::InvalidPart(m)),
            r => r?,
        };
        self.metrics.objects_committed.inc();
        Ok((rec, chosen))
    }

    /// The session by id alone, checked against the principal's tenant (dialects whose part
    /// URLs carry only the upload id).
    pub async fn upload_by_id(&self, p: &Principal, upload_id: &str) -> CoreResult<UploadRecord> {
        match self.meta.get_upload(upload_id).await? {
            Some(u) if u.tenant == p.tenant || p.admin => Ok(u),
            _ => Err(CoreError::NoSuchUpload),
        }
    }

    /// Whole-content digests of a multipart content, computed by reading its parts (the
    /// background job does the same later for contents nobody waits for).
    pub async fn digest_parts(&self, parts: &[PartRecord]) -> CoreResult<Digests> {
        if parts.len() == 1 {
            return Ok(parts[0].digests.clone());
        }
        let content = ContentRecord {
            id: 0,
            size: parts.iter().map(|p| p.size).sum(),
            etag: String::new(),
            digests: None,
            extents: parts
                .iter()
                .map(|p| Extent { blob: p.blob.clone(), size: p.size, digests: p.digests.clone() })
                .collect(),
            refs: 0,
            ufile_etag: None,
        };
        let mut hasher = AllHasher::default();
        let mut stream = self.read(&content, 0, content.size);
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk?);
        }
        Ok(hasher.finish())
    }

    pub async fn object_by_id(&self, p: &Principal, bucket: &str, id: &str) -> CoreResult<ObjectRecord> {
        self.bucket_for(p, bucket).await?;
        let rec = self.meta.get_object_by_id(bucket, id).await?.ok_or(CoreError::NoSuchKey)?;
        self.authorize(p, Op::Read, bucket, &rec.key)?;
        Ok(rec)
    }

    /// Renames an object (and with `prefix`, everything under a folder key), keeping ids.
    pub async fn rename(
        &self,
        p: &Principal,
        bucket: &str,
        from: &str,
        to: &str,
        prefix: bool,
    ) -> CoreResult<ObjectRecord> {
        validate_key(to)?;
        self.authorize(p, Op::Delete, bucket, from)?;
        self.authorize(p, Op::Write, bucket, to)?;
        self.bucket_for(p, bucket).await?;
        match self.meta.rename(bucket, from, to, prefix).await {
            Err(StoreError::Exists) => Err(CoreError::AlreadyExists),
            Err(StoreError::NotFound) => Err(CoreError::NoSuchKey),
            r => Ok(r?),
        }
    }

    pub async fn abort_upload(&self, upload: &UploadRecord) -> CoreResult<()> {
        match self.meta.abort_upload(&upload.id).await {
            Err(StoreError::NotFound) => Err(CoreError::NoSuchUpload),
            r => Ok(r?),
        }
    }

    // ----- background work

    /// Frees blobs unreferenced for longer than `grace`, and temporary files that no
    /// upload in this process is writing and that are older than `grace`.
    pub async fn gc(&self, grace: Duration) -> CoreResult<GcReport> {
        let cutoff = now_ms() - grace.as_millis() as i64;
        let mut report = GcReport::default();
        loop {
            let ids = self.meta.unreferenced_blobs(cutoff, 512).await?;
            if ids.is_empty() {
                break;
            }
            let mut progressed = false;
            for id in ids {
                let _guard = self.locks.lock(&id).await;
                if self.meta.forget_blob(&id, cutoff).await? {
                    let size = self.blobs.size(&id)?.unwrap_or(0);
                    self.blobs.delete(&id)?;
                    report.blobs_freed += 1;
                    report.bytes_freed += size;
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        // Temporaries of live uploads are younger than any sane grace; with grace 0 (tests,
        // admin) only files untouched for a few seconds go, so an upload in progress, which
        // writes continuously, keeps its file.
        let age = grace.max(Duration::from_secs(2));
        report.temps_removed = self.blobs.sweep_temps(age)? as u64;
        // Single-use challenges and upload tokens are useless once expired; keep them an hour
        // longer so a late answer still gets "expired" rather than "unknown".
        report.tickets_purged = self.meta.purge_challenges(now_ms() - 3_600_000).await?;
        // Sessions of protocols whose uploads expire: their parts become unreferenced blobs,
        // freed by a later pass after the grace period.
        for id in self.meta.expired_uploads(now_ms(), 1000).await? {
            match self.meta.abort_upload(&id).await {
                Ok(()) | Err(StoreError::NotFound) => report.uploads_expired += 1,
                Err(e) => return Err(e.into()),
            }
        }
        self.metrics.blobs_freed.inc_by(report.blobs_freed);
        self.metrics.temps_swept.inc_by(report.temps_removed);
        Ok(report)
    }

    /// Removes blobs on disk that no metadata row names (a crash between making a blob
    /// durable and committing the row that references it). Only at startup, when no upload
    /// can be between those two steps.
    pub async fn remove_orphan_blobs(&self) -> CoreResult<usize> {
        let (known, _) = self.meta.check().await?;
        let known: std::collections::HashSet<String> = known.into_iter().map(|(id, _)| id).collect();
        let mut removed = 0;
        for id in self.blobs.list()? {
            if !known.contains(&id) {
                self.blobs.delete(&id)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes every temporary file: only at startup, when no upload can be in flight.
    pub fn sweep_all_temps(&self) -> CoreResult<usize> {
        let n = self.blobs.sweep_temps(Duration::ZERO)?;
        self.metrics.temps_swept.inc_by(n as u64);
        Ok(n)
    }

    /// Computes whole-content digests for content assembled from parts, then enters them in
    /// the hash index (which is what makes such content findable for instant upload).
    pub async fn compute_pending_digests(&self, limit: usize) -> CoreResult<usize> {
        let pending = self.meta.contents_missing_digests(limit).await?;
        self.metrics.digest_backlog.set(pending.len() as i64);
        let mut done = 0;
        for content in pending {
            self.full_digests(&content).await?;
            self.metrics.digests_computed.inc();
            done += 1;
        }
        let left = self.meta.stats().await?.pending_digests;
        self.metrics.digest_backlog.set(left as i64);
        Ok(done)
    }

    /// Whole-content digests and UFile ETag, computed now (and stored) if still pending.
    pub async fn full_digests(&self, content: &ContentRecord) -> CoreResult<(Digests, String)> {
        if let (Some(d), Some(u)) = (&content.digests, &content.ufile_etag) {
            return Ok((d.clone(), u.clone()));
        }
        let mut hasher = AllHasher::default();
        let mut stream = self.read(content, 0, content.size);
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk?);
        }
        let (d, u) = hasher.finish_with_ufile();
        self.meta.set_content_digests(content.id, d.clone(), u.clone()).await?;
        Ok((d, u))
    }

    pub async fn stats(&self) -> CoreResult<StoreStats> {
        Ok(self.meta.stats().await?)
    }

    /// Consistency check: reference counts agree with the rows holding them, every blob the
    /// metadata names exists with its size, and no stored blob is unknown to the metadata.
    pub async fn fsck(&self) -> CoreResult<FsckReport> {
        let (known, mut problems) = self.meta.check().await?;
        let mut on_disk: std::collections::HashSet<String> = self.blobs.list()?.into_iter().collect();
        for (id, size) in &known {
            match self.blobs.size(id)? {
                None => problems.push(format!("blob {id} is in the metadata but missing on disk")),
                Some(s) if s != *size => {
                    problems.push(format!("blob {id} is {s} bytes on disk, {size} in the metadata"))
                }
                _ => {}
            }
            on_disk.remove(id);
        }
        for id in on_disk {
            problems.push(format!("blob {id} is on disk but unknown to the metadata (orphan)"));
        }
        Ok(FsckReport { blobs_checked: known.len() as u64, problems })
    }
}

/// The UFile ETag of parts that are whole 4 MiB blocks (all but a shorter last one), from
/// their SHA-1s: no data is read. `None` when the parts do not fall on block boundaries.
fn ufile_etag_of_parts(parts: &[PartRecord]) -> Option<String> {
    let (last, rest) = parts.split_last()?;
    if rest.iter().any(|p| p.size != UFILE_BLOCK) || last.size > UFILE_BLOCK {
        return None;
    }
    if parts.len() == 1 {
        return ufile_etag_single(last.size, &last.digests.sha1);
    }
    let raw: Vec<Vec<u8>> = parts.iter().map(|p| hex::decode(&p.digests.sha1).unwrap_or_default()).collect();
    Some(ufile_etag(raw.iter().map(Vec::as_slice)))
}

fn write_error(e: StoreError) -> CoreError {
    match e {
        StoreError::Conflict(m) if m.contains("precondition") => CoreError::PreconditionFailed,
        other => other.into(),
    }
}
