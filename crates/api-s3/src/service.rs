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
    /// POST Object requests being buffered (see [`POST_OBJECTS_AT_ONCE`]).
    post_objects: Arc<tokio::sync::Semaphore>,
}

/// POST Object requests handled at once. s3s buffers a POST Object's file part in memory
/// (up to `post_object_max_bytes`) to check the policy before the signature, so this bounds
/// that memory, whoever sends the forms; more at once get 503 SlowDown. Streaming POST Object
/// is issue 13's.
pub const POST_OBJECTS_AT_ONCE: usize = 8;

/// The largest XML request body (CompleteMultipartUpload of 10,000 parts with checksums,
/// DeleteObjects of 1,000 keys of 1,024 bytes); s3s refuses larger ones while reading.
const XML_MAX_BODY: usize = 4 << 20;

impl S3Dialect {
    /// `post_object_max_bytes` bounds the memory s3s uses to buffer a POST Object file part
    /// while it checks the policy's `content-length-range`; the form's other fields are held
    /// to the process-wide form limits (`chuan_api_common::form::limits`).
    pub fn new(engine: Arc<Engine>, host: impl S3Host, post_object_max_bytes: u64) -> Self {
        let mut builder = S3ServiceBuilder::new(ChuanS3::new(engine.clone()));
        builder.set_auth(EngineAuth(engine));
        builder.set_access(crate::EngineAccess);
        builder.set_host(host);
        let mut config = s3s::config::S3Config::default();
        config.post_object_max_file_size = post_object_max_bytes;
        config.xml_max_body_size = XML_MAX_BODY;
        let forms = chuan_api_common::form::limits();
        config.form_max_parts = forms.max_fields;
        config.form_max_field_size = forms.max_field_bytes;
        config.form_max_fields_size = forms.max_total_bytes;
        builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(config))));
        Self { service: builder.build(), post_objects: Arc::new(tokio::sync::Semaphore::new(POST_OBJECTS_AT_ONCE)) }
    }

    pub async fn handle(&self, req: Request<chuan_api_common::RequestBody>) -> Response<s3s::Body> {
        self.handle_body(req.map(s3s::Body::http_body_unsync)).await
    }

    /// [`S3Dialect::handle`] for a body the dispatcher has already partly read and replays.
    pub async fn handle_body(&self, req: Request<s3s::Body>) -> Response<s3s::Body> {
        let is_post = req.method() == http::Method::POST;
        let is_form = is_post
            && req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
        let _buffering = if is_form {
            match self.post_objects.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    return xml_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "SlowDown",
                        "Too many form uploads at once; please retry.",
                    )
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
