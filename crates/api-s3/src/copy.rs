//! CopyObject: the destination shares the source's content; no bytes are copied.

use chuan_core::store::ObjectRecord;
use chuan_core::{Engine, Principal, PutTarget};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::error::OrS3;
use crate::put::object_meta;
use crate::timestamp;

pub(crate) fn source(copy_source: &CopySource) -> S3Result<(String, String)> {
    match copy_source {
        CopySource::Bucket { bucket, key, .. } => Ok((bucket.to_string(), key.to_string())),
        _ => Err(s3_error!(NotImplemented, "access point copy sources are not supported")),
    }
}

/// The source record of a CopyObject or UploadPartCopy `$input`, if `$p` may read it and its
/// `x-amz-copy-source-if-*` conditions hold.
macro_rules! checked_source {
    ($engine:expr, $p:expr, $bucket:expr, $key:expr, $input:expr) => {{
        let src = $engine.head_object($p, $bucket, $key).await.s3()?;
        $crate::copy::check_source_conditions(
            &src,
            &$input.copy_source_if_match,
            &$input.copy_source_if_none_match,
            &$input.copy_source_if_modified_since,
            &$input.copy_source_if_unmodified_since,
        )?;
        src
    }};
}
pub(crate) use checked_source;

/// The `x-amz-copy-source-if-*` conditions of CopyObject and UploadPartCopy, as S3 applies
/// them: a true `if-match` overrides a false `if-unmodified-since`, a false
/// `if-none-match` overrides a true `if-modified-since`; any failure is 412.
pub(crate) fn check_source_conditions(
    src: &ObjectRecord,
    if_match: &Option<ETagCondition>,
    if_none_match: &Option<ETagCondition>,
    if_modified_since: &Option<Timestamp>,
    if_unmodified_since: &Option<Timestamp>,
) -> S3Result<()> {
    let modified = src.modified_ms / 1000;
    let secs = |t: &Timestamp| time::OffsetDateTime::from(t.clone()).unix_timestamp();
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == src.etag,
    };
    let failed = || Err(s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold"));
    match if_match {
        Some(c) if !matches(c) => return failed(),
        Some(_) => {}
        None => {
            if if_unmodified_since.as_ref().is_some_and(|t| modified > secs(t)) {
                return failed();
            }
        }
    }
    match if_none_match {
        Some(c) if matches(c) => return failed(),
        Some(_) => {}
        None => {
            if if_modified_since.as_ref().is_some_and(|t| modified <= secs(t)) {
                return failed();
            }
        }
    }
    Ok(())
}

pub async fn copy_object(
    engine: &Engine,
    p: &Principal,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let input = req.input;
    let (src_bucket, src_key) = source(&input.copy_source)?;
    let replace = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    if src_bucket == input.bucket && src_key == input.key && !replace {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let src = checked_source!(engine, p, &src_bucket, &src_key, input);
    let mut meta = object_meta(
        input.content_type,
        input.content_encoding,
        input.content_disposition,
        input.content_language,
        input.cache_control,
        input.expires,
        input.metadata,
    );
    meta.checksum_algorithm = src.meta.checksum_algorithm.clone();
    meta.acl = crate::acl::object_acl!(engine, p, input)?;
    let target = PutTarget {
        bucket: input.bucket,
        key: input.key,
        meta,
        condition: None,
        tree: chuan_core::store::TreeRule::Flat,
    };
    let rec = engine.copy_object(p, &src_bucket, &src_key, target, replace).await.s3()?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(rec.etag)),
            last_modified: Some(timestamp(rec.modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}
