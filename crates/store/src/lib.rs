//! Chuan's storage layer: the two traits the core engine is written against, and their
//! embedded implementations.
//!
//! * [`BlobStore`] keeps immutable, content-addressed byte blobs (named by their SHA-256).
//!   Writers stage bytes in a [`TempBlob`] (always a local file, so hashing and fsync happen
//!   in one pass), then [`BlobStore::persist`] makes it durable under its final name.
//!   [`LocalBlobStore`] is the default: `blobs/ab/cd/<sha256>` under the data dir.
//! * [`MetaStore`] keeps everything else (tenants, credentials, buckets, objects, contents,
//!   the hash index, upload sessions and their parts, single-use grants) with transactional
//!   updates. It is the sum of one trait per concern ([`IdentityStore`], [`ObjectStore`],
//!   [`UploadStore`], ...); [`contract`] is the test suite every implementation must pass.
//!   [`SqlMetaStore`] implements it over SQL, on SQLite (the embedded default: WAL mode,
//!   one writer thread that batches concurrent writes into one transaction — group commit —
//!   and a syncer thread that fsyncs the WAL before answering them, so durable small writes do
//!   not each pay a full fsync, nor wait for one to start the next batch) or on PostgreSQL
//!   (several nodes sharing one database; each write one `SERIALIZABLE` transaction).
//!
//! Reference counting lives here because it must change in the same transaction as the rows
//! that hold the references: a blob's `refs` counts the content extents and upload parts that
//! name it; a content's `refs` counts the objects that point at it.

mod blob;
pub mod contract;
mod meta;
mod model;
mod rate;
mod s3blob;
mod sql;

pub use blob::{drain_removals, BlobStore, ByteStream, LocalBlobStore, TempBlob};
pub use meta::{
    Allowance, AllowanceKind, AllowanceTake, Appended, BucketStore, Callback, CallbackStore, CompleteUpload,
    ContentSource, ForgottenBlob, GrantStore, IdentityStore, ListPage, ListStart, MaintenanceStore, MetaStore,
    NewContent, ObjectStore, ObjectWrite, PartWrite, QuotaLimits, QuotaRecord, QuotaStore, SettingStore, StoreError,
    StoreResult, TokenTake, TreeMove, TreeStore, UploadListPage, UploadStore, UsageDay, UsageDelta, UsageStore,
    WriteCondition, RESERVATION_GRACE_MS, STALE_DELETION_MS,
};
pub use model::*;
pub use rate::TokenBuckets;
pub use s3blob::{BlobUnavailable, S3BlobStore, S3Location, PART_SIZE as S3_PART_SIZE, READ_CHUNK as S3_READ_CHUNK};
pub use sql::SqlMetaStore;

/// Milliseconds since the Unix epoch, the one time unit stored in metadata.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
