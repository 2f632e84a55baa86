//! The connection side of interim responses (`chuan_api_common::interim`): an I/O shim around
//! each accepted stream that writes a queued interim response before any later byte hyper
//! writes, and tells the channel when hyper has unflushed bytes (then none is queued).
//! Without a queued response every call passes straight through.

use chuan_api_common::interim::Interim;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct InterimIo<T> {
    inner: T,
    interim: Interim,
}

impl<T> InterimIo<T> {
    /// Wraps a connection's stream; `interim` goes into each request's extensions.
    pub fn new(inner: T, interim: Interim) -> Self {
        Self { inner, interim }
    }
}

impl<T> Drop for InterimIo<T> {
    fn drop(&mut self) {
        self.interim.close();
    }
}

impl<T: AsyncWrite + Unpin> InterimIo<T> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let inner = &mut self.inner;
        self.interim.poll_drain(cx, |cx, buf| Pin::new(&mut *inner).poll_write(cx, buf))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for InterimIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for InterimIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        self.interim.wrote();
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        self.interim.wrote();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Hyper flushes the stream only once its own buffer is written: nothing of a response
        // is outstanding, so a queued interim response goes out here.
        self.interim.flushed();
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.interim.close();
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
