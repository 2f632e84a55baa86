//! Opening a data directory: stores, engine, root credentials, crash recovery.

use anyhow::Context;
use chuan_core::store::{CredentialRecord, LocalBlobStore, SqliteMetaStore};
use chuan_core::{Engine, EngineConfig};
use rand::Rng;
use std::path::Path;
use std::sync::Arc;

pub fn open_engine(data: &Path, config: EngineConfig) -> anyhow::Result<Arc<Engine>> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot create data directory {}", data.display()))?;
    let meta = SqliteMetaStore::open(&data.join("meta.db")).context("cannot open the metadata database")?;
    let blobs = LocalBlobStore::open(data).context("cannot open the blob store")?;
    Ok(Arc::new(Engine::new(Arc::new(meta), Arc::new(blobs), config)))
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char).collect()
}

pub fn new_access_key() -> String {
    format!("CK{}", random_string(18, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
}

pub fn new_secret() -> String {
    random_string(40, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
}

/// Root credentials: from `CHUAN_ACCESS_KEY`/`CHUAN_SECRET_KEY`, else the ones kept in the
/// data directory, else new ones (saved with mode 0600 and printed once).
pub async fn ensure_root_credentials(engine: &Engine, data: &Path) -> anyhow::Result<(String, String, bool)> {
    let file = data.join("root-credentials");
    let (ak, sk, generated) = match (std::env::var("CHUAN_ACCESS_KEY"), std::env::var("CHUAN_SECRET_KEY")) {
        (Ok(a), Ok(s)) if !a.is_empty() && !s.is_empty() => (a, s, false),
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
    engine
        .meta()
        .put_credential(CredentialRecord {
            access_key: ak.clone(),
            secret: sk.clone(),
            tenant: "root".into(),
            kind: "root".into(),
            created_ms: chuan_core::store::now_ms(),
            expires_ms: None,
            scope: None,
        })
        .await?;
    Ok((ak, sk, generated))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}
