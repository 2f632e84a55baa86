//! Records kept in the [`MetaStore`](crate::MetaStore). Plain data, no behaviour.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A blob's name: the lower-case hex SHA-256 of its bytes.
pub type BlobId = String;

/// Every digest the write path computes in its single pass over the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Digests {
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub crc32: u32,
    pub crc32c: u32,
    pub crc64nvme: u64,
    pub crc64xz: u64,
    /// SHA-1 of the first 1,024 bytes (Aliyun Drive's `pre_hash`).
    #[serde(default)]
    pub sha1_head: String,
}

impl Digests {
    /// (algorithm, digest) pairs as entered in the hash index.
    pub fn index_entries(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![("md5", self.md5.clone()), ("sha1", self.sha1.clone()), ("sha256", self.sha256.clone())];
        if !self.sha1_head.is_empty() {
            v.push(("sha1_head", self.sha1_head.clone()));
        }
        v
    }
}

/// One piece of a content: a whole blob. Multipart completion lists part blobs here
/// instead of copying their bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub blob: BlobId,
    pub size: u64,
    /// Digests of this extent alone (for S3 per-part checksums and ETags).
    pub digests: Digests,
}

/// Immutable content shared by objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentRecord {
    pub id: i64,
    pub size: u64,
    /// The S3 ETag (without quotes): MD5 hex, or `md5-of-md5s-N` for multipart content.
    pub etag: String,
    /// Whole-content digests; `None` until the background job has computed them for content
    /// assembled from parts.
    pub digests: Option<Digests>,
    pub extents: Vec<Extent>,
    pub refs: i64,
    /// The UFile ETag (SHA-1 of 4 MiB blocks, see `chuan_core::hash::ufile_etag`); `None`
    /// until computed.
    pub ufile_etag: Option<String>,
}

/// Content headers and user metadata of an object, as the client sent them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ObjectMeta {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_disposition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cache_control: Option<String>,
    /// RFC 7231 date, as sent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub user: BTreeMap<String, String>,
    /// The checksum algorithm the client asked for (S3 `x-amz-checksum-algorithm`), upper-case.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub checksum_algorithm: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    /// Stable identity (40 hex digits): kept across overwrite and rename, used as Aliyun
    /// Drive's `file_id`.
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub content_id: i64,
    pub size: u64,
    pub etag: String,
    pub modified_ms: i64,
    pub meta: ObjectMeta,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRecord {
    pub name: String,
    pub tenant: String,
    pub public: bool,
    pub region: String,
    pub created_ms: i64,
}

/// A credential of any dialect, resolving to a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    pub access_key: String,
    pub secret: String,
    pub tenant: String,
    /// Which dialect's credential this is (`s3`, ...); root credentials are `root`.
    pub kind: String,
    pub created_ms: i64,
    /// When the credential stops working (tokens); `None` for long-lived keys.
    pub expires_ms: Option<i64>,
    /// Restrictions of a scoped credential (JSON of `chuan_core::Scope`); `None` for a
    /// tenant-wide key.
    pub scope: Option<String>,
}

/// A stored single-use ticket (upload tokens, challenges): its payload and whether it was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub payload: String,
    pub expires_ms: i64,
    pub used: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub tenant: String,
    pub created_ms: i64,
    pub meta: ObjectMeta,
    /// Protocol state the dialect keeps with the session (JSON: expected size and digest,
    /// part sizes, target names...). Empty object for plain S3 uploads.
    pub state: String,
    /// When GC may abort the session (protocols whose sessions expire); `None`: never.
    pub expires_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    pub upload_id: String,
    pub number: u32,
    pub blob: BlobId,
    pub size: u64,
    pub etag: String,
    pub digests: Digests,
    pub modified_ms: i64,
}

/// Logical vs physical usage of the whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    pub buckets: u64,
    pub objects: u64,
    /// Sum of object sizes (what clients see).
    pub logical_bytes: u64,
    pub contents: u64,
    pub blobs: u64,
    /// Sum of blob sizes (what the disk holds).
    pub physical_bytes: u64,
    pub uploads: u64,
    pub parts: u64,
    /// Blobs with no reference left, waiting for their grace period.
    pub unreferenced_blobs: u64,
    /// Contents whose whole-file digests are still being computed.
    pub pending_digests: u64,
}

/// What a consistency check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FsckReport {
    pub blobs_checked: u64,
    pub problems: Vec<String>,
}

/// A single-use proof-of-possession challenge (native instant upload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRecord {
    pub id: String,
    pub tenant: String,
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub sha256: String,
    pub nonce: String,
    pub ranges: Vec<(u64, u64)>,
    pub proof_required: bool,
    pub expires_ms: i64,
}
