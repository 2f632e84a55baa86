//! CopyObject: the destination shares the source's content; no bytes are copied.

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
    let src = engine.head_object(p, &src_bucket, &src_key).await.s3()?;
    if let Some(ETagCondition::ETag(e)) = &input.copy_source_if_match {
        if e.value() != src.etag {
            return Err(s3_error!(PreconditionFailed));
        }
    }
    if let Some(ETagCondition::ETag(e)) = &input.copy_source_if_none_match {
        if e.value() == src.etag {
            return Err(s3_error!(PreconditionFailed));
        }
    }
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
