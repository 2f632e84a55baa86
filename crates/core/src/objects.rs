//! Objects: the two-phase write (stage, then commit), copies that share content, reads,
//! deletes, renames and metadata updates. Every operation admits its principal for every key
//! it names.

use bytes::Bytes;
use chuan_store::*;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};

use crate::access::{Op, Principal};
use crate::engine::{write_error, Engine};
use crate::error::{CoreError, CoreResult};
use crate::hash::AllHasher;
use crate::ingest::{self, StageOptions, Staged};
use crate::names::validate_key;

/// What a request to write an object carries besides its bytes.
#[derive(Debug, Clone)]
pub struct PutTarget {
    pub bucket: String,
    pub key: String,
    pub meta: ObjectMeta,
    pub condition: Option<WriteCondition>,
    /// How the write treats the bucket's file tree: plain keys (S3, UFile, IoT), or a path
    /// where a file may not take a folder's name nor lie under a file
    /// (`CoreError::NameConflict`), optionally keeping the folders it makes (UpYun).
    pub tree: TreeRule,
}

/// Most keys one batch delete may name (S3's DeleteObjects limit).
pub const MAX_DELETE_BATCH: usize = 1000;

impl PutTarget {
    pub fn new(bucket: &str, key: &str) -> Self {
        Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            meta: ObjectMeta::default(),
            condition: None,
            tree: TreeRule::Flat,
        }
    }

    /// A write into the file tree (every protocol with folders).
    pub fn in_tree(bucket: &str, key: &str) -> Self {
        Self { tree: TreeRule::Folders, ..Self::new(bucket, key) }
    }
}

impl Engine {
    /// Phase one of every write: stream the body into an invisible temporary blob, computing
    /// every digest in the same pass. Authorize first ([`Engine::check_access`]): staging
    /// itself checks nothing.
    pub async fn stage<S, E>(&self, p: &Principal, body: S) -> CoreResult<Staged>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<crate::ingest::BodyError>,
    {
        self.stage_with(p, body, StageOptions::default()).await
    }

    /// [`Engine::stage`] computing more than the standard digests.
    ///
    /// Holds one of the tenant's upload slots while the body streams in (`SlowDown` when it
    /// has none left; see `throttle.rs`).
    pub async fn stage_with<S, E>(&self, p: &Principal, body: S, options: StageOptions) -> CoreResult<Staged>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<crate::ingest::BodyError>,
    {
        let _slot = self.upload_slot(p)?;
        let staged = ingest::stage(self.blobs.as_ref(), body, options, self.config.inline_max).await?;
        self.metrics.bytes_ingested.inc_by(staged.size);
        Ok(staged)
    }

    /// Phase two of a simple upload: publish the staged bytes as `target`.
    pub async fn commit_put(&self, p: &Principal, mut target: PutTarget, staged: Staged) -> CoreResult<ObjectRecord> {
        validate_key(&target.key)?;
        crate::names::validate_meta(&target.meta)?;
        let b = self.admit(p, Op::Write, &target.bucket, &target.key).await?;
        self.charge_request(p, &b).await?;
        target.meta.acl = Self::acl_on_write(p, &b, target.meta.acl.take());
        let content = NewContent {
            size: staged.size,
            etag: staged.digests.md5.clone(),
            digests: staged.complete_digests(),
            extents: vec![staged.extent()],
            ufile_etag: staged.ufile_etag.clone(),
        };
        let write = self.object_write(target, ContentSource::New(content), None);
        let rec = self.publish(staged, async { self.meta.put_object(write).await.map_err(write_error) }).await?;
        self.metrics.objects_committed.inc();
        Ok(rec)
    }

    /// The store write that puts `target` at `content` (held by the store to the owner's
    /// storage quota); `id` for a new object (a random one when `None`).
    pub(crate) fn object_write(&self, target: PutTarget, content: ContentSource, id: Option<String>) -> ObjectWrite {
        ObjectWrite {
            id,
            bucket: target.bucket,
            key: target.key,
            content,
            meta: target.meta,
            modified_ms: now_ms(),
            condition: target.condition,
            tree: target.tree,
        }
    }

    /// An empty object (folders, empty files).
    pub async fn put_empty(&self, p: &Principal, target: PutTarget) -> CoreResult<ObjectRecord> {
        self.check_access(p, Op::Write, &target.bucket, &target.key).await?;
        let staged = self.stage(p, futures::stream::empty::<Result<Bytes, std::io::Error>>()).await?;
        self.commit_put(p, target, staged).await
    }

    /// Points `dst` at the content of `src`: no bytes are copied. The copy keeps the source's
    /// metadata unless `replace_meta`, and starts with the default access or the ACL `dst`
    /// asks for (as S3 copies drop ACLs).
    pub async fn copy_object(
        &self,
        p: &Principal,
        src_bucket: &str,
        src_key: &str,
        dst: PutTarget,
        replace_meta: bool,
    ) -> CoreResult<ObjectRecord> {
        validate_key(&dst.key)?;
        if replace_meta {
            crate::names::validate_meta(&dst.meta)?;
        }
        let src = self.lookup(p, src_bucket, src_key).await?;
        let b = self.admit(p, Op::Write, &dst.bucket, &dst.key).await?;
        // A copy is a request on its destination.
        self.charge_request(p, &b).await?;
        let asked = dst.meta.acl.clone();
        let mut meta = if replace_meta { dst.meta } else { src.meta };
        meta.access = ObjectAccess::Inherit;
        meta.acl = Self::acl_on_write(p, &b, asked);
        let target = PutTarget { meta, ..dst };
        let write = self.object_write(target, ContentSource::Existing(src.content_id), None);
        let rec = self.meta.put_object(write).await.map_err(write_error)?;
        self.metrics.objects_committed.inc();
        Ok(rec)
    }

    /// Replaces an object's metadata (attributes and access included), keeping its content,
    /// provided it is still the object `rec` describes (else `PreconditionFailed`).
    pub async fn update_object_meta(
        &self,
        p: &Principal,
        rec: &ObjectRecord,
        meta: ObjectMeta,
    ) -> CoreResult<ObjectRecord> {
        let b = self.admit(p, Op::Write, &rec.bucket, &rec.key).await?;
        self.charge_request(p, &b).await?;
        self.replace_meta(rec, meta).await
    }

    /// Writes `meta` over the object `rec` describes (admitted by the caller), content kept.
    pub(crate) async fn replace_meta(&self, rec: &ObjectRecord, meta: ObjectMeta) -> CoreResult<ObjectRecord> {
        let target = PutTarget {
            bucket: rec.bucket.clone(),
            key: rec.key.clone(),
            meta,
            condition: Some(WriteCondition::EtagIs(rec.etag.clone())),
            // An overwrite: the tree does not change.
            tree: TreeRule::Flat,
        };
        let write = self.object_write(target, ContentSource::Existing(rec.content_id), None);
        self.meta.put_object(write).await.map_err(write_error)
    }

    /// Deletes an object; `None` if there was none.
    pub async fn delete_object(&self, p: &Principal, bucket: &str, key: &str) -> CoreResult<Option<ObjectRecord>> {
        let b = self.admit(p, Op::Delete, bucket, key).await?;
        self.charge_request(p, &b).await?;
        Ok(self.meta.delete_object(bucket, key).await?)
    }

    /// Deletes up to [`MAX_DELETE_BATCH`] keys of one bucket, each admitted on its own; the
    /// outcome per key (`None`: there was none).
    pub async fn delete_objects(
        &self,
        p: &Principal,
        bucket: &str,
        keys: Vec<String>,
    ) -> CoreResult<Vec<(String, CoreResult<Option<ObjectRecord>>)>> {
        if keys.len() > MAX_DELETE_BATCH {
            return Err(CoreError::InvalidArgument(format!("at most {MAX_DELETE_BATCH} keys may be deleted at once")));
        }
        // One request on the bucket, whatever each key's outcome.
        let b = self.admit_bucket(p, bucket).await?;
        self.charge_request(p, &b).await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let r = self.delete_object(p, bucket, &key).await;
            out.push((key, r));
        }
        Ok(out)
    }

    /// The object at `key`, if `p` may read it.
    pub async fn head_object(&self, p: &Principal, bucket: &str, key: &str) -> CoreResult<ObjectRecord> {
        let (rec, b) = self.read_object(p, bucket, key).await?;
        match rec {
            Some(rec) => {
                self.charge_request(p, &b).await?;
                Ok(rec)
            }
            None => {
                // A lookup that finds nothing is still a request.
                self.charge_request(p, &b).await?;
                Err(CoreError::NoSuchKey)
            }
        }
    }

    /// [`Engine::head_object`] and [`Engine::content_for_read`] in one metadata round trip:
    /// what a download needs before [`Engine::open_read`]. Metered as `head_object` is.
    pub async fn object_for_read(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
    ) -> CoreResult<(ObjectRecord, ContentRecord)> {
        let (found, b) = self.read_object_for_download(p, bucket, key).await?;
        // A lookup that finds nothing is still a request.
        self.charge_request(p, &b).await?;
        found.ok_or(CoreError::NoSuchKey)
    }

    /// [`Engine::head_object`] without metering: for a key an operation reads on its way to
    /// another (a copy's source).
    pub(crate) async fn lookup(&self, p: &Principal, bucket: &str, key: &str) -> CoreResult<ObjectRecord> {
        self.read_object(p, bucket, key).await?.0.ok_or(CoreError::NoSuchKey)
    }

    /// The object with this id (Aliyun Drive's `file_id`), if `p` may read it.
    pub async fn object_by_id(&self, p: &Principal, bucket: &str, id: &str) -> CoreResult<ObjectRecord> {
        let b = self.admit_bucket(p, bucket).await?;
        let rec = self.meta.get_object_by_id(bucket, id).await?;
        if let Some(rec) = &rec {
            self.read_access(p, bucket, &rec.key, Some(rec)).await?;
        }
        self.charge_request(p, &b).await?;
        rec.ok_or(CoreError::NoSuchKey)
    }

    /// The content an object (as the engine returned it) points at: its extents and digests.
    pub async fn content_of(&self, rec: &ObjectRecord) -> CoreResult<ContentRecord> {
        self.content(rec.content_id).await
    }

    /// [`Engine::content_of`] for a download that follows ([`Engine::open_read`]): a small
    /// object's bytes come with it, so the download opens no file and asks the MetaStore
    /// nothing more.
    pub async fn content_for_read(&self, rec: &ObjectRecord) -> CoreResult<ContentRecord> {
        self.meta
            .get_content_with_bytes(rec.content_id)
            .await?
            .ok_or_else(|| CoreError::Internal(format!("content {} is missing", rec.content_id)))
    }

    pub(crate) async fn content(&self, id: i64) -> CoreResult<ContentRecord> {
        self.meta.get_content(id).await?.ok_or_else(|| CoreError::Internal(format!("content {id} is missing")))
    }

    /// Streams bytes `[start, end)` of an object to `p`: a download. `content` is the object's
    /// ([`Engine::content_for_read`], or [`Engine::content_of`]). Checks `p` may read the object, and reserves the bytes against
    /// its owner's download allowance before a byte is sent.
    pub async fn open_read(
        &self,
        p: &Principal,
        rec: &ObjectRecord,
        content: &ContentRecord,
        start: u64,
        end: u64,
    ) -> CoreResult<ByteStream> {
        if content.id != rec.content_id {
            return Err(CoreError::Internal(format!("content {} is not {}/{}'s", content.id, rec.bucket, rec.key)));
        }
        let b = self.read_access(p, &rec.bucket, &rec.key, Some(rec)).await?;
        let end = end.min(content.size);
        let start = start.min(end);
        // The first bytes are awaited before the answer starts: a blob store that cannot serve
        // them (an outage, a missing blob) is this call's error, answered with a status, not a
        // response cut off after its headers, and charged nothing.
        let mut stream = self.read(content, start, end).peekable();
        if let Some(Err(_)) = std::pin::Pin::new(&mut stream).peek().await {
            if let Some(Err(e)) = stream.next().await {
                return Err(e.into());
            }
        }
        self.charge_request(p, &b).await?;
        self.charge_download(p, &b, end - start).await?;
        let metrics = self.metrics.clone();
        Ok(Box::pin(stream.inspect_ok(move |b| {
            metrics.bytes_served.inc_by(b.len() as u64);
        })))
    }

    /// Streams bytes `[start, end)` of a content, opening each extent's blob only when the
    /// stream reaches it. Internal: downloads go through [`Engine::open_read`].
    pub(crate) fn read(&self, content: &ContentRecord, start: u64, end: u64) -> ByteStream {
        self.read_extents(&content.extents, start, end)
    }

    pub(crate) fn read_extents(&self, extents: &[Extent], start: u64, end: u64) -> ByteStream {
        /// Where one extent's wanted bytes come from.
        enum Piece {
            /// Bytes already at hand (an inline blob loaded with its content).
            Here(Bytes),
            /// An inline blob to fetch from the MetaStore, then slice.
            Inline(String, usize, usize),
            /// A range of a blob in the BlobStore.
            Stored(String, u64, u64),
        }
        let mut pieces = Vec::new();
        let mut offset = 0u64;
        for e in extents {
            let (e_start, e_end) = (offset, offset + e.size);
            offset = e_end;
            if e_end <= start || e_start >= end {
                continue;
            }
            let from = start.max(e_start) - e_start;
            let to = end.min(e_end) - e_start;
            pieces.push(match (&e.data, e.inline) {
                (Some(d), _) if d.len() as u64 == e.size => Piece::Here(d.slice(from as usize..to as usize)),
                (_, true) => Piece::Inline(e.blob.clone(), from as usize, to as usize),
                (_, false) => Piece::Stored(e.blob.clone(), from, to - from),
            });
        }
        let (blobs, meta) = (self.blobs.clone(), self.meta.clone());
        let s = futures::stream::iter(pieces)
            .map(move |piece| -> ByteStream {
                match piece {
                    Piece::Here(b) => Box::pin(futures::stream::once(futures::future::ready(Ok(b)))),
                    Piece::Stored(blob, off, len) => {
                        // Opened in a task of its own, so the stream stays `Sync` (as below).
                        let blobs = blobs.clone();
                        let open = tokio::spawn(async move { blobs.read(&blob, off, len).await });
                        Box::pin(
                            futures::stream::once(open)
                                .map(|r| -> ByteStream {
                                    match r.map_err(|e| std::io::Error::other(e.to_string())).and_then(|r| r) {
                                        Ok(s) => s,
                                        Err(e) => Box::pin(futures::stream::once(futures::future::ready(Err(e)))),
                                    }
                                })
                                .flatten(),
                        )
                    }
                    Piece::Inline(blob, from, to) => {
                        // Spawned so the stream stays `Sync` (a join handle is).
                        let meta = meta.clone();
                        let fetch = tokio::spawn(async move {
                            match meta.inline_blob(&blob).await {
                                Ok(Some(d)) if d.len() >= to => Ok(d.slice(from..to)),
                                Ok(_) => Err(std::io::Error::other(format!("inline blob {blob} is missing"))),
                                Err(e) => Err(std::io::Error::other(e.to_string())),
                            }
                        });
                        Box::pin(futures::stream::once(
                            fetch.map(|r| r.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))),
                        ))
                    }
                }
            })
            .flatten();
        Box::pin(s)
    }

    /// Bytes `[offset, offset + len)` of a content (small reads: proofs, headers).
    pub(crate) async fn read_range(&self, content: &ContentRecord, offset: u64, len: u64) -> CoreResult<Vec<u8>> {
        let mut out = Vec::with_capacity(len as usize);
        let mut s = self.read(content, offset, offset + len);
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// Whole-content digests and UFile ETag of an object's content, computed now (and
    /// stored) if the background job has not reached it yet.
    pub async fn full_digests(&self, content: &ContentRecord) -> CoreResult<(Digests, String)> {
        if let (Some(d), Some(u)) = (&content.digests, &content.ufile_etag) {
            return Ok((d.clone(), u.clone()));
        }
        let (d, u) = self.hash_missing(content).await?;
        self.meta.set_content_digests(content.id, d.clone(), u.clone()).await?;
        Ok((d, u))
    }

    /// Computes what a pending content lacks in one pass over its bytes: the SHA-1 and UFile
    /// ETag of a single blob whose other digests the write path kept (a deferred SHA-1), or
    /// every digest of content assembled from several parts.
    pub(crate) async fn hash_missing(&self, content: &ContentRecord) -> CoreResult<(Digests, String)> {
        let mut stream = self.read(content, 0, content.size);
        match content.extents.as_slice() {
            [one] if !one.digests.sha256.is_empty() && !one.digests.md5.is_empty() => {
                let (mut sha1, mut blocks) = (crate::hash::Sha1Hasher::default(), crate::hash::BlockSha1::default());
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    sha1.update(&chunk);
                    blocks.update(&chunk);
                }
                let mut d = content.digests.clone().unwrap_or_else(|| one.digests.clone());
                d.sha1 = sha1.finish_hex();
                Ok((d, blocks.finish_etag()))
            }
            _ => {
                let mut hasher = AllHasher::default();
                while let Some(chunk) = stream.next().await {
                    hasher.update(&chunk?);
                }
                Ok(hasher.finish_with_ufile())
            }
        }
    }

    // ----- listing

    pub async fn list_objects(
        &self,
        p: &Principal,
        bucket: &str,
        q: &crate::list::ListQuery,
    ) -> CoreResult<crate::list::ListResult> {
        let b = self.admit(p, Op::List, bucket, &q.prefix).await?;
        self.charge_request(p, &b).await?;
        let mut result = crate::list::list(self.meta.as_ref(), bucket, q).await?;
        result.bucket_owner = b.tenant;
        Ok(result)
    }
}
