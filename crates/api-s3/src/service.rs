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
    /// POST Object requests being buffered (see [`POST_OBJECTS_AT_ONCE`]).
    post_objects: chuan_core::AddressGate,
}

/// POST Object requests handled at once. s3s buffers a POST Object's file part in memory
/// (up to `post_object_max_bytes`) to check the policy before the signature, so this bounds
/// that memory, whoever sends the forms; more at once get 503 SlowDown. Streaming POST Object
/// is issue 13's.
pub const POST_OBJECTS_AT_ONCE: usize = 8;

/// POST Object requests one client address may have buffered at once (of
/// [`POST_OBJECTS_AT_ONCE`]): one address's stalled forms cannot take every slot.
pub const POST_OBJECTS_PER_ADDRESS: usize = 2;

/// The largest XML request body (CompleteMultipartUpload of 10,000 parts with checksums,
/// DeleteObjects of 1,000 keys of 1,024 bytes); s3s refuses larger ones while reading.
const XML_MAX_BODY: usize = 4 << 20;

impl S3Dialect {
    /// `post_object_max_bytes` bounds the memory s3s uses to buffer a POST Object file part
    /// while it checks the policy's `content-length-range`; the form's other fields are held
    /// to the process-wide form limits (`chuan_api_common::form::limits`).
    pub fn new(engine: Arc<Engine>, host: impl S3Host, post_object_max_bytes: u64) -> Self {
        let mut builder = S3ServiceBuilder::new(ChuanS3::new(engine.clone()));
        builder.set_auth(EngineAuth(engine.clone()));
        builder.set_access(crate::EngineAccess);
        builder.set_host(host);
        let config = s3s_config(post_object_max_bytes);
        builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(config))));
        Self {
            service: builder.build(),
            engine: engine.clone(),
            post_objects: chuan_core::AddressGate::new(POST_OBJECTS_AT_ONCE, POST_OBJECTS_PER_ADDRESS),
        }
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

    async fn serve(&self, req: Request<s3s::Body>) -> Response<s3s::Body> {
        let is_post = req.method() == http::Method::POST;
        let is_form = is_post
            && req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
        let _buffering = if is_form {
            match self.post_objects.try_acquire() {
                Some(permit) => Some(permit),
                None => {
                    self.engine.metrics.refused("form_slots");
                    return xml_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "SlowDown",
                        "Too many form uploads at once; please retry.",
                    );
                }
            }
        } else {
            None
        };
        match self.service.call(req).await {
            Ok(resp) if is_post && resp.status() == StatusCode::BAD_REQUEST => post_policy_fixup(resp).await,
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

/// The limits s3s parses Chuan's S3 requests under: XML bodies up to 4 MiB, POST Object file
/// parts buffered up to `post_object_max_bytes`, form fields held to the process-wide form
/// limits (`chuan_api_common::form::limits`).
pub fn s3s_config(post_object_max_bytes: u64) -> s3s::config::S3Config {
    let mut config = s3s::config::S3Config::default();
    config.post_object_max_file_size = post_object_max_bytes;
    config.xml_max_body_size = XML_MAX_BODY;
    let forms = chuan_api_common::form::limits();
    config.form_max_parts = forms.max_fields;
    config.form_max_field_size = forms.max_field_bytes;
    config.form_max_fields_size = forms.max_total_bytes;
    config
}

fn xml_error(status: StatusCode, code: &str, message: &str) -> Response<s3s::Body> {
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

/// s3s answers a POST Object whose form breaks a policy condition with 400
/// `InvalidPolicyDocument`; S3 answers 403 `AccessDenied` ("Invalid according to Policy"),
/// which is what browser upload code checks for. Error bodies are small, so reading one is fine.
async fn post_policy_fixup(resp: Response<s3s::Body>) -> Response<s3s::Body> {
    let (parts, body) = resp.into_parts();
    let bytes: Bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("<Code>InvalidPolicyDocument</Code>") && text.contains("Policy condition") {
        let detail = text
            .split("<Message>")
            .nth(1)
            .and_then(|m| m.split("</Message>").next())
            .unwrap_or("Policy Condition failed");
        return xml_error(StatusCode::FORBIDDEN, "AccessDenied", &format!("Invalid according to Policy: {detail}"));
    }
    Response::from_parts(parts, s3s::Body::from(bytes))
}
