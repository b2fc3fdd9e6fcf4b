//! The decision path allocates nothing: `assign` and `evaluate` (bool, number and string flags,
//! with a condition and a running experiment) are run under a counting global allocator.
//!
//! A `harness = false` test: one thread, so the global count is this code's alone.

// A `GlobalAlloc` impl is unsafe by definition; it only forwards to the system allocator.
#![allow(unsafe_code, clippy::print_stdout, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use abkit::{Context, Lab, NewExperiment, NewFlag};
use serde_json::json;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst)
}

fn main() {
    let lab = Lab::new();
    let mut ids = Vec::new();
    for n in [2usize, 3, 10] {
        let variants: Vec<_> = (0..n).map(|i| json!({"id": format!("v{i}")})).collect();
        let new: NewExperiment = serde_json::from_value(json!({
            "name": format!("{n} variants"), "traffic": 0.8, "variants": variants,
            "targeting": {"country": {"$in": ["DE", "FR"]}, "version": {"$vgte": "1.2.0"}},
            "overrides": {"qa": "v1"}
        }))
        .unwrap();
        let e = lab.experiments().create(new).unwrap();
        lab.experiments().start(e.id().as_str()).unwrap();
        ids.push(e.id().to_string());
    }
    for (key, ty, default, values) in [
        ("b", "bool", json!(false), [json!(true), json!(false)]),
        ("n", "number", json!(1), [json!(2), json!(3)]),
        ("s", "string", json!("off"), [json!("a"), json!("b")]),
    ] {
        let flag = lab
            .flags().create(
                serde_json::from_value::<NewFlag>(json!({
                    "project_id": "p", "key": key, "flag_type": ty, "default_value": default, "enabled": true,
                    "rules": [{"id": "r1", "condition": {"plan": "pro"}, "value": values[0]}]
                }))
                .unwrap(),
            )
            .unwrap();
        let exp: NewExperiment = serde_json::from_value(json!({
            "name": "flag exp", "environment": "production",
            "variants": [{"key": "a", "value": values[0], "percentage": 50}, {"key": "b", "value": values[1], "percentage": 50}]
        }))
        .unwrap();
        let exp = lab
            .flags()
            .create_experiment(flag.id.as_str(), exp)
            .unwrap();
        lab.experiments().start(exp.id().as_str()).unwrap();
    }
    let contexts: Vec<Context> = (0..500)
        .map(|i| {
            Context::new(format!("user-{i:08}"))
                .with_attribute("country", if i % 3 == 0 { "US" } else { "DE" })
                .with_attribute("version", "1.10.2")
                .with_attribute("plan", if i % 2 == 0 { "pro" } else { "free" })
        })
        .collect();

    // Warm up once (lazily initialised caches such as the regex engine's are not per call).
    let run = |lab: &Lab| {
        let mut served = 0usize;
        for ctx in &contexts {
            for id in &ids {
                let d = lab.assign(id, ctx).unwrap();
                served += usize::from(d.variant().is_some());
            }
            served += usize::from(lab.evaluate("p", "production", "b", ctx).bool_or(false));
            served += lab.evaluate("p", "production", "n", ctx).f64_or(0.0) as usize;
            served += lab.evaluate("p", "production", "s", ctx).str_or("").len();
        }
        served
    };
    let warm = run(&lab);
    let mut again = 0;
    let n = allocations_in(|| again = run(&lab));
    assert_eq!(warm, again, "decisions are deterministic");
    assert!(warm > 0, "something was served");
    println!(
        "alloc_free: {} assign + {} evaluate calls, {n} heap allocations",
        contexts.len() * ids.len(),
        contexts.len() * 3
    );
    assert_eq!(n, 0, "the decision path must not allocate");
    #[cfg(feature = "growthbook")]
    growthbook_eval_feature();
    memory_per_dedup_entry();
    println!(
        "{} passed, 0 failed",
        if cfg!(feature = "growthbook") { 3 } else { 2 }
    );
}

/// GrowthBook's `eval_feature` for an experiment rule and a force rule with a condition, over
/// 500 users (string and numeric ids): no allocation.
#[cfg(feature = "growthbook")]
fn growthbook_eval_feature() {
    use abkit::growthbook::{Features, GbContext};
    let features = Features::new(
        &json!({
            "exp": {"defaultValue": "control", "rules": [
                {"key": "exp-1", "variations": ["control", "red", "blue"], "weights": [0.34, 0.33, 0.33],
                 "coverage": 0.9, "hashVersion": 2, "condition": {"country": {"$in": ["DE", "FR"]}},
                 "meta": [{"key": "c"}, {"key": "r"}, {"key": "b"}]}]},
            "force": {"defaultValue": false, "rules": [
                {"id": "pro", "condition": {"plan": "pro"}, "force": true, "coverage": 0.5}]}
        }),
        None,
    )
    .unwrap();
    let contexts: Vec<GbContext> = (0..500)
        .map(|i| GbContext {
            attributes: if i % 5 == 0 {
                json!({"id": i, "country": "DE", "plan": "pro"})
            } else {
                json!({"id": format!("user-{i:08}"), "country": if i % 3 == 0 { "US" } else { "DE" },
                       "plan": if i % 2 == 0 { "pro" } else { "free" }})
            },
            ..GbContext::default()
        })
        .collect();
    let run = || {
        let mut on = 0usize;
        for ctx in &contexts {
            let e = features.eval_feature("exp", ctx);
            on += usize::from(e.experiment_result.is_some_and(|r| r.in_experiment));
            on += usize::from(features.eval_feature("force", ctx).on);
        }
        on
    };
    let warm = run();
    let mut again = 0;
    let n = allocations_in(|| again = run());
    assert_eq!(warm, again);
    assert!(warm > 0);
    println!(
        "alloc_free: {} growthbook eval_feature calls, {n} heap allocations",
        contexts.len() * 2
    );
    assert_eq!(n, 0, "eval_feature must not allocate for plain values");
}

/// Reports the memory the in-memory store holds per de-duplicated (unit, goal) entry: 200 000
/// enrolled units that each converted once, live heap bytes before and after.
fn memory_per_dedup_entry() {
    use abkit::TrackEvent;
    let lab = Lab::new();
    let new: NewExperiment =
        serde_json::from_value(json!({"name": "mem", "variants": [{"id": "a"}, {"id": "b"}]}))
            .unwrap();
    let id = lab.experiments().create(new).unwrap().id().to_string();
    lab.experiments().start(&id).unwrap();
    let units: Vec<String> = (0..200_000).map(|i| format!("user-{i:09}")).collect();
    let before = LIVE_BYTES.load(Ordering::SeqCst);
    for u in &units {
        lab.expose(&id, &Context::new(u.as_str())).unwrap();
        lab.events().track(&TrackEvent::conversion(&id, u)).unwrap();
    }
    let after = LIVE_BYTES.load(Ordering::SeqCst);
    let per_entry = (after - before) as f64 / units.len() as f64;
    println!(
        "memory: {per_entry:.0} bytes per enrolled unit with one de-duplicated conversion (200 000 units)"
    );
    let counts = lab.reports().compute_results(&id).unwrap();
    assert_eq!(
        counts.variants.iter().map(|v| v.conversions).sum::<u64>(),
        200_000
    );
    assert!(
        per_entry < 512.0,
        "memory per entry regressed: {per_entry:.0} bytes"
    );
}
