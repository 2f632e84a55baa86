//! The MetaStore contract on PostgreSQL: a real server (Debian's `postgresql` package, which
//! `scripts/test.sh` installs) started for this test binary in a temporary directory, one
//! fresh database per test.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use chuan_store::{MetaStore, SettingStore, SqlMetaStore};

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
