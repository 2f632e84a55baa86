//! Interim (1xx) responses on HTTP/1.1 connections, which hyper's server cannot send itself
//! (it answers 100 Continue on its own and turns any other 1xx a service returns into a 500).
//!
//! The listener wraps each connection's stream in an I/O shim that shares an [`Interim`] with
//! every request of the connection (in the request's extensions). [`Interim::send`] queues
//! the encoded response head; the shim writes it at its next write or flush, *before* any
//! byte hyper writes after it, and only when everything hyper wrote before has been flushed
//! (so an interim response never lands inside another response: with a pipelined predecessor
//! still being written it is not sent at all, which the protocols allow — an interim
//! response is advisory). `send` returns once the bytes are written.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct State {
    /// Interim bytes not yet written.
    pending: Vec<u8>,
    /// Hyper has written bytes it has not flushed since.
    busy: bool,
    /// The connection is gone: nothing more is written.
    closed: bool,
    /// Who waits for `pending` to drain.
    sender: Option<Waker>,
    /// The connection's task (to get the pending bytes written).
    writer: Option<Waker>,
}

/// A connection's interim-response channel (cheap to clone).
#[derive(Clone, Default)]
pub struct Interim(Arc<Mutex<State>>);

impl Interim {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `HTTP/1.1 <status> <reason>` with `headers` before the final response; `false`
    /// when it cannot be sent now (a previous response is still being written, or the
    /// connection is gone). Call it before reading the request body.
    pub async fn send(&self, status: http::StatusCode, reason: &str, headers: &http::HeaderMap) -> bool {
        debug_assert!(status.is_informational());
        {
            let mut s = self.state();
            if s.busy || s.closed || !s.pending.is_empty() {
                return false;
            }
            let mut head = format!("HTTP/1.1 {} {reason}\r\n", status.as_u16()).into_bytes();
            for (name, value) in headers {
                head.extend_from_slice(name.as_str().as_bytes());
                head.extend_from_slice(b": ");
                head.extend_from_slice(value.as_bytes());
                head.extend_from_slice(b"\r\n");
            }
            head.extend_from_slice(b"\r\n");
            s.pending = head;
            if let Some(w) = s.writer.take() {
                w.wake();
            }
        }
        std::future::poll_fn(|cx| {
            let mut s = self.state();
            if s.pending.is_empty() {
                Poll::Ready(!s.closed)
            } else if s.closed {
                Poll::Ready(false)
            } else {
                s.sender = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    // ----- the connection's side (the listener's I/O shim)

    /// Writes the pending interim bytes with `write` (the stream's own write) before anything
    /// else; `Ready(Ok)` once none are left.
    pub fn poll_drain(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&mut Context<'_>, &[u8]) -> Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<()>> {
        let mut s = self.state();
        s.writer = Some(cx.waker().clone());
        while !s.pending.is_empty() {
            match write(cx, &s.pending) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    s.pending.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if let Some(w) = s.sender.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }

    /// Hyper wrote bytes (not flushed yet).
    pub fn wrote(&self) {
        self.state().busy = true;
    }

    /// Hyper flushed everything it wrote (it flushes the stream only with an empty buffer).
    pub fn flushed(&self) {
        self.state().busy = false;
    }

    /// The connection is gone.
    pub fn close(&self) {
        let mut s = self.state();
        s.closed = true;
        if let Some(w) = s.sender.take() {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_interim_response_is_written_once_before_the_next_bytes() {
        let interim = Interim::new();
        let mut headers = http::HeaderMap::new();
        headers.insert("location", http::HeaderValue::from_static("/u/1"));
        let sender = {
            let i = interim.clone();
            tokio::spawn(async move {
                i.send(http::StatusCode::from_u16(104).unwrap(), "Upload Resumption Supported", &headers).await
            })
        };
        let mut out = Vec::new();
        // The connection drains it at its next write or flush, a few bytes at a time.
        let drained = std::future::poll_fn(|cx| {
            interim.poll_drain(cx, |_, buf| {
                let n = buf.len().min(7);
                out.extend_from_slice(&buf[..n]);
                Poll::Ready(Ok(n))
            })
        });
        tokio::task::yield_now().await;
        drained.await.unwrap();
        assert!(sender.await.unwrap());
        assert_eq!(out, b"HTTP/1.1 104 Upload Resumption Supported\r\nlocation: /u/1\r\n\r\n");
        // While hyper has unflushed bytes nothing is queued.
        interim.wrote();
        assert!(!interim.send(http::StatusCode::from_u16(104).unwrap(), "x", &http::HeaderMap::new()).await);
        interim.flushed();
        interim.close();
        assert!(!interim.send(http::StatusCode::from_u16(104).unwrap(), "x", &http::HeaderMap::new()).await);
    }
}
