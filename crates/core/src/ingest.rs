//! The write path: one pass over the body that writes a temporary blob and feeds every hasher.
//!
//! Stages connected by small bounded channels, so memory stays at a few chunks whatever the
//! body size: the async pump (reads the request body), a blocking writer thread (file write,
//! SHA-256, CRCs, periodic write-back), and blocking MD5 and SHA-1 threads (the two slowest
//! hashes; see `hash.rs` for the figures). When the body
//! ends the writer fsyncs the file; the blob is still invisible until a commit renames it into
//! place and records it in metadata.

use bytes::Bytes;
use chuan_store::{BlobStore, Digests, TempBlob};
use futures::{Stream, StreamExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{CoreError, CoreResult};
use crate::hash::{ufile_etag_single, BlockSha1, MainHasher, Md5Hasher, Sha1Hasher};

/// Chunks in flight between stages.
const CHANNEL_DEPTH: usize = 8;
/// Start kernel write-back every this many bytes so the final fsync has little left to do.
const WRITEBACK_EVERY: usize = 32 << 20;

/// A body written to an invisible, durable temporary blob, with all its digests.
/// Dropping it removes the temporary file.
pub struct Staged {
    pub(crate) temp: TempBlob,
    pub size: u64,
    pub digests: Digests,
    /// The UFile ETag: known for content up to one 4 MiB block, or when asked for.
    pub ufile_etag: Option<String>,
}

/// What the write path computes beyond the standard digests.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageOptions {
    /// Also hash 4 MiB blocks for the UFile ETag of content larger than one block (an extra
    /// SHA-1 pass, so only dialects that answer with that ETag ask for it).
    pub ufile_blocks: bool,
}

impl Staged {
    /// The staged bytes, read back from the start (for a check that needs parameters the
    /// client sends only after the data, such as the SHA-1 chain state of a COS slice).
    pub fn reopen(&self) -> std::io::Result<std::fs::File> {
        std::fs::File::open(self.temp.path())
    }
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged").field("size", &self.size).field("digests", &self.digests).finish()
    }
}

/// Marks the stage as abandoned if the pump does not reach the end (error, or the request
/// future dropped because the client went away), so the writer skips the fsync.
struct AbandonGuard {
    abandoned: Arc<AtomicBool>,
    finished: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.abandoned.store(true, Ordering::SeqCst);
        }
    }
}

pub async fn stage<S, E>(blobs: &dyn BlobStore, body: S, options: StageOptions) -> CoreResult<Staged>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let temp = blobs.create_temp()?;
    let abandoned = Arc::new(AtomicBool::new(false));
    let mut guard = AbandonGuard { abandoned: abandoned.clone(), finished: false };

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (md5_tx, mut md5_rx) = tokio::sync::mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (sha1_tx, mut sha1_rx) = tokio::sync::mpsc::channel::<Bytes>(CHANNEL_DEPTH);

    let md5_task = tokio::task::spawn_blocking(move || {
        let mut h = Md5Hasher::default();
        while let Some(b) = md5_rx.blocking_recv() {
            h.update(&b);
        }
        h.finish_hex()
    });
    let sha1_task = tokio::task::spawn_blocking(move || {
        let mut h = Sha1Hasher::default();
        let mut blocks = options.ufile_blocks.then(BlockSha1::default);
        while let Some(b) = sha1_rx.blocking_recv() {
            h.update(&b);
            if let Some(blocks) = &mut blocks {
                blocks.update(&b);
            }
        }
        (h.finish_hex(), blocks.map(BlockSha1::finish_etag))
    });
    let writer_abandoned = abandoned.clone();
    let write_task = tokio::task::spawn_blocking(move || -> CoreResult<(TempBlob, MainHasher)> {
        let mut temp = temp;
        let mut h = MainHasher::default();
        let mut since_writeback = 0usize;
        while let Some(b) = rx.blocking_recv() {
            if md5_tx.blocking_send(b.clone()).is_err() || sha1_tx.blocking_send(b.clone()).is_err() {
                return Err(CoreError::Internal("hasher thread stopped".into()));
            }
            h.update(&b);
            temp.write_all(&b)?;
            since_writeback += b.len();
            if since_writeback >= WRITEBACK_EVERY {
                temp.start_writeback();
                since_writeback = 0;
            }
        }
        drop(md5_tx);
        drop(sha1_tx);
        if writer_abandoned.load(Ordering::SeqCst) {
            return Err(CoreError::IncompleteBody);
        }
        temp.sync()?;
        Ok((temp, h))
    });

    let mut body = std::pin::pin!(body);
    let mut failure = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(b) if b.is_empty() => {}
            Ok(b) => {
                if tx.send(b).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    if failure.is_none() {
        guard.finished = true;
    }
    drop(guard);
    drop(tx);

    let written = write_task.await.map_err(|e| CoreError::Internal(e.to_string()))?;
    let md5 = md5_task.await.map_err(|e| CoreError::Internal(e.to_string()))?;
    let (sha1, block_etag) = sha1_task.await.map_err(|e| CoreError::Internal(e.to_string()))?;
    if let Some(msg) = failure {
        return Err(CoreError::Body(msg));
    }
    let (temp, main) = written?;
    let size = temp.len();
    let ufile_etag = ufile_etag_single(size, &sha1).or(block_etag);
    Ok(Staged { temp, size, digests: main.finish(md5, sha1), ufile_etag })
}
