//! Delivery of outgoing callbacks (UpYun `notify-url`): a worker POSTs each queued callback
//! (form-encoded) and retries failures with back-off, 10 attempts over about a day. The queue
//! is in the MetaStore, so deliveries survive restarts and any node can make them.
//!
//! Receivers are reached over `http://` or `https://`. TLS is rustls: the receiver's
//! certificate chain is verified against the system's roots (`rustls-native-certs`, i.e.
//! `/etc/ssl/certs` and `SSL_CERT_FILE`/`SSL_CERT_DIR`) plus, for private receivers, the CAs of
//! `--callback-ca-file` (PEM). A receiver whose certificate does not verify is a failed attempt
//! like any other (retried, then given up), never delivered to unverified.

use bytes::Bytes;
use chuan_core::Engine;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Seconds before each retry: ~23.5 hours from the first attempt to the tenth.
const BACKOFF_SECS: [u64; 9] = [5, 30, 120, 600, 1800, 3600, 7200, 14_400, 57_600];
pub const MAX_ATTEMPTS: u32 = 10;

type CallbackClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

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

/// The HTTP client callbacks are sent with: `http://` and `https://` (HTTP/1.1) over rustls.
pub fn client(roots: rustls::RootCertStore) -> CallbackClient {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new()).build(https)
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
            for cb in due {
                let delivered = deliver(&client, &cb.url, &cb.headers, cb.body.clone()).await;
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
    let mut req = http::Request::post(url).header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (name, value) in headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let req = req.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
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
