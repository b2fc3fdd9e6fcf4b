//! Scheduling and bandits (issue 18): `Lab::tick` starts and stops experiments at `startAt` /
//! `stopAt`, opens and closes flag rules' windows, catches up on missed ticks, makes each
//! transition exactly once across instances sharing a store, and moves a bandit's weights.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[cfg(feature = "sqlite")]
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(feature = "sqlite")]
use std::sync::atomic::{AtomicU32, Ordering};

use abkit::storage::Storage;
use abkit::{
    Context, ExperimentPatch, ExperimentType, Lab, ManualClock, NewExperiment, NewFlag, NewVariant,
    Status, Timestamp, TrackEvent,
};
use serde_json::json;

const T0: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;

fn at(offset: i64) -> Timestamp {
    Timestamp::from_unix_millis(T0 + offset)
}

fn lab_on(storage: Arc<dyn Storage>) -> Lab {
    Lab::builder()
        .storage(storage)
        .clock(Arc::new(ManualClock::new(at(0))))
        .build()
        .unwrap()
}

fn scheduled(name: &str, start: Option<i64>, stop: Option<i64>) -> NewExperiment {
    NewExperiment {
        name: name.into(),
        variants: vec![NewVariant::named("a", "A"), NewVariant::named("b", "B")],
        start_at: start.map(at),
        stop_at: stop.map(at),
        ..NewExperiment::default()
    }
}

#[test]
fn tick_starts_and_stops_at_the_scheduled_times() {
    let lab = Lab::builder()
        .clock(Arc::new(ManualClock::new(at(0))))
        .build()
        .unwrap();
    let e = lab
        .experiments()
        .create(scheduled("s", Some(HOUR), Some(3 * HOUR)))
        .unwrap();
    let id = e.id().as_str().to_owned();
    assert_eq!(e.start_at(), Some(at(HOUR)));
    let r = lab.tick(at(HOUR - 1)).unwrap();
    assert!(r.is_empty(), "{r:?}");
    assert_eq!(lab.experiments().get(&id).unwrap().status(), Status::Draft);

    let r = lab.tick(at(HOUR)).unwrap();
    assert_eq!(r.started, vec![id.clone()]);
    let got = lab.experiments().get(&id).unwrap();
    assert_eq!(got.status(), Status::Running);
    assert_eq!(
        got.started_at(),
        Some(at(HOUR)),
        "stamped with the tick's now"
    );
    // Served: the snapshot was published by the tick.
    assert!(
        lab.assign(&id, &Context::new("u1"))
            .unwrap()
            .variant()
            .is_some()
    );
    // Nothing more until the stop.
    assert!(lab.tick(at(2 * HOUR)).unwrap().is_empty());
    let r = lab.tick(at(3 * HOUR + 5)).unwrap();
    assert_eq!(r.stopped, vec![id.clone()]);
    let got = lab.experiments().get(&id).unwrap();
    assert_eq!(got.status(), Status::Stopped);
    assert_eq!(got.ended_at(), Some(at(3 * HOUR + 5)));
    assert!(lab.tick(at(10 * HOUR)).unwrap().is_empty());
}

#[test]
fn a_late_tick_catches_up_on_everything_due() {
    let lab = Lab::new();
    let both = lab
        .experiments()
        .create(scheduled("both", Some(HOUR), Some(2 * HOUR)))
        .unwrap();
    let start_only = lab
        .experiments()
        .create(scheduled("start", Some(HOUR), None))
        .unwrap();
    let future = lab
        .experiments()
        .create(scheduled("future", Some(100 * HOUR), None))
        .unwrap();
    // The host missed every tick for a day.
    let r = lab.tick(at(24 * HOUR)).unwrap();
    let mut started = r.started.clone();
    started.sort();
    let mut want = vec![both.id().to_string(), start_only.id().to_string()];
    want.sort();
    assert_eq!(started, want);
    assert_eq!(r.stopped, vec![both.id().to_string()]);
    let st = |id: &str| lab.experiments().get(id).unwrap().status();
    assert_eq!(st(both.id().as_str()), Status::Stopped);
    assert_eq!(st(start_only.id().as_str()), Status::Running);
    assert_eq!(st(future.id().as_str()), Status::Draft);
}

#[test]
fn schedules_are_validated_and_listed_in_payloads() {
    let lab = Lab::new();
    let err = lab
        .experiments()
        .create(scheduled("bad", Some(2 * HOUR), Some(HOUR)))
        .unwrap_err();
    assert!(err.to_string().contains("stopAt"), "{err}");
    let e = lab
        .experiments()
        .create(scheduled("s", None, None))
        .unwrap();
    let e = lab
        .experiments()
        .update(
            e.id().as_str(),
            e.version(),
            ExperimentPatch {
                start_at: Some(at(HOUR)),
                stop_at: Some(at(2 * HOUR)),
                ..ExperimentPatch::default()
            },
        )
        .unwrap();
    let canonical = serde_json::to_value(&*e).unwrap();
    assert_eq!(canonical["startAt"], json!(at(HOUR).to_string()));
    assert_eq!(canonical["stopAt"], json!(at(2 * HOUR).to_string()));
    let counts = lab.reports().counts_of(e.clone()).unwrap();
    let flow = serde_json::to_value(abkit::wire::flow::FlowExperiment::summary(&counts)).unwrap();
    assert_eq!(flow["startAt"], canonical["startAt"]);
    let feed = serde_json::to_value(abkit::wire::feed::FeedExperiment::summary(&e)).unwrap();
    assert_eq!(feed["stopAt"], canonical["stopAt"]);
    // An unscheduled experiment's payloads gain no field.
    let plain = lab
        .experiments()
        .create(scheduled("p", None, None))
        .unwrap();
    let feed = serde_json::to_value(abkit::wire::feed::FeedExperiment::summary(&plain)).unwrap();
    assert!(feed.get("startAt").is_none() && feed.get("stopAt").is_none());
}

#[test]
fn flag_rules_are_served_only_inside_their_window_as_ticked() {
    let lab = Lab::builder()
        .clock(Arc::new(ManualClock::new(at(0))))
        .build()
        .unwrap();
    let new: NewFlag = serde_json::from_value(json!({
        "project_id": "p", "key": "promo", "default_value": "off", "enabled": true,
        "rules": [{
            "id": "sale", "condition": {}, "value": "on",
            "activeFrom": at(HOUR).to_string(), "activeUntil": at(2 * HOUR).to_string()
        }]
    }))
    .unwrap();
    lab.flags().create(new).unwrap();
    let ctx = Context::new("u1");
    let value = |lab: &Lab| lab.string_value("p", "production", "promo", &ctx, "?");
    assert_eq!(
        value(&lab),
        "off",
        "before the window (as of the lab's load)"
    );
    // The clock moving does nothing: only a tick applies the window.
    assert_eq!(lab.tick(at(HOUR - 1)).unwrap().flags_recompiled, 0);
    assert_eq!(value(&lab), "off");
    assert_eq!(lab.tick(at(HOUR)).unwrap().flags_recompiled, 1);
    assert_eq!(value(&lab), "on");
    assert_eq!(lab.tick(at(HOUR + 10)).unwrap().flags_recompiled, 0);
    assert_eq!(value(&lab), "on");
    assert_eq!(lab.tick(at(5 * HOUR)).unwrap().flags_recompiled, 1);
    assert_eq!(value(&lab), "off");
    // The flag as stored keeps the rule and its window.
    let f = lab.flags().list("p").unwrap();
    assert_eq!(f[0].rules[0].active_until, Some(at(2 * HOUR)));
    let bad: NewFlag = serde_json::from_value(json!({
        "project_id": "p", "key": "bad", "default_value": "off",
        "rules": [{"id": "r", "value": "on",
                   "activeFrom": at(HOUR).to_string(), "activeUntil": at(HOUR).to_string()}]
    }))
    .unwrap();
    let err = lab.flags().create(bad).unwrap_err();
    assert!(err.to_string().contains("rules[0].activeUntil"), "{err}");
}

// ----- two instances on one store -----

#[cfg(feature = "sqlite")]
fn temp_db(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!(
        "abkit-schedule-{name}-{}-{n}.db",
        std::process::id()
    ));
    remove_db(&p);
    p
}

#[cfg(feature = "sqlite")]
fn remove_db(p: &Path) {
    for suffix in ["", "-wal", "-shm", ".marker"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
}

/// Two labs on one store tick the same instants, in turn and racing on threads: every
/// transition is made by exactly one of them.
fn two_instances_tick_exactly_once(a: Arc<Lab>, b: Arc<Lab>) {
    let ids: Vec<String> = (0..6)
        .map(|i| {
            a.experiments()
                .create(scheduled(
                    &format!("e{i}"),
                    Some(HOUR * (1 + i % 3)),
                    Some(HOUR * (4 + i % 2)),
                ))
                .unwrap()
                .id()
                .to_string()
        })
        .collect();
    b.sync().unwrap();
    if b.experiments().get(&ids[0]).is_ok() && b.compiled_experiment(&ids[0]).is_none() {
        b.refresh().unwrap();
    }
    let version = |id: &str| a.experiments().get(id).unwrap().version();
    let before: Vec<u64> = ids.iter().map(|id| version(id)).collect();
    let mut started = Vec::new();
    let mut stopped = Vec::new();
    let mut lost = 0;
    for hour in 0..8 {
        let now = at(hour * HOUR);
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| a.tick(now).unwrap());
            let tb = s.spawn(|| b.tick(now).unwrap());
            (ta.join().unwrap(), tb.join().unwrap())
        });
        for r in [&ra, &rb] {
            assert!(r.failed.is_empty(), "{r:?}");
            started.extend(r.started.iter().cloned());
            stopped.extend(r.stopped.iter().cloned());
            lost += r.lost.len();
        }
        // The loser moved on: a tick at the same instant again finds nothing due.
        assert!(a.tick(now).unwrap().started.is_empty());
        assert!(b.tick(now).unwrap().stopped.is_empty());
    }
    started.sort();
    stopped.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(started, want, "every experiment started exactly once");
    assert_eq!(stopped, want, "every experiment stopped exactly once");
    for (id, v0) in ids.iter().zip(before) {
        let e = a.experiments().get(id).unwrap();
        assert_eq!(e.status(), Status::Stopped);
        assert_eq!(e.version(), v0 + 2, "{id}: one start and one stop written");
    }
    // Both instances serve the same thing afterwards.
    b.sync().unwrap();
    for id in &ids {
        assert_eq!(
            b.compiled_experiment(id).map(|c| c.experiment().status()),
            Some(Status::Stopped)
        );
    }
    // Races are possible, not guaranteed: `lost` counts the ones that happened.
    let _ = lost;
}

#[cfg(feature = "sqlite")]
#[test]
fn two_instances_on_one_sqlite_file_tick_exactly_once() {
    let path = temp_db("two");
    let open =
        || -> Arc<dyn Storage> { Arc::new(abkit::storage::SqliteStorage::open(&path).unwrap()) };
    let a = Arc::new(lab_on(open()));
    let b = Arc::new(lab_on(open()));
    two_instances_tick_exactly_once(a, b);
    remove_db(&path);
}

#[test]
fn two_instances_on_one_memory_store_tick_exactly_once() {
    let store: Arc<dyn Storage> = Arc::new(abkit::storage::MemoryStorage::new());
    let a = Arc::new(lab_on(Arc::clone(&store)));
    let b = Arc::new(lab_on(store));
    two_instances_tick_exactly_once(a, b);
}

#[cfg(feature = "sqlite")]
#[test]
fn a_stale_instance_loses_and_reports_it() {
    let path = temp_db("stale");
    let open =
        || -> Arc<dyn Storage> { Arc::new(abkit::storage::SqliteStorage::open(&path).unwrap()) };
    let a = lab_on(open());
    let id = a
        .experiments()
        .create(scheduled("s", Some(HOUR), None))
        .unwrap()
        .id()
        .to_string();
    let b = lab_on(open());
    assert_eq!(a.tick(at(HOUR)).unwrap().started, vec![id.clone()]);
    // b has not synced: its configuration still says draft; the store says running.
    let r = b.tick(at(HOUR)).unwrap();
    assert!(r.started.is_empty());
    assert_eq!(r.lost, vec![id.clone()]);
    // …and it re-read the record, so the next tick finds nothing due.
    assert!(b.tick(at(HOUR + 1)).unwrap().is_empty());
    assert_eq!(a.experiments().get(&id).unwrap().version(), 2);
    remove_db(&path);
}

// ----- bandits -----

fn bandit(lab: &Lab) -> String {
    let e = lab
        .experiments()
        .create(NewExperiment {
            name: "bandit".into(),
            kind: Some(ExperimentType::Bandit),
            variants: vec![
                NewVariant::named("a", "A"),
                NewVariant::named("b", "B"),
                NewVariant::named("c", "C"),
            ],
            bandit: Some(abkit::BanditSettings {
                min_exploration_share: Some(0.1),
                update_period_seconds: Some(3600),
            }),
            ..NewExperiment::default()
        })
        .unwrap();
    assert!(e.is_sticky(), "a bandit is always sticky");
    e.id().to_string()
}

#[test]
fn a_bandit_moves_traffic_to_the_best_arm_and_units_keep_their_arm() {
    let clock = Arc::new(ManualClock::new(at(0)));
    let lab = Lab::builder().clock(clock.clone()).build().unwrap();
    let id = bandit(&lab);
    lab.experiments().start(&id).unwrap();
    let rates = [0.02, 0.05, 0.30];
    let mut arms_of = Vec::new();
    for u in 0..600 {
        let unit = format!("u{u}");
        let ctx = Context::new(&unit);
        let v = lab.expose(&id, &ctx).unwrap().unwrap();
        let arm = ["a", "b", "c"]
            .iter()
            .position(|k| *k == v.as_str())
            .unwrap();
        // Deterministic "random" conversions at the arm's rate.
        if (u * 7919 % 1000) as f64 / 1000.0 < rates[arm] {
            lab.events()
                .track(&TrackEvent::conversion(&id, &unit))
                .unwrap();
        }
        arms_of.push((unit, v.to_string()));
    }
    assert!(lab.tick(at(HOUR - 1)).unwrap().reweighted.is_empty());
    let r = lab.tick(at(HOUR)).unwrap();
    assert_eq!(r.reweighted, vec![id.clone()]);
    let e = lab.experiments().get(&id).unwrap();
    let b = e.bandit().unwrap();
    assert_eq!(b.weight_version, 1);
    assert_eq!(b.periods.len(), 2, "the initial weights and the new ones");
    let w: Vec<u16> = e
        .variants()
        .iter()
        .map(|v| v.weight.basis_points())
        .collect();
    assert_eq!(w.iter().sum::<u16>(), 10_000);
    assert!(w[2] > 5000, "{w:?}");
    assert!(w.iter().all(|x| *x >= 999), "exploration share kept: {w:?}");
    // Sticky units keep their arm under the new weights.
    let stored = lab.storage();
    for (unit, v) in arms_of.iter().take(200) {
        let ctx =
            Context::new(unit).with_sticky_assignments(stored.sticky_assignments(unit).unwrap());
        assert_eq!(
            lab.assign(&id, &ctx)
                .unwrap()
                .variant()
                .unwrap()
                .id
                .as_str(),
            v
        );
    }
    // Not due again until a period later; the same data and version give the same weights.
    assert!(lab.tick(at(HOUR + 10)).unwrap().reweighted.is_empty());
    assert_eq!(lab.tick(at(2 * HOUR)).unwrap().reweighted, vec![id.clone()]);
    let arms = lab.reports().bandit(&id).unwrap();
    assert_eq!(arms.len(), 3);
    assert!(
        arms.iter()
            .all(|a| a.mean.is_some() && a.standard_error.is_some())
    );
    assert!(arms[2].mean.unwrap() > arms[0].mean.unwrap());
}

#[test]
fn bandit_settings_are_checked() {
    let lab = Lab::new();
    let mk = |share: f64, kind: ExperimentType| NewExperiment {
        name: "x".into(),
        kind: Some(kind),
        variants: vec![NewVariant::named("a", "A"), NewVariant::named("b", "B")],
        bandit: Some(abkit::BanditSettings {
            min_exploration_share: Some(share),
            update_period_seconds: None,
        }),
        ..NewExperiment::default()
    };
    let err = lab
        .experiments()
        .create(mk(0.7, ExperimentType::Bandit))
        .unwrap_err();
    assert!(
        err.to_string().contains("bandit.minExplorationShare"),
        "{err}"
    );
    let err = lab
        .experiments()
        .create(mk(0.1, ExperimentType::AbTest))
        .unwrap_err();
    assert!(err.to_string().contains("bandit"), "{err}");
    let err = lab.reports().bandit("nope").unwrap_err();
    assert!(matches!(err, abkit::Error::NotFound { .. }), "{err}");
}
