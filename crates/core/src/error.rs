//! Errors of the core, in protocol-neutral terms. Each dialect maps them to its own codes.

use chuan_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("the bucket does not exist")]
    NoSuchBucket,
    #[error("the bucket already exists")]
    BucketExists,
    /// Creating a bucket the caller's tenant already owns.
    #[error("the bucket already exists and is yours")]
    BucketAlreadyOwnedByYou,
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    #[error("invalid bucket name: {0}")]
    InvalidBucketName(String),
    #[error("the key does not exist")]
    NoSuchKey,
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("the key is longer than 1024 bytes")]
    KeyTooLong,
    #[error("the upload does not exist")]
    NoSuchUpload,
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("parts must be listed in ascending order")]
    InvalidPartOrder,
    #[error("part {part} is {size} bytes, smaller than the minimum {min}")]
    EntityTooSmall { part: u32, size: u64, min: u64 },
    /// A completion that needs every part found these missing (at most ten listed).
    #[error("parts {0:?} have not been uploaded")]
    MissingParts(Vec<u32>),
    /// The parts hold another size than the client declared.
    #[error("the parts hold {actual} bytes; the file was declared as {expected} bytes")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("the {algorithm} digest does not match the body")]
    BadDigest { algorithm: &'static str },
    #[error("the body ended before its declared length")]
    IncompleteBody,
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("access denied")]
    AccessDenied,
    /// A signed URL grant that does not hold (why: signature mismatch, expired, missing).
    #[error("the URL is not valid: {0}")]
    GrantInvalid(&'static str),
    #[error("the tenant does not exist")]
    NoSuchTenant,
    #[error("the credential does not exist")]
    NoSuchCredential,
    #[error("the name is already taken")]
    AlreadyExists,
    /// A file and a folder would share a name, or a file would hold entries.
    #[error("a file and a folder cannot share a name")]
    NameConflict,
    #[error("the folder is not empty")]
    FolderNotEmpty,
    /// A move or restore the tree cannot make (a folder into itself, a restore into a
    /// folder that was deleted).
    #[error("{0}")]
    InvalidMove(String),
    #[error("the name is longer than {limit} bytes")]
    NameTooLong { limit: usize },
    #[error("too many requests; slow down")]
    SlowDown,
    #[error("the tenant's {0} quota is used up")]
    QuotaExceeded(String),
    #[error("invalid range")]
    InvalidRange,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A request that is well-formed but asks for what cannot be done (S3 `InvalidRequest`).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("request body stream failed: {0}")]
    Body(String),
    /// The body made too little progress and was cut off ([`BodyStalled`]).
    #[error("the request body arrived too slowly and was cut off")]
    RequestTimeout,
    /// The body is larger than the operation allows.
    #[error("the body is larger than the {limit} bytes allowed here")]
    EntityTooLarge { limit: u64 },
    /// A local I/O error (a blob backend outage becomes [`CoreError::Unavailable`] instead).
    #[error("I/O error: {0}")]
    Io(std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
    /// A resumable upload holds `actual` bytes, not the offset the client named.
    #[error("the upload holds {actual} bytes: append at that offset")]
    OffsetMismatch { actual: u64 },
    /// The resumable upload expired (it is removed by the next GC).
    #[error("the upload expired")]
    UploadExpired,
    /// The checksum sent with an append does not match its bytes (none were stored).
    #[error("the checksum does not match the bytes sent")]
    ChecksumMismatch,
    /// The resumable upload is finished and takes no more bytes.
    #[error("the upload is complete")]
    UploadComplete,
    /// A storage backend cannot be reached now ([`StoreError::Unavailable`]: nothing was
    /// changed, but for a commit cut off mid-way). Every protocol answers it as its "service
    /// unavailable, retry" (HTTP 503 where the protocol has statuses).
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

/// The error a request body stream ends with when the client stopped sending (or sent too
/// slowly) and the listener cut it off. [`crate::Engine::stage`] answers it as
/// [`CoreError::RequestTimeout`], found anywhere in the error's source chain.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body made too little progress and was cut off")]
pub struct BodyStalled;

/// Whether `e`, or an error in its source chain, is [`BodyStalled`]: a body read failed
/// because the client stopped sending, which every protocol answers as its request timeout.
pub fn is_stalled(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyStalled>() {
            return true;
        }
        cur = err.source();
    }
    false
}

impl From<std::io::Error> for CoreError {
    fn from(e: std::io::Error) -> Self {
        if chuan_store::BlobUnavailable::is(&e) {
            CoreError::Unavailable(e.to_string())
        } else {
            CoreError::Io(e)
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Backend(m) => CoreError::Internal(m),
            StoreError::Unavailable(m) => CoreError::Unavailable(m),
            StoreError::QuotaExceeded => CoreError::QuotaExceeded("storage volume".into()),
            // Every protocol's "slow down, retry" (S3 503 SlowDown).
            StoreError::Contended(_) => CoreError::SlowDown,
            other => CoreError::Internal(other.to_string()),
        }
    }
}
