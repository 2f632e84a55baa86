//! UFile errors: `{"RetCode": <int>, "ErrMsg": "..."}` with `Content-Type: application/json`
//! exactly (the SDK parses the body only for that exact value) and an `X-SessionId` header.
//!
//! RetCodes: -30010 (bucket not found) is the one the OSS document shows; the others follow
//! UCloud's US3 service, and the code list of the document (150xx) for bucket management.

use chuan_core::CoreError;
use http::StatusCode;

#[derive(Debug)]
pub struct UfileError {
    pub status: StatusCode,
    pub code: i32,
    pub message: String,
}

pub type UfileResult<T> = Result<T, UfileError>;

impl UfileError {
    pub fn new(status: StatusCode, code: i32, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, -15017, message)
    }
    pub fn signature() -> Self {
        Self::new(StatusCode::FORBIDDEN, -148643, "signature not match")
    }
    pub fn no_auth() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, -148653, "no authorization")
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, -148654, "file not exist")
    }
}

impl From<CoreError> for UfileError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NoSuchBucket => Self::new(StatusCode::NOT_FOUND, -30010, "bucket not exist"),
            CoreError::NoSuchKey => Self::not_found(),
            CoreError::NoSuchUpload => Self::new(StatusCode::NOT_FOUND, -148655, "upload id not exist"),
            CoreError::AccessDenied | CoreError::GrantInvalid(_) => {
                Self::new(StatusCode::FORBIDDEN, -15037, "no permission")
            }
            CoreError::BucketExists | CoreError::BucketAlreadyOwnedByYou => {
                Self::new(StatusCode::BAD_REQUEST, -15000, "bucket already exists")
            }
            CoreError::BucketNotEmpty => Self::new(StatusCode::BAD_REQUEST, -15023, "bucket not empty"),
            CoreError::InvalidBucketName(m) => Self::new(StatusCode::BAD_REQUEST, -15001, m),
            CoreError::AlreadyExists => Self::new(StatusCode::BAD_REQUEST, -148657, "destination file exists"),
            CoreError::InvalidKey(m) | CoreError::InvalidArgument(m) | CoreError::InvalidPart(m) => {
                Self::bad_request(m)
            }
            e @ (CoreError::NameConflict
            | CoreError::FolderNotEmpty
            | CoreError::InvalidMove(_)
            | CoreError::NameTooLong { .. }) => Self::bad_request(e.to_string()),
            e @ (CoreError::MissingParts(_) | CoreError::SizeMismatch { .. } | CoreError::InvalidPartOrder) => {
                Self::bad_request(e.to_string())
            }
            CoreError::NoSuchTenant | CoreError::NoSuchCredential => {
                Self::new(StatusCode::BAD_REQUEST, 15040, "token not found")
            }
            CoreError::KeyTooLong => Self::bad_request("key too long"),
            CoreError::BadDigest { .. } => Self::new(StatusCode::BAD_REQUEST, -148651, "content md5 not match"),
            CoreError::IncompleteBody | CoreError::Body(_) => Self::bad_request("incomplete body"),
            CoreError::PreconditionFailed => Self::new(StatusCode::PRECONDITION_FAILED, -148658, "precondition failed"),
            CoreError::InvalidRange => Self::new(StatusCode::RANGE_NOT_SATISFIABLE, -148659, "invalid range"),
            CoreError::SlowDown => Self::new(StatusCode::SERVICE_UNAVAILABLE, -15004, "too many requests"),
            CoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "storage backend unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, -15012, "service unavailable, retry later")
            }
            CoreError::RequestTimeout => {
                Self::new(StatusCode::REQUEST_TIMEOUT, -148660, "the request body arrived too slowly")
            }
            e @ CoreError::EntityTooLarge { .. } => Self::new(StatusCode::PAYLOAD_TOO_LARGE, -148661, e.to_string()),
            CoreError::QuotaExceeded(what) => Self::new(StatusCode::FORBIDDEN, 15011, format!("{what} quota exceeded")),
            other => {
                tracing::error!(error = %other, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, -15012, "internal error")
            }
        }
    }
}
