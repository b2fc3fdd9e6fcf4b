//! Storage benchmarks: batched event ingestion into `SqliteStorage` (a temp file, WAL,
//! `synchronous=FULL`, one transaction per batch), directly through `Storage::apply_events`
//! and through `Lab::track_batch`.
//!
//! With the `postgres` feature, the same batches go into `PostgresStorage` on a throwaway
//! cluster the bench starts (`fsync=on`, `synchronous_commit=on`: a commit waits for the disk),
//! and 1, 2 and 4 concurrent writers (each on its own experiment) are measured on both stores.
//!
//! Run: `cargo bench --features sqlite,postgres --bench storage -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::expect_used)] // a benchmark: setup failures should abort loudly

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use abkit::storage::{Aggregation, MetricSlot, SqliteStorage, Storage, UnitEvent, UnitEventKind};
use abkit::{Lab, NewExperiment, NewVariant, Timestamp, TrackEvent};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 1_000;
/// Units enrolled before measuring; batches cycle over them.
const POOL: usize = 50_000;

fn temp_db(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("abkit-bench-{name}-{}.db", std::process::id()));
    remove_db(&p);
    p
}

fn remove_db(p: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

/// Enrols `units` in `experiment` (alternating two variants), in batches of 10 000.
fn enrol(s: &dyn Storage, experiment: &str, units: &[String]) {
    for chunk in units.chunks(10_000) {
        let batch: Vec<UnitEvent<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(i, u)| UnitEvent {
                experiment,
                unit: u,
                event_id: None,
                at: at(0),
                kind: UnitEventKind::Exposure {
                    variant: (i % 2) as u32,
                    excluded: false,
                },
            })
            .collect();
        s.apply_events(&batch).expect("enrol");
    }
}

#[cfg(feature = "postgres")]
#[path = "../tests/support/postgres.rs"]
mod support;

fn storage_batches(c: &mut Criterion) {
    let path = temp_db("storage");
    let store = SqliteStorage::open(&path).expect("open");
    apply_events_group(c, "storage/sqlite_apply_events", &store);
    writers_group(c, "storage/sqlite_writers", &store);
    drop(store);
    remove_db(&path);
    #[cfg(feature = "postgres")]
    if let Some(cluster) = support::Cluster::durable() {
        let store =
            abkit::storage::PostgresStorage::connect(&cluster.database("bench")).expect("connect");
        apply_events_group(c, "storage/postgres_apply_events", &store);
        writers_group(c, "storage/postgres_writers", &store);
    }
}

fn value_event<'a>(experiment: &'a str, unit: &'a str, id: Option<&'a str>) -> UnitEvent<'a> {
    UnitEvent {
        experiment,
        unit,
        event_id: id,
        at: at(1),
        kind: UnitEventKind::Metric {
            slot: MetricSlot {
                index: 0,
                aggregation: Aggregation::Sum,
                cap: None,
                window_millis: None,
            },
            value: 2.5,
            denominator: 0.0,
        },
    }
}

/// `n` threads, each applying one 1 000-event batch (values with event ids) to its own
/// experiment per iteration: the store's throughput under concurrent writers.
fn writers_group(c: &mut Criterion, name: &str, store: &dyn Storage) {
    let mut group = c.benchmark_group(name);
    let units: Vec<String> = (0..BATCH).map(|i| format!("w_{i:05}")).collect();
    for n in [1usize, 2, 4] {
        let exps: Vec<String> = (0..n).map(|t| format!("exp_writers_{n}_{t}")).collect();
        for e in &exps {
            enrol(store, e, &units);
        }
        group.throughput(Throughput::Elements((n * BATCH) as u64));
        let mut round = 0usize;
        group.bench_function(n.to_string(), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for e in &exps {
                        let units = &units;
                        let first = round;
                        s.spawn(move || {
                            for k in 0..iters as usize {
                                let ids: Vec<String> =
                                    (0..BATCH).map(|i| format!("{}-{i}", first + k)).collect();
                                let batch: Vec<UnitEvent<'_>> = units
                                    .iter()
                                    .zip(&ids)
                                    .map(|(u, id)| value_event(e, u, Some(id)))
                                    .collect();
                                black_box(store.apply_events(&batch).expect("apply"));
                            }
                        });
                    }
                });
                round += iters as usize;
                start.elapsed()
            });
        });
    }
    group.finish();
}

fn apply_events_group(c: &mut Criterion, name: &str, store: &dyn Storage) {
    let units: Vec<String> = (0..POOL).map(|i| format!("usr_{i:08}")).collect();
    enrol(store, "exp_bench", &units);

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BATCH as u64));

    // First-time conversions of pre-enrolled units: every event is recorded (a unit-state
    // write). Each measurement enrols fresh units first, untimed, so none is a duplicate.
    let mut round = 0usize;
    group.bench_function("conversions_1000", |b| {
        b.iter_custom(|iters| {
            round += 1;
            let fresh: Vec<String> = (0..iters as usize * BATCH)
                .map(|i| format!("conv_{round}_{i:08}"))
                .collect();
            enrol(store, "exp_bench", &fresh);
            let t = Instant::now();
            for chunk in fresh.chunks(BATCH) {
                let batch: Vec<UnitEvent<'_>> = chunk
                    .iter()
                    .map(|u| UnitEvent {
                        experiment: "exp_bench",
                        unit: u,
                        event_id: None,
                        at: at(1),
                        kind: UnitEventKind::Metric {
                            slot: MetricSlot {
                                index: 0,
                                aggregation: Aggregation::Once,
                                cap: None,
                                window_millis: None,
                            },
                            value: 1.0,
                            denominator: 0.0,
                        },
                    })
                    .collect();
                black_box(store.apply_events(&batch).expect("apply"));
            }
            t.elapsed()
        });
    });

    // Values with event ids: every event is recorded and its id remembered.
    let ids: Vec<String> = (0..BATCH).map(|i| format!("evt_{i:04}")).collect();
    let mut m = 0usize;
    group.bench_function("values_with_event_ids_1000", |b| {
        b.iter(|| {
            let start = (m * BATCH) % POOL;
            let pass = m * BATCH / POOL;
            m += 1;
            let pass_ids: Vec<String> = ids.iter().map(|id| format!("{id}-{pass}")).collect();
            let batch: Vec<UnitEvent<'_>> = units[start..start + BATCH]
                .iter()
                .zip(&pass_ids)
                .map(|(u, id)| value_event("exp_bench", u, Some(id)))
                .collect();
            black_box(store.apply_events(&batch).expect("apply"))
        });
    });
    group.finish();
}

fn lab_batches(c: &mut Criterion) {
    let path = temp_db("lab");
    let store = Arc::new(SqliteStorage::open(&path).expect("open"));
    let lab = Lab::builder().storage(store.clone()).build().expect("lab");
    let exp = lab
        .experiments()
        .create(NewExperiment {
            name: "Storage bench".into(),
            variants: vec![
                NewVariant::named("control", "Control"),
                NewVariant::named("treatment", "Treatment"),
            ],
            metrics: vec!["conversion".into(), "watchTime".into()],
            ..NewExperiment::default()
        })
        .expect("create");
    let id = exp.id().as_str().to_owned();
    lab.experiments().start(&id).expect("start");
    let units: Vec<String> = (0..POOL).map(|i| format!("usr_{i:08}")).collect();
    enrol(&*store, &id, &units);

    let mut group = c.benchmark_group("storage/sqlite_lab_track_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    // Mean-metric values: always recorded (conversions would turn into duplicates after one
    // pass over the pool).
    let mut n = 0usize;
    group.bench_function("values_1000", |b| {
        b.iter(|| {
            let start = (n * BATCH) % POOL;
            n += 1;
            let batch: Vec<TrackEvent> = units[start..start + BATCH]
                .iter()
                .map(|u| TrackEvent::value(&id, u, "watchTime", 3.0))
                .collect();
            black_box(lab.events().track_batch(&batch).expect("track"))
        });
    });
    group.finish();
    drop(lab);
    drop(store);
    remove_db(&path);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = storage_batches, lab_batches
}
criterion_main!(benches);
