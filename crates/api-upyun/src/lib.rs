//! The UpYun dialect (`upyun` 2.5.5): the REST API — `PUT`/`GET`/`HEAD`/`DELETE` on
//! `/<service>/<path>`, resumable sequential and parallel ("disorder") multipart through
//! `X-Upyun-Multi-*` headers, folders, text listings, copy/move, usage — and the form API.
//! A translator over the core engine: the service is a bucket, folders are keys ending in `/`.
//!
//! Operators are credentials scoped to one bucket, keyed by `MD5(password)` (what both the
//! client and the server sign with; the password itself is never stored). Both REST
//! signatures are accepted: `UPYUN op:base64(HMAC-SHA1)` (2.5.5) and the older
//! `UpYun op:md5hex(METHOD&URI&DATE&LENGTH&md5(password))` (2.4.2).
//! `rest.rs` has the object and folder operations, `multipart.rs` the uploads in parts,
//! `form.rs` the form API (operator-signed and the older secret-signed form), `block.rs` the
//! legacy `m0` block upload of `upyun` ≤ 2.4.2, `types.rs` content types from extensions.

mod block;
mod error;
mod form;
mod multipart;
mod rest;
mod types;

use chuan_api_common::{Body, RequestBody};
use chuan_core::store::{now_ms, CredentialKind};
use chuan_core::{CoreError, CredentialSpec, Engine, Principal, Scope};
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use md5::{Digest, Md5};
use std::sync::Arc;

use error::{UpyunError, UpyunResult};

pub type Resp = Response<Body>;

/// How far a request's `Date` may be from the server's clock (UpYun's own rule).
const MAX_CLOCK_SKEW_SECS: i64 = 30 * 60;

pub struct UpyunDialect {
    engine: Arc<Engine>,
}

#[derive(Debug, serde::Serialize)]
pub struct NewOperator {
    pub operator: String,
    pub bucket: String,
}

fn operator_key(op: &str) -> String {
    format!("upyun:{op}")
}

/// `Base64(HMAC-SHA1(MD5hex(password), string_to_sign))`.
pub fn sign(md5_password: &str, string_to_sign: &str) -> String {
    chuan_api_common::sign::hmac_sha1_base64(md5_password, string_to_sign)
}

/// A 302 to `url` with `query` appended (`?`, or `&` when the URL has a query already): how
/// the form API and the block upload answer a `return-url`. `url` passed
/// `chuan_core::check_callback_url` when the upload began, so it is a valid header.
pub(crate) fn redirect(url: &str, query: &str) -> Resp {
    let sep = if url.contains('?') { '&' } else { '?' };
    Response::builder()
        .status(StatusCode::FOUND)
        .header(http::header::LOCATION, format!("{url}{sep}{query}"))
        .body(chuan_api_common::empty())
        .unwrap_or_else(|_| Response::new(chuan_api_common::empty()))
}

/// The older REST signature (`upyun` ≤ 2.4.2): `md5hex(string_to_sign + "&" + md5hex(password))`
/// with `string_to_sign` = `METHOD&URI&DATE&LENGTH`.
pub fn legacy_sign(md5_password: &str, string_to_sign: &str) -> String {
    hex::encode(Md5::digest(format!("{string_to_sign}&{md5_password}").as_bytes()))
}

/// `(operator, signature)` of an `Authorization: UPYUN <operator>:<signature>` value (the REST
/// API's header and the form API's `authorization` field); the signature follows the last
/// `:`. `None` for anything else.
pub fn parse_authorization(value: &str) -> Option<(&str, &str)> {
    chuan_api_common::auth_scheme(value, "UPYUN")?.rsplit_once(':')
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    chuan_core::constant_time_eq(a.as_bytes(), b.as_bytes())
}

/// How the upyun SDKs encode: the path with `quote(path, safe='~/')` (`%20`, `%2B`), signed as
/// sent; forms urlencoded (`+` is a space); `X-Upyun-Copy-Source`/`-Move-Source` as UpYun's
/// own Go SDK sends them, `/<service>/` + the escaped path (decoded once here; the Python SDK
/// sends the path unescaped, which reads the same unless a name holds a literal `%XX`).
pub(crate) const WIRE: chuan_api_common::Wire = chuan_api_common::Wire::new(chuan_api_common::query::Plus::Space, &[]);

pub(crate) fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

fn error_response(e: &UpyunError) -> Resp {
    let id = hex::encode(rand::random::<[u8; 16]>());
    let mut r = Response::builder()
        .status(e.status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("x-request-id", id.as_str())
        .body(chuan_api_common::full(
            serde_json::to_vec(&serde_json::json!({"msg": e.msg, "code": e.code, "id": id})).unwrap_or_default(),
        ))
        .expect("valid response");
    if let Some(n) = e.next_part {
        r.headers_mut().insert("x-upyun-next-part-id", HeaderValue::from(n));
    }
    r
}

pub(crate) use chuan_api_common::parse_http_date;

impl UpyunDialect {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// Registers operator `op` of `tenant` for `bucket` (which the tenant must own), on the
    /// authority of `issuer` (the root): a credential scoped to that bucket, keyed by the MD5
    /// of the password.
    pub async fn register_operator(
        &self,
        issuer: &Principal,
        tenant: &str,
        bucket: &str,
        op: &str,
        password: &str,
    ) -> Result<NewOperator, CoreError> {
        if op.is_empty() || op.len() > 64 || !op.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(CoreError::InvalidArgument("operator names are 1-64 letters, digits, '-' or '_'".into()));
        }
        if password.len() < 8 {
            return Err(CoreError::InvalidArgument("the password must have at least 8 characters".into()));
        }
        let mut spec = CredentialSpec::new(tenant, CredentialKind::UpyunOperator);
        spec.access_key = Some(operator_key(op));
        spec.secret = Some(hex::encode(Md5::digest(password.as_bytes())));
        spec.scope = Some(Scope::bucket(bucket));
        self.engine.issue_credential(issuer, spec).await?;
        Ok(NewOperator { operator: op.to_owned(), bucket: bucket.to_owned() })
    }

    pub async fn handle(&self, req: Request<RequestBody>) -> Resp {
        match self.route(req).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        }
    }

    /// The operator's principal and signing key (MD5 of the password).
    pub(crate) async fn operator(&self, op: &str) -> UpyunResult<(String, Principal)> {
        self.engine.credential(&operator_key(op), &[CredentialKind::UpyunOperator]).await?.ok_or_else(UpyunError::sign)
    }

    async fn authenticate(&self, parts: &Parts) -> UpyunResult<Principal> {
        let auth = header(parts, "authorization").ok_or_else(UpyunError::sign)?;
        let (op, sig) = parse_authorization(auth).ok_or_else(UpyunError::sign)?;
        let date = header(parts, "date")
            .ok_or_else(|| UpyunError::new(StatusCode::UNAUTHORIZED, 40100002, "date header required"))?;
        let when = parse_http_date(date)
            .ok_or_else(|| UpyunError::new(StatusCode::UNAUTHORIZED, 40100002, "date format error"))?;
        if (now_ms() / 1000 - when).abs() > MAX_CLOCK_SKEW_SECS {
            return Err(UpyunError::new(StatusCode::UNAUTHORIZED, 40100003, "date offset error"));
        }
        // Signed over the request target exactly as sent.
        let uri = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut sts = format!("{}&{uri}&{date}", parts.method.as_str());
        if let Some(md5) = header(parts, "content-md5") {
            sts.push('&');
            sts.push_str(md5);
        }
        let (key, p) = self.operator(op).await?;
        let legacy = sig.len() == 32 && sig.bytes().all(|b| b.is_ascii_hexdigit());
        let want = if legacy {
            // 2.4.2: METHOD&URI&DATE&LENGTH&md5(password), MD5 hex; Content-MD5 not signed.
            let length = header(parts, "content-length").unwrap_or("0");
            legacy_sign(&key, &format!("{}&{uri}&{date}&{length}", parts.method.as_str()))
        } else {
            sign(&key, &sts)
        };
        if !constant_time_eq(&want, &sig.to_ascii_lowercase()) && !constant_time_eq(&want, sig) {
            return Err(UpyunError::sign());
        }
        Ok(p)
    }

    async fn route(&self, req: Request<RequestBody>) -> UpyunResult<Resp> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let rest = path.strip_prefix('/').unwrap_or(path);
        let (service, raw_key) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket = WIRE.path(service);
        let key = WIRE.path(raw_key);
        if bucket.is_empty() {
            return Err(UpyunError::new(StatusCode::NOT_FOUND, 40400002, "service not found"));
        }
        // The form APIs sign inside the form: the current one (multipart, `authorization`) and
        // the legacy block upload (urlencoded init/merge, multipart blocks with `signature`).
        if parts.method == http::Method::POST && header(&parts, "authorization").is_none() && key.is_empty() {
            let urlencoded =
                header(&parts, "content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
            if urlencoded {
                let raw = chuan_api_common::read_limited(body, 64 << 10)
                    .await
                    .map_err(|e| e.or_timeout(|_| UpyunError::bad("form too large")))?;
                let fields = WIRE.form(&raw).0;
                return Ok(self.block_form(&bucket, &fields).await);
            }
            return self.form_upload(&parts, &bucket, body).await;
        }
        let p = self.authenticate(&parts).await?;
        let q = parts.uri.query().unwrap_or("");
        match parts.method {
            http::Method::GET if key.is_empty() && q.split('&').any(|kv| kv == "usage") => {
                self.usage(&p, &bucket).await
            }
            http::Method::GET if key.is_empty() || key.ends_with('/') => self.list(&p, &parts, &bucket, &key).await,
            http::Method::GET => self.get_or_list(&p, &parts, &bucket, &key).await,
            http::Method::HEAD => self.get(&p, &bucket, &key, false, None).await,
            http::Method::PUT if header(&parts, "x-upyun-multi-stage").is_some() => {
                self.multipart(&p, &parts, &bucket, &key, body).await
            }
            http::Method::PUT if header(&parts, "x-upyun-copy-source").is_some() => {
                self.copy_or_move(&p, &parts, &bucket, &key, false).await
            }
            http::Method::PUT if header(&parts, "x-upyun-move-source").is_some() => {
                self.copy_or_move(&p, &parts, &bucket, &key, true).await
            }
            http::Method::PUT => self.put(&p, &parts, &bucket, &key, body).await,
            http::Method::POST if header(&parts, "folder").is_some_and(|f| f.eq_ignore_ascii_case("true")) => {
                self.mkdir(&p, &bucket, &key).await
            }
            http::Method::DELETE if header(&parts, "x-upyun-multi-uuid").is_some() => {
                self.cancel(&p, &parts, &bucket, &key).await
            }
            http::Method::DELETE => self.delete(&p, &bucket, &key).await,
            http::Method::PATCH => {
                let query = WIRE.query(Some(q));
                match query.get("metadata") {
                    Some(mode) => self.patch_metadata(&p, &parts, &bucket, &key, mode).await,
                    None => Err(UpyunError::bad("PATCH takes ?metadata=merge|replace|delete")),
                }
            }
            _ => Err(UpyunError::new(StatusCode::METHOD_NOT_ALLOWED, 40500001, "method not allowed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples_from_the_sdk() {
        // client-sdks.md §2.3: operator op, password password123, this date.
        let key = hex::encode(Md5::digest(b"password123"));
        assert_eq!(key, "482c811da5d5b4bc6d497ffa98491e38");
        let date = "Wed, 01 Nov 2023 00:00:00 GMT";
        assert_eq!(sign(&key, &format!("PUT&/mybucket/hello.txt&{date}")), "nb/IWz4K4IYbazbqX/e8TNP7M5Q=");
        assert_eq!(
            sign(&key, &format!("PUT&/mybucket/hello.txt&{date}&5eb63bbbe01eeed093cb22bb8f5acdc3")),
            "DyMaMpSbgaUVxIZYKseLfVf06TY="
        );
        assert_eq!(parse_http_date(date), Some(1_698_796_800));
        // rest_api.md's example of the older scheme: operator / password "password".
        let key = hex::encode(Md5::digest(b"password"));
        assert_eq!(
            legacy_sign(&key, "GET&/bucket/sub&Wed, 29 Oct 2014 02:26:58 GMT&0"),
            "03db45e2904663c5c9305a9c6ed62af3"
        );
    }
}
