//! `multipart/form-data` bodies, streamed (file parts are never held whole in memory), with
//! the leniencies real upload SDKs need: the UFile SDK ends its body with `--boundary\r\n`
//! instead of the closing `--boundary--\r\n`; boundaries may come unquoted.
//!
//! Every form is read through a [`FormReader`], which bounds what a form may make the server
//! hold before anyone is authenticated: the number of parts, the size of each small field and
//! the total of all small fields ([`FormLimits`]), counted while streaming. Form uploads carry
//! their signature inside the form, so these limits are what stands between an anonymous
//! client and the server's memory.

use bytes::{Bytes, BytesMut};
use futures::Stream;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

pub use multer::{Field, Multipart};

/// Bounds on a form's small (non-file) fields. Set once at start-up with [`set_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormLimits {
    /// Parts a form may have, file parts included.
    pub max_fields: usize,
    /// Bytes of one small field (policies and signatures are a few KiB).
    pub max_field_bytes: usize,
    /// Bytes of all small fields of one form together.
    pub max_total_bytes: usize,
}

impl Default for FormLimits {
    fn default() -> Self {
        Self { max_fields: 64, max_field_bytes: 64 << 10, max_total_bytes: 256 << 10 }
    }
}

static LIMITS: OnceLock<FormLimits> = OnceLock::new();

/// Sets the limits every [`FormReader`] applies (once, at start-up; later calls are ignored).
pub fn set_limits(limits: FormLimits) {
    let _ = LIMITS.set(limits);
}

/// The limits in force.
pub fn limits() -> FormLimits {
    LIMITS.get().copied().unwrap_or_default()
}

/// Why a form was refused.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    /// Not a well-formed `multipart/form-data` body (or the body stream failed).
    #[error("malformed form: {0}")]
    Malformed(multer::Error),
    /// The client stopped sending and the listener cut the body off: the protocol's request
    /// timeout (`CoreError::RequestTimeout`), not a malformed form.
    #[error("the request body made too little progress and was cut off")]
    Stalled,
    /// Over one of the [`FormLimits`].
    #[error("{0}")]
    TooLarge(String),
}

impl From<multer::Error> for FormError {
    fn from(e: multer::Error) -> Self {
        match &e {
            multer::Error::StreamReadFailed(inner) if chuan_core::is_stalled(inner.as_ref()) => FormError::Stalled,
            _ => FormError::Malformed(e),
        }
    }
}

impl FormError {
    /// The protocol's request timeout (from `CoreError::RequestTimeout`) for a stalled body;
    /// `otherwise()` for a malformed form or one over the limits.
    pub fn or_timeout<E: From<chuan_core::CoreError>>(self, otherwise: impl FnOnce(Self) -> E) -> E {
        match self {
            FormError::Stalled => chuan_core::CoreError::RequestTimeout.into(),
            other => otherwise(other),
        }
    }
}

/// A streaming form reader that counts parts and small-field bytes against [`FormLimits`].
pub struct FormReader {
    inner: Multipart<'static>,
    limits: FormLimits,
    fields: usize,
    bytes: usize,
    /// Where refusals by the limits are counted (`limit="form_limits"`).
    metrics: Option<std::sync::Arc<chuan_core::Metrics>>,
}

impl FormReader {
    /// A reader over `body` (which may lack the closing delimiter), under the limits in force.
    pub fn new<S>(body: S, boundary: &str) -> Self
    where
        S: Stream<Item = Result<Bytes, BoxError>> + Send + 'static,
    {
        Self::with_limits(body, boundary, limits())
    }

    pub fn with_limits<S>(body: S, boundary: &str, limits: FormLimits) -> Self
    where
        S: Stream<Item = Result<Bytes, BoxError>> + Send + 'static,
    {
        Self { inner: reader(body, boundary), limits, fields: 0, bytes: 0, metrics: None }
    }

    /// Counts refusals by the form limits in `metrics` (the engine's).
    pub fn counted(mut self, metrics: std::sync::Arc<chuan_core::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn too_large(&self, message: String) -> FormError {
        if let Some(m) = &self.metrics {
            m.refused("form_limits");
        }
        FormError::TooLarge(message)
    }

    /// The next part, or `None` at the end; `TooLarge` past `max_fields` parts.
    pub async fn next_field(&mut self) -> Result<Option<Field<'static>>, FormError> {
        let Some(field) = self.inner.next_field().await? else { return Ok(None) };
        self.fields += 1;
        if self.fields > self.limits.max_fields {
            return Err(self.too_large(format!("the form has more than {} parts", self.limits.max_fields)));
        }
        Ok(Some(field))
    }

    /// A small field's whole value, counted against the per-field and total limits as it
    /// arrives (never buffered past them).
    pub async fn value(&mut self, mut field: Field<'static>) -> Result<Vec<u8>, FormError> {
        let name = field.name().unwrap_or("").to_owned();
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await? {
            self.bytes += chunk.len();
            if value.len() + chunk.len() > self.limits.max_field_bytes {
                return Err(self.too_large(format!(
                    "the form field {name:?} is larger than {} bytes",
                    self.limits.max_field_bytes
                )));
            }
            if self.bytes > self.limits.max_total_bytes {
                return Err(self.too_large(format!(
                    "the form's fields are larger than {} bytes together",
                    self.limits.max_total_bytes
                )));
            }
            value.extend_from_slice(&chunk);
        }
        Ok(value)
    }

    /// [`FormReader::value`] as text (invalid UTF-8 replaced).
    pub async fn text(&mut self, field: Field<'static>) -> Result<String, FormError> {
        Ok(String::from_utf8_lossy(&self.value(field).await?).into_owned())
    }

    /// Reads the rest of the form (after the file part), which must be well-formed and within
    /// the part limit; nothing of it is kept.
    pub async fn finish(&mut self) -> Result<(), FormError> {
        while let Some(mut field) = self.next_field().await? {
            while field.chunk().await?.is_some() {}
        }
        Ok(())
    }
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    multer::parse_boundary(content_type).ok()
}

/// A multipart reader over `body` that also accepts a missing closing delimiter (with no
/// limits of its own: dialects use [`FormReader`]).
fn reader<S>(body: S, boundary: &str) -> Multipart<'static>
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
        read(body, FormLimits::default()).await.unwrap()
    }

    async fn read(body: &'static [u8], limits: FormLimits) -> Result<Vec<(String, Vec<u8>)>, FormError> {
        let stream = futures::stream::iter(body.chunks(7).map(|c| Ok::<_, BoxError>(Bytes::from_static(c))));
        let mut m = FormReader::with_limits(stream, "XyZ", limits);
        let mut out = Vec::new();
        while let Some(f) = m.next_field().await? {
            let name = f.name().unwrap_or("").to_owned();
            out.push((name, m.value(f).await?));
        }
        Ok(out)
    }

    #[tokio::test]
    async fn limits_parts_fields_and_total() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n12345\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n678\r\n--XyZ--\r\n";
        let ok = FormLimits { max_fields: 2, max_field_bytes: 5, max_total_bytes: 8 };
        assert_eq!(read(body, ok).await.unwrap().len(), 2);
        let few = FormLimits { max_fields: 1, ..ok };
        assert!(matches!(read(body, few).await, Err(FormError::TooLarge(m)) if m.contains("parts")));
        let small = FormLimits { max_field_bytes: 4, ..ok };
        assert!(matches!(read(body, small).await, Err(FormError::TooLarge(m)) if m.contains("\"a\"")));
        let total = FormLimits { max_total_bytes: 7, ..ok };
        assert!(matches!(read(body, total).await, Err(FormError::TooLarge(m)) if m.contains("together")));
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
