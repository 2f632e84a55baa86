//! Engine behaviour against the embedded stores (SQLite + local files) in a temp dir.

mod common;

use bytes::Bytes;
use chuan_core::store::{ObjectMeta, UploadKind, WriteCondition};
use chuan_core::{
    Completion, CoreError, Engine, EngineConfig, ListQuery, NewUpload, PartList, Principal, PutTarget,
    DEFAULT_INLINE_MAX as INLINE_MAX,
};
use common::*;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn same_content_is_stored_once_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    let data = pseudo_random(300_000, 1);
    let a = put(&e, "a", &data).await;
    let b = put(&e, "b", &data).await;
    assert_eq!(a.etag, b.etag);
    assert_eq!(a.etag, format!("{:x}", md5_of(&data)));
    let stats = e.stats().await.unwrap();
    assert_eq!(stats.logical_bytes, 600_000);
    assert_eq!(stats.physical_bytes, 300_000);
    assert_eq!(stats.blobs, 1);
    assert_eq!(read_all(&e, "b").await, data);
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

fn md5_of(data: &[u8]) -> md5_hex::Hex {
    md5_hex::Hex(chuan_core::hash::digest_all(data).md5)
}

mod md5_hex {
    pub struct Hex(pub String);
    impl std::fmt::LowerHex for Hex {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
}

#[tokio::test]
async fn a_body_that_fails_midway_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    // Failing while still in memory, and after spilling to a temporary file.
    for sent in [50_000, INLINE_MAX + 300_000] {
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from(vec![1u8; sent])),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away")),
        ]);
        let err = e.stage(&alice(), broken).await.unwrap_err();
        assert!(matches!(err, CoreError::Body(_)), "{err:?}");
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "temp file left behind");
        assert_eq!(e.stats().await.unwrap().blobs, 0);
    }
}

#[tokio::test]
async fn a_staged_body_dropped_before_commit_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let temps = || std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
    let staged = e.stage(&alice(), body(&pseudo_random(INLINE_MAX + 1, 3), 4096)).await.unwrap();
    assert_eq!(temps(), 1);
    drop(staged);
    assert_eq!(temps(), 0);
    // A small body is staged in memory: no file at all.
    let staged = e.stage(&alice(), body(b"never committed", 4)).await.unwrap();
    assert_eq!(temps(), 0);
    drop(staged);
    assert_eq!(e.stats().await.unwrap().blobs, 0);
}

/// Files under `blobs/` (the BlobStore's share of the data).
fn blob_files(dir: &std::path::Path) -> usize {
    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p).unwrap().map(|e| e.unwrap().path()).map(|p| if p.is_dir() { walk(&p) } else { 1 }).sum()
    }
    walk(&dir.join("blobs"))
}

/// A ranged download as the dialects make one (`content_for_read`: a small object's bytes come
/// with its content; `read_all` takes the other way, `content_of`, which fetches them lazily).
async fn read_range(e: &Engine, key: &str, start: u64, end: u64) -> Vec<u8> {
    let rec = e.head_object(&alice(), "bkt", key).await.unwrap();
    let content = e.content_for_read(&rec).await.unwrap();
    let mut s = e.open_read(&alice(), &rec, &content, start, end).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = futures::StreamExt::next(&mut s).await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

#[tokio::test]
async fn small_objects_live_in_the_metadata_store_and_large_ones_in_files() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [0, 1, 4096, INLINE_MAX, INLINE_MAX + 1, 3 * INLINE_MAX];
    let datas: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, n)| pseudo_random(*n, i as u64 + 40)).collect();
    {
        let e = open(dir.path());
        e.create_bucket(&alice(), "bkt", None).await.unwrap();
        for (i, d) in datas.iter().enumerate() {
            put(&e, &format!("k{i}"), d).await;
        }
        // Only the two bodies over the threshold became files; nothing is left in tmp/.
        assert_eq!(blob_files(dir.path()), 2);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        let st = e.stats().await.unwrap();
        assert_eq!((st.blobs, st.inline_blobs, st.inline_bytes), (6, 4, (1 + 4096 + INLINE_MAX) as u64));
        // A second copy of small bytes is one more reference, not a second blob.
        put(&e, "again", &datas[2]).await;
        assert_eq!(e.stats().await.unwrap().inline_blobs, 4);
    }
    // Durable: a reopened store reads every object whole and in ranges.
    let e = open(dir.path());
    for (i, d) in datas.iter().enumerate() {
        let key = format!("k{i}");
        assert_eq!(read_all(&e, &key).await, *d, "{key}");
        let (a, b) = (d.len() as u64 / 3, d.len() as u64 * 2 / 3 + 1);
        assert_eq!(read_range(&e, &key, a, b.min(d.len() as u64)).await, d[a as usize..b.min(d.len() as u64) as usize]);
    }
    assert_eq!(read_all(&e, "again").await, datas[2]);
    assert!(e.fsck().await.unwrap().problems.is_empty());
    // Freed by GC like any blob, with the right byte count.
    for i in 0..sizes.len() {
        e.delete_object(&alice(), "bkt", &format!("k{i}")).await.unwrap();
    }
    e.delete_object(&alice(), "bkt", "again").await.unwrap();
    let r = e.gc(Duration::ZERO).await.unwrap();
    assert_eq!((r.blobs_freed, r.bytes_freed), (6, sizes.iter().sum::<usize>() as u64));
    assert_eq!(blob_files(dir.path()), 0);
    let st = e.stats().await.unwrap();
    assert_eq!((st.blobs, st.inline_blobs, st.physical_bytes), (0, 0, 0));
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn a_changed_inline_threshold_keeps_stored_blobs_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let with =
        |inline_max| open_with(dir.path(), EngineConfig { min_part_size: 1024, inline_max, ..Default::default() });
    let (small, mid) = (pseudo_random(1000, 1), pseudo_random(60_000, 2));
    {
        let e = with(INLINE_MAX);
        e.create_bucket(&alice(), "bkt", None).await.unwrap();
        put(&e, "mid", &mid).await;
        assert_eq!(blob_files(dir.path()), 0);
    }
    {
        // Lowered: the same 60,000 bytes arrive as a file, but the blob is already inline; the
        // file does not stay behind. New small bodies still go inline.
        let e = with(50_000);
        put(&e, "mid-again", &mid).await;
        put(&e, "small", &small).await;
        assert_eq!(blob_files(dir.path()), 0);
        assert_eq!(e.stats().await.unwrap().inline_blobs, 2);
        assert!(e.fsck().await.unwrap().problems.is_empty());
    }
    // Off: everything new is a file; what is inline stays readable there.
    let e = with(0);
    put(&e, "tiny", b"tiny").await;
    put(&e, "small-again", &small).await;
    assert_eq!(blob_files(dir.path()), 1);
    for (k, d) in [("mid", &mid), ("mid-again", &mid), ("small", &small), ("small-again", &small)] {
        assert_eq!(read_all(&e, k).await, **d, "{k}");
    }
    assert_eq!(read_all(&e, "tiny").await, b"tiny");
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn multipart_content_mixes_inline_and_file_parts() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    let up = e.create_upload(&alice(), s3_upload("bkt", "mixed")).await.unwrap();
    let parts: Vec<Vec<u8>> = [INLINE_MAX + 5, 3000, 2 * INLINE_MAX, 1500]
        .iter()
        .enumerate()
        .map(|(i, n)| pseudo_random(*n, i as u64 + 70))
        .collect();
    let mut list = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let staged = e.stage(&alice(), body(p, 10_000)).await.unwrap();
        list.push((i as u32 + 1, e.commit_part(&alice(), &up, i as u32 + 1, staged).await.unwrap().etag));
    }
    assert_eq!(blob_files(dir.path()), 2, "the two large parts are files, the small ones inline");
    e.complete_upload(&alice(), &up, listed(&list)).await.unwrap();
    let all = parts.concat();
    assert_eq!(read_all(&e, "mixed").await, all);
    // A range that starts in a file part, crosses an inline part and ends in the next file part.
    let (a, b) = (INLINE_MAX as u64, INLINE_MAX as u64 + 5 + 3000 + 10);
    assert_eq!(read_range(&e, "mixed", a, b).await, all[a as usize..b as usize]);
    assert_eq!(e.compute_pending_digests(10).await.unwrap(), 1);
    let rec = e.head_object(&alice(), "bkt", "mixed").await.unwrap();
    assert_eq!(e.content_of(&rec).await.unwrap().digests.unwrap(), chuan_core::hash::digest_all(&all));
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn multipart_completion_references_part_blobs_without_copying() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    let up = e.create_upload(&alice(), s3_upload("bkt", "big")).await.unwrap();
    let parts: Vec<Vec<u8>> = (0..3).map(|i| pseudo_random(2048 + i * 10, i as u64 + 10)).collect();
    // Out of order, as parallel clients send them.
    let mut etags = vec![String::new(); 3];
    for i in [2usize, 0, 1] {
        let staged = e.stage(&alice(), body(&parts[i], 1000)).await.unwrap();
        etags[i] = e.commit_part(&alice(), &up, i as u32 + 1, staged).await.unwrap().etag;
    }
    let before = e.stats().await.unwrap().physical_bytes;
    let list: Vec<(u32, String)> = etags.iter().enumerate().map(|(i, t)| (i as u32 + 1, t.clone())).collect();
    let rec = e.complete_upload(&alice(), &up, listed(&list)).await.unwrap().object;
    assert_eq!(e.stats().await.unwrap().physical_bytes, before, "completion must not write part data again");
    assert!(rec.etag.ends_with("-3"));
    let all: Vec<u8> = parts.concat();
    assert_eq!(read_all(&e, "big").await, all);
    // The background job gives assembled content its whole-file digests.
    assert_eq!(e.stats().await.unwrap().pending_digests, 1);
    assert_eq!(e.compute_pending_digests(10).await.unwrap(), 1);
    let content = e.content_of(&rec).await.unwrap();
    assert_eq!(content.digests.unwrap(), chuan_core::hash::digest_all(&all));
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn a_conditional_completion_is_refused_atomically_and_keeps_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    let up = e.create_upload(&alice(), s3_upload("bkt", "k")).await.unwrap();
    let part = pseudo_random(3000, 7);
    let etag = e.commit_part(&alice(), &up, 1, e.stage(&alice(), body(&part, 1000)).await.unwrap()).await.unwrap().etag;
    // Someone else writes the key first: a "create only" completion must not replace it.
    put(&e, "k", b"first").await;
    let mut absent = listed(&[(1, etag.clone())]);
    absent.condition = Some(WriteCondition::Absent);
    let r = e.complete_upload(&alice(), &up, absent.clone()).await;
    assert!(matches!(r, Err(CoreError::PreconditionFailed)), "{r:?}");
    assert_eq!(read_all(&e, "k").await, b"first");
    // The session and its part are intact: the refused transaction changed nothing.
    assert_eq!(e.list_parts(&alice(), &up, 0, 10).await.unwrap().len(), 1);
    e.delete_object(&alice(), "bkt", "k").await.unwrap();
    e.complete_upload(&alice(), &up, absent).await.unwrap();
    assert_eq!(read_all(&e, "k").await, part);
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn multipart_rules_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    let up = e.create_upload(&alice(), s3_upload("bkt", "k")).await.unwrap();
    let small = e.stage(&alice(), body(b"tiny", 4)).await.unwrap();
    let t1 = e.commit_part(&alice(), &up, 1, small).await.unwrap().etag;
    let big = e.stage(&alice(), body(&pseudo_random(5000, 3), 999)).await.unwrap();
    let t2 = e.commit_part(&alice(), &up, 2, big).await.unwrap().etag;
    let r = e.complete_upload(&alice(), &up, listed(&[(2, t2.clone()), (1, t1.clone())])).await;
    assert!(matches!(r, Err(CoreError::InvalidPartOrder)));
    let r = e.complete_upload(&alice(), &up, listed(&[(1, t1.clone()), (2, t2.clone())])).await;
    assert!(matches!(r, Err(CoreError::EntityTooSmall { part: 1, .. })), "{r:?}");
    let r = e.complete_upload(&alice(), &up, listed(&[(1, "0".repeat(32))])).await;
    assert!(matches!(r, Err(CoreError::InvalidPart(_))));
    // Listing a part that was never uploaded is refused.
    e.complete_upload(&alice(), &up, listed(&[(2, t2), (3, t1)])).await.unwrap_err();
    e.abort_upload(&alice(), &up).await.unwrap();
    assert!(matches!(e.upload(&alice(), "bkt", "k", &up.id).await, Err(CoreError::NoSuchUpload)));
    // Aborted parts' blobs become unreferenced and are freed by GC.
    let report = e.gc(Duration::ZERO).await.unwrap();
    assert_eq!(report.blobs_freed, 2);
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn gc_waits_for_the_grace_period_and_a_reupload_rescues_the_blob() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    let data = pseudo_random(10_000, 5);
    put(&e, "a", &data).await;
    e.delete_object(&alice(), "bkt", "a").await.unwrap();
    assert_eq!(e.stats().await.unwrap().unreferenced_blobs, 1);
    assert_eq!(e.gc(Duration::from_secs(3600)).await.unwrap().blobs_freed, 0, "freed inside the grace period");
    // The same bytes arrive again before GC runs: the blob is referenced again and survives.
    put(&e, "b", &data).await;
    assert_eq!(e.gc(Duration::ZERO).await.unwrap().blobs_freed, 0);
    assert_eq!(read_all(&e, "b").await, data);
    e.delete_object(&alice(), "bkt", "b").await.unwrap();
    let r = e.gc(Duration::ZERO).await.unwrap();
    assert_eq!((r.blobs_freed, r.bytes_freed), (1, 10_000));
    assert_eq!(e.stats().await.unwrap().physical_bytes, 0);
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn concurrent_uploads_and_gc_never_lose_a_referenced_blob() {
    // Inline and file blobs alike.
    for size in [50_000, INLINE_MAX + 50_000] {
        concurrent_uploads_and_gc(size).await;
    }
}

async fn concurrent_uploads_and_gc(size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    let data = Arc::new(pseudo_random(size, 9));
    let mut tasks = Vec::new();
    for round in 0..20 {
        let e2 = e.clone();
        let e = e.clone();
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("k{}", round % 3);
            put(&e, &key, &data).await;
            e.delete_object(&alice(), "bkt", &key).await.unwrap();
            put(&e, &key, &data).await;
        }));
        let gc_engine = e2.clone();
        tasks.push(tokio::spawn(async move {
            gc_engine.gc(Duration::ZERO).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for k in ["k0", "k1", "k2"] {
        assert_eq!(read_all(&e, k).await, *data);
    }
    let report = e.fsck().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn listing_rolls_up_prefixes_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    for k in ["a/1", "a/2", "b", "c/x/1", "c/y", "d", "d/"] {
        put(&e, k, k.as_bytes()).await;
    }
    let q = ListQuery { prefix: String::new(), delimiter: Some("/".into()), after: None, max_keys: 1000 };
    let r = e.list_objects(&alice(), "bkt", &q).await.unwrap();
    let keys: Vec<_> = r.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["b", "d"]);
    assert_eq!(r.common_prefixes, ["a/", "c/", "d/"]);
    assert!(!r.truncated);
    // Page two at a time and get the same sequence.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let q = ListQuery { prefix: String::new(), delimiter: Some("/".into()), after: after.clone(), max_keys: 2 };
        let r = e.list_objects(&alice(), "bkt", &q).await.unwrap();
        seen.extend(r.objects.iter().map(|o| o.key.clone()));
        seen.extend(r.common_prefixes.clone());
        if !r.truncated {
            break;
        }
        after = r.next_after;
    }
    seen.sort();
    assert_eq!(seen, ["a/", "b", "c/", "d", "d/"]);
    let q = ListQuery { prefix: "c/".into(), delimiter: Some("/".into()), after: None, max_keys: 1000 };
    let r = e.list_objects(&alice(), "bkt", &q).await.unwrap();
    assert_eq!(r.common_prefixes, ["c/x/"]);
    assert_eq!(r.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["c/y"]);
}

#[tokio::test]
async fn tenants_cannot_touch_each_others_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    let bob = Principal::of_tenant("bob", "BK");
    assert!(matches!(e.head_object(&bob, "bkt", "x").await, Err(CoreError::AccessDenied)));
    assert!(matches!(e.delete_bucket(&bob, "bkt").await, Err(CoreError::AccessDenied)));
    assert!(matches!(e.create_bucket(&bob, "bkt", None).await, Err(CoreError::BucketExists)));
    assert!(matches!(e.create_bucket(&alice(), "bkt", None).await, Err(CoreError::BucketAlreadyOwnedByYou)));
}

#[tokio::test]
async fn conditional_writes() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    let first = put(&e, "k", b"one").await;
    let staged = e.stage(&alice(), body(b"two", 3)).await.unwrap();
    let mut t = target("bkt", "k");
    t.condition = Some(WriteCondition::Absent);
    assert!(matches!(e.commit_put(&alice(), t, staged).await, Err(CoreError::PreconditionFailed)));
    let staged = e.stage(&alice(), body(b"two", 3)).await.unwrap();
    let mut t = target("bkt", "k");
    t.condition = Some(WriteCondition::EtagIs(first.etag.clone()));
    e.commit_put(&alice(), t, staged).await.unwrap();
    assert_eq!(read_all(&e, "k").await, b"two");
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn everything_survives_reopening_the_stores() {
    let dir = tempfile::tempdir().unwrap();
    let upload_id;
    {
        let e = open(dir.path());
        e.create_bucket(&alice(), "bkt", None).await.unwrap();
        put(&e, "kept", b"durable bytes").await;
        let up = e.create_upload(&alice(), s3_upload("bkt", "later")).await.unwrap();
        let staged = e.stage(&alice(), body(b"part one", 3)).await.unwrap();
        e.commit_part(&alice(), &up, 1, staged).await.unwrap();
        upload_id = up.id;
    }
    let e = open(dir.path());
    assert_eq!(read_all(&e, "kept").await, b"durable bytes");
    let up = e.upload(&alice(), "bkt", "later", &upload_id).await.unwrap();
    let parts = e.list_parts(&alice(), &up, 0, 100).await.unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].size, 8);
}

#[tokio::test]
async fn many_concurrent_small_writes_commit_in_groups() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            put(&e, &format!("small/{i:04}"), format!("body {i}").as_bytes()).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let q = ListQuery { prefix: "small/".into(), delimiter: None, after: None, max_keys: 1000 };
    assert_eq!(e.list_objects(&alice(), "bkt", &q).await.unwrap().objects.len(), 200);
    assert_eq!(read_all(&e, "small/0123").await, b"body 123");
}

#[tokio::test]
async fn instant_upload_needs_proof_across_tenants() {
    use chuan_core::Possession;
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    e.create_bucket(&bob(), "bobs", None).await.unwrap();
    let data = pseudo_random(5000, 42);
    let rec = put(&e, "orig", &data).await;
    let d = chuan_core::hash::digest_all(&data);
    // Own tenant: the digest is enough.
    let hit = e.claimable_content(&alice(), "sha1", &d.sha1, 5000, &Possession::None).await.unwrap();
    assert_eq!(hit.map(|h| h.content_id()), Some(rec.content_id));
    // Another tenant: a miss without proof, or with wrong bytes, or wrong size.
    assert_eq!(e.claimable_content(&bob(), "sha1", &d.sha1, 5000, &Possession::None).await.unwrap(), None);
    let wrong = Possession::Bytes(vec![(100, vec![0u8; 8])]);
    assert_eq!(e.claimable_content(&bob(), "sha1", &d.sha1, 5000, &wrong).await.unwrap(), None);
    let right = Possession::Bytes(vec![(100, data[100..108].to_vec())]);
    assert_eq!(e.claimable_content(&bob(), "sha1", &d.sha1, 4999, &right).await.unwrap(), None);
    let out_of_range = Possession::Bytes(vec![(4998, data[4992..5000].to_vec())]);
    assert_eq!(e.claimable_content(&bob(), "sha1", &d.sha1, 5000, &out_of_range).await.unwrap(), None);
    // Fewer than 8 bytes prove nothing, right as they are (a window that runs into the end of
    // the file; a caller that can pick its window would else guess a byte), nor do pieces
    // that show the same bytes twice.
    let short = Possession::Bytes(vec![(4997, data[4997..5000].to_vec())]);
    assert_eq!(e.claimable_content(&bob(), "sha1", &d.sha1, 5000, &short).await.unwrap(), None);
    let twice = Possession::Bytes(vec![(10, data[10..14].to_vec()), (10, data[10..14].to_vec())]);
    assert_eq!(e.claimable_content(&bob(), "sha1", &d.sha1, 5000, &twice).await.unwrap(), None);
    let split = Possession::Bytes(vec![(10, data[10..14].to_vec()), (14, data[14..18].to_vec())]);
    assert!(e.claimable_content(&bob(), "sha1", &d.sha1, 5000, &split).await.unwrap().is_some());
    // With the right bytes: granted, and the new object shares the content.
    let id = e.claimable_content(&bob(), "sha1", &d.sha1, 5000, &right).await.unwrap().unwrap();
    let target = PutTarget {
        bucket: "bobs".into(),
        key: "copy".into(),
        meta: ObjectMeta::default(),
        condition: None,
        tree: chuan_core::store::TreeRule::Flat,
    };
    let mine = e.instant_put(&bob(), target, id, None).await.unwrap();
    assert_eq!(mine.content_id, rec.content_id);
    assert_eq!(e.stats().await.unwrap().physical_bytes, 5000);
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

/// The right answer to a native challenge over `bytes`: HMAC-SHA256 keyed with the nonce over
/// the ranges, in order.
fn challenge_answer(nonce: &str, ranges: &[(u64, u64)], bytes: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut h = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&hex::decode(nonce).unwrap()).unwrap();
    for (o, l) in ranges {
        h.update(&bytes[*o as usize..(*o + *l) as usize]);
    }
    h.finalize().into_bytes().to_vec()
}

/// An engine whose lookup floor is `floor`, with alice's bucket `bkt` and bob's `bobs`.
async fn engine_with_floor(dir: &std::path::Path, floor: Duration) -> Arc<chuan_core::Engine> {
    let e = open_with(dir, EngineConfig { min_part_size: 1024, lookup_floor: floor, ..Default::default() });
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    e.create_bucket(&bob(), "bobs", None).await.unwrap();
    e
}

#[tokio::test]
async fn native_challenge_is_single_use_and_checks_the_mac() {
    use chuan_core::ChallengeOutcome;
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    e.create_bucket(&bob(), "bobs", None).await.unwrap();
    let data = pseudo_random(100_000, 7);
    put(&e, "orig", &data).await;
    let sha = chuan_core::hash::digest_all(&data).sha256;
    // The owner needs no proof.
    let c = e.issue_challenge(&alice(), "bkt", "again", 100_000, &sha).await.unwrap();
    assert!(!c.proof_required && c.ranges.is_empty());
    assert!(matches!(e.answer_challenge(&alice(), &c.id, None).await.unwrap(), ChallengeOutcome::Hit(_)));
    // Another tenant: a wrong MAC misses; the challenge is then used up.
    let c = e.issue_challenge(&bob(), "bobs", "x", 100_000, &sha).await.unwrap();
    assert!(c.proof_required && c.ranges.len() == 4);
    let wrong = challenge_answer(&c.nonce, &c.ranges, &pseudo_random(100_000, 8));
    assert!(matches!(e.answer_challenge(&bob(), &c.id, Some(&wrong)).await.unwrap(), ChallengeOutcome::Miss));
    let right = challenge_answer(&c.nonce, &c.ranges, &data);
    assert!(matches!(e.answer_challenge(&bob(), &c.id, Some(&right)).await.unwrap(), ChallengeOutcome::Used));
    // A fresh challenge answered right is a hit; someone else cannot answer it.
    let c = e.issue_challenge(&bob(), "bobs", "x", 100_000, &sha).await.unwrap();
    let right = challenge_answer(&c.nonce, &c.ranges, &data);
    assert!(matches!(e.answer_challenge(&alice(), &c.id, Some(&right)).await.unwrap(), ChallengeOutcome::Unknown));
    let c = e.issue_challenge(&bob(), "bobs", "x", 100_000, &sha).await.unwrap();
    let right = challenge_answer(&c.nonce, &c.ranges, &data);
    assert!(matches!(e.answer_challenge(&bob(), &c.id, Some(&right)).await.unwrap(), ChallengeOutcome::Hit(_)));
    // Unknown content gets a challenge of the same shape, and a miss.
    let c = e.issue_challenge(&bob(), "bobs", "y", 100_000, &"ab".repeat(32)).await.unwrap();
    assert!(c.proof_required && c.ranges.len() == 4);
    assert!(matches!(e.answer_challenge(&bob(), &c.id, Some(&right)).await.unwrap(), ChallengeOutcome::Miss));
}

#[tokio::test]
async fn only_misses_wait_the_lookup_floor_and_the_proof_is_never_shown() {
    use chuan_core::{ChallengeOutcome, Possession};
    let dir = tempfile::tempdir().unwrap();
    // A floor no machine's lookup comes near, so which steps wait it out shows plainly.
    let floor = std::time::Duration::from_millis(1500);
    let e = engine_with_floor(dir.path(), floor).await;
    let data = pseudo_random(300_000, 9);
    put(&e, "orig", &data).await;
    let sha = chuan_core::hash::digest_all(&data).sha256;
    let answer = |nonce: &str, ranges: &[(u64, u64)]| challenge_answer(nonce, ranges, &data);
    // A wrong answer waits out the floor, like every miss.
    let c = e.issue_challenge(&bob(), "bobs", "y", 300_000, &sha).await.unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(e.answer_challenge(&bob(), &c.id, Some(&[7; 32])).await.unwrap(), ChallengeOutcome::Miss));
    assert!(started.elapsed() >= floor, "a wrong answer came back before the floor");
    // The challenge's lookup waits it out; a right answer does not wait a second time.
    let started = std::time::Instant::now();
    let c = e.issue_challenge(&bob(), "bobs", "x", 300_000, &sha).await.unwrap();
    assert!(started.elapsed() >= floor, "the challenge's lookup answered before the floor");
    let right = answer(&c.nonce, &c.ranges);
    assert!(!format!("{c:?}").contains(&hex::encode(&right)), "the expected proof shows in Debug: {c:?}");
    let started = std::time::Instant::now();
    assert!(matches!(e.answer_challenge(&bob(), &c.id, Some(&right)).await.unwrap(), ChallengeOutcome::Hit(_)));
    assert!(started.elapsed() < floor, "a right answer waited out a second floor ({:?})", started.elapsed());
    // Bob's tenant holds it now: no proof asked, and both steps hit, so neither waits.
    let started = std::time::Instant::now();
    let c = e.issue_challenge(&bob(), "bobs", "own", 300_000, &sha).await.unwrap();
    assert!(!c.proof_required && c.ranges.is_empty());
    assert!(started.elapsed() < floor, "the owner's challenge waited out the floor ({:?})", started.elapsed());
    let started = std::time::Instant::now();
    assert!(matches!(e.answer_challenge(&bob(), &c.id, None).await.unwrap(), ChallengeOutcome::Hit(_)));
    assert!(started.elapsed() < floor, "the owner's answer waited out the floor ({:?})", started.elapsed());
    // The owner's answer is looked up again: gone since the challenge, it is a miss, floored.
    let c = e.issue_challenge(&bob(), "bobs", "own-again", 300_000, &sha).await.unwrap();
    assert!(!c.proof_required);
    e.delete_object(&bob(), "bobs", "x").await.unwrap();
    e.delete_object(&bob(), "bobs", "own").await.unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(e.answer_challenge(&bob(), &c.id, None).await.unwrap(), ChallengeOutcome::Miss));
    assert!(started.elapsed() >= floor, "the owner's miss came back before the floor");
    assert!(e.head_object(&bob(), "bobs", "own-again").await.is_err());
    // A claim by a partial digest (Aliyun's pre-hash) waits the floor, hit or miss: its
    // caller may have only what the digest covers.
    let started = std::time::Instant::now();
    assert!(e.own_content(&alice(), "sha256", &sha, 300_000).await.unwrap().is_some());
    assert!(started.elapsed() >= floor, "a pre-hash hit came back before the floor");
    let started = std::time::Instant::now();
    assert!(e.own_content(&bob(), "sha256", &sha, 300_000).await.unwrap().is_none());
    assert!(started.elapsed() >= floor, "a miss came back before the floor");
    // Claims by a whole digest: the owner's hit at once, anyone's miss after the floor.
    let started = std::time::Instant::now();
    assert!(e.claimable_content(&alice(), "sha256", &sha, 300_000, &Possession::None).await.unwrap().is_some());
    assert!(started.elapsed() < floor, "an own claim waited out the floor ({:?})", started.elapsed());
    let started = std::time::Instant::now();
    assert!(e.claimable_content(&bob(), "sha256", &sha, 300_000, &Possession::None).await.unwrap().is_none());
    assert!(started.elapsed() >= floor, "a claim without proof came back before the floor");
    let proof = Possession::Bytes(vec![(1000, data[1000..1008].to_vec())]);
    let started = std::time::Instant::now();
    assert!(e.claimable_content(&bob(), "sha256", &sha, 300_000, &proof).await.unwrap().is_some());
    assert!(started.elapsed() < floor, "a proven claim waited out the floor ({:?})", started.elapsed());
    // What a challenge's issue found is not what it commits: held then, deleted, and its id
    // reused by other bytes (SQLite reuses the highest freed rowid) must be a miss.
    let mine = pseudo_random(5_000, 21);
    let mine_sha = chuan_core::hash::digest_all(&mine).sha256;
    let staged = e.stage(&bob(), body(&mine, 4096)).await.unwrap();
    e.commit_put(&bob(), target("bobs", "mine"), staged).await.unwrap();
    let c = e.issue_challenge(&bob(), "bobs", "again", 5_000, &mine_sha).await.unwrap();
    assert!(!c.proof_required);
    e.delete_object(&bob(), "bobs", "mine").await.unwrap();
    put(&e, "victim", &pseudo_random(5_000, 22)).await;
    assert!(matches!(e.answer_challenge(&bob(), &c.id, None).await.unwrap(), ChallengeOutcome::Miss));
    assert!(e.head_object(&bob(), "bobs", "again").await.is_err());
    // Content gone between the two steps: a right answer is a miss, and nothing is created.
    let carol = Principal::of_tenant("carol", "carol-key");
    e.create_bucket(&carol, "carols", None).await.unwrap();
    let c = e.issue_challenge(&carol, "carols", "z", 300_000, &sha).await.unwrap();
    assert!(c.proof_required);
    let right = answer(&c.nonce, &c.ranges);
    e.delete_object(&alice(), "bkt", "orig").await.unwrap();
    e.gc(Duration::ZERO).await.unwrap();
    assert!(matches!(e.answer_challenge(&carol, &c.id, Some(&right)).await.unwrap(), ChallengeOutcome::Miss));
    assert!(e.head_object(&carol, "carols", "z").await.is_err());
}

#[tokio::test]
async fn a_challenge_for_a_caller_that_will_prove_looks_nothing_up() {
    use chuan_core::{ChallengeOptions, ChallengeOutcome};
    let dir = tempfile::tempdir().unwrap();
    let floor = std::time::Duration::from_millis(1500);
    let e = engine_with_floor(dir.path(), floor).await;
    let data = pseudo_random(200_000, 5);
    put(&e, "orig", &data).await;
    let sha = chuan_core::hash::digest_all(&data).sha256;
    let answer = |nonce: &str, ranges: &[(u64, u64)]| challenge_answer(nonce, ranges, &data);
    let prove = ChallengeOptions { prove: true, ..Default::default() };
    // Nothing is looked up at issue: even the owner is asked for a proof, and nobody waits.
    for (p, bucket) in [(alice(), "bkt"), (bob(), "bobs")] {
        let started = std::time::Instant::now();
        let c = e.issue_challenge_with(&p, bucket, "k", 200_000, &sha, &prove).await.unwrap();
        assert!(c.proof_required && c.ranges.len() == 4, "{c:?}");
        assert!(started.elapsed() < floor, "a challenge that looks nothing up waited ({:?})", started.elapsed());
    }
    // A wrong answer is a miss after the floor; a right one a hit at once, for another tenant.
    let c = e.issue_challenge_with(&bob(), "bobs", "wrong", 200_000, &sha, &prove).await.unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(e.answer_challenge(&bob(), &c.id, Some(&[3; 32])).await.unwrap(), ChallengeOutcome::Miss));
    assert!(started.elapsed() >= floor, "a wrong answer came back before the floor");
    assert!(e.head_object(&bob(), "bobs", "wrong").await.is_err());
    let c = e.issue_challenge_with(&bob(), "bobs", "copy", 200_000, &sha, &prove).await.unwrap();
    let started = std::time::Instant::now();
    let right = answer(&c.nonce, &c.ranges);
    assert!(matches!(e.answer_challenge(&bob(), &c.id, Some(&right)).await.unwrap(), ChallengeOutcome::Hit(_)));
    assert!(started.elapsed() < floor, "a right answer waited ({:?})", started.elapsed());
    assert_eq!(e.head_object(&bob(), "bobs", "copy").await.unwrap().size, 200_000);
    // Unknown content answered with a proof over the caller's bytes: a miss, floored.
    let other = pseudo_random(200_000, 6);
    let other_sha = chuan_core::hash::digest_all(&other).sha256;
    let c = e.issue_challenge_with(&bob(), "bobs", "unknown", 200_000, &other_sha, &prove).await.unwrap();
    let started = std::time::Instant::now();
    let outcome =
        e.answer_challenge(&bob(), &c.id, Some(&challenge_answer(&c.nonce, &c.ranges, &other))).await.unwrap();
    assert!(matches!(outcome, ChallengeOutcome::Miss));
    assert!(started.elapsed() >= floor, "a miss came back before the floor");
}

#[tokio::test]
async fn a_proof_that_cannot_be_checked_is_a_miss_not_an_error() {
    // Only content someone holds can fail to be read: an error would tell that it exists.
    use chuan_core::{ChallengeOptions, ChallengeOutcome, Possession};
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with_floor(dir.path(), Duration::from_millis(10)).await;
    let data = pseudo_random(400_000, 31);
    put(&e, "orig", &data).await;
    let d = chuan_core::hash::digest_all(&data);
    // The blob's file goes missing (a disk fault, a blob store that does not answer).
    let mut gone = 0;
    for entry in walkdir(dir.path()) {
        if std::fs::metadata(&entry).is_ok_and(|m| m.is_file() && m.len() == data.len() as u64) {
            std::fs::remove_file(&entry).unwrap();
            gone += 1;
        }
    }
    assert_eq!(gone, 1, "the blob's file was not found");
    let right = Possession::Bytes(vec![(1000, data[1000..1008].to_vec())]);
    assert_eq!(e.claimable_content(&bob(), "sha1", &d.sha1, 400_000, &right).await.unwrap(), None);
    let prove = ChallengeOptions { prove: true, ..Default::default() };
    let c = e.issue_challenge_with(&bob(), "bobs", "copy", 400_000, &d.sha256, &prove).await.unwrap();
    let answer = challenge_answer(&c.nonce, &c.ranges, &data);
    assert!(matches!(e.answer_challenge(&bob(), &c.id, Some(&answer)).await.unwrap(), ChallengeOutcome::Miss));
}

/// Every file under `dir`, recursively.
fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn existence_probes_are_rate_limited_per_tenant_whatever_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&bob(), "bobs", None).await.unwrap();
    e.create_bucket(&alice(), "alices", None).await.unwrap();
    let sha = "ab".repeat(32);
    let (mut refused, started) = (0, std::time::Instant::now());
    for i in 0..80 {
        // A fresh key of the same tenant each time (as minted tokens would be): no fresh burst.
        let p = Principal::of_tenant("bob", &format!("key-{i}"));
        if let Err(err) = e.issue_challenge(&p, "bobs", "y", 10, &sha).await {
            assert!(matches!(err, CoreError::SlowDown), "{err}");
            refused += 1;
        }
    }
    // A burst of 50, then 20 a second (each granted challenge takes the 10 ms lookup floor).
    let allowed = 50.0 + 20.0 * started.elapsed().as_secs_f64() + 1.0;
    assert!(
        refused > 0 && (80 - refused) as f64 <= allowed,
        "{} of 80 granted, at most {allowed} allowed",
        80 - refused
    );
    assert!(e.issue_challenge(&alice(), "alices", "y", 10, &sha).await.is_ok(), "the limit is per tenant");
    // Claims over the limit are misses, never errors.
    let miss = e.claimable_content(&bob(), "sha256", &sha, 10, &chuan_core::Possession::None).await.unwrap();
    assert!(miss.is_none());
}

#[tokio::test]
async fn scoped_principals_are_held_to_their_scope_in_every_operation() {
    use chuan_core::{Op, Scope};
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    e.create_bucket(&alice(), "other", None).await.unwrap();
    put(&e, "dev/1/a.txt", b"a").await;
    put(&e, "secret.txt", b"s").await;
    let device = alice().with_scope(Scope {
        ops: Some(vec![Op::Write]),
        buckets: Some(vec!["bkt".into()]),
        prefixes: Some(vec!["dev/1/".into()]),
    });
    fn denied<T>(r: Result<T, CoreError>) -> bool {
        matches!(r, Err(CoreError::AccessDenied))
    }
    // Write inside the grant works; everything else is refused.
    let staged = e.stage(&alice(), body(b"new", 3)).await.unwrap();
    e.commit_put(&device, target("bkt", "dev/1/b.txt"), staged).await.unwrap();
    let staged = e.stage(&alice(), body(b"x", 1)).await.unwrap();
    assert!(denied(e.commit_put(&device, target("bkt", "dev/2/b.txt"), staged).await));
    let staged = e.stage(&alice(), body(b"x", 1)).await.unwrap();
    assert!(denied(e.commit_put(&device, target("other", "dev/1/b.txt"), staged).await));
    assert!(denied(e.head_object(&device, "bkt", "dev/1/a.txt").await));
    assert!(denied(e.delete_object(&device, "bkt", "dev/1/a.txt").await));
    let q = ListQuery { prefix: "dev/1/".into(), delimiter: None, after: None, max_keys: 10 };
    assert!(denied(e.list_objects(&device, "bkt", &q).await));
    assert!(denied(e.create_bucket(&device, "mine", None).await));
    assert!(denied(e.move_entry(&device, "bkt", "dev/1/b.txt", "dev/1/c.txt", Default::default()).await));
    let target_other = PutTarget {
        bucket: "bkt".into(),
        key: "dev/1/copy".into(),
        meta: ObjectMeta::default(),
        condition: None,
        tree: chuan_core::store::TreeRule::Flat,
    };
    assert!(denied(e.copy_object(&device, "bkt", "secret.txt", target_other, false).await));
    assert_eq!(e.list_buckets(&device).await.unwrap().iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["bkt"]);
}

#[tokio::test]
async fn quotas_are_never_exceeded_even_by_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    e.create_tenant(&Principal::operator(), "alice").await.unwrap();
    let quota = chuan_core::Quota { storage_bytes: Some(10_000), ..Default::default() };
    e.set_quota(&Principal::operator(), "alice", quota).await.unwrap();
    // 20 writers of 1,000 distinct bytes each race for room for 10.
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let staged = e.stage(&alice(), body(&pseudo_random(1000, 100 + i), 333)).await.unwrap();
            e.commit_put(&alice(), target("bkt", &format!("k{i}")), staged).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CoreError::QuotaExceeded(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(e.tenant_bytes("alice").await.unwrap(), 10_000);
    // Overwriting with something smaller always fits; deleting makes room.
    e.delete_object(&alice(), "bkt", "k0").await.ok();
    let q = ListQuery { prefix: String::new(), delimiter: None, after: None, max_keys: 100 };
    let first = e.list_objects(&alice(), "bkt", &q).await.unwrap().objects[0].key.clone();
    e.delete_object(&alice(), "bkt", &first).await.unwrap();
    let staged = e.stage(&alice(), body(&pseudo_random(1000, 999), 1000)).await.unwrap();
    e.commit_put(&alice(), target("bkt", "again"), staged).await.unwrap();
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn request_and_download_allowances_and_the_usage_report() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    put(&e, "k", &[7u8; 60]).await;
    let quota = chuan_core::Quota { requests: Some(5), download_bytes: Some(100), ..Default::default() };
    e.set_quota(&Principal::operator(), "alice", quota).await.unwrap();
    // One request however many engine calls it makes (a fresh principal is a new request).
    let one = alice();
    for _ in 0..3 {
        e.head_object(&one, "bkt", "k").await.unwrap();
    }
    assert_eq!(read_as(&e, &alice(), "bkt", "k").await.unwrap().len(), 60);
    for _ in 0..3 {
        e.head_object(&alice(), "bkt", "k").await.unwrap();
    }
    assert!(matches!(e.head_object(&alice(), "bkt", "k").await, Err(CoreError::QuotaExceeded(_))));
    e.set_quota(&Principal::operator(), "alice", chuan_core::Quota { download_bytes: Some(100), ..Default::default() })
        .await
        .unwrap();
    let request = alice();
    let rec = e.head_object(&request, "bkt", "k").await.unwrap();
    let content = e.content_of(&rec).await.unwrap();
    drop(e.open_read(&request, &rec, &content, 0, 41).await.unwrap());
    assert!(matches!(e.open_read(&alice(), &rec, &content, 0, 60).await, Err(CoreError::QuotaExceeded(_))));
    drop(e.open_read(&alice(), &rec, &content, 0, 59).await.unwrap());
    let now = chuan_core::store::now_ms();
    let report = e.usage_report(&alice(), now - 86_400_000, now).await.unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!((report[0].requests, report[0].downloads), (9, 160));
    // The consumption is in the store (it survives a restart of the engine, unflushed); an
    // unlimited allowance (requests, since the second quota) counts nothing there.
    drop(e);
    let e = open(dir.path());
    let q = e.quota("alice").await.unwrap().unwrap();
    assert_eq!((q.used_requests, q.used_download_bytes), (0, 100));
}

#[tokio::test]
async fn gc_aborts_expired_upload_sessions_and_frees_their_parts() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        min_part_size: 1024,
        upload_ttls: vec![(UploadKind::Adrive, Some(Duration::from_millis(200)))],
        ..Default::default()
    };
    let e = open_with(dir.path(), config);
    e.create_tenant(&Principal::operator(), "alice").await.unwrap();
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    let up = e.create_upload(&alice(), NewUpload::new(UploadKind::Adrive, "bkt", "k")).await.unwrap();
    assert!(up.expires_ms.is_some(), "sessions of this kind expire");
    let staged = e.stage(&alice(), body(b"abandoned part", 5)).await.unwrap();
    e.commit_part(&alice(), &up, 1, staged).await.unwrap();
    let keep = e.create_upload(&alice(), s3_upload("bkt", "k2")).await.unwrap();
    assert_eq!(keep.expires_ms, None, "S3 sessions never expire");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Expired: refused at once, before any GC pass.
    assert!(matches!(e.upload(&alice(), "bkt", "k", &up.id).await, Err(CoreError::NoSuchUpload)));
    let staged = e.stage(&alice(), body(b"late", 4)).await.unwrap();
    assert!(matches!(e.commit_part(&alice(), &up, 2, staged).await, Err(CoreError::NoSuchUpload)));
    let r = e.complete_upload(&alice(), &up, Completion::new(PartList::All { count: 1 })).await;
    assert!(matches!(r, Err(CoreError::NoSuchUpload)), "{r:?}");
    let r = e.gc(Duration::ZERO).await.unwrap();
    assert_eq!((r.uploads_expired, r.blobs_freed), (1, 1), "the session goes and its part's blob with it");
    e.upload(&alice(), "bkt", "k2", &keep.id).await.unwrap();
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

/// A body past one UFile block staged with `defer_sha1` commits at once without its SHA-1;
/// the content is pending until an instant-upload lookup or the background job settles it,
/// with the same digests and UFile ETag as a full pass. Up to one block nothing is deferred.
#[tokio::test]
async fn a_deferred_sha1_is_settled_later_with_the_same_digests() {
    use chuan_core::hash::{digest_all, BlockSha1, UFILE_BLOCK};
    use chuan_core::{Possession, StageOptions};
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    e.create_bucket(&alice(), "bkt", None).await.unwrap();
    let deferring = StageOptions::default().deferring_sha1();
    let ufile_etag = |data: &[u8]| {
        let mut b = BlockSha1::default();
        b.update(data);
        b.finish_etag()
    };

    // Exactly one block: hashed whole, nothing pending.
    let small = pseudo_random(UFILE_BLOCK as usize, 90);
    let staged = e.stage_with(&alice(), body(&small, 100_000), deferring).await.unwrap();
    assert_eq!(staged.digests, digest_all(&small));
    assert_eq!(staged.ufile_etag.as_deref(), Some(ufile_etag(&small).as_str()));
    e.commit_put(&alice(), PutTarget::new("bkt", "small"), staged).await.unwrap();
    assert_eq!(e.stats().await.unwrap().pending_digests, 0);

    // One byte more: the SHA-1 (and the UFile ETag) wait; everything else is known.
    let big = pseudo_random(UFILE_BLOCK as usize + 1, 91);
    let want = digest_all(&big);
    let staged = e.stage_with(&alice(), body(&big, 100_000), deferring).await.unwrap();
    assert_eq!(staged.digests.sha1, "");
    assert!(!staged.digests.is_complete());
    assert_eq!(staged.ufile_etag, None);
    assert_eq!((&staged.digests.md5, &staged.digests.sha256), (&want.md5, &want.sha256));
    assert_eq!((staged.digests.crc64nvme, &staged.digests.sha1_head), (want.crc64nvme, &want.sha1_head));
    let rec = e.commit_put(&alice(), PutTarget::new("bkt", "big"), staged).await.unwrap();
    assert_eq!(rec.etag, want.md5);
    assert_eq!(e.stats().await.unwrap().pending_digests, 1);
    assert_eq!(e.content_of(&rec).await.unwrap().digests, None, "no content is recorded with a partial digest set");
    // Findable at once by the digests it has, by its owner and (with proof) by anyone; by the
    // missing one another tenant misses (not an error) until it is settled, and the owner's
    // lookup settles it on the spot.
    let proof = Possession::Bytes(vec![(0, big[..8].to_vec())]);
    let size = big.len() as u64;
    assert!(e.claimable_content(&alice(), "md5", &want.md5, size, &Possession::None).await.unwrap().is_some());
    assert!(e.claimable_content(&bob(), "sha256", &want.sha256, size, &proof).await.unwrap().is_some());
    assert_eq!(e.stats().await.unwrap().pending_digests, 1, "those lookups need not settle anything");
    assert_eq!(e.claimable_content(&bob(), "sha1", &want.sha1, size, &proof).await.unwrap(), None);
    assert!(e
        .claimable_content(&alice(), "sha1", &want.sha1, big.len() as u64, &Possession::None)
        .await
        .unwrap()
        .is_some());
    let content = e.content_of(&rec).await.unwrap();
    assert_eq!(content.digests.as_ref(), Some(&want));
    assert_eq!(content.ufile_etag.as_deref(), Some(ufile_etag(&big).as_str()));
    assert_eq!(e.stats().await.unwrap().pending_digests, 0);

    // The background job settles the same way (another body, so another content).
    let other = pseudo_random(UFILE_BLOCK as usize + 777_777, 92);
    let staged = e.stage_with(&alice(), body(&other, 65_536), deferring).await.unwrap();
    let rec = e.commit_put(&alice(), PutTarget::new("bkt", "other"), staged).await.unwrap();
    assert_eq!(e.compute_pending_digests(10).await.unwrap(), 1);
    let content = e.content_of(&rec).await.unwrap();
    assert_eq!(content.digests, Some(digest_all(&other)));
    assert_eq!(content.ufile_etag.as_deref(), Some(ufile_etag(&other).as_str()));

    // One deferred part completed with whole-content digests asked for: only its SHA-1 is
    // computed; without them the content stays pending like a single PUT.
    let up = e.create_upload(&alice(), s3_upload("bkt", "one-part")).await.unwrap();
    let staged = e.stage_with(&alice(), body(&big, 100_000), deferring).await.unwrap();
    let etag = e.commit_part(&alice(), &up, 1, staged).await.unwrap().etag;
    let mut completion = listed(&[(1, etag)]);
    completion.digests = true;
    assert_eq!(e.complete_upload(&alice(), &up, completion).await.unwrap().digests, Some(want.clone()));
    let up = e.create_upload(&alice(), s3_upload("bkt", "one-part-pending")).await.unwrap();
    let staged = e.stage_with(&alice(), body(&other, 100_000), deferring).await.unwrap();
    let etag = e.commit_part(&alice(), &up, 1, staged).await.unwrap().etag;
    let done = e.complete_upload(&alice(), &up, listed(&[(1, etag)])).await.unwrap();
    assert_eq!(e.content_of(&done.object).await.unwrap().digests, None);
    // Both are pending: the first for its UFile ETag only (content past one block).
    assert_eq!(e.stats().await.unwrap().pending_digests, 2);
    assert_eq!(e.compute_pending_digests(10).await.unwrap(), 2);
    assert_eq!(e.content_of(&done.object).await.unwrap().digests, Some(digest_all(&other)));

    // A SHA-1 asked for after the body (an S3 trailer) is computed from the staged bytes.
    let mut staged = e.stage_with(&alice(), body(&big, 100_000), deferring).await.unwrap();
    staged.ensure_sha1().await.unwrap();
    assert_eq!(staged.digests, want);
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

/// Two nodes sharing one MetaStore and one BlobStore, as a cluster runs: GC on one node
/// deleting a blob's bytes and an upload of the same bytes on the other never leave an object
/// without its bytes, in either order (the BlobLocks of one process cannot see the other's).
#[tokio::test]
async fn gc_on_one_node_and_an_upload_of_the_same_bytes_on_another_keep_the_bytes() {
    use chuan_store::{BlobStore, LocalBlobStore, MaintenanceStore, SqlMetaStore};
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(SqlMetaStore::open_sqlite(&dir.path().join("meta.db")).unwrap());
    let blobs = Arc::new(LocalBlobStore::open(dir.path()).unwrap());
    let node = || Arc::new(Engine::new(meta.clone(), blobs.clone(), EngineConfig::default()));
    let (a, b) = (node(), node());
    a.create_tenant(&Principal::operator(), "alice").await.unwrap();
    a.create_bucket(&alice(), "bkt", None).await.unwrap();
    let data = pseudo_random(300_000, 9);
    let rec = put(&a, "x", &data).await;
    let id = a.content_of(&rec).await.unwrap().extents[0].blob.clone();
    a.delete_object(&alice(), "bkt", "x").await.unwrap();

    // Node A's GC has marked the blob and not yet deleted its bytes; node B receives the same
    // bytes meanwhile: B waits until the bytes and the row are gone, then writes them anew.
    assert!(meta.forget_blob(&id, chuan_store::now_ms() + 1).await.unwrap().is_some());
    let upload = tokio::spawn({
        let (b, data) = (b.clone(), data.clone());
        async move { put(&b, "y", &data).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!upload.is_finished(), "the upload waits while the blob is being deleted");
    blobs.delete(&id).await.unwrap();
    meta.drop_blob(&id).await.unwrap();
    upload.await.unwrap();
    assert_eq!(read_all(&a, "y").await, data, "read on the other node");
    assert!(a.fsck().await.unwrap().problems.is_empty());

    // The other order: B's writer has reserved the blob (its bytes on their way) when A's GC
    // runs with no grace at all: GC leaves it, and B's commit finds its bytes.
    b.delete_object(&alice(), "bkt", "y").await.unwrap();
    meta.reserve_blob(&id, data.len() as u64, "writer-on-b").await.unwrap();
    assert_eq!(a.gc(Duration::ZERO).await.unwrap().blobs_freed, 0, "a reserved blob is not freed");
    assert!(blobs.size(&id).await.unwrap().is_some());
    put(&b, "z", &data).await;
    assert_eq!(read_all(&a, "z").await, data);
    // Another writer's commit (the put above, with a claim of its own) and the deletion of
    // its object leave the first writer's reservation standing.
    b.delete_object(&alice(), "bkt", "z").await.unwrap();
    assert_eq!(a.gc(Duration::ZERO).await.unwrap().blobs_freed, 0, "still reserved by writer-on-b");
    assert!(blobs.size(&id).await.unwrap().is_some());
    // Once that writer ends its claim, the unreferenced blob is freed as usual.
    meta.end_claim(&id, "writer-on-b").await.unwrap();
    assert_eq!(a.gc(Duration::ZERO).await.unwrap().blobs_freed, 1);
    assert!(blobs.size(&id).await.unwrap().is_none());
    assert!(b.fsck().await.unwrap().problems.is_empty());
}

/// A write refused at commit (here: the quota) takes back the bytes it made durable, and only
/// those no other writer has reserved or referenced since.
#[tokio::test]
async fn a_refused_commit_releases_the_blob_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    e.set_quota(
        &Principal::operator(),
        "alice",
        chuan_core::Quota { storage_bytes: Some(1_000), ..Default::default() },
    )
    .await
    .unwrap();
    let data = pseudo_random(200_000, 3);
    let staged = e.stage(&alice(), body(&data, 7919)).await.unwrap();
    let r = e.commit_put(&alice(), target("bkt", "big"), staged).await;
    assert!(matches!(r, Err(CoreError::QuotaExceeded(_))), "{r:?}");
    let st = e.stats().await.unwrap();
    assert_eq!((st.blobs, st.physical_bytes), (0, 0), "{st:?}");
    assert_eq!(files_under(&dir.path().join("blobs")), 0, "the refused write's bytes are gone");
    assert!(e.fsck().await.unwrap().problems.is_empty());
}

fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { files_under(&p) } else { 1 })
        .sum()
}

/// Two engines on one MetaStore (two nodes): a request allowance is one count, spent exactly
/// between them; a storage quota set on one holds on the other at once; the probe budget is
/// one for both.
#[tokio::test]
async fn quotas_and_the_probe_budget_hold_across_nodes() {
    use chuan_core::FairnessConfig;
    use chuan_store::{LocalBlobStore, SqlMetaStore};
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(SqlMetaStore::open_sqlite(&dir.path().join("meta.db")).unwrap());
    let blobs = Arc::new(LocalBlobStore::open(dir.path()).unwrap());
    let config = EngineConfig {
        fairness: FairnessConfig { probe_burst: 6.0, probes_per_sec: 0.001, ..Default::default() },
        ..Default::default()
    };
    let node = || Arc::new(Engine::new(meta.clone(), blobs.clone(), config.clone()));
    let (a, b) = (node(), node());
    a.create_tenant(&Principal::operator(), "alice").await.unwrap();
    a.create_bucket(&alice(), "bkt", None).await.unwrap();
    put(&a, "k", b"hello").await;
    let quota = chuan_core::Quota { requests: Some(300), ..Default::default() };
    a.set_quota(&Principal::operator(), "alice", quota).await.unwrap();
    // Alternating nodes, each holding leases: exactly 300 requests pass between them.
    let mut served = 0;
    for i in 0..400 {
        let node = if i % 2 == 0 { &a } else { &b };
        match node.head_object(&alice(), "bkt", "k").await {
            Ok(_) => served += 1,
            Err(CoreError::QuotaExceeded(_)) => {}
            Err(e) => panic!("{e}"),
        }
        if i % 97 == 0 {
            // A flush gives one node's unspent lease back mid-way, as the timer does.
            node.flush_usage().await.unwrap();
        }
    }
    assert!(served <= 300, "never more than the allowance: {served}");
    a.flush_usage().await.unwrap();
    b.flush_usage().await.unwrap();
    // Once both gave their leases back, whatever was left is served, on either node.
    while b.head_object(&alice(), "bkt", "k").await.is_ok() {
        served += 1;
    }
    assert_eq!(served, 300, "exactly the allowance across both nodes");
    assert_eq!(a.quota("alice").await.unwrap().unwrap().used_requests, 300);

    // A storage quota set on A holds on B at once (read inside B's write transaction).
    b.set_quota(&Principal::operator(), "alice", chuan_core::Quota::default()).await.unwrap();
    put(&b, "warm", b"1234").await;
    a.set_quota(&Principal::operator(), "alice", chuan_core::Quota { storage_bytes: Some(20), ..Default::default() })
        .await
        .unwrap();
    let staged = b.stage(&alice(), body(&[1u8; 50], 50)).await.unwrap();
    assert!(matches!(b.commit_put(&alice(), target("bkt", "big"), staged).await, Err(CoreError::QuotaExceeded(_))));

    // The probe budget (6, no refill to speak of) is shared: 4 claims on A, then B has 2.
    let claim = |e: Arc<Engine>| async move {
        e.claimable_content(&alice(), "sha1", &"0".repeat(40), 5, &chuan_core::Possession::None).await.unwrap()
    };
    for _ in 0..4 {
        claim(a.clone()).await;
    }
    let before = meta_probes_left(&b).await;
    assert_eq!(before, 2, "B sees what A spent");
}

/// How many probes the tenant alice has left on `e`, spending them to count.
async fn meta_probes_left(e: &Engine) -> u32 {
    let mut n = 0;
    while e.issue_challenge(&alice(), "bkt", "c", 5, &"a".repeat(64)).await.is_ok() {
        n += 1;
        assert!(n < 100, "no limit");
    }
    n
}
