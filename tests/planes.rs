//! The core in planes: decisions that remember their context, versions beside values, typed
//! conflicts, and the smaller defects of the first layout — each test failed (or could not be
//! written) before.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::error::Error as _;
use std::sync::Arc;

use abkit::{
    AnalysisOptions, Audience, Condition, Conflict, Context, Error, FlagPatch, Lab, ManualClock,
    NewExperiment, NewFlag, Reason, StopRequest, Timestamp, TrackEvent, ValidationError,
};
use serde_json::json;

fn experiment(body: serde_json::Value) -> NewExperiment {
    let mut base =
        json!({"name": "x", "variants": [{"id": "a", "value": "A"}, {"id": "b", "value": "B"}]});
    if let (Some(b), Some(extra)) = (base.as_object_mut(), body.as_object()) {
        b.extend(extra.clone());
    }
    serde_json::from_value(base).unwrap()
}

fn flag(lab: &Lab, key: &str) -> abkit::Versioned<abkit::Flag> {
    lab.flags()
        .create(NewFlag {
            project_id: "p".into(),
            key: key.into(),
            default_value: json!("default"),
            ..NewFlag::default()
        })
        .unwrap()
}

#[test]
fn a_decision_records_the_unit_it_was_made_for() {
    let lab = Lab::new();
    let e = lab.experiments().create(experiment(json!({}))).unwrap();
    let id = e.id().as_str();
    lab.experiments().start(id).unwrap();
    for unit in ["u1", "u2", "someone-else"] {
        let ctx = Context::new(unit);
        let d = lab.assign(id, &ctx).unwrap();
        let x = d.exposure().unwrap();
        assert_eq!(x.unit_id, unit);
        assert_eq!(Some(&x.variant), d.variant_key().as_ref());
        assert_eq!(d.context().key(), Some(unit));
        // A peek decides the same, and offers no exposure to record.
        let p = lab.peek(id, &ctx).unwrap();
        assert_eq!(p.variant_key(), d.variant_key());
        assert_eq!(p.reason(), d.reason());
    }
    // Peeking enrols nobody; recording the decision's exposure enrols its unit.
    let ctx = Context::new("u1");
    lab.peek(id, &ctx).unwrap();
    assert_eq!(lab.storage().unit_state(id, "u1").unwrap(), None);
    let d = lab.assign(id, &ctx).unwrap();
    lab.events().record(&d.exposure().unwrap()).unwrap();
    assert!(lab.storage().unit_state(id, "u1").unwrap().is_some());
}

#[test]
fn a_flag_experiment_stopped_with_a_winner_serves_the_flag_default_everywhere() {
    let lab = Lab::new();
    let f = flag(&lab, "checkout");
    let e = lab
        .flags()
        .create_experiment(f.id.as_str(), experiment(json!({})))
        .unwrap();
    let id = e.id().as_str();
    lab.experiments().start(id).unwrap();
    lab.experiments()
        .stop(
            id,
            StopRequest {
                winner: Some("b".into()),
                reason: None,
            },
        )
        .unwrap();
    for i in 0..50 {
        let ctx = Context::new(format!("u{i}"));
        let ev = lab.evaluate("p", "production", "checkout", &ctx);
        assert_eq!(ev.value(), &json!("default"));
        assert_eq!(ev.reason(), Reason::Disabled);
        // assign agrees with evaluate: no rollout of an unpromoted winner.
        let d = lab.assign(id, &ctx).unwrap();
        assert_eq!(d.variant_key(), None);
        assert_eq!(d.reason(), Reason::NotRunning);
    }
    // A plain experiment stopped with a winner still rolls it out.
    let plain = lab.experiments().create(experiment(json!({}))).unwrap();
    lab.experiments().start(plain.id().as_str()).unwrap();
    lab.experiments()
        .stop(
            plain.id().as_str(),
            StopRequest {
                winner: Some("b".into()),
                reason: None,
            },
        )
        .unwrap();
    let ctx = Context::new("u1");
    let d = lab.assign(plain.id().as_str(), &ctx).unwrap();
    assert_eq!(d.reason(), Reason::Rollout);
    assert_eq!(d.variant_key().map(|k| k.as_str()), Some("b"));
}

#[test]
fn listed_flags_carry_their_current_versions() {
    let lab = Lab::new();
    let f = flag(&lab, "k");
    assert_eq!(f.version(), 1);
    let updated = lab.flags().set_enabled(f.id.as_str(), true).unwrap();
    assert_eq!(updated.version(), 2);
    let listed = lab.flags().list("p").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].version(), 2);
    assert!(listed[0].enabled);
    // A stale version is a conflict; the flag keeps the newer change.
    let err = lab
        .flags()
        .update(
            f.id.as_str(),
            1,
            FlagPatch {
                enabled: Some(false),
                ..FlagPatch::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict(Conflict::Version {
                expected: 1,
                found: 2,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(lab.flags().get(f.id.as_str()).unwrap().enabled);
    let ok = lab
        .flags()
        .update(
            f.id.as_str(),
            2,
            FlagPatch {
                enabled: Some(false),
                ..FlagPatch::default()
            },
        )
        .unwrap();
    assert_eq!((ok.version(), ok.enabled), (3, false));
}

#[test]
fn ids_take_their_time_from_the_labs_clock() {
    // 2001-09-09T01:46:40Z = 1e12 ms: the id's 9-character time part is that instant.
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_millis(
        1_000_000_000_000,
    )));
    let lab = Lab::builder().clock(clock.clone()).build().unwrap();
    let a = lab.experiments().create(experiment(json!({}))).unwrap();
    let b = lab.experiments().create(experiment(json!({}))).unwrap();
    let time = |id: &str| id["exp_".len().."exp_".len() + 9].to_owned();
    assert_eq!(time(a.id().as_str()), time(b.id().as_str()));
    clock.advance_millis(32);
    let c = lab.experiments().create(experiment(json!({}))).unwrap();
    assert_ne!(time(c.id().as_str()), time(a.id().as_str()));
    // The time part is the clock's, not the machine's: decode it.
    const ALPHABET: &str = "0123456789abcdefghjkmnpqrstvwxyz";
    let millis = time(a.id().as_str()).chars().fold(0_u64, |acc, ch| {
        acc * 32 + ALPHABET.find(ch).unwrap() as u64
    });
    assert_eq!(millis, 1_000_000_000_000);
}

#[test]
fn covariates_are_refused_for_ratio_metrics_and_need_no_fake_event() {
    let lab = Lab::new();
    let e = lab
        .experiments()
        .create(experiment(json!({
            "metrics": ["conversion", {"name": "aov", "kind": "ratio"}, {"name": "revenue", "kind": "mean"}]
        })))
        .unwrap();
    let id = e.id().as_str();
    lab.experiments().start(id).unwrap();
    lab.expose(id, &Context::new("u1")).unwrap();
    let err = lab
        .events()
        .set_covariate(id, "u1", "aov", 3.0)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation(v) if v.field_name() == "metric"),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"aov\""), "{err}");
    lab.events()
        .set_covariate(id, "u1", "revenue", 3.0)
        .unwrap();
    let err = lab
        .events()
        .set_covariate(id, "u1", "revenue", f64::NAN)
        .unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
    let err = lab
        .events()
        .set_covariate(id, "", "revenue", 1.0)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation(v) if v.field_name() == "unitId"),
        "{err:?}"
    );
}

#[test]
fn an_experiment_without_data_is_analysed_with_null_estimates() {
    let lab = Lab::new();
    let e = lab.experiments().create(experiment(json!({}))).unwrap();
    let id = e.id().as_str();
    let report = lab
        .reports()
        .analyze(id, &AnalysisOptions::default())
        .unwrap();
    assert_eq!(report.variants.len(), 2);
    for v in &report.variants {
        let m = v.report.metric("conversion").unwrap();
        assert_eq!(m.value, None);
        if let Some(c) = &m.comparison {
            assert_eq!(c.p_value, None);
            assert!(!c.significant);
        }
    }
    assert_eq!(report.recommendation.winner, None);
    let text = serde_json::to_string(&report).unwrap();
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
}

#[test]
fn a_flag_with_a_running_experiment_cannot_be_deleted() {
    let lab = Lab::new();
    let f = flag(&lab, "k");
    let e = lab
        .flags()
        .create_experiment(f.id.as_str(), experiment(json!({})))
        .unwrap();
    lab.experiments().start(e.id().as_str()).unwrap();
    let err = lab.flags().delete(f.id.as_str()).unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(Conflict::FlagHasRunningExperiment { running, .. }) if running == e.id().as_str()),
        "{err:?}"
    );
    assert!(lab.flags().get(f.id.as_str()).is_ok());
    lab.experiments()
        .stop(e.id().as_str(), StopRequest::default())
        .unwrap();
    lab.flags().delete(f.id.as_str()).unwrap();
    assert!(matches!(
        lab.flags().get(f.id.as_str()),
        Err(Error::NotFound { kind: "flag", .. })
    ));
    let ctx = Context::new("u1");
    assert_eq!(
        lab.evaluate("p", "production", "k", &ctx).error_code(),
        Some(abkit::ErrorCode::FlagNotFound)
    );
}

#[test]
fn errors_keep_their_typed_cause() {
    let lab = Lab::new();
    let err = lab
        .experiments()
        .create(experiment(json!({"targeting": {"country": {"$nope": 1}}})))
        .unwrap_err();
    let Error::Validation(ValidationError::Condition { field, source }) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(field, "targeting");
    let cause = err.source().expect("a cause");
    assert!(cause.downcast_ref::<abkit::ConditionError>().is_some() || cause.source().is_some());
    assert!(err.to_string().contains("$nope"), "{err}");
    assert!(source.to_string().contains("$nope"));

    let err = lab
        .experiments()
        .create(
            serde_json::from_value(json!({"name": "x", "variants": [
                {"id": "a", "splitPercentage": 60}, {"id": "b", "splitPercentage": 60}
            ]}))
            .unwrap(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation(ValidationError::Weight { field, .. }) if field == "variants"),
        "{err:?}"
    );
}

#[test]
fn a_flag_experiment_must_run_in_its_flags_environment() {
    let lab = Lab::new();
    let f = lab
        .flags()
        .create(NewFlag {
            project_id: "p".into(),
            key: "k".into(),
            default_value: json!("off"),
            environment: Some("production".into()),
            ..NewFlag::default()
        })
        .unwrap();
    let err = lab
        .flags()
        .create_experiment(f.id.as_str(), experiment(json!({"environment": "staging"})))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation(v) if v.field_name() == "environment"),
        "{err:?}"
    );
    assert!(err.to_string().contains("staging") && err.to_string().contains("production"));
    lab.flags()
        .create_experiment(
            f.id.as_str(),
            experiment(json!({"environment": "production"})),
        )
        .unwrap();
}

#[test]
fn records_in_use_by_a_running_experiment_cannot_be_deleted() {
    let lab = Lab::new();
    lab.targeting()
        .put_audience(Audience {
            id: "aud_de".parse().unwrap(),
            name: "DE".into(),
            condition: Condition::parse(&json!({"country": "DE"})).unwrap(),
        })
        .unwrap();
    let e = lab
        .experiments()
        .create(experiment(json!({"audienceId": "aud_de"})))
        .unwrap();
    lab.experiments().start(e.id().as_str()).unwrap();
    let err = lab.targeting().delete_audience("aud_de").unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Conflict(Conflict::InUse {
                kind: "audience",
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(lab.targeting().list_audiences().unwrap().len(), 1);
    lab.experiments()
        .stop(e.id().as_str(), StopRequest::default())
        .unwrap();
    lab.targeting().delete_audience("aud_de").unwrap();
    assert!(lab.targeting().list_audiences().unwrap().is_empty());
}

#[test]
fn conversions_still_count_once_through_the_event_handle() {
    let lab = Lab::new();
    let e = lab.experiments().create(experiment(json!({}))).unwrap();
    let id = e.id().as_str();
    lab.experiments().start(id).unwrap();
    lab.expose(id, &Context::new("u1")).unwrap();
    lab.events()
        .track(&TrackEvent::conversion(id, "u1"))
        .unwrap();
    lab.events()
        .track(&TrackEvent::conversion(id, "u1"))
        .unwrap();
    let r = lab.reports().compute_results(id).unwrap();
    assert_eq!(r.variants.iter().map(|v| v.conversions).sum::<u64>(), 1);
}

#[test]
fn deleting_an_experiment_removes_its_sticky_assignments() {
    // A reused id (sequential ids, a second process) must not inherit the old assignments.
    let store: Arc<dyn abkit::storage::Storage> = Arc::new(abkit::storage::MemoryStorage::new());
    let build = || {
        Lab::builder()
            .storage(Arc::clone(&store))
            .id_generator(Arc::new(abkit::SequentialIdGenerator::default()))
            .build()
            .unwrap()
    };
    let lab = build();
    let e = lab
        .experiments()
        .create(experiment(json!({"sticky": true})))
        .unwrap();
    let id = e.id().to_string();
    lab.experiments().start(&id).unwrap();
    for i in 0..50 {
        lab.expose(&id, &Context::new(format!("u{i}"))).unwrap();
    }
    assert!(!lab.storage().sticky_assignments("u0").unwrap().is_empty());
    lab.experiments().stop(&id, StopRequest::default()).unwrap();
    lab.experiments().delete(&id).unwrap();
    for i in 0..50 {
        assert!(
            lab.storage()
                .sticky_assignments(&format!("u{i}"))
                .unwrap()
                .is_empty()
        );
    }
    // The same id again, with a 0% variant: nobody is served it through an old assignment.
    let again = build()
        .experiments()
        .create(experiment(json!({"sticky": true, "variants": [
            {"id": "a", "splitPercentage": 100}, {"id": "b", "splitPercentage": 0}
        ]})))
        .unwrap();
    assert_eq!(again.id().as_str(), id);
    let lab = build();
    lab.experiments().start(&id).unwrap();
    for i in 0..50 {
        let unit = format!("u{i}");
        let ctx = Context::new(unit.as_str())
            .with_sticky_assignments(lab.storage().sticky_assignments(&unit).unwrap());
        let d = lab.assign(&id, &ctx).unwrap();
        assert_eq!(d.variant_key().map(|k| k.as_str()), Some("a"), "{unit}");
        assert_ne!(d.reason(), Reason::Sticky);
    }
}

/// A store that fails the next `purge_events` or `delete_record` once, when asked to.
#[derive(Debug, Default)]
struct Flaky {
    inner: abkit::storage::MemoryStorage,
    fail_purge: std::sync::atomic::AtomicBool,
    fail_delete: std::sync::atomic::AtomicBool,
}

impl abkit::storage::Storage for Flaky {
    fn get_record(
        &self,
        kind: abkit::storage::RecordKind,
        id: &str,
    ) -> Result<Option<abkit::storage::Record>, abkit::storage::StorageError> {
        self.inner.get_record(kind, id)
    }
    fn list_records(
        &self,
        kind: abkit::storage::RecordKind,
    ) -> Result<Vec<abkit::storage::Record>, abkit::storage::StorageError> {
        self.inner.list_records(kind)
    }
    fn put_record(
        &self,
        write: abkit::storage::RecordWrite<'_>,
        expected: Option<u64>,
    ) -> Result<u64, abkit::storage::StorageError> {
        self.inner.put_record(write, expected)
    }
    fn commit(
        &self,
        changes: &[abkit::storage::RecordChange<'_>],
    ) -> Result<Vec<u64>, abkit::storage::StorageError> {
        self.inner.commit(changes)
    }
    fn delete_record(
        &self,
        kind: abkit::storage::RecordKind,
        id: &str,
        expected: u64,
    ) -> Result<(), abkit::storage::StorageError> {
        if self
            .fail_delete
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(abkit::storage::StorageError::Backend("injected".into()));
        }
        self.inner.delete_record(kind, id, expected)
    }
    fn apply_events(
        &self,
        events: &[abkit::storage::UnitEvent<'_>],
    ) -> Result<Vec<abkit::storage::EventOutcome>, abkit::storage::StorageError> {
        self.inner.apply_events(events)
    }
    fn unit_state(
        &self,
        experiment: &str,
        unit: &str,
    ) -> Result<Option<abkit::storage::UnitState>, abkit::storage::StorageError> {
        self.inner.unit_state(experiment, unit)
    }
    fn totals(
        &self,
        experiment: &str,
    ) -> Result<abkit::storage::ExperimentTotals, abkit::storage::StorageError> {
        self.inner.totals(experiment)
    }
    fn purge_events(&self, experiment: &str) -> Result<(), abkit::storage::StorageError> {
        if self
            .fail_purge
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(abkit::storage::StorageError::Backend("injected".into()));
        }
        self.inner.purge_events(experiment)
    }
    fn sticky_assignments(
        &self,
        unit: &str,
    ) -> Result<Vec<(String, String)>, abkit::storage::StorageError> {
        self.inner.sticky_assignments(unit)
    }
    fn save_sticky_assignments(
        &self,
        unit: &str,
        assignments: &[(&str, &str)],
    ) -> Result<(), abkit::storage::StorageError> {
        self.inner.save_sticky_assignments(unit, assignments)
    }
}

#[test]
fn a_failed_delete_leaves_nothing_orphaned_and_a_retry_completes_it() {
    use std::sync::atomic::Ordering;
    let store = Arc::new(Flaky::default());
    let lab = Lab::builder()
        .storage(Arc::clone(&store) as Arc<dyn abkit::storage::Storage>)
        .build()
        .unwrap();
    let setup = |lab: &Lab| {
        let e = lab.experiments().create(experiment(json!({}))).unwrap();
        let id = e.id().to_string();
        lab.experiments().start(&id).unwrap();
        lab.expose(&id, &Context::new("u1")).unwrap();
        lab.experiments().stop(&id, StopRequest::default()).unwrap();
        id
    };
    // The purge fails: the experiment and its events are still there, and a retry deletes both.
    let id = setup(&lab);
    store.fail_purge.store(true, Ordering::SeqCst);
    assert!(matches!(
        lab.experiments().delete(&id),
        Err(Error::Storage(_))
    ));
    assert!(lab.experiments().get(&id).is_ok());
    assert!(lab.storage().unit_state(&id, "u1").unwrap().is_some());
    lab.experiments().delete(&id).unwrap();
    assert!(matches!(
        lab.experiments().get(&id),
        Err(Error::NotFound { .. })
    ));
    assert!(lab.storage().unit_state(&id, "u1").unwrap().is_none());
    // The record delete fails after the purge: the experiment stays (with no events), and a
    // retry completes the delete instead of saying "not found".
    let id = setup(&lab);
    store.fail_delete.store(true, Ordering::SeqCst);
    assert!(matches!(
        lab.experiments().delete(&id),
        Err(Error::Storage(_))
    ));
    assert!(lab.experiments().get(&id).is_ok());
    assert!(lab.storage().unit_state(&id, "u1").unwrap().is_none());
    lab.experiments().delete(&id).unwrap();
    assert!(matches!(
        lab.experiments().get(&id),
        Err(Error::NotFound { .. })
    ));
    assert!(
        lab.assign(&id, &Context::new("u1")).is_err(),
        "gone from the snapshot too"
    );
}
