//! Records kept in the [`MetaStore`](crate::MetaStore). Plain data, no behaviour.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest key, in bytes (S3's limit; the other vendors' are no larger).
pub const MAX_KEY_BYTES: usize = 1024;

/// A blob's name: the lower-case hex SHA-256 of its bytes.
pub type BlobId = String;

/// Every digest the write path computes in its single pass over the bytes.
///
/// `sha1` may be empty: a dialect whose answers need no SHA-1 leaves it to the background
/// digest job (see `chuan_core::StageOptions::defer_sha1`). Digests without it are never a
/// content's whole-content digests ([`ContentRecord::digests`] stays `None`, pending) and
/// enter no hash index; they can be an extent's or a part's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Digests {
    pub md5: String,
    /// Lower-case hex, or empty when not computed yet.
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
    /// Whether every digest is known (the SHA-1 may be left for later).
    pub fn is_complete(&self) -> bool {
        !self.sha1.is_empty()
    }

    /// (algorithm, digest) pairs as entered in the hash index: the known ones.
    pub fn index_entries(&self) -> Vec<(&'static str, String)> {
        [("md5", &self.md5), ("sha1", &self.sha1), ("sha256", &self.sha256), ("sha1_head", &self.sha1_head)]
            .into_iter()
            .filter(|(_, d)| !d.is_empty())
            .map(|(a, d)| (a, d.clone()))
            .collect()
    }
}

/// One piece of a content: a whole blob. Multipart completion lists part blobs here
/// instead of copying their bytes.
///
/// A blob's bytes live in one of two places for as long as its row exists: in the
/// [`BlobStore`](crate::BlobStore) (a file), or **inline**, in the MetaStore next to the row
/// (small blobs: they commit in the same transaction as the object that names them, so a
/// burst of small writes costs one group-committed fsync instead of a file, an fsync and a
/// rename each). The MetaStore decides `inline` when it records the extent: a blob it
/// already holds stays where it is; a new one is inline when the write brings its `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub blob: BlobId,
    pub size: u64,
    /// Digests of this extent alone (for S3 per-part checksums and ETags).
    pub digests: Digests,
    /// The bytes are kept in the MetaStore ([`crate::ObjectStore::inline_blob`]), not in the
    /// BlobStore. Set by the MetaStore; ignored on writes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inline: bool,
    /// The blob's bytes, when they travel with the record (never serialized). On a write: the
    /// bytes of a new blob, to be kept inline. On a read: an inline blob's bytes, loaded with
    /// a single-extent content by [`crate::ObjectStore::get_content`]; `None` otherwise.
    #[serde(skip)]
    pub data: Option<bytes::Bytes>,
}

impl Extent {
    /// An extent of a blob in the BlobStore (or already known to the MetaStore).
    pub fn stored(blob: BlobId, size: u64, digests: Digests) -> Self {
        Self { blob, size, digests, inline: false, data: None }
    }
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

impl ContentRecord {
    /// The digests known now: the whole-content ones, else (content of one blob, pending) the
    /// blob's own, whose `sha1` may still be empty ([`Digests::is_complete`]).
    pub fn known_digests(&self) -> Option<&Digests> {
        match (&self.digests, self.extents.as_slice()) {
            (Some(d), _) => Some(d),
            (None, [one]) => Some(&one.digests),
            (None, _) => None,
        }
    }
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
    /// Attributes a protocol keeps with the object (COS `biz_attr`, UpYun `Content-Secret`,
    /// ...). Never filled from user metadata headers, so no client of another protocol can
    /// forge them; names are `<protocol>-<attribute>`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub attrs: BTreeMap<String, String>,
    /// Who may read the object without a credential; decided by the core (never by user
    /// metadata).
    #[serde(skip_serializing_if = "ObjectAccess::is_inherit", default)]
    pub access: ObjectAccess,
    /// Marked by its owner (Aliyun Drive `starred`); a tree attribute, kept through moves.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub starred: bool,
    /// Free text its owner gave it (Aliyun Drive `description`); kept through moves.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    /// The object's S3 access control list; `None`: the bucket owner owns it with full
    /// control and `access` decides anonymous reads.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub acl: Option<Acl>,
}

/// An object's own read access, on top of its bucket's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectAccess {
    /// As the bucket: public buckets serve it to anyone, private ones to credentials only.
    #[default]
    Inherit,
    /// Credentials only, even in a public bucket.
    Private,
    /// Anyone may read it, even in a private bucket.
    PublicRead,
}

impl ObjectAccess {
    pub fn is_inherit(&self) -> bool {
        *self == ObjectAccess::Inherit
    }
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
    /// When the key was first written (kept through overwrites and moves; a copy is new).
    pub created_ms: i64,
    pub meta: ObjectMeta,
}

/// A folder of a bucket's file tree. Folders are keys ending in `/`: explicit ones have a
/// marker object at that key (what S3 clients create), implied ones exist because some key
/// lies under them. Either way the folder has a stable id and its own attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderRecord {
    /// 40 hex digits, like object ids (an explicit folder's id is its marker object's).
    pub id: String,
    pub bucket: String,
    /// Ends in `/`.
    pub key: String,
    pub created_ms: i64,
    pub modified_ms: i64,
    /// Tree attributes (starred, description, user metadata); content headers are unused.
    pub meta: ObjectMeta,
    /// A marker object exists at `key`.
    pub explicit: bool,
    /// It stays when emptied though it has no marker (made by a [`TreeRule::KeepFolders`]
    /// write).
    pub kept: bool,
}

/// How a write treats the bucket's file tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TreeRule {
    /// Plain keys (S3, UFile, IoT): `a` and `a/b` may both be written.
    #[default]
    Flat,
    /// A name is a file or a folder, never both (`KindConflict` otherwise).
    Folders,
    /// As `Folders`, and the folders the key implies stay when they are emptied (UpYun
    /// creates the directories of an upload's path).
    KeepFolders,
}

/// One entry of a folder: a file (an object) or a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEntry {
    File(ObjectRecord),
    Folder(FolderRecord),
}

impl TreeEntry {
    pub fn key(&self) -> &str {
        match self {
            TreeEntry::File(o) => &o.key,
            TreeEntry::Folder(f) => &f.key,
        }
    }
    pub fn id(&self) -> &str {
        match self {
            TreeEntry::File(o) => &o.id,
            TreeEntry::Folder(f) => &f.id,
        }
    }
    pub fn is_folder(&self) -> bool {
        matches!(self, TreeEntry::Folder(_))
    }
    /// The last path segment (without a folder's trailing `/`).
    pub fn name(&self) -> &str {
        entry_name(self.key())
    }
    /// Files' sizes; folders are 0.
    pub fn size(&self) -> u64 {
        match self {
            TreeEntry::File(o) => o.size,
            TreeEntry::Folder(_) => 0,
        }
    }
    pub fn modified_ms(&self) -> i64 {
        match self {
            TreeEntry::File(o) => o.modified_ms,
            TreeEntry::Folder(f) => f.modified_ms,
        }
    }
    pub fn created_ms(&self) -> i64 {
        match self {
            TreeEntry::File(o) => o.created_ms,
            TreeEntry::Folder(f) => f.created_ms,
        }
    }
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            TreeEntry::File(o) => &o.meta,
            TreeEntry::Folder(f) => &f.meta,
        }
    }
}

/// The last segment of a tree key (`a/b.txt` → `b.txt`, `a/b/` → `b`).
pub fn entry_name(key: &str) -> &str {
    let trimmed = key.strip_suffix('/').unwrap_or(key);
    trimmed.rsplit_once('/').map_or(trimmed, |(_, n)| n)
}

/// The folder holding a tree key (`a/b/c` and `a/b/c/` → `a/b/`; top-level keys → `""`).
pub fn parent_of(key: &str) -> &str {
    let trimmed = key.strip_suffix('/').unwrap_or(key);
    trimmed.rfind('/').map_or("", |i| &key[..=i])
}

/// What a folder listing is sorted by; ties (and `Name`) go by key, in byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderBy {
    #[default]
    Name,
    Modified,
    Created,
    Size,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeOrder {
    pub by: OrderBy,
    pub descending: bool,
}

/// What a folder listing lists: the entries (of `kinds`) directly in `folder` (`""` or a key
/// ending in `/`) whose names start with `name_prefix`, sorted by `order`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderQuery {
    pub folder: String,
    pub name_prefix: String,
    pub order: TreeOrder,
    pub kinds: EntryKinds,
}

impl FolderQuery {
    /// Everything in `folder`, in `order`.
    pub fn new(folder: &str, order: TreeOrder) -> Self {
        Self { folder: folder.to_owned(), order, ..Default::default() }
    }
}

/// The smallest string greater than every string that starts with `prefix` (in UTF-8 byte
/// order, which is code-point order), or `None` if there is none.
pub fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// What a search looks for: entries (of `kinds`) under `under` (all levels down, or only
/// directly in it with `direct`), whose name contains `name` (ASCII case folded; equals it
/// with `exact`), starred ones only with `starred`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    pub under: String,
    pub name: String,
    pub exact: bool,
    pub direct: bool,
    pub kinds: EntryKinds,
    pub starred: bool,
}

/// Which entries a folder listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EntryKinds {
    #[default]
    All,
    Files,
    Folders,
}

/// Where a folder listing resumes: strictly after the entry with this sort value (ignored
/// for `Name`) and key, in the listing's order. Keyset paging, so entries added or removed
/// meanwhile never make another entry repeat or be skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeCursor {
    pub value: i64,
    pub key: String,
}

impl TreeCursor {
    /// The cursor just after `e` in a listing sorted by `by`.
    pub fn after(e: &TreeEntry, by: OrderBy) -> TreeCursor {
        let value = match by {
            OrderBy::Name => 0,
            OrderBy::Modified => e.modified_ms(),
            OrderBy::Created => e.created_ms(),
            OrderBy::Size => e.size() as i64,
        };
        TreeCursor { value, key: e.key().to_owned() }
    }
}

/// What a tree write does when its destination name is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Fail with `Exists`.
    #[default]
    Refuse,
    /// Remove what is there (a file, or a folder with everything under it) first, in the
    /// same transaction.
    Replace,
    /// Take the first free name of `stem(1).ext`, `stem(2).ext`, ... (Aliyun Drive's
    /// `auto_rename`).
    AutoRename,
}

/// A trashed file or folder: everything under it is kept (content and quota included) until
/// restored or purged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashItem {
    /// The entry's own id, kept while in the trash and after a restore.
    pub id: String,
    pub bucket: String,
    /// Where it was (a folder's ends in `/`).
    pub key: String,
    pub folder: bool,
    /// Bytes of every file it holds.
    pub size: u64,
    pub trashed_ms: i64,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub meta: ObjectMeta,
}

/// What a folder holds, all levels down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FolderUsage {
    pub bytes: u64,
    pub files: u64,
    pub folders: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRecord {
    pub name: String,
    pub tenant: String,
    /// Objects without an ACL of their own are readable without a credential (UFile's and
    /// UpYun's public buckets; S3 has no such switch and leaves it off).
    pub public: bool,
    pub region: String,
    pub created_ms: i64,
    /// Access control list and CORS rules; default: the owner alone, no cross-origin access.
    pub config: BucketConfig,
}

/// A bucket's settings that S3 clients manage (stored as one JSON document).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BucketConfig {
    /// `None`: the owner has full control, nobody else anything.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub acl: Option<Acl>,
    /// Cross-origin rules (S3 `CORSConfiguration`); `None`: no rules set.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cors: Option<Vec<CorsRule>>,
}

/// Who a grant is to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "id")]
pub enum Grantee {
    /// One tenant (S3's canonical user id is the tenant's name).
    Tenant(String),
    /// Anyone, with or without a credential (S3 `.../global/AllUsers`).
    AllUsers,
    /// Any caller with a valid credential of any tenant (S3 `.../global/AuthenticatedUsers`).
    AuthenticatedUsers,
    /// S3's log delivery group: kept and shown as granted; no caller is ever in it.
    LogDelivery,
}

/// What a grant allows (S3's ACL permissions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    /// Objects: read the object. Buckets: list the keys.
    Read,
    /// Buckets: write and delete any key. (Objects: none.)
    Write,
    /// Read the ACL.
    ReadAcp,
    /// Change the ACL.
    WriteAcp,
    /// All of the above.
    FullControl,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

/// An access control list: an owner (a tenant; it always has full control of the ACL) and
/// grants, in the order they were given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub owner: String,
    #[serde(default)]
    pub grants: Vec<Grant>,
}

/// One cross-origin rule (S3 `CORSRule`). Origins and headers may hold one `*` wildcard.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    /// Upper-case methods: GET, PUT, POST, DELETE, HEAD.
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_age_secs: Option<u32>,
}

/// A tenant: the owner of buckets and credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantRecord {
    pub name: String,
    pub created_ms: i64,
}

/// What a credential is. Every kind resolves to a tenant (and, for scoped kinds, a scope);
/// the kind says how it was issued and how it may authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// The operator's key: every tenant's buckets and the admin API.
    Root,
    /// A tenant's own key pair (S3 access key, UFile public/private key, COS SecretId/Key).
    TenantKey,
    /// A UFile token (`TOKEN_<id>`): a key pair with a scope and usually an expiry.
    UfileToken,
    /// A UCloud IoT device: signs its URL requests; scoped to `<product>/<device>/` of one bucket.
    IotDevice,
    /// An UpYun operator, keyed by the MD5 of its password; scoped to one bucket.
    UpyunOperator,
    /// An UpYun bucket's form-API secret (legacy block upload); scoped to that bucket.
    UpyunFormSecret,
    /// An Aliyun Drive refresh token (bearer; stored as its SHA-256).
    AdriveRefresh,
    /// An Aliyun Drive access token (bearer; stored as its SHA-256; expires).
    AdriveAccess,
    /// An upload token a tenant hands to a browser or an app (bearer, `Authorization: Bearer`
    /// on Chuan's own upload endpoints; stored as its SHA-256; scoped; expires).
    UploadToken,
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 9] = [
        Self::Root,
        Self::TenantKey,
        Self::UfileToken,
        Self::IotDevice,
        Self::UpyunOperator,
        Self::UpyunFormSecret,
        Self::AdriveRefresh,
        Self::AdriveAccess,
        Self::UploadToken,
    ];

    /// The name stored in the metadata (`s3` for tenant keys, as first stored).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::TenantKey => "s3",
            Self::UfileToken => "ufile-token",
            Self::IotDevice => "iot-device",
            Self::UpyunOperator => "upyun-operator",
            Self::UpyunFormSecret => "upyun-form-secret",
            Self::AdriveRefresh => "adrive-refresh",
            Self::AdriveAccess => "adrive-access",
            Self::UploadToken => "upload-token",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Bearer tokens are handed to the client whole; the store keeps only their SHA-256 as
    /// the access key and a secret nobody is ever given (so they cannot sign requests).
    pub fn is_bearer(&self) -> bool {
        matches!(self, Self::AdriveRefresh | Self::AdriveAccess | Self::UploadToken)
    }
}

/// A credential of any kind, resolving to a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    pub access_key: String,
    pub secret: String,
    pub tenant: String,
    pub kind: CredentialKind,
    /// A name the issuer gave it (UFile `TokenName`); may be empty.
    pub label: String,
    pub created_ms: i64,
    /// When the credential stops working (tokens); `None` for long-lived keys.
    pub expires_ms: Option<i64>,
    /// Restrictions of a scoped credential (JSON of `chuan_core::Scope`); `None` for a
    /// tenant-wide key.
    pub scope: Option<String>,
}

/// Which credentials a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialFilter {
    pub tenant: Option<String>,
    pub kind: Option<CredentialKind>,
}

/// Single-use grants (one mechanism for every protocol's one-time tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantKind {
    /// A Tencent COS once-signature, spent by the request that carries it.
    CosOnce,
    /// A UCloud IoT upload token, spent by the upload it allows.
    IotUpload,
    /// A native instant-upload challenge, spent by its answer.
    Challenge,
}

impl GrantKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::CosOnce => "cos-once",
            Self::IotUpload => "iot-upload",
            Self::Challenge => "challenge",
        }
    }
}

/// A stored single-use grant: what it grants, until when, and whether it was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub kind: GrantKind,
    pub id: String,
    /// What the grant allows (JSON chosen by its issuer).
    pub payload: String,
    pub expires_ms: i64,
    pub used: bool,
}

/// What kind of upload session this is: decides its part rules and default lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UploadKind {
    /// S3 multipart upload (parts 1–10,000, listed at completion).
    S3,
    /// UFile multipart upload (4 MiB blocks numbered from 0).
    Ufile,
    /// Tencent COS slice upload (v4 or v3).
    Cos,
    /// UpYun REST multipart upload (`X-Upyun-Multi-*`).
    Upyun,
    /// UpYun legacy form-API block upload.
    UpyunBlock,
    /// Aliyun Drive `create_with_proof` upload.
    Adrive,
    /// A resumable upload of tus 1.0 or the IETF draft: appended at an offset, one part per
    /// append (see `chuan_core::resumable`).
    Tus,
}

impl UploadKind {
    pub const ALL: [UploadKind; 7] =
        [Self::S3, Self::Ufile, Self::Cos, Self::Upyun, Self::UpyunBlock, Self::Adrive, Self::Tus];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Ufile => "ufile",
            Self::Cos => "cos",
            Self::Upyun => "upyun",
            Self::UpyunBlock => "upyun-block",
            Self::Adrive => "adrive",
            Self::Tus => "tus",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: String,
    pub kind: UploadKind,
    pub bucket: String,
    pub key: String,
    pub tenant: String,
    pub created_ms: i64,
    pub meta: ObjectMeta,
    /// Protocol state the dialect keeps with the session (JSON: expected size and digest,
    /// part sizes, target names...). Empty object for plain S3 uploads.
    pub state: String,
    /// When the session stops accepting parts and GC aborts it; `None`: never.
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
    /// The part's bytes are kept in the MetaStore (see [`Extent`]).
    pub inline: bool,
}

impl PartRecord {
    /// The part as an extent of the content a completion assembles.
    pub fn extent(&self) -> Extent {
        Extent { inline: self.inline, ..Extent::stored(self.blob.clone(), self.size, self.digests.clone()) }
    }
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
    /// Blobs whose bytes are kept in the MetaStore (see [`Extent`]), and their bytes.
    pub inline_blobs: u64,
    pub inline_bytes: u64,
    pub uploads: u64,
    pub parts: u64,
    /// Blobs with no reference left, waiting for their grace period.
    pub unreferenced_blobs: u64,
    /// Contents whose whole-file digests are still being computed.
    pub pending_digests: u64,
}

/// A blob whose bytes are in the BlobStore, as the metadata knows it ([`MaintenanceStore::check`]).
///
/// [`MaintenanceStore::check`]: crate::MaintenanceStore::check
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub id: BlobId,
    pub size: u64,
    /// Whether something references it: its bytes must be in the BlobStore. Unreferenced
    /// ones (in their grace, reserved by a writer, being deleted) may or may not be.
    pub referenced: bool,
}

/// What a consistency check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FsckReport {
    pub blobs_checked: u64,
    pub problems: Vec<String>,
}

/// Which objects count, for a lookup on behalf of a scoped credential: `None` on an axis
/// means no restriction on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Within {
    pub buckets: Option<Vec<String>>,
    pub prefixes: Option<Vec<String>>,
}

impl Within {
    /// Whether `(bucket, key)` falls inside.
    pub fn contains(&self, bucket: &str, key: &str) -> bool {
        self.buckets.as_ref().is_none_or(|b| b.iter().any(|x| x == bucket))
            && self.prefixes.as_ref().is_none_or(|ps| ps.iter().any(|p| key.starts_with(p.as_str())))
    }
}
