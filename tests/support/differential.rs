//! The differential test every durable store runs: random batches of events (fixed seed) go
//! to the store under test and to `MemoryStorage`, the reference; every outcome, every total
//! and every unit state must be equal. Experiment ids are fresh per case, so one store (one
//! database) serves every case.

use std::sync::atomic::{AtomicUsize, Ordering};

use abkit::Timestamp;
use abkit::storage::{Aggregation, MemoryStorage, MetricSlot, Storage, UnitEvent, UnitEventKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Runs `cases` random cases against `store`.
pub fn matches_memory(store: &dyn Storage, cases: u32) {
    const UNITS: [&str; 4] = ["u0", "u1", "u2", "u3"];
    const IDS: [&str; 3] = ["a", "b", "c"];
    let slot = |i: u32| MetricSlot {
        index: i,
        aggregation: if i == 0 {
            Aggregation::Once
        } else {
            Aggregation::Sum
        },
        cap: if i == 2 { Some(5.0) } else { None },
        window_millis: if i == 1 { Some(50) } else { None },
    };
    let kind = prop_oneof![
        (0u32..3, any::<bool>())
            .prop_map(|(variant, excluded)| UnitEventKind::Exposure { variant, excluded }),
        (0u32..3, 0u8..8, 0u8..3).prop_map(move |(i, v, d)| UnitEventKind::Metric {
            slot: slot(i),
            value: f64::from(v),
            denominator: f64::from(d),
        }),
        (0u32..3, 0u8..8).prop_map(move |(i, v)| UnitEventKind::Covariate {
            slot: slot(i),
            value: f64::from(v),
        }),
    ];
    // (experiment, unit, event id, time, kind), and a purge after the batch.
    let event = (
        0usize..2,
        0usize..4,
        proptest::option::of(0usize..3),
        0i64..100,
        kind,
    );
    let batches = proptest::collection::vec(
        (
            proptest::collection::vec(event, 1..8),
            proptest::option::weighted(0.1, 0usize..2),
        ),
        1..12,
    );
    let case = AtomicUsize::new(0);
    let mut runner = TestRunner::new_with_rng(
        Config::with_cases(cases),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    runner
        .run(&batches, |batches| {
            let n = case.fetch_add(1, Ordering::Relaxed);
            let exps = [format!("c{n}-e0"), format!("c{n}-e1")];
            let mem = MemoryStorage::new();
            for (batch, purge) in &batches {
                let events: Vec<UnitEvent<'_>> = batch
                    .iter()
                    .map(|(x, u, id, at, kind)| UnitEvent {
                        experiment: &exps[*x],
                        unit: UNITS[*u],
                        event_id: id.map(|i| IDS[i]),
                        at: Timestamp::from_unix_millis(*at),
                        kind: *kind,
                    })
                    .collect();
                prop_assert_eq!(
                    store.apply_events(&events).unwrap(),
                    mem.apply_events(&events).unwrap()
                );
                if let Some(x) = purge {
                    store.purge_events(&exps[*x]).unwrap();
                    mem.purge_events(&exps[*x]).unwrap();
                }
            }
            for x in &exps {
                prop_assert_eq!(store.totals(x).unwrap(), mem.totals(x).unwrap());
                for u in UNITS {
                    prop_assert_eq!(
                        store.unit_state(x, u).unwrap(),
                        mem.unit_state(x, u).unwrap()
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}
