//! HTTP plumbing shared by the dialects, written once: the one response body type the
//! dispatcher serves, JSON replies, streaming `multipart/form-data` ([`form`]), bounded body
//! reading, query and form decoding ([`query`]), HMAC signers ([`sign`]), HTTP dates, range
//! handling, and the request's origin for building URLs that point back here.

pub mod form;
pub mod interim;
pub mod query;
pub mod sign;

pub use query::{percent_decode, percent_encode, query_param, urlencode, Query, Wire};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every dialect's response body: a whole buffer or a stream, boxed.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A request body the dispatcher may have partly read (to route it) and replays in full.
pub type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// `prefix` followed by the rest of `body`, frames (and trailers) unchanged.
pub fn replay<B>(prefix: Bytes, body: B) -> RequestBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let first = futures::stream::once(async move { Ok::<_, BoxError>(http_body::Frame::data(prefix)) });
    let rest = http_body_util::BodyStream::new(body.map_err(Into::into));
    StreamBody::new(first.chain(rest)).boxed_unsync()
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// A streaming body (downloads): bytes are sent as the stream yields them.
pub fn stream<S>(s: S) -> Body
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    StreamBody::new(s.map_ok(http_body::Frame::data).map_err(|e| Box::new(e) as BoxError)).boxed_unsync()
}

/// Boxes any body whose errors convert to [`BoxError`] (e.g. s3s's).
pub fn boxed<B>(b: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed_unsync()
}

/// Where a request's trailer fields land once its body has been read ([`data_with_trailers`]).
pub type Trailers = std::sync::Arc<std::sync::Mutex<Option<http::HeaderMap>>>;

/// A body's data as a stream; its trailer fields (the last section of a chunked body, RFC 9112
/// §7.1.2) are put in `trailers` when they arrive, so a check that depends on them runs after
/// the stream ends.
pub fn data_with_trailers(body: RequestBody, trailers: Trailers) -> impl Stream<Item = Result<Bytes, BoxError>> + Send {
    futures::stream::unfold(body, move |mut body| {
        let trailers = trailers.clone();
        async move {
            loop {
                match body.frame().await? {
                    Ok(frame) => match frame.into_data() {
                        Ok(data) => return Some((Ok(data), body)),
                        Err(frame) => {
                            if let Ok(t) = frame.into_trailers() {
                                *trailers.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
                            }
                        }
                    },
                    Err(e) => return Some((Err(e), body)),
                }
            }
        }
    })
}

/// Why [`read_limited`] refused a body.
#[derive(Debug)]
pub enum ReadError {
    /// Past the limit (the protocol's "too large" answer).
    TooLarge,
    /// The client stopped sending and the listener cut the body off: the protocol's request
    /// timeout, as `CoreError::RequestTimeout` renders it (`From<ReadError> for CoreError`).
    Stalled,
    /// The body could not be read (the connection failed).
    Io(String),
}

impl ReadError {
    /// The protocol's request timeout (from `CoreError::RequestTimeout`) for a stalled body;
    /// `otherwise()` for every other refusal.
    pub fn or_timeout<E: From<chuan_core::CoreError>>(self, otherwise: impl FnOnce(Self) -> E) -> E {
        match self {
            ReadError::Stalled => chuan_core::CoreError::RequestTimeout.into(),
            other => otherwise(other),
        }
    }
}

impl From<ReadError> for chuan_core::CoreError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::TooLarge => chuan_core::CoreError::InvalidArgument("the request body is too large".into()),
            ReadError::Stalled => chuan_core::CoreError::RequestTimeout,
            ReadError::Io(m) => {
                chuan_core::CoreError::InvalidArgument(format!("the request body could not be read: {m}"))
            }
        }
    }
}

/// Reads a whole request body of at most `limit` bytes (JSON, forms: never file contents),
/// refusing it as soon as it goes past the limit.
pub async fn read_limited(mut body: RequestBody, limit: usize) -> Result<Bytes, ReadError> {
    // Frame by frame rather than through `http_body_util::Limited`, whose `Into<BoxError>`
    // bound makes the futures of callers fail rustc's `Send` inference.
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if chuan_core::is_stalled(e.as_ref()) {
                ReadError::Stalled
            } else {
                ReadError::Io(e.to_string())
            }
        })?;
        if let Ok(d) = frame.into_data() {
            if buf.len() + d.len() > limit {
                return Err(ReadError::TooLarge);
            }
            buf.extend_from_slice(&d);
        }
    }
    Ok(buf.freeze())
}

/// Reads frames from `body` until `enough(bytes so far)` or `limit` bytes or the end; returns
/// what was read and the rest of the body (for [`replay`]).
pub async fn peek<B>(mut body: B, limit: usize, enough: fn(&[u8]) -> bool) -> Result<(Bytes, B), BoxError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut buf = bytes::BytesMut::new();
    while buf.len() < limit && !enough(&buf) {
        match body.frame().await {
            None => break,
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => buf.extend_from_slice(&d),
                Err(_) => break,
            },
        }
    }
    Ok((buf.freeze(), body))
}

/// `http://host[:port]` as the client addressed this server, for URLs handed back to it.
pub fn origin<B>(req: &http::Request<B>) -> String {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "127.0.0.1".into());
    let scheme = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// A JSON answer (`application/json`).
pub fn json(status: http::StatusCode, v: &impl serde::Serialize) -> http::Response<Body> {
    json_typed(status, "application/json", v)
}

/// A JSON answer with another media type (`application/json; charset=utf-8`, ...).
pub fn json_typed(status: http::StatusCode, content_type: &str, v: &impl serde::Serialize) -> http::Response<Body> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(full(serde_json::to_vec(v).unwrap_or_default()))
        .expect("valid response")
}

/// The credentials of an `Authorization` value in `scheme` (`"Basic"`, `"Bearer"`,
/// `"UPYUN"`, ...): the text after the scheme and its whitespace, the scheme matched without
/// regard to case as RFC 9110 §11.1 says; `None` for another scheme or no credentials.
pub fn auth_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let value = value.trim_start();
    let head = value.get(..scheme.len())?;
    let rest = value[scheme.len()..].strip_prefix([' ', '\t'])?.trim();
    (head.eq_ignore_ascii_case(scheme) && !rest.is_empty()).then_some(rest)
}

/// `(user, password)` of an `Authorization: Basic <base64 of user:password>` value (RFC 7617
/// §2; the user id is everything before the first `:`); `None` for anything else.
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(auth_scheme(value, "Basic")?).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The caller of a request to Chuan's own endpoints (tus, the IETF resumable uploads,
/// `/_chuan/v1`): HTTP Basic with a key pair (RFC 7617), or an upload token as `Authorization:
/// Bearer <token>` (RFC 6750 §2.1; [`chuan_core::Engine::issue_upload_token`]), each held to
/// its scope. `Ok(None)` without valid credentials, `Err` when the credential store cannot be
/// asked (answered 503, not 401).
pub async fn native_principal(
    engine: &chuan_core::Engine,
    headers: &http::HeaderMap,
) -> Result<Option<chuan_core::Principal>, chuan_core::CoreError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    if let Some(token) = auth_scheme(value, "Bearer") {
        return engine.bearer(chuan_core::store::CredentialKind::UploadToken, token).await;
    }
    match parse_basic(value) {
        Some((ak, sk)) => engine.basic(&ak, &sk).await,
        None => Ok(None),
    }
}

/// The `WWW-Authenticate` challenges of Chuan's own endpoints (RFC 9110 §11.6.1): a key pair
/// with HTTP Basic, or an upload token.
pub const NATIVE_CHALLENGES: &str = "Basic realm=\"chuan\", charset=\"UTF-8\", Bearer realm=\"chuan\"";

/// Whether a request has a body to read: chunked, or a `Content-Length` above zero.
pub fn has_body(h: &http::HeaderMap) -> bool {
    h.contains_key(http::header::TRANSFER_ENCODING)
        || h.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0")
}

/// An IMF-fixdate (RFC 9110 §5.6.7) of a time in milliseconds since the epoch.
pub fn http_date(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    httpdate::fmt_http_date(t)
}

/// Seconds since the epoch of an HTTP date (IMF-fixdate, or the obsolete RFC 850 and asctime
/// forms RFC 9110 §5.6.7 says to accept); `None` when it is none of them.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

/// A `Range: bytes=...` header as `[start, end)` of a `size`-byte entity, never empty:
/// `Ok(None)` for a header to ignore (another unit, several ranges, or a suffix range of an
/// empty entity, which RFC 9110 §14.1.1 calls satisfiable but which selects nothing a
/// `Content-Range` can name: the whole, empty, entity is sent with 200), `Err` when
/// unsatisfiable.
pub fn parse_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else { return Ok(None) };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        return match (n, size) {
            (0, _) => Err(()),
            (_, 0) => Ok(None),
            _ => Ok(Some((size.saturating_sub(n), size))),
        };
    }
    let start: u64 = a.parse().map_err(|_| ())?;
    if start >= size {
        return Err(());
    }
    let end = if b.is_empty() { size } else { (b.parse::<u64>().map_err(|_| ())? + 1).min(size) };
    if end <= start {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// Applies an optional `Range` header to a response for a `size`-byte entity: the bytes to
/// send as `[start, end)`, with `206` and `Content-Range` set for a range; `Err` when the range
/// is unsatisfiable (the caller answers 416 in its protocol's format).
pub fn with_range(
    b: http::response::Builder,
    range: Option<&str>,
    size: u64,
) -> Result<(http::response::Builder, u64, u64), ()> {
    match range.map(|r| parse_range(r, size)).transpose()?.flatten() {
        None => Ok((b, 0, size)),
        Some((s, e)) => Ok((
            b.status(http::StatusCode::PARTIAL_CONTENT)
                .header(http::header::CONTENT_RANGE, format!("bytes {s}-{}/{size}", e - 1)),
            s,
            e,
        )),
    }
}

/// `416 Range Not Satisfiable` with `Content-Range: bytes */size` (RFC 9110 §15.5.17), for
/// protocols that answer it without a body of their own.
pub fn range_not_satisfiable(size: u64) -> http::Response<Body> {
    http::Response::builder()
        .status(http::StatusCode::RANGE_NOT_SATISFIABLE)
        .header(http::header::CONTENT_RANGE, format!("bytes */{size}"))
        .header(http::header::ACCEPT_RANGES, "bytes")
        .body(empty())
        .expect("valid response")
}

/// A listing's resume point as a wire token (continuation tokens, markers, list iterators):
/// URL-safe base64 without padding, so any key or core cursor survives headers and queries.
pub fn encode_token(resume: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(resume)
}

/// The resume point [`encode_token`] made, or `None` for anything else.
pub fn decode_token(token: &str) -> Option<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok().and_then(|b| String::from_utf8(b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-", 10), Ok(Some((0, 10))));
        assert_eq!(parse_range("bytes=2-4", 10), Ok(Some((2, 5))));
        assert_eq!(parse_range("bytes=-3", 10), Ok(Some((7, 10))));
        assert_eq!(parse_range("bytes=8-100", 10), Ok(Some((8, 10))));
        assert_eq!(parse_range("bytes=10-", 10), Err(()));
        assert_eq!(parse_range("bytes=-0", 10), Err(()));
        assert_eq!(auth_scheme("bearer  tok ", "Bearer"), Some("tok"));
        assert_eq!(auth_scheme("BASIC abc", "Basic"), Some("abc"));
        assert_eq!(auth_scheme("Basicabc", "Basic"), None);
        assert_eq!(auth_scheme("Bearer ", "Bearer"), None);
        assert_eq!(auth_scheme("Béarer x", "Bearer"), None);
        // A suffix of an empty entity selects nothing: the whole (empty) entity, 200.
        assert_eq!(parse_range("bytes=-5", 0), Ok(None));
        assert_eq!(parse_range("bytes=0-", 0), Err(()));
        assert_eq!(parse_range("items=1-2", 10), Ok(None));
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Ok(None));
    }

    #[test]
    fn http_dates_round_trip() {
        assert_eq!(http_date(1_698_796_800_000), "Wed, 01 Nov 2023 00:00:00 GMT");
        assert_eq!(parse_http_date("Wed, 01 Nov 2023 00:00:00 GMT"), Some(1_698_796_800));
        assert_eq!(parse_http_date("Wednesday, 01-Nov-23 00:00:00 GMT"), Some(1_698_796_800));
        assert_eq!(parse_http_date("2015-05-03T10:10:00Z"), None);
    }
}
