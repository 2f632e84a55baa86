//! Helpers shared by the engine's integration tests: an engine over the embedded stores in a
//! temp dir, principals, bodies, and reads that go through the same calls a dialect makes.
#![allow(dead_code)]

use bytes::Bytes;
use chuan_core::store::{ObjectMeta, UploadKind};
use chuan_core::{Completion, CoreError, Engine, EngineConfig, NewUpload, PartList, Principal, PutTarget};
use chuan_store::{LocalBlobStore, SqlMetaStore};
use futures::StreamExt;
use std::path::Path;
use std::sync::Arc;

pub fn open(dir: &Path) -> Arc<Engine> {
    open_with(dir, EngineConfig { min_part_size: 1024, ..Default::default() })
}

pub fn open_with(dir: &Path, config: EngineConfig) -> Arc<Engine> {
    let meta = SqlMetaStore::open_sqlite(&dir.join("meta.db")).unwrap();
    let blobs = LocalBlobStore::open(dir).unwrap();
    Arc::new(Engine::new(Arc::new(meta), Arc::new(blobs), config))
}

/// An engine with tenants alice and bob, and alice's bucket `bkt`.
pub async fn setup(dir: &Path) -> Arc<Engine> {
    let e = open(dir);
    for t in ["alice", "bob"] {
        e.create_tenant(&Principal::operator(), t).await.unwrap();
    }
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    e
}

pub fn s3_upload(bucket: &str, key: &str) -> NewUpload {
    NewUpload::new(UploadKind::S3, bucket, key)
}

pub fn listed(parts: &[(u32, String)]) -> Completion {
    Completion::new(PartList::Listed(parts.to_vec()))
}

pub fn alice() -> Principal {
    Principal::of_tenant("alice", "AK")
}

pub fn bob() -> Principal {
    Principal::of_tenant("bob", "BK")
}

pub fn body(data: &[u8], chunk: usize) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        data.chunks(chunk.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(chunks)
}

pub fn target(bucket: &str, key: &str) -> PutTarget {
    PutTarget {
        bucket: bucket.into(),
        key: key.into(),
        meta: ObjectMeta::default(),
        condition: None,
        tree: chuan_core::store::TreeRule::Flat,
    }
}

pub async fn put(e: &Engine, key: &str, data: &[u8]) -> chuan_core::store::ObjectRecord {
    let staged = e.stage(&alice(), body(data, 7919)).await.unwrap();
    e.commit_put(&alice(), target("bkt", key), staged).await.unwrap()
}

pub async fn read_all(e: &Engine, key: &str) -> Vec<u8> {
    read_as(e, &alice(), "bkt", key).await.unwrap()
}

pub async fn read_as(e: &Engine, p: &Principal, bucket: &str, key: &str) -> Result<Vec<u8>, CoreError> {
    let rec = e.head_object(p, bucket, key).await?;
    let content = e.content_of(&rec).await?;
    let mut s = e.open_read(p, &rec, &content, 0, rec.size).await?;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    Ok(out)
}

pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
