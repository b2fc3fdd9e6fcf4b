//! Serves the three source APIs (flow `/api/experiments`, feed `/v1/experiments`, flag
//! `/api/v1/flags`) over HTTP from one in-process `Lab`.
//!
//! ```text
//! cargo run --features http --example server -- --port 8080
//! cargo run --features http,sqlite --example server -- --port 8080 --sqlite abkit.db
//! cargo run --features http,postgres --example server -- --port 8080 --postgres postgres://abkit@127.0.0.1/abkit
//! ```
//!
//! Options: `--port N` (default 8080; 0 picks a free one), `--host ADDR` (default 127.0.0.1),
//! `--sqlite PATH` (durable; needs the `sqlite` feature), `--postgres URL` (one database shared
//! by any number of server processes: each decides from its own snapshot and a watcher applies
//! the others' writes within milliseconds; needs the `postgres` feature), `--exit-after SECONDS` (stop by
//! itself, for CI). The instance-wide admin token comes from `ABKIT_ADMIN_TOKEN`; when it is
//! unset one is generated and printed once. Ctrl-C (or SIGTERM) drains requests in flight.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::Duration;

use abkit::Lab;
use abkit::fleet::{WatchOptions, Watcher};
use abkit::http::{Settings, router_with_keys};
use abkit::storage::RecordKind;

struct Args {
    host: String,
    port: u16,
    sqlite: Option<String>,
    postgres: Option<String>,
    exit_after: Option<u64>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 8080,
        sqlite: None,
        postgres: None,
        exit_after: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => {
                let v = value()?;
                a.port = v
                    .parse()
                    .map_err(|_| format!("--port: {v:?} is not a port"))?;
            }
            "--host" => a.host = value()?,
            "--sqlite" => a.sqlite = Some(value()?),
            "--postgres" => a.postgres = Some(value()?),
            "--exit-after" => {
                let v = value()?;
                a.exit_after = Some(
                    v.parse()
                        .map_err(|_| format!("--exit-after: {v:?} is not a number of seconds"))?,
                );
            }
            other => return Err(format!("unknown option {other:?}; see the example's docs")),
        }
    }
    Ok(a)
}

fn lab(args: &Args) -> Result<Lab, Box<dyn std::error::Error>> {
    if let Some(url) = args.postgres.as_deref() {
        #[cfg(feature = "postgres")]
        {
            let storage = abkit::storage::PostgresStorage::connect(url)?;
            return Ok(Lab::builder().storage(Arc::new(storage)).build()?);
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = url;
            return Err("--postgres needs the postgres feature: --features http,postgres".into());
        }
    }
    match args.sqlite.as_deref() {
        None => Ok(Lab::new()),
        #[cfg(feature = "sqlite")]
        Some(path) => {
            let storage = abkit::storage::SqliteStorage::open(path)?;
            Ok(Lab::builder().storage(Arc::new(storage)).build()?)
        }
        #[cfg(not(feature = "sqlite"))]
        Some(_) => Err("--sqlite needs the sqlite feature: --features http,sqlite".into()),
    }
}

async fn shutdown(exit_after: Option<u64>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    let timer = async {
        match exit_after {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
        () = timer => {},
    }
    println!("shutting down: draining requests in flight");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let token = match std::env::var("ABKIT_ADMIN_TOKEN") {
        Ok(t) if !t.is_empty() => t,
        _ => {
            let t = format!("abk_admin_{}", abkit::http::random_token()?);
            println!("ABKIT_ADMIN_TOKEN is unset; this run's admin token (shown once): {t}");
            t
        }
    };
    let lab = Arc::new(lab(&args)?);
    let (app, keys) = router_with_keys(Arc::clone(&lab), Settings::new(Some(token)));
    // On a store other processes write (PostgreSQL, a shared SQLite file), follow their writes;
    // a memory store has no one else to follow.
    let _watcher = match Watcher::start_with(&lab, WatchOptions::new(), move |report| {
        // The watcher's own thread (not an async one): blocking reads are fine here.
        if (report.reloaded || report.kinds.contains(&RecordKind::ApiKey))
            && let Err(e) = keys.reload()
        {
            eprintln!("api key reload failed: {e}");
        }
    }) {
        Ok(w) => Some(w),
        Err(abkit::Error::Validation(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await?;
    println!("abkit serving on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown(args.exit_after))
        .await?;
    Ok(())
}
