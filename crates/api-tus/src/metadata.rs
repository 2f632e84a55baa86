//! `Upload-Metadata` (tus 1.0 §Upload-Metadata): comma-separated pairs of a key and an
//! optional Base64 value; keys are non-empty, unique, without spaces or commas.
//!
//! What Chuan reads from it: `bucket` (required), the object key from `key`, else `filename`
//! (what tus-js-client and Uppy send), the content type from `filetype`, `contentType` or
//! `type`, the whole content's digest from `checksum` (`<md5|sha1|sha256> <Base64 digest>`,
//! for an instant upload); every other pair becomes user metadata.

use base64::Engine as _;
use chuan_core::store::ObjectMeta;
use chuan_core::Claim;

/// What a creation's metadata says.
#[derive(Debug, Clone, Default)]
pub struct UploadMetadata {
    pub bucket: String,
    pub key: String,
    pub meta: ObjectMeta,
    pub claim: Option<Claim>,
}

/// The pairs of an `Upload-Metadata` value, values decoded; `Err` with what is wrong.
pub fn pairs(raw: &str) -> Result<Vec<(String, Option<Vec<u8>>)>, String> {
    let mut out: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    for item in raw.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err("Upload-Metadata has an empty pair".into());
        }
        let (key, value) = match item.split_once(' ') {
            Some((k, v)) => (k, Some(v.trim())),
            None => (item, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) || !key.is_ascii() {
            return Err(format!("Upload-Metadata key {key:?} is not a plain ASCII word"));
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err(format!("Upload-Metadata names {key:?} twice"));
        }
        let value = match value {
            Some(v) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(|_| format!("Upload-Metadata value of {key:?} is not Base64"))?,
            ),
            None => None,
        };
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

fn text(key: &str, v: &Option<Vec<u8>>) -> Result<String, String> {
    let bytes = v.as_deref().unwrap_or_default();
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("Upload-Metadata value of {key:?} is not UTF-8"))
}

/// Reads a creation's metadata (see the module doc). `Err` with what is wrong or missing.
pub fn parse(raw: Option<&str>) -> Result<UploadMetadata, String> {
    let pairs = match raw.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => pairs(r)?,
        None => Vec::new(),
    };
    let mut m = UploadMetadata::default();
    let (mut key, mut filename) = (None, None);
    for (k, v) in &pairs {
        match k.as_str() {
            "bucket" => m.bucket = text(k, v)?,
            "key" => key = Some(text(k, v)?),
            "filename" => filename = Some(text(k, v)?),
            "filetype" | "contentType" | "type" => {
                let t = text(k, v)?;
                if !t.is_empty() {
                    m.meta.content_type = Some(t);
                }
            }
            "checksum" => m.claim = Some(claim(&text(k, v)?)?),
            _ => {
                m.meta.user.insert(k.to_ascii_lowercase(), text(k, v)?);
            }
        }
    }
    if m.bucket.is_empty() {
        return Err("Upload-Metadata must name the bucket (`bucket`)".into());
    }
    m.key = key
        .or(filename)
        .filter(|k| !k.is_empty())
        .ok_or("Upload-Metadata must name the object (`key` or `filename`)")?;
    Ok(m)
}

/// `<algorithm> <Base64 digest>` → a whole-content claim.
fn claim(v: &str) -> Result<Claim, String> {
    let (algo, b64) = v.split_once(' ').ok_or("checksum metadata is `<md5|sha1|sha256> <Base64 digest>`")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| "checksum metadata: the digest is not Base64".to_owned())?;
    let hex = hex::encode(&raw);
    match (algo, raw.len()) {
        ("md5", 16) => Ok(Claim::Md5(hex)),
        ("sha1", 20) => Ok(Claim::Sha1(hex)),
        ("sha256", 32) => Ok(Claim::Sha256(hex)),
        _ => Err(format!("checksum metadata: unsupported algorithm or digest length ({algo})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn reads_what_tus_clients_send() {
        let raw =
            format!("bucket {},filename {},filetype {},is_confidential", b64("b"), b64("a/x.txt"), b64("text/plain"));
        let m = parse(Some(&raw)).unwrap();
        assert_eq!((m.bucket.as_str(), m.key.as_str()), ("b", "a/x.txt"));
        assert_eq!(m.meta.content_type.as_deref(), Some("text/plain"));
        assert_eq!(m.meta.user.get("is_confidential").map(String::as_str), Some(""));
        let with_key = format!("bucket {},filename {},key {}", b64("b"), b64("x"), b64("k/y"));
        assert_eq!(parse(Some(&with_key)).unwrap().key, "k/y");
    }

    #[test]
    fn refuses_malformed_metadata() {
        for bad in [
            format!("bucket {},bucket {}", b64("a"), b64("b")),
            format!("bucket {},,key {}", b64("a"), b64("k")),
            format!("bucket {}, key %%%", b64("a")),
            format!("key {}", b64("k")),
            format!("bucket {}", b64("b")),
            format!("bucket {},key {},checksum {}", b64("b"), b64("k"), b64("crc32 AAAA")),
        ] {
            assert!(parse(Some(&bad)).is_err(), "{bad}");
        }
        assert!(parse(None).is_err());
    }
}
