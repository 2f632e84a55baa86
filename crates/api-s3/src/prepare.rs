//! What S3 accepts or refuses differently from the pinned `s3s`, settled before `s3s` sees
//! the request, and the request id every S3 answer carries.
//!
//! - Conditional dates that are not HTTP dates (`If-Modified-Since: 2015-05-03T10:10:00Z`)
//!   are ignored, as RFC 9110 §13.1.3 and §13.1.4 ask and S3 does; `s3s` answers 400.
//! - A `Range` that is not one satisfiable-or-not byte range (`bytes=0-1,3-4`, `bytes=5-3`,
//!   `items=1-2`) is ignored and the whole object served (RFC 9110 §14.2); `s3s` answers 400.
//! - Presigned SigV4 URLs must carry every query parameter and an `X-Amz-Expires` of 1 to
//!   604,800 seconds, else 400 `AuthorizationQueryParametersError` (S3's answer; a negative
//!   expiry is 403 "Request has expired"); `s3s` accepts any `u32` expiry and answers
//!   missing parameters 400 `InvalidRequest`.

use chuan_api_common::sign::{sigv2_signature, sigv4_signature, SigV4Authorization};
use chuan_core::{Engine, KEY_PAIRS};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use s3s::dto::{Range, Timestamp, TimestampFormat};

/// Longest validity of a presigned SigV4 URL (seven days; S3's limit).
pub const MAX_PRESIGNED_EXPIRES_SECS: u64 = 604_800;

const DATE_CONDITIONS: [&str; 4] = [
    "if-modified-since",
    "if-unmodified-since",
    "x-amz-copy-source-if-modified-since",
    "x-amz-copy-source-if-unmodified-since",
];

/// The names of the headers S3 ignores because they are malformed (see the module docs).
fn malformed_ignorable(headers: &HeaderMap) -> Vec<&'static str> {
    let mut bad: Vec<&'static str> = DATE_CONDITIONS
        .into_iter()
        .filter(|name| {
            headers.get(*name).is_some_and(|v| {
                v.to_str().map_or(true, |s| Timestamp::parse(TimestampFormat::HttpDate, s.trim()).is_err())
            })
        })
        .collect();
    let bad_range = headers.get(http::header::RANGE).is_some_and(|v| {
        v.to_str().map_or(true, |s| match Range::parse(s.trim()) {
            Err(_) => true,
            Ok(Range::Int { first, last: Some(last) }) => last < first,
            Ok(_) => false,
        })
    });
    if bad_range {
        bad.push("range");
    }
    bad
}

/// Drops the headers S3 ignores when malformed. A header the client signed (SigV4 header
/// authorization) cannot simply go, or the signature would no longer hold: the request's
/// signature is checked here with the caller's secret and, only if it holds, the request is
/// signed again without the header, for s3s to check as usual. Requests whose signature does
/// not hold are left as they came, for s3s to refuse.
pub(crate) async fn drop_ignored_headers<B>(engine: &Engine, req: &mut Request<B>) {
    let bad = malformed_ignorable(req.headers());
    if bad.is_empty() {
        return;
    }
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(SigV4Authorization::parse);
    let signed_bad = auth.as_ref().is_some_and(|a| a.signed_headers.iter().any(|h| bad.contains(&h.as_str())));
    if signed_bad {
        resign_without(engine, req, &bad).await;
        return;
    }
    // SigV2 signs every x-amz-* header: those stay (s3s refuses a malformed one).
    let sigv2 = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("AWS ") && !a.starts_with("AWS4"));
    let bad: Vec<&str> = bad.into_iter().filter(|h| !(sigv2 && h.starts_with("x-amz-"))).collect();
    let presigned_bad = req.uri().query().and_then(|q| {
        let q = crate::WIRE.query(Some(q));
        q.get("X-Amz-SignedHeaders").map(|s| s.split(';').any(|h| bad.contains(&h)))
    });
    if presigned_bad == Some(true) {
        // Signed into a presigned URL: kept (s3s refuses it), as re-signing a URL the
        // client shared is not ours to do.
        return;
    }
    for name in bad {
        req.headers_mut().remove(name);
    }
}

/// A request's SigV4 header signature, checked with the caller's secret (before s3s checks
/// it again): the signer, and how to sign the request anew with other headers.
struct VerifiedSigV4 {
    principal: chuan_core::Principal,
    secret: String,
    auth: SigV4Authorization,
    amz_date: String,
    payload: String,
    scope: (String, String, String),
}

impl VerifiedSigV4 {
    fn sign<B>(&self, req: &Request<B>, signed: &[String]) -> String {
        let (day, region, service) = &self.scope;
        sigv4_signature(
            &self.secret,
            req.method().as_str(),
            req.uri().path(),
            req.uri().query().unwrap_or(""),
            req.headers(),
            signed,
            &self.payload,
            &self.amz_date,
            (day, region, service),
        )
    }
}

/// The request's SigV4 header signature if it holds (`None`: no such signature, an unknown
/// key, or a signature that does not hold; s3s then answers as it does).
async fn verify_sigv4<B>(engine: &Engine, req: &Request<B>) -> Option<VerifiedSigV4> {
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(SigV4Authorization::parse)?;
    let (ak, day, region, service) = auth.scope()?;
    let scope = (day.to_owned(), region.to_owned(), service.to_owned());
    let (secret, principal) = engine.credential(ak, KEY_PAIRS).await.ok()??;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let v = VerifiedSigV4 {
        principal,
        secret,
        amz_date: header("x-amz-date")?,
        payload: header("x-amz-content-sha256")?,
        scope,
        auth,
    };
    let ours = v.sign(req, &v.auth.signed_headers);
    chuan_core::constant_time_eq(ours.as_bytes(), v.auth.signature.as_bytes()).then_some(v)
}

async fn resign_without<B>(engine: &Engine, req: &mut Request<B>, bad: &[&str]) {
    let Some(v) = verify_sigv4(engine, req).await else { return };
    // Chunk signatures of a streaming body chain from the seed signature: such a request
    // keeps its headers (s3s refuses the malformed one).
    if v.payload.starts_with("STREAMING-") {
        return;
    }
    for name in bad {
        req.headers_mut().remove(*name);
    }
    let signed: Vec<String> = v.auth.signed_headers.iter().filter(|h| !bad.contains(&h.as_str())).cloned().collect();
    let signature = v.sign(req, &signed);
    let resigned = SigV4Authorization { signed_headers: signed, signature, ..v.auth.clone() };
    if let Ok(value) = HeaderValue::from_str(&resigned.render()) {
        req.headers_mut().insert(http::header::AUTHORIZATION, value);
    }
}

/// S3's refusal of a presigned SigV4 URL whose parameters are incomplete or whose expiry is
/// out of range; `None` for every other request.
pub(crate) fn presigned_refusal<B>(req: &Request<B>) -> Option<Response<s3s::Body>> {
    let query = req.uri().query()?;
    if !query.contains("X-Amz-Signature") && !query.contains("X-Amz-Algorithm") {
        return None;
    }
    const REQUIRED: [&str; 6] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Expires",
    ];
    // The first value of each (as `Query::get` reads it), decoded only where it needs to be:
    // this runs on every presigned request.
    let mut found: [Option<std::borrow::Cow<'_, str>>; 6] = Default::default();
    for (name, value) in crate::WIRE.pairs(query) {
        if let Some(i) = REQUIRED.iter().position(|r| *r == name) {
            found[i].get_or_insert(value);
        }
    }
    let [_, credential, signature, _, _, expires] = &found;
    if signature.is_none() && credential.is_none() {
        return None;
    }
    let refuse = |message: &str| {
        Some(crate::service::xml_error(StatusCode::BAD_REQUEST, "AuthorizationQueryParametersError", message))
    };
    let Some(expires) = expires.as_deref().filter(|_| found.iter().all(Option::is_some)) else {
        return refuse(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, \
             X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
        );
    };
    match expires.parse::<i64>() {
        Err(_) => refuse("X-Amz-Expires should be a number"),
        // A URL whose validity ended before it was signed has expired (as S3-compatible
        // services answer it, and as the conformance suite expects).
        Ok(n) if n < 0 => Some(crate::service::xml_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired")),
        Ok(n) if n as u64 > MAX_PRESIGNED_EXPIRES_SECS => {
            refuse("X-Amz-Expires must be less than a week (in seconds) that is 604800")
        }
        Ok(_) => None,
    }
}

/// Whether a request body comes without any length: `Transfer-Encoding: chunked`, no
/// `Content-Length`, no `x-amz-decoded-content-length` (an `aws-chunked` body has its own).
pub(crate) fn unsized_put<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    req.method() == http::Method::PUT
        && !h.contains_key(http::header::CONTENT_LENGTH)
        && !h.contains_key("x-amz-decoded-content-length")
        && h.get(http::header::TRANSFER_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

/// S3-compatible services take a PUT whose body comes chunked without a length; s3s needs
/// the length (to check the payload hash while it streams). A request whose SigV4 header
/// signature holds (checked here with the signer's secret, before a byte of the body is
/// read) has its body staged first, as the signer's upload (its upload slots, at most 5 GiB,
/// the same stall limits), and replayed from there with its length; the temporary blob goes
/// when the replay is dropped. Any other such request is refused 411 MissingContentLength
/// unread.
pub(crate) async fn spool_unsized(
    engine: &Engine,
    req: Request<s3s::Body>,
) -> Result<Request<s3s::Body>, Response<s3s::Body>> {
    let Some(signer) = verify_sigv4(engine, &req).await else {
        return Err(crate::service::xml_error(
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header (or sign the request with SigV4).",
        ));
    };
    let (mut parts, body) = req.into_parts();
    // Only spooled to be replayed (and staged again): no SHA-1 needed here.
    let options = chuan_core::StageOptions::at_most(crate::checksum::MAX_OBJECT_SIZE).deferring_sha1();
    let staged = match engine.stage_with(&signer.principal, body, options).await {
        Ok(s) => s,
        Err(e) => {
            let err = crate::to_s3_error(e);
            let status = err.status_code().unwrap_or(StatusCode::BAD_REQUEST);
            return Err(crate::service::xml_error(status, err.code().as_str(), err.message().unwrap_or("")));
        }
    };
    let file = match staged.reopen() {
        Ok(chuan_core::StagedReader::File(f)) => tokio::fs::File::from_std(f),
        Ok(chuan_core::StagedReader::Memory(bytes)) => {
            // A small body, already in memory: handed on as it is.
            parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(staged.size));
            let frame = Ok::<_, std::io::Error>(hyper::body::Frame::data(bytes.into_inner()));
            let body = http_body_util::StreamBody::new(futures::stream::once(std::future::ready(frame)));
            return Ok(Request::from_parts(parts, s3s::Body::http_body_unsync(body)));
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot reopen a spooled body");
            return Err(crate::service::xml_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.",
            ));
        }
    };
    // `Transfer-Encoding` stays: a client may have signed it (and the length it sent and
    // the listener dropped, which is put back).
    parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(staged.size));
    let stream = futures::StreamExt::map(tokio_util::io::ReaderStream::new(file), move |chunk| {
        let _held = &staged;
        chunk.map(hyper::body::Frame::data)
    });
    Ok(Request::from_parts(parts, s3s::Body::http_body_unsync(http_body_util::StreamBody::new(stream))))
}

/// A path-style SigV2 request to a bucket: clients differ in the canonical resource they
/// sign, `/<bucket>` (s3s's reading, older botocore) or `/<bucket>/` (newer botocore,
/// s3cmd). When the signature holds for `/<bucket>/` (checked here with the signer's
/// secret), the path gets that trailing `/`, so s3s checks what the client signed; s3s routes
/// both paths to the bucket alike. (`virtual_host`: the host names the bucket, the path is a
/// key and stays.)
pub(crate) async fn sigv2_bucket_path<B>(engine: &Engine, req: &mut Request<B>, virtual_host: bool) {
    let path = req.uri().path().to_owned();
    if virtual_host || path.len() < 2 || path[1..].contains('/') {
        return;
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let header_auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("AWS "))
        .and_then(|a| a.split_once(':'))
        .map(|(ak, sig)| (ak.trim().to_owned(), sig.trim().to_owned(), None));
    let q = crate::WIRE.query(Some(&query));
    let presigned = match (q.get("AWSAccessKeyId"), q.get("Signature"), q.get("Expires")) {
        (Some(ak), Some(sig), Some(exp)) => Some((ak.to_owned(), sig.to_owned(), Some(exp.to_owned()))),
        _ => None,
    };
    let Some((ak, given, expires)) = header_auth.or(presigned) else { return };
    let Ok(Some((secret, _))) = engine.credential(&ak, KEY_PAIRS).await else { return };
    let resource = format!("{path}/");
    let ours = sigv2_signature(&secret, req.method().as_str(), &resource, &query, req.headers(), expires.as_deref());
    if !chuan_core::constant_time_eq(ours.as_bytes(), given.as_bytes()) {
        return;
    }
    let rebuilt = if query.is_empty() { resource } else { format!("{resource}?{query}") };
    if let Ok(uri) = rebuilt.parse() {
        *req.uri_mut() = uri;
    }
}

/// A request id in S3's form: 16 upper-case hex digits, from the thread's seeded RNG (a UUID
/// cut to 16 digits, as before, asked the kernel for randomness on every request: 1.8 % of a
/// 4 KiB GET's CPU in perf, 2026-12-03).
pub(crate) fn new_request_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_conditions_and_ranges_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("if-modified-since", "2015-05-03T10:10:00Z".parse().unwrap());
        h.insert("if-unmodified-since", "Sun, 03 May 2015 10:10:00 GMT".parse().unwrap());
        h.insert("range", "bytes=0-1,3-4".parse().unwrap());
        assert_eq!(malformed_ignorable(&h), ["if-modified-since", "range"]);
        for (r, kept) in [("bytes=5-3", false), ("bytes=-5", true), ("bytes=3-", true), ("items=1-2", false)] {
            let mut h = HeaderMap::new();
            h.insert("range", r.parse().unwrap());
            assert_eq!(malformed_ignorable(&h).is_empty(), kept, "{r}");
        }
    }

    #[test]
    fn presigned_expiry_is_bounded() {
        let url = |q: &str| Request::get(format!("/b/k?{q}")).body(()).unwrap();
        let base = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=00";
        assert!(presigned_refusal(&url(&format!("{base}&X-Amz-Expires=604800"))).is_none());
        for (bad, status) in [("604801", 400), ("x", 400), ("-1", 403)] {
            let r = presigned_refusal(&url(&format!("{base}&X-Amz-Expires={bad}"))).expect(bad);
            assert_eq!(r.status().as_u16(), status, "{bad}");
        }
        assert!(presigned_refusal(&url(base)).is_some(), "X-Amz-Expires is required");
        // Names are read decoded; the first of a repeated parameter counts (as `Query::get`).
        assert!(presigned_refusal(&url(&format!("{base}&X%2DAmz-Expires=60"))).is_none(), "an encoded name");
        let r = presigned_refusal(&url(&format!("{base}&X%2DAmz-Expires=604801"))).expect("an encoded name");
        assert_eq!(r.status().as_u16(), 400);
        assert!(presigned_refusal(&url(&format!("{base}&X-Amz-Expires=60&X-Amz-Expires=604801"))).is_none());
        assert!(presigned_refusal(&url(&format!("{base}&X-Amz-Expires=%36%30"))).is_none(), "a value is decoded");
        assert!(presigned_refusal(&url("list-type=2")).is_none());
    }
}
