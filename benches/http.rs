//! The `http` feature's per-request overhead, in process (`tower::ServiceExt::oneshot` on the
//! router: routing, auth, body parsing, the handler, serialization; no socket), each next to
//! the bare work it wraps, in the same run:
//!
//! * `http/evaluate/100_flags` — `POST /api/v1/flags/evaluate` for a project of 100 flags, each
//!   with one targeting rule; `http/evaluate/bare` — `Lab::evaluate_all` + writing the same
//!   answer from the pre-encoded fragments (what the handler does); `http/evaluate/bare_serde` —
//!   the same answer through serde instead.
//! * `http/assign` — `POST /api/experiments/{id}/assign` on a running experiment (the exposure
//!   recorded on the blocking pool); `http/assign/bare` — `Lab::expose` for the same units.
//! * `http/health` — `GET /health`, the floor.
//!
//! Run with `cargo bench --features http --bench http`. Over a real socket, see BENCHMARKS.md's
//! `wrk` section.

use std::hint::black_box;
use std::sync::Arc;

use abkit::http::{Settings, router};
use abkit::{Context, Lab, NewExperiment, NewFlag};
use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tower::ServiceExt;

const TOKEN: &str = "bench-admin-token";
const USERS: usize = 1_024;

// Bench setup from constant, valid input: a failure here is a bug in this file.
#[allow(clippy::expect_used)]
fn lab() -> (Arc<Lab>, String) {
    let lab = Lab::new();
    for i in 0..100 {
        let new: NewFlag = serde_json::from_value(json!({
            "project_id": "p", "key": format!("flag_{i}"), "flag_type": "string",
            "default_value": "off", "enabled": true,
            "rules": [{"id": format!("r{i}"), "condition": {"country": {"$in": ["DE", "FR"]}}, "value": "on"}]
        }))
        .expect("flag");
        lab.flags().create(new).expect("create flag");
    }
    let exp: NewExperiment = serde_json::from_value(json!({
        "name": "onboarding",
        "variants": [{"name": "Control", "splitPercentage": 50, "flowId": "flow_a"},
                     {"name": "Detailed", "splitPercentage": 50, "flowId": "flow_b"}]
    }))
    .expect("experiment");
    let id = lab
        .experiments()
        .create(exp)
        .expect("create")
        .id()
        .to_string();
    lab.experiments().start(&id).expect("start");
    (Arc::new(lab), id)
}

#[allow(clippy::expect_used)]
fn request(method: &str, path: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request")
}

#[allow(clippy::expect_used)]
fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (lab, id) = lab();
    let app = router(Arc::clone(&lab), Settings::new(Some(TOKEN.into())));
    let bodies: Vec<Vec<u8>> = (0..USERS)
        .map(|i| {
            let country = ["DE", "US"][i % 2];
            json!({"project_id": "p", "environment": "production",
                   "context": {"user_id": format!("user-{i:08}"), "country": country}})
            .to_string()
            .into_bytes()
        })
        .collect();
    let contexts: Vec<Context> = (0..USERS)
        .map(|i| {
            Context::new(format!("user-{i:08}")).with_attribute("country", ["DE", "US"][i % 2])
        })
        .collect();
    let assign_path = format!("/api/experiments/{id}/assign");
    let assign_bodies: Vec<Vec<u8>> = (0..USERS)
        .map(|i| {
            json!({"userId": format!("user-{i:08}")})
                .to_string()
                .into_bytes()
        })
        .collect();

    let mut g = c.benchmark_group("http");
    let mut i = 0usize;
    g.bench_function("evaluate/100_flags", |b| {
        b.iter(|| {
            i = (i + 1) % USERS;
            let req = request("POST", "/api/v1/flags/evaluate", bodies[i].clone());
            rt.block_on(async {
                let res = app.clone().oneshot(req).await.expect("infallible");
                assert!(res.status().is_success());
                black_box(
                    axum::body::to_bytes(res.into_body(), usize::MAX)
                        .await
                        .expect("body"),
                )
            })
        });
    });
    g.bench_function("evaluate/bare", |b| {
        b.iter(|| {
            i = (i + 1) % USERS;
            let all = lab.evaluate_all("p", "production", black_box(&contexts[i]));
            let mut out = Vec::with_capacity(64 * all.len() + 16);
            abkit::wire::flag::EvaluateResponse(&all).write_json(&mut out);
            black_box(out)
        });
    });
    g.bench_function("evaluate/bare_serde", |b| {
        b.iter(|| {
            i = (i + 1) % USERS;
            let all = lab.evaluate_all("p", "production", black_box(&contexts[i]));
            black_box(serde_json::to_vec(&abkit::wire::flag::EvaluateResponse(&all)).expect("json"))
        });
    });
    g.bench_function("assign", |b| {
        b.iter(|| {
            i = (i + 1) % USERS;
            let req = request("POST", &assign_path, assign_bodies[i].clone());
            rt.block_on(async {
                let res = app.clone().oneshot(req).await.expect("infallible");
                assert!(res.status().is_success());
                black_box(
                    axum::body::to_bytes(res.into_body(), usize::MAX)
                        .await
                        .expect("body"),
                )
            })
        });
    });
    g.bench_function("assign/bare", |b| {
        b.iter(|| {
            i = (i + 1) % USERS;
            black_box(lab.expose(&id, black_box(&contexts[i])).expect("expose"))
        });
    });
    g.bench_function("health", |b| {
        b.iter(|| {
            let req = request("GET", "/health", Vec::new());
            rt.block_on(async {
                let res = app.clone().oneshot(req).await.expect("infallible");
                black_box(
                    axum::body::to_bytes(res.into_body(), usize::MAX)
                        .await
                        .expect("body"),
                )
            })
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
