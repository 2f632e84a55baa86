//! POST Object: browser form uploads, streamed.
//!
//! The form's small fields are read first (bounded by the process-wide form limits), the
//! signature and policy are checked on them, and only then does the `file` part stream into
//! the store, its size held to the policy's `content-length-range` while it arrives: no file
//! is held in memory, and nothing is stored for a refused form. Fields after the file are
//! ignored, as S3 ignores them.
//!
//! Signatures: SigV4 (`x-amz-algorithm`, `x-amz-credential`, `x-amz-date`,
//! `x-amz-signature` = HMAC-SHA256 of the base64 policy with the SigV4 signing key) and SigV2
//! (`AWSAccessKeyId`, `signature` = base64 HMAC-SHA1 of the base64 policy). A form with neither
//! signature nor policy is anonymous, and the core lets it write only where the bucket's ACL
//! grants everyone `WRITE`. Policy rules follow S3's "Creating a POST policy": an expiration
//! in the future, every condition met, and every form field (but `file`, `policy`, the
//! signature fields and `x-ignore-*`) named by a condition.

use chuan_api_common::form::{FormError, FormReader};
use chuan_api_common::sign::{base64, hmac_sha1, hmac_sha256, sigv4_signing_key};
use chuan_core::store::ObjectMeta;
use chuan_core::{CoreError, Engine, Op, Principal, PutTarget, StageOptions, KEY_PAIRS};
use http::{HeaderValue, Request, Response, StatusCode};
use s3s::post_policy::{PostPolicy, PostPolicyCondition};

use crate::checksum::{Claims, MAX_OBJECT_SIZE};
use crate::service::xml_error;

/// An S3 error answer: status, code, message.
type Refusal = (StatusCode, String, String);

fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Refusal {
    (status, code.to_owned(), message.into())
}

fn bad(code: &str, message: impl Into<String>) -> Refusal {
    refuse(StatusCode::BAD_REQUEST, code, message)
}

fn denied(message: impl Into<String>) -> Refusal {
    refuse(StatusCode::FORBIDDEN, "AccessDenied", message)
}

fn from_core(e: CoreError) -> Refusal {
    let err = crate::to_s3_error(e);
    let status = err.status_code().unwrap_or(StatusCode::BAD_REQUEST);
    (status, err.code().as_str().to_owned(), err.message().unwrap_or("").to_owned())
}

fn form_refused(e: FormError) -> Refusal {
    match e {
        FormError::Stalled => refuse(
            StatusCode::BAD_REQUEST,
            "RequestTimeout",
            "Your socket connection to the server was not read from or written to within the timeout period.",
        ),
        FormError::TooLarge(m) => bad("MaxPostPreDataLengthExceeded", m),
        other => bad(
            "MalformedPOSTRequest",
            format!("The body of your POST request is not well-formed multipart/form-data: {other}"),
        ),
    }
}

/// The form's fields before the file, names lower-cased (S3 reads them case-insensitively).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Fields no policy condition needs to name (checksums are checked against the file).
fn exempt(name: &str) -> bool {
    matches!(name, "awsaccesskeyid" | "signature" | "file" | "policy" | "x-amz-signature")
        || name.starts_with("x-ignore-")
        || name.starts_with("x-amz-checksum-")
}

/// The principal a form authenticates as, and its policy (`None` for anonymous forms).
async fn authenticate(engine: &Engine, f: &Fields) -> Result<(Principal, Option<PostPolicy>), Refusal> {
    let policy_b64 = f.get("policy");
    let v4 = f.get("x-amz-signature");
    let v2 = f.get("signature");
    let Some(policy_b64) = policy_b64 else {
        if v4.is_some() || v2.is_some() || f.get("awsaccesskeyid").is_some() {
            return Err(bad("InvalidArgument", "Bucket POST must contain a field named 'policy'."));
        }
        return Ok((Principal::anonymous(), None));
    };
    let (access_key, expected): (&str, Box<dyn Fn(&str) -> String + Send + Sync>) = match (v4, v2) {
        (Some(_), _) => {
            if f.get("x-amz-algorithm") != Some("AWS4-HMAC-SHA256") {
                return Err(bad("InvalidArgument", "POST form x-amz-algorithm must be AWS4-HMAC-SHA256."));
            }
            let credential = f
                .get("x-amz-credential")
                .ok_or_else(|| bad("InvalidArgument", "Bucket POST must contain a field named 'x-amz-credential'."))?;
            let parts: Vec<&str> = credential.split('/').collect();
            let [ak, date, region, service, "aws4_request"] = parts.as_slice() else {
                return Err(bad("InvalidArgument", "Invalid x-amz-credential."));
            };
            let (date, region, service) = (date.to_string(), region.to_string(), service.to_string());
            let sign = move |secret: &str| {
                let key = sigv4_signing_key(secret, &date, &region, &service);
                hex::encode(hmac_sha256(&key, policy_b64.as_bytes()))
            };
            (ak, Box::new(sign))
        }
        (None, Some(_)) => {
            let ak = f
                .get("awsaccesskeyid")
                .ok_or_else(|| bad("InvalidArgument", "Bucket POST must contain a field named 'AWSAccessKeyId'."))?;
            let policy = policy_b64.to_owned();
            (ak, Box::new(move |secret: &str| base64(&hmac_sha1(secret.as_bytes(), policy.as_bytes()))))
        }
        (None, None) => {
            return Err(bad("InvalidArgument", "Bucket POST must contain a field named 'signature'."));
        }
    };
    let given = v4.or(v2).unwrap_or_default();
    let Some((secret, p)) = engine.credential(access_key, KEY_PAIRS).await.map_err(from_core)? else {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        ));
    };
    if !chuan_core::constant_time_eq(expected(&secret).as_bytes(), given.trim().as_bytes()) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    let policy = PostPolicy::from_base64(policy_b64)
        .map_err(|e| bad("InvalidPolicyDocument", format!("Invalid Policy: {e}")))?;
    check_expiration_format(policy_b64)?;
    Ok((p, Some(policy)))
}

/// The policy's `expiration` must be an ISO 8601 UTC time as S3 writes it
/// (`2026-12-01T12:00:00Z` or `2026-12-01T12:00:00.000Z`); s3s accepts looser forms.
fn check_expiration_format(policy_b64: &str) -> Result<(), Refusal> {
    use base64::Engine as _;
    let invalid = || bad("InvalidPolicyDocument", "Invalid Policy: Invalid 'expiration' value.");
    let raw = base64::engine::general_purpose::STANDARD.decode(policy_b64.trim()).map_err(|_| invalid())?;
    let doc: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    let exp = doc.get("expiration").and_then(|v| v.as_str()).ok_or_else(invalid)?;
    let b = exp.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[b.len() - 1] == b'Z'
        && (b.len() == 20 || (b[19] == b'.' && digits(20..b.len() - 1) && b.len() > 21));
    if shape {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// Checks the policy's expiration and conditions against the fields; the allowed file size.
fn check_policy(policy: &PostPolicy, f: &Fields, bucket: &str) -> Result<(u64, u64), Refusal> {
    let now = time::OffsetDateTime::now_utc();
    if time::OffsetDateTime::from(policy.expiration.clone()) < now {
        return Err(denied("Invalid according to Policy: Policy expired."));
    }
    let value = |field: &str| if field == "bucket" { Some(bucket) } else { f.get(field) };
    let mut range = (0, MAX_OBJECT_SIZE);
    let mut named: Vec<&str> = Vec::new();
    for c in &policy.conditions {
        match c {
            PostPolicyCondition::Eq { field, value: want } => {
                named.push(field);
                if value(field) != Some(want.as_str()) {
                    return Err(denied(format!(
                        "Invalid according to Policy: Policy Condition failed: [\"eq\", \"${field}\", \"{want}\"]"
                    )));
                }
            }
            PostPolicyCondition::StartsWith { field, prefix } => {
                named.push(field);
                if !value(field).is_some_and(|v| v.starts_with(prefix.as_str())) {
                    return Err(denied(format!(
                        "Invalid according to Policy: Policy Condition failed: [\"starts-with\", \"${field}\", \"{prefix}\"]"
                    )));
                }
            }
            PostPolicyCondition::ContentLengthRange { min, max } => range = (*min, (*max).min(MAX_OBJECT_SIZE)),
        }
    }
    if let Some((extra, _)) = f.0.iter().find(|(k, _)| !exempt(k) && !named.contains(&k.as_str())) {
        return Err(denied(format!("Invalid according to Policy: Extra input fields: {extra}")));
    }
    Ok(range)
}

/// The object's metadata and requested ACL from the form's fields.
fn object_meta(f: &Fields) -> ObjectMeta {
    let get = |n: &str| f.get(n).map(str::to_owned);
    let mut meta = ObjectMeta {
        content_type: get("content-type"),
        content_encoding: get("content-encoding"),
        content_disposition: get("content-disposition"),
        cache_control: get("cache-control"),
        expires: get("expires"),
        ..Default::default()
    };
    for (k, v) in &f.0 {
        if let Some(name) = k.strip_prefix("x-amz-meta-") {
            meta.user.insert(name.to_owned(), v.clone());
        }
    }
    meta
}

/// The answer S3 gives a stored form: a 303 to `success_action_redirect`, or
/// `success_action_status` (200, 201 with a `PostResponse` document, or the default 204).
fn success(f: &Fields, location: &str, bucket: &str, key: &str, etag: &str) -> Response<s3s::Body> {
    let redirect = f.get("success_action_redirect").or(f.get("redirect")).filter(|r| !r.is_empty());
    let mut resp = if let Some(url) = redirect {
        let q = format!(
            "bucket={}&key={}&etag={}",
            chuan_api_common::query::percent_encode(bucket),
            chuan_api_common::query::percent_encode(key),
            chuan_api_common::query::percent_encode(&format!("\"{etag}\""))
        );
        let sep = if url.contains('?') { '&' } else { '?' };
        let mut r = Response::new(s3s::Body::empty());
        *r.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(v) = HeaderValue::from_str(&format!("{url}{sep}{q}")) {
            r.headers_mut().insert(http::header::LOCATION, v);
        }
        r
    } else {
        match f.get("success_action_status") {
            Some("200") => Response::new(s3s::Body::empty()),
            Some("201") => {
                let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>\"{etag}\"</ETag></PostResponse>",
                    esc(location),
                    esc(bucket),
                    esc(key)
                );
                let mut r = Response::new(s3s::Body::from(body));
                *r.status_mut() = StatusCode::CREATED;
                r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
                r
            }
            _ => {
                let mut r = Response::new(s3s::Body::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        resp.headers_mut().insert(http::header::ETAG, v);
    }
    if !resp.headers().contains_key(http::header::LOCATION) {
        if let Ok(v) = HeaderValue::from_str(location) {
            resp.headers_mut().insert(http::header::LOCATION, v);
        }
    }
    resp
}

/// Handles one POST Object form to `bucket`.
pub(crate) async fn post_object(
    engine: &Engine,
    bucket: Option<String>,
    req: Request<s3s::Body>,
) -> Response<s3s::Body> {
    match store_form(engine, bucket, req).await {
        Ok(resp) => resp,
        Err((status, code, message)) => xml_error(status, &code, &message),
    }
}

async fn store_form(
    engine: &Engine,
    bucket: Option<String>,
    req: Request<s3s::Body>,
) -> Result<Response<s3s::Body>, Refusal> {
    let bucket = bucket.ok_or_else(|| bad("InvalidArgument", "A POST Object form is posted to a bucket."))?;
    let (parts, body) = req.into_parts();
    let ct = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = chuan_api_common::form::boundary(ct).ok_or_else(|| {
        bad("MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data.")
    })?;
    let mut form =
        FormReader::new(http_body_util::BodyDataStream::new(body), &boundary).counted(engine.metrics.clone());
    let mut fields = Fields(Vec::new());
    let file = loop {
        let Some(field) = form.next_field().await.map_err(form_refused)? else {
            return Err(bad("InvalidArgument", "POST requires exactly one file upload per request."));
        };
        let name = field.name().unwrap_or("").to_ascii_lowercase();
        if name == "file" {
            break field;
        }
        let value = form.text(field).await.map_err(form_refused)?;
        // One value a field: a second could pass the policy with the first and be stored
        // with the second.
        if fields.get(&name).is_some() {
            return Err(bad("InvalidArgument", format!("The form field {name} appears more than once.")));
        }
        fields.0.push((name, value));
    };
    let key_field = fields.get("key").ok_or_else(|| {
        bad(
            "InvalidArgument",
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
        )
    })?;
    // `${filename}` stands for the file's name, in the key the policy is checked against.
    let key = key_field.replace("${filename}", file.file_name().unwrap_or(""));
    for (name, value) in fields.0.iter_mut() {
        if name == "key" {
            value.clone_from(&key);
        }
    }
    let (p, policy) = authenticate(engine, &fields).await?;
    let (min, max) = match &policy {
        Some(policy) => check_policy(policy, &fields, &bucket)?,
        None => (0, MAX_OBJECT_SIZE),
    };
    chuan_core::names::validate_key(&key).map_err(from_core)?;
    engine.check_access(&p, Op::Write, &bucket, &key).await.map_err(from_core)?;
    let mut meta = object_meta(&fields);
    if meta.content_type.is_none() {
        meta.content_type = file.content_type().map(|m| m.to_string());
    }
    let get = |n: &str| fields.get(n).map(str::to_owned);
    let claims = Claims::new(
        None,
        fields.get("x-amz-checksum-algorithm"),
        get("x-amz-checksum-crc32"),
        get("x-amz-checksum-crc32c"),
        get("x-amz-checksum-crc64nvme"),
        get("x-amz-checksum-sha1"),
        get("x-amz-checksum-sha256"),
    )
    .map_err(|e| bad(e.code().as_str(), e.message().unwrap_or("").to_owned()))?;
    meta.checksum_algorithm = claims.algorithm().map(|a| a.name().to_owned());
    let acl = crate::acl::requested(fields.get("acl"), crate::acl::GrantHeaders::default())
        .map_err(|e| bad("InvalidArgument", e.message().unwrap_or("Invalid canned ACL").to_owned()))?;
    if let Some(spec) = acl {
        meta.acl = Some(engine.requested_acl(&p, &bucket, &key, &spec).await.map_err(from_core)?);
    }
    // The upper bound holds while the file streams in, not after it was all written.
    let mut options = StageOptions::at_most(max);
    if !claims.names(chuan_core::hash::ChecksumAlgorithm::Sha1) {
        options = options.deferring_sha1(); // the answer and the ETag need no SHA-1
    }
    let staged = match engine.stage_with(&p, file, options).await {
        Err(CoreError::EntityTooLarge { .. }) => {
            return Err(bad("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"))
        }
        r => r.map_err(from_core)?,
    };
    form.finish().await.map_err(form_refused)?;
    if staged.size < min {
        return Err(bad("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size"));
    }
    claims.verify(&staged.digests).map_err(|e| bad(e.code().as_str(), e.message().unwrap_or("").to_owned()))?;
    let mut target = PutTarget::new(&bucket, &key);
    target.meta = meta;
    let rec = engine.commit_put(&p, target, staged).await.map_err(from_core)?;
    let host = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let location = format!("http://{host}/{bucket}/{}", chuan_api_common::query::percent_encode(&key));
    Ok(success(&fields, &location, &bucket, &key, &rec.etag))
}
