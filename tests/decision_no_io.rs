//! Decisions never touch storage: once the lab is built and configured, `Lab::assign` and
//! `Lab::evaluate` are served from the compiled snapshot. A storage wrapper that panics on every
//! read and write proves it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use abkit::storage::{
    EventOutcome, ExperimentTotals, MemoryStorage, Record, RecordChange, RecordKind, RecordWrite,
    Storage, StorageError, UnitEvent, UnitState,
};
use abkit::{Context, Lab, NewExperiment, NewFlag, Reason};
use serde_json::json;

/// A working store until armed; then every call panics, naming the method.
#[derive(Debug, Default)]
struct Tripwire {
    inner: MemoryStorage,
    armed: AtomicBool,
}

impl Tripwire {
    fn check(&self, method: &str) {
        assert!(
            !self.armed.load(Ordering::SeqCst),
            "storage was called after setup: {method}"
        );
    }
}

impl Storage for Tripwire {
    fn get_record(&self, kind: RecordKind, id: &str) -> Result<Option<Record>, StorageError> {
        self.check("get_record");
        self.inner.get_record(kind, id)
    }

    fn list_records(&self, kind: RecordKind) -> Result<Vec<Record>, StorageError> {
        self.check("list_records");
        self.inner.list_records(kind)
    }

    fn put_record(&self, w: RecordWrite<'_>, expected: Option<u64>) -> Result<u64, StorageError> {
        self.check("put_record");
        self.inner.put_record(w, expected)
    }

    fn delete_record(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StorageError> {
        self.check("delete_record");
        self.inner.delete_record(kind, id, expected)
    }

    fn commit(&self, changes: &[RecordChange<'_>]) -> Result<Vec<u64>, StorageError> {
        self.check("commit");
        self.inner.commit(changes)
    }

    fn apply_events(&self, events: &[UnitEvent<'_>]) -> Result<Vec<EventOutcome>, StorageError> {
        self.check("apply_events");
        self.inner.apply_events(events)
    }

    fn apply_event(&self, event: &UnitEvent<'_>) -> Result<EventOutcome, StorageError> {
        self.check("apply_event");
        self.inner.apply_event(event)
    }

    fn unit_state(&self, experiment: &str, unit: &str) -> Result<Option<UnitState>, StorageError> {
        self.check("unit_state");
        self.inner.unit_state(experiment, unit)
    }

    fn totals(&self, experiment: &str) -> Result<ExperimentTotals, StorageError> {
        self.check("totals");
        self.inner.totals(experiment)
    }

    fn purge_events(&self, experiment: &str) -> Result<(), StorageError> {
        self.check("purge_events");
        self.inner.purge_events(experiment)
    }

    fn sticky_assignments(&self, unit: &str) -> Result<Vec<(String, String)>, StorageError> {
        self.check("sticky_assignments");
        self.inner.sticky_assignments(unit)
    }

    fn save_sticky_assignments(
        &self,
        unit: &str,
        assignments: &[(&str, &str)],
    ) -> Result<(), StorageError> {
        self.check("save_sticky_assignments");
        self.inner.save_sticky_assignments(unit, assignments)
    }
}

#[test]
fn assign_and_evaluate_never_touch_storage() {
    let store = Arc::new(Tripwire::default());
    let lab = Lab::builder().storage(store.clone()).build().unwrap();

    let exp: NewExperiment = serde_json::from_value(json!({
        "name": "Button colour",
        "variants": [{"id": "control", "splitPercentage": 50}, {"id": "green", "splitPercentage": 50}]
    }))
    .unwrap();
    let exp = lab.experiments().create(exp).unwrap();
    let exp_id = exp.id().as_str().to_owned();
    lab.experiments().start(&exp_id).unwrap();

    let flag: NewFlag = serde_json::from_value(json!({
        "project_id": "proj",
        "key": "checkout_flow",
        "default_value": "control",
        "enabled": true
    }))
    .unwrap();
    let flag = lab.flags().create(flag).unwrap();
    let flag_exp: NewExperiment = serde_json::from_value(json!({
        "name": "Checkout flow",
        "environment": "production",
        "variants": [
            {"key": "control", "value": "old_checkout", "percentage": 50},
            {"key": "treatment", "value": "new_checkout", "percentage": 50}
        ]
    }))
    .unwrap();
    let flag_exp = lab
        .flags()
        .create_experiment(flag.id.as_str(), flag_exp)
        .unwrap();
    lab.experiments().start(flag_exp.id().as_str()).unwrap();

    store.armed.store(true, Ordering::SeqCst);

    let mut per_variant = [0u32; 2];
    let mut per_value = [0u32; 2];
    for i in 0..5_000 {
        let ctx = Context::new(format!("usr_{i}"));
        let a = lab.assign(&exp_id, &ctx).unwrap();
        let v = a.variant().unwrap().id.as_str().to_owned();
        per_variant[usize::from(v == "green")] += 1;
        // Deterministic: the same unit gets the same variant again.
        assert_eq!(
            lab.assign(&exp_id, &ctx)
                .unwrap()
                .variant()
                .unwrap()
                .id
                .as_str(),
            v
        );

        let e = lab.evaluate("proj", "production", "checkout_flow", &ctx);
        assert_eq!(e.reason(), Reason::Split, "{e:?}");
        let value = e.value().as_str().unwrap().to_owned();
        assert!(
            value == "old_checkout" || value == "new_checkout",
            "{value}"
        );
        per_value[usize::from(value == "new_checkout")] += 1;
        assert_eq!(
            e.variant_key().map(|k| k.as_str()),
            Some(if value == "new_checkout" {
                "treatment"
            } else {
                "control"
            })
        );
        let missing = lab.evaluate("proj", "production", "no_such_flag", &ctx);
        assert_eq!(missing.reason(), Reason::Error);
    }
    // The wire is live: a storage call now panics.
    let tripped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lab.storage().totals(&exp_id)
    }));
    assert!(tripped.is_err(), "the armed wrapper must panic on a read");
    // Both arms are served (a 50/50 split of 5 000 units is nowhere near 0).
    assert!(per_variant.iter().all(|n| *n > 1_000), "{per_variant:?}");
    assert!(per_value.iter().all(|n| *n > 1_000), "{per_value:?}");
}
