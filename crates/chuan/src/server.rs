//! `chuan serve`: listener, background jobs, crash recovery and graceful shutdown.

use chuan_core::EngineConfig;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use crate::dispatch::{self, State};
use crate::host::BaseDomains;
use crate::limits::{AcceptBackoff, ConnectionGate, ServeLimits};
use crate::setup;

pub struct ServeOptions {
    pub data: PathBuf,
    /// A PostgreSQL connection string for the metadata (default: SQLite in `data`).
    pub meta: Option<String>,
    /// An `s3://` address for the blobs (default: files in `data`).
    pub blobs: Option<String>,
    pub listen: SocketAddr,
    pub domains: Vec<String>,
    pub gc_grace_secs: u64,
    /// Seconds a trashed entry is kept before GC purges it.
    pub trash_retention_secs: u64,
    /// A PEM file of extra CA certificates trusted for `https://` callbacks.
    pub callback_ca_file: Option<PathBuf>,
    pub limits: ServeLimits,
}

pub async fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let limits = opts.limits.clone();
    // Before the data directory is touched: a bad --callback-ca-file stops the start, with its
    // reason, and the next start is not taken for a recovery from a crash.
    let callback_client = crate::callbacks::client(
        crate::callbacks::trust_roots(opts.callback_ca_file.as_deref())?,
        limits.lifetimes.callback_allow_private,
    );
    let mut config = EngineConfig {
        gc_grace: Duration::from_secs(opts.gc_grace_secs),
        trash_retention: Duration::from_secs(opts.trash_retention_secs),
        fairness: limits.fairness(),
        inline_max: limits.inline_max_bytes,
        lookup_floor: match (limits.lookup_floor_ms, &opts.blobs) {
            (Some(ms), _) => Duration::from_millis(ms),
            (None, Some(_)) => chuan_core::REMOTE_LOOKUP_FLOOR,
            (None, None) => chuan_core::DEFAULT_LOOKUP_FLOOR,
        },
        upload_origins: limits.upload_origins.iter().map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect(),
        resumable_max_size: limits.tus_max_size.unwrap_or(chuan_core::DEFAULT_RESUMABLE_MAX_SIZE),
        ..Default::default()
    };
    chuan_api_common::form::set_limits(limits.form_limits());
    if let Some(secs) = limits.lifetimes.challenge_ttl_secs {
        config.challenge_ttl = Duration::from_secs(secs);
    }
    config.upload_ttls = limits.lifetimes.upload_ttls();
    // One server per data directory: the embedded database has one writing process, its
    // probe budgets live in that process, and the crash marker is the directory's. Held until
    // the process ends (kill -9 included).
    let _lock = setup::lock_data_dir(&opts.data)?;
    let engine = setup::open_engine(&opts.data, opts.meta.as_deref(), opts.blobs.as_deref(), config).await?;

    // Settings are all checked (root key pair included) before the clean-shutdown marker goes:
    // a refused start is not taken for a crash by the next one.
    let (ak, sk, generated) = setup::ensure_root_credentials(&engine, &opts.data).await?;
    if generated {
        eprintln!(
            "Root credentials (saved in {}):\n  access key: {ak}\n  secret key: {sk}",
            opts.data.join("root-credentials").display()
        );
    } else {
        tracing::info!(access_key = %ak, "root credentials loaded");
    }

    // A clean shutdown leaves this marker; without it the last run crashed, and blobs that
    // were renamed into place but never committed may be lying around.
    let marker = opts.data.join("clean-shutdown");
    // (A store without blobs has nothing to recover: a fresh one has no marker either.)
    let crashed = !marker.exists() && engine.stats().await?.blobs > 0;
    let _ = std::fs::remove_file(&marker);
    let swept = engine.sweep_all_temps()?;
    if crashed {
        let orphans = engine.remove_orphan_blobs().await?;
        tracing::warn!(temps = swept, orphans, "recovered from an unclean shutdown");
    } else if swept > 0 {
        tracing::info!(temps = swept, "removed stale temporary files");
    }

    let state = Arc::new(build_state(engine.clone(), opts.domains.clone(), &limits));

    let background = spawn_background(engine.clone());
    let callbacks = crate::callbacks::spawn(engine.clone(), callback_client, limits.lifetimes.callback_backoff_scale);

    let open_files = crate::limits::raise_open_file_limit();
    let max_connections = limits.connections(open_files);
    let gate = ConnectionGate::new(max_connections);
    let mut backoff = AcceptBackoff::default();
    let send_timeout = Duration::from_secs(limits.send_timeout_secs.max(1));
    let mut http = http1::Builder::new();
    // No `pipeline_flush(true)`: with it hyper may skip flushing the stream while request
    // bytes wait, and an interim response (`interim.rs`) would wait for the send timeout.
    http.keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_timeout_secs.max(1)))
        .max_header_size(limits.max_header_bytes.max(1024));

    let listener = TcpListener::bind(opts.listen).await?;
    tracing::info!(
        listen = %listener.local_addr()?,
        data = %opts.data.display(),
        max_connections,
        open_files,
        limits = %limits.summary(),
        lookup_floor_ms = engine.config.lookup_floor.as_millis() as u64,
        "chuan is serving"
    );
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(s) => { backoff.succeeded(); s }
                    Err(e) => {
                        // Out of descriptors (or another transient failure): wait, don't spin.
                        tokio::time::sleep(backoff.failed(&e)).await;
                        continue;
                    }
                };
                let Some(permit) = gate.admit() else {
                    gate.refuse(stream, &engine.metrics);
                    continue;
                };
                // Small responses must not wait for delayed ACKs (Nagle).
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let client = peer.ip();
                // Interim (1xx) responses a dialect sends (the IETF draft's 104).
                let interim = chuan_api_common::interim::Interim::new();
                let svc = {
                    let interim = interim.clone();
                    hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(interim.clone());
                        chuan_core::with_client(client, dispatch::handle(state.clone(), req))
                    })
                };
                // A client that stops taking its response is cut off (hyper has no write
                // timeout of its own).
                let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
                stream.set_write_timeout(Some(send_timeout));
                let io = crate::interim::InterimIo::new(Box::pin(stream), interim);
                let conn = http.serve_connection(TokioIo::new(io), svc);
                let conn = graceful.watch(conn);
                let metrics = engine.metrics.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(e) = conn.await {
                        if let Some(limit) = crate::limits::limit_of(&e) {
                            metrics.refused(limit);
                        }
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = tokio::signal::ctrl_c() => { tracing::info!("interrupt: shutting down"); break; }
        }
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after 30 s; closing anyway");
    }
    background.abort();
    callbacks.abort();
    if let Err(e) = engine.flush_usage().await {
        tracing::warn!(error = %e, "final usage flush failed");
    }
    drop(state);
    // Big temporaries and deleted blobs the remover thread still holds go before the marker
    // says the stop was clean (a stop cut short leaves them to the next start's sweep).
    let drained = tokio::task::spawn_blocking(|| chuan_store::drain_removals(Duration::from_secs(30))).await;
    if !matches!(drained, Ok(true)) {
        tracing::warn!("files still being removed after 30 s; the next start sweeps them");
    }
    std::fs::write(&marker, b"")?;
    tracing::info!("stopped");
    Ok(())
}

/// The dispatcher's state: every dialect over `engine`, with the listener's limits (also what
/// the fuzz targets drive).
pub fn build_state(engine: Arc<chuan_core::Engine>, domains: Vec<String>, limits: &ServeLimits) -> State {
    let s3 = chuan_api_s3::S3Dialect::new(engine.clone(), BaseDomains(domains.clone()));
    let mut adrive_config = chuan_api_adrive::AdriveConfig::default();
    if let Some(secs) = limits.lifetimes.adrive_url_ttl_secs {
        adrive_config.url_ttl = Duration::from_secs(secs);
    }
    let adrive = chuan_api_adrive::AdriveDialect::new(engine.clone(), adrive_config);
    let ufile = chuan_api_ufile::UfileDialect::new(engine.clone());
    let iot = chuan_api_iot::IotDialect::new(engine.clone(), Duration::from_secs(limits.lifetimes.iot_token_ttl_secs));
    State {
        engine: engine.clone(),
        s3,
        adrive,
        ufile,
        iot,
        upyun: chuan_api_upyun::UpyunDialect::new(engine.clone()),
        tus: chuan_api_tus::TusDialect::new(engine.clone()),
        cos: chuan_api_cos::CosDialect::new(
            engine.clone(),
            limits.lifetimes.cos_download_domain.clone().filter(|d| !d.is_empty()),
        ),
        s3_domains: domains,
        body_rule: limits.body_rule(),
        metrics_token: limits.metrics_token.clone().filter(|t| !t.is_empty()),
    }
}

fn spawn_background(engine: Arc<chuan_core::Engine>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut digests = tokio::time::interval(Duration::from_secs(1));
        let mut gc = tokio::time::interval(Duration::from_secs(60));
        let mut usage = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = usage.tick() => {
                    if let Err(e) = engine.flush_usage().await {
                        tracing::warn!(error = %e, "usage flush failed");
                    }
                }
                _ = digests.tick() => {
                    if let Err(e) = engine.compute_pending_digests(16).await {
                        tracing::warn!(error = %e, "digest job failed");
                    }
                }
                _ = gc.tick() => {
                    match engine.gc(engine.config.gc_grace).await {
                        Ok(r) if r.blobs_freed > 0 || r.temps_removed > 0 => tracing::info!(?r, "garbage collected"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "gc failed"),
                    }
                }
            }
        }
    })
}
