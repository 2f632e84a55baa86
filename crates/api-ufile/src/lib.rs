//! The UFile dialect (UCloud UFile / Inspur OSS, the `ufile` SDK 3.2.7–3.2.11): a translator
//! over the core engine.
//!
//! Addressing as the SDK does it: the bucket is the first label of `Host` (absolute-form
//! requests from `HTTP_PROXY` clients are normalised by the dispatcher), the key is the decoded
//! path. Objects answer with the UFile ETag (SHA-1 of 4 MiB blocks), a digest of the content,
//! so UploadHit finds content first stored through any protocol — but only the caller's own
//! tenant's content: UploadHit has no proof-of-possession step.
//!
//! `router.rs` parses every operation first; `auth.rs` verifies signatures; `object.rs`
//! has put/post/get/head/delete/copy/rename/opmeta/uploadhit; `multipart.rs` the 4 MiB block
//! uploads; `list.rs` the two listings; `error.rs` the `{RetCode, ErrMsg}` answers.

mod auth;
mod error;
mod list;
mod mgmt;
mod multipart;
mod object;
mod router;

pub use auth::parse_header;
pub use mgmt::{Prices, PRICES_SETTING};

use chuan_api_common::Body;
use chuan_api_common::RequestBody;
use chuan_core::store::ObjectRecord;
use chuan_core::{Engine, Principal, KEY_PAIRS};
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use std::sync::Arc;

use error::{UfileError, UfileResult};
use router::{Endpoint, Query};

pub type Resp = Response<Body>;

pub struct UfileDialect {
    engine: Arc<Engine>,
}

/// What every operation needs: the parsed request and who is asking.
pub(crate) struct Ctx {
    pub parts: Parts,
    pub bucket: String,
    pub key: String,
    pub query: Query,
    pub principal: Principal,
}

/// `(public key, signature)` of an `Authorization` header, if there is one.
fn header_auth(parts: &Parts) -> UfileResult<Option<(String, String)>> {
    match parts.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(value) => auth::parse_header(value).map(Some).ok_or_else(UfileError::no_auth),
        None => Ok(None),
    }
}

/// `METHOD\nContent-MD5\nContent-Type\nDate\n<x-ucloud-* headers>/bucket/key[listobjects]`.
fn string_to_sign(parts: &Parts, bucket: &str, key: &str, q: &Query, endpoint: &Endpoint) -> String {
    let mut ucloud: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-ucloud-"))
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").trim().to_owned()))
        .collect();
    ucloud.sort();
    let canonical: String = ucloud.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let mut sts = format!(
        "{}\n{}\n{}\n{}\n{canonical}/{bucket}/{key}",
        parts.method.as_str(),
        header(parts, "content-md5"),
        header(parts, "content-type"),
        header(parts, "date"),
    );
    if *endpoint == Endpoint::ListObjects {
        sts.push_str(&format!(
            "\nlistobjects\ndelimiter:{}\nmarker:{}\nmax-keys:{}\nprefix:{}",
            q.get("delimiter").unwrap_or(""),
            q.get("marker").unwrap_or(""),
            q.get("max-keys").unwrap_or(""),
            q.get("prefix").unwrap_or("")
        ));
    }
    sts
}

/// The bucket named by the first label of `Host` (port stripped).
pub fn bucket_of_host(host: &str) -> Option<&str> {
    let name = host
        .rsplit_once(':')
        .map(|(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
        .unwrap_or(host);
    let (first, rest) = name.split_once('.')?;
    (!first.is_empty() && !rest.is_empty()).then_some(first)
}

fn header<'a>(parts: &'a Parts, name: &str) -> &'a str {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

pub(crate) fn json(status: StatusCode, v: &serde_json::Value) -> Resp {
    chuan_api_common::json(status, v)
}

pub(crate) fn empty(status: StatusCode) -> http::response::Builder {
    Response::builder().status(status)
}

pub(crate) fn error_response(e: &UfileError) -> Resp {
    let mut r = json(e.status, &serde_json::json!({"RetCode": e.code, "ErrMsg": e.message}));
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        r.headers_mut().insert("x-sessionid", v);
    }
    r
}

impl UfileDialect {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    pub async fn handle(&self, req: Request<RequestBody>) -> Resp {
        match self.route(req).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        }
    }

    async fn route(&self, req: Request<RequestBody>) -> UfileResult<Resp> {
        let (parts, body) = req.into_parts();
        let host = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_owned();
        let bucket = bucket_of_host(&host)
            .ok_or_else(|| UfileError::bad_request("the bucket must be the first label of the Host name"))?
            .to_owned();
        let key = router::WIRE.path(parts.uri.path().trim_start_matches('/'));
        let query = router::parse_query(parts.uri.query());
        let endpoint = router::parse(&parts.method, &key, &query, &parts.headers)?;
        // A form upload carries its signature in the form: verified while reading it.
        if endpoint == Endpoint::PostFile {
            return self.post_file(parts, bucket, body).await;
        }
        let resource_key = match &endpoint {
            Endpoint::UploadHit { file_name, .. } => file_name.clone(),
            Endpoint::PrefixFileList | Endpoint::ListObjects | Endpoint::ListParts { .. } => String::new(),
            _ => key.clone(),
        };
        let principal = self.authenticate(&parts, &bucket, &resource_key, &query, &endpoint).await?;
        let ctx = Ctx { parts, bucket, key, query, principal };
        match endpoint {
            Endpoint::PutFile => self.put_file(ctx, body).await,
            Endpoint::Copy { source } => self.copy(ctx, &source).await,
            Endpoint::Rename { new_key, force } => self.rename(ctx, &new_key, force).await,
            Endpoint::Restore | Endpoint::StorageClass => self.touch(ctx).await,
            Endpoint::UploadHit { hash, file_name, size } => self.upload_hit(ctx, &hash, &file_name, size).await,
            Endpoint::GetFile => self.get_file(ctx, true).await,
            Endpoint::HeadFile => self.get_file(ctx, false).await,
            Endpoint::DeleteFile => self.delete_file(ctx).await,
            Endpoint::OpMeta => self.op_meta(ctx, body).await,
            Endpoint::InitMultipart => self.init_multipart(ctx).await,
            Endpoint::UploadPart { upload_id, part } => self.upload_part(ctx, &upload_id, part, body).await,
            Endpoint::UploadPartCopy { upload_id, part, source } => {
                self.upload_part_copy(ctx, &upload_id, part, &source).await
            }
            Endpoint::FinishMultipart { upload_id, new_key } => {
                self.finish_multipart(ctx, &upload_id, new_key, body).await
            }
            Endpoint::AbortMultipart { upload_id } => self.abort_multipart(ctx, &upload_id).await,
            Endpoint::ListParts { upload_id } => self.list_parts(ctx, &upload_id).await,
            Endpoint::PrefixFileList => self.prefix_file_list(ctx).await,
            Endpoint::ListObjects => self.list_objects(ctx).await,
            Endpoint::PostFile => unreachable!("answered above"),
        }
    }

    /// The principal of a signed (header or presigned) request, or anonymous for an unsigned
    /// read (which the engine allows for public buckets and objects only).
    async fn authenticate(
        &self,
        parts: &Parts,
        bucket: &str,
        key: &str,
        q: &Query,
        endpoint: &Endpoint,
    ) -> UfileResult<Principal> {
        let method = parts.method.as_str();
        if let Some((public, sig)) = header_auth(parts)? {
            let sts = string_to_sign(parts, bucket, key, q, endpoint);
            return self.verify(&public, &sig, &sts).await;
        }
        if let (Some(public), Some(expires), Some(sig)) =
            (q.get("UCloudPublicKey"), q.get("Expires"), q.get("Signature").map(str::to_owned))
        {
            let sts = format!("{method}\n\n\n{expires}\n/{bucket}/{key}");
            let p = self.verify(public, &sig, &sts).await?;
            let expires: i64 = expires.parse().map_err(|_| UfileError::bad_request("Expires must be a number"))?;
            if chuan_core::store::now_ms() / 1000 > expires {
                return Err(UfileError::new(StatusCode::FORBIDDEN, -148660, "signature expired"));
            }
            return Ok(p);
        }
        // Unsigned reads: the engine lets anonymous callers read public data only.
        if endpoint.is_public_read() {
            return Ok(Principal::anonymous());
        }
        Err(UfileError::no_auth())
    }

    async fn verify(&self, public: &str, sig: &str, string_to_sign: &str) -> UfileResult<Principal> {
        let (secret, p) = self.engine.credential(public, KEY_PAIRS).await?.ok_or_else(UfileError::signature)?;
        if !chuan_core::constant_time_eq(auth::sign(&secret, string_to_sign).as_bytes(), sig.as_bytes()) {
            return Err(UfileError::signature());
        }
        Ok(p)
    }

    /// The UFile ETag of an object's content (computed now if the background job has not).
    pub(crate) async fn ufile_etag(&self, rec: &ObjectRecord) -> UfileResult<String> {
        let content = self.engine.content_of(rec).await?;
        match content.ufile_etag {
            Some(e) => Ok(e),
            None => Ok(self.engine.full_digests(&content).await?.1),
        }
    }
}

/// Compile-time guard: the dispatcher spawns this future, so it must stay `Send` (generic
/// `Into<BoxError>` bounds in async helpers have broken that before).
#[allow(dead_code)]
fn assert_send(d: &UfileDialect, r: Request<RequestBody>) {
    fn is_send<T: Send>(_: T) {}
    is_send(d.handle(r));
}
