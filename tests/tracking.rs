//! The event plane: exposures, conversions, values, idempotency, batches, results, reliability.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use abkit::storage::{
    EventOutcome, ExperimentTotals, MemoryStorage, Record, RecordChange, RecordKind, RecordWrite,
    Rejection, Storage, StorageError, UnitEvent, UnitState,
};
use abkit::{
    Context, Error, Lab, ManualClock, NewExperiment, Operation, StopRequest, Timestamp, TrackEvent,
};
use serde_json::json;

const T0: i64 = 1_736_949_600_000;

fn lab_with(storage: Arc<dyn Storage>) -> (Lab, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_millis(T0)));
    let lab = Lab::builder()
        .storage(storage)
        .clock(clock.clone())
        .build()
        .unwrap();
    (lab, clock)
}

fn running(lab: &Lab, metrics: serde_json::Value) -> String {
    let new: NewExperiment = serde_json::from_value(json!({
        "name": "t",
        "variants": [{"id": "control"}, {"id": "treatment"}],
        "metrics": metrics,
        "overrides": {"qa_user": "treatment"}
    }))
    .unwrap();
    let e = lab.experiments().create(new).unwrap();
    lab.experiments().start(e.id().as_str()).unwrap();
    e.id().to_string()
}

#[test]
fn conversions_count_once_per_unit_and_need_enrolment() {
    let (lab, _) = lab_with(Arc::new(MemoryStorage::new()));
    let id = running(&lab, json!(["conversion", "watchTime"]));
    match lab.events().track(&TrackEvent::conversion(&id, "u1")) {
        Err(Error::Rejected {
            reason: Rejection::NotEnrolled,
            ..
        }) => {}
        other => panic!("a unit that is not enrolled must be rejected, got {other:?}"),
    }
    let v = lab.expose(&id, &Context::new("u1")).unwrap().unwrap();
    assert_eq!(
        lab.events()
            .track(&TrackEvent::conversion(&id, "u1"))
            .unwrap(),
        EventOutcome::Recorded
    );
    assert_eq!(
        lab.events()
            .track(&TrackEvent::conversion(&id, "u1"))
            .unwrap(),
        EventOutcome::Duplicate
    );
    lab.events()
        .track(&TrackEvent::value(&id, "u1", "watchTime", 10.0))
        .unwrap();
    lab.events()
        .track(&TrackEvent::value(&id, "u1", "watchTime", 5.0))
        .unwrap();
    let computed = lab.reports().compute_results(&id).unwrap();
    let row = computed
        .variants
        .iter()
        .find(|r| r.variant_id == v.as_str())
        .unwrap();
    assert_eq!(
        (row.sample_size, row.conversions, row.conversion_rate),
        (1, 1, Some(1.0))
    );
    let raw = lab.reports().results(&id).unwrap();
    let rv = raw
        .variants
        .iter()
        .find(|r| r.variant_id == v.as_str())
        .unwrap();
    assert_eq!(rv.results[1].totals.sum, 15.0);
    assert_eq!(
        rv.results[1].totals.sum_squares, 225.0,
        "per-unit totals are squared, not events"
    );
}

#[test]
fn events_are_rejected_unless_running_and_for_known_metrics() {
    let (lab, _) = lab_with(Arc::new(MemoryStorage::new()));
    let id = running(&lab, json!(["conversion", "watchTime", "completionRate"]));
    lab.expose(&id, &Context::new("u1")).unwrap();
    let err = lab
        .events()
        .track(&TrackEvent::conversion(&id, "u1").goal("clicks"))
        .unwrap_err();
    assert!(
        err.to_string().contains("no metric \"clicks\"") && err.to_string().contains("watchTime"),
        "{err}"
    );
    let err = lab
        .events()
        .track(&TrackEvent::conversion(&id, "u1").goal("watchTime"))
        .unwrap_err();
    assert!(err.to_string().starts_with("value: missing"), "{err}");
    let mut ratio = TrackEvent::value(&id, "u1", "completionRate", 1.0);
    assert!(
        lab.events()
            .track(&ratio)
            .unwrap_err()
            .to_string()
            .starts_with("denominator: missing")
    );
    ratio.denominator = Some(1.0);
    assert_eq!(lab.events().track(&ratio).unwrap(), EventOutcome::Recorded);
    assert!(
        lab.events()
            .track(&TrackEvent::value(&id, "u1", "watchTime", f64::NAN))
            .is_err()
    );
    lab.experiments().stop(&id, StopRequest::default()).unwrap();
    match lab.events().track(&TrackEvent::conversion(&id, "u1")) {
        Err(Error::Lifecycle {
            operation: Operation::Track,
            ..
        }) => {}
        other => panic!("a stopped experiment accepts no events, got {other:?}"),
    }
}

#[test]
fn flag_api_track_body_deserializes() {
    let text = std::fs::read_to_string(format!(
        "{}/tests/data/bodies/flag-track.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let e: TrackEvent = serde_json::from_str(&text).unwrap();
    assert_eq!(e.unit_id, "usr_123");
    assert_eq!(e.experiment_id, "e1a2b3c4-5d6e-7f8a-9b0c-1d2e3f4a5b6c");
    assert_eq!(e.goal, None, "the goal defaults to conversion");
}

#[test]
fn event_ids_make_retries_idempotent_and_windows_apply() {
    let (lab, clock) = lab_with(Arc::new(MemoryStorage::new()));
    let id = running(
        &lab,
        json!([{"name": "revenue", "kind": "mean", "conversionWindowHours": 1}]),
    );
    lab.expose(&id, &Context::new("u")).unwrap();
    let e = TrackEvent::value(&id, "u", "revenue", 3.0).event_id("evt-1");
    assert_eq!(lab.events().track(&e).unwrap(), EventOutcome::Recorded);
    assert_eq!(
        lab.events().track(&e).unwrap(),
        EventOutcome::DuplicateEventId
    );
    let early = TrackEvent::value(&id, "u", "revenue", 1.0).at(Timestamp::from_unix_millis(T0 - 1));
    assert!(matches!(
        lab.events().track(&early),
        Err(Error::Rejected {
            reason: Rejection::BeforeExposure,
            ..
        })
    ));
    clock.advance_millis(3_600_001);
    assert!(matches!(
        lab.events()
            .track(&TrackEvent::value(&id, "u", "revenue", 1.0)),
        Err(Error::Rejected {
            reason: Rejection::OutsideWindow,
            ..
        })
    ));
    let raw = lab.reports().results(&id).unwrap();
    let sum: f64 = raw.variants.iter().map(|v| v.results[0].totals.sum).sum();
    assert_eq!(sum, 3.0);
}

#[test]
fn one_order_id_carries_a_conversion_and_its_revenue() {
    // Issue 12 item 13: ids were per (experiment, unit), so the revenue of an order whose
    // conversion used the same id was dropped silently.
    let (lab, _) = lab_with(Arc::new(MemoryStorage::new()));
    let id = running(
        &lab,
        json!(["conversion", {"name": "revenue", "kind": "mean"}]),
    );
    lab.expose(&id, &Context::new("u")).unwrap();
    let conversion = TrackEvent::conversion(&id, "u").event_id("ord_1");
    let revenue = TrackEvent::value(&id, "u", "revenue", 42.0).event_id("ord_1");
    assert_eq!(
        lab.events().track(&conversion).unwrap(),
        EventOutcome::Recorded
    );
    assert_eq!(
        lab.events().track(&revenue).unwrap(),
        EventOutcome::Recorded
    );
    // Retries of either are still de-duplicated.
    assert_eq!(
        lab.events().track_batch(&[conversion, revenue]).unwrap(),
        [
            Ok(EventOutcome::DuplicateEventId),
            Ok(EventOutcome::DuplicateEventId)
        ]
    );
    let raw = lab.reports().results(&id).unwrap();
    let sum = |metric: usize| -> f64 {
        raw.variants
            .iter()
            .map(|v| v.results[metric].totals.sum)
            .sum()
    };
    assert_eq!((sum(0), sum(1)), (1.0, 42.0));
    // An empty or overlong id is an error naming the field.
    for bad in [String::new(), "x".repeat(201)] {
        let err = lab
            .events()
            .track(&TrackEvent::conversion(&id, "u").event_id(&bad))
            .unwrap_err();
        assert!(err.to_string().starts_with("eventId: "), "{err}");
    }
}

#[test]
fn batch_gives_per_event_outcomes() {
    let (lab, _) = lab_with(Arc::new(MemoryStorage::new()));
    let id = running(&lab, json!(["conversion"]));
    lab.expose(&id, &Context::new("a")).unwrap();
    let out = lab
        .events()
        .track_batch(&[
            TrackEvent::conversion(&id, "a"),
            TrackEvent::conversion(&id, "a"),
            TrackEvent::conversion(&id, "b"),
            TrackEvent::conversion("exp_missing", "a"),
            TrackEvent::conversion(&id, "a").goal("nope"),
        ])
        .unwrap();
    assert_eq!(out[0], Ok(EventOutcome::Recorded));
    assert_eq!(out[1], Ok(EventOutcome::Duplicate));
    assert!(matches!(
        out[2],
        Err(Error::Rejected {
            reason: Rejection::NotEnrolled,
            ..
        })
    ));
    assert!(matches!(out[3], Err(Error::NotFound { .. })));
    assert!(matches!(out[4], Err(Error::Validation(_))));
}

/// A batch across many experiments, goals and units (more distinct experiments than the memory
/// store resolves ahead, invalid events interleaved, repeats and event ids) gives exactly what
/// tracking the same events one at a time gives: the same outcomes and the same totals.
#[test]
fn a_batch_equals_the_same_events_tracked_one_by_one() {
    let make = || {
        let (lab, _) = lab_with(Arc::new(MemoryStorage::new()));
        let ids: Vec<String> = (0..11)
            .map(|_| running(&lab, json!(["conversion", "watchTime"])))
            .collect();
        for id in &ids {
            for u in 0..40 {
                lab.expose(id, &Context::new(format!("user-{u}").as_str()))
                    .unwrap();
            }
        }
        (lab, ids)
    };
    // The plan: (experiment, unit, goal, event id); a fixed-seed xorshift picks them.
    let mut x = 0x2545_F491_4F6C_DD1D_u64;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let plan: Vec<(usize, u64, u64, u64)> = (0..3000)
        .map(|_| {
            (
                next(12) as usize, // 11 means an unknown experiment
                next(50),          // units 40..50 are not enrolled
                next(3),           // conversion, watchTime, or an unknown goal
                next(4),           // 0: with an event id (often repeated)
            )
        })
        .collect();
    let events = |ids: &[String]| -> Vec<TrackEvent> {
        plan.iter()
            .map(|&(e, u, g, k)| {
                let exp = ids.get(e).map_or("exp_missing", String::as_str);
                let unit = format!("user-{u}");
                let ev = match g {
                    0 => TrackEvent::conversion(exp, &unit),
                    1 => TrackEvent::value(exp, &unit, "watchTime", (u + 1) as f64),
                    _ => TrackEvent::conversion(exp, &unit).goal("nope"),
                };
                if k == 0 {
                    ev.event_id(&format!("ev-{}", u % 7))
                } else {
                    ev
                }
            })
            .collect()
    };
    let (batched, ids_a) = make();
    let (single, ids_b) = make();
    let (ea, eb) = (events(&ids_a), events(&ids_b));
    let kind = |r: &Result<EventOutcome, Error>| match r {
        Ok(o) => format!("{o:?}"),
        Err(Error::Rejected { reason, .. }) => format!("rejected {reason:?}"),
        Err(Error::NotFound { .. }) => "not found".to_owned(),
        Err(Error::Validation(v)) => format!("invalid {}", v.field_name()),
        Err(e) => format!("other {e}"),
    };
    let mut outcomes_a = Vec::new();
    for chunk in ea.chunks(500) {
        outcomes_a.extend(
            batched
                .events()
                .track_batch(chunk)
                .unwrap()
                .iter()
                .map(kind),
        );
    }
    let outcomes_b: Vec<String> = eb.iter().map(|e| kind(&single.events().track(e))).collect();
    assert_eq!(outcomes_a, outcomes_b);
    assert!(outcomes_a.iter().any(|o| o == "Recorded"));
    assert!(outcomes_a.iter().any(|o| o == "Duplicate"));
    assert!(outcomes_a.iter().any(|o| o == "DuplicateEventId"));
    assert!(outcomes_a.iter().any(|o| o.starts_with("rejected")));
    for (a, b) in ids_a.iter().zip(&ids_b) {
        let (ra, rb) = (
            batched.reports().results(a).unwrap(),
            single.reports().results(b).unwrap(),
        );
        // Ids (and so salts and variants) differ between the two labs: compare over variants.
        // Every value is a whole number, so the sums are exact in any order.
        let totals = |r: &abkit::RawResults| {
            let participants: u64 = r.variants.iter().map(|v| v.participants).sum();
            let metric = |i: usize| -> (f64, f64) {
                r.variants
                    .iter()
                    .map(|v| (v.results[i].totals.sum, v.results[i].totals.sum_squares))
                    .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y))
            };
            (participants, metric(0), metric(1))
        };
        assert_eq!(totals(&ra), totals(&rb));
    }
}

#[test]
fn forced_units_are_left_out_and_hook_sees_each_exposure_once() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = Arc::clone(&seen);
    let lab = Lab::builder()
        .exposure_hook(move |x, _| {
            s2.lock()
                .unwrap()
                .push((x.unit_id.to_owned(), x.variant.to_string(), x.forced))
        })
        .build()
        .unwrap();
    let id = running(&lab, json!(["conversion"]));
    for _ in 0..3 {
        lab.expose(&id, &Context::new("qa_user")).unwrap();
        lab.expose(&id, &Context::new("u1")).unwrap();
    }
    lab.events()
        .track(&TrackEvent::conversion(&id, "qa_user"))
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        2,
        "the hook is called once per (experiment, unit): {seen:?}"
    );
    assert_eq!(seen[0], ("qa_user".into(), "treatment".into(), true));
    let counts = lab.reports().experiment_with_counts(&id).unwrap();
    assert_eq!(
        counts.participants.iter().sum::<u64>(),
        1,
        "the forced unit is not a participant"
    );
    assert_eq!(counts.conversions, 0);
    let json = serde_json::to_value(abkit::wire::flow::FlowExperiment::detail(&counts)).unwrap();
    assert_eq!(json["_count"]["assignments"], 1);
    let listed = lab
        .reports()
        .list_with_counts(&abkit::ListQuery::default())
        .unwrap();
    let listed = serde_json::to_value(abkit::wire::flow::experiments_page(listed)).unwrap();
    assert_eq!(listed["data"][0]["_count"]["assignments"], 1);
    assert_eq!(listed["meta"]["total"], 1);
    assert!(json["variants"][0]["participants"].is_u64());
}

#[test]
fn concurrent_tracking_is_exact() {
    let (lab, _) = lab_with(Arc::new(MemoryStorage::new()));
    let lab = Arc::new(lab);
    let id = running(&lab, json!(["conversion", "watchTime"]));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let lab = Arc::clone(&lab);
            let id = id.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let unit = format!("u{}", (i + t * 250) % 1000);
                    lab.expose(&id, &Context::new(unit.as_str())).unwrap();
                    lab.events()
                        .track(&TrackEvent::conversion(&id, &unit))
                        .unwrap();
                    let e = TrackEvent::value(&id, &unit, "watchTime", 2.0)
                        .event_id(&format!("w-{unit}"));
                    lab.events().track(&e).unwrap();
                    lab.events().track(&e).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let raw = lab.reports().results(&id).unwrap();
    let units: u64 = raw.variants.iter().map(|v| v.participants).sum();
    let conv: f64 = raw.variants.iter().map(|v| v.results[0].totals.sum).sum();
    let watch: f64 = raw.variants.iter().map(|v| v.results[1].totals.sum).sum();
    // Threads overlap: units u0..u999 are each touched by two threads.
    assert_eq!(units, 1000);
    assert_eq!(conv, 1000.0);
    assert_eq!(watch, 2000.0);
}

/// Fails every `n`-th event write before touching the inner store.
#[derive(Debug)]
struct Flaky {
    inner: MemoryStorage,
    calls: AtomicU64,
    every: u64,
    on: AtomicBool,
}

impl Flaky {
    fn fail(&self) -> Result<(), StorageError> {
        if self.on.load(Ordering::SeqCst)
            && self
                .calls
                .fetch_add(1, Ordering::SeqCst)
                .is_multiple_of(self.every)
        {
            Err(StorageError::Backend("injected failure".into()))
        } else {
            Ok(())
        }
    }
}

impl Storage for Flaky {
    fn get_record(&self, kind: RecordKind, id: &str) -> Result<Option<Record>, StorageError> {
        self.inner.get_record(kind, id)
    }
    fn list_records(&self, kind: RecordKind) -> Result<Vec<Record>, StorageError> {
        self.inner.list_records(kind)
    }
    fn put_record(&self, w: RecordWrite<'_>, expected: Option<u64>) -> Result<u64, StorageError> {
        self.fail()?;
        self.inner.put_record(w, expected)
    }
    fn delete_record(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StorageError> {
        self.fail()?;
        self.inner.delete_record(kind, id, expected)
    }
    fn commit(&self, changes: &[RecordChange<'_>]) -> Result<Vec<u64>, StorageError> {
        self.fail()?;
        self.inner.commit(changes)
    }
    fn apply_events(&self, events: &[UnitEvent<'_>]) -> Result<Vec<EventOutcome>, StorageError> {
        self.fail()?;
        self.inner.apply_events(events)
    }
    fn unit_state(&self, e: &str, u: &str) -> Result<Option<UnitState>, StorageError> {
        self.inner.unit_state(e, u)
    }
    fn totals(&self, e: &str) -> Result<ExperimentTotals, StorageError> {
        self.inner.totals(e)
    }
    fn purge_events(&self, e: &str) -> Result<(), StorageError> {
        self.inner.purge_events(e)
    }
    fn sticky_assignments(&self, u: &str) -> Result<Vec<(String, String)>, StorageError> {
        self.inner.sticky_assignments(u)
    }
    fn save_sticky_assignments(&self, u: &str, a: &[(&str, &str)]) -> Result<(), StorageError> {
        self.inner.save_sticky_assignments(u, a)
    }
}

#[test]
fn failed_writes_leave_nothing_and_retries_count_once() {
    let flaky = Arc::new(Flaky {
        inner: MemoryStorage::new(),
        calls: AtomicU64::new(0),
        every: 3,
        on: AtomicBool::new(false),
    });
    let (lab, _) = lab_with(flaky.clone());
    let id = running(&lab, json!(["conversion", "watchTime"]));
    flaky.on.store(true, Ordering::SeqCst);
    let mut failures = 0;
    for i in 0..200 {
        let unit = format!("u{i}");
        let ctx = Context::new(unit.as_str());
        while lab.expose(&id, &ctx).is_err() {
            failures += 1;
        }
        for _ in 0..2 {
            // Every event sent twice; a failed attempt is retried until it is stored.
            loop {
                match lab.events().track(&TrackEvent::conversion(&id, &unit)) {
                    Ok(_) => break,
                    Err(Error::Storage(_)) => failures += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            let batch =
                [TrackEvent::value(&id, &unit, "watchTime", 1.5).event_id(&format!("w{i}"))];
            loop {
                match lab.events().track_batch(&batch) {
                    Ok(out) => {
                        assert!(out[0].is_ok());
                        break;
                    }
                    Err(Error::Storage(_)) => failures += 1,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
    assert!(failures > 100, "the double must really fail ({failures})");
    let raw = lab.reports().results(&id).unwrap();
    assert_eq!(
        raw.variants.iter().map(|v| v.participants).sum::<u64>(),
        200
    );
    assert_eq!(
        raw.variants
            .iter()
            .map(|v| v.results[0].totals.sum)
            .sum::<f64>(),
        200.0
    );
    assert_eq!(
        raw.variants
            .iter()
            .map(|v| v.results[1].totals.sum)
            .sum::<f64>(),
        300.0
    );
}

#[test]
fn huge_values_are_rejected_and_totals_stay_finite() {
    let (lab, _) = lab_with(Arc::new(MemoryStorage::new()));
    let id = running(&lab, json!(["watchTime"]));
    lab.expose(&id, &Context::new("u")).unwrap();
    lab.events()
        .track(&TrackEvent::value(&id, "u", "watchTime", 1e99))
        .unwrap();
    for v in [1e200, 1e308] {
        assert!(
            matches!(
                lab.events()
                    .track(&TrackEvent::value(&id, "u", "watchTime", v)),
                Err(Error::Rejected {
                    reason: Rejection::InvalidValue,
                    ..
                })
            ),
            "{v}"
        );
    }
    let raw = lab.reports().results(&id).unwrap();
    for v in &raw.variants {
        let t = &v.results[0].totals;
        assert!(t.sum.is_finite() && t.sum_squares.is_finite());
    }
}

#[test]
fn record_exposure_checks_the_variant() {
    let (lab, _) = lab_with(Arc::new(MemoryStorage::new()));
    let id = running(&lab, json!(["conversion"]));
    let exp_id: abkit::ExperimentId = id.parse().unwrap();
    let key: abkit::VariantKey = "control".parse().unwrap();
    let bad = abkit::Exposure {
        experiment_id: &exp_id,
        unit_id: "u",
        variant: &key,
        variant_index: 7,
        forced: false,
    };
    let err = lab.events().record(&bad).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("variant: \"control\" (index 7)"),
        "{err}"
    );
    let empty = abkit::Exposure {
        experiment_id: &exp_id,
        unit_id: "",
        variant: &key,
        variant_index: 0,
        forced: false,
    };
    assert!(lab.events().record(&empty).is_err());
    let good = abkit::Exposure {
        experiment_id: &exp_id,
        unit_id: "u",
        variant: &key,
        variant_index: 0,
        forced: false,
    };
    assert_eq!(lab.events().record(&good).unwrap(), EventOutcome::Enrolled);
}
