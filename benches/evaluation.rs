//! Flag evaluation benchmarks.
//!
//! * `evaluation/evaluate/{bool,number,string}`: one flag with one targeting condition and a
//!   running experiment attached, evaluated for a cycling set of 1 024 contexts.
//! * `evaluation/evaluate_all/100_flags`: every flag of a project of 100.
//! * `evaluation/threads/{1,2,8}`: the same single-flag evaluation spread over N threads at once;
//!   the time is per evaluation (wall time / total evaluations), so flat or falling figures mean
//!   readers do not contend.
//! * `targeting/matches/...`: the condition language alone.

use std::hint::black_box;
use std::time::{Duration, Instant};

use abkit::{Condition, Context, Lab, NewExperiment, NewFlag};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

const CONTEXTS: usize = 1_024;

fn contexts() -> Vec<Context> {
    (0..CONTEXTS)
        .map(|i| {
            Context::new(format!("user-{i:08}"))
                .with_attribute("country", ["DE", "FR", "US", "GB"][i % 4])
                .with_attribute("plan", if i % 2 == 0 { "pro" } else { "free" })
                .with_attribute("appVersion", "2.3.1")
        })
        .collect()
}

/// A lab with one flag per type (`b`, `n`, `s`), each with one condition rule and a running
/// experiment, plus `extra` more string flags.
// Bench setup from constant, valid input: a failure here is a bug in this file.
#[allow(clippy::expect_used)]
fn lab(extra: usize) -> Lab {
    let lab = Lab::new();
    let mut specs = vec![
        (
            "b".to_owned(),
            "bool",
            json!(false),
            [json!(true), json!(false)],
        ),
        ("n".to_owned(), "number", json!(1), [json!(2), json!(3)]),
        (
            "s".to_owned(),
            "string",
            json!("off"),
            [json!("a"), json!("b")],
        ),
    ];
    for i in 0..extra {
        specs.push((
            format!("flag_{i}"),
            "string",
            json!("off"),
            [json!("a"), json!("b")],
        ));
    }
    for (key, ty, default, values) in specs {
        let new: NewFlag = serde_json::from_value(json!({
            "project_id": "p", "key": key, "flag_type": ty, "default_value": default, "enabled": true,
            "rules": [{"id": "r1", "condition": {"country": {"$in": ["DE", "FR"]}}, "value": values[0]}]
        }))
        .expect("flag");
        let flag = lab.flags().create(new).expect("created");
        let exp: NewExperiment = serde_json::from_value(json!({
            "name": "exp", "environment": "production", "traffic": 0.5,
            "variants": [{"key": "a", "value": values[0], "percentage": 50}, {"key": "b", "value": values[1], "percentage": 50}]
        }))
        .expect("experiment");
        let e = lab
            .flags()
            .create_experiment(flag.id.as_str(), exp)
            .expect("attached");
        lab.experiments().start(e.id().as_str()).expect("started");
    }
    lab
}

fn evaluate(c: &mut Criterion) {
    let lab = lab(0);
    let ctxs = contexts();
    let mut group = c.benchmark_group("evaluation");
    group.throughput(Throughput::Elements(1));
    group.bench_function("evaluate/bool", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & (CONTEXTS - 1);
            black_box(
                lab.evaluate("p", "production", "b", black_box(&ctxs[i]))
                    .bool_or(false),
            )
        });
    });
    group.bench_function("evaluate/number", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & (CONTEXTS - 1);
            black_box(
                lab.evaluate("p", "production", "n", black_box(&ctxs[i]))
                    .f64_or(0.0),
            )
        });
    });
    group.bench_function("evaluate/string", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & (CONTEXTS - 1);
            black_box(
                lab.evaluate("p", "production", "s", black_box(&ctxs[i]))
                    .str_or("")
                    .len(),
            )
        });
    });
    group.finish();

    let big = lab_with_100();
    let mut group = c.benchmark_group("evaluation");
    group.throughput(Throughput::Elements(100));
    group.bench_function("evaluate_all/100_flags", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & (CONTEXTS - 1);
            black_box(
                big.evaluate_all("p", "production", black_box(&ctxs[i]))
                    .len(),
            )
        });
    });
    group.finish();
}

fn lab_with_100() -> Lab {
    lab(97)
}

fn threads(c: &mut Criterion) {
    let lab = lab(0);
    let ctxs = contexts();
    let mut group = c.benchmark_group("evaluation");
    group.throughput(Throughput::Elements(1));
    for n in [1_usize, 2, 8] {
        group.bench_function(BenchmarkId::new("threads", n), |b| {
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(n as u64);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..n {
                        let (lab, ctxs) = (&lab, &ctxs);
                        s.spawn(move || {
                            let mut acc = 0usize;
                            for k in 0..per_thread {
                                let ctx = &ctxs[(k as usize + t * 131) & (CONTEXTS - 1)];
                                acc += usize::from(
                                    lab.evaluate("p", "production", "b", ctx).bool_or(false),
                                );
                            }
                            black_box(acc)
                        });
                    }
                });
                // Per evaluation: wall time over the evaluations all threads did.
                let total = per_thread * n as u64;
                let elapsed = start.elapsed();
                Duration::from_secs_f64(elapsed.as_secs_f64() * iters as f64 / total as f64)
            });
        });
    }
    group.finish();
}

// Bench setup from constant, valid input: a failure here is a bug in this file.
#[allow(clippy::expect_used)]
fn targeting(c: &mut Criterion) {
    let ctxs = contexts();
    let conditions = [
        ("eq", json!({"plan": "pro"})),
        ("in2", json!({"country": {"$in": ["DE", "FR"]}})),
        ("in3", json!({"country": {"$in": ["DE", "FR", "AT"]}})),
        (
            "in3_eq_vgte",
            json!({"country": {"$in": ["DE", "FR", "AT"]}, "plan": "pro", "appVersion": {"$vgte": "2.0.0"}}),
        ),
        ("regex", json!({"country": {"$regex": "^(D|F)"}})),
    ];
    let mut group = c.benchmark_group("targeting");
    group.throughput(Throughput::Elements(1));
    for (name, json) in conditions {
        let cond = Condition::parse(&json).expect("valid");
        group.bench_function(BenchmarkId::new("matches", name), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (CONTEXTS - 1);
                black_box(cond.matches(black_box(ctxs[i].attributes())))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, evaluate, threads, targeting);
criterion_main!(benches);
