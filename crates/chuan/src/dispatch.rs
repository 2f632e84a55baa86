//! Routing each request to the dialect that speaks it.
//!
//! One listener serves every protocol. The order of the tests matters:
//! 0. A GET/HEAD without credentials on `<bucket>-<appid>.<host>`, where the appid is a
//!    tenant's and the bucket that tenant's, is a Tencent COS download.
//! 1. `/_chuan/tus/` and `/_chuan/resumable/` are resumable uploads (tus, the IETF draft);
//!    the rest of `/_chuan/...` is Chuan's own (health, metrics, admin); no bucket may start with `_`, so
//!    `PUT /_chuan` still reaches S3 and is refused there as an invalid bucket name.
//! 2. The `Authorization` scheme names the dialect when it is unambiguous
//!    (`UCloud`/`Inspur` → UFile, `UPYUN` → UpYun, `Bearer` → Aliyun Drive).
//! 3. Reserved top-level paths (`/files/v1|v2/` Tencent COS, `/v2/`, `/adrive/`, `/users/` Aliyun
//!    Drive, `/api/v1/` IoT), which the core refuses as bucket names.
//! 4. Everything else is S3 (SigV4 headers or query, POST policy forms, path or virtual-host).
//!
//! Requests in absolute form (`PUT http://host/key`, sent by clients behind `HTTP_PROXY`) are
//! first normalised to origin form with the authority moved into `Host`.

use chuan_core::Engine;
use http::{HeaderValue, Request, Response, StatusCode, Uri};

use chuan_api_common::RequestBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;

use crate::admin;

pub struct State {
    pub engine: Arc<Engine>,
    pub s3: chuan_api_s3::S3Dialect,
    pub adrive: chuan_api_adrive::AdriveDialect,
    pub ufile: chuan_api_ufile::UfileDialect,
    pub iot: chuan_api_iot::IotDialect,
    pub upyun: chuan_api_upyun::UpyunDialect,
    pub cos: chuan_api_cos::CosDialect,
    pub tus: chuan_api_tus::TusDialect,
    /// The S3 dialect's virtual-host base domains (other hosts name UFile buckets).
    pub s3_domains: Vec<String>,
    /// What every request body must deliver while the server waits for it.
    pub body_rule: crate::limits::BodyRule,
    /// A bearer token that may read `/_chuan/metrics` (besides the root key pair).
    pub metrics_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Chuan,
    /// Resumable uploads: tus (`/_chuan/tus/`) and the IETF draft (`/_chuan/resumable/`).
    Tus,
    S3,
    Adrive,
    Ufile,
    /// UFile's management API (`/?Action=...`).
    UfileManagement,
    Iot,
    Upyun,
    /// Tencent COS JSON API v4 (`/files/v2/`) and v3 (`/files/v1/`).
    Cos,
    /// A form POST to `<bucket>.<S3 domain>/`: S3 POST Object or UFile PostFile, told apart
    /// by the form itself.
    FormPost,
}

pub fn classify(uri: &Uri, headers: &http::HeaderMap, s3_domains: &[String]) -> Dialect {
    let path = uri.path();
    if chuan_api_tus::is_resumable_path(path) {
        return Dialect::Tus;
    }
    if path.starts_with("/_chuan/") {
        return Dialect::Chuan;
    }
    if let Some(auth) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        // Schemes compare without regard to case (RFC 9110 §11.1), as every dialect parses them.
        let auth = auth.trim_start();
        let (scheme, rest) = auth.split_once([' ', '\t']).unwrap_or(("", auth));
        let is = |name: &str| scheme.eq_ignore_ascii_case(name);
        if is("AWS4-HMAC-SHA256") || is("AWS") {
            return Dialect::S3;
        }
        // UFile signs `UCloud pub:sig` (Inspur's fork the same); the IoT SDK sends its upload
        // tokens as `Ucloud <token>`, exactly so spelled, a token without `:`. Anything else
        // in these schemes is UFile's to answer (malformed signatures included).
        if is("UCloud") || is("Inspur") {
            return if scheme == "Ucloud" && !rest.contains(':') { Dialect::Iot } else { Dialect::Ufile };
        }
        if is("UPYUN") {
            return Dialect::Upyun;
        }
        if is("Bearer") {
            return Dialect::Adrive;
        }
    }
    let query = uri.query().unwrap_or("");
    if (path == "/" || path == "/uhost/") && query.split('&').any(|kv| kv.starts_with("Action=")) {
        return Dialect::UfileManagement;
    }
    if query.contains("UCloudPublicKey=") {
        return Dialect::Ufile;
    }
    if query.contains("X-Amz-") || query.contains("AWSAccessKeyId=") {
        return Dialect::S3;
    }
    if path.starts_with("/api/v1/") {
        return Dialect::Iot;
    }
    if path.starts_with("/files/v1/") || path.starts_with("/files/v2/") {
        return Dialect::Cos;
    }
    // Aliyun Drive: aligo sends the raw token as `Authorization`, so the path decides.
    if ["/v2/", "/v3/", "/adrive/", "/users/", "/token/"].iter().any(|p| path.starts_with(p)) {
        return Dialect::Adrive;
    }
    // `<bucket>.<domain>` outside the S3 base domains: UFile's bucket hosts (form uploads,
    // public-bucket reads).
    let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if is_bucket_host(host, s3_domains) {
        return Dialect::Ufile;
    }
    let is_form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
    if is_form && headers.get(http::header::AUTHORIZATION).is_none() {
        return Dialect::FormPost;
    }
    // UpYun's legacy block upload: urlencoded init and merge on `/<bucket>/`.
    let urlencoded = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if urlencoded
        && headers.get(http::header::AUTHORIZATION).is_none()
        && path.len() > 2
        && path.ends_with('/')
        && path[1..path.len() - 1].find('/').is_none()
    {
        return Dialect::Upyun;
    }
    Dialect::S3
}

/// The name of the first part of a form, once its headers have arrived.
fn first_form_field(peeked: &[u8]) -> Option<&[u8]> {
    let at = peeked.windows(6).position(|w| w == b"name=\"")? + 6;
    let len = peeked[at..].iter().position(|b| *b == b'"')?;
    Some(&peeked[at..at + len])
}

/// Fields an S3 POST Object form starts with (boto3 puts `key` first; browsers vary).
fn is_s3_form_field(name: &[u8]) -> bool {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    name.starts_with("x-amz-")
        || [
            // A form that starts with its file is no UFile form (the UFile SDK starts with
            // `FileName`); S3 answers it (a form without `key` first).
            "file",
            "key",
            "policy",
            "acl",
            "awsaccesskeyid",
            "signature",
            "success_action_status",
            "success_action_redirect",
            "redirect",
            "content-type",
            "cache-control",
            "content-disposition",
            "content-encoding",
            "expires",
            "tagging",
            "bucket",
        ]
        .contains(&name.as_str())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

fn has_first_form_field(peeked: &[u8]) -> bool {
    first_form_field(peeked).is_some()
}

/// Routes a form POST by its first field: an S3 POST Object form starts with one of S3's
/// fields (`key`, `policy`, `x-amz-*`...); anything else (the UFile SDK starts with
/// `FileName`) is a UFile form. At most 8 KiB is read ahead, then replayed to the dialect.
async fn form_post(state: &State, req: Request<RequestBody>) -> Response<chuan_api_common::Body> {
    let (parts, body) = req.into_parts();
    let (peeked, rest) = match chuan_api_common::peek(body, 8 << 10, has_first_form_field).await {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "form body failed while routing");
            // Before its first field no protocol is known: plain HTTP answers.
            let (status, text) = if chuan_core::is_stalled(e.as_ref()) {
                (StatusCode::REQUEST_TIMEOUT, "the request body made too little progress and was cut off\n")
            } else {
                (StatusCode::BAD_REQUEST, "unreadable request body\n")
            };
            return Response::builder().status(status).body(chuan_api_common::full(text)).expect("valid response");
        }
    };
    // UpYun: the REST form API carries `authorization: UPYUN ...`; the legacy block upload a
    // `policy` and `signature` but never S3's mandatory `key`.
    // S3 forms name their signer (`AWSAccessKeyId`, `x-amz-credential`), which UpYun's never do.
    let s3_signer = contains_ignore_case(&peeked, b"name=\"awsaccesskeyid\"")
        || contains_ignore_case(&peeked, b"name=\"x-amz-credential\"");
    let upyun = (contains(&peeked, b"name=\"authorization\"") && contains_ignore_case(&peeked, b"UPYUN "))
        || (contains(&peeked, b"name=\"signature\"")
            && contains(&peeked, b"name=\"policy\"")
            && !contains(&peeked, b"name=\"key\"")
            && !s3_signer);
    let ufile = !upyun && !first_form_field(&peeked).is_some_and(is_s3_form_field);
    let body = chuan_api_common::replay(peeked, rest);
    let req = Request::from_parts(parts, body);
    if upyun {
        state.upyun.handle(req).await
    } else if ufile {
        state.ufile.handle(req).await
    } else {
        state.s3.handle_body(req.map(s3s::Body::http_body_unsync)).await.map(chuan_api_common::boxed)
    }
}

/// A host name of at least two labels that is not an IP address, not `localhost` and not
/// under one of the S3 dialect's virtual-host domains.
fn is_bucket_host(host: &str, s3_domains: &[String]) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    if name.is_empty() || name.parse::<std::net::IpAddr>().is_ok() || name.starts_with('[') || !name.contains('.') {
        return false;
    }
    !s3_domains.iter().any(|d| name == d || name.ends_with(&format!(".{d}")))
}

/// A Tencent COS download (`GET <bucket>-<appid>.<host>/<path>`): an unsigned-by-S3 read on
/// a host whose first label names a bucket of a known appid (checked in the MetaStore, so an
/// S3 bucket that merely looks like `<name>-<digits>` stays S3's).
async fn cos_download(
    state: &State,
    method: &http::Method,
    uri: &Uri,
    headers: &http::HeaderMap,
) -> Option<(String, String)> {
    if !matches!(*method, http::Method::GET | http::Method::HEAD)
        || uri.path().starts_with("/_chuan/")
        || headers.contains_key(http::header::AUTHORIZATION)
        || uri.query().is_some_and(|q| q.contains("X-Amz-") || q.contains("AWSAccessKeyId="))
    {
        return None;
    }
    let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok())?;
    chuan_api_cos::download_host(host)?;
    state.cos.download_target(host).await
}

/// Moves an absolute-form target's authority into `Host` and keeps only path and query.
fn normalise_target<B>(req: &mut Request<B>) {
    if req.uri().authority().is_none() {
        return;
    }
    let authority = req.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
    let pq = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    if let Ok(v) = HeaderValue::from_str(&authority) {
        req.headers_mut().insert(http::header::HOST, v);
    }
    if let Ok(uri) = pq.parse() {
        *req.uri_mut() = uri;
    }
}

/// Serves one request off the wire: its body held to the progress rule, whichever dialect
/// reads it.
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<chuan_api_common::Body>, std::convert::Infallible> {
    let metrics = state.engine.metrics.clone();
    let req = req.map(|b| crate::limits::TimedBody::new(b, state.body_rule).counted(metrics).boxed_unsync());
    Ok(route(&state, req).await)
}

/// Routes one request to the dialect that speaks it and returns that dialect's answer.
pub async fn route(state: &State, mut req: Request<RequestBody>) -> Response<chuan_api_common::Body> {
    state.engine.metrics.http_requests.inc();
    normalise_target(&mut req);
    let has_body = chuan_api_common::has_body(req.headers());
    let console = req.uri().path() == "/_chuan/console" || req.uri().path().starts_with(crate::console::BASE);
    if let Some((bucket, appid)) = cos_download(state, req.method(), req.uri(), req.headers()).await {
        let mut resp = state.cos.download(req, &bucket, &appid).await;
        sandbox_active_content(&mut resp);
        return resp;
    }
    let resp = match classify(req.uri(), req.headers(), &state.s3_domains) {
        // The native instant-upload API is called from browsers on other origins too (token
        // management and the account are not: only the console, on this origin).
        Dialect::Chuan if req.uri().path().starts_with("/_chuan/v1/instant/") => match state.tus.cors_preflight(&req) {
            Some(r) => r,
            None => {
                let origin = req.headers().get(http::header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_owned);
                let method = req.method().as_str().to_owned();
                state.tus.with_cors(origin.as_deref(), &method, admin::handle(state, req).await)
            }
        },
        Dialect::Chuan => admin::handle(state, req).await,
        Dialect::Tus => state.tus.handle(req).await,
        Dialect::S3 => state.s3.handle(req).await.map(chuan_api_common::boxed),
        Dialect::Adrive => state.adrive.handle(req).await,
        Dialect::Ufile => state.ufile.handle(req).await,
        Dialect::Iot => state.iot.handle(req).await,
        Dialect::Upyun => state.upyun.handle(req).await,
        Dialect::UfileManagement => state.ufile.handle_management(req).await,
        Dialect::FormPost => form_post(state, req).await,
        Dialect::Cos => state.cos.handle(req).await,
    };
    let mut resp = resp;
    // An error answered before the body was read (often with `Expect: 100-continue` never
    // granted) leaves the client unsure whether to send the body; the next request on the
    // connection can then be misread. Closing the connection removes the ambiguity.
    if has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        resp.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    if !console {
        sandbox_active_content(&mut resp);
    }
    resp
}

/// Keeps what tenants store from running as this server's origin, where the web console
/// keeps its session and its copies of pending uploads: every answer outside the console is
/// `nosniff` (a browser renders a body only as the type it is served with), and gets
/// `Content-Security-Policy: sandbox` (rendered in an opaque origin with no scripts, forms or
/// plugins) unless its `Content-Type` is one plain type a browser never runs scripts in
/// ([`passive_type`]). Fails closed: a missing, empty, non-ASCII or comma-separated type (a
/// browser takes the last of a list, RFC 9110 §8.3 aside) is sandboxed. A tenant who wants to
/// host a working web page serves it from a host of its own (a CDN or a reverse proxy that
/// drops the header in front of a public bucket).
fn sandbox_active_content<B>(resp: &mut Response<B>) {
    let headers = resp.headers_mut();
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    let passive = {
        let mut types = headers.get_all(http::header::CONTENT_TYPE).iter();
        match (types.next(), types.next()) {
            (Some(ct), None) => passive_type(ct.as_bytes()),
            _ => false,
        }
    };
    if !passive {
        headers.insert(http::header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
    }
}

/// Whether a `Content-Type` value is a single media type browsers only display or hand to a
/// viewer: raster images, audio, video, fonts, PDF, plain text and the usual data and archive
/// types. Everything else (HTML, XHTML, SVG, any `+xml`, XML, unknown types) is treated as
/// active.
fn passive_type(value: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(value) else { return false };
    if !value.is_ascii() || value.contains(',') {
        return false;
    }
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let Some((top, sub)) = essence.split_once('/') else { return false };
    let token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    if !token(top) || !token(sub) || sub.contains("xml") || sub.contains("svg") || sub.contains("html") {
        return false;
    }
    match top {
        "image" | "audio" | "video" | "font" => true,
        "text" => matches!(sub, "plain" | "csv" | "css" | "javascript" | "markdown" | "tab-separated-values"),
        "application" => matches!(
            sub,
            "pdf"
                | "json"
                | "octet-stream"
                | "zip"
                | "gzip"
                | "x-gzip"
                | "x-tar"
                | "x-7z-compressed"
                | "x-bzip2"
                | "x-xz"
                | "zstd"
                | "javascript"
                | "wasm"
                | "vnd.apple.mpegurl"
                | "x-mpegurl"
                | "dash+json"
        ),
        "binary" => sub == "octet-stream",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_passive_types_escape_the_sandbox() {
        for t in [
            "image/png",
            "IMAGE/JPEG; q=1",
            "application/pdf",
            "text/plain; charset=utf-8",
            "video/mp4",
            "binary/octet-stream",
            "application/json",
        ] {
            assert!(passive_type(t.as_bytes()), "{t}");
        }
        for t in [
            "text/html",
            "Text/HTML; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/xml",
            "application/xml",
            "text/plain,text/html",
            "text/html;x=\u{e9}",
            "",
            "text",
            "nonsense/type",
            "multipart/x-mixed-replace; boundary=x",
            "application/rss+xml",
            "text/xsl",
        ] {
            assert!(!passive_type(t.as_bytes()), "{t}");
        }
        assert!(!passive_type(b"text/plain;x=\xff"));
    }

    fn classify_str(uri: &str, auth: Option<&str>) -> Dialect {
        let mut h = http::HeaderMap::new();
        if let Some(a) = auth {
            h.insert(http::header::AUTHORIZATION, a.parse().unwrap());
        }
        classify(&uri.parse().unwrap(), &h, &["localhost".to_owned()])
    }

    #[test]
    fn routes_by_path_and_scheme() {
        assert_eq!(classify_str("/_chuan/health", None), Dialect::Chuan);
        assert_eq!(classify_str("/bucket/key", Some("AWS4-HMAC-SHA256 Credential=x")), Dialect::S3);
        assert_eq!(classify_str("/key", Some("UCloud pub:sig")), Dialect::Ufile);
        assert_eq!(classify_str("/a/b/f", Some("Ucloud eyJ.x.y")), Dialect::Iot);
        assert_eq!(classify_str("/api/v1/url", Some("3f2a")), Dialect::Iot);
        assert_eq!(classify_str("/k?UCloudPublicKey=a&Expires=1&Signature=x", None), Dialect::Ufile);
        assert!(is_bucket_host("mybucket.ufile.invalid:80", &["localhost".into()]));
        assert!(!is_bucket_host("b.localhost:9000", &["localhost".into()]));
        assert!(!is_bucket_host("127.0.0.1:9000", &["localhost".into()]));
        assert_eq!(classify_str("/files/v2/123/b/x", Some("c2lnbg==")), Dialect::Cos);
        assert_eq!(classify_str("/adrive/v2/file/createWithFolders", Some("Bearer t")), Dialect::Adrive);
        assert_eq!(classify_str("/v2/file/list", Some("rawtoken")), Dialect::Adrive);
        assert_eq!(classify_str("/filesx/y", None), Dialect::S3);
    }

    #[test]
    fn absolute_form_becomes_origin_form() {
        let mut req = Request::builder().uri("http://b.example.com:9000/k?x=1").body(()).unwrap();
        normalise_target(&mut req);
        assert_eq!(req.uri().to_string(), "/k?x=1");
        assert_eq!(req.headers()[http::header::HOST], "b.example.com:9000");
    }
}
