//! Mutually exclusive starts across processes (issue 12 item 1): two `Lab`s on one store —
//! a SQLite file, or one shared `MemoryStorage` — start conflicting experiments at the same
//! moment. Exactly one wins, and the other gets the typed conflict; the rule is enforced where
//! the write commits (the claim records of `Storage::commit`), not only in each lab's cache.
//! With the `postgres` feature the same races run on one PostgreSQL database (issue 14).

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::sync::{Arc, Barrier};
use std::thread;

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod support;

#[cfg(feature = "postgres")]
use abkit::storage::PostgresStorage;
use abkit::storage::{MemoryStorage, SqliteStorage, Storage};
use abkit::{BucketRange, Conflict, Error, Lab, Layer, NewExperiment, NewFlag, Status};
use serde_json::json;

const ROUNDS: usize = 30;

fn temp_db(name: &str, round: usize) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "abkit-exclusive-{name}-{round}-{}.db",
        std::process::id()
    ));
    remove_db(&p);
    p
}

fn remove_db(p: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
}

fn lab_on(store: Arc<dyn Storage>) -> Lab {
    Lab::builder().storage(store).build().unwrap()
}

/// Where the two labs of a round keep their records.
#[derive(Clone, Copy)]
enum Backend<'c> {
    /// One SQLite file, each lab its own connection.
    Sqlite,
    /// One `MemoryStorage` shared by both labs.
    Memory,
    /// One PostgreSQL database (a fresh one per round), each lab its own pool.
    #[cfg(feature = "postgres")]
    Postgres(&'c support::Cluster),
    #[cfg(not(feature = "postgres"))]
    #[allow(dead_code)]
    Never(std::marker::PhantomData<&'c ()>),
}

/// How the second lab of a round finds the first one's store.
enum Place {
    File(std::path::PathBuf),
    Shared(Box<Lab>),
    #[cfg(feature = "postgres")]
    Url(String),
}

/// The first lab of a round, and where the second will find its store.
fn two_labs(backend: Backend<'_>, name: &str, round: usize) -> (Lab, Place) {
    match backend {
        Backend::Sqlite => {
            let path = temp_db(name, round);
            let a = lab_on(Arc::new(SqliteStorage::open(&path).unwrap()));
            (a, Place::File(path))
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres(cluster) => {
            let url = cluster.database(name);
            let a = lab_on(Arc::new(PostgresStorage::connect(&url).unwrap()));
            (a, Place::Url(url))
        }
        _ => {
            let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
            (
                lab_on(Arc::clone(&store)),
                Place::Shared(Box::new(lab_on(store))),
            )
        }
    }
}

/// The second lab, opened once the first has written the drafts (so both know them).
fn second(place: &mut Place) -> Lab {
    match place {
        Place::File(p) => lab_on(Arc::new(SqliteStorage::open(p).unwrap())),
        #[cfg(feature = "postgres")]
        Place::Url(url) => lab_on(Arc::new(PostgresStorage::connect(url).unwrap())),
        Place::Shared(shared) => {
            shared.refresh().unwrap();
            *std::mem::replace(shared, Box::new(Lab::new()))
        }
    }
}

fn cleanup(place: Place) {
    if let Place::File(p) = place {
        remove_db(&p);
    }
}

/// Runs `a` and `b` at the same moment on two threads.
fn race<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let barrier = Barrier::new(2);
    thread::scope(|s| {
        let ha = s.spawn(|| {
            barrier.wait();
            a()
        });
        let hb = s.spawn(|| {
            barrier.wait();
            b()
        });
        (ha.join().unwrap(), hb.join().unwrap())
    })
}

fn flag_experiment(name: &str) -> NewExperiment {
    serde_json::from_value(json!({
        "name": name, "environment": "production",
        "variants": [{"key": "a", "value": "x1", "percentage": 50}, {"key": "b", "value": "x2", "percentage": 50}]
    }))
    .unwrap()
}

fn layer_experiment(start: u32, end: u32) -> NewExperiment {
    serde_json::from_value(json!({
        "name": "x", "variants": [{"id": "a"}, {"id": "b"}],
        "layer": {"id": "home", "range": {"start": start, "end": end}}
    }))
    .unwrap()
}

fn running_count(lab: &Lab, ids: &[&str]) -> usize {
    ids.iter()
        .filter(|id| lab.experiments().get(id).unwrap().status() == Status::Running)
        .count()
}

fn starts_on_one_flag(backend: Backend<'_>) {
    for round in 0..ROUNDS {
        let (a, mut place) = two_labs(backend, "flag", round);
        let new: NewFlag = serde_json::from_value(json!({
            "project_id": "p", "key": "k", "default_value": "d", "environment": "production"
        }))
        .unwrap();
        let flag = a.flags().create(new).unwrap();
        let first = a
            .flags()
            .create_experiment(flag.id.as_str(), flag_experiment("first"))
            .unwrap();
        let second_exp = a
            .flags()
            .create_experiment(flag.id.as_str(), flag_experiment("second"))
            .unwrap();
        let b = second(&mut place);
        let (x, y) = (first.id().to_string(), second_exp.id().to_string());
        let (ra, rb) = race(|| a.experiments().start(&x), || b.experiments().start(&y));
        let ok = usize::from(ra.is_ok()) + usize::from(rb.is_ok());
        assert_eq!(
            ok, 1,
            "round {round}: exactly one start wins: {ra:?} / {rb:?}"
        );
        let err = ra.err().or(rb.err());
        assert!(
            matches!(err, Some(Error::Conflict(Conflict::RunningOnFlag { .. }))),
            "round {round}: the loser gets RunningOnFlag, got {err:?}"
        );
        assert_eq!(running_count(&a, &[&x, &y]), 1, "round {round}");
        drop((a, b));
        cleanup(place);
    }
}

fn starts_in_one_layer(backend: Backend<'_>, overlapping: bool) {
    for round in 0..ROUNDS {
        let (a, mut place) = two_labs(backend, "layer", round);
        a.targeting()
            .put_layer(Layer {
                id: "home".parse().unwrap(),
                salt: None,
                holdout: None::<BucketRange>,
            })
            .unwrap();
        let left = a.experiments().create(layer_experiment(0, 5000)).unwrap();
        let (start, end) = if overlapping {
            (4000, 9000)
        } else {
            (5000, 9000)
        };
        let right = a
            .experiments()
            .create(layer_experiment(start, end))
            .unwrap();
        let b = second(&mut place);
        let (x, y) = (left.id().to_string(), right.id().to_string());
        let (ra, rb) = race(|| a.experiments().start(&x), || b.experiments().start(&y));
        if overlapping {
            assert_eq!(
                usize::from(ra.is_ok()) + usize::from(rb.is_ok()),
                1,
                "round {round}: {ra:?} / {rb:?}"
            );
            let err = ra.err().or(rb.err());
            assert!(
                matches!(err, Some(Error::Conflict(Conflict::LayerOverlap { .. }))),
                "round {round}: the loser gets LayerOverlap, got {err:?}"
            );
            assert_eq!(running_count(&a, &[&x, &y]), 1);
        } else {
            assert!(ra.is_ok() && rb.is_ok(), "round {round}: {ra:?} / {rb:?}");
            assert_eq!(running_count(&a, &[&x, &y]), 2);
        }
        drop((a, b));
        cleanup(place);
    }
}

fn start_races_a_flag_delete(backend: Backend<'_>) {
    for round in 0..ROUNDS {
        let (a, mut place) = two_labs(backend, "delete", round);
        let new: NewFlag = serde_json::from_value(json!({
            "project_id": "p", "key": "k", "default_value": "d", "environment": "production"
        }))
        .unwrap();
        let flag = a.flags().create(new).unwrap();
        let exp = a
            .flags()
            .create_experiment(flag.id.as_str(), flag_experiment("first"))
            .unwrap();
        let b = second(&mut place);
        let (x, f) = (exp.id().to_string(), flag.id.to_string());
        let (ra, rb) = race(|| a.experiments().start(&x), || b.flags().delete(&f));
        assert_eq!(
            usize::from(ra.is_ok()) + usize::from(rb.is_ok()),
            1,
            "round {round}: exactly one wins: {ra:?} / {rb:?}"
        );
        let flag_exists = a.flags().get(&f).is_ok();
        let running = a.experiments().get(&x).unwrap().status() == Status::Running;
        assert!(
            flag_exists || !running,
            "round {round}: a running experiment whose flag is gone"
        );
        if rb.is_err() {
            assert!(
                matches!(
                    rb,
                    Err(Error::Conflict(Conflict::FlagHasRunningExperiment { .. }))
                ),
                "round {round}: {rb:?}"
            );
        }
        drop((a, b));
        cleanup(place);
    }
}

#[test]
fn two_starts_on_one_flag_sqlite() {
    starts_on_one_flag(Backend::Sqlite);
}

#[test]
fn two_starts_on_one_flag_shared_memory() {
    starts_on_one_flag(Backend::Memory);
}

#[test]
fn overlapping_starts_in_one_layer_sqlite() {
    starts_in_one_layer(Backend::Sqlite, true);
}

#[test]
fn overlapping_starts_in_one_layer_shared_memory() {
    starts_in_one_layer(Backend::Memory, true);
}

#[test]
fn disjoint_starts_in_one_layer_both_succeed() {
    starts_in_one_layer(Backend::Sqlite, false);
    starts_in_one_layer(Backend::Memory, false);
}

#[test]
fn a_start_racing_a_flag_delete_sqlite() {
    start_races_a_flag_delete(Backend::Sqlite);
}

#[test]
fn a_start_racing_a_flag_delete_shared_memory() {
    start_races_a_flag_delete(Backend::Memory);
}

#[cfg(feature = "postgres")]
#[test]
fn two_starts_on_one_flag_postgres() {
    if let Some(c) = support::Cluster::start() {
        starts_on_one_flag(Backend::Postgres(&c));
    }
}

#[cfg(feature = "postgres")]
#[test]
fn starts_in_one_layer_postgres() {
    if let Some(c) = support::Cluster::start() {
        starts_in_one_layer(Backend::Postgres(&c), true);
        starts_in_one_layer(Backend::Postgres(&c), false);
    }
}

#[cfg(feature = "postgres")]
#[test]
fn a_start_racing_a_flag_delete_postgres() {
    if let Some(c) = support::Cluster::start() {
        start_races_a_flag_delete(Backend::Postgres(&c));
    }
}
