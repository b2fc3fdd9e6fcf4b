//! Propagation in a fleet (issue 14): a configuration write committed through one lab, and the
//! moment another lab on the same PostgreSQL database serves it (its `fleet::Watcher` woken by
//! `NOTIFY`, then `Lab::sync` re-reading the one record). 1 000 writes; prints p50, p90, p99 and
//! the maximum. Not a criterion bench: the figure is a latency distribution across two labs.
//!
//! Run: `cargo bench --features postgres --bench fleet` (starts a throwaway cluster with
//! `fsync=on`; needs the PostgreSQL binaries, or `ABKIT_POSTGRES_URL`).

#![allow(clippy::expect_used, clippy::print_stdout, clippy::indexing_slicing)]

#[path = "../tests/support/postgres.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use abkit::fleet::{WatchOptions, Watcher};
use abkit::storage::PostgresStorage;
use abkit::{Context, FlagPatch, Lab, NewFlag};
use serde_json::json;

const WRITES: usize = 1_000;

fn lab_on(url: &str) -> Arc<Lab> {
    let store = PostgresStorage::connect(url).expect("connect");
    Arc::new(
        Lab::builder()
            .storage(Arc::new(store))
            .build()
            .expect("lab"),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run only for bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(cluster) = support::Cluster::durable() else {
        println!("fleet/propagation: skipped (no PostgreSQL server)");
        return;
    };
    let url = cluster.database("propagation");
    let writer = lab_on(&url);
    let reader = lab_on(&url);
    // 1 000 flags and experiments already stored, so a sync is not cheap by emptiness.
    for i in 0..1_000 {
        let new: NewFlag = serde_json::from_value(json!({
            "project_id": "p", "key": format!("f{i}"), "default_value": "0", "environment": "production"
        }))
        .expect("flag");
        writer.flags().create(new).expect("create");
    }
    let flag = writer
        .flags()
        .list("p")
        .expect("list")
        .into_iter()
        .find(|f| f.key.as_str() == "f0")
        .expect("f0");
    let id = flag.id.to_string();
    reader.sync().expect("sync");
    let _watcher = Watcher::start(
        &reader,
        WatchOptions::new().poll(Duration::from_millis(500)),
    )
    .expect("watch");
    let ctx = Context::new("u1");
    let mut version = writer.flags().get(&id).expect("get").version();
    let mut lat = Vec::with_capacity(WRITES);
    let mut end_to_end = Vec::with_capacity(WRITES);
    for i in 1..=WRITES {
        let value = i.to_string();
        let patch: FlagPatch =
            serde_json::from_value(json!({"default_value": value})).expect("patch");
        let t0 = Instant::now();
        version = writer
            .flags()
            .update(&id, version, patch)
            .expect("update")
            .version();
        let t1 = Instant::now();
        let want = json!(value);
        loop {
            if reader.evaluate("p", "production", "f0", &ctx).value() == &want {
                break;
            }
            assert!(
                t1.elapsed() < Duration::from_secs(30),
                "write {i} never arrived"
            );
            std::hint::spin_loop();
        }
        lat.push(t1.elapsed());
        end_to_end.push(t0.elapsed());
    }
    report("committed -> served by the other lab", &mut lat);
    report("write called -> served by the other lab", &mut end_to_end);
}

fn report(what: &str, lat: &mut [Duration]) {
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "fleet/propagation ({WRITES} writes, {what}): p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        q(0.50),
        q(0.90),
        q(0.99),
        lat[lat.len() - 1]
    );
}
