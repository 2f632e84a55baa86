//! Chuan's core engine: the rules every dialect shares, with no HTTP in sight.
//!
//! A dialect (S3, UFile, COS, ...) parses its wire format, resolves the caller to a
//! [`Principal`], and calls the [`Engine`]. The engine decides everything that is not wire
//! format: identity (tenants, credentials of every kind, aliases — `identity.rs`), access
//! (scopes, ownership, ACLs, anonymous reads — `access.rs` and `acl.rs`, checked inside
//! every operation for every key it names; cross-origin rules — `cors.rs`), metering and quotas (`metering.rs`, after authorization), single-use
//! and signed-URL grants (`grants.rs`), upload sessions (`uploads.rs`), instant upload with
//! proof of possession (`instant.rs`), naming, deduplication, listing and background work.
//!
//! The engine is written against the `chuan-store` traits, which it alone holds: dialects
//! see the records it speaks in (re-exported as [`store`]), never the metadata store itself.
//!
//! The write path ([`ingest`]) is two-phase so that a dialect can check digests that arrive
//! only after the body (S3 trailers, UpYun block hashes): [`Engine::stage`] streams the body
//! into an invisible, fsynced temporary blob while computing every digest in the same pass;
//! the dialect compares what the client claimed; then [`Engine::commit_put`] (or
//! [`Engine::commit_part`]) publishes it in one metadata transaction. Dropping a [`Staged`]
//! instead leaves nothing behind.

pub mod error;
pub mod hash;
pub mod ingest;
pub mod names;

mod access;
mod acl;
mod buckets;
mod cors;
mod engine;
mod grants;
mod identity;
mod instant;
mod list;
mod maintenance;
mod metering;
mod metrics;
mod objects;
mod resumable;
mod throttle;
mod tree;
mod uploads;

/// The records the engine speaks in, re-exported from `chuan-store`. The store traits are
/// not re-exported: only the engine reaches the metadata store.
pub mod store {
    pub use chuan_store::{
        entry_name, now_ms, parent_of, Acl, BlobId, BucketConfig, BucketRecord, Callback, ContentRecord, CorsRule,
        CredentialKind, Digests, EntryKinds, Extent, FolderQuery, FolderRecord, FolderUsage, FsckReport, Grant,
        GrantKind, Grantee, ObjectAccess, ObjectMeta, ObjectRecord, OnConflict, OrderBy, PartRecord, Permission,
        SearchQuery, StoreStats, TenantRecord, TrashItem, TreeEntry, TreeOrder, TreeRule, UploadKind, UploadRecord,
        UsageDay, WriteCondition,
    };
}

pub use access::{Op, Principal, Scope};
pub use acl::{owner_acl, AclSpec, CannedAcl};
pub use cors::{validate_cors, CorsAnswer, CORS_METHODS, MAX_CORS_RULES};
pub use engine::{Engine, EngineConfig};
pub use error::{is_stalled, BodyStalled, CoreError, CoreResult};
pub use grants::Redeemed;
pub use identity::{
    new_access_key, new_secret, validate_tenant, AliasKind, Credential, CredentialSpec, CredentialUpdate, KEY_PAIRS,
    UPLOAD_TOKEN_MAX_TTL,
};
pub use ingest::{StageOptions, Staged, StagedReader, DEFAULT_INLINE_MAX, INLINE_MAX_LIMIT};
pub use instant::{
    Challenge, ChallengeOptions, ChallengeOutcome, HeldContent, Possession, DEFAULT_LOOKUP_FLOOR, REMOTE_LOOKUP_FLOOR,
};
pub use list::{ListQuery, ListResult};
pub use maintenance::{check_callback_url, GcReport, MAX_CALLBACK_URL};
pub use metering::{day_of, Quota};
pub use metrics::Metrics;
pub use objects::{PutTarget, MAX_DELETE_BATCH};
pub use resumable::{
    Append, AppendCheck, AppendChecksum, Appended, LateChecksum, NewResumable, Resumable, DEFAULT_RESUMABLE_MAX_SIZE,
};
pub use throttle::{current_client, with_client, FairnessConfig, UploadSlot};
pub use tree::{validate_name, AttrUpdate, Page, UserMetaChange, DEFAULT_TRASH_RETENTION, MAX_PAGE};
pub use uploads::{default_ttl, Claim, Completed, Completion, NewUpload, PartList, MAX_PARTS};

/// Compares secrets without leaking, through timing, where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
