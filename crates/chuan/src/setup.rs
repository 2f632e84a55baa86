//! Opening a data directory: stores, engine, root credentials, crash recovery.

use anyhow::Context;
use chuan_core::{new_access_key, new_secret, Engine, EngineConfig};
use chuan_store::{BlobStore, LocalBlobStore, S3BlobStore, S3Location, SqlMetaStore};
use std::path::Path;
use std::sync::Arc;

/// Opens the engine over the metadata store (`meta`, a PostgreSQL connection string, or else
/// SQLite at `DATA/meta.db`) and the blob store (`blobs`, an `s3://` address, or else files in
/// `DATA/blobs`). Temporaries are always in `DATA/tmp`; with files, what the remover thread
/// has yet to free in `DATA/retired`.
pub async fn open_engine(
    data: &Path,
    meta: Option<&str>,
    blobs: Option<&str>,
    config: EngineConfig,
) -> anyhow::Result<Arc<Engine>> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot create data directory {}", data.display()))?;
    // The metadata database holds every credential's secret: the directory is the owner's
    // alone, whatever the umask (what is inside is then out of others' reach too).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict data directory {} to its owner", data.display()))?;
    }
    let meta = match meta {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            SqlMetaStore::connect_postgres(url).context("cannot open the metadata store (--meta)")?
        }
        Some(other) => anyhow::bail!(
            "--meta {:?} is not a PostgreSQL connection string: give postgres://user:password@host:port/database, \
             or leave --meta out for the embedded SQLite store",
            other.split('@').next_back().unwrap_or_default()
        ),
        None => SqlMetaStore::open_sqlite(&data.join("meta.db")).context("cannot open the metadata database")?,
    };
    let blobs: Arc<dyn BlobStore> = match blobs {
        Some(url) => {
            let location = S3Location::parse(url).map_err(|e| anyhow::anyhow!("--blobs: {e}"))?;
            Arc::new(S3BlobStore::open(&location, data).await.context("cannot open the blob store (--blobs)")?)
        }
        None => Arc::new(LocalBlobStore::open(data).context("cannot open the blob store")?),
    };
    Ok(Arc::new(Engine::new(Arc::new(meta), blobs, config)))
}

/// Root credentials: from `CHUAN_ACCESS_KEY`/`CHUAN_SECRET_KEY`, else the ones kept in the
/// data directory, else new ones (saved with mode 0600 and printed once).
pub async fn ensure_root_credentials(engine: &Engine, data: &Path) -> anyhow::Result<(String, String, bool)> {
    let file = data.join("root-credentials");
    let given = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let (ak, sk, generated) = match (given("CHUAN_ACCESS_KEY"), given("CHUAN_SECRET_KEY")) {
        (Some(a), Some(s)) => (a, s, false),
        (Some(_), None) | (None, Some(_)) => {
            anyhow::bail!("CHUAN_ACCESS_KEY and CHUAN_SECRET_KEY are set together or not at all: set the other one too")
        }
        _ => match std::fs::read_to_string(&file) {
            Ok(text) => {
                let mut lines = text.lines();
                let a = lines.next().unwrap_or_default().trim().to_owned();
                let s = lines.next().unwrap_or_default().trim().to_owned();
                anyhow::ensure!(!a.is_empty() && !s.is_empty(), "{} is malformed", file.display());
                (a, s, false)
            }
            Err(_) => {
                let (a, s) = (new_access_key(), new_secret());
                write_private(&file, &format!("{a}\n{s}\n"))?;
                (a, s, true)
            }
        },
    };
    engine.ensure_root_credential(&ak, &sk).await?;
    Ok((ak, sk, generated))
}

/// Takes the data directory's server lock (`DATA/serve.lock`, an exclusive `flock`), held
/// while the returned file is open: one `chuan serve` per data directory. Errors, saying so,
/// when another process holds it.
pub fn lock_data_dir(data: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let path = data.join("serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function owns; no memory is shared.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        anyhow::bail!(
            "another `chuan serve` is running on {} (it holds {}); stop it first, or give this one \
             its own --data directory",
            data.display(),
            path.display()
        );
    }
    Ok(file)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}
