//! Delivery of outgoing callbacks (UpYun `notify-url`): a worker POSTs each queued callback
//! (form-encoded) and retries failures with back-off, 10 attempts over about a day. The queue
//! is in the MetaStore, so deliveries survive restarts and any node can make them.

use bytes::Bytes;
use chuan_core::Engine;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

/// Seconds before each retry: ~23.5 hours from the first attempt to the tenth.
const BACKOFF_SECS: [u64; 9] = [5, 30, 120, 600, 1800, 3600, 7200, 14_400, 57_600];
pub const MAX_ATTEMPTS: u32 = 10;

pub fn spawn(engine: Arc<Engine>, backoff_scale: f64) -> tokio::task::JoinHandle<()> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
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
                let delivered = deliver(&client, &cb.url, cb.body.clone()).await;
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

async fn deliver(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &str,
    body: String,
) -> Result<(), String> {
    let req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status()))
    }
}
