//! [`S3BlobStore`]: blobs as objects of a bucket in any S3-compatible store, through the
//! `object_store` crate (request signing, retries, multipart uploads, ranged reads).
//!
//! Staging stays on local disk (`DATA/tmp`, as for [`LocalBlobStore`](crate::LocalBlobStore)):
//! the write path hashes, checks and fsyncs the whole body before anything is known about its
//! name, and a body refused half-way (a wrong digest, a quota, a client gone) must cost the
//! backend nothing. [`BlobStore::persist`] then uploads the finished file under its
//! content address: one PUT up to [`PART_SIZE`], else a multipart upload of `PART_SIZE` parts,
//! at most [`UPLOAD_CONCURRENCY`] in flight, read from the file as they go (so memory per
//! upload stays bounded whatever the size). A blob is durable once the backend has
//! acknowledged its PUT or CompleteMultipartUpload. Keys are `blobs/<first two hex digits>/
//! <sha256>`; nothing else is written to the bucket.
//!
//! Reads fetch a range as consecutive GETs of at most [`READ_CHUNK`] bytes, each started when
//! the previous one is consumed: every backend request then ends within [`REQUEST_TIMEOUT`]
//! for any client reading faster than `READ_CHUNK / REQUEST_TIMEOUT` (~28 KiB/s), however big
//! the blob (one GET for a whole 1 GiB blob streamed to a slow client would be cut by the
//! timeout). A backend that cannot be reached or fails (connection refused, a 5xx after the
//! short retries below) surfaces as an I/O error carrying [`BlobUnavailable`], which the engine
//! answers as "service unavailable" (503) in every protocol.

use async_trait::async_trait;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as StorePath;
use object_store::{GetOptions, GetRange, ObjectStore as _, WriteMultipart};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt;

use crate::blob::{create_temp_in, sweep_temps_in, BlobStore, ByteStream, TempBlob};
use crate::model::BlobId;

/// Size of one part of a multipart upload to the backend, and the largest blob sent in one PUT.
pub const PART_SIZE: usize = 16 << 20;
/// Parts of one blob uploaded at once.
pub const UPLOAD_CONCURRENCY: usize = 4;
/// The most one GET of a read asks the backend for.
pub const READ_CHUNK: u64 = 8 << 20;
/// The longest one backend request may take, from connecting until its body is done.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Retries of a failed backend request, and the time after which none is tried: short, so a
/// backend that is down is answered as such in about a second instead of minutes
/// (object_store's default is 10 retries within 3 minutes).
const RETRIES: usize = 3;
const RETRY_WINDOW: Duration = Duration::from_secs(10);

/// The error inside an [`io::Error`] that says the blob backend could not serve a request
/// (unreachable, timed out, or failing): worth retrying later, not a fault of the request.
#[derive(Debug, thiserror::Error)]
#[error("blob backend unavailable: {0}")]
pub struct BlobUnavailable(pub String);

impl BlobUnavailable {
    /// Whether `e` is (or carries) a blob backend outage.
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<BlobUnavailable>())
    }
}

/// Blobs in an S3 bucket; temporaries in a local directory.
pub struct S3BlobStore {
    store: AmazonS3,
    tmp: PathBuf,
    /// `s3://bucket` and the endpoint, for messages.
    name: String,
}

/// Where an `s3://` address points, and with which keys.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// `http(s)://host:port` of an S3-compatible service; `None`: AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// The key pair; `None`: from the environment (`AWS_ACCESS_KEY_ID`, ...). Never part of
    /// the address (addresses end up in logs and process lists).
    pub keys: Option<(String, String)>,
}

impl std::fmt::Debug for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Location")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("keys", &self.keys.as_ref().map(|(ak, _)| (ak, "<secret>")))
            .finish()
    }
}

impl S3Location {
    /// Parses `s3://BUCKET[?endpoint=URL][&region=REGION]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| format!("{url:?} does not start with s3://"))?;
        let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
        let bucket = bucket.trim_end_matches('/');
        if bucket.is_empty() || bucket.contains('/') {
            return Err(format!("{url:?}: give the bucket as s3://BUCKET (no key prefix)"));
        }
        let mut loc = S3Location { bucket: bucket.to_owned(), endpoint: None, region: None, keys: None };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "endpoint" => loc.endpoint = Some(v.to_owned()),
                "region" => loc.region = Some(v.to_owned()),
                other => return Err(format!("{url:?}: unknown parameter {other:?} (endpoint, region)")),
            }
        }
        Ok(loc)
    }
}

fn io_err(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
        // What a request that reached (or tried to reach) the backend and failed there
        // becomes, once retried: refused connections, timeouts, 5xx and other HTTP errors.
        object_store::Error::Generic { .. } => io::Error::other(BlobUnavailable(e.to_string())),
        other => io::Error::other(other.to_string()),
    }
}

/// Blob ids become keys only when they are 64 hex digits (ids also arrive from metadata).
fn key_of(id: &BlobId) -> io::Result<StorePath> {
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad blob id {id:?}")));
    }
    Ok(StorePath::from(format!("blobs/{}/{id}", &id[0..2])))
}

impl S3BlobStore {
    /// A store on `location`, credentials from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, optionally `AWS_SESSION_TOKEN`), temporaries in `root/tmp`.
    /// Checks the bucket can be listed, so a wrong address, key or bucket stops the start
    /// with the backend's answer.
    pub async fn open(location: &S3Location, root: &Path) -> io::Result<Self> {
        if location.endpoint.is_some() && location.keys.is_none() && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            return Err(io::Error::other(format!(
                "s3://{} at {}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to the store's key pair",
                location.bucket,
                location.endpoint.as_deref().unwrap_or_default()
            )));
        }
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        let retry = object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: RETRIES,
            retry_timeout: RETRY_WINDOW,
        };
        let client = object_store::ClientOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(Duration::from_secs(5));
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&location.bucket)
            .with_retry(retry)
            .with_client_options(client);
        if let Some((ak, sk)) = &location.keys {
            b = b.with_access_key_id(ak).with_secret_access_key(sk);
        }
        if let Some(endpoint) = &location.endpoint {
            b = b
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        // Else AWS_REGION / AWS_DEFAULT_REGION, as the environment gives it.
        if let Some(region) = &location.region {
            b = b.with_region(region);
        }
        let name = format!(
            "s3://{}{}",
            location.bucket,
            location.endpoint.as_deref().map(|e| format!(" at {e}")).unwrap_or_default()
        );
        let store = b.build().map_err(|e| io::Error::other(format!("{name}: {e}")))?;
        let this = Self { store, tmp, name };
        let probe = this.store.list_with_delimiter(Some(&StorePath::from("blobs"))).await;
        probe.map_err(|e| io::Error::other(format!("cannot list {}: {e}", this.name)))?;
        Ok(this)
    }

    async fn upload(&self, key: &StorePath, mut file: tokio::fs::File, len: u64) -> io::Result<()> {
        if len <= PART_SIZE as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            file.read_to_end(&mut buf).await?;
            self.store.put(key, buf.into()).await.map_err(io_err)?;
            return Ok(());
        }
        let upload = self.store.put_multipart(key).await.map_err(io_err)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut chunk = vec![0u8; 1 << 20];
        let result: io::Result<()> = async {
            loop {
                writer.wait_for_capacity(UPLOAD_CONCURRENCY).await.map_err(io_err)?;
                let n = file.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                writer.write(&chunk[..n]);
            }
            Ok(())
        }
        .await;
        // Every part acknowledged before completing: a failed part aborts the upload here
        // (finishing would return its error without aborting).
        let result = match result {
            Ok(()) => writer.wait_for_capacity(0).await.map_err(io_err),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => writer.finish().await.map(|_| ()).map_err(io_err),
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn create_temp(&self) -> io::Result<TempBlob> {
        create_temp_in(&self.tmp)
    }

    async fn persist(&self, temp: TempBlob, id: &BlobId) -> io::Result<()> {
        let key = key_of(id)?;
        if self.size(id).await?.is_some() {
            // Same name, same bytes: keep the copy the backend already holds.
            return Ok(());
        }
        let file = tokio::fs::File::open(temp.path()).await?;
        let len = temp.len();
        // In a task of its own: a request dropped half-way (its client gone) does not leave a
        // multipart upload half-made in the bucket. (A node that dies mid-upload does: give
        // the bucket a lifecycle rule that aborts incomplete multipart uploads.)
        let this = Self { store: self.store.clone(), tmp: self.tmp.clone(), name: self.name.clone() };
        let uploaded = tokio::spawn(async move {
            let r = this.upload(&key, file, len).await;
            drop(temp); // the staged file goes once the upload has ended
            r
        });
        uploaded.await.map_err(|e| io::Error::other(e.to_string()))?
    }

    async fn read(&self, id: &BlobId, offset: u64, len: u64) -> io::Result<ByteStream> {
        if len == 0 {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let key = key_of(id)?;
        let end = offset + len;
        // The first chunk is asked for now, so a missing blob or an outage is this call's
        // error (not the body's); the next ones when the previous is consumed.
        let get = move |store: AmazonS3, key: StorePath, from: u64| async move {
            let range = from..end.min(from + READ_CHUNK);
            let options = GetOptions { range: Some(GetRange::Bounded(range)), ..Default::default() };
            store.get_opts(&key, options).await.map_err(io_err)
        };
        let first = get(self.store.clone(), key.clone(), offset).await?;
        let store = self.store.clone();
        // State: a chunk already asked for, and where the next GET starts.
        let chunks = futures::stream::unfold((Some(first), offset + READ_CHUNK.min(len)), move |(pending, next)| {
            let (store, key) = (store.clone(), key.clone());
            async move {
                let (got, next) = match pending {
                    Some(got) => (Ok(got), next),
                    None if next >= end => return None,
                    None => (get(store, key, next).await, (next + READ_CHUNK).min(end)),
                };
                match got {
                    Ok(got) => Some((got.into_stream().map(|r| r.map_err(io_err)).boxed(), (None, next))),
                    // An error ends the stream.
                    Err(e) => Some((futures::stream::once(async move { Err(e) }).boxed(), (None, end))),
                }
            }
        });
        Ok(Box::pin(sync_wrapper::SyncStream::new(chunks.flatten())))
    }

    async fn size(&self, id: &BlobId) -> io::Result<Option<u64>> {
        match self.store.head(&key_of(id)?).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn delete(&self, id: &BlobId) -> io::Result<()> {
        match self.store.delete(&key_of(id)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    async fn list(&self) -> io::Result<Vec<BlobId>> {
        let mut out = Vec::new();
        let mut listing = self.store.list(Some(&StorePath::from("blobs")));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(io_err)?;
            if let Some(name) = meta.location.filename() {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }

    fn sweep_temps(&self, age: Duration) -> io::Result<usize> {
        sweep_temps_in(&self.tmp, age)
    }

    fn temp_count(&self) -> io::Result<usize> {
        Ok(std::fs::read_dir(&self.tmp)?.count())
    }
}

#[cfg(test)]
mod tests {
    use super::S3Location;

    #[test]
    fn addresses() {
        assert_eq!(
            S3Location::parse("s3://b?endpoint=http://127.0.0.1:9000&region=eu").unwrap(),
            S3Location {
                bucket: "b".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: Some("eu".into()),
                keys: None
            }
        );
        assert_eq!(S3Location::parse("s3://b/").unwrap().bucket, "b");
        assert!(S3Location::parse("s3://b/prefix").is_err());
        assert!(S3Location::parse("http://b").is_err());
        assert!(S3Location::parse("s3://b?colour=red").is_err());
    }
}
