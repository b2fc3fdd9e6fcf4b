//! Configuration write benchmarks: a write recompiles only what it changed.
//!
//! * `control/create_flag/{1000,10000}_existing`: one `create_flag` into a lab that already
//!   has N flags, each with a running experiment attached (the flag is deleted again outside
//!   the timing, so N stays fixed).
//! * `control/setup/1000_flags_with_experiments`: from an empty lab, 1 000 flags, each with an
//!   experiment attached and started (3 000 writes).
//! * `control/tick/10000_nothing_due`: `Lab::tick(now)` over 10 000 experiments (drafts
//!   scheduled to start later, running ones scheduled to stop later, running bandits whose next
//!   update is later, plain drafts) when nothing is due (issue 18: target ≤ 10 ms).

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

// Bench setup from constant, valid input: a failure here is a bug in this file.
#[allow(clippy::expect_used)]
fn tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("control");
    group.sample_size(20);
    let lab = Lab::new();
    let t0 = abkit::Clock::now(&**lab.clock());
    let later = t0.add_millis(2 * 86_400_000);
    for i in 0..10_000_usize {
        let mut body = json!({
            "name": format!("exp {i}"),
            "variants": [{"id": "a"}, {"id": "b"}]
        });
        match i % 4 {
            0 => body["startAt"] = json!(later.to_string()),
            1 => body["stopAt"] = json!(later.to_string()),
            2 => body["type"] = json!("bandit"),
            _ => {}
        }
        let new: NewExperiment = serde_json::from_value(body).expect("experiment");
        let e = lab.experiments().create(new).expect("created");
        if i % 4 == 1 || i % 4 == 2 {
            lab.experiments().start(e.id().as_str()).expect("started");
        }
    }
    // An hour on: nothing is due (bandits update daily, schedules are two days out).
    let now = t0.add_millis(3_600_000);
    group.bench_function("tick/10000_nothing_due", |b| {
        b.iter(|| {
            let r = lab.tick(black_box(now)).expect("tick");
            assert!(r.is_empty());
            r
        });
    });
    group.finish();
}

criterion_group!(benches, create_flag, setup, tick);
criterion_main!(benches);
