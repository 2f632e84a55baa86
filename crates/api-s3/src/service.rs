//! The S3 dialect as the dispatcher sees it: one `handle` per request.

use bytes::Bytes;
use chuan_core::Engine;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use s3s::host::S3Host;
use s3s::service::{S3Service, S3ServiceBuilder};
use std::sync::Arc;

use crate::{ChuanS3, EngineAuth};

pub struct S3Dialect {
    service: S3Service,
    engine: Arc<Engine>,
    /// How a `Host` names a bucket (shared with s3s), for the CORS decisions and POST Object
    /// forms handled around s3s.
    host: Arc<dyn S3Host>,
}

/// The largest XML request body (CompleteMultipartUpload of 10,000 parts with checksums,
/// DeleteObjects of 1,000 keys of 1,024 bytes); s3s refuses larger ones while reading.
const XML_MAX_BODY: usize = 4 << 20;

impl S3Dialect {
    /// POST Object forms never reach s3s (see `post.rs`); their fields are held to the
    /// process-wide form limits (`chuan_api_common::form::limits`).
    pub fn new(engine: Arc<Engine>, host: impl S3Host) -> Self {
        let host: Arc<dyn S3Host> = Arc::new(host);
        let mut builder = S3ServiceBuilder::new(ChuanS3::new(engine.clone()));
        builder.set_auth(EngineAuth(engine.clone()));
        builder.set_access(crate::EngineAccess);
        builder.set_host(SharedHost(host.clone()));
        let config = s3s_config();
        builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(config))));
        Self { service: builder.build(), engine: engine.clone(), host }
    }

    pub async fn handle(&self, req: Request<chuan_api_common::RequestBody>) -> Response<s3s::Body> {
        self.handle_body(req.map(s3s::Body::http_body_unsync)).await
    }

    /// [`S3Dialect::handle`] for a body the dispatcher has already partly read and replays.
    pub async fn handle_body(&self, req: Request<s3s::Body>) -> Response<s3s::Body> {
        // s3s answers a body that fails while it parses (XML, POST Object forms) with its own
        // 400s; a body the listener cut off for stalling is S3's RequestTimeout instead.
        let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = stalled.clone();
        let req = req.map(move |body| {
            s3s::Body::http_body_unsync(body.map_err(move |e| {
                if chuan_core::is_stalled(e.as_ref()) {
                    seen.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                e
            }))
        });
        let resp = self.serve(req).await;
        if stalled.load(std::sync::atomic::Ordering::Relaxed) && !resp.status().is_success() {
            return xml_error(
                StatusCode::BAD_REQUEST,
                "RequestTimeout",
                "Your socket connection to the server was not read from or written to within the timeout period.",
            );
        }
        resp
    }

    /// The bucket a request's virtual host names, if it names one.
    fn host_bucket(&self, req: &Request<s3s::Body>) -> Option<String> {
        let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok())?;
        self.host.parse_host_header(host).ok()?.bucket().map(str::to_owned)
    }

    /// The bucket a request names: by its virtual host, else by its path's first segment.
    fn bucket_of(&self, req: &Request<s3s::Body>) -> Option<String> {
        if let Some(b) = self.host_bucket(req) {
            return Some(b);
        }
        let first = req.uri().path().trim_start_matches('/').split('/').next().unwrap_or("");
        (!first.is_empty()).then(|| first.to_owned())
    }

    /// Every S3 request: a preflight is answered here (S3 needs no credential for it); any
    /// other request from a browser (with `Origin`) gets the bucket's CORS headers on its
    /// answer, error or not.
    async fn serve(&self, mut req: Request<s3s::Body>) -> Response<s3s::Body> {
        let request_id = crate::prepare::new_request_id();
        crate::prepare::drop_ignored_headers(&self.engine, &mut req).await;
        let virtual_host = self.host_bucket(&req).is_some();
        crate::prepare::sigv2_bucket_path(&self.engine, &mut req, virtual_host).await;
        if crate::prepare::unsized_put(&req) {
            req = match crate::prepare::spool_unsized(&self.engine, req).await {
                Ok(r) => r,
                Err(refusal) => {
                    let mut resp = refusal;
                    stamp_request_id(&mut resp, &request_id).await;
                    return resp;
                }
            };
        }
        let mut resp = match crate::prepare::presigned_refusal(&req) {
            Some(refusal) => refusal,
            None => self.serve_cors(req).await,
        };
        stamp_request_id(&mut resp, &request_id).await;
        resp
    }

    async fn serve_cors(&self, req: Request<s3s::Body>) -> Response<s3s::Body> {
        let origin = req.headers().get(http::header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
        if req.method() == http::Method::OPTIONS {
            let bucket = self.bucket_of(&req);
            return crate::cors::preflight(&self.engine, bucket.as_deref(), req.headers()).await;
        }
        let Some(origin) = origin else { return self.serve_s3(req).await };
        let bucket = self.bucket_of(&req);
        // A request that names the method it stands for (as a preflight does) is matched
        // with that method, else with its own.
        let method = req
            .headers()
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(req.method().as_str())
            .to_owned();
        let mut resp = self.serve_s3(req).await;
        if let Some(bucket) = bucket {
            let answer = self.engine.cors_decision(&bucket, &origin, &method, &[]).await.ok().flatten();
            crate::cors::apply(resp.headers_mut(), answer.as_ref(), false);
        }
        resp
    }

    async fn serve_s3(&self, req: Request<s3s::Body>) -> Response<s3s::Body> {
        // POST Object is a form posted to the bucket itself (no query: `?uploads`, `?delete`
        // and the like are other operations, whatever their content type).
        let is_form = req.method() == http::Method::POST
            && req.uri().query().is_none_or(str::is_empty)
            && req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
        if is_form {
            let bucket = self.bucket_of(&req);
            return crate::post::post_object(&self.engine, bucket, req).await;
        }
        let is_head = req.method() == http::Method::HEAD;
        let attributes = req.method() == http::Method::GET
            && req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv == "attributes" || kv == "attributes="));
        match self.service.call(req).await {
            Ok(resp) if attributes && resp.status().is_success() => unquote_attributes_etag(resp).await,
            Ok(mut resp) if is_head && resp.status() == StatusCode::OK => {
                // A ranged HEAD (Range or partNumber) answers 206, as its GET does.
                if resp.headers().contains_key(http::header::CONTENT_RANGE) {
                    *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
                }
                resp
            }
            Ok(resp) => resp,
            Err(e) => {
                tracing::error!(error = ?e, "S3 request failed");
                xml_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                )
            }
        }
    }
}

/// The limits s3s parses Chuan's S3 requests under: XML bodies up to 4 MiB; form limits as
/// the process-wide ones, though forms are Chuan's own (`post.rs`).
pub fn s3s_config() -> s3s::config::S3Config {
    let mut config = s3s::config::S3Config::default();
    config.post_object_max_file_size = 0;
    config.xml_max_body_size = XML_MAX_BODY;
    let forms = chuan_api_common::form::limits();
    config.form_max_parts = forms.max_fields;
    config.form_max_field_size = forms.max_field_bytes;
    config.form_max_fields_size = forms.max_total_bytes;
    config
}

/// GetObjectAttributes carries the ETag unquoted (unlike every other S3 answer); s3s quotes
/// it, so the small document is mended here.
async fn unquote_attributes_etag(resp: Response<s3s::Body>) -> Response<s3s::Body> {
    let (mut parts, body) = resp.into_parts();
    let bytes: Bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let text = String::from_utf8_lossy(&bytes);
    let fixed = match (text.find("<ETag>"), text.find("</ETag>")) {
        (Some(a), Some(b)) if a < b => {
            let inner = &text[a + 6..b];
            let bare = inner.trim_matches('"').trim_start_matches("&quot;").trim_end_matches("&quot;");
            format!("{}<ETag>{bare}</ETag>{}", &text[..a], &text[b + 7..])
        }
        _ => text.into_owned(),
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    if let Ok(v) = http::HeaderValue::from_str(&fixed.len().to_string()) {
        parts.headers.insert(http::header::CONTENT_LENGTH, v);
    }
    Response::from_parts(parts, s3s::Body::from(fixed))
}

/// Sets `x-amz-request-id` (and `x-amz-id-2`) on an answer, and the same id as the
/// `RequestId` of an error document, as S3 does. Error documents are small; bodies of
/// successful answers are never read here.
async fn stamp_request_id(resp: &mut Response<s3s::Body>, id: &str) {
    if let Ok(v) = http::HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-amz-request-id", v.clone());
        resp.headers_mut().insert("x-amz-id-2", v);
    }
    let is_xml = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("xml"));
    if resp.status().is_success() || resp.status() == StatusCode::NOT_MODIFIED || !is_xml {
        return;
    }
    let body = std::mem::replace(resp.body_mut(), s3s::Body::empty());
    let bytes: Bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let text = String::from_utf8_lossy(&bytes);
    let stamped = match text.rfind("</Error>") {
        Some(at) if !text.contains("<RequestId>") => {
            format!("{}<RequestId>{id}</RequestId>{}", &text[..at], &text[at..])
        }
        _ => text.into_owned(),
    };
    resp.headers_mut().remove(http::header::CONTENT_LENGTH);
    if let Ok(v) = http::HeaderValue::from_str(&stamped.len().to_string()) {
        resp.headers_mut().insert(http::header::CONTENT_LENGTH, v);
    }
    *resp.body_mut() = s3s::Body::from(stamped);
}

/// An [`S3Host`] shared between s3s and the dialect.
struct SharedHost(Arc<dyn S3Host>);

impl S3Host for SharedHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<s3s::host::VirtualHost<'a>> {
        self.0.parse_host_header(host)
    }
}

/// An S3 error document answered outside s3s.
pub(crate) fn xml_error(status: StatusCode, code: &str, message: &str) -> Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{}</Message></Error>",
        message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    );
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(s3s::Body::from(body))
        .expect("valid response")
}
