//! HTTP plumbing shared by the dialects: the one response body type the dispatcher serves,
//! streaming `multipart/form-data` ([`form`]),
//! bounded body reading, and the request's origin for building URLs that point back here.

pub mod form;

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

#[derive(Debug)]
pub enum ReadError {
    TooLarge,
    Io(String),
}

/// Reads a whole request body of at most `limit` bytes (JSON, forms: never file contents).
pub async fn read_limited(body: hyper::body::Incoming, limit: usize) -> Result<Bytes, ReadError> {
    collect_limited(body.map_err(|e| Box::new(e) as BoxError).boxed_unsync(), limit).await
}

/// [`read_limited`] for a body the dispatcher replays.
pub async fn read_limited_boxed(body: RequestBody, limit: usize) -> Result<Bytes, ReadError> {
    collect_limited(body, limit).await
}

async fn collect_limited(mut body: RequestBody, limit: usize) -> Result<Bytes, ReadError> {
    // Frame by frame rather than through `http_body_util::Limited`, whose `Into<BoxError>`
    // bound makes the futures of callers fail rustc's `Send` inference.
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Io(e.to_string()))?;
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

/// One query parameter, percent-decoded (`+` kept literal, as signature parameters need).
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| percent_decode(v))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `Range: bytes=...` header as `[start, end)` of a `size`-byte entity: `Ok(None)` for a
/// header to ignore (another unit, several ranges), `Err` when unsatisfiable.
pub fn parse_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else { return Ok(None) };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        return if n == 0 { Err(()) } else { Ok(Some((size.saturating_sub(n), size))) };
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
        assert_eq!(parse_range("items=1-2", 10), Ok(None));
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Ok(None));
    }

    #[test]
    fn decodes_percent_and_keeps_plus() {
        assert_eq!(percent_decode("a%2Fb+c%3d"), "a/b+c=");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(query_param(Some("x=1&sig=a+b%2B"), "sig").as_deref(), Some("a+b+"));
    }
}
