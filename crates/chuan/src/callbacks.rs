//! Delivery of outgoing callbacks (UpYun `notify-url`): a worker POSTs each queued callback
//! (form-encoded) and retries failures with back-off, 10 attempts over about a day. The queue
//! is in the MetaStore, so deliveries survive restarts and any node can make them.
//!
//! Receivers are reached over `http://` or `https://`. TLS is rustls: the receiver's
//! certificate chain is verified against the system's roots (`rustls-native-certs`, i.e.
//! `/etc/ssl/certs` and `SSL_CERT_FILE`/`SSL_CERT_DIR`) plus, for private receivers, the CAs of
//! `--callback-ca-file` (PEM). A receiver whose certificate does not verify is a failed attempt
//! like any other (retried, then given up), never delivered to unverified.
//!
//! Callback URLs come from clients, so the worker reaches public addresses only: a host that is
//! (or resolves to) a loopback, private, link-local, shared, unspecified, multicast or
//! documentation address is refused at connect time, after resolution (so a name that
//! re-resolves to an internal address gets nowhere), unless `--callback-allow-private` says
//! the receivers live on the server's own network. Attempts run a batch at a time,
//! concurrently, each within 10 s (5 s to connect), so a receiver that never answers delays
//! nobody else's callbacks by more than that.

use bytes::Bytes;
use chuan_core::Engine;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Seconds before each retry: ~23.5 hours from the first attempt to the tenth.
const BACKOFF_SECS: [u64; 9] = [5, 30, 120, 600, 1800, 3600, 7200, 14_400, 57_600];
pub const MAX_ATTEMPTS: u32 = 10;

type HttpsClient = Client<HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>;

/// What callbacks are sent with: the HTTP client and the address rule it resolves by.
#[derive(Clone)]
pub struct CallbackClient {
    client: HttpsClient,
    allow_private: bool,
}

/// Whether a callback may go to `ip`: a public unicast address (or any, with `allow_private`).
pub fn reachable(ip: IpAddr, allow_private: bool) -> bool {
    if allow_private {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space, RFC 6598
                || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return reachable(IpAddr::V4(v4), false);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

/// Resolves receiver host names, keeping only the addresses [`reachable`] allows.
#[derive(Clone)]
pub struct Resolver {
    allow_private: bool,
}

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found.iter().copied().filter(|a| reachable(a.ip(), allow_private)).collect();
            if kept.is_empty() && !found.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{} resolves to non-public addresses only (see --callback-allow-private)", name.as_str()),
                ));
            }
            Ok(kept.into_iter())
        })
    }
}

/// The trust anchors for `https://` receivers: the system's roots and the certificates of
/// `extra_ca` (a PEM file of one or more CA certificates).
///
/// Errors when `extra_ca` cannot be read or holds no certificate (a warning, not an error,
/// when the system has no roots and no `extra_ca` is given: `http://` receivers still work).
pub fn trust_roots(extra_ca: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "reading a system CA certificate failed");
    }
    let (system, _) = roots.add_parsable_certificates(native.certs);
    let mut extra = 0;
    if let Some(path) = extra_ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| anyhow::anyhow!("--callback-ca-file {}: {e}", path.display()))?;
        if certs.is_empty() {
            anyhow::bail!("--callback-ca-file {}: no PEM certificate in the file", path.display());
        }
        for cert in certs {
            roots.add(cert).map_err(|e| anyhow::anyhow!("--callback-ca-file {}: {e}", path.display()))?;
            extra += 1;
        }
    }
    if roots.is_empty() {
        // Not fatal: http:// receivers still work, and the server must start on a bare machine.
        tracing::warn!(
            "no CA certificate for https callbacks: the system has none (install ca-certificates) \
             and no --callback-ca-file was given; https:// receivers will not verify"
        );
    }
    tracing::info!(system, extra, "trust roots for https callbacks loaded");
    Ok(roots)
}

/// The HTTP client callbacks are sent with: `http://` and `https://` (HTTP/1.1) over rustls,
/// to the addresses [`reachable`] allows.
pub fn client(roots: rustls::RootCertStore, allow_private: bool) -> CallbackClient {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new_with_resolver(Resolver { allow_private });
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    CallbackClient { client: Client::builder(TokioExecutor::new()).build(https), allow_private }
}

/// Starts the delivery worker; `backoff_scale` multiplies the waits between attempts.
pub fn spawn(engine: Arc<Engine>, client: CallbackClient, backoff_scale: f64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let due = match engine.due_callbacks(16).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "reading due callbacks failed");
                    continue;
                }
            };
            // The batch's attempts run together: a receiver that never answers costs the
            // others at most the attempt timeout.
            let attempts =
                due.iter().map(|cb| deliver(&client, &cb.url, &cb.headers, cb.body.clone())).collect::<Vec<_>>();
            let results = futures::future::join_all(attempts).await;
            for (cb, delivered) in due.into_iter().zip(results) {
                let attempts = cb.attempts + 1;
                let retry_at = match delivered {
                    Ok(()) => None,
                    Err(e) if attempts >= MAX_ATTEMPTS => {
                        tracing::warn!(url = %cb.url, attempts, error = %e, "callback given up");
                        None
                    }
                    Err(e) => {
                        let wait = BACKOFF_SECS[(attempts - 1) as usize] as f64 * backoff_scale;
                        tracing::info!(url = %cb.url, attempts, error = %e, "callback failed; will retry");
                        Some(chuan_core::store::now_ms() + (wait * 1000.0) as i64)
                    }
                };
                if let Err(e) = engine.finish_callback(cb.id, retry_at).await {
                    tracing::warn!(error = %e, "recording a callback attempt failed");
                }
            }
        }
    })
}

async fn deliver(client: &CallbackClient, url: &str, headers: &[(String, String)], body: String) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    // An address in the URL itself is never resolved: the same rule, checked here.
    let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        if !reachable(ip, client.allow_private) {
            return Err(format!("{ip} is not a public address (see --callback-allow-private)"));
        }
    }
    let mut req = http::Request::post(uri).header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (name, value) in headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let req = req.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.client.request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| error_chain(&e))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status()))
    }
}

/// An error with its causes (a TLS verification failure is a few levels down).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::reachable;

    #[test]
    fn only_public_unicast_addresses_unless_allowed() {
        for ok in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "100.128.0.1"] {
            assert!(reachable(ok.parse().unwrap(), false), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(!reachable(bad.parse().unwrap(), false), "{bad}");
            assert!(reachable(bad.parse().unwrap(), true), "{bad} with --callback-allow-private");
        }
    }
}
