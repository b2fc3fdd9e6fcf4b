//! The conformance suite every [`Storage`] implementation should pass.
//!
//! Call [`run`] from your implementation's tests with a function that makes a fresh, empty
//! store:
//!
//! ```
//! abkit::storage::conformance::run(abkit::storage::MemoryStorage::new);
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::json;

use super::{
    Aggregation, EventOutcome, MetricSlot, RecordKind, RecordWrite, Rejection, Storage,
    StorageError, UnitEvent, UnitEventKind,
};
use crate::time::Timestamp;

/// Runs every check on stores made by `make`, each check on a fresh store.
///
/// # Panics
///
/// On the first check the store fails, with a message naming it: it is a test helper.
pub fn run<S: Storage + 'static>(make: impl Fn() -> S) {
    config_versioning(&make());
    config_unique_keys(&make());
    config_delete(&make());
    config_commit_atomic(&make());
    config_no_lost_update(Arc::new(make()));
    events_exposure_and_conversion(&make());
    events_ids_and_rejections(&make());
    events_ids_per_scope(&make());
    events_exact_under_cancellation(&make());
    events_batch_in_order(&make());
    events_excluded_and_purge(&make());
    events_concurrent_exact(Arc::new(make()));
    sticky_insert_if_absent(&make());
}

fn w<'a>(
    kind: RecordKind,
    id: &'a str,
    key: Option<&'a str>,
    body: &'a serde_json::Value,
) -> RecordWrite<'a> {
    RecordWrite {
        kind,
        id,
        unique_key: key,
        body,
    }
}

/// `commit` applies all its changes or none, each by the rules of a single write.
fn config_commit_atomic(s: &dyn Storage) {
    use super::RecordChange;
    let body = json!({"n": 1});
    let put = |id: &'static str, expected| RecordChange::Put {
        write: w(RecordKind::Claim, id, None, &body),
        expected,
    };
    assert_eq!(
        s.commit(&[put("flag:a", None), put("layer:l", None)])
            .unwrap(),
        [1, 1]
    );
    // The last change is stale: nothing of the commit is written.
    let err = s
        .commit(&[
            put("flag:a", Some(1)),
            RecordChange::Put {
                write: w(RecordKind::Experiment, "e1", None, &body),
                expected: None,
            },
            put("layer:l", Some(7)),
        ])
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::VersionConflict {
                kind: RecordKind::Claim,
                found: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        s.get_record(RecordKind::Claim, "flag:a")
            .unwrap()
            .unwrap()
            .version,
        1
    );
    assert!(
        s.get_record(RecordKind::Experiment, "e1")
            .unwrap()
            .is_none()
    );
    // A check writes nothing but must hold; a delete with a check.
    let check = |id: &'static str, expected| RecordChange::Check {
        kind: RecordKind::Claim,
        id,
        expected,
    };
    assert_eq!(
        s.commit(&[check("flag:a", Some(1)), check("flag:none", None)])
            .unwrap(),
        [1, 0]
    );
    assert!(matches!(
        s.commit(&[check("flag:none", Some(1))]),
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        s.commit(&[check("flag:a", None)]),
        Err(StorageError::AlreadyExists { .. })
    ));
    let err = s
        .commit(&[
            RecordChange::Delete {
                kind: RecordKind::Claim,
                id: "layer:l",
                expected: 1,
            },
            check("flag:a", Some(2)),
        ])
        .unwrap_err();
    assert!(
        matches!(err, StorageError::VersionConflict { .. }),
        "{err:?}"
    );
    assert!(
        s.get_record(RecordKind::Claim, "layer:l")
            .unwrap()
            .is_some(),
        "the delete was rolled back"
    );
    assert_eq!(
        s.commit(&[
            RecordChange::Delete {
                kind: RecordKind::Claim,
                id: "layer:l",
                expected: 1,
            },
            put("flag:a", Some(1)),
        ])
        .unwrap(),
        [0, 2]
    );
    assert!(
        s.get_record(RecordKind::Claim, "layer:l")
            .unwrap()
            .is_none()
    );
    // One record twice, or a unique key twice, is refused, writing nothing.
    assert!(s.commit(&[put("x", None), put("x", None)]).is_err());
    assert!(s.get_record(RecordKind::Claim, "x").unwrap().is_none());
    let keyed = |id: &'static str| RecordChange::Put {
        write: w(RecordKind::Flag, id, Some("p/prod/k"), &body),
        expected: None,
    };
    assert!(matches!(
        s.commit(&[keyed("f1"), keyed("f2")]),
        Err(StorageError::UniqueViolation { .. })
    ));
    assert!(s.get_record(RecordKind::Flag, "f1").unwrap().is_none());
}

fn config_versioning(s: &dyn Storage) {
    let a = json!({"n": 1});
    let b = json!({"n": 2});
    assert_eq!(
        s.get_record(RecordKind::Experiment, "e1").unwrap(),
        None,
        "empty store has no record"
    );
    assert_eq!(
        s.put_record(w(RecordKind::Experiment, "e1", None, &a), None)
            .unwrap(),
        1,
        "insert gives version 1"
    );
    assert!(
        matches!(
            s.put_record(w(RecordKind::Experiment, "e1", None, &a), None),
            Err(StorageError::AlreadyExists { .. })
        ),
        "second insert of an id must fail with AlreadyExists"
    );
    assert_eq!(
        s.put_record(w(RecordKind::Experiment, "e1", None, &b), Some(1))
            .unwrap(),
        2,
        "update gives version 2"
    );
    match s.put_record(w(RecordKind::Experiment, "e1", None, &a), Some(1)) {
        Err(StorageError::VersionConflict {
            expected: 1,
            found: 2,
            ..
        }) => {}
        other => panic!("stale write must be a VersionConflict, got {other:?}"),
    }
    let r = s.get_record(RecordKind::Experiment, "e1").unwrap().unwrap();
    assert_eq!(
        (r.version, &r.body),
        (2, &b),
        "a refused write changes nothing"
    );
    assert!(
        matches!(
            s.put_record(w(RecordKind::Experiment, "nope", None, &a), Some(1)),
            Err(StorageError::NotFound { .. })
        ),
        "update of a missing record must be NotFound"
    );
    // Kinds are separate namespaces; lists are sorted by id.
    s.put_record(w(RecordKind::Flag, "e1", None, &a), None)
        .unwrap();
    s.put_record(w(RecordKind::Experiment, "a0", None, &a), None)
        .unwrap();
    let ids: Vec<String> = s
        .list_records(RecordKind::Experiment)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["a0", "e1"], "list is per kind and sorted by id");
    assert_eq!(s.list_records(RecordKind::Layer).unwrap().len(), 0);
}

fn config_unique_keys(s: &dyn Storage) {
    let a = json!({});
    s.put_record(w(RecordKind::Flag, "f1", Some("p/prod/k"), &a), None)
        .unwrap();
    assert!(
        matches!(
            s.put_record(w(RecordKind::Flag, "f2", Some("p/prod/k"), &a), None),
            Err(StorageError::UniqueViolation { .. })
        ),
        "a duplicate unique key must be refused"
    );
    assert!(
        s.get_record(RecordKind::Flag, "f2").unwrap().is_none(),
        "a refused insert stores nothing"
    );
    s.put_record(w(RecordKind::Flag, "f2", Some("p/prod/other"), &a), None)
        .unwrap();
    assert!(
        matches!(
            s.put_record(w(RecordKind::Flag, "f2", Some("p/prod/k"), &a), Some(1)),
            Err(StorageError::UniqueViolation { .. })
        ),
        "an update to another record's unique key must be refused"
    );
    // Re-writing a record with its own key is fine.
    assert_eq!(
        s.put_record(w(RecordKind::Flag, "f1", Some("p/prod/k"), &a), Some(1))
            .unwrap(),
        2
    );
    // Another kind may use the same key.
    s.put_record(w(RecordKind::Audience, "x", Some("p/prod/k"), &a), None)
        .unwrap();
}

fn config_delete(s: &dyn Storage) {
    let a = json!({});
    s.put_record(w(RecordKind::Audience, "a", None, &a), None)
        .unwrap();
    assert!(matches!(
        s.delete_record(RecordKind::Audience, "a", 7),
        Err(StorageError::VersionConflict { .. })
    ));
    assert!(
        s.get_record(RecordKind::Audience, "a").unwrap().is_some(),
        "a refused delete keeps the record"
    );
    s.delete_record(RecordKind::Audience, "a", 1).unwrap();
    assert!(s.get_record(RecordKind::Audience, "a").unwrap().is_none());
    assert!(matches!(
        s.delete_record(RecordKind::Audience, "a", 1),
        Err(StorageError::NotFound { .. })
    ));
    // The id can be used again.
    assert_eq!(
        s.put_record(w(RecordKind::Audience, "a", None, &a), None)
            .unwrap(),
        1
    );
}

fn config_no_lost_update(s: Arc<dyn Storage>) {
    s.put_record(
        w(RecordKind::Settings, "counter", None, &json!({"n": 0})),
        None,
    )
    .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    loop {
                        let r = s
                            .get_record(RecordKind::Settings, "counter")
                            .unwrap()
                            .unwrap();
                        let n = r.body["n"].as_u64().unwrap();
                        let body = json!({"n": n + 1});
                        match s.put_record(
                            w(RecordKind::Settings, "counter", None, &body),
                            Some(r.version),
                        ) {
                            Ok(_) => break,
                            Err(StorageError::VersionConflict { .. }) => continue,
                            Err(e) => panic!("unexpected error {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let r = s
        .get_record(RecordKind::Settings, "counter")
        .unwrap()
        .unwrap();
    assert_eq!(
        r.body["n"], 200,
        "read-modify-write with versions loses no update"
    );
    assert_eq!(r.version, 201);
}

const CONV: MetricSlot = MetricSlot {
    index: 0,
    aggregation: Aggregation::Once,
    cap: None,
    window_millis: None,
};
const VALUE: MetricSlot = MetricSlot {
    index: 1,
    aggregation: Aggregation::Sum,
    cap: None,
    window_millis: Some(1000),
};

fn ev<'a>(
    exp: &'a str,
    unit: &'a str,
    id: Option<&'a str>,
    at: i64,
    kind: UnitEventKind,
) -> UnitEvent<'a> {
    UnitEvent {
        experiment: exp,
        unit,
        event_id: id,
        at: Timestamp::from_unix_millis(at),
        kind,
    }
}

fn expose(variant: u32) -> UnitEventKind {
    UnitEventKind::Exposure {
        variant,
        excluded: false,
    }
}

fn conversion() -> UnitEventKind {
    UnitEventKind::Metric {
        slot: CONV,
        value: 1.0,
        denominator: 0.0,
    }
}

fn value(v: f64) -> UnitEventKind {
    UnitEventKind::Metric {
        slot: VALUE,
        value: v,
        denominator: 0.0,
    }
}

fn events_exposure_and_conversion(s: &dyn Storage) {
    assert_eq!(
        s.apply_event(&ev("e", "u1", None, 0, expose(1))).unwrap(),
        EventOutcome::Enrolled
    );
    assert_eq!(
        s.apply_event(&ev("e", "u1", None, 5, expose(0))).unwrap(),
        EventOutcome::AlreadyEnrolled
    );
    let st = s.unit_state("e", "u1").unwrap().unwrap();
    assert_eq!(
        (st.variant, st.exposed_at.unix_millis()),
        (1, 0),
        "the first exposure wins"
    );
    assert_eq!(
        s.apply_event(&ev("e", "u1", None, 1, conversion()))
            .unwrap(),
        EventOutcome::Recorded
    );
    assert_eq!(
        s.apply_event(&ev("e", "u1", None, 2, conversion()))
            .unwrap(),
        EventOutcome::Duplicate
    );
    assert_eq!(
        s.apply_event(&ev("e", "u1", None, 3, value(2.0))).unwrap(),
        EventOutcome::Recorded
    );
    assert_eq!(
        s.apply_event(&ev("e", "u1", None, 4, value(3.0))).unwrap(),
        EventOutcome::Recorded
    );
    s.apply_event(&ev("e", "u2", None, 0, expose(1))).unwrap();
    let t = s.totals("e").unwrap().variant(1);
    assert_eq!(t.participants, 2);
    assert_eq!(
        (t.metrics[0].sum, t.metrics[0].sum_squares),
        (1.0, 1.0),
        "one conversion"
    );
    assert_eq!(
        (t.metrics[1].sum, t.metrics[1].sum_squares),
        (5.0, 25.0),
        "per-unit totals are squared"
    );
    assert_eq!(s.totals("e").unwrap().variant(0).participants, 0);
    assert_eq!(
        s.totals("other").unwrap().variants.len(),
        0,
        "experiments are separate"
    );
    assert!(s.unit_state("other", "u1").unwrap().is_none());
}

fn events_ids_and_rejections(s: &dyn Storage) {
    assert_eq!(
        s.apply_event(&ev("e", "u", Some("x"), 0, conversion()))
            .unwrap(),
        EventOutcome::Rejected(Rejection::NotEnrolled)
    );
    assert_eq!(
        s.apply_event(&ev("e", "u", Some("x"), 0, expose(0)))
            .unwrap(),
        EventOutcome::Enrolled
    );
    assert_eq!(
        s.apply_event(&ev("e", "u", Some("v1"), 10, value(4.0)))
            .unwrap(),
        EventOutcome::Recorded
    );
    assert_eq!(
        s.apply_event(&ev("e", "u", Some("v1"), 10, value(4.0)))
            .unwrap(),
        EventOutcome::DuplicateEventId
    );
    assert_eq!(
        s.apply_event(&ev("e", "u", Some("late"), 5000, value(4.0)))
            .unwrap(),
        EventOutcome::Rejected(Rejection::OutsideWindow)
    );
    // A rejected event's id is not remembered: it may be retried once it is valid.
    assert_eq!(
        s.apply_event(&ev("e", "u", Some("late"), 500, value(1.0)))
            .unwrap(),
        EventOutcome::Recorded
    );
    let t = s.totals("e").unwrap().variant(0);
    assert_eq!(t.metrics[1].sum, 5.0);
}

/// Event ids are unique per (experiment, unit, scope): one order id may carry a conversion and
/// a revenue value; an empty or overlong id is refused.
fn events_ids_per_scope(s: &dyn Storage) {
    s.apply_event(&ev("e", "u", Some("ord_1"), 0, expose(0)))
        .unwrap();
    assert_eq!(
        s.apply_event(&ev("e", "u", Some("ord_1"), 1, conversion()))
            .unwrap(),
        EventOutcome::Recorded,
        "an exposure's id does not block a conversion's"
    );
    assert_eq!(
        s.apply_event(&ev("e", "u", Some("ord_1"), 1, value(12.5)))
            .unwrap(),
        EventOutcome::Recorded,
        "one order id carries a conversion and a revenue value"
    );
    assert_eq!(
        s.apply_event(&ev("e", "u", Some("ord_1"), 1, value(12.5)))
            .unwrap(),
        EventOutcome::DuplicateEventId,
        "a retried revenue value counts once"
    );
    let covariate = UnitEventKind::Covariate {
        slot: VALUE,
        value: 3.0,
    };
    assert_eq!(
        s.apply_event(&ev("e", "u", Some("ord_1"), 1, covariate))
            .unwrap(),
        EventOutcome::Recorded
    );
    let long = "x".repeat(super::MAX_EVENT_ID_LEN + 1);
    for bad in ["", long.as_str()] {
        assert_eq!(
            s.apply_event(&ev("e", "u", Some(bad), 1, value(1.0)))
                .unwrap(),
            EventOutcome::Rejected(Rejection::InvalidEventId),
            "event id of {} bytes",
            bad.len()
        );
    }
    let longest = "y".repeat(super::MAX_EVENT_ID_LEN);
    assert_eq!(
        s.apply_event(&ev("e", "u", Some(&longest), 1, value(1.0)))
            .unwrap(),
        EventOutcome::Recorded
    );
    let t = s.totals("e").unwrap().variant(0);
    assert_eq!((t.metrics[0].sum, t.metrics[1].sum), (1.0, 13.5));
}

/// Totals stay equal to the sum of the units' current values whatever the order: a huge value
/// that is later cancelled leaves the small ones exact.
fn events_exact_under_cancellation(s: &dyn Storage) {
    for u in ["whale", "u1"] {
        s.apply_event(&ev("e", u, None, 0, expose(0))).unwrap();
    }
    for (u, x) in [("whale", 1e20), ("u1", 1.5), ("whale", -1e20)] {
        assert_eq!(
            s.apply_events(&[ev("e", u, None, 1, value(x))]).unwrap(),
            [EventOutcome::Recorded]
        );
    }
    let m = s.totals("e").unwrap().variant(0).metrics[1];
    assert_eq!(
        (m.sum, m.sum_squares),
        (1.5, 2.25),
        "a cancelled 1e20 must not wipe the other units' sums"
    );
    // A unit raised far and brought back: its earlier small square does not linger.
    s.apply_event(&ev("e", "u2", None, 0, expose(1))).unwrap();
    for x in [3.0, 1e20, -1e20] {
        s.apply_event(&ev("e", "u2", None, 1, value(x))).unwrap();
    }
    let now = s
        .unit_state("e", "u2")
        .unwrap()
        .map_or(f64::NAN, |st| st.value(VALUE.index).numerator);
    let m = s.totals("e").unwrap().variant(1).metrics[1];
    assert_eq!((m.sum, m.sum_squares), (now, now * now));
}

fn events_batch_in_order(s: &dyn Storage) {
    let batch = [
        ev("e", "a", None, 0, expose(0)),
        ev("e", "a", None, 1, conversion()),
        ev("e", "a", None, 2, conversion()),
        ev("e", "b", None, 3, conversion()),
        ev("f", "a", None, 0, expose(1)),
    ];
    let out = s.apply_events(&batch).unwrap();
    assert_eq!(
        out,
        [
            EventOutcome::Enrolled,
            EventOutcome::Recorded,
            EventOutcome::Duplicate,
            EventOutcome::Rejected(Rejection::NotEnrolled),
            EventOutcome::Enrolled
        ],
        "a batch is applied in order"
    );
    assert_eq!(s.apply_events(&[]).unwrap(), []);
}

fn events_excluded_and_purge(s: &dyn Storage) {
    let forced = UnitEventKind::Exposure {
        variant: 1,
        excluded: true,
    };
    assert_eq!(
        s.apply_event(&ev("e", "qa", None, 0, forced)).unwrap(),
        EventOutcome::Excluded
    );
    assert_eq!(
        s.apply_event(&ev("e", "qa", None, 1, conversion()))
            .unwrap(),
        EventOutcome::Excluded
    );
    assert_eq!(
        s.totals("e").unwrap().variant(1).participants,
        0,
        "forced units are not counted"
    );
    assert!(s.unit_state("e", "qa").unwrap().unwrap().excluded);
    s.apply_event(&ev("e", "u", None, 0, expose(0))).unwrap();
    s.save_sticky_assignments("u", &[("e", "b"), ("other", "a")])
        .unwrap();
    s.purge_events("e").unwrap();
    assert!(s.unit_state("e", "u").unwrap().is_none());
    assert_eq!(s.totals("e").unwrap().variant(0).participants, 0);
    assert_eq!(
        s.sticky_assignments("u").unwrap(),
        vec![("other".to_owned(), "a".to_owned())],
        "purging an experiment removes its sticky assignments, and only its"
    );
}

fn events_concurrent_exact(s: Arc<dyn Storage>) {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..300u32 {
                    // Overlapping units across threads; every event sent twice.
                    let unit = format!("u{}", (i + t * 100) % 500);
                    let variant = (i + t * 100) % 500 % 2;
                    for _ in 0..2 {
                        s.apply_event(&ev("c", &unit, None, 0, expose(variant)))
                            .unwrap();
                        s.apply_event(&ev("c", &unit, None, 1, conversion()))
                            .unwrap();
                        let id = format!("{unit}-{i}-{t}");
                        s.apply_events(&[ev("c", &unit, Some(&id), 2, value(1.0))])
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let totals = s.totals("c").unwrap();
    let participants: u64 = totals.variants.iter().map(|v| v.participants).sum();
    let conversions: f64 = totals.variants.iter().map(|v| v.metrics[0].sum).sum();
    let values: f64 = totals.variants.iter().map(|v| v.metrics[1].sum).sum();
    assert_eq!(participants, 500, "each unit enrolled exactly once");
    assert_eq!(conversions, 500.0, "each unit converted exactly once");
    assert_eq!(values, 1200.0, "each event id counted exactly once");
}

fn sticky_insert_if_absent(s: &dyn Storage) {
    assert_eq!(s.sticky_assignments("u").unwrap(), []);
    s.save_sticky_assignments("u", &[("e1", "a"), ("e2", "b")])
        .unwrap();
    s.save_sticky_assignments("u", &[("e1", "CHANGED"), ("e3", "c")])
        .unwrap();
    let mut got = s.sticky_assignments("u").unwrap();
    got.sort();
    let want: Vec<(String, String)> = [("e1", "a"), ("e2", "b"), ("e3", "c")]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(got, want, "an existing sticky assignment is never replaced");
    assert_eq!(s.sticky_assignments("other").unwrap(), []);
}
