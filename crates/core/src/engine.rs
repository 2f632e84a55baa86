//! The engine: the one object every dialect calls. This file holds its state, its
//! configuration and the few steps every write shares; the operations live in one file per
//! concern (`buckets.rs`, `objects.rs`, `uploads.rs`, `identity.rs`, `grants.rs`,
//! `instant.rs`, `metering.rs`, `maintenance.rs`).

use chuan_store::*;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{CoreError, CoreResult};
use crate::ingest::Staged;
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long an unreferenced blob is kept before GC may remove it.
    pub gc_grace: Duration,
    /// Smallest S3 multipart part but the last (S3: 5 MiB; other kinds have their own rules).
    pub min_part_size: u64,
    pub region: String,
    /// How long a native instant-upload challenge may be answered.
    pub challenge_ttl: Duration,
    /// Lifetimes of upload sessions by kind, overriding the kinds' defaults (see
    /// [`crate::uploads::default_ttl`]); a kind mapped to `None` never expires.
    pub upload_ttls: Vec<(UploadKind, Option<Duration>)>,
    /// Request rates, concurrent uploads and probes per tenant (`throttle.rs`).
    pub fairness: crate::throttle::FairnessConfig,
    /// How long a trashed file or folder is kept before GC purges it.
    pub trash_retention: Duration,
    /// Bodies of at most this many bytes are kept inline in the MetaStore (see
    /// `chuan_store::Extent`); 0 keeps every body in the BlobStore. At most
    /// [`crate::INLINE_MAX_LIMIT`]. A change applies to new blobs: a stored blob stays where it is.
    pub inline_max: usize,
    /// How long every instant-upload lookup that misses takes at least (see
    /// [`crate::DEFAULT_LOOKUP_FLOOR`]); must exceed the slowest proof read. Hits are answered
    /// at once.
    pub lookup_floor: Duration,
    /// Origins that browsers may call the upload endpoints from (tus, resumable uploads, the
    /// native instant-upload API): exact origins or patterns with one `*` (`*` alone: any).
    /// Empty: same origin only.
    pub upload_origins: Vec<String>,
    /// The most bytes one resumable upload (tus, IETF draft) may declare or receive.
    pub resumable_max_size: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            gc_grace: Duration::from_secs(15 * 60),
            min_part_size: 5 << 20,
            region: "us-east-1".into(),
            challenge_ttl: Duration::from_secs(60),
            upload_ttls: Vec::new(),
            fairness: Default::default(),
            trash_retention: crate::tree::DEFAULT_TRASH_RETENTION,
            inline_max: crate::ingest::DEFAULT_INLINE_MAX,
            lookup_floor: crate::instant::DEFAULT_LOOKUP_FLOOR,
            upload_origins: Vec::new(),
            resumable_max_size: crate::resumable::DEFAULT_RESUMABLE_MAX_SIZE,
        }
    }
}

/// Longest wait for a blob that GC is deleting before a writer of the same bytes gives up
/// (answered as "slow down": deleting one blob's bytes takes milliseconds).
const RESERVE_WAIT: Duration = Duration::from_secs(10);

/// Striped locks over blob ids: a commit that makes a blob durable and references it, and a
/// GC pass that forgets and deletes it, never interleave for the same blob.
pub(crate) struct BlobLocks(Vec<tokio::sync::Mutex<()>>);

impl BlobLocks {
    fn new() -> Self {
        Self((0..256).map(|_| tokio::sync::Mutex::new(())).collect())
    }
    pub(crate) async fn lock(&self, id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = u8::from_str_radix(id.get(0..2).unwrap_or("00"), 16).unwrap_or(0);
        self.0[stripe as usize].lock().await
    }
}

pub(crate) type AliasCache = std::collections::HashMap<(&'static str, String), (std::time::Instant, Option<String>)>;

/// How long a cached bucket record is trusted (see [`Engine::bucket_record`]).
const BUCKET_CACHE_TTL: Duration = Duration::from_secs(2);
/// How long a credential read from the MetaStore is reused. Every change made on this node
/// (issue, re-key, revoke) invalidates its entry at once, and so does a change made on another
/// node sharing a PostgreSQL MetaStore, announced as it commits
/// ([`chuan_store::IdentityStore::credential_changes`]); this lifetime bounds what an
/// announcement lost in transit (the listener reconnecting) can leave behind.
pub const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(1);

pub struct Engine {
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) locks: BlobLocks,
    /// Request rates per tenant (or client address) on this node (`throttle.rs`).
    pub(crate) requests: chuan_store::TokenBuckets,
    pub(crate) uploads: crate::throttle::UploadSlots,
    pub(crate) meter: crate::metering::Meter,
    /// Bucket records read in the last moments: every request needs its bucket's owner and
    /// visibility, which change rarely. Changes made on this node invalidate at once; other
    /// nodes sharing the MetaStore see them within [`BUCKET_CACHE_TTL`].
    buckets: parking_lot::Mutex<std::collections::HashMap<String, (std::time::Instant, Option<BucketRecord>)>>,
    /// Credentials read in the last [`CREDENTIAL_CACHE_TTL`] (known ones only: unknown keys
    /// are not remembered, so guessing keys cannot fill it). A signed request looks its key
    /// up more than once (signature check, then its principal); the MetaStore sees one.
    credentials: Arc<CredentialCache>,
    /// The key signed URL grants are made with (from the MetaStore, so every node agrees).
    pub(crate) url_key: tokio::sync::OnceCell<Vec<u8>>,
    /// Tenant aliases looked up so far, (kind, alias) → (when, tenant or none).
    pub(crate) aliases: parking_lot::Mutex<AliasCache>,
    /// When a lookup over the floor was last logged.
    pub(crate) overrun_logged: parking_lot::Mutex<Option<std::time::Instant>>,
    pub config: EngineConfig,
    pub metrics: Arc<Metrics>,
}

/// Credential records read lately, by access key (or bearer id).
#[derive(Default)]
pub(crate) struct CredentialCache {
    entries: parking_lot::Mutex<std::collections::HashMap<String, (std::time::Instant, chuan_store::CredentialRecord)>>,
    /// Bumped by every forget: a read that began before one is not cached (it may have read
    /// what was just changed).
    generation: std::sync::atomic::AtomicU64,
}

impl CredentialCache {
    fn forget(&self, access_key: &str) {
        let mut entries = self.entries.lock();
        entries.remove(access_key);
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn forget_all(&self) {
        let mut entries = self.entries.lock();
        entries.clear();
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Forgets what the MetaStore announces other processes changed, on a thread of its own,
    /// until the store or the cache is gone.
    fn watch(cache: &Arc<Self>, meta: &dyn MetaStore) {
        let Some(mut changes) = meta.credential_changes() else { return };
        let cache = Arc::downgrade(cache);
        let watcher = std::thread::Builder::new().name("credential-watch".into()).spawn(move || loop {
            let change = changes.blocking_recv();
            let Some(cache) = cache.upgrade() else { return };
            match change {
                Ok(Some(key)) => cache.forget(&key),
                Ok(None) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => cache.forget_all(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        });
        if let Err(e) = watcher {
            tracing::warn!(error = %e, "cannot watch credential changes; cached credentials live {CREDENTIAL_CACHE_TTL:?}");
        }
    }
}

impl Engine {
    /// The engine over a metadata store and a blob store. Only the binary (and tests) build
    /// one; dialects receive it.
    pub fn new(meta: Arc<dyn MetaStore>, blobs: Arc<dyn BlobStore>, config: EngineConfig) -> Self {
        let credentials = Arc::new(CredentialCache::default());
        CredentialCache::watch(&credentials, meta.as_ref());
        Self {
            meta,
            blobs,
            locks: BlobLocks::new(),
            requests: Default::default(),
            uploads: Default::default(),
            meter: Default::default(),
            buckets: Default::default(),
            credentials,
            url_key: Default::default(),
            overrun_logged: Default::default(),
            aliases: Default::default(),
            config,
            metrics: Arc::new(Metrics::default()),
        }
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

    pub(crate) fn forget_bucket(&self, name: &str) {
        self.buckets.lock().remove(name);
    }

    /// A credential's record, from the short-lived cache or the MetaStore.
    pub(crate) async fn credential_record(
        &self,
        access_key: &str,
    ) -> CoreResult<Option<chuan_store::CredentialRecord>> {
        if let Some((at, rec)) = self.credentials.entries.lock().get(access_key) {
            if at.elapsed() < CREDENTIAL_CACHE_TTL {
                return Ok(Some(rec.clone()));
            }
        }
        // Both before the read: the entry's lifetime counts from when it may have been read.
        let (generation, read_at) =
            (self.credentials.generation.load(std::sync::atomic::Ordering::Acquire), std::time::Instant::now());
        let rec = self.meta.get_credential(access_key).await?;
        let mut cache = self.credentials.entries.lock();
        match &rec {
            Some(r) if self.credentials.generation.load(std::sync::atomic::Ordering::Acquire) == generation => {
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(access_key.to_owned(), (read_at, r.clone()));
            }
            Some(_) => {}
            None => {
                cache.remove(access_key);
            }
        }
        Ok(rec)
    }

    /// Drops a credential from the cache (after any change to it on this node).
    pub(crate) fn forget_credential(&self, access_key: &str) {
        self.credentials.forget(access_key);
    }

    /// Makes a staged blob durable under its name and runs `commit` (which must reference
    /// it) while no GC pass, on any node, can free it. Bytes staged in memory need neither:
    /// `commit` brings them ([`Staged::extent`], [`Staged::inline_data`]) and the MetaStore
    /// keeps them in the same transaction, which also revives or recreates the blob's row
    /// atomically.
    ///
    /// A blob in the BlobStore is reserved in the MetaStore before its bytes are written
    /// ([`MaintenanceStore::reserve_blob`]): GC leaves a reserved blob alone, and a blob GC
    /// is deleting cannot be reserved until its bytes and row are gone, so bytes a writer
    /// finds in place stay there until its commit, whichever node runs the GC. A writer whose
    /// commit is refused (quota, precondition, vanished session) and whose reservation created
    /// the blob's row releases it, removing the bytes unless something references or
    /// reserved them since; bytes it found in place are left for GC.
    pub(crate) async fn publish<T>(
        &self,
        staged: Staged,
        commit: impl std::future::Future<Output = CoreResult<T>>,
    ) -> CoreResult<T> {
        let temp = match staged.body {
            crate::ingest::StagedBody::Inline(_) => return commit.await,
            crate::ingest::StagedBody::File(temp) => temp,
        };
        let id = staged.digests.sha256.clone();
        // Writers of one blob on this node take turns (GC here too); across nodes the
        // reservation does the same.
        let _guard = self.locks.lock(&id).await;
        let claim = uuid::Uuid::new_v4().simple().to_string();
        let created = self.reserve_blob(&id, staged.size, &claim).await?;
        let persisted = self.blobs.persist(temp, &id).await.map_err(CoreError::from);
        let result = match persisted {
            Ok(()) => commit.await,
            Err(e) => Err(e),
        };
        // A failure here leaves bytes that GC frees later and does not change the commit's
        // answer.
        // Only a writer that created the blob's row takes its bytes back: bytes it found may
        // be another writer's, on another node, about to be referenced.
        let tidy = async {
            if result.is_err() {
                if !created {
                    self.meta.end_claim(&id, &claim).await?;
                } else if self.meta.release_blob(&id, &claim).await?.is_some() {
                    self.delete_marked_blob(&id).await?;
                }
                return Ok(());
            }
            // Our reference holds the bytes now; another writer's claim, if any, stays.
            self.meta.end_claim(&id, &claim).await?;
            if self.meta.blob_inline(&id).await? == Some(true) {
                // The commit found the blob kept inline (under an earlier, larger threshold):
                // no row names the file, and the row our object now references cannot turn
                // into a file row while it does.
                self.blobs.delete(&id).await?;
            }
            Ok::<_, CoreError>(())
        };
        if let Err(e) = tidy.await {
            tracing::warn!(blob = %id, error = %e, "cannot remove a blob file no row needs");
        }
        result
    }

    /// Deletes the bytes of a blob whose row is marked for deletion, then the row. When the
    /// BlobStore fails (an outage), the mark is taken off instead ([`MaintenanceStore::
    /// unmark_blob`]): a later GC pass tries again, and writers of the same bytes are not kept
    /// waiting on a deletion that is not happening.
    pub(crate) async fn delete_marked_blob(&self, id: &str) -> CoreResult<()> {
        if let Err(e) = self.blobs.delete(&id.to_owned()).await {
            self.meta.unmark_blob(id).await?;
            return Err(e.into());
        }
        Ok(self.meta.drop_blob(id).await?)
    }

    /// [`MaintenanceStore::reserve_blob`], waiting (up to [`RESERVE_WAIT`]) while GC deletes
    /// the blob's previous bytes.
    async fn reserve_blob(&self, id: &str, size: u64, claim: &str) -> CoreResult<bool> {
        let deadline = std::time::Instant::now() + RESERVE_WAIT;
        loop {
            match self.meta.reserve_blob(id, size, claim).await {
                Err(StoreError::Conflict(why)) if std::time::Instant::now() < deadline => {
                    tracing::debug!(blob = %id, %why, "waiting for a blob's deletion to finish");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(StoreError::Conflict(_)) => return Err(CoreError::SlowDown),
                other => return Ok(other?),
            }
        }
    }

    // ----- settings shared by every node

    /// A setting (dialects' own configuration, e.g. UFile's price table).
    pub async fn setting(&self, name: &str) -> CoreResult<Option<String>> {
        Ok(self.meta.get_setting(name).await?)
    }

    /// Changes a setting: the root's to do.
    pub async fn put_setting(&self, p: &crate::Principal, name: &str, value: String) -> CoreResult<()> {
        if !p.admin {
            return Err(CoreError::AccessDenied);
        }
        Ok(self.meta.put_settings(vec![(name.to_owned(), value)]).await?)
    }
}

/// Maps a store refusal of a conditional write to the core's.
pub(crate) fn write_error(e: StoreError) -> CoreError {
    match e {
        StoreError::Conflict(m) if m.contains("precondition") => CoreError::PreconditionFailed,
        StoreError::KindConflict => CoreError::NameConflict,
        other => other.into(),
    }
}
