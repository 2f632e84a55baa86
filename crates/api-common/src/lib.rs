//! HTTP plumbing shared by the dialects: the one response body type the dispatcher serves,
//! bounded body reading, and the request's origin for building URLs that point back here.

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every dialect's response body: a whole buffer or a stream, boxed.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

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
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ReadError::TooLarge),
        Err(e) => Err(ReadError::Io(e.to_string())),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_keeps_plus() {
        assert_eq!(percent_decode("a%2Fb+c%3d"), "a/b+c=");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(query_param(Some("x=1&sig=a+b%2B"), "sig").as_deref(), Some("a+b+"));
    }
}
