//! tus 1.0.0 (https://tus.io/protocols/resumable-upload): the core protocol (`HEAD`, `PATCH`
//! with `application/offset+octet-stream`), `OPTIONS` discovery, and the extensions creation,
//! creation-with-upload, creation-defer-length, expiration, checksum, checksum-trailer,
//! termination and concatenation.

use base64::Engine as _;
use chuan_api_common::RequestBody;
use chuan_core::{Append, AppendCheck, AppendChecksum, CoreError, NewResumable, Resumable};
use http::{HeaderMap, Request, Response, StatusCode};

use crate::{error, header, number, set, text, upload_url, Resp, TusDialect};

/// The protocol version served (and the only one: `Tus-Version`).
const VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,expiration,checksum,\
     checksum-trailer,termination,concatenation";
const CONTENT_TYPE: &str = "application/offset+octet-stream";

fn base(status: StatusCode) -> http::response::Builder {
    Response::builder().status(status).header("tus-resumable", VERSION)
}

fn tus_error(e: &CoreError) -> Resp {
    let mut r = error(e);
    set(r.headers_mut(), "tus-resumable", VERSION);
    if let CoreError::OffsetMismatch { actual } = e {
        set(r.headers_mut(), "upload-offset", &actual.to_string());
    }
    r
}

fn bad(status: StatusCode, message: &str) -> Resp {
    let mut r = text(status, message);
    set(r.headers_mut(), "tus-resumable", VERSION);
    r
}

/// `412` unless the request speaks tus 1.0.0.
fn check_version(h: &HeaderMap) -> Result<(), Resp> {
    match header(h, "tus-resumable") {
        Some(VERSION) => Ok(()),
        _ => {
            let mut r = bad(StatusCode::PRECONDITION_FAILED, "this server speaks tus 1.0.0 (Tus-Resumable: 1.0.0)");
            set(r.headers_mut(), "tus-version", VERSION);
            Err(r)
        }
    }
}

/// The caller of a tus request: `412` unless it speaks tus 1.0.0, then `401` without valid
/// credentials.
async fn caller(d: &TusDialect, h: &HeaderMap) -> Result<chuan_core::Principal, Resp> {
    check_version(h)?;
    d.caller(h).await
}

pub(crate) fn options(d: &TusDialect) -> Resp {
    let algorithms: Vec<&str> = AppendChecksum::ALL.iter().map(|(n, _)| *n).collect();
    base(StatusCode::NO_CONTENT)
        .header("tus-version", VERSION)
        .header("tus-extension", EXTENSIONS)
        .header("tus-max-size", d.engine.config.resumable_max_size.to_string())
        .header("tus-checksum-algorithm", algorithms.join(","))
        .body(chuan_api_common::empty())
        .expect("valid response")
}

/// Headers every answer about an upload carries.
fn describe(r: &mut Resp, u: &Resumable) {
    let h = r.headers_mut();
    set(h, "upload-offset", &u.offset.to_string());
    match u.length {
        Some(l) => set(h, "upload-length", &l.to_string()),
        None => set(h, "upload-defer-length", "1"),
    }
    if let Some(ms) = u.expires_ms {
        set(h, "upload-expires", &chuan_api_common::http_date(ms));
    }
    if let Some(m) = u.echo.get("metadata").and_then(|m| m.as_str()) {
        set(h, "upload-metadata", m);
    }
    if let Some(c) = u.echo.get("concat").and_then(|c| c.as_str()) {
        set(h, "upload-concat", c);
    } else if u.partial {
        set(h, "upload-concat", "partial");
    }
    set(h, "cache-control", "no-store");
}

/// POST to the base: creation (with upload), deferred length, partial and final uploads.
pub(crate) async fn create(d: &TusDialect, req: Request<RequestBody>) -> Resp {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let p = match caller(d, h).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let concat = header(h, "upload-concat");
    let (partial, finals) = match concat {
        None => (false, None),
        Some("partial") => (true, None),
        Some(c) if c.starts_with("final;") => {
            let urls: Vec<&str> = c["final;".len()..].split(' ').filter(|u| !u.is_empty()).collect();
            match urls.iter().map(|u| crate::id_of_url(u)).collect::<Option<Vec<&str>>>() {
                Some(ids) if !ids.is_empty() => (false, Some(ids.into_iter().map(str::to_owned).collect::<Vec<_>>())),
                _ => return bad(StatusCode::BAD_REQUEST, "Upload-Concat: final; lists upload URLs of this server"),
            }
        }
        Some(_) => return bad(StatusCode::BAD_REQUEST, "Upload-Concat is `partial` or `final;<url> <url>...`"),
    };
    let length = match number(h, "upload-length") {
        Ok(l) => l,
        Err(m) => return bad(StatusCode::BAD_REQUEST, &m),
    };
    let deferred = match header(h, "upload-defer-length") {
        None => false,
        Some("1") => true,
        Some(_) => return bad(StatusCode::BAD_REQUEST, "Upload-Defer-Length must be 1"),
    };
    match (&finals, length, deferred) {
        (Some(_), None, false) => {}
        (Some(_), _, _) => return bad(StatusCode::BAD_REQUEST, "a final upload declares no length"),
        (None, Some(_), false) | (None, None, true) => {}
        (None, _, _) => {
            return bad(StatusCode::BAD_REQUEST, "send Upload-Length, or Upload-Defer-Length: 1, but not both")
        }
    }
    let raw_meta = header(h, "upload-metadata");
    let m = match crate::metadata::parse(raw_meta) {
        Ok(m) => m,
        Err(msg) => return bad(StatusCode::BAD_REQUEST, &msg),
    };
    let mut echo = serde_json::Map::new();
    if let Some(raw) = raw_meta {
        echo.insert("metadata".into(), raw.into());
    }
    let mut new = NewResumable::new(&m.bucket, &m.key);
    new.meta = m.meta;
    new.claim = m.claim;
    new.partial = partial;
    new.length = length;
    if let Some(ids) = &finals {
        echo.insert("concat".into(), concat.unwrap_or_default().into()); // as received (tus §concatenation)
        new.echo = echo.into();
        return match d.engine.concatenate_resumable(&p, new, ids).await {
            Ok(u) => created(&u),
            Err(e) => tus_error(&e),
        };
    }
    new.echo = echo.into();
    // creation-with-upload: a body of the tus type is the first append, checked like a
    // PATCH's (an `Upload-Checksum` header or trailer); a body of another type is not upload
    // data (tus §creation-with-upload).
    let data = chuan_api_common::has_body(h) && header(h, "content-type") == Some(CONTENT_TYPE);
    let trailers = chuan_api_common::Trailers::default();
    let checksum = match data.then(|| checksum(h, &trailers)).transpose() {
        Ok(c) => c.flatten(),
        Err(m) => return bad(StatusCode::BAD_REQUEST, &m),
    };
    let u = match d.engine.create_resumable(&p, new).await {
        Ok(u) => u,
        Err(e) => return tus_error(&e),
    };
    // Not read when the upload is already complete: an instant upload.
    if data && !u.complete {
        let a = Append { offset: 0, length: None, checksum, keep_prefix: true, last: false };
        return match crate::append_detached(&d.engine, p, u.id.clone(), a, body, trailers, true).await {
            Ok(done) => created(&done.upload),
            Err(e) => tus_error(&e), // refused: the upload is gone with it
        };
    }
    created(&u)
}

fn created(u: &Resumable) -> Resp {
    let mut r = base(StatusCode::CREATED)
        .header(http::header::LOCATION, upload_url(&u.id))
        .body(chuan_api_common::empty())
        .expect("valid response");
    describe(&mut r, u);
    r
}

pub(crate) async fn head(d: &TusDialect, id: &str, req: Request<RequestBody>) -> Resp {
    let p = match caller(d, req.headers()).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match d.engine.resumable(&p, id).await {
        Ok(u) => {
            let mut r = base(StatusCode::OK).body(chuan_api_common::empty()).expect("valid response");
            describe(&mut r, &u);
            r
        }
        Err(e) => {
            let mut r = tus_error(&e);
            set(r.headers_mut(), "cache-control", "no-store");
            r
        }
    }
}

/// `Upload-Checksum: <algorithm> <Base64>`, as a header or announced (`Trailer:
/// Upload-Checksum`) as a trailer of a chunked body (tus checksum-trailer): `Ok(None)` when
/// neither; `Err` (400) for an unsupported algorithm or a malformed value.
fn checksum(h: &HeaderMap, trailers: &chuan_api_common::Trailers) -> Result<Option<AppendCheck>, String> {
    if let Some(v) = header(h, "upload-checksum") {
        let (algo, raw) = parse_checksum(v)?;
        return Ok(Some(AppendCheck::Now(algo, raw)));
    }
    let announced = h
        .get_all(http::header::TRAILER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case("upload-checksum"));
    if !announced {
        return Ok(None);
    }
    let trailers = trailers.clone();
    Ok(Some(AppendCheck::Later(Box::new(move || {
        let fields = trailers.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
        let v = header(&fields, "upload-checksum")
            .ok_or_else(|| CoreError::InvalidArgument("the announced Upload-Checksum trailer did not come".into()))?;
        parse_checksum(v).map_err(CoreError::InvalidArgument)
    }))))
}

fn parse_checksum(v: &str) -> Result<(AppendChecksum, Vec<u8>), String> {
    let (name, b64) = v.split_once(' ').ok_or("Upload-Checksum is `<algorithm> <Base64 digest>`")?;
    let algo = AppendChecksum::parse(name).ok_or_else(|| format!("unsupported checksum algorithm {name:?}"))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| "Upload-Checksum: the digest is not Base64".to_owned())?;
    Ok((algo, raw))
}

pub(crate) async fn patch(d: &TusDialect, id: &str, req: Request<RequestBody>) -> Resp {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let p = match caller(d, h).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if header(h, "content-type") != Some(CONTENT_TYPE) {
        return bad(StatusCode::UNSUPPORTED_MEDIA_TYPE, "PATCH bodies are application/offset+octet-stream");
    }
    let offset = match number(h, "upload-offset") {
        Ok(Some(o)) => o,
        Ok(None) => return bad(StatusCode::BAD_REQUEST, "PATCH needs Upload-Offset"),
        Err(m) => return bad(StatusCode::BAD_REQUEST, &m),
    };
    let length = match number(h, "upload-length") {
        Ok(l) => l,
        Err(m) => return bad(StatusCode::BAD_REQUEST, &m),
    };
    let trailers = chuan_api_common::Trailers::default();
    let checksum = match checksum(h, &trailers) {
        Ok(c) => c,
        Err(m) => return bad(StatusCode::BAD_REQUEST, &m),
    };
    let a = Append { offset, length, checksum, keep_prefix: true, last: false };
    match crate::append_detached(&d.engine, p, id.to_owned(), a, body, trailers, false).await {
        Ok(done) => match done.cut {
            Some(e) => {
                let mut r = tus_error(&e);
                set(r.headers_mut(), "upload-offset", &done.upload.offset.to_string());
                r
            }
            None => {
                let mut r = base(StatusCode::NO_CONTENT).body(chuan_api_common::empty()).expect("valid response");
                describe(&mut r, &done.upload);
                r
            }
        },
        // A final upload (tus §concatenation) or a finished one takes no more bytes.
        Err(CoreError::UploadComplete) => bad(StatusCode::FORBIDDEN, "the upload is complete and takes no more bytes"),
        Err(e) => tus_error(&e),
    }
}

pub(crate) async fn delete(d: &TusDialect, id: &str, req: Request<RequestBody>) -> Resp {
    let p = match caller(d, req.headers()).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match d.engine.terminate_resumable(&p, id).await {
        Ok(()) => base(StatusCode::NO_CONTENT).body(chuan_api_common::empty()).expect("valid response"),
        Err(e) => tus_error(&e),
    }
}
