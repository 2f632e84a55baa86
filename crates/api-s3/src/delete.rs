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
    // Deleting a missing key succeeds, as in S3.
    engine.delete_object(p, &req.input.bucket, &req.input.key).await.s3()?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
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
    let keys: Vec<String> = input.delete.objects.into_iter().map(|o| o.key).collect();
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (key, outcome) in engine.delete_objects(p, &input.bucket, keys).await.s3()? {
        match outcome {
            Ok(_) => {
                if !quiet {
                    deleted.push(DeletedObject { key: Some(key), ..Default::default() });
                }
            }
            Err(e) => {
                let err = crate::to_s3_error(e);
                errors.push(Error {
                    code: Some(err.code().as_str().to_owned()),
                    key: Some(key),
                    message: err.message().map(str::to_owned),
                    version_id: None,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
}
