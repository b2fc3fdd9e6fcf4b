//! `PostgresStorage` against a real PostgreSQL server (issue 14): the conformance suite, the
//! differential test against `MemoryStorage`, failures (the server killed mid-batch, a
//! connection cut mid-transaction) and recovery.
//!
//! Each test starts a throwaway cluster (`tests/support/postgres.rs`) or uses
//! `ABKIT_POSTGRES_URL`; without either the tests pass as skipped, except under `CI`.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "support/differential.rs"]
mod differential;
#[path = "support/postgres.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use abkit::Timestamp;
use abkit::storage::{
    Aggregation, EventOutcome, MetricSlot, PostgresOptions, PostgresStorage, RecordKind,
    RecordWrite, Storage, StorageError, UnitEvent, UnitEventKind,
};
use serde_json::json;
use support::Cluster;

fn ev<'a>(exp: &'a str, unit: &'a str, id: Option<&'a str>, kind: UnitEventKind) -> UnitEvent<'a> {
    UnitEvent {
        experiment: exp,
        unit,
        event_id: id,
        at: Timestamp::from_unix_millis(1_000),
        kind,
    }
}

const SUM: MetricSlot = MetricSlot {
    index: 0,
    aggregation: Aggregation::Sum,
    cap: None,
    window_millis: None,
};

fn value(v: f64) -> UnitEventKind {
    UnitEventKind::Metric {
        slot: SUM,
        value: v,
        denominator: 0.0,
    }
}

fn expose(variant: u32) -> UnitEventKind {
    UnitEventKind::Exposure {
        variant,
        excluded: false,
    }
}

fn units_of(url: &str, exp: &str) -> i64 {
    Cluster::client(url)
        .query_one(
            "SELECT count(*) FROM abkit_units WHERE experiment = $1",
            &[&exp],
        )
        .unwrap()
        .get(0)
}

#[test]
fn passes_the_conformance_suite() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    abkit::storage::conformance::run(|| {
        PostgresStorage::connect(&cluster.database("conformance")).unwrap()
    });
}

#[test]
fn store_is_send_and_sync_and_hides_its_password() {
    fn check<T: Send + Sync + std::fmt::Debug>() {}
    check::<PostgresStorage>();
    let err = PostgresStorage::connect_with(
        "postgres://me:s3cret@127.0.0.1:1/none",
        PostgresOptions::new().connect_timeout(Duration::from_millis(500)),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StorageError::Backend(_)), "{err:?}");
    assert!(text.contains("me:***@127.0.0.1:1"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let bad = PostgresStorage::connect("not a url at all ::").unwrap_err();
    assert!(bad.to_string().contains("not a postgresql url"), "{bad}");
}

/// Same events, same answers: PostgreSQL against the reference in-memory store.
#[test]
fn prop_matches_memory_storage() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let pg = PostgresStorage::connect(&cluster.database("differential")).unwrap();
    differential::matches_memory(&pg, 64);
}

#[test]
fn records_and_the_change_feed() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("feed");
    let a = PostgresStorage::connect(&url).unwrap();
    let b = PostgresStorage::connect(&url).unwrap();
    let start = b.change_position().unwrap().unwrap();
    let body = json!({"name": "x"});
    let w = |id| RecordWrite {
        kind: RecordKind::Flag,
        id,
        unique_key: None,
        body: &body,
    };
    a.put_record(w("f1"), None).unwrap();
    a.put_record(w("f2"), None).unwrap();
    a.put_record(w("f1"), Some(1)).unwrap();
    a.delete_record(RecordKind::Flag, "f2", 1).unwrap();
    // A failed write leaves no feed entry.
    assert!(a.put_record(w("f1"), Some(1)).is_err());
    let changes = b.changes_since(start).unwrap().unwrap();
    assert_eq!(changes.position, start + 4);
    assert_eq!(
        changes.records.unwrap(),
        vec![
            (RecordKind::Flag, "f1".to_owned()),
            (RecordKind::Flag, "f2".to_owned()),
            (RecordKind::Flag, "f1".to_owned()),
            (RecordKind::Flag, "f2".to_owned()),
        ]
    );
    assert_eq!(
        b.changes_since(changes.position).unwrap().unwrap().records,
        Some(vec![])
    );
    // A position the store never had: reload everything.
    assert_eq!(
        b.changes_since(changes.position + 10)
            .unwrap()
            .unwrap()
            .records,
        None
    );
    // LISTEN: the first call subscribes (and says "look"); then a write wakes the waiter.
    assert!(b.wait_for_change(Duration::from_millis(10)).unwrap());
    assert!(!b.wait_for_change(Duration::from_millis(50)).unwrap());
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let body = json!({"name": "y"});
        a.put_record(
            RecordWrite {
                kind: RecordKind::Flag,
                id: "f3",
                unique_key: None,
                body: &body,
            },
            None,
        )
        .unwrap();
    });
    assert!(b.wait_for_change(Duration::from_secs(20)).unwrap());
    writer.join().unwrap();
}

/// The server dies while batches are being written: calls fail with errors (no panic), no batch
/// is partially applied, and after a restart a retry of the failed batch (the same event ids)
/// is counted once.
#[test]
fn the_server_killed_mid_batch() {
    let Some(cluster) = Cluster::own() else {
        return;
    };
    let url = cluster.database("killed");
    let store =
        Arc::new(PostgresStorage::connect_with(&url, PostgresOptions::new().pool_size(2)).unwrap());
    let ids: Vec<String> = (0..200_000).map(|i| format!("ev{i}")).collect();
    let units: Vec<String> = (0..200).map(|i| format!("u{i}")).collect();
    // Batch k: 200 exposures (idempotent) and 200 values with ids ev{k*200..}.
    let batch = |k: usize| -> Vec<UnitEvent<'_>> {
        let mut b: Vec<UnitEvent<'_>> = units.iter().map(|u| ev("e", u, None, expose(0))).collect();
        b.extend(
            units
                .iter()
                .enumerate()
                .map(|(i, u)| ev("e", u, Some(&ids[k * 200 + i]), value(1.0))),
        );
        b
    };
    let writer = {
        let store = Arc::clone(&store);
        let batch = &batch;
        std::thread::scope(|s| {
            let h = s.spawn(move || {
                let mut done = Vec::new();
                for k in 0..1_000 {
                    match store.apply_events(&batch(k)) {
                        Ok(_) => done.push(k),
                        Err(e) => return (done, Some((k, e))),
                    }
                }
                (done, None)
            });
            std::thread::sleep(Duration::from_millis(700));
            cluster.stop_immediate();
            h.join().unwrap()
        })
    };
    let (done, failed) = writer;
    let (k_failed, err) = failed.expect("a batch failed when the server died");
    assert!(matches!(err, StorageError::Backend(_)), "{err:?}");
    assert!(!done.is_empty(), "some batches committed before the kill");
    // While the server is down: errors, not panics.
    assert!(store.totals("e").is_err());
    cluster.pg_start();
    // Every committed batch is there, the failed one is not (or wholly, if it committed and only
    // the answer was lost).
    let sum_now = store.totals("e").unwrap().variant(0).metrics[0].sum;
    let committed = done.len() as f64 * 200.0;
    assert!(
        sum_now == committed || sum_now == committed + 200.0,
        "sum {sum_now} after {} committed batches: a batch was partially applied",
        done.len()
    );
    // The retry of the failed batch counts it once, whatever happened to it.
    let out = store.apply_events(&batch(k_failed)).unwrap();
    assert_eq!(out.len(), 400);
    let sum = store.totals("e").unwrap().variant(0).metrics[0].sum;
    assert_eq!(sum, committed + 200.0);
    assert_eq!(store.totals("e").unwrap().variant(0).participants, 200);
    // And again: all duplicates.
    let again = store.apply_events(&batch(k_failed)).unwrap();
    assert!(
        again[200..]
            .iter()
            .all(|o| *o == EventOutcome::DuplicateEventId)
    );
    assert_eq!(store.totals("e").unwrap().variant(0).metrics[0].sum, sum);
}

/// A connection cut while its transaction waits inside a batch: the call fails, the server rolls
/// back everything the batch did, and the store works on with a fresh connection.
#[test]
fn a_connection_cut_mid_transaction() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("cut");
    let store = Arc::new(PostgresStorage::connect(&url).unwrap());
    store
        .apply_events(&[ev("e", "old", None, expose(0))])
        .unwrap();
    let before = store.totals("e").unwrap();
    // Hold the totals row, so the next batch blocks after writing its units.
    let mut holder = Cluster::client(&url);
    let mut tx = holder.transaction().unwrap();
    tx.execute(
        "SELECT 1 FROM abkit_totals WHERE experiment = 'e' FOR UPDATE",
        &[],
    )
    .unwrap();
    let blocked = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            store.apply_events(&[
                ev("e", "new1", None, expose(0)),
                ev("e", "new2", None, expose(0)),
            ])
        })
    };
    // Find the blocked backend and cut it (again, should the store ever retry on a fresh
    // connection, which it must not: the test would then fail, not hang).
    let mut killer = Cluster::client(&url);
    let mut cuts = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !blocked.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the cut batch never returned"
        );
        let n: i64 = killer
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = 'abkit' AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .get(0);
        cuts += n;
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(
        cuts, 1,
        "one cut fails the call: the store does not retry a begun transaction"
    );
    let err = blocked.join().unwrap().unwrap_err();
    assert!(matches!(err, StorageError::Backend(_)), "{err:?}");
    tx.rollback().unwrap();
    // Nothing of the cut batch remains.
    assert_eq!(units_of(&url, "e"), 1);
    assert_eq!(store.totals("e").unwrap(), before);
    // The store goes on (a fresh connection replaces the cut one).
    store
        .apply_events(&[ev("e", "new1", None, expose(0))])
        .unwrap();
    assert_eq!(store.totals("e").unwrap().variant(0).participants, 2);
}

/// Called from inside a tokio runtime (an async task, not a blocking one): no panic.
#[test]
fn works_from_inside_a_tokio_runtime() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("tokio");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Arc::new(PostgresStorage::connect(&url).unwrap());
        store
            .apply_events(&[ev("e", "u", None, expose(1))])
            .unwrap();
        let s = Arc::clone(&store);
        let blocking = tokio::task::spawn_blocking(move || s.totals("e").unwrap())
            .await
            .unwrap();
        assert_eq!(blocking.variant(1).participants, 1);
        assert_eq!(store.totals("e").unwrap().variant(1).participants, 1);
    });
}

/// The buffered ingestion handle writes through PostgreSQL like any store: exposures and
/// valued events in queue order, counted once.
#[test]
fn the_ingestor_writes_through_postgres() {
    use abkit::{Context, IngestOptions, Ingestor, Lab, NewExperiment, TrackEvent};
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let store = PostgresStorage::connect(&cluster.database("ingest")).unwrap();
    let lab = Arc::new(Lab::builder().storage(Arc::new(store)).build().unwrap());
    let new: NewExperiment = serde_json::from_value(json!({
        "name": "ingest", "variants": [{"id": "a"}, {"id": "b"}],
        "metrics": ["conversion", "watchTime"]
    }))
    .unwrap();
    let id = lab.experiments().create(new).unwrap().id().to_string();
    lab.experiments().start(&id).unwrap();
    let ingest = Ingestor::start(Arc::clone(&lab), IngestOptions::default().max_batch(64)).unwrap();
    let mut expected_sum = 0.0;
    for i in 0..500 {
        let unit = format!("u{i}");
        let ctx = Context::new(&unit);
        let d = lab.assign(&id, &ctx).unwrap();
        ingest.try_record(&d.exposure().unwrap()).unwrap();
        ingest
            .try_track(TrackEvent::conversion(&id, &unit))
            .unwrap();
        ingest
            .try_track(TrackEvent::conversion(&id, &unit))
            .unwrap(); // a duplicate
        let v = f64::from(i % 7);
        expected_sum += v;
        ingest
            .try_track(TrackEvent::value(&id, &unit, "watchTime", v))
            .unwrap();
    }
    let stats = ingest.shutdown().unwrap();
    assert_eq!(stats.failed, 0, "{stats:?}");
    let totals = lab.storage().totals(&id).unwrap();
    let participants: u64 = totals.variants.iter().map(|v| v.participants).sum();
    assert_eq!(participants, 500);
    let conversions: f64 = totals.variants.iter().map(|v| v.metrics[0].sum).sum();
    assert_eq!(conversions, 500.0);
    let sum: f64 = totals.variants.iter().map(|v| v.metrics[1].sum).sum();
    assert_eq!(sum, expected_sum);
}
