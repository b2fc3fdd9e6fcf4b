//! GrowthBook evaluation (feature `growthbook`):
//!
//! * `growthbook/eval_feature/experiment_rule` — a feature whose rule is an experiment (3
//!   variations, weights, coverage, a condition, hash version 2), 1 024 users cycling;
//! * `growthbook/eval_feature/force_rule_with_condition` — a force rule with a condition and a
//!   50% rollout;
//! * `growthbook/load/1000_features` — compiling a payload of 1 000 features (conditions parsed).
//!
//! Run with `cargo bench --features growthbook --bench growthbook`.

use std::hint::black_box;

use abkit::growthbook::{Features, GbContext};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

const USERS: usize = 1_024;

fn payload(extra: usize) -> Value {
    let mut features = serde_json::Map::new();
    features.insert(
        "exp".into(),
        json!({"defaultValue": "control", "rules": [
            {"key": "exp-1", "variations": ["control", "red", "blue"], "weights": [0.34, 0.33, 0.33],
             "coverage": 0.9, "hashVersion": 2, "condition": {"country": {"$in": ["DE", "FR"]}},
             "meta": [{"key": "c"}, {"key": "r"}, {"key": "b"}]}]}),
    );
    features.insert(
        "force".into(),
        json!({"defaultValue": false, "rules": [
            {"id": "pro", "condition": {"plan": "pro"}, "force": true, "coverage": 0.5}]}),
    );
    for i in 0..extra {
        features.insert(
            format!("feature_{i}"),
            json!({"defaultValue": i, "rules": [
                {"condition": {"country": {"$in": ["DE", "FR"]}, "version": {"$vgte": "1.2.0"}}, "force": i + 1},
                {"key": format!("exp_{i}"), "variations": [0, 1], "coverage": 0.5}]}),
        );
    }
    Value::Object(features)
}

// Bench setup from constant, valid input: a failure here is a bug in this file.
#[allow(clippy::expect_used)]
fn bench(c: &mut Criterion) {
    let features = Features::new(&payload(0), None).expect("payload");
    let contexts: Vec<GbContext> = (0..USERS)
        .map(|i| {
            let country = ["DE", "US", "FR"][i % 3];
            let plan = if i % 2 == 0 { "pro" } else { "free" };
            GbContext {
                attributes: json!({"id": format!("user-{i:08}"), "country": country, "plan": plan}),
                ..GbContext::default()
            }
        })
        .collect();
    let mut g = c.benchmark_group("growthbook");
    let mut i = 0usize;
    g.bench_function("eval_feature/experiment_rule", |b| {
        b.iter(|| {
            i = (i + 1) % USERS;
            black_box(features.eval_feature(black_box("exp"), &contexts[i]).on)
        });
    });
    g.bench_function("eval_feature/force_rule_with_condition", |b| {
        b.iter(|| {
            i = (i + 1) % USERS;
            black_box(features.eval_feature(black_box("force"), &contexts[i]).on)
        });
    });
    let big = payload(1_000);
    g.sample_size(20);
    g.bench_function("load/1000_features", |b| {
        b.iter(|| black_box(Features::new(black_box(&big), None).expect("payload")));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
