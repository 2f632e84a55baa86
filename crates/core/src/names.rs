//! Naming rules shared by every dialect.

use crate::error::{CoreError, CoreResult};

pub use chuan_store::MAX_KEY_BYTES;

/// Top-level path segments that belong to Chuan or to a dialect's fixed routes, so no
/// bucket may carry these names.
pub const RESERVED_BUCKETS: &[&str] = &["files", "v2", "adrive", "users", "api", "admin", "upload"];

/// Bucket names: 3–63 characters of `a-z 0-9 . -`, starting and ending with a letter or digit
/// (S3's rules, which are the strictest of the dialects'). A leading `_` is reserved for
/// `/_chuan/`, and [`RESERVED_BUCKETS`] for the dialects' routes.
pub fn validate_bucket(name: &str) -> CoreResult<()> {
    let bad = |why: &str| Err(CoreError::InvalidBucketName(format!("{name:?}: {why}")));
    if name.len() < 3 || name.len() > 63 {
        return bad("must be 3 to 63 characters long");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return bad("only lower-case letters, digits, '.' and '-' are allowed");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return bad("must start and end with a letter or digit");
    }
    if name.contains("..") {
        return bad("must not contain '..'");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("must not look like an IP address");
    }
    if RESERVED_BUCKETS.contains(&name) {
        return bad("this name is reserved for a protocol route");
    }
    Ok(())
}

/// Keys are opaque strings (they never become file paths: blobs are named by their hash),
/// but some are refused for every dialect's sake: empty keys, keys over 1,024 bytes, and
/// keys with NUL, which C-string clients cut short. Other control characters (`\n`, `\r`)
/// are stored, as S3 stores them; listings return them intact with `encoding-type=url`.
/// Longest stored header-like metadata value (a content type, a user metadata value), bytes.
pub const MAX_META_VALUE: usize = 8 << 10;

/// Checks the metadata an object is written with: every value that is served back as an HTTP
/// header (type, encoding, disposition, language, cache control, expiry, user metadata) must be
/// one (RFC 9110 §5.5: no control characters but tab) and at most [`MAX_META_VALUE`] bytes.
/// `InvalidArgument` otherwise, before anything is stored, so no stored object is unservable.
pub fn validate_meta(meta: &chuan_store::ObjectMeta) -> CoreResult<()> {
    let fixed = [
        ("content type", &meta.content_type),
        ("content encoding", &meta.content_encoding),
        ("content disposition", &meta.content_disposition),
        ("content language", &meta.content_language),
        ("cache control", &meta.cache_control),
        ("expires", &meta.expires),
    ];
    let values = fixed
        .iter()
        .filter_map(|(what, v)| v.as_deref().map(|v| (*what, v)))
        .chain(meta.user.values().map(|v| ("user metadata", v.as_str())));
    for (what, v) in values {
        if v.len() > MAX_META_VALUE {
            return Err(CoreError::InvalidArgument(format!("the {what} is longer than {MAX_META_VALUE} bytes")));
        }
        if v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(CoreError::InvalidArgument(format!("the {what} holds control characters")));
        }
    }
    Ok(())
}

pub fn validate_key(key: &str) -> CoreResult<()> {
    if key.is_empty() {
        return Err(CoreError::InvalidKey("the key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(CoreError::KeyTooLong);
    }
    if key.contains('\0') {
        return Err(CoreError::InvalidKey("NUL is not allowed in keys".into()));
    }
    Ok(())
}

pub use chuan_store::prefix_successor;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_rules() {
        assert!(validate_bucket("photos-2026").is_ok());
        assert!(validate_bucket("_chuan").is_err());
        assert!(validate_bucket("ab").is_err());
        assert!(validate_bucket("Upper").is_err());
        assert!(validate_bucket("adrive").is_err());
        assert!(validate_bucket("192.168.1.1").is_err());
        assert!(validate_bucket("a..b").is_err());
    }

    #[test]
    fn key_rules() {
        assert!(validate_key("../../etc/passwd").is_ok(), "keys are opaque, never paths");
        assert!(matches!(validate_key(&"k".repeat(1025)), Err(CoreError::KeyTooLong)));
        assert!(validate_key(&"k".repeat(1024)).is_ok());
        assert!(validate_key("a\0b").is_err());
        assert!(validate_key("line\nbreak\r").is_ok(), "S3 stores control characters");
        assert!(validate_key("").is_err());
    }

    #[test]
    fn successor_orders_after_every_extension() {
        let s = prefix_successor("photos/").unwrap();
        assert_eq!(s, "photos0");
        assert!("photos/\u{10FFFF}zzz" < s.as_str());
        assert_eq!(prefix_successor("a\u{10FFFF}").unwrap(), "b");
        assert_eq!(prefix_successor("\u{D7FF}").unwrap(), "\u{E000}");
        assert_eq!(prefix_successor(""), None);
    }
}
