//! Core errors as S3 errors: the code and status S3 itself answers with.

use chuan_core::CoreError;
use s3s::{S3Error, S3ErrorCode};

pub fn to_s3_error(e: CoreError) -> S3Error {
    use S3ErrorCode as C;
    let (code, msg) = match &e {
        CoreError::NoSuchBucket => (C::NoSuchBucket, "The specified bucket does not exist.".to_owned()),
        CoreError::BucketExists => (C::BucketAlreadyExists, "The requested bucket name is not available.".to_owned()),
        CoreError::BucketAlreadyOwnedByYou => (
            C::BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it.".to_owned(),
        ),
        CoreError::BucketNotEmpty => (C::BucketNotEmpty, "The bucket you tried to delete is not empty.".to_owned()),
        CoreError::InvalidBucketName(m) => (C::InvalidBucketName, format!("The specified bucket is not valid: {m}")),
        CoreError::NoSuchKey => (C::NoSuchKey, "The specified key does not exist.".to_owned()),
        CoreError::InvalidKey(m) => (C::InvalidArgument, format!("Invalid key: {m}")),
        CoreError::KeyTooLong => (C::KeyTooLongError, "Your key is too long (at most 1024 bytes).".to_owned()),
        CoreError::NoSuchUpload => (
            C::NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID might be invalid, or the upload might have been aborted or completed."
                .to_owned(),
        ),
        CoreError::InvalidPart(m) => (C::InvalidPart, format!("One or more of the specified parts could not be found or did not match: {m}")),
        CoreError::InvalidPartOrder => (C::InvalidPartOrder, "The list of parts was not in ascending order.".to_owned()),
        CoreError::EntityTooSmall { .. } => (C::EntityTooSmall, format!("Your proposed upload is smaller than the minimum allowed size: {e}")),
        CoreError::MissingParts(_) | CoreError::SizeMismatch { .. } => (C::InvalidPart, format!("{e}")),
        CoreError::BadDigest { .. } => (C::BadDigest, format!("{e}")),
        CoreError::Body(m) => return body_error(m),
        CoreError::RequestTimeout => (
            C::RequestTimeout,
            "Your socket connection to the server was not read from or written to within the timeout period."
                .to_owned(),
        ),
        CoreError::EntityTooLarge { .. } => {
            (C::EntityTooLarge, format!("Your proposed upload exceeds the maximum allowed size: {e}"))
        }
        CoreError::IncompleteBody => {
            (C::IncompleteBody, "You did not provide the number of bytes specified by the Content-Length HTTP header.".to_owned())
        }
        CoreError::PreconditionFailed => (C::PreconditionFailed, "At least one of the preconditions you specified did not hold.".to_owned()),
        CoreError::AccessDenied | CoreError::GrantInvalid(_) => (C::AccessDenied, "Access Denied".to_owned()),
        CoreError::NoSuchTenant | CoreError::NoSuchCredential => (C::InvalidAccessKeyId, format!("{e}")),
        CoreError::AlreadyExists => (C::InvalidRequest, "The destination name is already taken.".to_owned()),
        // Tree rules; S3 writes are not tree writes, so these reach S3 only from other paths.
        CoreError::NameConflict | CoreError::FolderNotEmpty | CoreError::InvalidMove(_) => {
            (C::InvalidRequest, format!("{e}"))
        }
        CoreError::NameTooLong { .. } => (C::KeyTooLongError, format!("{e}")),
        CoreError::SlowDown => (C::SlowDown, "Please reduce your request rate.".to_owned()),
        CoreError::QuotaExceeded(what) => {
            let mut err = S3Error::with_message(C::Custom("QuotaExceeded".into()), format!("The {what} quota of this account is used up."));
            err.set_status_code(http::StatusCode::FORBIDDEN);
            return err;
        }
        CoreError::InvalidRange => (C::InvalidRange, "The requested range is not satisfiable".to_owned()),
        CoreError::InvalidArgument(m) => (C::InvalidArgument, m.clone()),
        CoreError::InvalidRequest(m) => (C::InvalidRequest, m.clone()),
        // Resumable uploads' errors (tus, the IETF draft): S3 requests never meet them.
        CoreError::OffsetMismatch { .. }
        | CoreError::UploadExpired
        | CoreError::ChecksumMismatch
        | CoreError::UploadComplete => (C::InvalidRequest, format!("{e}")),
        CoreError::Unavailable(_) => {
            tracing::warn!(error = %e, "storage backend unavailable");
            (C::ServiceUnavailable, "A storage backend cannot be reached. Please try again.".to_owned())
        }
        CoreError::Io(_) | CoreError::Internal(_) => {
            tracing::error!(error = %e, "internal error");
            (C::InternalError, "We encountered an internal error. Please try again.".to_owned())
        }
    };
    S3Error::with_message(code, msg)
}

/// A failure of the request body stream. The verifying streams s3s puts in front of the body
/// (payload SHA-256, `aws-chunked` chunk signatures) keep their error types private, so they
/// are recognised by their messages; s3s is pinned to one version and the compatibility suite
/// checks each case.
fn body_error(message: &str) -> S3Error {
    if message.contains("Sha256Mismatch") {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
        e.set_status_code(http::StatusCode::BAD_REQUEST);
        return e;
    }
    if message.contains("SignatureMismatch") {
        return S3Error::with_message(
            S3ErrorCode::SignatureDoesNotMatch,
            "The chunk signature we calculated does not match the signature you provided.",
        );
    }
    if message.contains("FormatError") {
        return S3Error::with_message(S3ErrorCode::InvalidRequest, "The aws-chunked body is malformed.");
    }
    S3Error::with_message(
        S3ErrorCode::IncompleteBody,
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    )
}

/// `?` for core results inside S3 handlers.
pub trait OrS3<T> {
    fn s3(self) -> s3s::S3Result<T>;
}

impl<T> OrS3<T> for Result<T, CoreError> {
    fn s3(self) -> s3s::S3Result<T> {
        self.map_err(to_s3_error)
    }
}
