//! GetObject and HeadObject: ranges, conditional requests, response overrides, checksums.

use chuan_core::hash::ChecksumAlgorithm;
use chuan_core::store::{ContentRecord, Digests, ObjectRecord};
use chuan_core::{Engine, Principal};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::error::OrS3;
use crate::timestamp;

/// Sets the one checksum field of `algorithm` (full-object digests only).
pub(crate) fn set_checksum(
    crc32: &mut Option<String>,
    crc32c: &mut Option<String>,
    crc64nvme: &mut Option<String>,
    sha1: &mut Option<String>,
    sha256: &mut Option<String>,
    algorithm: Option<ChecksumAlgorithm>,
    d: &Digests,
) {
    let Some(alg) = algorithm else { return };
    let slot = match alg {
        ChecksumAlgorithm::Crc32 => crc32,
        ChecksumAlgorithm::Crc32c => crc32c,
        ChecksumAlgorithm::Crc64Nvme => crc64nvme,
        ChecksumAlgorithm::Sha1 => sha1,
        ChecksumAlgorithm::Sha256 => sha256,
    };
    *slot = Some(alg.encode(d));
}

/// The checksum S3 reports for an object with `ChecksumMode: ENABLED`: the algorithm used at
/// upload (CRC64NVME when none was); full-object for objects not uploaded in parts and for
/// multipart uploads (one part included) of that type (combined from the parts' CRCs), composite (`<checksum>-<parts>`)
/// otherwise.
pub(crate) fn object_checksum(
    rec: &ObjectRecord,
    content: &ContentRecord,
) -> Option<(ChecksumAlgorithm, String, ChecksumType)> {
    let alg = rec
        .meta
        .checksum_algorithm
        .as_deref()
        .and_then(ChecksumAlgorithm::parse)
        .unwrap_or(ChecksumAlgorithm::Crc64Nvme);
    if parts_count(&rec.etag, content.extents.len()).is_none() {
        let d = content.known_digests()?;
        return Some((alg, alg.encode(d), ChecksumType::from_static(ChecksumType::FULL_OBJECT)));
    }
    let ty = match rec.meta.attrs.get(crate::checksum::CHECKSUM_TYPE_ATTR) {
        Some(t) if t == ChecksumType::COMPOSITE => ChecksumType::COMPOSITE,
        Some(_) => ChecksumType::FULL_OBJECT,
        None if alg == ChecksumAlgorithm::Crc64Nvme => ChecksumType::FULL_OBJECT,
        None => ChecksumType::COMPOSITE,
    };
    let value = crate::checksum::multipart_checksum(alg, ty, content.extents.iter().map(|e| (&e.digests, e.size)));
    Some((alg, value, ChecksumType::from_static(ty)))
}

struct Conditions<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
}

fn secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

fn etag_matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

/// RFC 7232 evaluation order, as S3 applies it.
fn check_conditions(rec: &ObjectRecord, c: &Conditions<'_>) -> S3Result<()> {
    let modified = rec.modified_ms / 1000;
    if let Some(m) = c.if_match {
        if !etag_matches(m, &rec.etag) {
            return Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"));
        }
    } else if let Some(t) = c.if_unmodified_since {
        if modified > secs(t) {
            return Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"));
        }
    }
    let not_modified = match (c.if_none_match, c.if_modified_since) {
        (Some(m), _) => etag_matches(m, &rec.etag),
        (None, Some(t)) => modified <= secs(t),
        (None, None) => false,
    };
    if not_modified {
        // A 304 carries the validators of what the client holds (RFC 9110 §15.4.5).
        let mut err = s3_error!(NotModified);
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", rec.etag)) {
            headers.insert(http::header::ETAG, v);
        }
        let mut date = Vec::new();
        if timestamp(rec.modified_ms).format(TimestampFormat::HttpDate, &mut date).is_ok() {
            if let Ok(v) = http::HeaderValue::from_bytes(&date) {
                headers.insert(http::header::LAST_MODIFIED, v);
            }
        }
        err.set_headers(headers);
        return Err(err);
    }
    Ok(())
}

fn expires(meta: &chuan_core::store::ObjectMeta) -> Option<Timestamp> {
    meta.expires.as_deref().and_then(|e| Timestamp::parse(TimestampFormat::HttpDate, e).ok())
}

fn user_metadata(rec: &ObjectRecord) -> Option<Metadata> {
    (!rec.meta.user.is_empty()).then(|| rec.meta.user.clone().into_iter().collect())
}

const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// `x-amz-mp-parts-count`: the parts of a multipart object (its ETag ends in `-<parts>`,
/// one-part uploads included); none for other objects. Answered only to requests that name a
/// `partNumber`, as S3 does.
fn parts_count(etag: &str, extents: usize) -> Option<i32> {
    match etag.rsplit_once('-').and_then(|(_, n)| n.parse::<i32>().ok()) {
        Some(n) => Some(n),
        None => (extents > 1).then_some(extents as i32),
    }
}

/// GetObjectOutput and HeadObjectOutput carry the same object headers under the same field
/// names; this fills them from the record.
macro_rules! object_headers {
    ($out:ty, $rec:expr, $content:expr, { $($field:ident: $value:expr),* $(,)? }) => {
        <$out>::default().with(|o: &mut $out| {
            o.accept_ranges = Some("bytes".into());
            o.e_tag = Some(ETag::Strong($rec.etag.clone()));
            o.last_modified = Some(timestamp($rec.modified_ms));
            o.content_type = Some($rec.meta.content_type.clone().unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()));
            o.content_encoding = $rec.meta.content_encoding.clone();
            o.content_disposition = $rec.meta.content_disposition.clone();
            o.content_language = $rec.meta.content_language.clone();
            o.cache_control = $rec.meta.cache_control.clone();
            o.expires = expires(&$rec.meta);
            o.metadata = user_metadata(&$rec);
            $(o.$field = $value;)*
        })
    };
}

/// Fills the checksum fields of an output when the client asked with `ChecksumMode: ENABLED`
/// (never for a partial range, as S3).
macro_rules! checksum_fields {
    ($out:expr, $mode:expr, $whole:expr, $rec:expr, $content:expr) => {
        if $whole && $mode.as_ref().is_some_and(|m: &ChecksumMode| m.as_str() == ChecksumMode::ENABLED) {
            if let Some((alg, value, ty)) = object_checksum(&$rec, &$content) {
                let slot = match alg {
                    ChecksumAlgorithm::Crc32 => &mut $out.checksum_crc32,
                    ChecksumAlgorithm::Crc32c => &mut $out.checksum_crc32c,
                    ChecksumAlgorithm::Crc64Nvme => &mut $out.checksum_crc64nvme,
                    ChecksumAlgorithm::Sha1 => &mut $out.checksum_sha1,
                    ChecksumAlgorithm::Sha256 => &mut $out.checksum_sha256,
                };
                *slot = Some(value);
                $out.checksum_type = Some(ty);
            }
        }
    };
}

trait With: Sized {
    fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
impl<T> With for T {}

/// The byte range a request selects: `[start, end)` and its `Content-Range`; a
/// `partNumber` selects that part of a multipart object (part 1 of any other object is the
/// whole of it), with S3's `InvalidPart` past the last part.
fn select_range(
    range: &Option<Range>,
    part_number: Option<i32>,
    content: &ContentRecord,
) -> S3Result<(u64, u64, Option<String>)> {
    let size = content.size;
    if let Some(n) = part_number {
        if range.is_some() {
            return Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter"));
        }
        if !(1..=10_000).contains(&n) {
            return Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"));
        }
        let n = n as usize;
        if content.extents.len() <= 1 {
            if n != 1 {
                return Err(s3_error!(InvalidPart, "The requested partnumber is not satisfiable"));
            }
            // The whole object, answered as the ranged read of its one part.
            return Ok((0, size, (size > 0).then(|| format!("bytes 0-{}/{size}", size - 1))));
        }
        let extent = content
            .extents
            .get(n - 1)
            .ok_or_else(|| s3_error!(InvalidPart, "The requested partnumber is not satisfiable"))?;
        let start: u64 = content.extents[..n - 1].iter().map(|e| e.size).sum();
        let end = start + extent.size;
        let content_range = (end > start).then(|| format!("bytes {start}-{}/{size}", end - 1));
        return Ok((start, end, content_range));
    }
    match range {
        None => Ok((0, size, None)),
        Some(r) => {
            let range = r.check(size).map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))?;
            if range.is_empty() {
                // A suffix range of an empty object (RFC 9110 §14.1.1 calls it satisfiable):
                // nothing a `Content-Range` can name, so the whole, empty, object with 200.
                return Ok((0, size, None));
            }
            Ok((range.start, range.end, Some(format!("bytes {}-{}/{}", range.start, range.end - 1, size))))
        }
    }
}

pub async fn get_object(
    engine: &Engine,
    p: &Principal,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = &req.input;
    crate::list::check_version(input.version_id.as_deref())?;
    let (rec, content) = engine.object_for_read(p, &input.bucket, &input.key).await.s3()?;
    check_conditions(
        &rec,
        &Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        },
    )?;
    let (start, end, content_range) = select_range(&input.range, input.part_number, &content)?;
    let body = StreamingBlob::wrap(engine.open_read(p, &rec, &content, start, end).await.s3()?);
    let mut out = object_headers!(GetObjectOutput, rec, content, {
        body: Some(body),
        content_length: Some((end - start) as i64),
        content_range: content_range,
        parts_count: input.part_number.and_then(|_| parts_count(&rec.etag, content.extents.len())),
    });
    checksum_fields!(out, input.checksum_mode, start == 0 && end == content.size, rec, content);
    Ok(S3Response::new(out))
}

pub async fn head_object(
    engine: &Engine,
    p: &Principal,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = &req.input;
    crate::list::check_version(input.version_id.as_deref())?;
    let rec = engine.head_object(p, &input.bucket, &input.key).await.s3()?;
    check_conditions(
        &rec,
        &Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        },
    )?;
    let content = engine.content_of(&rec).await.s3()?;
    let (start, end, content_range) = select_range(&input.range, input.part_number, &content)?;
    let mut out = object_headers!(HeadObjectOutput, rec, content, {
        content_length: Some((end - start) as i64),
        content_range: content_range,
        parts_count: input.part_number.and_then(|_| parts_count(&rec.etag, content.extents.len())),
    });
    checksum_fields!(out, input.checksum_mode, start == 0 && end == content.size, rec, content);
    // A ranged HEAD answers 206 as the GET would; s3s does not take a status from a
    // HeadObject output, so `service.rs` sets it from the `Content-Range` filled here.
    Ok(S3Response::new(out))
}

/// GetObjectAttributes: the attributes asked for (`ETag`, `Checksum`, `ObjectParts`,
/// `StorageClass`, `ObjectSize`); parts of a multipart object are paged like ListParts.
pub async fn get_object_attributes(
    engine: &Engine,
    p: &Principal,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let input = &req.input;
    let mut wanted = Vec::new();
    for a in &input.object_attributes {
        for name in a.as_str().split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                ObjectAttributes::ETAG
                | ObjectAttributes::CHECKSUM
                | ObjectAttributes::OBJECT_PARTS
                | ObjectAttributes::STORAGE_CLASS
                | ObjectAttributes::OBJECT_SIZE => wanted.push(name.to_owned()),
                other => return Err(s3_error!(InvalidArgument, "Invalid attribute name specified: {other}")),
            }
        }
    }
    if wanted.is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty"
        ));
    }
    let wants = |n: &str| wanted.iter().any(|w| w == n);
    let rec = engine.head_object(p, &input.bucket, &input.key).await.s3()?;
    let content = engine.content_of(&rec).await.s3()?;
    let mut out = GetObjectAttributesOutput { last_modified: Some(timestamp(rec.modified_ms)), ..Default::default() };
    if wants(ObjectAttributes::ETAG) {
        out.e_tag = Some(ETag::Strong(rec.etag.clone()));
    }
    if wants(ObjectAttributes::OBJECT_SIZE) {
        out.object_size = Some(content.size as i64);
    }
    if wants(ObjectAttributes::STORAGE_CLASS) {
        out.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
    }
    let alg = rec.meta.checksum_algorithm.as_deref().and_then(ChecksumAlgorithm::parse);
    if wants(ObjectAttributes::CHECKSUM) {
        if let Some((alg, value, ty)) = object_checksum(&rec, &content) {
            let mut c = Checksum { checksum_type: Some(ty), ..Default::default() };
            let slot = match alg {
                ChecksumAlgorithm::Crc32 => &mut c.checksum_crc32,
                ChecksumAlgorithm::Crc32c => &mut c.checksum_crc32c,
                ChecksumAlgorithm::Crc64Nvme => &mut c.checksum_crc64nvme,
                ChecksumAlgorithm::Sha1 => &mut c.checksum_sha1,
                ChecksumAlgorithm::Sha256 => &mut c.checksum_sha256,
            };
            *slot = Some(value);
            out.checksum = Some(c);
        }
    }
    if wants(ObjectAttributes::OBJECT_PARTS) && content.extents.len() > 1 {
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let marker = input.part_number_marker.unwrap_or(0).max(0) as usize;
        let total = content.extents.len();
        let page: Vec<ObjectPart> = content
            .extents
            .iter()
            .enumerate()
            .skip(marker)
            .take(max)
            .map(|(i, e)| {
                let mut part =
                    ObjectPart { part_number: Some(i as i32 + 1), size: Some(e.size as i64), ..Default::default() };
                set_checksum(
                    &mut part.checksum_crc32,
                    &mut part.checksum_crc32c,
                    &mut part.checksum_crc64nvme,
                    &mut part.checksum_sha1,
                    &mut part.checksum_sha256,
                    alg,
                    &e.digests,
                );
                part
            })
            .collect();
        let last = marker + page.len();
        let truncated = last < total;
        out.object_parts = Some(GetObjectAttributesParts {
            is_truncated: Some(truncated),
            max_parts: Some(max as i32),
            next_part_number_marker: truncated.then_some(last as i32),
            part_number_marker: input.part_number_marker,
            parts: Some(page),
            total_parts_count: Some(total as i32),
        });
    }
    Ok(S3Response::new(out))
}
