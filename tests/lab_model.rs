//! Model-based test: random sequences of facade operations against a trivially simple reference,
//! compared after every step. Nothing may panic; every outcome must agree.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::sync::Arc;

use abkit::{
    Error, ExperimentPatch, Lab, ListQuery, ManualClock, NewExperiment, SequentialIdGenerator,
    Status, StopRequest, Timestamp,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

#[derive(Clone, Debug)]
enum Op {
    Create {
        name_len: usize,
        variants: usize,
    },
    Update(usize, String),
    Ramp(usize, u16),
    Start(usize),
    Stop(usize, Option<bool>),
    Complete(usize),
    Archive(usize),
    Delete(usize),
    List {
        page: u32,
        limit: u32,
        status: Option<usize>,
    },
    /// Schedule experiment `i`: start and stop at these hours.
    Schedule(usize, Option<i64>, Option<i64>),
    /// Tick at this hour (never before the last tick), from the first or the second instance.
    Tick(i64, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..210, 0usize..4).prop_map(|(name_len, variants)| Op::Create { name_len, variants }),
        (0usize..8, "[a-z]{0,5}").prop_map(|(i, s)| Op::Update(i, s)),
        (0usize..8, 0u16..12_000).prop_map(|(i, t)| Op::Ramp(i, t)),
        (0usize..8).prop_map(Op::Start),
        (0usize..8, proptest::option::of(any::<bool>())).prop_map(|(i, w)| Op::Stop(i, w)),
        (0usize..8).prop_map(Op::Complete),
        (0usize..8).prop_map(Op::Archive),
        (0usize..8).prop_map(Op::Delete),
        (0u32..4, 0u32..103, proptest::option::of(0usize..5)).prop_map(|(page, limit, status)| {
            Op::List {
                page,
                limit,
                status,
            }
        }),
        (
            0usize..8,
            proptest::option::of(0i64..12),
            proptest::option::of(0i64..12)
        )
            .prop_map(|(i, a, b)| Op::Schedule(i, a, b)),
        (0i64..12, any::<bool>()).prop_map(|(h, second)| Op::Tick(h, second)),
    ]
}

/// The reference: a list of (id, status, name, traffic in bp) and the lifecycle table as data.
#[derive(Default, Debug)]
struct Model {
    exps: Vec<(String, Status, String, u16)>,
    /// Experiment id → (startAt, stopAt) in hours.
    schedule: std::collections::BTreeMap<String, (Option<i64>, Option<i64>)>,
    /// The latest tick's hour.
    now: i64,
}

const HOUR: i64 = 3_600_000;

fn allowed(status: Status, op: &str) -> Option<Status> {
    use Status::*;
    let table: &[(Status, &str, Status)] = &[
        (Draft, "update", Draft),
        (Draft, "ramp", Draft),
        (Draft, "start", Running),
        (Draft, "archive", Archived),
        (Draft, "delete", Draft),
        (Running, "ramp", Running),
        (Running, "stop", Stopped),
        (Running, "complete", Completed),
        (Stopped, "complete", Completed),
        (Stopped, "archive", Archived),
        (Stopped, "delete", Stopped),
        (Completed, "archive", Archived),
        (Completed, "delete", Completed),
        (Archived, "delete", Archived),
    ];
    table
        .iter()
        .find(|(s, o, _)| *s == status && *o == op)
        .map(|(_, _, n)| *n)
}

fn check(lab: &Lab, model: &Model) {
    for (id, status, name, traffic) in &model.exps {
        let e = lab.experiments().get(id).unwrap();
        assert_eq!(
            (e.status(), e.name(), e.traffic().basis_points()),
            (*status, name.as_str(), *traffic)
        );
    }
    let visible = model
        .exps
        .iter()
        .filter(|e| e.1 != Status::Archived)
        .count() as u64;
    assert_eq!(
        lab.experiments()
            .list(&ListQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .total,
        visible
    );
}

fn run(ops: Vec<Op>) {
    let store: Arc<dyn abkit::storage::Storage> = Arc::new(abkit::storage::MemoryStorage::new());
    let lab = Lab::builder()
        .storage(Arc::clone(&store))
        .clock(Arc::new(ManualClock::new(Timestamp::from_unix_millis(0))))
        .id_generator(Arc::new(SequentialIdGenerator::default()))
        .build()
        .unwrap();
    // A second instance on the same store; it ticks too (refreshing first, as a watcher keeps
    // it current), so every scheduled transition must still happen exactly once.
    let second = Lab::builder()
        .storage(store)
        .clock(Arc::new(ManualClock::new(Timestamp::from_unix_millis(0))))
        .build()
        .unwrap();
    let mut model = Model::default();
    for op in ops {
        let pick = |i: usize, m: &Model| {
            m.exps
                .get(i % m.exps.len().max(1))
                .map(|e| e.0.clone())
                .unwrap_or_else(|| "exp_none".into())
        };
        match op {
            Op::Create { name_len, variants } => {
                let new: NewExperiment = serde_json::from_value(serde_json::json!({
                    "name": "n".repeat(name_len),
                    "variants": (0..variants).map(|i| serde_json::json!({"id": format!("v{i}")})).collect::<Vec<_>>(),
                }))
                .unwrap();
                let valid = (1..=200).contains(&name_len) && variants >= 2;
                match lab.experiments().create(new) {
                    Ok(e) => {
                        assert!(valid);
                        model.exps.push((
                            e.id().to_string(),
                            Status::Draft,
                            "n".repeat(name_len),
                            10_000,
                        ));
                    }
                    Err(Error::Validation(_)) => assert!(!valid),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::List {
                page,
                limit,
                status,
            } => {
                let status = status.and_then(|i| Status::ALL.get(i).copied());
                let r = lab.experiments().list(&ListQuery {
                    page,
                    limit,
                    status,
                    project: None,
                    flag: None,
                });
                let valid = page >= 1 && (1..=100).contains(&limit);
                match r {
                    Ok(p) => {
                        assert!(valid);
                        let n = model
                            .exps
                            .iter()
                            .filter(|e| status.map_or(e.1 != Status::Archived, |s| e.1 == s))
                            .count();
                        assert_eq!(p.total, n as u64);
                        let expected_len = n
                            .saturating_sub(((page - 1) * limit) as usize)
                            .min(limit as usize);
                        assert_eq!(p.items.len(), expected_len);
                    }
                    Err(Error::Validation(_)) => assert!(!valid),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::Tick(h, on_second) => {
                let h = h.max(model.now);
                model.now = h;
                let r = if on_second {
                    second.refresh().unwrap();
                    second.tick(Timestamp::from_unix_millis(h * HOUR)).unwrap()
                } else {
                    lab.tick(Timestamp::from_unix_millis(h * HOUR)).unwrap()
                };
                assert!(r.failed.is_empty(), "{r:?}");
                let (mut started, mut stopped) = (Vec::new(), Vec::new());
                for e in &mut model.exps {
                    let (start, stop) = model.schedule.get(&e.0).copied().unwrap_or_default();
                    if e.1 == Status::Draft && start.is_some_and(|s| s <= h) {
                        e.1 = Status::Running;
                        started.push(e.0.clone());
                    }
                    if e.1 == Status::Running && stop.is_some_and(|s| s <= h) {
                        e.1 = Status::Stopped;
                        stopped.push(e.0.clone());
                    }
                }
                let mut got = (r.started.clone(), r.stopped.clone());
                got.0.sort();
                got.1.sort();
                started.sort();
                stopped.sort();
                assert_eq!(got, (started, stopped), "tick at hour {h}: {r:?}");
            }
            Op::Schedule(i, start, stop) => {
                let id = pick(i, &model);
                let pos = model.exps.iter().position(|e| e.0 == id);
                let r = lab.experiments().update_latest(
                    &id,
                    ExperimentPatch {
                        start_at: start.map(|h| Timestamp::from_unix_millis(h * HOUR)),
                        stop_at: stop.map(|h| Timestamp::from_unix_millis(h * HOUR)),
                        ..Default::default()
                    },
                );
                let Some(pos) = pos else {
                    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
                    continue;
                };
                let old = model.schedule.get(&id).copied().unwrap_or_default();
                let merged = (start.or(old.0), stop.or(old.1));
                let valid = !matches!(merged, (Some(a), Some(b)) if b <= a);
                match (model.exps[pos].1, r) {
                    (Status::Draft, Ok(e)) => {
                        assert!(valid, "{merged:?}");
                        assert_eq!(
                            (e.start_at(), e.stop_at()),
                            (
                                merged.0.map(|h| Timestamp::from_unix_millis(h * HOUR)),
                                merged.1.map(|h| Timestamp::from_unix_millis(h * HOUR))
                            )
                        );
                        model.schedule.insert(id, merged);
                    }
                    (Status::Draft, Err(Error::Validation(_))) => assert!(!valid),
                    (s, Err(Error::Lifecycle { status, .. })) => {
                        assert_ne!(s, Status::Draft);
                        assert_eq!(s, status);
                    }
                    (s, r) => panic!("schedule in {s}: {r:?}"),
                }
            }
            other => {
                let (i, name) = match &other {
                    Op::Update(i, _) => (*i, "update"),
                    Op::Ramp(i, _) => (*i, "ramp"),
                    Op::Start(i) => (*i, "start"),
                    Op::Stop(i, _) => (*i, "stop"),
                    Op::Complete(i) => (*i, "complete"),
                    Op::Archive(i) => (*i, "archive"),
                    Op::Delete(i) => (*i, "delete"),
                    Op::Create { .. } | Op::List { .. } | Op::Tick(..) | Op::Schedule(..) => {
                        unreachable!()
                    }
                };
                let id = pick(i, &model);
                let pos = model.exps.iter().position(|e| e.0 == id);
                let r = match &other {
                    Op::Update(_, s) => lab
                        .experiments()
                        .update_latest(
                            &id,
                            ExperimentPatch {
                                name: Some(s.clone()),
                                ..Default::default()
                            },
                        )
                        .map(|_| ()),
                    Op::Ramp(_, t) => lab
                        .experiments()
                        .ramp(&id, f64::from(*t) / 10_000.0)
                        .map(|_| ()),
                    Op::Start(_) => lab.experiments().start(&id).map(|_| ()),
                    Op::Stop(_, w) => {
                        let winner = w.map(|known| {
                            if known {
                                "v0".to_owned()
                            } else {
                                "zz".to_owned()
                            }
                        });
                        lab.experiments()
                            .stop(
                                &id,
                                StopRequest {
                                    winner,
                                    reason: None,
                                },
                            )
                            .map(|_| ())
                    }
                    Op::Complete(_) => lab.experiments().complete(&id).map(|_| ()),
                    Op::Archive(_) => lab.experiments().archive(&id).map(|_| ()),
                    _ => lab.experiments().delete(&id),
                };
                let Some(pos) = pos else {
                    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
                    continue;
                };
                let status = model.exps[pos].1;
                let next = allowed(status, name);
                let input_ok = match &other {
                    Op::Update(_, s) => !s.is_empty(),
                    Op::Ramp(_, t) => *t <= 10_000,
                    Op::Stop(_, w) => *w != Some(false),
                    _ => true,
                };
                match (next, r) {
                    (None, Err(Error::Lifecycle { status: s, .. })) => assert_eq!(s, status),
                    (Some(_), Err(Error::Validation(_))) => assert!(!input_ok, "{other:?}"),
                    (Some(n), Ok(())) => {
                        assert!(input_ok, "{other:?}");
                        if name == "delete" {
                            let gone = model.exps.remove(pos);
                            model.schedule.remove(&gone.0);
                            continue;
                        }
                        let e = &mut model.exps[pos];
                        e.1 = n;
                        match &other {
                            Op::Update(_, s) => e.2 = s.clone(),
                            Op::Ramp(_, t) => e.3 = *t,
                            _ => {}
                        }
                    }
                    (n, r) => panic!("{other:?} in {status}: model says {n:?}, lab says {r:?}"),
                }
            }
        }
        check(&lab, &model);
    }
}

proptest! {
    #![proptest_config(Config { cases: 128, rng_seed: RngSeed::Fixed(0xab_c0de), failure_persistence: None, ..Config::default() })]

    #[test]
    fn prop_facade_agrees_with_the_reference(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
