//! Event-plane benchmarks.
//!
//! * `tracking/conversion/10k_units`: the same with a cache-resident working set.
//! * `tracking/conversion/1M_units`: `Lab::track` of a conversion against 1 000 000 enrolled
//!   units (each iteration the next unit; after the first pass every event is a de-duplicated
//!   repeat, which is the common case for retried or repeated goals).
//! * `tracking/conversion/1M_units_hot_event`: the same, with the event's own strings in cache
//!   (copied from a contiguous buffer into one reused event), as a just-parsed request's are.
//! * `tracking/conversion_batch_1000/1M_units`: the same conversions through `Lab::track_batch`,
//!   1 000 per call (time per batch; criterion also prints events per second).
//! * `tracking/apply_event/1M_units`: the same through `Storage::apply_event` alone.
//! * `tracking/floor/dependent_load_128MB`: the machine's memory latency, the floor of any
//!   single lookup in a table of that size (see `floor`).
//! * `tracking/event_id/retry_among_80k_ids_one_unit`: `MemoryStorage::apply_event` of a retried
//!   event id on a unit that has 80 000 (the de-duplication look-up).
//! * `tracking/ingest_1000/memory`: 1 000 conversions for enrolled units (10 000 of them)
//!   enqueued on an `Ingestor` (`try_track`, each event cloned as a caller would build it),
//!   then `flush`: time per 1 000, enqueue to written, on `Lab::new()`'s memory store.
//! * `tracking/threads/{1,2}`: `Lab::track` from N threads at once on disjoint units; time per
//!   event (wall time / events), so equal figures mean the store does not serialise threads.

use std::hint::black_box;
use std::time::{Duration, Instant};

use abkit::storage::{Aggregation, MetricSlot, UnitEvent, UnitEventKind};
use std::sync::Arc;

use abkit::{Context, IngestOptions, Ingestor, Lab, NewExperiment, Timestamp, TrackEvent};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const UNITS: usize = 1_000_000;

// Bench setup from constant, valid input: a failure here is a bug in this file.
#[allow(clippy::expect_used)]
fn setup() -> (Lab, String, Vec<TrackEvent>) {
    setup_with(UNITS)
}

// Bench setup from constant, valid input: a failure here is a bug in this file.
#[allow(clippy::expect_used)]
fn setup_with(units: usize) -> (Lab, String, Vec<TrackEvent>) {
    let lab = Lab::new();
    let new: NewExperiment = serde_json::from_value(serde_json::json!({
        "name": "bench", "variants": [{"id": "a"}, {"id": "b"}], "metrics": ["conversion"]
    }))
    .expect("valid");
    let e = lab.experiments().create(new).expect("created");
    let id = e.id().to_string();
    lab.experiments().start(&id).expect("started");
    let events: Vec<TrackEvent> = (0..units)
        .map(|i| {
            let unit = format!("user-{i:09}");
            lab.expose(&id, &Context::new(unit.as_str()))
                .expect("exposed");
            TrackEvent::conversion(&id, &unit).at(Timestamp::from_unix_millis(i64::MAX / 4))
        })
        .collect();
    (lab, id, events)
}

fn single(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracking");
    group.throughput(Throughput::Elements(1));
    {
        // The same work with a working set that stays in cache: the fixed cost of an event.
        let (lab, _, events) = setup_with(10_000);
        group.bench_function("conversion/10k_units", |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % events.len();
                black_box(lab.events().track(black_box(&events[i])).ok())
            });
        });
    }
    let (lab, id, events) = setup();
    group.bench_function("conversion/1M_units", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % UNITS;
            black_box(lab.events().track(black_box(&events[i])).ok())
        });
    });
    // The same events, but each one's strings freshly in cache (as a just-parsed request's
    // are): the unit ids sit in one contiguous buffer and are copied into a reused event.
    let arena: Vec<u8> = events.iter().flat_map(|e| e.unit_id.bytes()).collect();
    let width = events.first().map_or(0, |e| e.unit_id.len());
    let mut hot = events.first().cloned().unwrap_or_default();
    group.bench_function("conversion/1M_units_hot_event", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % UNITS;
            hot.unit_id.clear();
            hot.unit_id
                .push_str(std::str::from_utf8(&arena[i * width..(i + 1) * width]).unwrap_or(""));
            black_box(lab.events().track(black_box(&hot)).ok())
        });
    });
    // Batched ingestion: 1 000 conversions per `track_batch` call (one storage call, each shard
    // locked once per batch), the rate a host that buffers events gets.
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("conversion_batch_1000/1M_units", |b| {
        let mut start = 0;
        b.iter(|| {
            start = (start + 1_000) % UNITS;
            let end = (start + 1_000).min(UNITS);
            black_box(
                lab.events()
                    .track_batch(black_box(&events[start..end]))
                    .map(|o| o.len())
                    .ok(),
            )
        });
    });
    group.throughput(Throughput::Elements(1));
    let slot = MetricSlot {
        index: 0,
        aggregation: Aggregation::Once,
        cap: None,
        window_millis: None,
    };
    let storage = lab.storage();
    group.bench_function("apply_event/1M_units", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % UNITS;
            let e = UnitEvent {
                experiment: &id,
                unit: &events[i].unit_id,
                event_id: None,
                at: Timestamp::from_unix_millis(i64::MAX / 4),
                kind: UnitEventKind::Metric {
                    slot,
                    value: 1.0,
                    denominator: 0.0,
                },
            };
            black_box(storage.apply_event(black_box(&e)).ok())
        });
    });
    group.finish();

    let mut group = c.benchmark_group("tracking");
    group.throughput(Throughput::Elements(1));
    for n in [1_usize, 2] {
        group.bench_function(BenchmarkId::new("threads", n), |b| {
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(n as u64) as usize;
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..n {
                        let (lab, events) = (&lab, &events);
                        s.spawn(move || {
                            let share = UNITS / n;
                            for k in 0..per_thread {
                                let e = &events[t * share + k % share];
                                black_box(lab.events().track(e).ok());
                            }
                        });
                    }
                });
                let total = (per_thread * n) as f64;
                Duration::from_secs_f64(start.elapsed().as_secs_f64() * iters as f64 / total)
            });
        });
    }
    group.finish();
}

/// The machine's floor for any one-at-a-time lookup in a table of this size: one dependent
/// load from a random cache line of a 128 MB array (the size of the memory store's unit table
/// at 1M units), chased through a random cycle so no load can start before the last ends.
fn floor(c: &mut Criterion) {
    const LINES: usize = 128 << 20 >> 6;
    // A random cyclic permutation (Sattolo's algorithm, a fixed-seed xorshift).
    let mut next: Vec<usize> = (0..LINES).collect();
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    for i in (1..LINES).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        next.swap(i, (x % i as u64) as usize);
    }
    let mut lines = vec![[0usize; 8]; LINES];
    for (i, &n) in next.iter().enumerate() {
        lines[i][0] = n;
    }
    drop(next);
    let mut group = c.benchmark_group("tracking");
    group.throughput(Throughput::Elements(1));
    group.bench_function("floor/dependent_load_128MB", |b| {
        let mut at = 0;
        b.iter(|| {
            at = lines[at][0];
            black_box(at)
        });
    });
    group.finish();
}

/// The event-id check on a unit with many ids: a retry of one of 80 000 ids (issue 12 item 8:
/// a scan of the unit's ids took 118–126 µs here).
#[allow(clippy::expect_used)] // a benchmark: setup failures should abort loudly
fn event_ids(c: &mut Criterion) {
    use abkit::storage::{EventOutcome, MemoryStorage, Storage};
    let store = MemoryStorage::new();
    let slot = MetricSlot {
        index: 0,
        aggregation: Aggregation::Sum,
        cap: None,
        window_millis: None,
    };
    let event = |id: Option<&'static str>, kind| UnitEvent {
        experiment: "exp",
        unit: "heavy",
        event_id: id,
        at: Timestamp::from_unix_millis(1),
        kind,
    };
    let value = UnitEventKind::Metric {
        slot,
        value: 1.0,
        denominator: 0.0,
    };
    store
        .apply_event(&event(
            None,
            UnitEventKind::Exposure {
                variant: 0,
                excluded: false,
            },
        ))
        .expect("enrol");
    let ids: Vec<String> = (0..80_000).map(|i| format!("order-{i}")).collect();
    for chunk in ids.chunks(10_000) {
        let batch: Vec<UnitEvent<'_>> = chunk
            .iter()
            .map(|id| UnitEvent {
                event_id: Some(id),
                ..event(None, value)
            })
            .collect();
        store.apply_events(&batch).expect("fill");
    }
    let mut group = c.benchmark_group("tracking/event_id");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("retry_among_80k_ids_one_unit", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            let e = UnitEvent {
                event_id: ids.get(i).map(String::as_str),
                ..event(None, value)
            };
            let out = store.apply_event(black_box(&e)).expect("apply");
            debug_assert_eq!(out, EventOutcome::DuplicateEventId);
            out
        });
    });
    group.finish();
}

/// Buffered ingestion: enqueue 1 000 conversions, then flush (the flusher thread writes them in
/// one batch of `max_batch` 1 000).
#[allow(clippy::expect_used)] // a benchmark: setup failures should abort loudly
fn ingest(c: &mut Criterion) {
    let (lab, _, events) = setup_with(10_000);
    let ingest = Ingestor::start(Arc::new(lab), IngestOptions::default()).expect("started");
    let mut group = c.benchmark_group("tracking");
    group.throughput(Throughput::Elements(1_000));
    let mut start = 0;
    group.bench_function("ingest_1000/memory", |b| {
        b.iter(|| {
            start = (start + 1_000) % events.len();
            for e in &events[start..start + 1_000] {
                ingest.try_track(e.clone()).expect("room");
            }
            black_box(ingest.flush().expect("flushed").written)
        });
    });
    group.finish();
    ingest.shutdown().expect("shut down");
}

criterion_group!(benches, single, floor, event_ids, ingest);
criterion_main!(benches);
