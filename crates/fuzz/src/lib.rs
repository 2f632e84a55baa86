//! Chuan's fuzz targets, as plain functions of arbitrary bytes that must never panic, abort,
//! hang or leak.
//!
//! `fuzz/` (a cargo-fuzz project outside the workspace) runs each under libFuzzer; the
//! `corpus` test of this crate replays the committed corpora (`fuzz/corpus/<target>/`) in
//! every `cargo test`, so a crash found once stays fixed. The counts of the long runs and the
//! commands are in `fuzz/README.md`.
//!
//! | target | what it feeds |
//! |---|---|
//! | [`query`] | percent, query and form decoding (`chuan_api_common::query`) |
//! | [`form`] | the streaming `multipart/form-data` reader with its limits |
//! | [`http_fields`] | `Range`, HTTP dates, conditional-header dates, multipart boundaries |
//! | [`s3_xml`] | the S3 XML bodies Chuan takes (CompleteMultipartUpload, Delete, CreateBucketConfiguration) |
//! | [`auth_headers`] | each dialect's `Authorization` parser (UFile, UpYun, COS signatures with their time and scope checks, Aliyun Drive bearer, Basic) |
//! | [`s3_wire`] | s3s's S3 wire without an engine: SigV4 headers and presigned queries, signed and unsigned `aws-chunked` bodies with trailers, XML, POST Object forms, `Range` and conditional headers |
//! | [`requests`] | whole requests through the server's router into every dialect, unsigned or validly signed (SigV4 with plain, unsigned-trailer and signed aws-chunked bodies; UFile, UpYun, COS signatures; Aliyun Drive bearer; Basic for Chuan's own API), against a live engine |

mod requests;
mod s3_wire;
mod sigv4;

pub use requests::{requests, FuzzRequest};
pub use s3_wire::{s3_wire, WireInput};

use bytes::Bytes;
use chuan_api_common::form::{FormLimits, FormReader};
use chuan_api_common::query::{decode, Plus};
use chuan_api_common::{parse_http_date, parse_range, percent_decode, percent_encode, Query};

/// Percent, query and form decoding: every decoder on the same bytes, plus a round trip.
pub fn query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = percent_decode(&text);
    let _ = decode(&text, Plus::Space);
    let _ = decode(&text, Plus::Literal);
    let q = Query::parse(Some(&text), Plus::Space);
    let _ = q.get("a");
    let _ = Query::parse(Some(&text), Plus::Literal).has("b");
    let _ = Query::parse_form(data);
    let _ = chuan_api_common::query_param(Some(&text), "k");
    // Encoding then decoding gives the text back.
    assert_eq!(percent_decode(&percent_encode(&text)), text);
}

/// The streaming form reader over `data` as a body (boundary `fz`), in frames of varying size,
/// under small limits so every limit is reached.
pub fn form(data: &[u8]) {
    let (split, body) = match data.split_first() {
        Some((s, rest)) => (usize::from(*s).max(1), rest),
        None => (1, data),
    };
    let frames: Vec<Result<Bytes, chuan_api_common::BoxError>> =
        body.chunks(split).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let limits = FormLimits { max_fields: 8, max_field_bytes: 512, max_total_bytes: 2048 };
    let mut reader = FormReader::with_limits(futures::stream::iter(frames), "fz", limits);
    futures::executor::block_on(async {
        let mut i = 0;
        while let Ok(Some(field)) = reader.next_field().await {
            let _ = field.name();
            let _ = field.file_name();
            let _ = field.content_type();
            i += 1;
            if i % 2 == 0 {
                if reader.value(field).await.is_err() {
                    break;
                }
            } else if reader.finish().await.is_err() {
                break;
            }
        }
    });
}

/// `Range` headers against every size class, HTTP dates, and multipart boundaries.
pub fn http_fields(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for size in [0u64, 1, 7, 1 << 20, u64::MAX] {
        if let Ok(Some((start, end))) = parse_range(&text, size) {
            assert!(start < end && end <= size, "{text:?} on {size}: [{start}, {end})");
        }
        let b = http::Response::builder();
        if let Ok((_, start, end)) = chuan_api_common::with_range(b, Some(&text), size) {
            assert!(start <= end && end <= size);
        }
    }
    if let Some(secs) = parse_http_date(&text) {
        // A date that parses prints and parses back to the same second.
        let again = chuan_api_common::http_date(secs.saturating_mul(1000));
        if secs >= 0 && secs < 253_402_300_800 {
            assert_eq!(parse_http_date(&again), Some(secs), "{text:?} -> {again:?}");
        }
    }
    let _ = chuan_api_common::form::boundary(&text);
}

/// The XML bodies Chuan's S3 dialect takes, through s3s's deserializer.
pub fn s3_xml(data: &[u8]) {
    use s3s::dto::{CompletedMultipartUpload, CreateBucketConfiguration, Delete};
    use s3s::xml::{Deserialize, Deserializer};
    let _ = CompletedMultipartUpload::deserialize(&mut Deserializer::new(data));
    let _ = Delete::deserialize(&mut Deserializer::new(data));
    let _ = CreateBucketConfiguration::deserialize(&mut Deserializer::new(data));
}

/// Every dialect's `Authorization` parser on the text, and again on the bytes encoded the way
/// the scheme encodes (base64 for COS signatures and Basic), so the fuzzer reaches the field
/// parsing behind the encoding.
pub fn auth_headers(data: &[u8]) {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(data);
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    if let Some((public, sig)) = chuan_api_ufile::parse_header(&text) {
        let again = format!("UCloud {public}:{sig}");
        assert_eq!(chuan_api_ufile::parse_header(&again), Some((public, sig)), "{text:?}");
    }
    if let Some((op, sig)) = chuan_api_upyun::parse_authorization(&text) {
        let again = format!("UPYUN {op}:{sig}");
        assert_eq!(chuan_api_upyun::parse_authorization(&again), Some((op, sig)), "{text:?}");
    }
    for sign in [text.as_ref(), b64.as_str()] {
        if let Ok(s) = chuan_api_cos::Signature::parse(sign) {
            let _ = s.verify("secret");
            let _ = s.covers(&text);
            let _ = s.covers("/a/b");
            for now in [0, 1_700_000_000, i64::MAX] {
                let _ = s.check_time(now, true);
                let _ = s.check_time(now, false);
            }
            let _ = s.once_id();
        }
    }
    if let Ok(v) = http::HeaderValue::from_str(&text) {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, v);
        if let Some(token) = chuan_api_adrive::bearer(&headers) {
            assert!(!token.is_empty() && token.trim() == token);
        }
    }
    let _ = chuan_api_common::parse_basic(&text);
    if let Some((user, password)) = chuan_api_common::parse_basic(&format!("Basic {b64}")) {
        assert!(!user.contains(':'));
        assert_eq!(format!("{user}:{password}").as_bytes(), data);
    }
}
