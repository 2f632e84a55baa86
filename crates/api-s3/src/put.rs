//! PutObject (and POST Object, which s3s delegates here after checking the policy).

use chuan_core::store::{ObjectMeta, WriteCondition};
use chuan_core::PutTarget;
use chuan_core::{Engine, Op, Principal};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::checksum::Claims;
use crate::error::OrS3;

pub(crate) fn object_meta(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
    metadata: Option<Metadata>,
) -> ObjectMeta {
    ObjectMeta {
        content_type,
        content_encoding: content_encoding.and_then(strip_aws_chunked),
        content_disposition,
        content_language,
        cache_control,
        expires: expires.and_then(|t| {
            let mut buf = Vec::new();
            t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
            String::from_utf8(buf).ok()
        }),
        user: metadata.map(|m| m.into_iter().collect()).unwrap_or_default(),
        ..Default::default()
    }
}

/// `aws-chunked` describes how the request body was framed, not the object: S3 drops it from
/// the stored Content-Encoding.
fn strip_aws_chunked(encoding: String) -> Option<String> {
    let kept: Vec<&str> = encoding
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// The condition of a conditional write (PutObject, CompleteMultipartUpload): `If-None-Match:
/// *` (create only) or `If-Match` (replace only that version). S3 answers an `If-Match` write
/// to a missing key 404 NoSuchKey, not 412; the commit still checks the condition atomically.
pub(crate) async fn write_condition(
    engine: &Engine,
    p: &Principal,
    bucket: &str,
    key: &str,
    if_none_match: &Option<ETagCondition>,
    if_match: &Option<ETagCondition>,
) -> S3Result<Option<WriteCondition>> {
    if let Some(ETagCondition::ETag(_)) = if_none_match {
        return Err(s3_error!(NotImplemented, "If-None-Match on writes takes only *"));
    }
    if if_match.is_some() {
        if let Err(chuan_core::CoreError::NoSuchKey) = engine.head_object(p, bucket, key).await {
            return Err(s3_error!(NoSuchKey, "The specified key does not exist."));
        }
    }
    Ok(match (if_none_match, if_match) {
        (Some(ETagCondition::Any), _) => Some(WriteCondition::Absent),
        (_, Some(ETagCondition::ETag(e))) => Some(WriteCondition::EtagIs(e.value().to_owned())),
        (_, Some(ETagCondition::Any)) => Some(WriteCondition::EtagIs("*".into())),
        _ => None,
    })
}

pub async fn put_object(
    engine: &Engine,
    p: &Principal,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let input = req.input;
    // Refuse before reading a byte of the body.
    chuan_core::names::validate_key(&input.key).map_err(crate::to_s3_error)?;
    engine.check_access(p, Op::Write, &input.bucket, &input.key).await.s3()?;
    let condition =
        write_condition(engine, p, &input.bucket, &input.key, &input.if_none_match, &input.if_match).await?;
    let acl = crate::acl::object_acl!(engine, p, input)?;
    let mut claims = Claims::new(
        input.content_md5,
        input.checksum_algorithm.as_ref().map(|a| a.as_str()),
        input.checksum_crc32,
        input.checksum_crc32c,
        input.checksum_crc64nvme,
        input.checksum_sha1,
        input.checksum_sha256,
    )?;
    let staged =
        crate::checksum::stage_verified(engine, p, input.body, input.content_length, &mut claims, req.trailing_headers)
            .await?;
    let mut meta = object_meta(
        input.content_type,
        input.content_encoding,
        input.content_disposition,
        input.content_language,
        input.cache_control,
        input.expires,
        input.metadata,
    );
    meta.checksum_algorithm = claims.algorithm().map(|a| a.name().to_owned());
    meta.acl = acl;
    let digests = staged.digests.clone();
    let target =
        PutTarget { bucket: input.bucket, key: input.key, meta, condition, tree: chuan_core::store::TreeRule::Flat };
    let rec = engine.commit_put(p, target, staged).await.s3()?;
    let mut out = PutObjectOutput { e_tag: Some(ETag::Strong(rec.etag)), ..Default::default() };
    crate::get::set_checksum(
        &mut out.checksum_crc32,
        &mut out.checksum_crc32c,
        &mut out.checksum_crc64nvme,
        &mut out.checksum_sha1,
        &mut out.checksum_sha256,
        claims.algorithm(),
        &digests,
    );
    // A single PUT's checksum is of the whole object.
    out.checksum_type = claims.algorithm().map(|_| ChecksumType::from_static(ChecksumType::FULL_OBJECT));
    Ok(S3Response::new(out))
}
