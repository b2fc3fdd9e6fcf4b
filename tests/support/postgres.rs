//! A throwaway PostgreSQL cluster for tests: `initdb` + `pg_ctl` on a temporary directory and
//! a free loopback port, stopped and removed on drop. As root the binaries run as the
//! `postgres` user (`runuser -u postgres`), since PostgreSQL refuses to run as root.
//!
//! With `ABKIT_POSTGRES_URL` set, that server is used instead (each test gets its own database
//! on it; tests that stop the server need a cluster of their own and are skipped there).
//! Without either, [`Cluster::start`] returns `None` and the test passes as skipped, saying so
//! — except when `CI` is set, where a missing server fails the run.

#![allow(dead_code)] // each test file uses part of the harness

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running server the test may use.
pub struct Cluster {
    /// The data directory of a cluster this harness started (`None`: an external server).
    dir: Option<PathBuf>,
    bin: PathBuf,
    as_postgres: bool,
    port: u16,
    /// `postgres://user@host:port` without a database.
    base: String,
    /// The URL of the maintenance database.
    admin: String,
    /// Whether the server syncs to disk on commit.
    durable: bool,
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The directory holding `initdb` and `pg_ctl`.
fn find_bin() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some(dir) = versions.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

#[allow(clippy::print_stderr)] // a skipped test says why it did nothing
fn skip_or_fail(why: &str) -> Option<Cluster> {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but no PostgreSQL server is available: {why}"
    );
    eprintln!(
        "skipped: no PostgreSQL server ({why}); set ABKIT_POSTGRES_URL or install PostgreSQL"
    );
    None
}

impl Cluster {
    /// A server: `ABKIT_POSTGRES_URL`'s, or a new throwaway cluster.
    pub fn start() -> Option<Cluster> {
        if let Ok(url) = std::env::var("ABKIT_POSTGRES_URL") {
            return Some(Cluster::external(&url));
        }
        Cluster::own()
    }

    /// A throwaway cluster of this test's own (a test that stops or restarts the server).
    pub fn own() -> Option<Cluster> {
        Cluster::own_with(false)
    }

    fn own_with(durable: bool) -> Option<Cluster> {
        if std::env::var_os("ABKIT_POSTGRES_URL").is_some() {
            // Stopping someone else's server is not the harness's to do.
            return skip_or_fail(
                "this test stops the server, which ABKIT_POSTGRES_URL's is not ours to",
            );
        }
        let Some(bin) = find_bin() else {
            return skip_or_fail("no initdb/pg_ctl found");
        };
        let as_postgres = is_root();
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("abkit-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let mut cluster = Cluster {
            dir: Some(dir.clone()),
            bin,
            as_postgres,
            port: free_port(),
            base: String::new(),
            admin: String::new(),
            durable,
        };
        if as_postgres {
            let out = Command::new("chown")
                .args(["postgres:postgres", &dir.display().to_string()])
                .output()
                .expect("chown");
            assert!(
                out.status.success(),
                "chown: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let data = dir.join("data");
        let out = cluster.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.base = format!("postgres://postgres@127.0.0.1:{}", cluster.port);
        cluster.admin = format!("{}/postgres", cluster.base);
        cluster.pg_start();
        Some(cluster)
    }

    fn external(url: &str) -> Cluster {
        let (base, _db) = url
            .rsplit_once('/')
            .expect("ABKIT_POSTGRES_URL ends with /database");
        Cluster {
            dir: None,
            bin: PathBuf::new(),
            as_postgres: false,
            port: 0,
            base: base.to_owned(),
            admin: url.to_owned(),
            durable: true,
        }
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", exe.display()))
    }

    fn data(&self) -> String {
        self.dir
            .as_ref()
            .map(|d| d.join("data").display().to_string())
            .unwrap_or_default()
    }

    fn socket_dir(&self) -> String {
        self.dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    }

    /// Starts (or restarts after a stop) this harness's server and waits until it accepts
    /// connections.
    pub fn pg_start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync={} -c max_connections=200",
            self.port,
            self.socket_dir(),
            if self.durable { "on" } else { "off" }
        );
        let log = format!("{}/server.log", self.socket_dir());
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn stop_immediate(&self) {
        let out = self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new empty database; its URL.
    pub fn database(&self, name: &str) -> String {
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        let db = format!("abkit_{name}_{}_{n}", std::process::id());
        let mut admin = postgres::Client::connect(&self.admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.admin));
        admin
            .batch_execute(&format!("CREATE DATABASE \"{db}\""))
            .expect("create database");
        format!("{}/{db}", self.base)
    }

    /// A plain client on `url`, to inspect or disturb what the store does.
    pub fn client(url: &str) -> postgres::Client {
        postgres::Client::connect(url, postgres::NoTls).expect("connect")
    }

    /// A throwaway cluster that syncs to disk as a production server does (`fsync=on`,
    /// `synchronous_commit=on`): for benchmarks. Tests use [`Cluster::own`] (`fsync=off`).
    pub fn durable() -> Option<Cluster> {
        Cluster::own_with(true)
    }

    /// The port this harness's server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (of a cluster this harness started).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.clone() {
            let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
