//! Errors as the Aliyun Drive service answers them: `{"code": "X.Y", "message": ...}`.
//!
//! 429 only for real throttling (a tenant over its request or upload limits), as the service
//! does: aligo then backs off (1, 5, 25, 125 s) and retries. Rate-limited instant-upload
//! probes are answered as misses instead, never 429.

use chuan_core::CoreError;
use http::StatusCode;

#[derive(Debug)]
pub struct AdriveError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl AdriveError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found_file() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound.File", "The resource file cannot be found.")
    }
    pub fn token_invalid() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "AccessTokenInvalid", "AccessToken is invalid. ErrValidateTokenFailed")
    }
}

impl From<CoreError> for AdriveError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NoSuchBucket => {
                Self::new(StatusCode::NOT_FOUND, "NotFound.Drive", "The resource drive cannot be found.")
            }
            CoreError::NoSuchKey => Self::not_found_file(),
            CoreError::NoSuchUpload => {
                Self::new(StatusCode::NOT_FOUND, "NotFound.UploadId", "The resource upload_id cannot be found.")
            }
            CoreError::AccessDenied | CoreError::NoSuchTenant => {
                Self::new(StatusCode::FORBIDDEN, "Forbidden", "No permission to access the resource.")
            }
            // aligo asks for a fresh URL on 403 (and only then).
            CoreError::GrantInvalid(why) => {
                Self::new(StatusCode::FORBIDDEN, "AccessDenied", format!("The URL is not valid: {why}."))
            }
            e @ CoreError::MissingParts(_) => Self::bad_request("InvalidParameter.PartInfoList", e.to_string()),
            e @ CoreError::SizeMismatch { .. } => Self::bad_request("InvalidParameter.Size", e.to_string()),
            CoreError::AlreadyExists => {
                Self::new(StatusCode::CONFLICT, "AlreadyExist.File", "The resource file has already exists.")
            }
            CoreError::NameConflict => Self::new(
                StatusCode::CONFLICT,
                "AlreadyExist.File",
                "A file and a folder cannot share a name, and a file cannot hold entries.",
            ),
            CoreError::FolderNotEmpty => Self::bad_request("NotEmpty.Folder", "The folder is not empty."),
            CoreError::InvalidMove(m) => Self::bad_request("InvalidParameter.ToParentFileId", m),
            e @ CoreError::NameTooLong { .. } => Self::bad_request("InvalidParameter.Name", e.to_string()),
            CoreError::InvalidKey(m) | CoreError::InvalidArgument(m) => Self::bad_request("InvalidParameter", m),
            CoreError::KeyTooLong => Self::bad_request("InvalidParameter.Name", "The name is too long."),
            CoreError::BadDigest { .. } => Self::bad_request("InvalidParameter.ContentHash", e.to_string()),
            CoreError::IncompleteBody | CoreError::Body(_) => {
                Self::bad_request("InvalidParameter.Body", "The body ended before its declared length.")
            }
            CoreError::InvalidPart(m) => Self::bad_request("InvalidParameter.PartInfoList", m),
            CoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "storage backend unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "Service unavailable; retry later.")
            }
            CoreError::SlowDown => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Too many requests; retry later.")
            }
            CoreError::RequestTimeout => {
                Self::new(StatusCode::REQUEST_TIMEOUT, "RequestTimeout", "The request body arrived too slowly.")
            }
            e @ CoreError::EntityTooLarge { .. } => Self::bad_request("InvalidParameter.Size", e.to_string()),
            CoreError::QuotaExceeded(what) => {
                Self::new(StatusCode::FORBIDDEN, "QuotaExhausted.Drive", format!("The {what} quota is used up."))
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "Internal error.")
            }
        }
    }
}

pub type AdriveResult<T> = Result<T, AdriveError>;
