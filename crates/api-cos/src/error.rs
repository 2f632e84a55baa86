//! COS errors: HTTP 400 with `{"code": <negative>, "message"}` — the SDKs parse the body of a
//! 200 or 400 answer only, and read nothing but `code` (and `data`). The codes are the
//! vendor's (spec "错误码"); each constructor names the situation it is used for.

use chuan_core::CoreError;

#[derive(Debug)]
pub struct CosError {
    pub code: i32,
    pub message: String,
    /// Extra `data` (the session of an unfinished upload with -4019).
    pub data: Option<serde_json::Value>,
}

pub type CosResult<T> = Result<T, CosError>;

impl CosError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }
    pub fn param(message: impl Into<String>) -> Self {
        Self::new(-5999, message)
    }
    pub fn auth_failed(message: impl Into<String>) -> Self {
        Self::new(-97, message)
    }
    pub fn file_not_found() -> Self {
        Self::new(-197, "ERROR_CMD_FILE_NOTEXIST: no such file or directory")
    }
    pub fn parent_missing() -> Self {
        Self::new(-166, "ERROR_CMD_COS_INDEX_ERROR: the parent directory does not exist; create it first")
    }
    pub fn invalid_path(message: impl Into<String>) -> Self {
        Self::new(-180, format!("ERROR_CMD_COS_INVALID_PATH: {}", message.into()))
    }
    pub fn same_file() -> Self {
        Self::new(-4018, "ErrSameFileUpload: the file exists; send insertOnly=0 to overwrite it")
    }
    pub fn dest_exists() -> Self {
        Self::new(-177, "ERROR_CMD_COS_FILE_EXIST: the destination exists; send to_over_write=1 to replace it")
    }
    pub fn wrong_session() -> Self {
        Self::new(-5983, "ERROR_CGI_WRONG_SESSION: no unfinished upload has this session")
    }
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl From<CoreError> for CosError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NoSuchBucket => Self::new(-166, "ERROR_CMD_COS_INDEX_ERROR: the bucket does not exist"),
            CoreError::NoSuchKey => Self::file_not_found(),
            CoreError::NoSuchUpload => Self::wrong_session(),
            CoreError::AccessDenied | CoreError::GrantInvalid(_) | CoreError::NoSuchTenant => {
                Self::new(-70, "ERROR_PROXY_APPID_USERID_NOTMATCH: access denied")
            }
            CoreError::BadDigest { .. } => {
                Self::new(-174, "ERROR_CMD_COS_SHA_NOT_EQU: the file's sha does not match; upload it again")
            }
            e @ CoreError::MissingParts(_) => {
                Self::new(-175, format!("ERROR_CMD_COS_FILE_SIZE_NOT_EQU: {e}; upload them, then finish"))
            }
            e @ CoreError::SizeMismatch { .. } => Self::new(-175, format!("ERROR_CMD_COS_FILE_SIZE_NOT_EQU: {e}")),
            CoreError::AlreadyExists | CoreError::PreconditionFailed => Self::dest_exists(),
            CoreError::NameConflict => {
                Self::new(-178, "ERROR_CMD_COS_PATH_CONFLICT: a file and a directory cannot share a path")
            }
            CoreError::FolderNotEmpty => Self::new(-173, "ERROR_CMD_COS_DIR_NOT_EMPTY: the directory is not empty"),
            CoreError::InvalidMove(m) => Self::param(m),
            e @ CoreError::NameTooLong { .. } => Self::invalid_path(e.to_string()),
            CoreError::InvalidKey(m) => Self::invalid_path(m),
            CoreError::KeyTooLong => Self::invalid_path("the path is longer than 1024 bytes"),
            CoreError::InvalidArgument(m) | CoreError::InvalidPart(m) => Self::param(m),
            CoreError::IncompleteBody | CoreError::Body(_) => {
                Self::new(-5993, "ERROR_CGI_FORM_ERR: the request body ended early")
            }
            CoreError::QuotaExceeded(w) => Self::new(-6996, format!("ERROR_OSS_FILESIZE: the {w} quota is used up")),
            CoreError::SlowDown => Self::new(-71, "ERROR_PROXY_FREQ_CONTROL: too many requests, retry later"),
            CoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "storage backend unavailable");
                Self::new(-9999, "ERROR_SERVICE_UNAVAILABLE: a storage backend cannot be reached, retry later")
            }
            CoreError::RequestTimeout => {
                Self::new(-66, "ERROR_PROXY_NETWORK: the request body arrived too slowly and was cut off")
            }
            e @ CoreError::EntityTooLarge { .. } => Self::new(-285, format!("ERROR_PROCESS_FILE_TOO_LARGE: {e}")),
            other => {
                tracing::error!(error = %other, "internal error");
                Self::new(-9999, "internal error")
            }
        }
    }
}
