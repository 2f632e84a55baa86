//! Resumable uploads from browsers and apps: tus 1.0 (`/_chuan/tus/`, every extension) and
//! the IETF draft "Resumable Uploads for HTTP"
//! (`/_chuan/resumable/{bucket}/{key}`, draft-ietf-httpbis-resumable-upload-13, interop
//! version 10; requests of interop versions 6 to 10 are answered alike).
//!
//! Both are one kind of core upload session (`chuan_core::Engine::create_resumable` and its
//! neighbours decide offsets, lengths, completion, concatenation, checksums, expiry and
//! access); this crate reads the two wire formats and renders the answers. An upload made
//! with one can be resumed with the other: the upload URL `/_chuan/tus/{id}` answers tus
//! requests (those that carry `Tus-Resumable`) and IETF requests (those that carry
//! `Upload-Draft-Interop-Version`).
//!
//! Authentication: HTTP Basic with a key pair (a tenant's access key and secret, or a scoped,
//! expiring token's), on every request but `OPTIONS`. Browsers on other origins are let in by
//! the operator's list of upload origins (`chuan_core::Engine::upload_cors`).
//!
//! Files: `tus.rs` the tus protocol, `ietf.rs` the draft, `metadata.rs` `Upload-Metadata`.

mod ietf;
mod metadata;
mod tus;

use chuan_api_common::{Body, RequestBody};
use chuan_core::{CoreError, Engine, Principal};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use std::sync::Arc;

pub type Resp = Response<Body>;

/// Where tus lives.
pub const TUS_BASE: &str = "/_chuan/tus/";
/// Where IETF resumable uploads are created (`{bucket}/{key}` follow).
pub const RESUMABLE_BASE: &str = "/_chuan/resumable/";

/// Paths decode as in S3 (`+` is a plus sign in a path; queries carry nothing here).
pub(crate) const WIRE: chuan_api_common::Wire =
    chuan_api_common::Wire::new(chuan_api_common::query::Plus::Literal, &[]);

/// Response headers a browser on another origin may read.
const EXPOSE: &[&str] = &[
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Defer-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Upload-Concat",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Complete",
    "Upload-Limit",
    "Upload-Draft-Interop-Version",
    "ETag",
];

pub struct TusDialect {
    engine: Arc<Engine>,
}

/// Whether a path is this dialect's.
pub fn is_resumable_path(path: &str) -> bool {
    path == "/_chuan/tus" || path.starts_with(TUS_BASE) || path.starts_with(RESUMABLE_BASE)
}

impl TusDialect {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// Answers a request to `/_chuan/tus…` or `/_chuan/resumable/…`, with its CORS headers.
    pub async fn handle(&self, req: Request<RequestBody>) -> Resp {
        if let Some(r) = self.cors_preflight(&req) {
            return r;
        }
        let origin = header(req.headers(), "origin").map(str::to_owned);
        let method = req.method().as_str().to_owned();
        let resp = self.route(req).await;
        self.with_cors(origin.as_deref(), &method, resp)
    }

    /// The answer to a CORS preflight (`OPTIONS` with `Access-Control-Request-Method` and an
    /// `Origin`) for Chuan's upload endpoints; `None` for any other request.
    pub fn cors_preflight<B>(&self, req: &Request<B>) -> Option<Resp> {
        let preflight = req.method() == Method::OPTIONS && req.headers().contains_key("access-control-request-method");
        let origin = header(req.headers(), "origin")?;
        preflight.then(|| self.preflight(origin, req.headers()))
    }

    /// `resp` with the CORS headers an allowed `origin` gets (unchanged otherwise).
    pub fn with_cors(&self, origin: Option<&str>, method: &str, mut resp: Resp) -> Resp {
        if let Some(origin) = origin {
            if let Some(a) = self.engine.upload_cors(&origin, &method, &[], EXPOSE) {
                let h = resp.headers_mut();
                set(h, "access-control-allow-origin", &a.allow_origin);
                set(h, "access-control-expose-headers", &a.expose_headers.join(", "));
                if a.allow_credentials {
                    set(h, "access-control-allow-credentials", "true");
                    h.append(http::header::VARY, HeaderValue::from_static("Origin"));
                }
            }
        }
        resp
    }

    fn preflight(&self, origin: &str, headers: &HeaderMap) -> Resp {
        let method = header(headers, "access-control-request-method").unwrap_or("");
        let requested: Vec<String> = header(headers, "access-control-request-headers")
            .unwrap_or("")
            .split(',')
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect();
        match self.engine.upload_cors(origin, method, &requested, EXPOSE) {
            Some(a) => {
                let mut r = Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .header("access-control-allow-origin", &a.allow_origin)
                    .header("access-control-allow-methods", a.allow_methods.join(", "))
                    .header("access-control-max-age", a.max_age_secs.unwrap_or(600).to_string())
                    .header(http::header::VARY, "Origin");
                if !a.allow_headers.is_empty() {
                    r = r.header("access-control-allow-headers", a.allow_headers.join(", "));
                }
                if a.allow_credentials {
                    r = r.header("access-control-allow-credentials", "true");
                }
                r.body(chuan_api_common::empty()).expect("valid response")
            }
            None => text(StatusCode::FORBIDDEN, "this origin may not upload here (see --upload-origins)"),
        }
    }

    async fn route(&self, req: Request<RequestBody>) -> Resp {
        let path = req.uri().path().to_owned();
        let mut method = req.method().clone();
        // tus: clients that cannot send PATCH or DELETE POST with the method named.
        if method == Method::POST {
            if let Some(m) = header(req.headers(), "x-http-method-override").and_then(|m| m.parse().ok()) {
                method = m;
            }
        }
        if let Some(rest) = path.strip_prefix(RESUMABLE_BASE) {
            return ietf::creation_or_options(self, &method, rest, req).await;
        }
        let id = path.strip_prefix(TUS_BASE).unwrap_or("");
        if id.is_empty() {
            let mut resp = match method {
                Method::OPTIONS => tus::options(self),
                Method::POST => tus::create(self, req).await,
                _ => text(StatusCode::METHOD_NOT_ALLOWED, "POST creates an upload; OPTIONS tells what is supported"),
            };
            set(resp.headers_mut(), "tus-resumable", "1.0.0");
            return resp;
        }
        if id.contains('/') {
            return text(StatusCode::NOT_FOUND, "no such upload");
        }
        let id = id.to_owned();
        if req.headers().contains_key("upload-draft-interop-version") && !req.headers().contains_key("tus-resumable") {
            return ietf::upload(self, &method, &id, req).await;
        }
        let mut resp = self.tus_upload(&method, &id, req).await;
        set(resp.headers_mut(), "tus-resumable", "1.0.0"); // on every tus answer (tus 1.0 §Tus-Resumable)
        resp
    }

    async fn tus_upload(&self, method: &Method, id: &str, req: Request<RequestBody>) -> Resp {
        let id = id.to_owned();
        match *method {
            Method::OPTIONS => tus::options(self),
            Method::HEAD => tus::head(self, &id, req).await,
            Method::PATCH => tus::patch(self, &id, req).await,
            Method::DELETE => tus::delete(self, &id, req).await,
            Method::POST => text(StatusCode::METHOD_NOT_ALLOWED, "PATCH appends to an upload"),
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "HEAD, PATCH, DELETE or OPTIONS"),
        }
    }

    /// The caller, or the 401 to answer (503 when the credential store cannot be asked).
    pub(crate) async fn caller(&self, headers: &HeaderMap) -> Result<Principal, Resp> {
        match chuan_api_common::native_principal(&self.engine, headers).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => {
                let mut r = text(
                    StatusCode::UNAUTHORIZED,
                    "send a key pair as HTTP Basic credentials (Authorization: Basic base64(access_key:secret)) \
                     or an upload token (Authorization: Bearer <token>)",
                );
                set(r.headers_mut(), "www-authenticate", chuan_api_common::NATIVE_CHALLENGES);
                Err(r)
            }
            Err(e) => Err(text(status_of(&e), &e.to_string())),
        }
    }
}

/// A header's value, trimmed; `None` when missing, empty or not visible ASCII.
pub(crate) fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

pub(crate) fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// A non-negative integer header (tus offsets and lengths, SF integers of the draft):
/// `Ok(None)` when missing, `Err` when malformed.
pub(crate) fn number(h: &HeaderMap, name: &str) -> Result<Option<u64>, String> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 15 && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("{name} must be a non-negative integer")),
    }
}

pub(crate) fn text(status: StatusCode, message: &str) -> Resp {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(chuan_api_common::full(format!("{message}\n")))
        .expect("valid response")
}

/// The HTTP status of a core error on these endpoints (tus 1.0 and the draft agree on them;
/// 460 is tus's "checksum mismatch").
pub(crate) fn status_of(e: &CoreError) -> StatusCode {
    use CoreError as E;
    match e {
        E::NoSuchUpload | E::NoSuchBucket | E::NoSuchKey => StatusCode::NOT_FOUND,
        E::UploadExpired => StatusCode::GONE,
        E::OffsetMismatch { .. } => StatusCode::CONFLICT,
        E::ChecksumMismatch | E::BadDigest { .. } => StatusCode::from_u16(460).expect("valid status"),
        E::EntityTooLarge { .. } | E::UploadComplete => StatusCode::PAYLOAD_TOO_LARGE,
        E::AccessDenied | E::GrantInvalid(_) | E::QuotaExceeded(_) | E::NoSuchTenant | E::NoSuchCredential => {
            StatusCode::FORBIDDEN
        }
        E::NameConflict | E::AlreadyExists | E::PreconditionFailed | E::FolderNotEmpty => StatusCode::CONFLICT,
        E::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        E::SlowDown | E::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        E::Io(_) | E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        E::BucketExists | E::BucketAlreadyOwnedByYou | E::BucketNotEmpty => StatusCode::CONFLICT,
        E::InvalidBucketName(_)
        | E::InvalidKey(_)
        | E::KeyTooLong
        | E::InvalidPart(_)
        | E::InvalidPartOrder
        | E::EntityTooSmall { .. }
        | E::MissingParts(_)
        | E::SizeMismatch { .. }
        | E::IncompleteBody
        | E::InvalidMove(_)
        | E::NameTooLong { .. }
        | E::InvalidRange
        | E::InvalidArgument(_)
        | E::InvalidRequest(_)
        | E::Body(_) => StatusCode::BAD_REQUEST,
    }
}

/// A core error as a plain-text answer (the draft's problem documents are added by `ietf.rs`).
pub(crate) fn error(e: &CoreError) -> Resp {
    let status = status_of(e);
    if status.is_server_error() {
        tracing::warn!(error = %e, "resumable upload failed");
    }
    let mut r = text(status, &e.to_string());
    if matches!(e, CoreError::SlowDown) {
        set(r.headers_mut(), "retry-after", "1");
    }
    r
}

/// Runs an append on a task of its own, so that a client whose connection drops mid-body
/// still gets the bytes that arrived kept (the connection's task is dropped with it).
/// `creation`: the first append of a creation, whose refusal removes the upload
/// ([`chuan_core::Engine::append_creation`]).
pub(crate) async fn append_detached(
    engine: &Arc<Engine>,
    p: Principal,
    id: String,
    a: chuan_core::Append,
    body: RequestBody,
    trailers: chuan_api_common::Trailers,
    creation: bool,
) -> Result<chuan_core::Appended, CoreError> {
    let engine = engine.clone();
    let task = tokio::spawn(async move {
        let data = chuan_api_common::data_with_trailers(body, trailers);
        match creation {
            true => engine.append_creation(&p, &id, a, data).await,
            false => engine.append_resumable(&p, &id, a, data).await,
        }
    });
    task.await.map_err(|e| CoreError::Internal(e.to_string()))?
}

/// The upload URL of a session.
pub(crate) fn upload_url(id: &str) -> String {
    format!("{TUS_BASE}{id}")
}

/// The session id in an upload URL (absolute or a path), if it is one of ours.
pub(crate) fn id_of_url(url: &str) -> Option<&str> {
    // A reference relative to the base (`<id>`) is the id itself.
    if url.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return (!url.is_empty()).then_some(url);
    }
    let path = match url.find("://") {
        Some(i) => &url[url[i + 3..].find('/').map(|j| i + 3 + j)?..],
        None => url,
    };
    let path = path.split(['?', '#']).next()?;
    let id = path.strip_prefix(TUS_BASE)?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_urls_name_their_session() {
        assert_eq!(id_of_url("/_chuan/tus/abc123"), Some("abc123"));
        assert_eq!(id_of_url("http://h:9000/_chuan/tus/abc123"), Some("abc123"));
        assert_eq!(id_of_url("https://h/_chuan/tus/abc?x=1"), Some("abc"));
        assert_eq!(id_of_url("abc123"), Some("abc123"));
        assert_eq!(id_of_url("/_chuan/tus/"), None);
        assert_eq!(id_of_url("/other/abc"), None);
        assert_eq!(id_of_url("/_chuan/tus/../x"), None);
    }

    #[test]
    fn numbers_are_plain_digits() {
        let mut h = HeaderMap::new();
        h.insert("upload-offset", HeaderValue::from_static("42"));
        assert_eq!(number(&h, "upload-offset"), Ok(Some(42)));
        for bad in ["-1", "1.0", "+3", "0x10", "99999999999999999"] {
            h.insert("upload-offset", HeaderValue::from_static(bad));
            assert!(number(&h, "upload-offset").is_err(), "{bad}");
        }
        assert_eq!(number(&h, "upload-length"), Ok(None));
    }
}
