//! UCloud IoT device file upload: a device proves itself with an HMAC of its request, gets
//! a short-lived, single-use token bound to one object, size and MD5, then PUTs the file.
//!
//! ```text
//! POST /api/v1/url   Authorization: hex(HMAC-SHA256(DeviceSecret, body))
//!      {"ProductSN","DeviceSN","FileName","FileSize","MD5","Content-Type"}
//!   → {"RetCode":0,"URL":"<origin>/api/v1/upload/<ProductSN>/<DeviceSN>/<FileName>","Authorization":"Ucloud <token>"}
//! PUT  <URL>         Authorization: Ucloud <token>, Content-Type, Content-MD5
//! ```
//! Devices are credentials scoped to write under `<ProductSN>/<DeviceSN>/` of one bucket; the
//! token is a single-use grant of the core (so any node can accept the PUT), used up by the
//! upload that succeeds. Errors answer in UFile's `{"RetCode", "ErrMsg"}` form.

use chuan_api_common::{Body, RequestBody};
use chuan_core::store::{CredentialKind, GrantKind, ObjectMeta};
use chuan_core::{CoreError, CredentialSpec, Engine, Op, Principal, PutTarget, Redeemed, Scope, StageOptions};
use http::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub type Resp = Response<Body>;

const MAX_JSON: usize = 64 << 10;
const UPLOAD_PREFIX: &str = "/api/v1/upload/";

/// How IoT clients send names: in the JSON body (not encoded), then to the upload URL this
/// server answered, whose path segments it `percent_encode`d (decoded once, `+` a plus).
const WIRE: chuan_api_common::Wire = chuan_api_common::Wire::new(chuan_api_common::query::Plus::Literal, &[]);

pub struct IotDialect {
    engine: Arc<Engine>,
    token_ttl: Duration,
}

#[derive(Debug)]
struct IotError {
    status: StatusCode,
    code: i32,
    message: String,
}

impl IotError {
    fn new(status: StatusCode, code: i32, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
    fn denied(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, 160001, message)
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 160002, message)
    }
}

impl From<CoreError> for IotError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NoSuchBucket => Self::new(StatusCode::NOT_FOUND, -30010, "bucket not exist"),
            CoreError::AccessDenied | CoreError::NoSuchTenant => Self::denied("no permission"),
            CoreError::InvalidKey(m) | CoreError::InvalidArgument(m) | CoreError::InvalidMove(m) => Self::bad(m),
            e @ (CoreError::NameConflict | CoreError::FolderNotEmpty | CoreError::NameTooLong { .. }) => {
                Self::bad(e.to_string())
            }
            CoreError::IncompleteBody | CoreError::Body(_) => Self::bad("incomplete body"),
            CoreError::SlowDown => Self::new(StatusCode::TOO_MANY_REQUESTS, 160429, "too many requests"),
            CoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "storage backend unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, 160503, "service unavailable, retry later")
            }
            CoreError::RequestTimeout => {
                Self::new(StatusCode::REQUEST_TIMEOUT, 160408, "the request body arrived too slowly")
            }
            e @ CoreError::EntityTooLarge { .. } => Self::new(StatusCode::PAYLOAD_TOO_LARGE, 160413, e.to_string()),
            CoreError::QuotaExceeded(what) => Self::new(StatusCode::FORBIDDEN, 15011, format!("{what} quota exceeded")),
            other => {
                tracing::error!(error = %other, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, 160500, "internal error")
            }
        }
    }
}

#[derive(Deserialize)]
struct UrlRequest {
    #[serde(rename = "ProductSN")]
    product_sn: String,
    #[serde(rename = "DeviceSN")]
    device_sn: String,
    #[serde(rename = "FileName")]
    file_name: String,
    #[serde(rename = "FileSize")]
    file_size: u64,
    #[serde(rename = "MD5")]
    md5: String,
    #[serde(rename = "Content-Type", default)]
    content_type: Option<String>,
}

/// What a token grants, kept in its ticket.
#[derive(Serialize, Deserialize)]
struct Grant {
    device: String,
    bucket: String,
    key: String,
    size: u64,
    md5: String,
    content_type: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct NewDevice {
    pub product_sn: String,
    pub device_sn: String,
    pub device_secret: String,
}

fn device_key(product: &str, device: &str) -> String {
    format!("iot-device:{product}/{device}")
}

fn valid_sn(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn json(status: StatusCode, v: &serde_json::Value) -> Resp {
    chuan_api_common::json(status, v)
}

impl IotDialect {
    pub fn new(engine: Arc<Engine>, token_ttl: Duration) -> Self {
        Self { engine, token_ttl }
    }

    /// Registers a device of `tenant`, bound to `bucket` (which the tenant must own), on the
    /// authority of `issuer` (the root): a credential scoped to writing under
    /// `<product>/<device>/` of that bucket.
    pub async fn register_device(
        &self,
        issuer: &Principal,
        tenant: &str,
        bucket: &str,
        product: &str,
        device: &str,
    ) -> Result<NewDevice, CoreError> {
        if !valid_sn(product) || !valid_sn(device) {
            return Err(CoreError::InvalidArgument(
                "ProductSN and DeviceSN are 1-64 letters, digits, '-' or '_'".into(),
            ));
        }
        let mut spec = CredentialSpec::new(tenant, CredentialKind::IotDevice);
        spec.access_key = Some(device_key(product, device));
        spec.scope = Some(Scope {
            ops: Some(vec![Op::Write]),
            buckets: Some(vec![bucket.to_owned()]),
            prefixes: Some(vec![format!("{product}/{device}/")]),
        });
        let cred = self.engine.issue_credential(issuer, spec).await?;
        Ok(NewDevice { product_sn: product.to_owned(), device_sn: device.to_owned(), device_secret: cred.secret })
    }

    pub async fn handle(&self, req: Request<RequestBody>) -> Resp {
        let result = if req.uri().path() == "/api/v1/url" && req.method() == http::Method::POST {
            self.request_url(req).await
        } else if req.uri().path().starts_with(UPLOAD_PREFIX) && req.method() == http::Method::PUT {
            self.upload(req).await
        } else {
            Err(IotError::new(StatusCode::NOT_FOUND, 160404, "no such IoT operation"))
        };
        result.unwrap_or_else(|e| {
            let mut r = json(e.status, &serde_json::json!({"RetCode": e.code, "ErrMsg": e.message}));
            // The UFile family names each failed request's session for support lookups.
            let session = hex::encode(rand::random::<[u8; 16]>());
            r.headers_mut()
                .insert("x-sessionid", http::HeaderValue::from_str(&session).expect("hex is a valid header"));
            r
        })
    }

    async fn request_url(&self, req: Request<RequestBody>) -> Result<Resp, IotError> {
        let origin = chuan_api_common::origin(&req);
        let (parts, body) = req.into_parts();
        let sig = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_owned();
        let raw = chuan_api_common::read_limited(body, MAX_JSON)
            .await
            .map_err(|e| e.or_timeout(|_| IotError::bad("body too large")))?;
        let r: UrlRequest =
            serde_json::from_slice(&raw).map_err(|e| IotError::bad(format!("malformed JSON body: {e}")))?;
        // The same answer for an unknown device and a wrong signature.
        let (secret, device) = self
            .engine
            .credential(&device_key(&r.product_sn, &r.device_sn), &[CredentialKind::IotDevice])
            .await?
            .ok_or_else(|| IotError::denied("device authentication failed"))?;
        let want = chuan_api_common::sign::hmac_sha256(secret.as_bytes(), &raw);
        if !hex::decode(&sig).is_ok_and(|s| chuan_core::constant_time_eq(&s, &want)) {
            return Err(IotError::denied("device authentication failed"));
        }
        if r.file_name.is_empty() || r.file_name.contains('/') || r.file_name == "." || r.file_name == ".." {
            return Err(IotError::bad("FileName must be a plain file name"));
        }
        if r.md5.len() != 32 || !r.md5.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(IotError::bad("MD5 must be 32 hex digits"));
        }
        let bucket =
            device.scope().and_then(|s| s.buckets.as_ref()).and_then(|b| b.first()).cloned().unwrap_or_default();
        let key = format!("{}/{}/{}", r.product_sn, r.device_sn, r.file_name);
        chuan_core::names::validate_key(&key)?;
        self.engine.check_access(&device, Op::Write, &bucket, &key).await?;
        let grant = Grant {
            device: device.access_key().to_owned(),
            bucket,
            key: key.clone(),
            size: r.file_size,
            md5: r.md5.to_ascii_lowercase(),
            content_type: r.content_type.filter(|c| !c.is_empty()),
        };
        let token = self.engine.issue_grant(GrantKind::IotUpload, &grant, self.token_ttl).await?;
        let path: String = key.split('/').map(chuan_api_common::percent_encode).collect::<Vec<_>>().join("/");
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({"RetCode": 0, "URL": format!("{origin}{UPLOAD_PREFIX}{path}"), "Authorization": format!("Ucloud {token}")}),
        ))
    }

    async fn upload(&self, req: Request<RequestBody>) -> Result<Resp, IotError> {
        let (parts, body) = req.into_parts();
        let auth = parts.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let token = chuan_api_common::auth_scheme(auth, "UCloud")
            .ok_or_else(|| IotError::new(StatusCode::UNAUTHORIZED, 160001, "missing upload token"))?;
        let token = token.trim();
        let grant: Grant = match self.engine.peek_grant(GrantKind::IotUpload, token).await? {
            Redeemed::Granted(g) => g,
            Redeemed::Used => return Err(IotError::denied("the upload token has been used")),
            Redeemed::Expired => return Err(IotError::denied("the upload token has expired")),
            Redeemed::Unknown => return Err(IotError::denied("invalid upload token")),
        };
        let key = WIRE.path(&parts.uri.path()[UPLOAD_PREFIX.len()..]);
        if key != grant.key {
            return Err(IotError::denied("the upload token is for another file"));
        }
        if let Some(md5) = parts.headers.get("content-md5").and_then(|v| v.to_str().ok()) {
            if !md5.trim().eq_ignore_ascii_case(&grant.md5) {
                return Err(IotError::bad("Content-MD5 differs from the MD5 the URL was requested for"));
            }
        }
        let (_, device) = self
            .engine
            .credential(&grant.device, &[CredentialKind::IotDevice])
            .await?
            .ok_or_else(|| IotError::denied("the device is no longer registered"))?;
        // The device upload answers with nothing that needs a SHA-1 (its grant holds an MD5).
        let options = StageOptions::default().deferring_sha1();
        let staged = self.engine.stage_with(&device, http_body_util::BodyDataStream::new(body), options).await?;
        if staged.size != grant.size {
            return Err(IotError::bad(format!(
                "the file is {} bytes; the URL was requested for {}",
                staged.size, grant.size
            )));
        }
        if staged.digests.md5 != grant.md5 {
            return Err(IotError::bad("the file's MD5 differs from the MD5 the URL was requested for"));
        }
        // Used up only by an upload whose bytes are right; a concurrent second PUT loses here.
        match self.engine.redeem_grant::<Grant>(GrantKind::IotUpload, token).await? {
            Redeemed::Granted(_) => {}
            Redeemed::Expired => return Err(IotError::denied("the upload token has expired")),
            _ => return Err(IotError::denied("the upload token has been used")),
        }
        let content_type = grant
            .content_type
            .clone()
            .or_else(|| parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned));
        let meta = ObjectMeta { content_type, ..Default::default() };
        let rec = self
            .engine
            .commit_put(
                &device,
                PutTarget {
                    bucket: grant.bucket,
                    key: grant.key,
                    meta,
                    condition: None,
                    tree: chuan_core::store::TreeRule::Flat,
                },
                staged,
            )
            .await?;
        // The spec answers a stored file with an empty JSON object.
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(http::header::ETAG, format!("\"{}\"", rec.etag))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(chuan_api_common::full("{}"))
            .expect("valid response"))
    }
}
