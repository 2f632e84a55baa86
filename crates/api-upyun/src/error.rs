//! UpYun errors: JSON `{"msg", "code", "id"}` with the HTTP status; the SDK reads `msg` to
//! recover multipart uploads ("part id error", "file md5 not match", ...).

use chuan_core::CoreError;
use http::StatusCode;

#[derive(Debug)]
pub struct UpyunError {
    pub status: StatusCode,
    pub code: u32,
    pub msg: String,
    /// `X-Upyun-Next-Part-Id` for a part sent out of sequence.
    pub next_part: Option<u32>,
}

pub type UpyunResult<T> = Result<T, UpyunError>;

impl UpyunError {
    pub fn new(status: StatusCode, code: u32, msg: impl Into<String>) -> Self {
        debug_assert_eq!(u32::from(status.as_u16()), code / 100_000, "UpYun codes begin with their HTTP status");
        Self { status, code, msg: msg.into(), next_part: None }
    }

    /// An error whose HTTP status is the first three digits of its code, as UpYun's are.
    pub fn coded(code: u32, msg: impl Into<String>) -> Self {
        let status = StatusCode::from_u16((code / 100_000) as u16).unwrap_or(StatusCode::BAD_REQUEST);
        Self { status, code, msg: msg.into(), next_part: None }
    }
    pub fn bad(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 40000001, msg)
    }
    /// Every signature refusal, whatever its cause (unknown operator, wrong password, wrong
    /// signature, no form secret): one answer, so none tells which operators exist.
    pub fn sign() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 40100005, "sign error")
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, 40400001, "file or directory not found")
    }
}

impl From<CoreError> for UpyunError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NoSuchBucket => Self::new(StatusCode::NOT_FOUND, 40400002, "service not found"),
            CoreError::NoSuchKey => Self::not_found(),
            CoreError::NoSuchUpload => Self::new(StatusCode::BAD_REQUEST, 40011061, "x-upyun-multi-uuid not found"),
            CoreError::AccessDenied | CoreError::GrantInvalid(_) | CoreError::NoSuchTenant => {
                Self::new(StatusCode::FORBIDDEN, 40300011, "has no permission")
            }
            CoreError::AlreadyExists => Self::new(StatusCode::CONFLICT, 40900001, "file already exists"),
            // UpYun's codes for the tree: 406 40600001 (a file and a folder would share a
            // name), 403 40300005 (a folder that is not empty), 403 40300003 (name too long).
            CoreError::NameConflict => {
                Self::new(StatusCode::NOT_ACCEPTABLE, 40600001, "file or directory already exists")
            }
            CoreError::FolderNotEmpty => Self::new(StatusCode::FORBIDDEN, 40300005, "directory not empty"),
            e @ CoreError::NameTooLong { .. } => Self::new(StatusCode::FORBIDDEN, 40300003, e.to_string()),
            CoreError::InvalidMove(m) => Self::bad(m),
            CoreError::InvalidKey(m) | CoreError::InvalidArgument(m) | CoreError::InvalidPart(m) => Self::bad(m),
            e @ (CoreError::MissingParts(_) | CoreError::SizeMismatch { .. }) => Self::bad(e.to_string()),
            CoreError::KeyTooLong => Self::bad("uri too long"),
            CoreError::BadDigest { .. } => Self::new(StatusCode::BAD_REQUEST, 40000006, "Content-MD5 not match"),
            CoreError::IncompleteBody | CoreError::Body(_) => Self::bad("incomplete body"),
            CoreError::QuotaExceeded(w) => Self::new(StatusCode::FORBIDDEN, 40300021, format!("{w} quota exceeded")),
            CoreError::SlowDown => Self::new(StatusCode::TOO_MANY_REQUESTS, 42900001, "too many requests"),
            CoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "storage backend unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, 50300001, "service unavailable, retry later")
            }
            CoreError::RequestTimeout => Self::new(StatusCode::REQUEST_TIMEOUT, 40800001, "request timeout"),
            e @ CoreError::EntityTooLarge { .. } => Self::new(StatusCode::PAYLOAD_TOO_LARGE, 41300001, e.to_string()),
            other => {
                tracing::error!(error = %other, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, 50000000, "internal error")
            }
        }
    }
}
