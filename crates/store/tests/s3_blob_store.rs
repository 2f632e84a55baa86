//! The S3 BlobStore against a real S3 implementation: Ceph's RADOS Gateway from Debian's
//! packages, started for this test binary by `scripts/ceph-rgw.sh` in a temporary directory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use chuan_store::{BlobStore, S3BlobStore, S3Location};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ceph-rgw.sh")
}

/// The gateway's `S3_*` lines, started once for this test process and stopped (its data
/// removed) by a shell that waits for this process's end (its stdin closes then).
fn gateway() -> &'static HashMap<String, String> {
    static GATEWAY: OnceLock<HashMap<String, String>> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("chuan-rgw-{}", std::process::id()));
        let out = Command::new(script()).arg("start").arg(&dir).output().expect("scripts/ceph-rgw.sh runs");
        assert!(out.status.success(), "ceph-rgw.sh start failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut reaper = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "read _; {} stop {dir} >/dev/null 2>&1; rm -rf {dir}",
                script().display(),
                dir = dir.display()
            ))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        std::mem::forget(reaper.stdin.take());
        std::mem::forget(reaper);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect()
    })
}

fn location(bucket: &str) -> S3Location {
    let env = gateway();
    S3Location {
        bucket: bucket.to_owned(),
        endpoint: Some(env["S3_ENDPOINT"].clone()),
        region: Some(env["S3_REGION"].clone()),
        keys: Some((env["S3_ACCESS_KEY"].clone(), env["S3_SECRET_KEY"].clone())),
    }
}

async fn store(root: &std::path::Path) -> S3BlobStore {
    let bucket = gateway()["S3_BUCKET"].clone();
    S3BlobStore::open(&location(&bucket), root).await.unwrap()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut v);
    v
}

async fn read(s: &S3BlobStore, id: &String, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use futures::StreamExt;
    let mut stream = s.read(id, offset, len).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

async fn persist(s: &S3BlobStore, data: &[u8], id: &String) {
    let mut t = s.create_temp().unwrap();
    t.write_all(data).unwrap();
    t.sync().unwrap();
    s.persist(t, id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_round_trip_through_a_real_s3_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    // Larger than one part: a multipart upload to the backend.
    let big = random_bytes(chuan_store::S3_PART_SIZE * 2 + 12_345);
    let id = format!("{:064x}", 0xb16u64 + std::process::id() as u64);
    assert_eq!(s.size(&id).await.unwrap(), None);
    persist(&s, &big, &id).await;
    // Over 32 MiB: removed by the remover thread, a moment later.
    assert!(tokio::task::spawn_blocking(|| chuan_store::drain_removals(Duration::from_secs(20))).await.unwrap());
    assert_eq!(s.temp_count().unwrap(), 0, "the temporary is gone once the blob is stored");
    assert_eq!(s.size(&id).await.unwrap(), Some(big.len() as u64));
    assert_eq!(read(&s, &id, 0, big.len() as u64).await.unwrap(), big);
    // Ranges, one across the parts' boundary.
    let edge = chuan_store::S3_PART_SIZE as u64 - 10;
    assert_eq!(read(&s, &id, edge, 20).await.unwrap(), big[edge as usize..edge as usize + 20]);
    assert_eq!(read(&s, &id, 5, 1).await.unwrap(), big[5..6]);
    // A read of several GETs (READ_CHUNK each) from an offset inside one.
    let (from, n) = (chuan_store::S3_READ_CHUNK as usize - 3, chuan_store::S3_READ_CHUNK as usize * 2 + 10);
    assert_eq!(read(&s, &id, from as u64, n as u64).await.unwrap(), big[from..from + n]);
    assert!(read(&s, &id, 0, 0).await.unwrap().is_empty());
    // A second persist of the same name keeps the stored copy and drops the temporary.
    persist(&s, &big, &id).await;
    assert!(tokio::task::spawn_blocking(|| chuan_store::drain_removals(Duration::from_secs(20))).await.unwrap());
    assert_eq!(s.temp_count().unwrap(), 0);
    // A small one: one PUT.
    let small_id = format!("{:064x}", 0x5u64 + std::process::id() as u64);
    persist(&s, b"hello", &small_id).await;
    assert_eq!(read(&s, &small_id, 1, 3).await.unwrap(), b"ell");
    let listed = s.list().await.unwrap();
    assert!(listed.contains(&id) && listed.contains(&small_id), "{listed:?}");
    for i in [&id, &small_id] {
        s.delete(i).await.unwrap();
        s.delete(i).await.unwrap();
        assert_eq!(s.size(i).await.unwrap(), None);
    }
    let e = read(&s, &id, 0, 1).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    // Ids never become other keys.
    assert!(s.size(&"../x".to_string()).await.is_err());
}

#[tokio::test]
async fn a_wrong_key_or_bucket_is_named_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let err = S3BlobStore::open(&location("no-such-bucket-here"), dir.path()).await.err().expect("refused");
    assert!(err.to_string().contains("cannot list s3://no-such-bucket-here"), "{err}");
    let wrong = S3Location { keys: Some(("nobody".into(), "wrong".into())), ..location(&gateway()["S3_BUCKET"]) };
    let err = S3BlobStore::open(&wrong, dir.path()).await.err().expect("refused");
    assert!(err.to_string().contains("InvalidAccessKeyId"), "{err}");
}
