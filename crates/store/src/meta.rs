//! The metadata store contract. Every method is one transaction.

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
    /// The write would take the tenant's stored bytes over its quota (checked in the
    /// transaction, so the quota is never exceeded).
    #[error("storage quota exceeded")]
    QuotaExceeded,
    /// A precondition checked inside the transaction failed (an ETag that changed, a part
    /// that was replaced, content that was freed meanwhile).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("metadata backend error: {0}")]
    Backend(String),
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
    /// Refuse the write (`QuotaExceeded`) if the tenant would store more than this.
    pub quota_bytes: Option<u64>,
    /// The id for a new object (a new random one if `None`); an overwritten object keeps its own.
    pub id: Option<String>,
    pub bucket: String,
    pub key: String,
    pub content: ContentSource,
    pub meta: ObjectMeta,
    pub modified_ms: i64,
    pub condition: Option<WriteCondition>,
}

#[derive(Debug, Clone)]
pub struct PartWrite {
    pub upload_id: String,
    pub number: u32,
    pub blob: BlobId,
    pub size: u64,
    pub etag: String,
    pub digests: Digests,
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
    /// Refuse the completion if the tenant would store more than this.
    pub quota_bytes: Option<u64>,
    /// Refuse the completion (`Conflict("precondition failed")`) unless the key's current
    /// state matches, checked in the completing transaction.
    pub condition: Option<WriteCondition>,
}

/// A callback waiting to be delivered: a form-encoded POST body for `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub id: i64,
    pub url: String,
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

#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    // --- tenants and credentials
    async fn put_credential(&self, cred: CredentialRecord) -> StoreResult<()>;
    async fn get_credential(&self, access_key: &str) -> StoreResult<Option<CredentialRecord>>;
    async fn list_credentials(&self) -> StoreResult<Vec<CredentialRecord>>;
    async fn delete_credential(&self, access_key: &str) -> StoreResult<()>;

    // --- settings shared by every node (URL-signing keys, ...)
    /// The setting's value, storing `init` first if it has none.
    async fn setting_or_init(&self, name: &str, init: String) -> StoreResult<String>;
    async fn get_setting(&self, name: &str) -> StoreResult<Option<String>>;
    async fn put_settings(&self, pairs: Vec<(String, String)>) -> StoreResult<()>;

    // --- usage metering
    /// Adds counted downloads and requests per (tenant, bucket, day), and records the
    /// bucket's stored bytes as that day's storage (its maximum over the day).
    async fn add_usage(&self, rows: Vec<UsageDelta>) -> StoreResult<()>;
    /// Per-day totals over the tenant's buckets, days (unix day numbers) inclusive.
    async fn usage_report(&self, tenant: &str, from_day: i64, to_day: i64) -> StoreResult<Vec<UsageDay>>;
    /// Bytes stored across the tenant's buckets.
    async fn tenant_bytes(&self, tenant: &str) -> StoreResult<u64>;
    /// Bytes stored in one bucket.
    async fn bucket_bytes(&self, bucket: &str) -> StoreResult<u64>;

    // --- outgoing callbacks (UpYun notify-url), kept until delivered or given up
    async fn enqueue_callback(&self, url: String, body: String) -> StoreResult<()>;
    async fn due_callbacks(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<Callback>>;
    /// Delivered or given up (`None`), or to be retried at `retry_at`.
    async fn finish_callback(&self, id: i64, retry_at: Option<i64>) -> StoreResult<()>;

    // --- buckets
    async fn create_bucket(&self, bucket: BucketRecord) -> StoreResult<()>;
    async fn get_bucket(&self, name: &str) -> StoreResult<Option<BucketRecord>>;
    async fn set_bucket_public(&self, name: &str, public: bool) -> StoreResult<()>;
    async fn list_buckets(&self, tenant: Option<&str>) -> StoreResult<Vec<BucketRecord>>;
    /// Refuses with `NotEmpty` while objects or upload sessions remain.
    async fn delete_bucket(&self, name: &str) -> StoreResult<()>;

    // --- objects and contents
    async fn get_object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectRecord>>;
    async fn get_object_by_id(&self, bucket: &str, id: &str) -> StoreResult<Option<ObjectRecord>>;
    /// Moves the object at `from` to `to` (keeping its id), and with `prefix` every key under
    /// `from` too (folder rename). Fails with `Exists` if `to` is taken.
    async fn rename(&self, bucket: &str, from: &str, to: &str, prefix: bool) -> StoreResult<ObjectRecord>;
    /// Whether any object of the tenant's buckets points at this content.
    async fn tenant_holds_content(&self, tenant: &str, content_id: i64) -> StoreResult<bool>;
    async fn get_content(&self, id: i64) -> StoreResult<Option<ContentRecord>>;
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
    /// The hash index: contents with this digest and size.
    async fn find_content(&self, algo: &str, digest: &str, size: u64) -> StoreResult<Vec<i64>>;
    async fn contents_missing_digests(&self, limit: usize) -> StoreResult<Vec<ContentRecord>>;
    /// Contents of exactly this size whose digests are still being computed.
    async fn pending_contents_of_size(&self, size: u64, limit: usize) -> StoreResult<Vec<ContentRecord>>;
    async fn set_content_digests(&self, id: i64, digests: Digests, ufile_etag: String) -> StoreResult<()>;

    // --- upload sessions
    async fn create_upload(&self, upload: UploadRecord) -> StoreResult<()>;
    async fn get_upload(&self, id: &str) -> StoreResult<Option<UploadRecord>>;
    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> StoreResult<UploadListPage>;
    /// Adds or replaces a part (a replaced part's blob loses a reference).
    async fn put_part(&self, part: PartWrite) -> StoreResult<()>;
    async fn list_parts(&self, upload_id: &str, after: u32, limit: usize) -> StoreResult<Vec<PartRecord>>;
    /// Turns the named parts into the extents of new content and points the upload's key at
    /// it; unnamed parts are dropped; the session is gone afterwards. No blob is copied.
    async fn complete_upload(&self, complete: CompleteUpload) -> StoreResult<ObjectRecord>;
    async fn abort_upload(&self, id: &str) -> StoreResult<()>;

    // --- single-use tickets (upload tokens)
    async fn create_ticket(&self, id: &str, payload: String, expires_ms: i64) -> StoreResult<()>;
    async fn get_ticket(&self, id: &str) -> StoreResult<Option<Ticket>>;
    /// Marks the ticket used; `false` if it was already used (or does not exist).
    async fn use_ticket(&self, id: &str) -> StoreResult<bool>;

    // --- proof-of-possession challenges
    async fn create_challenge(&self, c: ChallengeRecord) -> StoreResult<()>;
    /// Marks the challenge used and returns it, with whether it had already been used: each
    /// can be answered once.
    async fn take_challenge(&self, id: &str) -> StoreResult<Option<(ChallengeRecord, bool)>>;
    /// Forgets challenges that expired before `cutoff_ms`.
    async fn purge_challenges(&self, cutoff_ms: i64) -> StoreResult<u64>;

    // --- garbage collection and checks
    /// Upload sessions whose expiry has passed.
    async fn expired_uploads(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<String>>;
    /// Whether the metadata has a row for this blob.
    async fn blob_known(&self, id: &str) -> StoreResult<bool>;
    /// Blobs with no reference since before `cutoff_ms`.
    async fn unreferenced_blobs(&self, cutoff_ms: i64, limit: usize) -> StoreResult<Vec<BlobId>>;
    /// Deletes the blob's row if it is still unreferenced since before `cutoff_ms`; returns
    /// whether it did (the caller then removes the bytes).
    async fn forget_blob(&self, id: &str, cutoff_ms: i64) -> StoreResult<bool>;
    async fn stats(&self) -> StoreResult<StoreStats>;
    /// Cross-checks reference counts against the rows that hold them; returns the blobs the
    /// metadata knows (id, size) and the problems found.
    async fn check(&self) -> StoreResult<(Vec<(BlobId, u64)>, Vec<String>)>;
}
