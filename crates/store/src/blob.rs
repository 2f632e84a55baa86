//! Content-addressed blob storage.

use async_trait::async_trait;
use bytes::Bytes;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::model::BlobId;

/// A stream of bytes read from a blob.
pub type ByteStream = std::pin::Pin<Box<dyn futures_core::Stream<Item = io::Result<Bytes>> + Send + Sync>>;

/// Bytes being written, not yet visible. Always a local file, so the write path can hash,
/// write and fsync in one pass whatever the backend. Dropping it removes the file: at once
/// up to 32 MiB, else a moment later on the remover thread ([`drain_removals`]).
pub struct TempBlob {
    file: Option<File>,
    path: PathBuf,
    written: u64,
}

impl TempBlob {
    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let file = self.file.as_mut().expect("temp blob already closed");
        file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(())
    }

    /// Ask the kernel to start writing back what has been written so far, without waiting.
    /// Keeps the final fsync short for large blobs.
    pub fn start_writeback(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(f) = &self.file {
            use std::os::fd::AsRawFd;
            // SAFETY: plain syscall on a file descriptor we own; errors are only a lost hint.
            unsafe {
                libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
            }
        }
    }

    /// Make the bytes durable (the blob is still invisible).
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("temp blob already closed").sync_all()
    }

    pub fn len(&self) -> u64 {
        self.written
    }

    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn disarm(mut self) -> PathBuf {
        self.file = None;
        std::mem::take(&mut self.path)
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            self.file = None;
            let path = std::mem::take(&mut self.path);
            if self.written <= REMOVE_STEP {
                let _ = std::fs::remove_file(&path);
            } else {
                retire(path, self.written, Removal::Truncate);
            }
        }
    }
}

/// Files are freed this many bytes at a time ([`remove_gently`]).
const REMOVE_STEP: u64 = 32 << 20;
/// How long a retired file waits before the remover starts on it, so that its removal does
/// not compete with the fsyncs of the request that retired it (its commit).
const REMOVER_DELAY: Duration = Duration::from_millis(500);
/// The most bytes waiting for the remover; past it a file is removed by whoever retires it,
/// so a burst of big discarded uploads cannot hold disk space for long.
const REMOVER_BACKLOG: u64 = 4 << 30;

/// How the remover thread frees a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// In steps ([`remove_gently`]): for files no one else has open (temporaries).
    Truncate,
    /// At once: for a deleted blob, which a reader may still have open (its blocks are
    /// freed when the last one closes it).
    Unlink,
}

impl Removal {
    fn run(self, path: &Path) -> io::Result<bool> {
        match self {
            Self::Truncate => remove_gently(path),
            Self::Unlink => match std::fs::remove_file(path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
        }
    }
}

/// The remover thread's queue and what is waiting in it.
struct Remover {
    queue: std::sync::Mutex<std::sync::mpsc::Sender<(PathBuf, u64, Removal, std::time::Instant)>>,
    waiting: std::sync::atomic::AtomicU64,
    files: std::sync::atomic::AtomicUsize,
    hurry: std::sync::atomic::AtomicBool,
}

fn remover() -> &'static Remover {
    use std::sync::atomic::Ordering::SeqCst;
    static REMOVER: std::sync::OnceLock<Remover> = std::sync::OnceLock::new();
    REMOVER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<(PathBuf, u64, Removal, std::time::Instant)>();
        let spawned = std::thread::Builder::new().name("chuan-remover".into()).spawn(move || {
            for (path, len, how, queued) in rx {
                let this = remover();
                let due = queued + REMOVER_DELAY;
                while !this.hurry.load(SeqCst) && std::time::Instant::now() < due {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if let Err(e) = how.run(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a retired file; it goes at the next start");
                }
                this.waiting.fetch_sub(len, SeqCst);
                this.files.fetch_sub(1, SeqCst);
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the remover thread; files are removed at once");
        }
        Remover {
            queue: std::sync::Mutex::new(tx),
            waiting: Default::default(),
            files: Default::default(),
            hurry: Default::default(),
        }
    })
}

/// Hands a file of `len` bytes (its size as far as the caller knows) to the remover thread,
/// which frees it [`REMOVER_DELAY`] later, so neither the request about to answer nor anyone
/// else's I/O waits for it. Done here instead when the remover is [`REMOVER_BACKLOG`] behind
/// or could not start. Best effort: a file left behind by a failure or a crash is in `tmp/`
/// or `retired/`, both emptied at startup ([`BlobStore::sweep_temps`] with age zero).
fn retire(path: PathBuf, len: u64, how: Removal) {
    use std::sync::atomic::Ordering::SeqCst;
    let r = remover();
    if r.waiting.fetch_add(len, SeqCst) + len > REMOVER_BACKLOG {
        r.waiting.fetch_sub(len, SeqCst);
        let _ = how.run(&path);
        return;
    }
    r.files.fetch_add(1, SeqCst);
    let queued = r.queue.lock().expect("not poisoned").send((path, len, how, std::time::Instant::now()));
    // A remover that could not start dropped its receiver: the file goes now instead.
    if let Err(back) = queued {
        r.waiting.fetch_sub(len, SeqCst);
        r.files.fetch_sub(1, SeqCst);
        let _ = how.run(&back.0 .0);
    }
}

/// Waits (at most `timeout`) until the remover thread has freed every file handed to it,
/// without its usual delay; whether it has. For a clean shutdown, and for tests that look at
/// `tmp/` right after dropping a big temporary.
pub fn drain_removals(timeout: Duration) -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    let r = remover();
    let until = std::time::Instant::now() + timeout;
    r.hurry.store(true, SeqCst);
    while r.files.load(SeqCst) > 0 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    r.hurry.store(false, SeqCst);
    r.files.load(SeqCst) == 0
}

/// Frees a file's blocks [`REMOVE_STEP`] bytes at a time, each step made durable before the
/// next, then unlinks it. `Ok(false)` when the file was already gone. Only for a file no one
/// else has open: a reader would find it cut short.
///
/// Why: on a file system mounted with online discard (ext4 `-o discard`, as on the VMs this
/// runs on), freeing a file's blocks discards every one of them: without a journal (as here)
/// inside the unlink itself, with one at the journal commit that every fsync waits for.
/// Removing a 1 GiB file took ~0.2 s here (`rm` then `sync`: 187–208 ms), and a request that
/// did it before answering (a second copy of stored bytes) was that much slower. Freed
/// 32 MiB at a time, no discard burst is longer than a few milliseconds for anyone's I/O
/// queued behind it.
pub(crate) fn remove_gently(path: &Path) -> io::Result<bool> {
    let file = match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut len = file.metadata()?.len();
    while len > REMOVE_STEP {
        len -= REMOVE_STEP;
        file.set_len(len)?;
        file.sync_data()?;
    }
    drop(file);
    Removal::Unlink.run(path)
}

/// Where blobs' bytes are kept. Temporaries are always local files (see [`TempBlob`]); the
/// stored blobs may be anywhere ([`LocalBlobStore`]: files; [`crate::S3BlobStore`]: objects of an
/// S3 bucket).
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// A new, empty temporary blob.
    fn create_temp(&self) -> io::Result<TempBlob>;
    /// Make a synced temp blob durable under `id` (its SHA-256). If the blob already exists
    /// the bytes are identical and the temp is discarded.
    async fn persist(&self, temp: TempBlob, id: &BlobId) -> io::Result<()>;
    /// Stream `len` bytes from `offset`.
    async fn read(&self, id: &BlobId, offset: u64, len: u64) -> io::Result<ByteStream>;
    /// The size of a stored blob, or `None` if it is missing.
    async fn size(&self, id: &BlobId) -> io::Result<Option<u64>>;
    /// Deletes a stored blob (a missing one is not an error).
    async fn delete(&self, id: &BlobId) -> io::Result<()>;
    /// Every stored blob (for fsck).
    async fn list(&self) -> io::Result<Vec<BlobId>>;
    /// Remove temporary files older than `age` (left by a crash). Returns how many.
    fn sweep_temps(&self, age: Duration) -> io::Result<usize>;
    /// Number of temporary files present (metrics, tests).
    fn temp_count(&self) -> io::Result<usize>;
}

/// A new temporary blob in `tmp` (shared by the BlobStores: staging is always local).
pub(crate) fn create_temp_in(tmp: &Path) -> io::Result<TempBlob> {
    let path = tmp.join(format!("{}.part", uuid::Uuid::new_v4().simple()));
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
    Ok(TempBlob { file: Some(file), path, written: 0 })
}

/// Removes temporaries in `tmp` untouched for `age`; how many.
pub(crate) fn sweep_temps_in(tmp: &Path, age: Duration) -> io::Result<usize> {
    let now = SystemTime::now();
    let mut removed = 0;
    // Uploads in flight rename or remove their temp files at any moment: an entry that
    // vanished between listing and looking is simply gone, not an error.
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    for entry in std::fs::read_dir(tmp)? {
        let entry = entry?;
        let modified = match entry.metadata().and_then(|m| m.modified()) {
            Ok(m) => m,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e),
        };
        if now.duration_since(modified).unwrap_or_default() >= age {
            // Unlinked, not truncated: a temp untouched for `age` may still be read (one
            // being uploaded to an S3 backend).
            removed += usize::from(Removal::Unlink.run(&entry.path())?);
        }
    }
    Ok(removed)
}

/// Runs blocking file work on the runtime's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| io::Error::other(e.to_string()))?
}

/// Blobs as files: `<root>/blobs/ab/cd/<sha256>`; temporaries in `<root>/tmp/`; deleted
/// blobs and second copies of stored bytes in `<root>/retired/` until the remover thread
/// frees them ([`retire`]).
#[derive(Clone)]
pub struct LocalBlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
    retired: PathBuf,
}

const READ_CHUNK: usize = 1 << 20;

impl LocalBlobStore {
    pub fn open(root: &Path) -> io::Result<Self> {
        let blobs = root.join("blobs");
        let tmp = root.join("tmp");
        let retired = root.join("retired");
        for dir in [&blobs, &tmp, &retired] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Self { blobs, tmp, retired })
    }

    fn path_of(&self, id: &BlobId) -> io::Result<PathBuf> {
        // Ids are produced by our own hasher, but they also arrive from metadata: never let
        // anything that is not 64 hex digits become a path.
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad blob id {id:?}")));
        }
        Ok(self.blobs.join(&id[0..2]).join(&id[2..4]).join(id))
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

impl LocalBlobStore {
    fn persist_now(&self, temp: TempBlob, id: &BlobId) -> io::Result<()> {
        let dest = self.path_of(id)?;
        let dir = dest.parent().expect("blob path has a parent");
        if dest.exists() {
            // Same name, same bytes: keep the one that is already durable. The temp goes
            // through what a new blob's does (a rename, here into `retired/`, and a directory
            // fsync) and is freed later by the remover thread, whatever its size: a removal
            // here (~0.2 s per GiB on this VM, see `remove_gently`) would tell the writer
            // that someone stored these bytes already. What stays different is in
            // ARCHITECTURE.md, invariant 15.
            let len = temp.len();
            let src = temp.disarm();
            let spent = self.retired.join(uuid::Uuid::new_v4().simple().to_string());
            let spent = match std::fs::rename(&src, &spent) {
                Ok(()) => spent,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot move a second copy into retired/; freed where it is");
                    src
                }
            };
            retire(spent, len, Removal::Truncate);
            // Only for the timing: these bytes are durable already, so a failure is logged.
            if let Err(e) = sync_dir(&self.retired) {
                tracing::warn!(error = %e, "cannot fsync retired/");
            }
            return Ok(());
        }
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            sync_dir(dir.parent().expect("fan-out dir has a parent"))?;
        }
        let src = temp.disarm();
        std::fs::rename(&src, &dest)?;
        sync_dir(dir)
    }

    fn list_now(blobs: &Path) -> io::Result<Vec<BlobId>> {
        let mut out = Vec::new();
        for a in std::fs::read_dir(blobs)? {
            let a = a?.path();
            if !a.is_dir() {
                continue;
            }
            for b in std::fs::read_dir(&a)? {
                let b = b?.path();
                if !b.is_dir() {
                    continue;
                }
                for f in std::fs::read_dir(&b)? {
                    out.push(f?.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    fn create_temp(&self) -> io::Result<TempBlob> {
        create_temp_in(&self.tmp)
    }

    async fn persist(&self, temp: TempBlob, id: &BlobId) -> io::Result<()> {
        let this = self.clone();
        let id = id.clone();
        blocking(move || this.persist_now(temp, &id)).await
    }

    async fn read(&self, id: &BlobId, offset: u64, len: u64) -> io::Result<ByteStream> {
        let file = File::open(self.path_of(id)?)?;
        Ok(Box::pin(ReadAhead::new(file, offset, len)))
    }

    async fn size(&self, id: &BlobId) -> io::Result<Option<u64>> {
        match std::fs::metadata(self.path_of(id)?) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, id: &BlobId) -> io::Result<()> {
        // Gone from its name at once (a rename: a commit refused after its bytes were stored
        // answers without waiting for their discards), unlinked later by the remover thread,
        // never truncated: a reader that opened the blob before (a long GET of an object
        // deleted since) reads every byte until it closes the file.
        let path = self.path_of(id)?;
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let spent = self.retired.join(uuid::Uuid::new_v4().simple().to_string());
        match std::fs::rename(&path, &spent) {
            Ok(()) => {
                retire(spent, len, Removal::Unlink);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list(&self) -> io::Result<Vec<BlobId>> {
        let blobs = self.blobs.clone();
        blocking(move || Self::list_now(&blobs)).await
    }

    fn sweep_temps(&self, age: Duration) -> io::Result<usize> {
        // While the server runs the remover thread empties `retired/`; what a crash (or a
        // failed removal) left there goes with the sweep at startup, the one with age zero.
        let retired = if age.is_zero() { sweep_temps_in(&self.retired, age)? } else { 0 };
        Ok(sweep_temps_in(&self.tmp, age)? + retired)
    }

    fn temp_count(&self) -> io::Result<usize> {
        Ok(std::fs::read_dir(&self.tmp)?.count())
    }
}

/// Chunks in flight ahead of the consumer when reading a blob.
const READ_AHEAD: usize = 2;

/// Read buffers that went back for reuse, at most [`SPARE_READ_BUFFERS`] of them.
static SPARE: parking_lot::Mutex<Vec<Vec<u8>>> = parking_lot::Mutex::new(Vec::new());
/// How many [`READ_CHUNK`] buffers are kept for the next reads (their memory stays in the
/// RSS: 4 MiB).
const SPARE_READ_BUFFERS: usize = 4;

/// One chunk's buffer, which goes back to [`SPARE`] when the last [`Bytes`] made from it is
/// dropped (after hyper wrote it), so the next chunk reads into memory already mapped.
/// A fresh `vec![0; 1 MiB]` per chunk cost a fifth of the server's CPU in a 1 GiB GET (perf,
/// 2026-12-03: page faults on new pages, zeroing, and glibc unmapping them again on free).
struct ReadBuffer(Vec<u8>);

impl ReadBuffer {
    /// A buffer of `n` bytes (at most [`READ_CHUNK`]); only bytes it never held are zeroed.
    fn take(n: usize) -> Self {
        let mut buf = SPARE.lock().pop().unwrap_or_else(|| Vec::with_capacity(READ_CHUNK));
        buf.resize(n, 0);
        Self(buf)
    }
}

impl AsRef<[u8]> for ReadBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if buf.capacity() == READ_CHUNK {
            let mut spare = SPARE.lock();
            if spare.len() < SPARE_READ_BUFFERS {
                spare.push(buf);
            }
        }
    }
}

/// A blob's bytes as a stream of [`READ_CHUNK`]-sized positional reads, each one short job on
/// the blocking pool, at most [`READ_AHEAD`] ahead of the consumer. A slow or stalled reader
/// (a client downloading at a trickle) holds finished chunks, never a thread.
struct ReadAhead {
    file: std::sync::Arc<File>,
    next: u64,
    end: u64,
    inflight: std::collections::VecDeque<tokio::task::JoinHandle<io::Result<Bytes>>>,
    failed: bool,
}

impl ReadAhead {
    fn new(file: File, offset: u64, len: u64) -> Self {
        Self {
            file: std::sync::Arc::new(file),
            next: offset,
            end: offset.saturating_add(len),
            inflight: Default::default(),
            failed: false,
        }
    }

    fn fill(&mut self) {
        while self.inflight.len() < READ_AHEAD && self.next < self.end {
            let n = (self.end - self.next).min(READ_CHUNK as u64) as usize;
            let (file, at) = (self.file.clone(), self.next);
            self.inflight.push_back(tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buf = ReadBuffer::take(n);
                file.read_exact_at(&mut buf.0, at).map(|()| Bytes::from_owner(buf))
            }));
            self.next += n as u64;
        }
    }
}

impl futures_core::Stream for ReadAhead {
    type Item = io::Result<Bytes>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::future::Future;
        use std::task::Poll;
        if self.failed {
            return Poll::Ready(None);
        }
        self.fill();
        let Some(head) = self.inflight.front_mut() else { return Poll::Ready(None) };
        let out = match std::pin::Pin::new(head).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(r)) => r,
            Poll::Ready(Err(e)) => Err(io::Error::other(e.to_string())),
        };
        self.inflight.pop_front();
        if out.is_err() {
            self.failed = true;
        } else {
            self.fill();
        }
        Poll::Ready(Some(out))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        for h in &self.inflight {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(n: u8) -> BlobId {
        format!("{:064x}", n)
    }

    #[tokio::test]
    async fn temp_is_invisible_until_persisted_and_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let mut t = store.create_temp().unwrap();
        t.write_all(b"hello").unwrap();
        assert_eq!(store.temp_count().unwrap(), 1);
        drop(t);
        assert_eq!(store.temp_count().unwrap(), 0);
        assert!(store.list().await.unwrap().is_empty());

        let mut t = store.create_temp().unwrap();
        t.write_all(b"hello world").unwrap();
        t.sync().unwrap();
        store.persist(t, &id_of(7)).await.unwrap();
        assert_eq!(store.temp_count().unwrap(), 0);
        assert_eq!(store.size(&id_of(7)).await.unwrap(), Some(11));
        let mut s = store.read(&id_of(7), 6, 5).await.unwrap();
        use futures_util_lite::next;
        let mut got = Vec::new();
        while let Some(chunk) = next(&mut s).await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(got, b"world");
    }

    /// Files left in `tmp/` and `retired/` once the remover thread has done its work.
    async fn temps_drain(store: &LocalBlobStore) -> usize {
        assert!(tokio::task::spawn_blocking(|| drain_removals(Duration::from_secs(20))).await.unwrap());
        store.temp_count().unwrap() + std::fs::read_dir(&store.retired).unwrap().count()
    }

    #[tokio::test]
    async fn bytes_stored_already_keep_their_blob_and_the_new_copy_goes() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        // A small second copy and a big one (past a removal step): both go through the remover
        // thread, a moment later.
        for (n, size) in [(1u8, 1000usize), (2, REMOVE_STEP as usize * 2 + 5)] {
            let body = vec![n; size];
            for _ in 0..2 {
                let mut t = store.create_temp().unwrap();
                t.write_all(&body).unwrap();
                t.sync().unwrap();
                store.persist(t, &id_of(n)).await.unwrap();
                assert_eq!(store.size(&id_of(n)).await.unwrap(), Some(size as u64));
            }
            assert_eq!(temps_drain(&store).await, 0, "the second copy of blob {n} is removed");
        }
        // A big blob deleted while a reader has it open: gone from its name at once, and the
        // reader still gets every byte (deletion unlinks; only temps are freed in steps).
        let size = REMOVE_STEP as usize * 2 + 5;
        let mut reading = store.read(&id_of(2), 0, size as u64).await.unwrap();
        store.delete(&id_of(2)).await.unwrap();
        assert_eq!(store.size(&id_of(2)).await.unwrap(), None);
        assert_eq!(temps_drain(&store).await, 0);
        let mut got = 0;
        while let Some(chunk) = futures_util_lite::next(&mut reading).await {
            let chunk = chunk.unwrap();
            assert!(chunk.iter().all(|b| *b == 2));
            got += chunk.len();
        }
        assert_eq!(got, size);
        store.delete(&id_of(2)).await.unwrap(); // already gone: not an error
        assert_eq!(store.list().await.unwrap(), [id_of(1)]);
        // So is a big temp dropped unpersisted (a refused upload).
        let mut t = store.create_temp().unwrap();
        t.write_all(&vec![3; REMOVE_STEP as usize + 1]).unwrap();
        drop(t);
        assert_eq!(temps_drain(&store).await, 0);
    }

    #[tokio::test]
    async fn what_a_crash_left_retired_goes_at_startup_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let left = store.retired.join("left");
        std::fs::write(&left, b"x").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&left).unwrap().set_modified(old).unwrap();
        assert_eq!(store.sweep_temps(Duration::from_secs(2)).unwrap(), 0, "a GC pass leaves it to the remover");
        assert_eq!(store.sweep_temps(Duration::ZERO).unwrap(), 1);
        assert_eq!(std::fs::read_dir(&store.retired).unwrap().count(), 0);
    }

    #[test]
    fn removal_in_steps_frees_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![7u8; (REMOVE_STEP * 3 + REMOVE_STEP / 2) as usize]).unwrap();
        assert!(remove_gently(&path).unwrap());
        assert!(!path.exists());
        assert!(!remove_gently(&path).unwrap(), "a file already gone");
    }

    #[tokio::test]
    async fn ids_that_are_not_hex_never_become_paths() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        assert!(store.size(&"../../etc/passwd".to_string()).await.is_err());
        assert!(store.delete(&format!("{:0>64}", "../x")).await.is_err());
    }

    #[tokio::test]
    async fn reused_read_buffers_carry_only_the_bytes_read_into_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let sizes = [READ_CHUNK + READ_CHUNK / 2, READ_CHUNK / 3, 2 * READ_CHUNK + 7];
        for (n, size) in sizes.into_iter().enumerate() {
            let body: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(n as u8)).collect();
            let mut t = store.create_temp().unwrap();
            t.write_all(&body).unwrap();
            t.sync().unwrap();
            store.persist(t, &id_of(n as u8)).await.unwrap();
        }
        // Every blob read in full and from an odd offset, twice over: the later reads get
        // buffers that held other bytes (longer or shorter chunks) before.
        for _ in 0..2 {
            for (n, size) in sizes.into_iter().enumerate() {
                let body: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(n as u8)).collect();
                for from in [0, 5] {
                    let mut s = store.read(&id_of(n as u8), from as u64, (size - from) as u64).await.unwrap();
                    let mut got = Vec::new();
                    while let Some(chunk) = futures_util_lite::next(&mut s).await {
                        got.extend_from_slice(&chunk.unwrap());
                    }
                    assert!(got == body[from..], "blob {n} from {from}");
                }
            }
        }
        assert!(SPARE.lock().len() <= SPARE_READ_BUFFERS);
    }

    mod futures_util_lite {
        use std::future::poll_fn;
        use std::pin::Pin;
        pub async fn next<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
            poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
        }
    }
}
