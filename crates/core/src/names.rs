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
