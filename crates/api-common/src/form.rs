//! `multipart/form-data` bodies, streamed (file parts are never held whole in memory), with
//! the leniencies real upload SDKs need: the UFile SDK ends its body with `--boundary\r\n`
//! instead of the closing `--boundary--\r\n`; boundaries may come unquoted.

use bytes::{Bytes, BytesMut};
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use multer::{Error as FormError, Field, Multipart};

/// The boundary of a `multipart/form-data` content type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    multer::parse_boundary(content_type).ok()
}

/// A multipart reader over `body` that also accepts a missing closing delimiter.
pub fn reader<S>(body: S, boundary: &str) -> Multipart<'static>
where
    S: Stream<Item = Result<Bytes, BoxError>> + Send + 'static,
{
    Multipart::new(CloseDelimiter::new(body, boundary), boundary.to_owned())
}

/// Holds back the last few bytes of the body; if the body ends with a delimiter line that
/// is not the closing one (`\r\n--B\r\n`), turns it into the closing one (`\r\n--B--\r\n`).
struct CloseDelimiter<S> {
    inner: Pin<Box<S>>,
    open: Vec<u8>,
    tail: BytesMut,
    done: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S> CloseDelimiter<S> {
    fn new(inner: S, boundary: &str) -> Self {
        Self {
            inner: Box::pin(inner),
            open: format!("--{boundary}\r\n").into_bytes(),
            tail: BytesMut::new(),
            done: false,
        }
    }
}

impl<S> Stream for CloseDelimiter<S>
where
    S: Stream<Item = Result<Bytes, BoxError>>,
{
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            match self.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(chunk))) => {
                    let keep = self.open.len() + 2;
                    self.tail.extend_from_slice(&chunk);
                    if self.tail.len() > keep {
                        let emit = self.tail.len() - keep;
                        let out = self.tail.split_to(emit).freeze();
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Poll::Ready(None) => {
                    self.done = true;
                    let mut tail = std::mem::take(&mut self.tail);
                    if tail.ends_with(&self.open) {
                        let cut = tail.len() - 2;
                        tail.truncate(cut);
                        tail.extend_from_slice(b"--\r\n");
                    }
                    return Poll::Ready((!tail.is_empty()).then(|| Ok(tail.freeze())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fields(body: &'static [u8]) -> Vec<(String, Vec<u8>)> {
        let stream = futures::stream::iter(body.chunks(7).map(|c| Ok::<_, BoxError>(Bytes::from_static(c))));
        let mut m = reader(stream, "XyZ");
        let mut out = Vec::new();
        while let Some(mut f) = m.next_field().await.unwrap() {
            let name = f.name().unwrap_or("").to_owned();
            let mut data = Vec::new();
            while let Some(c) = f.chunk().await.unwrap() {
                data.extend_from_slice(&c);
            }
            out.push((name, data));
        }
        out
    }

    #[tokio::test]
    async fn accepts_a_missing_closing_delimiter() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"FileName\"\r\n\r\nk\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nhello\r\n--XyZ\r\n";
        assert_eq!(fields(body).await, vec![("FileName".into(), b"k".to_vec()), ("file".into(), b"hello".to_vec())]);
    }

    #[tokio::test]
    async fn accepts_a_proper_body() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ--\r\n";
        assert_eq!(fields(body).await, vec![("a".into(), b"1".to_vec())]);
    }
}
