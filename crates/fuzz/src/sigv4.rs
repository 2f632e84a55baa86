//! AWS Signature Version 4 as a client computes it, for the harnesses that must get past
//! authentication: the header signature and the chain of `aws-chunked` chunk signatures.

use chuan_api_common::sign::hmac_sha256;
use sha2::{Digest as _, Sha256};

pub const REGION: &str = "us-east-1";
/// The signed headers of every request the harnesses sign.
const SIGNED: &str = "host;x-amz-content-sha256;x-amz-date";

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub use chuan_api_common::sign::aws_encode;

/// `x-amz-date` of now (`YYYYMMDDTHHMMSSZ`).
pub fn amz_date_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// A request's signing key and scope, and its header signature (the seed of a chunk chain).
pub struct Signed {
    key: Vec<u8>,
    pub date: String,
    pub scope: String,
    pub signature: String,
    pub authorization: String,
}

/// Signs `method path?query` (query already canonical: encoded and sorted) with the headers
/// `host`, `x-amz-content-sha256` and `x-amz-date`.
pub fn sign(ak: &str, sk: &str, method: &str, path: &str, query: &str, host: &str, content_sha: &str) -> Signed {
    let date = amz_date_now();
    let day = &date[..8];
    let canonical = format!(
        "{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{content_sha}\nx-amz-date:{date}\n\n{SIGNED}\n{content_sha}"
    );
    let scope = format!("{day}/{REGION}/s3/aws4_request");
    let sts = format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
    let key = chuan_api_common::sign::sigv4_signing_key(sk, day, REGION, "s3").to_vec();
    let signature = hex::encode(hmac_sha256(&key, sts.as_bytes()));
    let authorization =
        format!("AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders={SIGNED}, Signature={signature}");
    Signed { key, date, scope, signature, authorization }
}

impl Signed {
    /// `chunks` framed as a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body, each chunk signed over
    /// the previous signature, ending with the signed empty chunk.
    pub fn signed_chunks(&self, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = self.signature.clone();
        let empty = sha256_hex(b"");
        for chunk in chunks.iter().copied().filter(|c| !c.is_empty()).chain([&b""[..]]) {
            let sts = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{prev}\n{empty}\n{}",
                self.date,
                self.scope,
                sha256_hex(chunk)
            );
            prev = hex::encode(hmac_sha256(&self.key, sts.as_bytes()));
            out.extend_from_slice(format!("{:x};chunk-signature={prev}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

/// `chunks` framed as a `STREAMING-UNSIGNED-PAYLOAD-TRAILER` body ending with `trailer`
/// (`name:value` lines, or none).
pub fn unsigned_chunks(chunks: &[&[u8]], trailer: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks.iter().copied().filter(|c| !c.is_empty()) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    if let Some(t) = trailer {
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}
