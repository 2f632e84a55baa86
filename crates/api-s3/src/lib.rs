//! The S3 dialect: a translator from the S3 wire protocol to the core [`Engine`].
//!
//! Wire parsing, SigV4 (header, presigned, `aws-chunked` streaming with signed or unsigned
//! trailers), POST-policy checks and XML rendering come from the `s3s` crate; this crate maps
//! each operation onto engine calls and maps [`CoreError`]s back onto S3 error codes.
//! It keeps no state of its own.
//!
//! Files follow the operation groups: `bucket.rs`, `put.rs` (PutObject, POST Object),
//! `get.rs` (Get/Head with ranges and conditionals), `list.rs` (ListObjects v1/v2),
//! `copy.rs`, `delete.rs`, `multipart.rs`, with `checksum.rs` for digest verification and
//! `error.rs` for the error mapping.

mod acl;
mod bucket;
mod checksum;
mod copy;
mod cors;
mod delete;
mod error;
mod get;
mod list;
mod multipart;
mod post;
mod prepare;
mod put;
mod service;

use chuan_core::{Engine, Principal, KEY_PAIRS};
use s3s::auth::{Credentials, S3Auth, SecretKey};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use std::sync::Arc;

/// How S3 clients encode (SigV4's canonical URI encoding, RFC 3986: a space is `%20`, a `+` in
/// a query is a plus). s3s decodes what the operations read; this reads what the request
/// preparation looks at before s3s (presigned parameters, POST policies' URLs).
pub(crate) const WIRE: chuan_api_common::Wire =
    chuan_api_common::Wire::new(chuan_api_common::query::Plus::Literal, &[]);

pub use error::to_s3_error;
pub use service::{s3s_config, S3Dialect};

/// The S3 API over one engine.
#[derive(Clone)]
pub struct ChuanS3 {
    engine: Arc<Engine>,
}

impl ChuanS3 {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// The principal behind a request (s3s has already verified any signature; unsigned
    /// requests got past [`EngineAccess`] only to read, and the engine allows that for public
    /// buckets alone).
    async fn principal(&self, creds: &Option<Credentials>) -> S3Result<Principal> {
        let Some(creds) = creds.as_ref() else { return Ok(Principal::anonymous()) };
        match self.engine.credential(&creds.access_key, KEY_PAIRS).await.map_err(to_s3_error)? {
            Some((_, p)) => Ok(p),
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}

/// Looks up the secret of an access key for s3s's SigV4 verification.
pub struct EngineAuth(pub Arc<Engine>);

#[async_trait::async_trait]
impl S3Auth for EngineAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.credential(access_key, KEY_PAIRS).await.map_err(to_s3_error)? {
            Some((secret, _)) => Ok(SecretKey::from(secret)),
            None => Err(s3_error!(InvalidAccessKeyId, "the access key does not exist")),
        }
    }
}

/// s3s's access hook: every request passes to the engine, which authorizes it (signed ones
/// as their tenant, unsigned ones as the anonymous principal).
pub struct EngineAccess;

#[async_trait::async_trait]
impl s3s::access::S3Access for EngineAccess {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        // Unsigned requests reach the engine as the anonymous principal, which may do what
        // ACLs grant to everyone and nothing else; account-level operations refuse it there.
        let _ = cx;
        Ok(())
    }
}

/// Every S3 operation goes through here: the principal is resolved, then the operation module
/// runs (the engine authorizes and meters inside each call).
macro_rules! delegate {
    ($($op:ident($input:ty) -> $output:ty => $module:ident;)*) => {
        #[async_trait::async_trait]
        impl S3 for ChuanS3 {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    let p = self.principal(&req.credentials).await?;
                    $module::$op(&self.engine, &p, req).await
                }
            )*
        }
    };
}

delegate! {
    create_bucket(CreateBucketInput) -> CreateBucketOutput => bucket;
    head_bucket(HeadBucketInput) -> HeadBucketOutput => bucket;
    delete_bucket(DeleteBucketInput) -> DeleteBucketOutput => bucket;
    list_buckets(ListBucketsInput) -> ListBucketsOutput => bucket;
    get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput => bucket;
    put_object(PutObjectInput) -> PutObjectOutput => put;
    get_object(GetObjectInput) -> GetObjectOutput => get;
    head_object(HeadObjectInput) -> HeadObjectOutput => get;
    get_object_attributes(GetObjectAttributesInput) -> GetObjectAttributesOutput => get;
    delete_object(DeleteObjectInput) -> DeleteObjectOutput => delete;
    delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput => delete;
    copy_object(CopyObjectInput) -> CopyObjectOutput => copy;
    list_objects(ListObjectsInput) -> ListObjectsOutput => list;
    list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output => list;
    list_object_versions(ListObjectVersionsInput) -> ListObjectVersionsOutput => list;
    create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput => multipart;
    upload_part(UploadPartInput) -> UploadPartOutput => multipart;
    upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput => multipart;
    complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput => multipart;
    abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput => multipart;
    list_parts(ListPartsInput) -> ListPartsOutput => multipart;
    list_multipart_uploads(ListMultipartUploadsInput) -> ListMultipartUploadsOutput => multipart;
    get_bucket_acl(GetBucketAclInput) -> GetBucketAclOutput => acl;
    put_bucket_acl(PutBucketAclInput) -> PutBucketAclOutput => acl;
    get_object_acl(GetObjectAclInput) -> GetObjectAclOutput => acl;
    put_object_acl(PutObjectAclInput) -> PutObjectAclOutput => acl;
    get_bucket_cors(GetBucketCorsInput) -> GetBucketCorsOutput => cors;
    put_bucket_cors(PutBucketCorsInput) -> PutBucketCorsOutput => cors;
    delete_bucket_cors(DeleteBucketCorsInput) -> DeleteBucketCorsOutput => cors;
}

/// Milliseconds since the epoch as an s3s timestamp.
pub(crate) fn timestamp(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}
