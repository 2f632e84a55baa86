//! Verifying what the client claimed about the body against what the write path computed.

use base64::Engine as _;
use chuan_core::hash::ChecksumAlgorithm;
use chuan_core::store::Digests;
use chuan_core::{Engine, Principal, StageOptions, Staged};
use s3s::dto::StreamingBlob;
use s3s::{s3_error, S3Result};

use crate::error::OrS3;

/// The largest body of one PutObject or UploadPart: 5 GiB (S3 quotas and limits).
pub const MAX_OBJECT_SIZE: u64 = 5 << 30;

/// The digests a request asserts: `Content-MD5` and any `x-amz-checksum-*` value, from
/// headers or (for `aws-chunked` bodies) from trailers read after the body.
#[derive(Debug, Default)]
pub struct Claims {
    pub content_md5: Option<String>,
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
    /// `x-amz-checksum-algorithm` / `x-amz-sdk-checksum-algorithm`.
    pub algorithm: Option<ChecksumAlgorithm>,
}

impl Claims {
    pub fn new(
        content_md5: Option<String>,
        algorithm: Option<&str>,
        crc32: Option<String>,
        crc32c: Option<String>,
        crc64nvme: Option<String>,
        sha1: Option<String>,
        sha256: Option<String>,
    ) -> S3Result<Self> {
        let mut c = Claims { content_md5, ..Default::default() };
        if let Some(a) = algorithm {
            c.algorithm = Some(
                ChecksumAlgorithm::parse(a)
                    .ok_or_else(|| s3_error!(InvalidArgument, "unsupported checksum algorithm {a}"))?,
            );
        }
        for (alg, v) in [
            (ChecksumAlgorithm::Crc32, crc32),
            (ChecksumAlgorithm::Crc32c, crc32c),
            (ChecksumAlgorithm::Crc64Nvme, crc64nvme),
            (ChecksumAlgorithm::Sha1, sha1),
            (ChecksumAlgorithm::Sha256, sha256),
        ] {
            if let Some(v) = v {
                well_formed(alg, &v)?;
                c.checksums.push((alg, v.trim().to_owned()));
            }
        }
        Ok(c)
    }

    /// Adds values that arrived as trailers of an `aws-chunked` body.
    pub fn add_trailers(&mut self, trailers: Option<s3s::TrailingHeaders>) -> S3Result<()> {
        let Some(map) = trailers.and_then(|t| t.take()) else {
            return Ok(());
        };
        for alg in ChecksumAlgorithm::ALL {
            let name = format!("x-amz-checksum-{}", alg.name().to_ascii_lowercase());
            if let Some(v) = map.get(name.as_str()) {
                let v = v.to_str().map_err(|_| s3_error!(InvalidArgument, "invalid trailer {name}"))?;
                well_formed(alg, v)?;
                self.checksums.retain(|(a, _)| *a != alg);
                self.checksums.push((alg, v.trim().to_owned()));
            }
        }
        Ok(())
    }

    /// Whether the client named `alg` or sent a value of it (so the write path must compute it).
    pub fn names(&self, alg: ChecksumAlgorithm) -> bool {
        self.algorithm == Some(alg) || self.checksums.iter().any(|(a, _)| *a == alg)
    }

    /// The algorithm to remember for the object: the one the client named or sent.
    pub fn algorithm(&self) -> Option<ChecksumAlgorithm> {
        self.algorithm.or_else(|| self.checksums.first().map(|(a, _)| *a))
    }

    pub fn verify(&self, d: &Digests) -> S3Result<()> {
        if let Some(md5) = &self.content_md5 {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(md5.trim())
                .ok()
                .filter(|r| r.len() == 16)
                .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))?;
            if hex::encode(raw) != d.md5 {
                return Err(s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."));
            }
        }
        for (alg, claimed) in &self.checksums {
            if alg.encode(d) != claimed.trim() {
                return Err(s3_error!(
                    BadDigest,
                    "The {} you specified did not match the calculated checksum.",
                    format!("x-amz-checksum-{}", alg.name().to_ascii_lowercase())
                ));
            }
        }
        Ok(())
    }
}

/// A checksum value must be the base64 of a digest of its algorithm's size; S3 answers
/// 400 InvalidRequest to any other (a well-formed value that does not match is BadDigest).
pub(crate) fn well_formed(alg: ChecksumAlgorithm, v: &str) -> S3Result<()> {
    let len = match alg {
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
        ChecksumAlgorithm::Crc64Nvme => 8,
        ChecksumAlgorithm::Sha1 => 20,
        ChecksumAlgorithm::Sha256 => 32,
    };
    match base64::engine::general_purpose::STANDARD.decode(v.trim()) {
        Ok(raw) if raw.len() == len => Ok(()),
        _ => Err(s3_error!(
            InvalidRequest,
            "Value for x-amz-checksum-{} header is invalid.",
            alg.name().to_ascii_lowercase()
        )),
    }
}

/// The write path of PutObject and UploadPart: stream the body into a staged blob, then check
/// its length against `Content-Length` and its digests against every claim (headers and
/// trailers). Nothing is committed here; a failure drops the staged blob.
pub async fn stage_verified(
    engine: &Engine,
    p: &Principal,
    body: Option<StreamingBlob>,
    content_length: Option<i64>,
    claims: &mut Claims,
    trailers: Option<s3s::TrailingHeaders>,
) -> S3Result<Staged> {
    let body = body.ok_or_else(|| s3_error!(IncompleteBody))?;
    if content_length.is_some_and(|len| len as u64 > MAX_OBJECT_SIZE) {
        return Err(s3_error!(EntityTooLarge, "A single PUT or part holds at most {MAX_OBJECT_SIZE} bytes."));
    }
    let mut options = StageOptions::at_most(MAX_OBJECT_SIZE);
    if !claims.names(ChecksumAlgorithm::Sha1) {
        options = options.deferring_sha1(); // the answer and the ETag need no SHA-1
    }
    let mut staged = engine.stage_with(p, body, options).await.s3()?;
    if let Some(len) = content_length {
        if len >= 0 && len as u64 != staged.size {
            return Err(s3_error!(IncompleteBody, "The body is {} bytes; Content-Length said {len}.", staged.size));
        }
    }
    claims.add_trailers(trailers)?;
    if claims.names(ChecksumAlgorithm::Sha1) {
        staged.ensure_sha1().await.s3()?; // a SHA-1 that came only as a trailer
    }
    if let Err(e) = claims.verify(&staged.digests) {
        engine.metrics.uploads_rejected.inc();
        return Err(e);
    }
    Ok(staged)
}

/// Where an object's S3 checksum type is kept (`ObjectMeta::attrs`).
pub const CHECKSUM_TYPE_ATTR: &str = "s3-checksum-type";

/// The checksum type of a multipart upload (and of the object it makes): what the client
/// asked for, else S3's default for the algorithm (FULL_OBJECT for CRC64NVME, COMPOSITE for
/// the others). CRC64NVME has no composite form and the SHA digests no full-object one.
pub fn upload_checksum_type(alg: ChecksumAlgorithm, asked: Option<&str>) -> S3Result<&'static str> {
    use s3s::dto::ChecksumType as T;
    match asked {
        None if alg == ChecksumAlgorithm::Crc64Nvme => Ok(T::FULL_OBJECT),
        None => Ok(T::COMPOSITE),
        Some(T::FULL_OBJECT) if alg.combines() => Ok(T::FULL_OBJECT),
        Some(T::COMPOSITE) if alg != ChecksumAlgorithm::Crc64Nvme => Ok(T::COMPOSITE),
        Some(t) => Err(s3_error!(
            InvalidRequest,
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            t,
            alg.name().to_ascii_lowercase()
        )),
    }
}

/// The checksum of an object made of `parts` (digests and sizes) under `alg` and `ty`:
/// combined CRCs for FULL_OBJECT, the checksum of the part checksums for COMPOSITE.
pub fn multipart_checksum<'a>(
    alg: ChecksumAlgorithm,
    ty: &str,
    parts: impl Iterator<Item = (&'a Digests, u64)> + Clone,
) -> String {
    if ty == s3s::dto::ChecksumType::FULL_OBJECT {
        if let Some(v) = alg.full_object(parts.clone()) {
            return v;
        }
    }
    alg.composite(parts.map(|(d, _)| d))
}
