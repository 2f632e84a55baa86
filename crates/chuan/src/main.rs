//! `chuan`: the server binary and its command-line tools (the server itself is the `chuan`
//! library: see `lib.rs`).

use chuan::{admin, limits, server, setup};

use chuan_core::Principal;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "chuan", version, about = "Chuan: a deduplicating upload and object storage server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct DataArg {
    /// Data directory (metadata database, blobs, temporary files).
    #[arg(long, default_value = "./chuan-data", env = "CHUAN_DATA")]
    data: PathBuf,
    /// Metadata store: a PostgreSQL connection string (`postgres://user:password@host:port/db`)
    /// shared by every node; default: SQLite at DATA/meta.db.
    #[arg(long, env = "CHUAN_META")]
    meta: Option<String>,
    /// Blob store: `s3://BUCKET?endpoint=URL&region=R` to keep blobs in an S3-compatible
    /// store (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); default: files in
    /// DATA/blobs.
    #[arg(long, env = "CHUAN_BLOBS")]
    blobs: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server with embedded stores.
    Serve {
        #[command(flatten)]
        data: DataArg,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000", env = "CHUAN_LISTEN")]
        listen: SocketAddr,
        /// Base domains for virtual-host bucket addressing (`<bucket>.<domain>`).
        #[arg(long = "domain", default_values = ["localhost"])]
        domains: Vec<String>,
        /// Seconds an unreferenced blob is kept before garbage collection frees it.
        #[arg(long, default_value_t = 900)]
        gc_grace_secs: u64,
        /// Seconds a trashed file or folder stays restorable before garbage collection purges
        /// it (default 10 days).
        #[arg(long, default_value_t = 864_000, env = "CHUAN_TRASH_RETENTION_SECS",
              value_parser = clap::value_parser!(u64).range(1..))]
        trash_retention_secs: u64,
        /// PEM file of CA certificates trusted, beside the system's roots, for `https://`
        /// callbacks (UpYun notify-url) to private receivers.
        #[arg(long, env = "CHUAN_CALLBACK_CA_FILE")]
        callback_ca_file: Option<PathBuf>,
        #[command(flatten)]
        limits: limits::ServeLimits,
    },
    /// Print logical vs physical usage of a data directory.
    Stats {
        #[command(flatten)]
        data: DataArg,
    },
    /// Check that metadata and blobs agree; exits 1 if they do not.
    Fsck {
        #[command(flatten)]
        data: DataArg,
    },
    /// Manage tenants and their credentials.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a tenant (or add a credential to it) and print its S3 access key and secret.
    CreateTenant {
        name: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// List credentials (secrets are not shown).
    ListCredentials {
        #[command(flatten)]
        data: DataArg,
    },
    /// Issue an Aliyun Drive refresh token for a tenant (creates its default drive).
    AdriveToken {
        tenant: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Register a UCloud IoT device of a tenant, bound to one of its buckets; prints its secret.
    IotDevice {
        tenant: String,
        bucket: String,
        product_sn: String,
        device_sn: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Register an UpYun operator of a tenant for one of its buckets (the UpYun "service").
    UpyunOperator {
        tenant: String,
        bucket: String,
        operator: String,
        password: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Create a new form-API secret for an UpYun bucket (block upload); prints it.
    UpyunFormSecret {
        tenant: String,
        bucket: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Print a tenant's Tencent COS appid (allocated on first use).
    CosAppid {
        tenant: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Set a tenant's quota (omitted limits are unlimited).
    Quota {
        tenant: String,
        #[arg(long)]
        storage_bytes: Option<u64>,
        #[arg(long)]
        download_bytes: Option<u64>,
        #[arg(long)]
        requests: Option<u64>,
        #[command(flatten)]
        data: DataArg,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHUAN_LOG").unwrap_or_else(|_| "info,s3s=off".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    limit_malloc_arenas();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve { data, listen, domains, gc_grace_secs, trash_retention_secs, callback_ca_file, limits } => {
                server::serve(server::ServeOptions {
                    data: data.data,
                    meta: data.meta,
                    blobs: data.blobs,
                    listen,
                    domains,
                    gc_grace_secs,
                    trash_retention_secs,
                    callback_ca_file,
                    limits,
                })
                .await
            }
            Command::Stats { data } => {
                let engine =
                    setup::open_engine(&data.data, data.meta.as_deref(), data.blobs.as_deref(), Default::default())
                        .await?;
                println!("{}", serde_json::to_string_pretty(&engine.stats().await?)?);
                Ok(())
            }
            Command::Fsck { data } => {
                let engine =
                    setup::open_engine(&data.data, data.meta.as_deref(), data.blobs.as_deref(), Default::default())
                        .await?;
                let report = engine.fsck().await?;
                for p in &report.problems {
                    println!("problem: {p}");
                }
                if report.problems.is_empty() {
                    println!("fsck: {} blobs checked, clean", report.blobs_checked);
                    Ok(())
                } else {
                    println!("fsck: {} blobs checked, {} problems", report.blobs_checked, report.problems.len());
                    std::process::exit(1);
                }
            }
            // The operator at the console acts with root rights on the data directory.
            Command::Admin { command } => match command {
                AdminCommand::CreateTenant { name, data } => {
                    let engine =
                        setup::open_engine(&data.data, data.meta.as_deref(), data.blobs.as_deref(), Default::default())
                            .await?;
                    let cred = admin::create_tenant(&engine, &Principal::operator(), &name).await?;
                    println!("{}", serde_json::to_string_pretty(&cred)?);
                    Ok(())
                }
                AdminCommand::ListCredentials { data } => {
                    let engine =
                        setup::open_engine(&data.data, data.meta.as_deref(), data.blobs.as_deref(), Default::default())
                            .await?;
                    for c in engine.list_credentials(&Principal::operator(), None, None).await? {
                        if !c.kind.is_bearer() {
                            println!("{}\t{}\t{}", c.access_key, c.tenant, c.kind.as_str());
                        }
                    }
                    Ok(())
                }
                AdminCommand::AdriveToken { tenant, data } => {
                    let engine =
                        setup::open_engine(&data.data, data.meta.as_deref(), data.blobs.as_deref(), Default::default())
                            .await?;
                    let adrive = chuan_api_adrive::AdriveDialect::new(engine, Default::default());
                    let token = adrive.issue_refresh_token(&Principal::operator(), &tenant).await?;
                    println!("{}", serde_json::to_string_pretty(&token)?);
                    Ok(())
                }
                AdminCommand::IotDevice { tenant, bucket, product_sn, device_sn, data } => {
                    let engine =
                        setup::open_engine(&data.data, data.meta.as_deref(), data.blobs.as_deref(), Default::default())
                            .await?;
                    let iot = chuan_api_iot::IotDialect::new(engine, std::time::Duration::from_secs(300));
                    let device =
                        iot.register_device(&Principal::operator(), &tenant, &bucket, &product_sn, &device_sn).await?;
                    println!("{}", serde_json::to_string_pretty(&device)?);
                    Ok(())
                }
                AdminCommand::UpyunOperator { tenant, bucket, operator, password, data } => {
                    let engine =
                        setup::open_engine(&data.data, data.meta.as_deref(), data.blobs.as_deref(), Default::default())
                            .await?;
                    let upyun = chuan_api_upyun::UpyunDialect::new(engine);
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &upyun
                                .register_operator(&Principal::operator(), &tenant, &bucket, &operator, &password)
                                .await?
                        )?
                    );
                    Ok(())
                }
                AdminCommand::CosAppid { tenant, data } => {
                    let engine =
                        setup::open_engine(&data.data, data.meta.as_deref(), data.blobs.as_deref(), Default::default())
                            .await?;
                    anyhow::ensure!(
                        engine.tenant_exists(&tenant).await?,
                        "no tenant {tenant}: create it first (chuan admin create-tenant)"
                    );
                    let appid = chuan_api_cos::appid_of(&engine, &tenant).await?;
                    println!("{}", serde_json::json!({"tenant": tenant, "cos_appid": appid}));
                    Ok(())
                }
                AdminCommand::UpyunFormSecret { tenant, bucket, data } => {
                    let engine =
                        setup::open_engine(&data.data, data.meta.as_deref(), data.blobs.as_deref(), Default::default())
                            .await?;
                    let upyun = chuan_api_upyun::UpyunDialect::new(engine);
                    let secret = upyun.new_form_secret(&Principal::operator(), &tenant, &bucket).await?;
                    println!("{}", serde_json::json!({"bucket": bucket, "form_secret": secret}));
                    Ok(())
                }
                AdminCommand::Quota { tenant, storage_bytes, download_bytes, requests, data } => {
                    // Safe while servers run: quotas live in the MetaStore, each write reads its
                    // storage limit there, and servers re-read allowances at every flush (2 s).
                    let engine =
                        setup::open_engine(&data.data, data.meta.as_deref(), data.blobs.as_deref(), Default::default())
                            .await?;
                    let quota = chuan_core::Quota { storage_bytes, download_bytes, requests, ..Default::default() };
                    let set = engine.set_quota(&Principal::operator(), &tenant, quota).await?;
                    println!("{}", serde_json::to_string_pretty(&set)?);
                    Ok(())
                }
            },
        }
    })
}

/// The most glibc malloc arenas [`limit_malloc_arenas`] allows, whatever the core count: the
/// count measured (on 2 cores) to keep RSS where two arenas kept it.
const MAX_MALLOC_ARENAS: usize = 8;

/// Two glibc malloc arenas per core, at most [`MAX_MALLOC_ARENAS`], instead of glibc's eight
/// per core (64-bit): each tokio worker and blocking-pool thread that allocated would
/// otherwise keep an arena of its own, and memory freed after a burst of small requests stays
/// resident in them. Measured with `bench/peers.sh` (ONLY=chuan, 2 rounds, 2026-12-01): with
/// glibc's 16 arenas on 2 cores the 1 GiB PUT's peak RSS after a round of 4 KiB PUT/GET was
/// 64.7 MiB, with two arenas in all 48.7 MiB, throughput unchanged.
///
/// Why not two in all, as from then until 2026-12-02: the metadata writer thread and the
/// runtime's workers then shared arenas, and waited for each other's arena locks (perf of
/// 4 KiB PUTs: `__lll_lock_wait_private`/`__lll_lock_wake_private` 6.5 % of the samples).
/// Measured on 2 cores (2026-12-02; `bench/ab.sh`'s loop with the peers harness's one body
/// under every key, 16 connections, 5 interleaved runs each, medians, op/s): 2 arenas in all
/// PUT 6,354 (5,930–6,506) and GET 19,500 (16,300–22,800); 4 in all 7,167 (5,425–7,693) and
/// 20,100 (17,000–23,300); 8 in all 7,322 (6,548–8,666) and 21,900 (19,600–23,700). Peak RSS
/// the same for all three (VmHWM 48.3–49.3 MB over the small round; the 1 GiB PUT's peak after
/// such a round in `peers.sh`: 53.6 and 55.3 MiB with 2, 54.8 with 4, 52.0 with 8). Four on 2
/// cores has most of the PUT gain (a quarter of the GET gain) with half the arenas of eight.
/// The cap keeps a many-core machine from going back towards one arena per thread (RSS was
/// measured on 2 cores only). `MALLOC_ARENA_MAX` in the environment still decides.
///
/// mimalloc as Rust's global allocator instead was tried on 2026-12-03 (the `mimalloc` crate
/// 0.1.52; `bench/ab.sh`, 4 interleaved runs each, medians, op/s): GET 22,671 against glibc's
/// 22,726, PUT 3,474 against 3,280, within the runs' spread — no gain worth a second allocator.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arenas = i32::try_from((2 * cores).min(MAX_MALLOC_ARENAS)).unwrap_or(2);
        // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
