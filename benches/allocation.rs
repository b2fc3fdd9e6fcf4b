//! Allocation benchmarks.
//!
//! Ids: `allocation/floor/{8,16,36}B` is the bare [`hash`] of a unit id (the floor: one
//! XXH3-64), and `allocation/allocator/{2,3,10}_variants/{8,16,36}B` is
//! [`Allocator::allocate`] at full traffic (two hashes and a search of the cumulative weights).
//! Every iteration takes the next id from a pre-built set of distinct ids, so no result can be
//! cached by the CPU's branch predictors or the compiler. Add further groups (for example
//! `allocation/assign/...`, a whole experiment decision) as functions in `criterion_group!`.

use std::hint::black_box;

use abkit::allocation::{Allocator, Traffic, Weight, Weights, hash};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// The unit id lengths measured: a short numeric id, a 16-byte id, a hyphenated UUID.
pub const UNIT_LENGTHS: [usize; 3] = [8, 16, 36];

/// How many distinct unit ids each benchmark cycles through (a power of two).
pub const UNIT_COUNT: usize = 1_024;

/// `n` distinct ASCII unit ids of exactly `len` bytes, deterministic across runs
/// (hex digits from a SplitMix64 sequence; 36-byte ids are UUID-shaped).
pub fn unit_ids(len: usize, n: usize) -> Vec<Vec<u8>> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut state: u64 = 0x0123_4567_89AB_CDEF;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let ids: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let mut bits = next();
            (0..len)
                .map(|i| {
                    if len == 36 && matches!(i, 8 | 13 | 18 | 23) {
                        return b'-';
                    }
                    if i % 16 == 15 {
                        bits = next();
                    }
                    let digit = HEX[(bits & 0xF) as usize];
                    bits >>= 4;
                    digit
                })
                .collect()
        })
        .collect();
    let distinct: std::collections::HashSet<&Vec<u8>> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        n,
        "unit ids of {len} bytes must be distinct"
    );
    ids
}

/// The weights of the `allocator` benchmarks: uneven splits over 2, 3 and 10 variants.
// Bench setup from constant, valid input: a failure here is a bug in this file.
#[allow(clippy::expect_used)]
pub fn bench_weights(variants: usize) -> Weights {
    let bp: &[u32] = match variants {
        2 => &[2_000, 8_000],
        3 => &[3_334, 3_333, 3_333],
        _ => &[500, 700, 800, 900, 1_000, 1_000, 1_100, 1_200, 1_300, 1_500],
    };
    Weights::new(
        bp.iter()
            .map(|&b| Weight::from_basis_points(b).expect("valid weight"))
            .collect(),
    )
    .expect("weights sum to 10000")
}

/// `allocation/floor/{len}B`: one XXH3-64 of the unit id, the cost floor of any allocation.
fn floor(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocation");
    group.throughput(Throughput::Elements(1));
    let seed = abkit::allocation::seed("bench_experiment");
    for len in UNIT_LENGTHS {
        let ids = unit_ids(len, UNIT_COUNT);
        group.bench_function(BenchmarkId::new("floor", format!("{len}B")), |b| {
            let mut i = 0_usize;
            b.iter(|| {
                i = (i + 1) & (UNIT_COUNT - 1);
                black_box(hash(black_box(&ids[i]), black_box(seed)))
            });
        });
    }
    group.finish();
}

/// `allocation/allocator/{k}_variants/{len}B`: `Allocator::allocate` at full traffic.
fn allocator(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocation");
    group.throughput(Throughput::Elements(1));
    for variants in [2_usize, 3, 10] {
        let allocator = Allocator::new("bench_experiment", Traffic::FULL, &bench_weights(variants));
        for len in UNIT_LENGTHS {
            let ids = unit_ids(len, UNIT_COUNT);
            let id = BenchmarkId::new(format!("allocator/{variants}_variants"), format!("{len}B"));
            group.bench_function(id, |b| {
                let mut i = 0_usize;
                b.iter(|| {
                    i = (i + 1) & (UNIT_COUNT - 1);
                    black_box(black_box(&allocator).allocate(black_box(&ids[i])))
                });
            });
        }
    }
    group.finish();
}

/// `allocation/assign/{k}_variants/{len}B` (and `assign_half_traffic/3_variants`, where the
/// traffic hash is needed too): a whole experiment decision
/// (`CompiledExperiment::assign`: status, unit id, overrides, targeting, traffic and variant
/// hashes) for a running experiment at full traffic with the same weights.
// Bench setup from constant, valid input: a failure here is a bug in this file.
#[allow(clippy::expect_used)]
fn assign(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocation");
    group.throughput(Throughput::Elements(1));
    let lab = abkit::Lab::new();
    for (variants, traffic) in [(2_usize, 1.0), (3, 1.0), (10, 1.0), (3, 0.5)] {
        let variant_list: Vec<serde_json::Value> = bench_weights(variants)
            .as_slice()
            .iter()
            .enumerate()
            .map(|(i, w)| serde_json::json!({"id": format!("v{i}"), "weight": w.basis_points()}))
            .collect();
        let new: abkit::NewExperiment = serde_json::from_value(serde_json::json!({
            "name": format!("bench {variants}"), "variants": variant_list, "traffic": traffic
        }))
        .expect("valid experiment");
        let e = lab.experiments().create(new).expect("created");
        lab.experiments().start(e.id().as_str()).expect("started");
        let compiled = lab.compiled_experiment(e.id().as_str()).expect("compiled");
        for len in UNIT_LENGTHS {
            let contexts: Vec<abkit::Context> = unit_ids(len, UNIT_COUNT)
                .into_iter()
                .map(|id| abkit::Context::new(String::from_utf8(id).expect("ascii")))
                .collect();
            let name = if traffic < 1.0 {
                format!("assign_half_traffic/{variants}_variants")
            } else {
                format!("assign/{variants}_variants")
            };
            let id = BenchmarkId::new(name, format!("{len}B"));
            group.bench_function(id, |b| {
                let mut i = 0_usize;
                b.iter(|| {
                    i = (i + 1) & (UNIT_COUNT - 1);
                    black_box(
                        black_box(&compiled)
                            .assign(black_box(&contexts[i]))
                            .variant_index(),
                    )
                });
            });
        }
    }
    group.finish();
}

/// The facade against the compiled experiment, same experiment, same 16-byte ids:
/// `allocation/compiled_assign/2_variants` is `CompiledExperiment::assign`;
/// `allocation/lab_assign/2_variants` is `Lab::assign` (snapshot guard, id lookup, decision);
/// `allocation/lab_assign_threads/{1,2}` is `Lab::assign` on N threads at once (time per
/// decision: wall time over all decisions, so half the time is twice the throughput).
// Bench setup from constant, valid input: a failure here is a bug in this file.
#[allow(clippy::expect_used)]
fn facade(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocation");
    group.throughput(Throughput::Elements(1));
    let lab = abkit::Lab::new();
    let new: abkit::NewExperiment = serde_json::from_value(serde_json::json!({
        "name": "facade", "variants": [{"id": "a"}, {"id": "b"}]
    }))
    .expect("valid experiment");
    let e = lab.experiments().create(new).expect("created");
    let id = e.id().to_string();
    lab.experiments().start(&id).expect("started");
    let compiled = lab.compiled_experiment(&id).expect("compiled");
    let contexts: Vec<abkit::Context> = unit_ids(16, UNIT_COUNT)
        .into_iter()
        .map(|id| abkit::Context::new(String::from_utf8(id).expect("ascii")))
        .collect();
    group.bench_function("compiled_assign/2_variants", |b| {
        let mut i = 0_usize;
        b.iter(|| {
            i = (i + 1) & (UNIT_COUNT - 1);
            black_box(
                black_box(&compiled)
                    .assign(black_box(&contexts[i]))
                    .variant_index(),
            )
        });
    });
    group.bench_function("lab_assign/2_variants", |b| {
        let mut i = 0_usize;
        b.iter(|| {
            i = (i + 1) & (UNIT_COUNT - 1);
            black_box(
                lab.assign(black_box(&id), black_box(&contexts[i]))
                    .map(|d| d.variant_index()),
            )
        });
    });
    for n in [1_usize, 2] {
        group.bench_function(BenchmarkId::new("lab_assign_threads", n), |b| {
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(n as u64);
                let start = std::time::Instant::now();
                std::thread::scope(|s| {
                    for t in 0..n {
                        let (lab, contexts, id) = (&lab, &contexts, id.as_str());
                        s.spawn(move || {
                            let mut acc = 0_u64;
                            for k in 0..per_thread {
                                let ctx = &contexts[(k as usize + t * 131) & (UNIT_COUNT - 1)];
                                if let Ok(d) = lab.assign(id, ctx) {
                                    acc += u64::from(d.variant_index().unwrap_or(0));
                                }
                            }
                            black_box(acc)
                        });
                    }
                });
                let total = per_thread * n as u64;
                let elapsed = start.elapsed();
                std::time::Duration::from_secs_f64(
                    elapsed.as_secs_f64() * iters as f64 / total as f64,
                )
            });
        });
    }
    group.finish();
}

criterion_group!(benches, floor, allocator, assign, facade);
criterion_main!(benches);
