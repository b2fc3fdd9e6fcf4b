//! Storage benchmarks: batched event ingestion into `SqliteStorage` (a temp file, WAL,
//! `synchronous=FULL`, one transaction per batch), directly through `Storage::apply_events`
//! and through `Lab::track_batch`.
//!
//! Run: `cargo bench --features sqlite --bench storage -- --warm-up-time 1 --measurement-time 3`

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

fn storage_batches(c: &mut Criterion) {
    let path = temp_db("storage");
    let store = SqliteStorage::open(&path).expect("open");
    let units: Vec<String> = (0..POOL).map(|i| format!("usr_{i:08}")).collect();
    enrol(&store, "exp_bench", &units);

    let mut group = c.benchmark_group("storage/sqlite_apply_events");
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
            enrol(&store, "exp_bench", &fresh);
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
                .map(|(u, id)| UnitEvent {
                    experiment: "exp_bench",
                    unit: u,
                    event_id: Some(id),
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
                })
                .collect();
            black_box(store.apply_events(&batch).expect("apply"))
        });
    });
    group.finish();
    drop(store);
    remove_db(&path);
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
