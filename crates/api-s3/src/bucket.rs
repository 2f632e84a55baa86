//! Bucket operations.

use chuan_core::{Engine, Principal};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::error::OrS3;
use crate::timestamp;

pub async fn create_bucket(
    engine: &Engine,
    p: &Principal,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let input = req.input;
    let region = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .map(|l| l.as_str().to_owned());
    engine.create_bucket(p, &input.bucket, region.as_deref()).await.s3()?;
    Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{}", input.bucket)) }))
}

pub async fn head_bucket(
    engine: &Engine,
    p: &Principal,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let b = engine.check_bucket(p, &req.input.bucket).await.s3()?;
    Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(b.region), ..Default::default() }))
}

pub async fn delete_bucket(
    engine: &Engine,
    p: &Principal,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    engine.delete_bucket(p, &req.input.bucket).await.s3()?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub async fn list_buckets(
    engine: &Engine,
    p: &Principal,
    _req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let buckets = engine.list_buckets(p).await.s3()?;
    let list = buckets
        .into_iter()
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp(b.created_ms)),
            bucket_region: Some(b.region),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(list),
        owner: Some(Owner { display_name: Some(p.tenant().to_owned()), id: Some(p.tenant().to_owned()) }),
        ..Default::default()
    }))
}

pub async fn get_bucket_location(
    engine: &Engine,
    p: &Principal,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let b = engine.check_bucket(p, &req.input.bucket).await.s3()?;
    // S3 answers an empty LocationConstraint for us-east-1.
    let location = (b.region != "us-east-1").then(|| BucketLocationConstraint::from(b.region));
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint: location }))
}
