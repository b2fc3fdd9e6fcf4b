//! Configuration write benchmarks: a write recompiles only what it changed.
//!
//! * `control/create_flag/{1000,10000}_existing`: one `create_flag` into a lab that already
//!   has N flags, each with a running experiment attached (the flag is deleted again outside
//!   the timing, so N stays fixed).
//! * `control/setup/1000_flags_with_experiments`: from an empty lab, 1 000 flags, each with an
//!   experiment attached and started (3 000 writes).

use std::hint::black_box;
use std::time::{Duration, Instant};

use abkit::{Lab, NewExperiment, NewFlag};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;

fn new_flag(key: &str) -> NewFlag {
    NewFlag {
        project_id: "p".into(),
        key: key.into(),
        default_value: json!("off"),
        enabled: true,
        ..NewFlag::default()
    }
}

// Bench setup from constant, valid input: a failure here is a bug in this file.
#[allow(clippy::expect_used)]
fn add_flags_with_experiments(lab: &Lab, from: usize, n: usize) {
    for i in from..from + n {
        let flag = lab
            .flags()
            .create(new_flag(&format!("flag_{i}")))
            .expect("flag");
        let exp: NewExperiment = serde_json::from_value(json!({
            "name": format!("exp {i}"),
            "variants": [{"id": "a", "value": "a"}, {"id": "b", "value": "b"}]
        }))
        .expect("experiment");
        let e = lab
            .flags()
            .create_experiment(flag.id.as_str(), exp)
            .expect("attached");
        lab.experiments().start(e.id().as_str()).expect("started");
    }
}

// Bench setup from constant, valid input: a failure here is a bug in this file.
#[allow(clippy::expect_used)]
fn create_flag(c: &mut Criterion) {
    let mut group = c.benchmark_group("control");
    group.sample_size(20);
    for existing in [1_000_usize, 10_000] {
        let lab = Lab::new();
        add_flags_with_experiments(&lab, 0, existing);
        group.bench_function(
            BenchmarkId::new("create_flag", format!("{existing}_existing")),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for k in 0..iters {
                        let start = Instant::now();
                        let f = lab
                            .flags()
                            .create(new_flag(&format!("bench_{k}")))
                            .expect("created");
                        total += start.elapsed();
                        lab.flags().delete(f.id.as_str()).expect("deleted");
                    }
                    total
                });
            },
        );
    }
    group.finish();
}

fn setup(c: &mut Criterion) {
    let mut group = c.benchmark_group("control");
    group.sample_size(10);
    group.bench_function("setup/1000_flags_with_experiments", |b| {
        b.iter(|| {
            let lab = Lab::new();
            add_flags_with_experiments(&lab, 0, 1_000);
            black_box(lab)
        });
    });
    group.finish();
}

criterion_group!(benches, create_flag, setup);
criterion_main!(benches);
