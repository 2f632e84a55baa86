//! DeleteObject and DeleteObjects.

use chuan_core::{Engine, Principal};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::error::OrS3;

pub async fn delete_object(
    engine: &Engine,
    p: &Principal,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    crate::list::check_version(req.input.version_id.as_deref())?;
    // Deleting a missing key succeeds, as in S3.
    engine.delete_object(p, &req.input.bucket, &req.input.key).await.s3()?;
    Ok(S3Response::new(DeleteObjectOutput { version_id: req.input.version_id.clone(), ..Default::default() }))
}

pub async fn delete_objects(
    engine: &Engine,
    p: &Principal,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let input = req.input;
    let quiet = input.delete.quiet.unwrap_or(false);
    // The schema allows 1,000 keys; S3 answers more with MalformedXML.
    if input.delete.objects.len() > chuan_core::MAX_DELETE_BATCH {
        return Err(s3s::s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema: at most {} keys.",
            chuan_core::MAX_DELETE_BATCH
        ));
    }
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    let mut keys = Vec::new();
    let mut versions = std::collections::HashMap::new();
    for o in input.delete.objects {
        // Only the `null` version exists in an unversioned bucket.
        if crate::list::check_version(o.version_id.as_deref()).is_err() {
            errors.push(Error {
                code: Some("NoSuchVersion".to_owned()),
                key: Some(o.key),
                message: Some("The specified version does not exist.".to_owned()),
                version_id: o.version_id,
            });
            continue;
        }
        if let Some(v) = o.version_id {
            versions.insert(o.key.clone(), v);
        }
        keys.push(o.key);
    }
    for (key, outcome) in engine.delete_objects(p, &input.bucket, keys).await.s3()? {
        match outcome {
            Ok(_) => {
                if !quiet {
                    let version_id = versions.get(&key).cloned();
                    deleted.push(DeletedObject { key: Some(key), version_id, ..Default::default() });
                }
            }
            Err(e) => {
                let err = crate::to_s3_error(e);
                let version_id = versions.get(&key).cloned();
                errors.push(Error {
                    code: Some(err.code().as_str().to_owned()),
                    key: Some(key),
                    message: err.message().map(str::to_owned),
                    version_id,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
}
