//! The MetaStore contract on PostgreSQL: a real server (Debian's `postgresql` package, which
//! `scripts/test.sh` installs) started for this test binary in a temporary directory, one
//! fresh database per test.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use chuan_store::{
    CredentialKind, CredentialRecord, IdentityStore, MaintenanceStore, MetaStore, QuotaStore, SettingStore,
    SqlMetaStore, UsageStore,
};

/// A throwaway PostgreSQL server on a loopback port, stopped when this process exits.
struct Server {
    port: u16,
}

/// The directory with `initdb` and `postgres`: `CHUAN_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`.
fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHUAN_PG_BIN") {
        return dir.into();
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    dirs.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    dirs.pop()
        .expect("PostgreSQL's server programs are not installed: `apt-get install postgresql` (scripts/test.sh does)")
}

/// `cmd` as the `postgres` user when this process is root (PostgreSQL refuses to run as root).
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    fn start() -> Server {
        let bin = pg_bin();
        let dir = std::env::temp_dir().join(format!("chuan-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            assert!(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().unwrap().success());
        }
        let data = dir.join("data");
        let out = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "chuan", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        // The server runs under a shell that stops it (fast shutdown) and removes its files as
        // soon as this test process exits and the shell's stdin closes.
        let script = format!(
            "{pg} -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 -c max_connections=400 \
             >{dir}/log 2>&1 & pid=$!; echo started; read _; kill -INT $pid; wait $pid; rm -rf {dir}",
            pg = bin.join("postgres").display(),
            data = data.display(),
            dir = dir.display(),
        );
        let mut shell = as_server_user(Path::new("/bin/sh"));
        let mut child = shell.arg("-c").arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        // Keep the shell's stdin open for the life of the process.
        let stdin = child.stdin.take().unwrap();
        std::mem::forget(stdin);
        std::mem::forget(child);
        for _ in 0..200 {
            if postgres::Client::connect(
                &format!("host=127.0.0.1 port={port} user=chuan dbname=postgres"),
                postgres::NoTls,
            )
            .is_ok()
            {
                return Server { port };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        panic!("PostgreSQL did not start on port {port}: {log}");
    }

    /// A new empty database's connection string.
    fn database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("contract_{}", N.fetch_add(1, Ordering::SeqCst));
        let mut admin = postgres::Client::connect(
            &format!("host=127.0.0.1 port={} user=chuan dbname=postgres", self.port),
            postgres::NoTls,
        )
        .unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let _ = std::io::stdout().flush();
        format!("postgres://chuan@127.0.0.1:{}/{name}", self.port)
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}

/// A store on a fresh database (created off the test's runtime: the synchronous client
/// cannot run inside it).
async fn fresh() -> (Arc<dyn MetaStore>, ()) {
    let store = tokio::task::spawn_blocking(|| {
        let url = server().database();
        SqlMetaStore::connect_postgres(&url).unwrap()
    })
    .await
    .unwrap();
    (Arc::new(store) as Arc<dyn MetaStore>, ())
}

chuan_store::meta_store_contract!(fresh());

#[tokio::test]
async fn an_unreachable_server_is_named_in_the_error() {
    let port = free_port();
    let err = match SqlMetaStore::connect_postgres(&format!("postgres://chuan@127.0.0.1:{port}/x")) {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("PostgreSQL at 127.0.0.1:{port}/x")), "{err}");
}

#[tokio::test]
async fn a_second_node_shares_the_schema() {
    let url = tokio::task::spawn_blocking(|| server().database()).await.unwrap();
    let a = SqlMetaStore::connect_postgres(&url).unwrap();
    let b = SqlMetaStore::connect_postgres(&url).unwrap();
    a.setting_or_init("k", "from-a".into()).await.unwrap();
    assert_eq!(b.setting_or_init("k", "from-b".into()).await.unwrap(), "from-a");
}

/// Waits (5 s at most) for the announcement of `key`, skipping others and `None`s.
async fn announced(changes: &mut tokio::sync::broadcast::Receiver<Option<String>>, key: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, changes.recv()).await {
            Ok(Ok(Some(k))) if k == key => return,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            other => panic!("{key} was not announced: {other:?}"),
        }
    }
}

fn credential(expires_ms: Option<i64>) -> CredentialRecord {
    CredentialRecord {
        access_key: "AK1".into(),
        secret: "s".into(),
        tenant: "t".into(),
        kind: CredentialKind::UploadToken,
        label: String::new(),
        created_ms: 1,
        expires_ms,
        scope: None,
    }
}

/// A store whose listener is known to be listening (it announced a probe change) and a
/// second node's store on the same database: (a, b, b's announcements).
async fn two_listening_nodes() -> (SqlMetaStore, SqlMetaStore, tokio::sync::broadcast::Receiver<Option<String>>, String)
{
    let url = tokio::task::spawn_blocking(|| server().database()).await.unwrap();
    let a = SqlMetaStore::connect_postgres(&url).unwrap();
    let b = SqlMetaStore::connect_postgres(&url).unwrap();
    let mut changes = b.credential_changes().expect("PostgreSQL announces changes");
    a.put_credential(credential(None)).await.unwrap(); // new: nobody can have cached it
                                                       // Changes made before b listens are not announced; probe until one is.
    for _ in 0..50 {
        a.put_credential(credential(None)).await.unwrap();
        if let Ok(Ok(Some(_))) = tokio::time::timeout(std::time::Duration::from_millis(100), changes.recv()).await {
            return (a, b, changes, url);
        }
    }
    panic!("b's listener never heard a change");
}

/// A credential changed, purged or deleted through one node is announced to the other as it
/// commits (the schema's trigger, the store's listener), so a node caching it can forget it.
#[tokio::test]
async fn credential_changes_are_announced_to_every_node() {
    let (a, _b, mut changes, _) = two_listening_nodes().await;
    a.put_credential(credential(Some(5))).await.unwrap();
    announced(&mut changes, "AK1").await;
    assert_eq!(a.purge_expired_credentials(&[CredentialKind::UploadToken], 10).await.unwrap(), 1);
    announced(&mut changes, "AK1").await;
    a.put_credential(credential(None)).await.unwrap();
    assert!(a.delete_credential("AK1").await.unwrap());
    announced(&mut changes, "AK1").await;
    // The embedded store has no other writers to hear from.
    let dir = std::env::temp_dir().join(format!("chuan-cc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(SqlMetaStore::open_sqlite(&dir.join("meta.db")).unwrap().credential_changes().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A listener whose connection is cut says so (`None`: forget everything, announcements may
/// have been lost), connects again and goes on announcing.
#[tokio::test]
async fn a_cut_listener_says_so_and_listens_again() {
    let (a, _b, mut changes, url) = two_listening_nodes().await;
    let db = url.rsplit('/').next().unwrap().to_owned();
    let port = server().port;
    let cut: i64 = tokio::task::spawn_blocking(move || {
        let mut admin = postgres::Client::connect(
            &format!("host=127.0.0.1 port={port} user=chuan dbname=postgres"),
            postgres::NoTls,
        )
        .unwrap();
        admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE datname = $1 AND query LIKE 'LISTEN%'",
                &[&db],
            )
            .unwrap()
            .get(0)
    })
    .await
    .unwrap();
    assert!(cut >= 1, "no listener connection found");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, changes.recv()).await {
            Ok(Ok(None)) => break,
            Ok(Ok(Some(_))) => continue,
            other => panic!("the cut was not reported: {other:?}"),
        }
    }
    for attempt in 0.. {
        a.put_credential(credential(Some(attempt))).await.unwrap();
        match tokio::time::timeout(std::time::Duration::from_millis(200), changes.recv()).await {
            Ok(Ok(Some(k))) if k == "AK1" => break,
            _ => assert!(attempt < 50, "no announcement after reconnecting"),
        }
    }
}

/// Every worker's idle connection broken (PostgreSQL restarted, say): each read and write
/// runs on a new connection, none fails, none runs twice.
#[tokio::test]
async fn reads_and_writes_survive_connections_broken_while_idle() {
    let url = tokio::task::spawn_blocking(|| server().database()).await.unwrap();
    let store = Arc::new(SqlMetaStore::connect_postgres(&url).unwrap());
    store.put_settings(vec![("k".into(), "v".into())]).await.unwrap();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let port = server().port;
    let killed: i64 = tokio::task::spawn_blocking(move || {
        let mut admin = postgres::Client::connect(
            &format!("host=127.0.0.1 port={port} user=chuan dbname=postgres"),
            postgres::NoTls,
        )
        .unwrap();
        let row = admin
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1) t",
                &[&db],
            )
            .unwrap();
        row.get(0)
    })
    .await
    .unwrap();
    assert!(killed >= 8, "only {killed} connections of the store's 8 workers were found");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            assert_eq!(s.get_setting("k").await.unwrap().as_deref(), Some("v"));
            s.put_settings(vec![(format!("k{i}"), "w".into())]).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..16 {
        assert_eq!(store.get_setting(&format!("k{i}")).await.unwrap().as_deref(), Some("w"));
    }
}

/// A version-1 database (before quotas had their table) is migrated: each `quota:TENANT`
/// setting becomes a quota row, its consumption kept; a blob reservation becomes a claim.
#[tokio::test]
async fn a_version_1_database_is_migrated() {
    let url = tokio::task::spawn_blocking(|| server().database()).await.unwrap();
    drop(SqlMetaStore::connect_postgres(&url).unwrap());
    let setup = url.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = postgres::Client::connect(&setup, postgres::NoTls).unwrap();
        c.batch_execute(
            "DROP TABLE quotas; DROP TABLE rate_buckets; ALTER TABLE contents DROP COLUMN digest_lease;
             DROP TABLE blob_claims; DROP TABLE bucket_bytes; UPDATE chuan_schema SET version = 1;
             INSERT INTO buckets(name, tenant, public, region, created, bytes) VALUES('photos', 'alice', 0, 'r', 9, 42);
             INSERT INTO settings VALUES('quota:alice', '{\"download_bytes\":900,\"used_download_bytes\":12}');
             INSERT INTO blobs(id, size, refs, zero_since, inline, claim) VALUES('b1', 5, 0, 0, 0, 'w');",
        )
        .unwrap();
    })
    .await
    .unwrap();
    let s = SqlMetaStore::connect_postgres(&url).unwrap();
    let q = s.get_quota("alice").await.unwrap().unwrap();
    assert_eq!(q.limits, chuan_store::QuotaLimits { download_bytes: Some(900), ..Default::default() });
    assert_eq!((q.used_download_bytes, q.used_requests), (12, 0));
    assert_eq!(s.get_setting("quota:alice").await.unwrap(), None);
    assert!(s.take_tokens(vec![chuan_store::TokenTake { key: "k".into(), burst: 1.0, per_sec: 1.0 }]).await.unwrap());
    assert_eq!(s.bucket_bytes("photos").await.unwrap(), 42, "the byte count moved to its rows");
    // A writer's open reservation (version 2: `blobs.claim`) holds after the migration.
    assert_eq!(s.forget_blob("b1", chuan_store::now_ms() + 1).await.unwrap(), None, "still reserved");
    assert!(s.release_blob("b1", "w").await.unwrap().is_some(), "the writer's claim carried over");
}
