//! The metadata store contract, one trait per concern. Every method is one transaction.
//!
//! [`MetaStore`] is the sum of the concerns; the engine holds an `Arc<dyn MetaStore>`.
//! What every implementation must do is pinned down by the shared test suite in
//! [`crate::contract`], which the embedded SQLite store passes (and a scale-out store must).

use async_trait::async_trait;

use crate::model::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Exists,
    #[error("not empty")]
    NotEmpty,
    /// The write would take the tenant's stored bytes over its storage quota
    /// ([`QuotaLimits::storage_bytes`], read and checked in the write's own transaction, so
    /// it holds across nodes and is never exceeded).
    #[error("storage quota exceeded")]
    QuotaExceeded,
    /// A precondition checked inside the transaction failed (an ETag that changed, a part
    /// that was replaced, content that was freed meanwhile).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A tree write where a file and a folder would share a name (or a file would hold
    /// entries).
    #[error("a file and a folder cannot share a name")]
    KindConflict,
    #[error("metadata backend error: {0}")]
    Backend(String),
    /// The write lost to concurrent writes of the same rows every time it ran (PostgreSQL's
    /// serialization conflicts, retried with growing pauses): nothing was written; worth
    /// retrying later. Writes that all change one row (the same small content stored under
    /// many keys at once, say) queue this way.
    #[error("metadata write contended: {0}")]
    Contended(String),
    /// The metadata backend cannot be reached now (a connection lost or refused). Nothing was
    /// written, unless the connection broke during the commit itself, whose outcome is then
    /// unknown (as for any client of a remote database). Worth retrying: the store reconnects
    /// by itself.
    #[error("metadata backend unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Content to create along with the object that first references it.
#[derive(Debug, Clone)]
pub struct NewContent {
    pub size: u64,
    pub etag: String,
    pub digests: Option<Digests>,
    pub extents: Vec<Extent>,
    /// The UFile ETag, when already known.
    pub ufile_etag: Option<String>,
}

#[derive(Debug, Clone)]
pub enum ContentSource {
    New(NewContent),
    /// Share content that already exists (copy, instant upload). Fails with `Conflict` if it
    /// was freed meanwhile.
    Existing(i64),
}

/// What must hold of the current object for a write to proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *`
    Absent,
    /// `If-Match: <etag>`
    EtagIs(String),
}

#[derive(Debug, Clone)]
pub struct ObjectWrite {
    /// The id for a new object (a new random one if `None`); an overwritten object keeps its own.
    pub id: Option<String>,
    pub bucket: String,
    pub key: String,
    pub content: ContentSource,
    pub meta: ObjectMeta,
    pub modified_ms: i64,
    pub condition: Option<WriteCondition>,
    /// How the write treats the file tree: plain keys, or a path where a file and a folder
    /// cannot share a name (`KindConflict`), optionally keeping the folders it makes.
    pub tree: TreeRule,
}

#[derive(Debug, Clone)]
pub struct PartWrite {
    pub upload_id: String,
    pub number: u32,
    pub blob: BlobId,
    pub size: u64,
    pub etag: String,
    pub digests: Digests,
    /// The part's bytes, to be kept inline in the MetaStore when the blob is new (see
    /// [`Extent`]); `None` when they are in the BlobStore.
    pub data: Option<bytes::Bytes>,
}

/// How long a blob reserved by a writer ([`MaintenanceStore::reserve_blob`]) and not yet
/// referenced is kept from GC, whatever its grace: longer than any writer takes from making the
/// bytes durable to committing its reference.
pub const RESERVATION_GRACE_MS: i64 = 10 * 60 * 1000;

/// How old a deletion mark ([`MaintenanceStore::forget_blob`]) must be before another deleter
/// takes it over (the one that made it died between marking and dropping the row).
pub const STALE_DELETION_MS: i64 = 10 * 60 * 1000;

/// A blob row removed by [`MaintenanceStore::forget_blob`]: the caller removes its bytes
/// from the BlobStore unless they were inline (gone with the row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForgottenBlob {
    pub size: u64,
    pub inline: bool,
}

/// A move or copy of a file or a whole folder, as one transaction.
#[derive(Debug, Clone)]
pub struct TreeMove {
    pub bucket: String,
    /// A file key, or a folder key ending in `/`.
    pub from: String,
    /// Where it goes: the same kind of key as `from`.
    pub to: String,
    pub on_conflict: OnConflict,
    /// Moves only: one plain key to another (UFile's rename), without folder semantics.
    pub flat: bool,
    pub now_ms: i64,
}

#[derive(Debug, Clone)]
pub struct CompleteUpload {
    pub upload_id: String,
    /// Part numbers in order, each with the ETag the caller validated against; the store
    /// re-checks them inside the transaction so a concurrently replaced part is refused.
    pub parts: Vec<(u32, String)>,
    pub etag: String,
    pub modified_ms: i64,
    /// The id for the new object (a new random one if `None`).
    pub object_id: Option<String>,
    /// Whole-content digests when the caller already computed them.
    pub digests: Option<Digests>,
    /// The UFile ETag when the caller already computed it (from 4 MiB part SHA-1s).
    pub ufile_etag: Option<String>,
    /// Store the object under this key instead of the session's (UFile `newKey`).
    pub key: Option<String>,
    /// Refuse the completion (`Conflict("precondition failed")`) unless the key's current
    /// state matches, checked in the completing transaction.
    pub condition: Option<WriteCondition>,
    /// As [`ObjectWrite::tree`].
    pub tree: TreeRule,
    /// Keep the session as a record of the finished upload instead of removing it (its parts
    /// are dropped; GC removes it at its expiry), as `(the state it must still have, the state
    /// it keeps)`: `Conflict` when its state changed meanwhile (another request completed
    /// it). Resumable uploads answer "complete" to a client that asks again.
    pub keep_session: Option<(String, String)>,
}

/// What [`UploadStore::append_part`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The part was stored after every other; the session now holds `offset` bytes.
    Part { part: PartRecord, offset: u64 },
    /// The session holds `actual` bytes, not the offset the append was made for: nothing
    /// was stored.
    OffsetMismatch { actual: u64 },
    /// The session's state is no longer the one the append was made for (it was completed,
    /// or its length declared, meanwhile): nothing was stored.
    StateChanged,
}

/// A callback waiting to be delivered: a form-encoded POST body for `url`, with extra request
/// headers (name, value) made when it was queued (a signature and the `Date` it signs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub id: i64,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub attempts: u32,
}

/// Counted usage to add for one tenant, bucket and day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    pub tenant: String,
    pub bucket: String,
    /// Days since the Unix epoch.
    pub day: i64,
    pub downloads: u64,
    pub requests: u64,
}

/// One day of a tenant's usage report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageDay {
    pub day: i64,
    pub storage: u64,
    pub downloads: u64,
    pub requests: u64,
}

/// A tenant's limits (`None`: unlimited). Stored bytes are held to `storage_bytes` inside
/// every write transaction that grows them; downloads and requests are allowances consumed
/// from the moment the quota was set, taken with [`QuotaStore::take_allowance`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaLimits {
    pub storage_bytes: Option<u64>,
    /// Bytes of object bodies sent to the tenant's callers.
    pub download_bytes: Option<u64>,
    pub requests: Option<u64>,
}

/// A tenant's quota as stored: its limits and what has been taken of its allowances (by
/// every node, including what nodes hold taken but not yet spent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaRecord {
    pub limits: QuotaLimits,
    pub used_download_bytes: u64,
    pub used_requests: u64,
    /// Changes each time the quota is set: allowance taken under an older generation is
    /// void and cannot be given back into the new one.
    pub generation: i64,
}

/// An amount of the two allowances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowance {
    pub download_bytes: u64,
    pub requests: u64,
}

/// Which allowance ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowanceKind {
    DownloadBytes,
    Requests,
}

/// The outcome of [`QuotaStore::take_allowance`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowanceTake {
    /// The tenant has no quota: nothing was taken, nothing needs to be.
    NoQuota,
    /// Taken: `granted` is at least the need in each limited allowance (and exactly the
    /// need in an unlimited one); `quota` is the record after the take.
    Granted { granted: Allowance, quota: QuotaRecord },
    /// Nothing taken: less than the need remains of `kind`.
    Exhausted { kind: AllowanceKind, quota: QuotaRecord },
}

/// One token bucket to take a token from: `burst` tokens at most, refilled at `per_sec`
/// (a rate of 0 is no limit).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenTake {
    pub key: String,
    pub burst: f64,
    pub per_sec: f64,
}

/// Where an ordered scan begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStart<'a> {
    Beginning,
    /// Keys strictly greater than this one.
    After(&'a str),
    /// Keys greater than or equal to this one.
    From(&'a str),
}

pub type ListPage = Vec<ObjectRecord>;
pub type UploadListPage = Vec<UploadRecord>;

/// Tenants, credentials and tenant aliases (COS appids).
#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    /// Fails with `Exists` if the name is taken.
    async fn create_tenant(&self, tenant: TenantRecord) -> StoreResult<()>;
    async fn get_tenant(&self, name: &str) -> StoreResult<Option<TenantRecord>>;
    async fn list_tenants(&self) -> StoreResult<Vec<TenantRecord>>;

    /// Adds or replaces the credential with this access key.
    async fn put_credential(&self, cred: CredentialRecord) -> StoreResult<()>;
    async fn get_credential(&self, access_key: &str) -> StoreResult<Option<CredentialRecord>>;
    /// Credentials matching the filter, in access-key order.
    async fn list_credentials(&self, filter: CredentialFilter) -> StoreResult<Vec<CredentialRecord>>;
    /// Whether there was one to delete.
    async fn delete_credential(&self, access_key: &str) -> StoreResult<bool>;
    /// Deletes the credentials of `kinds` that expired before `cutoff_ms`; returns how many.
    async fn purge_expired_credentials(&self, kinds: &[CredentialKind], cutoff_ms: i64) -> StoreResult<u64>;

    /// Changes made to stored credentials by anyone sharing this store, as they commit, for
    /// a process that caches credentials: `Some(access_key)` for a credential changed or
    /// deleted, `None` when changes may have been missed (the watch was down and reconnected)
    /// so every cached credential is to be forgotten. A lagging receiver has missed some too.
    /// `None` instead of a receiver: nobody else writes this store's credentials while a
    /// process serves it (the embedded store), so a process's own invalidation is complete.
    fn credential_changes(&self) -> Option<tokio::sync::broadcast::Receiver<Option<String>>> {
        None
    }

    /// The tenant's alias of `kind`: the one it has, else `alias` if no tenant has taken it
    /// (then `Exists` when it is taken: the caller picks another). Aliases never change.
    async fn claim_alias(&self, kind: &str, alias: &str, tenant: &str) -> StoreResult<String>;
    async fn alias_of(&self, kind: &str, tenant: &str) -> StoreResult<Option<String>>;
    /// The tenant an alias names.
    async fn resolve_alias(&self, kind: &str, alias: &str) -> StoreResult<Option<String>>;
}

/// Settings shared by every node (signing keys, price tables, quotas).
#[async_trait]
pub trait SettingStore: Send + Sync + 'static {
    /// The setting's value, storing `init` first if it has none.
    async fn setting_or_init(&self, name: &str, init: String) -> StoreResult<String>;
    async fn get_setting(&self, name: &str) -> StoreResult<Option<String>>;
    async fn put_settings(&self, pairs: Vec<(String, String)>) -> StoreResult<()>;
}

/// Single-use grants.
#[async_trait]
pub trait GrantStore: Send + Sync + 'static {
    /// Fails with `Exists` if a grant of that kind and id exists (used or not).
    async fn create_grant(&self, grant: GrantRecord) -> StoreResult<()>;
    async fn get_grant(&self, kind: GrantKind, id: &str) -> StoreResult<Option<GrantRecord>>;
    /// Marks the grant used and returns it as it was before (so `used` says whether this
    /// call was the first): of concurrent callers exactly one sees `used == false`.
    async fn redeem_grant(&self, kind: GrantKind, id: &str) -> StoreResult<Option<GrantRecord>>;
    /// Forgets grants that expired before `cutoff_ms`; returns how many.
    async fn purge_grants(&self, cutoff_ms: i64) -> StoreResult<u64>;
}

/// Quotas and the limits every node must enforce together: allowances taken from one shared
/// count, and token buckets shared by every node.
#[async_trait]
pub trait QuotaStore: Send + Sync + 'static {
    /// Sets (replacing) a tenant's limits; its allowances start afresh (nothing used) under a
    /// new generation.
    async fn set_quota(&self, tenant: &str, limits: QuotaLimits) -> StoreResult<QuotaRecord>;
    async fn get_quota(&self, tenant: &str) -> StoreResult<Option<QuotaRecord>>;
    /// Takes `need` from the tenant's allowances, plus up to `extra` more in each limited one
    /// to spend later without asking (a lease) — but never more extra than a sixteenth of
    /// what would remain after the need, so that as an allowance runs out the leases shrink
    /// to the exact need and the last units go to whichever node asks. All or nothing, in one
    /// transaction: of concurrent takers the sum granted never exceeds a limit.
    async fn take_allowance(&self, tenant: &str, need: Allowance, extra: Allowance) -> StoreResult<AllowanceTake>;
    /// Gives back allowance taken but not spent; ignored when the quota's generation is no
    /// longer `generation` (it was set again meanwhile, or removed).
    async fn return_allowance(&self, tenant: &str, generation: i64, unused: Allowance) -> StoreResult<()>;
    /// Takes one token from each bucket, or none when any of them has less than one; the
    /// buckets are shared by every node using this store. A bucket not seen before is full.
    async fn take_tokens(&self, takes: Vec<TokenTake>) -> StoreResult<bool>;
    /// Forgets buckets untouched since `cutoff_ms` (they would be full again by now, given
    /// a cutoff at least `burst / per_sec` ago).
    async fn purge_tokens(&self, cutoff_ms: i64) -> StoreResult<u64>;
}

/// Usage metering and stored-byte counts.
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Adds counted downloads and requests per (tenant, bucket, day), and records the
    /// bucket's stored bytes as that day's storage (its maximum over the day).
    async fn add_usage(&self, rows: Vec<UsageDelta>) -> StoreResult<()>;
    /// Per-day totals over the tenant's buckets, days (unix day numbers) inclusive.
    async fn usage_report(&self, tenant: &str, from_day: i64, to_day: i64) -> StoreResult<Vec<UsageDay>>;
    /// Bytes stored across the tenant's buckets.
    async fn tenant_bytes(&self, tenant: &str) -> StoreResult<u64>;
    /// Bytes stored in one bucket.
    async fn bucket_bytes(&self, bucket: &str) -> StoreResult<u64>;
}

/// Outgoing callbacks (UpYun notify-url), kept until delivered or given up.
#[async_trait]
pub trait CallbackStore: Send + Sync + 'static {
    async fn enqueue_callback(&self, url: String, headers: Vec<(String, String)>, body: String) -> StoreResult<()>;
    /// Claims up to `limit` callbacks due at `now_ms`, oldest first, for one delivery attempt:
    /// they are not due again (for this or any other node) until `lease_until_ms`, so of
    /// nodes claiming at once each callback goes to exactly one. A claimer that dies before
    /// [`CallbackStore::finish_callback`] leaves it to be claimed again after the lease.
    async fn claim_callbacks(&self, now_ms: i64, lease_until_ms: i64, limit: usize) -> StoreResult<Vec<Callback>>;
    /// Delivered or given up (`None`), or to be retried at `retry_at`.
    async fn finish_callback(&self, id: i64, retry_at: Option<i64>) -> StoreResult<()>;
}

#[async_trait]
pub trait BucketStore: Send + Sync + 'static {
    /// Fails with `Exists` if the name is taken (by any tenant).
    async fn create_bucket(&self, bucket: BucketRecord) -> StoreResult<()>;
    async fn get_bucket(&self, name: &str) -> StoreResult<Option<BucketRecord>>;
    async fn set_bucket_public(&self, name: &str, public: bool) -> StoreResult<()>;
    /// Replaces the bucket's ACL and CORS settings (`NotFound` without the bucket).
    async fn set_bucket_config(&self, name: &str, config: &BucketConfig) -> StoreResult<()>;
    /// In name order; `None`: every tenant's.
    async fn list_buckets(&self, tenant: Option<&str>) -> StoreResult<Vec<BucketRecord>>;
    /// Refuses with `NotEmpty` while objects remain; open upload sessions are aborted with it.
    async fn delete_bucket(&self, name: &str) -> StoreResult<()>;
}

/// Objects, their contents and the hash index.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    async fn get_object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectRecord>>;
    /// An object and its content as [`ObjectStore::get_content_with_bytes`] gives it, read in
    /// one snapshot: what a download needs, in one round trip.
    async fn get_object_for_read(&self, bucket: &str, key: &str) -> StoreResult<Option<(ObjectRecord, ContentRecord)>>;
    async fn get_object_by_id(&self, bucket: &str, id: &str) -> StoreResult<Option<ObjectRecord>>;
    /// A content (extents without their bytes).
    async fn get_content(&self, id: i64) -> StoreResult<Option<ContentRecord>>;
    /// A content with the bytes of its extent when it is a single inline blob of at most
    /// 128 KiB, read in the same snapshot (so a small object is downloaded after one metadata
    /// round trip, without opening a file). A larger inline blob's bytes are left to
    /// [`ObjectStore::inline_blob`].
    async fn get_content_with_bytes(&self, id: i64) -> StoreResult<Option<ContentRecord>>;
    /// The bytes of an inline blob ([`Extent::inline`]); `None` when no inline blob has this id.
    async fn inline_blob(&self, id: &str) -> StoreResult<Option<bytes::Bytes>>;
    /// Objects with `key` starting with `prefix`, from `start` on, in byte order.
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        start: ListStart<'_>,
        limit: usize,
    ) -> StoreResult<ListPage>;
    async fn put_object(&self, write: ObjectWrite) -> StoreResult<ObjectRecord>;
    async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectRecord>>;
    /// The hash index: up to `limit` contents with this digest and size, whoever holds them.
    async fn find_content(&self, algo: &str, digest: &str, size: u64, limit: usize) -> StoreResult<Vec<i64>>;
    /// A content with this digest and size that an object of `tenant`'s buckets inside
    /// `within` points at, however many other tenants hold the same digest; objects another
    /// tenant owns there (`ObjectMeta::acl`'s owner) do not count.
    async fn find_held_content(
        &self,
        tenant: &str,
        algo: &str,
        digest: &str,
        size: u64,
        within: &Within,
    ) -> StoreResult<Option<i64>>;
    /// Contents of exactly this size, whose digests are still being computed, that an
    /// object of `tenant`'s buckets inside `within` points at.
    async fn pending_held_contents(
        &self,
        tenant: &str,
        size: u64,
        within: &Within,
        limit: usize,
    ) -> StoreResult<Vec<ContentRecord>>;
    /// Claims up to `limit` contents whose digests are still to be computed and that no
    /// other claim holds (none, or one that expired before `now_ms`) until `lease_until_ms`:
    /// the background digest job of one node works on each, however many nodes run it.
    async fn claim_pending_digests(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<ContentRecord>>;
    async fn set_content_digests(&self, id: i64, digests: Digests, ufile_etag: String) -> StoreResult<()>;
}

/// The file tree over each bucket's keys: folders (explicit or implied), listings in any
/// order, moves and copies of whole folders, attributes, search and the recycle bin. Keys of
/// folders end in `/`; the root is `""`.
#[async_trait]
pub trait TreeStore: Send + Sync + 'static {
    /// Up to `limit` entries the query asks for, strictly after `after` in its order.
    async fn list_folder(
        &self,
        bucket: &str,
        q: &FolderQuery,
        after: Option<TreeCursor>,
        limit: usize,
    ) -> StoreResult<Vec<TreeEntry>>;
    /// The file at `key`, or the folder (explicit or implied) at a key ending in `/`.
    async fn get_entry(&self, bucket: &str, key: &str) -> StoreResult<Option<TreeEntry>>;
    /// The file or folder with this id (a folder marker's id finds its folder).
    async fn get_entry_by_id(&self, bucket: &str, id: &str) -> StoreResult<Option<TreeEntry>>;
    /// Moves a file or a whole folder, keeping ids, timestamps and attributes; returns it at
    /// its new key (which `OnConflict::AutoRename` may have changed). Fails `NotFound`,
    /// `Exists`, `KindConflict`, or `Conflict` for a folder moved into itself.
    async fn move_entry(&self, m: TreeMove) -> StoreResult<TreeEntry>;
    /// Copies a file or a whole folder: new ids and timestamps, shared content, no bytes
    /// copied. Errors as [`TreeStore::move_entry`], and `QuotaExceeded`.
    async fn copy_entry(&self, m: TreeMove) -> StoreResult<TreeEntry>;
    /// The first free name for `key` in its folder (`key`, else `stem(1).ext`, ...); fails
    /// `KindConflict` if a file holds a folder name on its path.
    async fn free_key(&self, bucket: &str, key: &str) -> StoreResult<String>;
    /// Deletes a file, or a folder (refused `NotEmpty` unless `recursive`) with everything
    /// under it; returns what went.
    async fn delete_entry(&self, bucket: &str, key: &str, recursive: bool) -> StoreResult<FolderUsage>;
    /// Replaces an entry's metadata (a file keeps its content) and sets its modified time.
    async fn set_entry_meta(&self, bucket: &str, key: &str, meta: ObjectMeta, now_ms: i64) -> StoreResult<TreeEntry>;
    /// What `folder` holds, all levels down (`""`: the whole bucket).
    async fn folder_usage(&self, bucket: &str, folder: &str) -> StoreResult<FolderUsage>;
    /// Entries the query matches, in key order after `after` (a scan of the keys under
    /// `q.under`, paged).
    async fn search(
        &self,
        bucket: &str,
        q: &SearchQuery,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<TreeEntry>>;
    /// Moves a file or folder (with everything under it) to the bucket's trash; its content
    /// and bytes stay counted until purged.
    async fn trash(&self, bucket: &str, key: &str, now_ms: i64) -> StoreResult<TrashItem>;
    /// Trash items, newest first, strictly after `(trashed_ms, id)`.
    async fn list_trash(&self, bucket: &str, after: Option<(i64, String)>, limit: usize)
        -> StoreResult<Vec<TrashItem>>;
    async fn get_trash(&self, bucket: &str, id: &str) -> StoreResult<Option<TrashItem>>;
    /// Puts a trash item back at `to`: its own key, or a free name beside it ([`free_key`],
    /// chosen and admitted by the caller). Fails `NotFound`, `Exists` if `to` was taken
    /// meanwhile, or `Conflict` if the folder it was in is gone.
    ///
    /// [`free_key`]: TreeStore::free_key
    async fn restore(&self, bucket: &str, id: &str, to: &str, now_ms: i64) -> StoreResult<TreeEntry>;
    /// Deletes a trash item for good.
    async fn purge(&self, bucket: &str, id: &str) -> StoreResult<TrashItem>;
    /// `(bucket, id)` of trash items trashed before `cutoff_ms`, oldest first.
    async fn expired_trash(&self, cutoff_ms: i64, limit: usize) -> StoreResult<Vec<(String, String)>>;
}

/// Upload sessions and their parts.
#[async_trait]
pub trait UploadStore: Send + Sync + 'static {
    async fn create_upload(&self, upload: UploadRecord) -> StoreResult<()>;
    async fn get_upload(&self, id: &str) -> StoreResult<Option<UploadRecord>>;
    /// The live (unexpired) sessions of exactly this key, newest first.
    async fn uploads_of_key(&self, bucket: &str, key: &str) -> StoreResult<Vec<UploadRecord>>;
    /// Live (unexpired) sessions with keys starting with `prefix`, in (key, id) order after
    /// `after`.
    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> StoreResult<UploadListPage>;
    /// Adds or replaces a part (a replaced part's blob loses a reference); returns it as
    /// stored. `NotFound` when the session is gone or expired.
    async fn put_part(&self, part: PartWrite) -> StoreResult<PartRecord>;
    /// Appends a part after the session's last (its number is ignored: one more than the
    /// highest), only if the session's state is still `state` and its parts sum to `offset`
    /// bytes, both checked in the same transaction (so of two appends at one offset exactly one
    /// is stored, and none after a completion). `NotFound` when the session is gone or expired.
    async fn append_part(&self, offset: u64, state: &str, part: PartWrite) -> StoreResult<Appended>;
    /// Bytes held by a session's parts and how many parts there are: `(bytes, parts)`.
    async fn upload_progress(&self, upload_id: &str) -> StoreResult<(u64, u32)>;
    /// Replaces a live session's state if it is still `from` (compare and set): `false` when
    /// it changed meanwhile; `NotFound` when the session is gone or expired.
    async fn set_upload_state(&self, upload_id: &str, from: &str, to: &str) -> StoreResult<bool>;
    /// Appends, after `upload_id`'s parts, the parts of each of `sources` in order, as
    /// references to the same blobs (no bytes copied), in one transaction; every source must be
    /// live (`NotFound` otherwise) and hold exactly the bytes given with it (`Conflict`
    /// otherwise). Returns the bytes the session then holds.
    async fn adopt_parts(&self, upload_id: &str, sources: &[(String, u64)]) -> StoreResult<u64>;
    async fn list_parts(&self, upload_id: &str, after: u32, limit: usize) -> StoreResult<Vec<PartRecord>>;
    /// Turns the named parts into the extents of new content and points the upload's key at
    /// it; unnamed parts are dropped; the session is gone afterwards. No blob is copied.
    /// `NotFound` when the session is gone or expired.
    async fn complete_upload(&self, complete: CompleteUpload) -> StoreResult<ObjectRecord>;
    async fn abort_upload(&self, id: &str) -> StoreResult<()>;
    /// Removes the session `id` only while it holds no parts, in one transaction (a creation
    /// whose first append was refused — unless another request appended meanwhile):
    /// `Ok(true)` when removed, `Ok(false)` when it holds parts and stays; `NotFound` when gone.
    async fn abort_empty_upload(&self, id: &str) -> StoreResult<bool>;
    /// Upload sessions whose expiry has passed.
    async fn expired_uploads(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<String>>;
}

/// Garbage collection and checks.
#[async_trait]
pub trait MaintenanceStore: Send + Sync + 'static {
    /// Where a blob's bytes are: `None` when the metadata has no row for it, `Some(true)` when
    /// they are inline (see [`Extent`]), `Some(false)` when they are in the BlobStore.
    async fn blob_inline(&self, id: &str) -> StoreResult<Option<bool>>;
    /// Blobs with no reference since before `cutoff_ms`.
    async fn unreferenced_blobs(&self, cutoff_ms: i64, limit: usize) -> StoreResult<Vec<BlobId>>;
    /// Frees a blob that is still unreferenced since before `cutoff_ms` and that no writer
    /// holds a claim on (claims lapse [`RESERVATION_GRACE_MS`] after they were made); `Some`
    /// when it did. An inline blob's row and bytes go at once. A BlobStore blob's row is marked for
    /// deletion instead: the caller deletes its bytes, then [`MaintenanceStore::drop_blob`];
    /// until then [`MaintenanceStore::reserve_blob`] refuses it, so no writer can count on
    /// bytes being deleted. A mark older than [`STALE_DELETION_MS`] (a deleter that died) is
    /// taken over by the next call.
    async fn forget_blob(&self, id: &str, cutoff_ms: i64) -> StoreResult<Option<ForgottenBlob>>;
    /// Declares that a writer is about to make blob `id` (`size` bytes) durable in the
    /// BlobStore and commit a reference to it, before it writes the bytes: creates the blob's
    /// row without references, or restarts an unreferenced row's grace, and records `claim`
    /// (the writer's own random token) on it until [`MaintenanceStore::end_claim`] or
    /// [`MaintenanceStore::release_blob`] (or [`RESERVATION_GRACE_MS`], for a writer that
    /// died). GC leaves a blob with any claim alone (see [`MaintenanceStore::forget_blob`]),
    /// on every node, so bytes a writer finds already in the BlobStore stay there until its
    /// commit, whatever other writers of the same bytes do meanwhile. Fails `Conflict` while the blob is being
    /// deleted: the caller waits and tries again. A no-op for an inline blob. `true` when the
    /// blob had no row: only then may the writer take its bytes back
    /// ([`MaintenanceStore::release_blob`]), since bytes it found may be another writer's.
    async fn reserve_blob(&self, id: &str, size: u64, claim: &str) -> StoreResult<bool>;
    /// Undoes a reservation whose commit failed (made by a writer that created the blob's
    /// row): ends `claim`; `Some` when the blob is still unreferenced and no other writer
    /// holds a claim on it; it is then marked for deletion, and the caller deletes the bytes
    /// and calls [`MaintenanceStore::drop_blob`].
    async fn release_blob(&self, id: &str, claim: &str) -> StoreResult<Option<ForgottenBlob>>;
    /// Ends a writer's reservation (`claim`, see [`MaintenanceStore::reserve_blob`]) after
    /// its commit, or after a failed commit of a writer that found the blob's row: the blob
    /// is then GC's to judge by its references alone. A no-op for an unknown claim.
    async fn end_claim(&self, id: &str, claim: &str) -> StoreResult<()>;
    /// Removes the row of a blob marked for deletion, once its bytes are gone.
    async fn drop_blob(&self, id: &str) -> StoreResult<()>;
    /// Takes the mark off a blob whose bytes could not be deleted (the BlobStore failed): the
    /// row stays, unreferenced from now on, for a later GC pass, and writers of the same bytes
    /// may reserve it again at once (they upload or find the bytes themselves).
    async fn unmark_blob(&self, id: &str) -> StoreResult<()>;
    async fn stats(&self) -> StoreResult<StoreStats>;
    /// Cross-checks reference counts against the rows that hold them and inline bytes against
    /// their rows' sizes; returns every blob the metadata places in the BlobStore (not inline)
    /// and the problems found.
    async fn check(&self) -> StoreResult<(Vec<StoredBlob>, Vec<String>)>;
}

/// Everything the engine keeps besides blob bytes: the sum of the concerns above.
pub trait MetaStore:
    IdentityStore
    + SettingStore
    + QuotaStore
    + GrantStore
    + UsageStore
    + CallbackStore
    + BucketStore
    + ObjectStore
    + TreeStore
    + UploadStore
    + MaintenanceStore
{
}

impl<T> MetaStore for T where
    T: IdentityStore
        + SettingStore
        + QuotaStore
        + GrantStore
        + UsageStore
        + CallbackStore
        + BucketStore
        + ObjectStore
        + TreeStore
        + UploadStore
        + MaintenanceStore
{
}
