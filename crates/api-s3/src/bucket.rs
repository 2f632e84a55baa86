//! Bucket operations.

use chuan_core::{CoreError, Engine, Principal};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

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
    let acl = crate::acl::requested(input.acl.as_ref().map(|a| a.as_str()), crate::acl::grant_headers!(bucket input))?;
    match engine.create_bucket_with(p, &input.bucket, region.as_deref(), acl.as_ref()).await {
        // S3's legacy us-east-1 rule: creating a bucket one already owns there succeeds and
        // changes nothing (other regions answer BucketAlreadyOwnedByYou). Where S3 would reset
        // the ACL, Chuan refuses a request for another ACL as a taken name (as RGW does), so a
        // retried create never silently opens or closes a bucket.
        Err(CoreError::BucketAlreadyOwnedByYou)
            if engine.check_bucket(p, &input.bucket).await.is_ok_and(|b| b.region == "us-east-1") =>
        {
            let current = engine.bucket_acl(p, &input.bucket).await.s3()?;
            let asked = match &acl {
                Some(spec) => engine.requested_acl(p, &input.bucket, "", spec).await.s3()?,
                None => chuan_core::owner_acl(p.tenant()),
            };
            if asked.grants != current.grants {
                return Err(crate::to_s3_error(CoreError::BucketExists));
            }
        }
        r => r.s3()?,
    }
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
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let input = req.input;
    let max = match input.max_buckets {
        None => usize::MAX,
        Some(n) if (1..=10_000).contains(&n) => n as usize,
        Some(_) => return Err(s3_error!(InvalidArgument, "max-buckets must be between 1 and 10000")),
    };
    let after = match input.continuation_token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Some(
            chuan_api_common::decode_token(t)
                .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
        ),
        None => None,
    };
    let prefix = input.prefix.clone().unwrap_or_default();
    let buckets = engine.list_buckets(p).await.s3()?;
    let mut page: Vec<_> = buckets
        .into_iter()
        .filter(|b| b.name.starts_with(&prefix) && after.as_ref().is_none_or(|a| b.name.as_str() > a.as_str()))
        .filter(|b| input.bucket_region.as_ref().is_none_or(|r| &b.region == r))
        .collect();
    let truncated = page.len() > max;
    page.truncate(max);
    let next = if truncated { page.last().map(|b| chuan_api_common::encode_token(&b.name)) } else { None };
    let list = page
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
        continuation_token: next,
        prefix: input.prefix,
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
