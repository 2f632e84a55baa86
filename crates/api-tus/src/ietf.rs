//! The IETF draft "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload-13,
//! interop version 10): upload creation at `/_chuan/resumable/{bucket}/{key}` (`POST` or `PUT`
//! with `Upload-Complete: ?0|?1`), offset retrieval (`HEAD`/`GET`), append (`PATCH
//! application/partial-upload` with `Upload-Offset` and `Upload-Complete`) and cancellation
//! (`DELETE`) at the upload resource `/_chuan/tus/{id}`, limits in `Upload-Limit`.
//!
//! A creation with content from a client of interop version 10 on HTTP/1.1 gets `104 Upload
//! Resumption Supported` (`Location`, `Upload-Limit`) before its body is read, through the
//! listener's interim-response channel (`chuan_api_common::interim`); it is skipped when the
//! connection is still writing a previous response (the draft makes it optional), and a
//! client can always create the upload empty with `Upload-Complete: ?0` ("careful creation")
//! to learn the URL first. Every append answer carries `Upload-Offset` (tus-js-client's draft
//! mode reads it).

use chuan_api_common::RequestBody;
use chuan_core::store::ObjectRecord;
use chuan_core::{Append, Appended, CoreError, NewResumable, Resumable};
use http::{HeaderMap, Method, Request, Response, StatusCode};

use crate::{header, number, set, text, upload_url, Resp, TusDialect, WIRE};

const PARTIAL_UPLOAD: &str = "application/partial-upload";
const INTEROP: &str = "upload-draft-interop-version";
/// The interop version of draft -13 (the one 104 responses are sent to).
const INTEROP_VERSION: &str = "10";
const PROBLEM_BASE: &str = "https://iana.org/assignments/http-problem-types";

/// An SF boolean header: `Ok(None)` when missing.
fn boolean(h: &HeaderMap, name: &str) -> Result<Option<bool>, String> {
    match header(h, name) {
        None => Ok(None),
        Some("?1") => Ok(Some(true)),
        Some("?0") => Ok(Some(false)),
        Some(_) => Err(format!("{name} is a structured boolean: ?0 or ?1")),
    }
}

fn limits(d: &TusDialect, u: Option<&Resumable>) -> String {
    let mut v = format!("max-size={}", d.engine.config.resumable_max_size);
    if let Some(ms) = u.and_then(|u| u.expires_ms) {
        let left = (ms - chuan_core::store::now_ms()).max(0) / 1000;
        v.push_str(&format!(", max-age={left}"));
    }
    v
}

fn problem(status: StatusCode, kind: &str, detail: &str, extra: serde_json::Value) -> Resp {
    let mut body = serde_json::json!({ "type": format!("{PROBLEM_BASE}#{kind}"), "title": detail });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/problem+json")
        .body(chuan_api_common::full(body.to_string()))
        .expect("valid response")
}

/// A core error as the draft answers it.
fn draft_error(d: &TusDialect, e: &CoreError, provided: Option<u64>) -> Resp {
    let mut r = match e {
        CoreError::OffsetMismatch { actual } => {
            let mut r = problem(
                StatusCode::CONFLICT,
                "mismatching-upload-offset",
                "the upload offset does not match",
                serde_json::json!({ "expected-offset": actual, "provided-offset": provided }),
            );
            set(r.headers_mut(), "upload-offset", &actual.to_string());
            set(r.headers_mut(), "upload-complete", "?0");
            r
        }
        CoreError::SizeMismatch { .. } => {
            problem(StatusCode::BAD_REQUEST, "inconsistent-upload-length", &e.to_string(), serde_json::json!({}))
        }
        CoreError::UploadComplete => problem(
            StatusCode::BAD_REQUEST,
            "inconsistent-upload-length",
            "the upload is complete and takes no more bytes",
            serde_json::json!({}),
        ),
        _ => crate::error(e),
    };
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        set(r.headers_mut(), "upload-limit", &limits(d, None));
    }
    r
}

/// `OPTIONS`: the server's limits (the draft's server-limits discovery).
fn options(d: &TusDialect) -> Resp {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("upload-limit", limits(d, None))
        .header("accept-patch", PARTIAL_UPLOAD)
        .body(chuan_api_common::empty())
        .expect("valid response")
}

/// Creation (`POST`/`PUT`) and limits (`OPTIONS`) at `/_chuan/resumable/{bucket}/{key}`.
pub(crate) async fn creation_or_options(
    d: &TusDialect,
    method: &Method,
    rest: &str,
    req: Request<RequestBody>,
) -> Resp {
    if method == Method::OPTIONS {
        return options(d);
    }
    if method != Method::POST && method != Method::PUT {
        return text(StatusCode::METHOD_NOT_ALLOWED, "POST or PUT creates an upload here");
    }
    let Some((bucket, key)) = rest.split_once('/').filter(|(b, k)| !b.is_empty() && !k.is_empty()) else {
        return text(StatusCode::NOT_FOUND, "create uploads at /_chuan/resumable/{bucket}/{key}");
    };
    let (bucket, key) = (WIRE.path(bucket), WIRE.path(key));
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let p = match d.caller(h).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (complete, declared) = match (boolean(h, "upload-complete"), number(h, "upload-length")) {
        (Ok(c), Ok(l)) => (c.unwrap_or(true), l),
        (Err(m), _) | (_, Err(m)) => return text(StatusCode::BAD_REQUEST, &m),
    };
    let content_length = number(h, "content-length").ok().flatten();
    let length = match (complete, declared, content_length) {
        (true, Some(l), Some(c)) if l != c => {
            return problem(
                StatusCode::BAD_REQUEST,
                "inconsistent-upload-length",
                "Upload-Length disagrees with the content of a complete upload",
                serde_json::json!({}),
            )
        }
        (true, None, Some(c)) => Some(c),
        (_, l, _) => l,
    };
    let mut new = NewResumable::new(&bucket, &key);
    new.length = length;
    if let Some(t) = header(h, "content-type").filter(|t| *t != PARTIAL_UPLOAD) {
        new.meta.content_type = Some(t.to_owned());
    }
    let u = match d.engine.create_resumable(&p, new).await {
        Ok(u) => u,
        Err(e) => return draft_error(d, &e, Some(0)),
    };
    if u.complete {
        // Nothing to send (an empty upload): the object exists already.
        return finished(StatusCode::CREATED, &u, None, true);
    }
    if !chuan_api_common::has_body(h) && !complete {
        return incomplete(d, StatusCode::CREATED, &u, true);
    }
    // 104: the upload URL before the data, so a client cut off mid-body can resume (only to a
    // client of this interop version, on HTTP/1.1).
    if let (Some(interim), Some(INTEROP_VERSION), http::Version::HTTP_11) =
        (parts.extensions.get::<chuan_api_common::interim::Interim>(), header(h, INTEROP), parts.version)
    {
        let mut head = HeaderMap::new();
        set(&mut head, "location", &upload_url(&u.id));
        set(&mut head, "upload-limit", &limits(d, Some(&u)));
        set(&mut head, "upload-draft-interop-version", INTEROP_VERSION);
        let status = StatusCode::from_u16(104).expect("valid status");
        if !interim.send(status, "Upload Resumption Supported", &head).await {
            tracing::debug!(upload = %u.id, "104 not sent: the connection was busy");
        }
    }
    let a = Append { offset: 0, length: None, checksum: None, keep_prefix: true, last: complete };
    match crate::append_detached(&d.engine, p, u.id.clone(), a, body, Default::default(), true).await {
        Ok(done) => appended(d, StatusCode::CREATED, done, true),
        Err(e) => draft_error(d, &e, None), // refused: the upload (announced by the 104) is gone
    }
}

/// The answer for an upload that is not complete yet.
fn incomplete(d: &TusDialect, status: StatusCode, u: &Resumable, location: bool) -> Resp {
    let mut r = Response::builder().status(status).body(chuan_api_common::empty()).expect("valid response");
    let h = r.headers_mut();
    if location {
        set(h, "location", &upload_url(&u.id));
    }
    set(h, "upload-complete", "?0");
    set(h, "upload-offset", &u.offset.to_string());
    set(h, "upload-limit", &limits(d, Some(u)));
    r
}

/// The answer to an append (or a creation with content).
fn appended(d: &TusDialect, status: StatusCode, done: Appended, location: bool) -> Resp {
    if let Some(e) = &done.cut {
        let mut r = draft_error(d, e, None);
        set(r.headers_mut(), "upload-offset", &done.upload.offset.to_string());
        return r;
    }
    if done.upload.complete && !done.upload.partial {
        return finished(status, &done.upload, done.object.as_ref(), location);
    }
    incomplete(d, if location { status } else { StatusCode::NO_CONTENT }, &done.upload, location)
}

/// The answer for a completed upload (the object's ETag when this request completed it).
fn finished(status: StatusCode, u: &Resumable, object: Option<&ObjectRecord>, location: bool) -> Resp {
    let mut body = serde_json::json!({ "bucket": u.bucket, "key": u.key, "size": u.offset });
    if let Some(o) = object {
        body["etag"] = o.etag.clone().into();
    }
    let mut r = chuan_api_common::json(status, &body);
    let h = r.headers_mut();
    if location {
        set(h, "location", &upload_url(&u.id));
    }
    set(h, "upload-complete", "?1");
    set(h, "upload-offset", &u.offset.to_string());
    if let Some(o) = object {
        set(h, "etag", &format!("\"{}\"", o.etag));
    }
    r
}

/// Requests to the upload resource.
pub(crate) async fn upload(d: &TusDialect, method: &Method, id: &str, req: Request<RequestBody>) -> Resp {
    if method == Method::OPTIONS {
        return options(d);
    }
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let p = match d.caller(h).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match *method {
        Method::HEAD | Method::GET => match d.engine.resumable(&p, id).await {
            Ok(u) => {
                let mut r =
                    Response::builder().status(StatusCode::NO_CONTENT).body(chuan_api_common::empty()).expect("valid");
                let hm = r.headers_mut();
                set(hm, "upload-offset", &u.offset.to_string());
                set(hm, "upload-complete", if u.complete { "?1" } else { "?0" });
                if let Some(l) = u.length {
                    set(hm, "upload-length", &l.to_string());
                }
                set(hm, "upload-limit", &limits(d, Some(&u)));
                set(hm, "cache-control", "no-store");
                r
            }
            Err(e) => draft_error(d, &e, None),
        },
        Method::PATCH => {
            if header(h, "content-type") != Some(PARTIAL_UPLOAD) {
                return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, "appends are application/partial-upload");
            }
            let (offset, complete) = match (number(h, "upload-offset"), boolean(h, "upload-complete")) {
                (Ok(Some(o)), Ok(Some(c))) => (o, c),
                (Err(m), _) | (_, Err(m)) => return text(StatusCode::BAD_REQUEST, &m),
                _ => return text(StatusCode::BAD_REQUEST, "an append carries Upload-Offset and Upload-Complete"),
            };
            let length = match number(h, "upload-length") {
                Ok(l) => l,
                Err(m) => return text(StatusCode::BAD_REQUEST, &m),
            };
            let a = Append { offset, length, checksum: None, keep_prefix: true, last: complete };
            match crate::append_detached(&d.engine, p, id.to_owned(), a, body, Default::default(), false).await {
                Ok(done) => appended(d, StatusCode::OK, done, false),
                Err(e) => draft_error(d, &e, Some(offset)),
            }
        }
        Method::DELETE => match d.engine.terminate_resumable(&p, id).await {
            Ok(()) => Response::builder().status(StatusCode::NO_CONTENT).body(chuan_api_common::empty()).expect("ok"),
            Err(e) => draft_error(d, &e, None),
        },
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "HEAD, GET, PATCH, DELETE or OPTIONS"),
    }
}
