//! The write path: one pass over the body that writes a temporary blob and feeds every hasher.
//!
//! A body that ends within the inline threshold ([`DEFAULT_INLINE_MAX`] unless configured)
//! never becomes a file: it is hashed in memory and its bytes travel with the commit into the
//! MetaStore (an inline blob, see `chuan_store::Extent`), so a small write costs a share of one
//! group-committed fsync instead of a file create, an fsync, a rename and a directory fsync.
//!
//! A longer body goes to a temporary blob: the async pump reads the request body and gathers
//! its chunks into batches of [`BATCH_BYTES`]; three stages take each batch through small bounded channels: the writer
//! (file write, SHA-256, CRCs, periodic write-back), MD5 and SHA-1 (the two slowest hashes; see
//! `hash.rs` for the figures), so the three run in parallel. A dialect whose answers need no
//! SHA-1 leaves it, past 4 MiB, to the background digest job ([`StageOptions::defer_sha1`]),
//! which reads such content for its UFile ETag anyway: about a fifth of the server's CPU on a
//! big PUT (perf, 1 GiB: MD5 38 %, SHA-1 20 %, SHA-256 17 %). Each stage hands one batch at a
//! time to the blocking pool as a short job and gets its state back: a body that stalls (a
//! slow or stuck client) holds memory for at most a few batches and **no thread**, so stalled
//! uploads cannot starve anyone else's work. The last batch of a complete body is written and
//! fsynced in one job; the blob is still invisible until a commit renames it into place and
//! records it in metadata.

use bytes::Bytes;
use chuan_store::{BlobStore, Digests, TempBlob};
use futures::{Stream, StreamExt};
use std::sync::Arc;
use tokio::sync::mpsc;

use crate::error::{is_stalled, CoreError, CoreResult};
use crate::hash::{ufile_etag_single, BlockSha1, MainHasher, Md5Hasher, Sha1Hasher, UFILE_BLOCK};

/// Bodies of at most this many bytes are kept inline in the MetaStore unless configured
/// otherwise ([`crate::EngineConfig::inline_max`]). Chosen by measurement (`bench/inline.sh`,
/// figures in bench/README.md): up to it both durable PUTs and GETs through the MetaStore are
/// faster than through files; at 128 KiB PUTs still gain but GETs lose a third (reading
/// overflow pages costs more than a file's read).
pub const DEFAULT_INLINE_MAX: usize = 96 << 10;
/// The largest inline threshold accepted: inline bytes are held in memory while a body
/// streams in and are read whole with their content.
pub const INLINE_MAX_LIMIT: usize = 1 << 20;
/// Inline bodies up to this size are hashed on the request's own task; larger ones on the
/// blocking pool (hashing runs at ~3.6 ns/B: 16 KiB is under 60 µs).
const HASH_ON_TASK: usize = 16 << 10;

/// Bytes gathered before a batch goes to the stages. With [`CHANNEL_DEPTH`], chosen by
/// measurement (2026-12-04, 1 GiB PUT by curl to a fresh server, 11 interleaved pairs, every
/// pair in favour): 1 MiB batches 4 deep 738 MB/s median against 685 with 256 KiB batches 8
/// deep (server CPU −7 %, fewer hand-offs to the blocking pool; peak RSS +6 MiB); 1 MiB
/// batches 2 deep 716 against 701 and 742 in the same 5 rounds.
const BATCH_BYTES: usize = 1 << 20;
/// Batches queued for each stage (memory per upload: about `(2 + depth) * BATCH_BYTES`).
const CHANNEL_DEPTH: usize = 4;
/// Start kernel write-back every this many bytes so the final fsync has little left to do.
const WRITEBACK_EVERY: usize = 32 << 20;

/// The errors a request body stream may end with.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A body staged for a commit, with all its digests: in a durable, invisible temporary blob,
/// or (at most the inline threshold) in memory, to be kept inline by the commit. Dropping it
/// removes the temporary file.
pub struct Staged {
    pub(crate) body: StagedBody,
    pub size: u64,
    pub digests: Digests,
    /// The UFile ETag: known for content up to one 4 MiB block, or when asked for (never
    /// when the SHA-1 was deferred).
    pub ufile_etag: Option<String>,
}

/// What the write path computes beyond the standard digests.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageOptions {
    /// Also hash 4 MiB blocks for the UFile ETag of content larger than one block (an extra
    /// SHA-1 pass, so only dialects that answer with that ETag ask for it).
    pub ufile_blocks: bool,
    /// The most bytes the body may have: past it the body is refused while streaming
    /// ([`CoreError::EntityTooLarge`]), before anything more is written.
    pub max_size: Option<u64>,
    /// Leave the SHA-1 of a body longer than one UFile block (4 MiB) to the background digest
    /// job, for dialects that answer without it (S3 unless a SHA-1 checksum is claimed, UpYun,
    /// IoT). Such content is pending anyway (the job reads it once for its UFile ETag), so
    /// the SHA-1 moves to that same pass: `digests.sha1` stays empty and the content is
    /// pending until the job (or an instant-upload lookup, or
    /// [`Engine::full_digests`](crate::Engine::full_digests)) settles it. Ignored with
    /// `ufile_blocks`; shorter bodies are hashed whole.
    pub defer_sha1: bool,
}

impl StageOptions {
    /// No more than `limit` bytes.
    pub fn at_most(limit: u64) -> Self {
        Self { max_size: Some(limit), ..Self::default() }
    }

    /// The same, with the SHA-1 left to the background job ([`StageOptions::defer_sha1`]).
    pub fn deferring_sha1(self) -> Self {
        Self { defer_sha1: true, ..self }
    }
}

/// Where staged bytes wait for their commit.
pub(crate) enum StagedBody {
    File(TempBlob),
    Inline(Bytes),
}

/// Staged bytes read back from the start ([`Staged::reopen`]).
pub enum StagedReader {
    File(std::fs::File),
    Memory(std::io::Cursor<Bytes>),
}

impl std::io::Read for StagedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::File(f) => f.read(buf),
            Self::Memory(c) => c.read(buf),
        }
    }
}

impl Staged {
    /// The staged bytes, read back from the start (for a check that needs parameters the
    /// client sends only after the data, such as the SHA-1 chain state of a COS slice).
    pub fn reopen(&self) -> std::io::Result<StagedReader> {
        Ok(match &self.body {
            StagedBody::File(temp) => StagedReader::File(std::fs::File::open(temp.path())?),
            StagedBody::Inline(b) => StagedReader::Memory(std::io::Cursor::new(b.clone())),
        })
    }

    /// The bytes a commit brings to the MetaStore: `Some` when they are staged in memory
    /// (bodies of at most the inline threshold), to be kept inline.
    pub(crate) fn inline_data(&self) -> Option<Bytes> {
        match &self.body {
            StagedBody::Inline(b) => Some(b.clone()),
            StagedBody::File(_) => None,
        }
    }

    /// The whole-content digests of these bytes, when complete (`None`: the SHA-1 was
    /// deferred, so content made of them is pending).
    pub fn complete_digests(&self) -> Option<Digests> {
        self.digests.is_complete().then(|| self.digests.clone())
    }

    /// Computes a deferred SHA-1 now, reading the staged bytes back (a client that claims a
    /// SHA-1 only in a trailer, after the body), with the UFile ETag it gives. No-op when known.
    pub async fn ensure_sha1(&mut self) -> CoreResult<()> {
        if self.digests.is_complete() {
            return Ok(());
        }
        let mut reader = self.reopen()?;
        let sha1 = tokio::task::spawn_blocking(move || {
            let mut h = Sha1Hasher::default();
            let mut buf = vec![0u8; 256 << 10];
            loop {
                match std::io::Read::read(&mut reader, &mut buf)? {
                    0 => return Ok::<_, std::io::Error>(h.finish_hex()),
                    n => h.update(&buf[..n]),
                }
            }
        })
        .await
        .map_err(|e| CoreError::Internal(e.to_string()))??;
        self.ufile_etag = ufile_etag_single(self.size, &sha1);
        self.digests.sha1 = sha1;
        Ok(())
    }

    /// The extent of content made of these bytes alone.
    pub(crate) fn extent(&self) -> chuan_store::Extent {
        chuan_store::Extent {
            data: self.inline_data(),
            ..chuan_store::Extent::stored(self.digests.sha256.clone(), self.size, self.digests.clone())
        }
    }
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged").field("size", &self.size).field("digests", &self.digests).finish()
    }
}

/// A batch of the body's chunks, and whether it ends a complete body.
type Batch = (Arc<Vec<Bytes>>, bool);

/// Runs `step` on the blocking pool for each batch received, threading `state` through. A job
/// takes every batch already queued before it gives its thread back, so a body that streams
/// steadily keeps one thread busy (as a dedicated thread would), and a body that stalls holds
/// none.
async fn run_stage<T: Send + 'static>(
    mut rx: mpsc::Receiver<Batch>,
    mut state: T,
    step: impl Fn(&mut T, &[Bytes], bool) -> CoreResult<()> + Send + Sync + Clone + 'static,
) -> CoreResult<T> {
    while let Some(first) = rx.recv().await {
        let step = step.clone();
        let (s, r) = tokio::task::spawn_blocking(move || {
            let mut next = Some(first);
            while let Some((batch, last)) = next.take() {
                step(&mut state, &batch, last)?;
                next = rx.try_recv().ok();
            }
            Ok::<_, CoreError>((state, rx))
        })
        .await
        .map_err(|e| CoreError::Internal(e.to_string()))??;
        state = s;
        rx = r;
    }
    Ok(state)
}

/// The body went past [`StageOptions::max_size`].
#[derive(Debug, thiserror::Error)]
#[error("the body is larger than {0} bytes")]
struct TooLarge(u64);

/// The core's error for a body stream that failed.
pub(crate) fn body_error(e: BodyError) -> CoreError {
    if is_stalled(e.as_ref()) {
        CoreError::RequestTimeout
    } else if let Some(t) = e.downcast_ref::<TooLarge>() {
        CoreError::EntityTooLarge { limit: t.0 }
    } else {
        CoreError::Body(e.to_string())
    }
}

/// Digests of a whole body held in memory.
fn stage_in_memory(chunks: Vec<Bytes>) -> Staged {
    let data = match <[Bytes; 1]>::try_from(chunks) {
        Ok([one]) => one,
        Err(chunks) => {
            let mut all = bytes::BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            chunks.iter().for_each(|c| all.extend_from_slice(c));
            all.freeze()
        }
    };
    let (mut main, mut md5, mut sha1) = (MainHasher::default(), Md5Hasher::default(), Sha1Hasher::default());
    main.update(&data);
    md5.update(&data);
    sha1.update(&data);
    let sha1 = sha1.finish_hex();
    let size = data.len() as u64;
    Staged {
        ufile_etag: ufile_etag_single(size, &sha1),
        digests: main.finish(md5.finish_hex(), sha1),
        size,
        body: StagedBody::Inline(data),
    }
}

/// Streams `body` into staging, computing every digest on the way: in memory when it ends
/// within `inline_max` bytes (at most [`INLINE_MAX_LIMIT`]), else into a new temporary blob.
///
/// Errors: `RequestTimeout` when the body stream ended with [`crate::BodyStalled`],
/// `EntityTooLarge` past [`StageOptions::max_size`], `Body` for any other body error, `Io`
/// when the disk refuses. Nothing stays behind on error.
pub async fn stage<S, E>(blobs: &dyn BlobStore, body: S, options: StageOptions, inline_max: usize) -> CoreResult<Staged>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<BodyError>,
{
    // The head of the body, in memory until it is known to be small or not.
    // Fused: a body that ended within the head is chained after it all the same.
    let inline_max = inline_max.min(INLINE_MAX_LIMIT);
    let mut body = Box::pin(body.fuse());
    let (mut head, mut total) = (Vec::new(), 0usize);
    loop {
        match body.next().await {
            None if total > inline_max => break, // with 0, not even an empty body is inline
            None => {
                return if total <= HASH_ON_TASK {
                    Ok(stage_in_memory(head))
                } else {
                    tokio::task::spawn_blocking(move || stage_in_memory(head))
                        .await
                        .map_err(|e| CoreError::Internal(e.to_string()))
                };
            }
            Some(Err(e)) => return Err(body_error(e.into())),
            Some(Ok(chunk)) => {
                total += chunk.len();
                if let Some(limit) = options.max_size.filter(|l| total as u64 > *l) {
                    return Err(CoreError::EntityTooLarge { limit });
                }
                if !chunk.is_empty() {
                    head.push(chunk);
                }
                if total > inline_max {
                    break;
                }
            }
        }
    }
    let body = futures::stream::iter(head.into_iter().map(Ok::<Bytes, E>)).chain(body);
    let temp = blobs.create_temp()?;
    let (w_tx, w_rx) = mpsc::channel::<Batch>(CHANNEL_DEPTH);
    let (m_tx, m_rx) = mpsc::channel::<Batch>(CHANNEL_DEPTH);
    let (s_tx, s_rx) = mpsc::channel::<Batch>(CHANNEL_DEPTH);
    // A deferred SHA-1 is computed here all the same up to one UFile block; past it the
    // SHA-1 stage gets no more batches and the content is left to the background job.
    let defer_past = (options.defer_sha1 && !options.ufile_blocks).then_some(UFILE_BLOCK);

    let writer = run_stage(
        w_rx,
        (temp, MainHasher::default(), 0usize),
        |(temp, h, since): &mut (TempBlob, MainHasher, usize), batch: &[Bytes], last: bool| {
            for b in batch {
                h.update(b);
                temp.write_all(b)?;
                *since += b.len();
            }
            if last {
                temp.sync()?;
            } else if *since >= WRITEBACK_EVERY {
                temp.start_writeback();
                *since = 0;
            }
            Ok(())
        },
    );
    let md5 = run_stage(m_rx, Md5Hasher::default(), |h: &mut Md5Hasher, batch: &[Bytes], _| {
        batch.iter().for_each(|b| h.update(b));
        Ok(())
    });
    let sha1 = run_stage(
        s_rx,
        (Sha1Hasher::default(), options.ufile_blocks.then(BlockSha1::default)),
        |(h, blocks): &mut (Sha1Hasher, Option<BlockSha1>), batch: &[Bytes], _| {
            for b in batch {
                h.update(b);
                if let Some(blocks) = blocks {
                    blocks.update(b);
                }
            }
            Ok(())
        },
    );

    // The pump: `Ok(true)` when the body ended and the last batch was sent, `Ok(false)` when a
    // stage stopped taking batches (its error is reported), `Err` when the body failed.
    let pump = async move {
        let mut txs = vec![w_tx, m_tx, s_tx];
        async fn send(txs: &[mpsc::Sender<Batch>], batch: Vec<Bytes>, last: bool) -> bool {
            let batch = Arc::new(batch);
            for tx in txs {
                if tx.send((batch.clone(), last)).await.is_err() {
                    return false;
                }
            }
            true
        }
        let mut body = std::pin::pin!(body);
        let (mut batch, mut gathered, mut total) = (Vec::new(), 0usize, 0u64);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(Into::into)?;
            if chunk.is_empty() {
                continue;
            }
            total += chunk.len() as u64;
            if let Some(limit) = options.max_size.filter(|l| total > *l) {
                return Err(Box::new(TooLarge(limit)) as BodyError);
            }
            if defer_past.is_some_and(|past| total > past) {
                txs.truncate(2); // the SHA-1 stage ends with a partial digest, discarded below
            }
            gathered += chunk.len();
            batch.push(chunk);
            if gathered >= BATCH_BYTES {
                if !send(&txs, std::mem::take(&mut batch), false).await {
                    return Ok(false);
                }
                gathered = 0;
            }
        }
        Ok::<bool, BodyError>(send(&txs, batch, true).await)
    };

    let (pumped, written, md5, sha1) = tokio::join!(pump, writer, md5, sha1);
    pumped.map_err(body_error)?;
    let (temp, main, _) = written?;
    let md5 = md5?.finish_hex();
    let (sha1, blocks) = sha1?;
    let size = temp.len();
    let (sha1, ufile_etag) = match defer_past {
        Some(past) if size > past => (String::new(), None),
        _ => {
            let sha1 = sha1.finish_hex();
            (sha1.clone(), ufile_etag_single(size, &sha1).or_else(|| blocks.map(BlockSha1::finish_etag)))
        }
    };
    Ok(Staged { body: StagedBody::File(temp), size, digests: main.finish(md5, sha1), ufile_etag })
}
