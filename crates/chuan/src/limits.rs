//! The listener's limits: what one connection or one request may hold, and for how long.
//!
//! * **Headers**: a request's headers must arrive within `--header-timeout-secs`, counted from
//!   the moment the connection waits for a request — so an idle keep-alive connection is
//!   closed after the same time (hyper's header-read timer) — and may take at most
//!   `--max-header-bytes`; larger heads get 431.
//! * **Bodies** ([`TimedBody`]): every `--body-min-bytes` of a body (or its end) must arrive
//!   within `--body-timeout-secs` of waiting after the previous `--body-min-bytes` (the first
//!   within that time of the body's start). Time the server spends not reading (writing to
//!   disk, checking) does not count against the client.
//!   A body cut off ends with [`BodyStalled`]; the upload is refused in its protocol's format
//!   and its staged bytes are dropped.
//! * **Connections** ([`ConnectionGate`]): at most `--max-connections` at once; one more is
//!   answered `503` with `Retry-After` and closed (never queued unboundedly, never a busy
//!   loop). Accept errors (out of file descriptors) back off from 10 ms to 1 s and are logged
//!   at most once a second.
//!
//! Forms have limits of their own, applied by every dialect's form reader (see
//! `chuan_api_common::form::FormLimits`); tenants have fairness limits in the engine.

use bytes::Bytes;
use chuan_core::BodyStalled;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// The longest timeout a flag takes (a day): longer ones would be no limit, and far longer
/// ones overflow the clocks they are added to.
const MAX_SECS: u64 = 86_400;

/// A rate or burst flag: a finite number, not negative.
fn rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{text:?} is not a number of at least 0")),
    }
}

/// A factor on waits: a finite number from 0 to 1000.
fn scale(text: &str) -> Result<f64, String> {
    match rate(text) {
        Ok(v) if v <= 1000.0 => Ok(v),
        _ => Err(format!("{text:?} is not a number from 0 to 1000")),
    }
}

/// Upload session lifetimes: at most ten years (0: no expiry).
const MAX_UPLOAD_TTL: u64 = 10 * 365 * MAX_SECS;

/// `chuan serve`'s limits, as flags or environment variables.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeLimits {
    /// Seconds to receive a request's headers (also how long an idle keep-alive connection
    /// stays open).
    #[arg(long, env = "CHUAN_HEADER_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub header_timeout_secs: u64,
    /// Largest request head (request line and headers), in bytes; at least 1024. A head may
    /// also have at most 100 header fields.
    #[arg(long, env = "CHUAN_MAX_HEADER_BYTES", default_value_t = 64 << 10,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..))]
    pub max_header_bytes: usize,
    /// Seconds of waiting in which each --body-min-bytes of a request body must arrive.
    #[arg(long, env = "CHUAN_BODY_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub body_timeout_secs: u64,
    /// Bytes of a body that must arrive within each --body-timeout-secs of waiting.
    #[arg(long, env = "CHUAN_BODY_MIN_BYTES", default_value_t = 64 << 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_min_bytes: u64,
    /// Seconds a response may wait for the client to take more of it; a client that reads
    /// nothing for this long (a stalled download, pipelined requests never read) is
    /// disconnected.
    #[arg(long, env = "CHUAN_SEND_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub send_timeout_secs: u64,
    /// Connections served at once (0: derived from the open-file limit).
    #[arg(long, env = "CHUAN_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,
    /// Parts a form may have.
    #[arg(long, env = "CHUAN_FORM_MAX_FIELDS", default_value_t = 64,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub form_max_fields: usize,
    /// Bytes of one small (non-file) form field.
    #[arg(long, env = "CHUAN_FORM_MAX_FIELD_BYTES", default_value_t = 64 << 10,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub form_max_field_bytes: usize,
    /// Bytes of all small form fields of one form together.
    #[arg(long, env = "CHUAN_FORM_MAX_BYTES", default_value_t = 256 << 10,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub form_max_bytes: usize,
    /// Requests a second per tenant (per client address when anonymous), sustained; 0: no limit.
    #[arg(long, env = "CHUAN_TENANT_REQUESTS_PER_SEC", default_value_t = 2000.0, value_parser = rate)]
    pub tenant_requests_per_sec: f64,
    /// Requests a tenant may make at once before the sustained rate applies (the size of its
    /// token bucket).
    #[arg(long, env = "CHUAN_TENANT_REQUEST_BURST", default_value_t = 4000.0, value_parser = rate)]
    pub tenant_request_burst: f64,
    /// Request bodies one tenant may be sending at once; 0: no limit.
    #[arg(long, env = "CHUAN_TENANT_UPLOADS", default_value_t = 256)]
    pub tenant_uploads: usize,
    /// Instant-upload lookups (claims, challenges) a second per tenant, sustained; 0: no limit.
    #[arg(long, env = "CHUAN_PROBES_PER_SEC", default_value_t = 20.0, value_parser = rate)]
    pub probes_per_sec: f64,
    /// Instant-upload lookups a tenant may make at once before the sustained rate applies.
    #[arg(long, env = "CHUAN_PROBE_BURST", default_value_t = 50.0, value_parser = rate)]
    pub probe_burst: f64,
    /// Instant-upload lookups a second per client address, whatever the tenant; 0: no limit.
    #[arg(long, env = "CHUAN_ADDRESS_PROBES_PER_SEC", default_value_t = 80.0, value_parser = rate)]
    pub address_probes_per_sec: f64,
    /// Instant-upload lookups one client address may make at once before its sustained rate
    /// applies.
    #[arg(long, env = "CHUAN_ADDRESS_PROBE_BURST", default_value_t = 200.0, value_parser = rate)]
    pub address_probe_burst: f64,
    /// Bodies of at most this many bytes are kept in the metadata database with their object
    /// (one group-committed fsync for a burst of small writes) instead of as files; 0: every
    /// body is a file. At most 1 MiB. A change applies to new content only.
    #[arg(long, env = "CHUAN_INLINE_MAX_BYTES", default_value_t = chuan_core::DEFAULT_INLINE_MAX,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=chuan_core::INLINE_MAX_LIMIT as u64))]
    pub inline_max_bytes: usize,
    /// How long every instant-upload lookup that misses takes at least, in milliseconds, so
    /// its timing does not tell whether another tenant holds the content: it must exceed the
    /// slowest proof read of the blob store. A hit (content the caller may read, or has proved
    /// it has) is answered at once. Default: 10 with local blobs, 100 with `--blobs
    /// s3://...`; raise it when `chuan_lookup_floor_overruns_total` moves.
    #[arg(long, env = "CHUAN_LOOKUP_FLOOR_MS", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub lookup_floor_ms: Option<u64>,
    /// The most bytes one resumable upload (tus, IETF draft) may have (`Tus-Max-Size`);
    /// default 5 TiB.
    #[arg(long, env = "CHUAN_TUS_MAX_SIZE", value_parser = clap::value_parser!(u64).range(1..=(5u64 << 40)))]
    pub tus_max_size: Option<u64>,
    /// Origins browsers may upload from to Chuan's own endpoints (tus, `/_chuan/resumable/`,
    /// the native instant-upload API), comma-separated: `https://app.example.com`, patterns
    /// with one `*` (`https://*.example.com`), or `*` for any. Default: none (same origin,
    /// such as the web console, needs none). S3 requests follow each bucket's CORS rules.
    #[arg(long, env = "CHUAN_UPLOAD_ORIGINS", value_delimiter = ',')]
    pub upload_origins: Vec<String>,
    /// Token for `GET /_chuan/metrics` (`Authorization: Bearer <token>`), besides the root key
    /// pair over HTTP Basic.
    #[arg(long, env = "CHUAN_METRICS_TOKEN")]
    pub metrics_token: Option<String>,
    #[command(flatten)]
    pub lifetimes: Lifetimes,
}

/// How long grants, URLs and unfinished uploads live, and the callback retry pace: flags or
/// environment variables (a value that does not parse stops the start, naming the variable).
#[derive(clap::Args, Clone, Debug)]
pub struct Lifetimes {
    /// Seconds a native instant-upload challenge stays answerable (default 60).
    #[arg(long, env = "CHUAN_CHALLENGE_TTL_SECS", value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub challenge_ttl_secs: Option<u64>,
    /// Longest life, in seconds, of an Aliyun Drive download or part-upload URL; a client's
    /// `expire_sec` may ask for less (default 3600).
    #[arg(long, env = "CHUAN_ADRIVE_URL_TTL_SECS", value_parser = clap::value_parser!(u64).range(1..=7 * MAX_SECS))]
    pub adrive_url_ttl_secs: Option<u64>,
    /// Seconds an IoT device's upload token (and its upload URL) lives.
    #[arg(long, env = "CHUAN_IOT_TOKEN_TTL_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub iot_token_ttl_secs: u64,
    /// Seconds an unfinished S3 multipart upload lives (0: until completed or aborted; the default).
    #[arg(long, env = "CHUAN_UPLOAD_TTL_SECS_S3", value_parser = clap::value_parser!(u64).range(0..=MAX_UPLOAD_TTL))]
    pub upload_ttl_secs_s3: Option<u64>,
    /// Seconds an unfinished UFile multipart upload lives (0, the default: until finished or aborted).
    #[arg(long, env = "CHUAN_UPLOAD_TTL_SECS_UFILE", value_parser = clap::value_parser!(u64).range(0..=MAX_UPLOAD_TTL))]
    pub upload_ttl_secs_ufile: Option<u64>,
    /// Seconds an unfinished COS slice upload lives (default 86400).
    #[arg(long, env = "CHUAN_UPLOAD_TTL_SECS_COS", value_parser = clap::value_parser!(u64).range(0..=MAX_UPLOAD_TTL))]
    pub upload_ttl_secs_cos: Option<u64>,
    /// Seconds an unfinished UpYun multipart upload lives (default 86400).
    #[arg(long, env = "CHUAN_UPLOAD_TTL_SECS_UPYUN", value_parser = clap::value_parser!(u64).range(0..=MAX_UPLOAD_TTL))]
    pub upload_ttl_secs_upyun: Option<u64>,
    /// Seconds an unfinished UpYun block upload lives (default 86400).
    #[arg(long, env = "CHUAN_UPLOAD_TTL_SECS_UPYUN_BLOCK", value_parser = clap::value_parser!(u64).range(0..=MAX_UPLOAD_TTL))]
    pub upload_ttl_secs_upyun_block: Option<u64>,
    /// Seconds an unfinished Aliyun Drive upload lives (default 86400).
    #[arg(long, env = "CHUAN_UPLOAD_TTL_SECS_ADRIVE", value_parser = clap::value_parser!(u64).range(0..=MAX_UPLOAD_TTL))]
    pub upload_ttl_secs_adrive: Option<u64>,
    /// Seconds a resumable upload (tus, IETF draft) lives from its creation, finished or not
    /// (default 86400; `Upload-Expires`).
    #[arg(long, env = "CHUAN_UPLOAD_TTL_SECS_TUS", value_parser = clap::value_parser!(u64).range(0..=MAX_UPLOAD_TTL))]
    pub upload_ttl_secs_tus: Option<u64>,
    /// Factor on the callback retry waits (5 s, 30 s, ... about a day over 10 attempts);
    /// tests use 0.001.
    #[arg(long, env = "CHUAN_CALLBACK_BACKOFF_SCALE", default_value_t = 1.0, value_parser = scale)]
    pub callback_backoff_scale: f64,
    /// Deliver callbacks to loopback, private and link-local addresses too (receivers on the
    /// server's own network); by default only public addresses are reached (no SSRF).
    #[arg(long, env = "CHUAN_CALLBACK_ALLOW_PRIVATE")]
    pub callback_allow_private: bool,
    /// Domain of COS v4 download URLs (`<bucket>-<appid>.<domain>`); default: the host the
    /// request came to.
    #[arg(long, env = "CHUAN_COS_DOWNLOAD_DOMAIN")]
    pub cos_download_domain: Option<String>,
}

impl Lifetimes {
    /// The unfinished-upload lifetimes given, per kind (`None`: never expires).
    pub fn upload_ttls(&self) -> Vec<(chuan_core::store::UploadKind, Option<Duration>)> {
        use chuan_core::store::UploadKind as K;
        [
            (K::S3, self.upload_ttl_secs_s3),
            (K::Ufile, self.upload_ttl_secs_ufile),
            (K::Cos, self.upload_ttl_secs_cos),
            (K::Upyun, self.upload_ttl_secs_upyun),
            (K::UpyunBlock, self.upload_ttl_secs_upyun_block),
            (K::Adrive, self.upload_ttl_secs_adrive),
            (K::Tus, self.upload_ttl_secs_tus),
        ]
        .into_iter()
        .filter_map(|(k, secs)| secs.map(|s| (k, (s > 0).then(|| Duration::from_secs(s)))))
        .collect()
    }
}

impl ServeLimits {
    pub fn body_rule(&self) -> BodyRule {
        BodyRule { window: Duration::from_secs(self.body_timeout_secs.max(1)), min_bytes: self.body_min_bytes.max(1) }
    }

    /// The limits in effect, for the start-up log line (the metrics token is not shown).
    pub fn summary(&self) -> String {
        let rate = |r: f64, burst: f64| if r > 0.0 { format!("{r}/s burst {burst}") } else { "off".into() };
        let uploads = if self.tenant_uploads > 0 { self.tenant_uploads.to_string() } else { "off".into() };
        format!(
            "headers {} s, {} bytes; body {} bytes per {} s; send {} s; forms {} parts, {}/{} bytes; \
             tenant requests {}, uploads {uploads}; probes {} per tenant, {} per address; metrics token {}",
            self.header_timeout_secs,
            self.max_header_bytes,
            self.body_min_bytes,
            self.body_timeout_secs,
            self.send_timeout_secs,
            self.form_max_fields,
            self.form_max_field_bytes,
            self.form_max_bytes,
            rate(self.tenant_requests_per_sec, self.tenant_request_burst),
            rate(self.probes_per_sec, self.probe_burst),
            rate(self.address_probes_per_sec, self.address_probe_burst),
            if self.metrics_token.is_some() { "set" } else { "not set" },
        )
    }

    pub fn form_limits(&self) -> chuan_api_common::form::FormLimits {
        chuan_api_common::form::FormLimits {
            max_fields: self.form_max_fields,
            max_field_bytes: self.form_max_field_bytes,
            max_total_bytes: self.form_max_bytes,
        }
    }

    pub fn fairness(&self) -> chuan_core::FairnessConfig {
        chuan_core::FairnessConfig {
            requests_per_sec: self.tenant_requests_per_sec,
            request_burst: self.tenant_request_burst,
            concurrent_uploads: self.tenant_uploads,
            probes_per_sec: self.probes_per_sec,
            probe_burst: self.probe_burst,
            address_probes_per_sec: self.address_probes_per_sec,
            address_probe_burst: self.address_probe_burst,
        }
    }

    /// `--max-connections`, or half of what is left of the open-file limit after 64 descriptors
    /// for the database and logs (each connection may hold a blob or temporary file open too):
    /// `(limit - 64) / 2`, at least 16 and at most 10,000.
    pub fn connections(&self, open_files: u64) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        (open_files.saturating_sub(64) / 2).clamp(16, 10_000) as usize
    }
}

/// Raises the soft open-file limit to the hard one and returns it.
pub fn raise_open_file_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// How much a body must deliver while the server waits for it.
#[derive(Debug, Clone, Copy)]
pub struct BodyRule {
    /// Waiting time per window.
    pub window: Duration,
    /// Bytes each window must bring (or the body must end).
    pub min_bytes: u64,
}

/// A request body held to a [`BodyRule`]: ends with [`BodyStalled`] when a window of waiting
/// passes before the next `min_bytes` arrive, counted from when the previous `min_bytes` had.
pub struct TimedBody<B> {
    inner: B,
    rule: BodyRule,
    /// Waiting time left for the current `min_bytes`.
    budget: Duration,
    /// Bytes received towards the current `min_bytes`.
    received: u64,
    /// When the current wait began (the inner body said `Pending`).
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
    /// Where a cut-off is counted (`limit="body_stalled"`).
    metrics: Option<Arc<chuan_core::Metrics>>,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, rule: BodyRule) -> Self {
        Self {
            inner,
            rule,
            budget: rule.window,
            received: 0,
            waiting_since: None,
            timer: None,
            done: false,
            metrics: None,
        }
    }

    /// Counts cut-offs in `metrics`.
    pub fn counted(mut self, metrics: Arc<chuan_core::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn stalled(&mut self) -> Poll<Option<Result<Frame<Bytes>, chuan_api_common::BoxError>>> {
        self.done = true;
        if let Some(m) = &self.metrics {
            m.refused("body_stalled");
        }
        Poll::Ready(Some(Err(Box::new(BodyStalled))))
    }

    /// Ends the current wait: its time comes off the window's budget.
    fn stop_waiting(&mut self) {
        if let Some(since) = self.waiting_since.take() {
            self.budget = self.budget.saturating_sub(since.elapsed());
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<chuan_api_common::BoxError>,
{
    type Data = Bytes;
    type Error = chuan_api_common::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.stop_waiting();
                if let Some(d) = frame.data_ref() {
                    this.received += d.len() as u64;
                }
                if this.received >= this.rule.min_bytes {
                    // In time: the next `min_bytes` get a whole window of waiting.
                    this.received %= this.rule.min_bytes;
                    this.budget = this.rule.window;
                } else if this.budget.is_zero() {
                    return this.stalled();
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(e))) => {
                this.stop_waiting();
                return Poll::Ready(Some(Err(e.into())));
            }
            Poll::Ready(None) => {
                this.stop_waiting();
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let now = Instant::now();
        let since = *this.waiting_since.get_or_insert(now);
        let deadline = tokio::time::Instant::from_std(since + this.budget);
        match &mut this.timer {
            Some(t) if t.deadline() == deadline => {}
            Some(t) => t.as_mut().reset(deadline),
            None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        let timer = this.timer.as_mut().expect("set above");
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        // The window's waiting time is spent before `min_bytes` arrived.
        this.waiting_since = None;
        this.budget = Duration::ZERO;
        this.stalled()
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future;

/// Admission of connections: a permit per connection served.
pub struct ConnectionGate {
    permits: Arc<Semaphore>,
    /// Refusals being written at once (a flood of them is dropped without an answer).
    refusals: Arc<Semaphore>,
}

impl ConnectionGate {
    pub fn new(max: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(max)), refusals: Arc::new(Semaphore::new(64)) }
    }

    /// A permit for one more connection, or `None` when at the limit.
    pub fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// Answers a connection over the limit with `503` and closes it, in the background and
    /// within a second; beyond 64 refusals at once, just closes it.
    pub fn refuse(&self, mut stream: tokio::net::TcpStream, metrics: &chuan_core::Metrics) {
        metrics.refused("connection_cap");
        let Ok(permit) = self.refusals.clone().try_acquire_owned() else { return };
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                // Read what the client sent first, so closing does not reset the connection
                // before it has read the answer.
                let mut buf = [0u8; 8192];
                let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
                          Content-Type: text/plain\r\nContent-Length: 39\r\n\r\nthe server is at its connection limit\r\n",
                    )
                    .await;
                let _ = stream.shutdown().await;
            })
            .await;
        });
    }
}

/// The limit that ended a connection, when one did: hyper's header-read timeout, a head over
/// the size limit, or the send timeout (an I/O `TimedOut` from the socket's write deadline).
pub fn limit_of(e: &hyper::Error) -> Option<&'static str> {
    if e.is_parse_too_large() {
        return Some("head_too_large");
    }
    if e.is_timeout() {
        return Some("header_timeout");
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return Some("send_timeout");
        }
        cur = err.source();
    }
    None
}

/// Back-off after failed accepts (typically EMFILE: out of file descriptors), with the
/// failures logged at most once a second.
#[derive(Default)]
pub struct AcceptBackoff {
    delay: Duration,
    suppressed: u64,
    last_log: Option<Instant>,
}

impl AcceptBackoff {
    /// Records a failure; returns how long to wait before accepting again.
    pub fn failed(&mut self, e: &std::io::Error) -> Duration {
        self.delay = (self.delay * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        if self.last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            tracing::warn!(error = %e, also = self.suppressed, retry_in_ms = self.delay.as_millis() as u64, "accept failed");
            self.last_log = Some(Instant::now());
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        self.delay
    }

    pub fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn rule(ms: u64, min: u64) -> BodyRule {
        BodyRule { window: Duration::from_millis(ms), min_bytes: min }
    }

    /// A body fed by a channel, so the test decides when bytes arrive.
    fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, impl Body<Data = Bytes, Error = std::io::Error> + Unpin) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
        });
        (tx, http_body_util::StreamBody::new(Box::pin(stream)))
    }

    #[tokio::test]
    async fn a_body_that_stops_is_cut_off() {
        let (tx, body) = channel_body();
        let mut b = TimedBody::new(body, rule(100, 1));
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        assert!(b.frame().await.unwrap().is_ok());
        let t = Instant::now();
        let err = b.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyStalled>());
        assert!(t.elapsed() >= Duration::from_millis(90), "{:?}", t.elapsed());
        drop(tx);
    }

    #[tokio::test]
    async fn a_trickle_below_the_rate_is_cut_off_and_a_steady_body_is_not() {
        let (tx, body) = channel_body();
        let mut slow = TimedBody::new(body, rule(200, 100));
        tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(40)).await;
                if tx.send(Bytes::from_static(b"0123456789")).await.is_err() {
                    return;
                }
            }
        });
        let mut seen = 0;
        let err = loop {
            match slow.frame().await {
                Some(Ok(f)) => seen += f.into_data().map(|d| d.len()).unwrap_or(0),
                Some(Err(e)) => break e,
                None => panic!("a trickle of 50 bytes per window passed a 100-byte rule"),
            }
        };
        assert!(err.is::<BodyStalled>() && seen < 100, "{seen}");

        let (tx, body) = channel_body();
        let mut steady = TimedBody::new(body, rule(200, 100));
        tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                tx.send(Bytes::from(vec![b'x'; 50])).await.unwrap();
            }
        });
        let mut total = 0;
        while let Some(f) = steady.frame().await {
            total += f.unwrap().into_data().map(|d| d.len()).unwrap_or(0);
        }
        assert_eq!(total, 1000);
    }

    #[tokio::test]
    async fn a_body_is_cut_one_window_after_its_last_min_bytes() {
        let (tx, body) = channel_body();
        let mut b = TimedBody::new(body, rule(400, 100));
        // 300 ms into the first window, 100 bytes arrive: the next 100 have 400 ms from then
        // (a rule of whole windows would allow the 100 ms left plus another window).
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            tx.send(Bytes::from(vec![b'x'; 100])).await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        assert!(b.frame().await.unwrap().is_ok());
        let t = Instant::now();
        let err = b.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyStalled>());
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(380) && waited < Duration::from_millis(480), "{waited:?}");
    }

    #[tokio::test]
    async fn time_the_server_spends_elsewhere_does_not_count() {
        let (tx, body) = channel_body();
        let mut b = TimedBody::new(body, rule(100, 1));
        for _ in 0..3 {
            tx.send(Bytes::from_static(b"x")).await.unwrap();
        }
        assert!(b.frame().await.unwrap().is_ok());
        // The server is busy for three windows; the client's bytes are waiting for it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(b.frame().await.unwrap().is_ok());
        assert!(b.frame().await.unwrap().is_ok());
        drop(tx);
        assert!(b.frame().await.is_none());
    }
}
