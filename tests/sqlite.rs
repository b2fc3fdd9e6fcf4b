//! `SqliteStorage` against real files: persistence, schema migration, bad input, crash
//! atomicity and concurrency between threads and between processes.
//!
//! The crash and multi-process tests re-execute this test binary (`std::env::current_exe()`)
//! with `ABKIT_SQLITE_ROLE` set: the child runs the role's code path of the same test and the
//! parent checks the database afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure
#![cfg(feature = "sqlite")]

#[path = "support/differential.rs"]
mod differential;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use abkit::Timestamp;
use abkit::storage::{
    Aggregation, EventOutcome, MetricSlot, RecordKind, RecordWrite, SqliteOptions, SqliteStorage,
    Storage, StorageError, UnitEvent, UnitEventKind,
};
use serde_json::json;

const ROLE: &str = "ABKIT_SQLITE_ROLE";
const DB: &str = "ABKIT_SQLITE_DB";

fn temp_db(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("abkit-it-{name}-{}-{n}.db", std::process::id()));
    remove_db(&p);
    p
}

fn remove_db(p: &Path) {
    for suffix in ["", "-wal", "-shm", ".marker"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
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
    window_millis: None,
};

fn ev<'a>(exp: &'a str, unit: &'a str, id: Option<&'a str>, kind: UnitEventKind) -> UnitEvent<'a> {
    UnitEvent {
        experiment: exp,
        unit,
        event_id: id,
        at: Timestamp::from_unix_millis(1_700_000_000_000),
        kind,
    }
}

fn expose(variant: u32) -> UnitEventKind {
    UnitEventKind::Exposure {
        variant,
        excluded: false,
    }
}

fn convert() -> UnitEventKind {
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

fn put(s: &dyn Storage, kind: RecordKind, id: &str, key: Option<&str>, body: &serde_json::Value) {
    s.put_record(
        RecordWrite {
            kind,
            id,
            unique_key: key,
            body,
        },
        None,
    )
    .unwrap();
}

fn participants(s: &dyn Storage, exp: &str) -> u64 {
    s.totals(exp)
        .unwrap()
        .variants
        .iter()
        .map(|v| v.participants)
        .sum()
}

fn metric_sum(s: &dyn Storage, exp: &str, slot: usize) -> f64 {
    s.totals(exp)
        .unwrap()
        .variants
        .iter()
        .map(|v| v.metrics.get(slot).map_or(0.0, |m| m.sum))
        .sum()
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

fn schema_version(path: &Path) -> i64 {
    raw(path)
        .query_row("SELECT version FROM abkit_schema", [], |r| r.get(0))
        .unwrap()
}

/// Writes a little of everything.
fn fill(s: &dyn Storage) {
    put(
        s,
        RecordKind::Experiment,
        "exp_1",
        None,
        &json!({"name": "one"}),
    );
    put(
        s,
        RecordKind::Flag,
        "flag_1",
        Some("p/prod/k"),
        &json!({"on": true}),
    );
    s.apply_events(&[
        ev("exp_1", "u1", None, expose(0)),
        ev("exp_1", "u2", None, expose(1)),
        ev("exp_1", "u1", Some("e1"), convert()),
        ev("exp_1", "u2", None, value(2.5)),
    ])
    .unwrap();
    s.save_sticky_assignments("u1", &[("exp_1", "control")])
        .unwrap();
}

/// Checks what [`fill`] wrote.
fn check_filled(s: &dyn Storage) {
    let r = s
        .get_record(RecordKind::Experiment, "exp_1")
        .unwrap()
        .unwrap();
    assert_eq!((r.version, r.body), (1, json!({"name": "one"})));
    let f = s.get_record(RecordKind::Flag, "flag_1").unwrap().unwrap();
    assert_eq!(f.unique_key.as_deref(), Some("p/prod/k"));
    let t = s.totals("exp_1").unwrap();
    assert_eq!(t.variant(0).participants, 1);
    assert_eq!(t.variant(1).participants, 1);
    assert_eq!(t.variant(0).metrics[0].sum, 1.0);
    assert_eq!(t.variant(1).metrics[1].sum, 2.5);
    assert_eq!(s.unit_state("exp_1", "u2").unwrap().unwrap().variant, 1);
    // The event id is remembered across the reopen (for its goal: ids are per goal).
    assert_eq!(
        s.apply_event(&ev("exp_1", "u1", Some("e1"), convert()))
            .unwrap(),
        EventOutcome::DuplicateEventId
    );
    assert_eq!(
        s.sticky_assignments("u1").unwrap(),
        [("exp_1".to_owned(), "control".to_owned())]
    );
}

#[test]
fn dropped_without_shutdown_and_reopened_keeps_everything() {
    let path = temp_db("reopen");
    {
        let s = SqliteStorage::open(&path).unwrap();
        fill(&s);
        // Dropped here: no close, no checkpoint.
    }
    let s = SqliteStorage::open(&path).unwrap();
    check_filled(&s);
    let mode: String = raw(&path)
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(s);
    remove_db(&path);
}

#[test]
fn version_1_fixture_is_migrated_and_keeps_its_data() {
    let path = temp_db("v1");
    std::fs::copy("tests/data/sqlite/v1.sqlite", &path).unwrap();
    assert_eq!(schema_version(&path), 1);
    let s = SqliteStorage::open(&path).unwrap();
    assert_eq!(schema_version(&path), 4);
    let index: i64 = raw(&path)
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' \
             AND name = 'abkit_records_unique_key'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(index, 1, "the migration adds the unique-key index");

    // The fixture's data, as written by tests/data/sqlite/v1.sql.
    let exp = s
        .get_record(RecordKind::Experiment, "exp_v1")
        .unwrap()
        .unwrap();
    assert_eq!(exp.version, 3);
    assert_eq!(
        exp.body,
        json!({"name": "Made by schema v1", "status": "running"})
    );
    let flags = s.list_records(RecordKind::Flag).unwrap();
    let ids: Vec<&str> = flags.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["flag_a", "flag_b"]);
    assert_eq!(flags[0].unique_key.as_deref(), Some("proj/prod/checkout"));
    let u = s.unit_state("exp_v1", "usr_1").unwrap().unwrap();
    assert_eq!(
        (u.variant, u.exposed_at.unix_millis(), u.excluded),
        (1, 1_700_000_000_000, false)
    );
    assert_eq!(u.value(0).numerator, 1.0);
    let t = s.totals("exp_v1").unwrap();
    assert_eq!(
        (t.variant(0).participants, t.variant(1).participants),
        (1, 1)
    );
    assert_eq!(
        (
            t.variant(1).metrics[0].sum,
            t.variant(1).metrics[0].sum_squares
        ),
        (1.0, 1.0)
    );
    assert_eq!(
        s.sticky_assignments("usr_1").unwrap(),
        [("exp_v1".to_owned(), "treatment".to_owned())]
    );
    assert_eq!(
        s.apply_event(&ev("exp_v1", "usr_1", Some("evt_1"), value(1.0)))
            .unwrap(),
        EventOutcome::DuplicateEventId,
        "event ids stored by v1 still de-duplicate"
    );

    // The migrated store keeps working and the unique key is now a constraint.
    let err = raw(&path)
        .execute(
            "INSERT INTO abkit_records VALUES ('flag', 'flag_c', 1, 'proj/prod/checkout', '{}')",
            [],
        )
        .unwrap_err();
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation)
    );
    s.apply_event(&ev("exp_v1", "usr_3", None, expose(0)))
        .unwrap();
    drop(s);
    let s = SqliteStorage::open(&path).unwrap();
    assert_eq!(s.totals("exp_v1").unwrap().variant(0).participants, 2);
    drop(s);
    remove_db(&path);
}

/// The data `tests/data/sqlite/v2.sql` holds (written by the v2 code), as this store reads it.
fn check_v2_fixture(s: &SqliteStorage) {
    let exp = s
        .get_record(RecordKind::Experiment, "exp_v2")
        .unwrap()
        .unwrap();
    assert_eq!(
        (exp.version, exp.body),
        (2, json!({"name": "Made by schema v2", "status": "running"}))
    );
    let flag = s.get_record(RecordKind::Flag, "flag_a").unwrap().unwrap();
    assert_eq!(flag.unique_key.as_deref(), Some("proj/prod/checkout"));
    assert_eq!(s.list_records(RecordKind::Audience).unwrap().len(), 1);
    let u1 = s.unit_state("exp_v2", "usr_1").unwrap().unwrap();
    assert_eq!((u1.variant, u1.excluded), (1, false));
    assert_eq!(u1.value(0).numerator, 1.0);
    assert_eq!(u1.value(1).numerator, 0.0, "v2 dropped the revenue event");
    let u2 = s.unit_state("exp_v2", "usr_2").unwrap().unwrap();
    assert_eq!(u2.exposed_at.unix_millis(), 1_700_000_000_000);
    assert_eq!(
        (u2.value(1).numerator, u2.value(1).covariate),
        (10.0, Some(3.0))
    );
    assert_eq!((u2.value(2).numerator, u2.value(2).denominator), (3.0, 4.0));
    assert_eq!(u2.value(40).numerator, 2.0);
    assert!(s.unit_state("exp_v2", "usr_3").unwrap().unwrap().excluded);
    assert_eq!(s.unit_state("exp_v2", "usr_4").unwrap().unwrap().variant, 0);
    let t = s.totals("exp_v2").unwrap();
    let (v0, v1) = (t.variant(0), t.variant(1));
    assert_eq!((v0.participants, v1.participants), (2, 1));
    let m = v0.metrics[1];
    assert_eq!(
        (
            m.sum,
            m.sum_squares,
            m.covariate_sum,
            m.covariate_sum_products,
            m.covariate_count
        ),
        (10.0, 100.0, 3.0, 30.0, 1)
    );
    assert_eq!(
        (
            v0.metrics[2].denominator_sum,
            v0.metrics[2].sum_products,
            v0.metrics[40].sum
        ),
        (4.0, 12.0, 2.0)
    );
    assert_eq!((v1.metrics[0].sum, v1.metrics[0].sum_squares), (1.0, 1.0));
    assert_eq!(
        s.sticky_assignments("usr_1").unwrap(),
        [("exp_v2".to_owned(), "treatment".to_owned())]
    );
}

#[test]
fn version_2_fixture_opens_and_keeps_its_data() {
    let path = temp_db("v2");
    std::fs::copy("tests/data/sqlite/v2.sqlite", &path).unwrap();
    assert_eq!(schema_version(&path), 2);
    let s = SqliteStorage::open(&path).unwrap();
    assert_eq!(schema_version(&path), 4, "migrated to version 4");
    check_v2_fixture(&s);
    // Event ids stored by v2 still de-duplicate, in every scope (v2 ids were per unit).
    assert_eq!(
        s.apply_event(&ev("exp_v2", "usr_2", Some("ord_2"), value(7.25)))
            .unwrap(),
        EventOutcome::DuplicateEventId
    );
    assert_eq!(
        s.apply_event(&ev("exp_v2", "usr_2", Some("ord_2"), convert()))
            .unwrap(),
        EventOutcome::DuplicateEventId
    );
    // The migrated blobs are sparse: usr_2's late slot 40 is one entry, not 41.
    let c = raw(&path);
    let bytes: Vec<u8> = c
        .query_row(
            "SELECT metric_values FROM abkit_units WHERE unit = 'usr_2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bytes.len(), 3 * 27, "slots 1, 2 and 40 only");
    let ids: i64 = c
        .query_row(
            "SELECT event_ids FROM abkit_units WHERE unit = 'usr_1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ids, 1, "the per-unit id count is filled in");
    drop(c);
    // New ids are per scope: one order id carries a conversion and a revenue value.
    s.apply_event(&ev("exp_v2", "usr_4", None, expose(0)))
        .unwrap();
    assert_eq!(
        s.apply_event(&ev("exp_v2", "usr_4", Some("ord_9"), convert()))
            .unwrap(),
        EventOutcome::Recorded
    );
    assert_eq!(
        s.apply_event(&ev("exp_v2", "usr_4", Some("ord_9"), value(12.5)))
            .unwrap(),
        EventOutcome::Recorded
    );
    assert_eq!(
        s.apply_event(&ev("exp_v2", "usr_4", Some("ord_9"), value(12.5)))
            .unwrap(),
        EventOutcome::DuplicateEventId
    );
    drop(s);
    // Reopened: version 3, data intact, totals exact from the migrated ones.
    let s = SqliteStorage::open(&path).unwrap();
    check_v2_fixture_totals_after(&s);
    drop(s);
    remove_db(&path);
}

/// The fixture's totals after the version-2 test added usr_4's events.
fn check_v2_fixture_totals_after(s: &SqliteStorage) {
    let v0 = s.totals("exp_v2").unwrap().variant(0);
    assert_eq!((v0.metrics[0].sum, v0.metrics[1].sum), (1.0, 22.5));
    assert_eq!(v0.metrics[1].sum_squares, 100.0 + 12.5 * 12.5);
}

#[test]
fn newer_schema_is_refused_and_the_file_is_not_modified() {
    let path = temp_db("newer");
    drop(SqliteStorage::open(&path).unwrap());
    {
        let c = raw(&path);
        c.execute("UPDATE abkit_schema SET version = 99", [])
            .unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = SqliteStorage::open(&path).unwrap_err();
    assert_eq!(
        err,
        StorageError::Schema(
            "database schema version 99 is newer than this abkit supports (4): upgrade abkit"
                .into()
        )
    );
    assert!(matches!(
        SqliteStorage::open_read_only(&path),
        Err(StorageError::Schema(_))
    ));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "nothing was modified"
    );
    remove_db(&path);
}

#[test]
fn a_text_schema_version_or_a_dropped_table_is_classified() {
    let path = temp_db("text-version");
    drop(SqliteStorage::open(&path).unwrap());
    raw(&path)
        .execute("UPDATE abkit_schema SET version = 'two'", [])
        .unwrap();
    for err in [
        SqliteStorage::open(&path).unwrap_err(),
        SqliteStorage::open_read_only(&path).unwrap_err(),
    ] {
        assert_eq!(
            err,
            StorageError::Schema(
                "database schema version is Text(\"two\"), expected an integer".into()
            )
        );
    }
    remove_db(&path);

    let path = temp_db("dropped");
    {
        let s = SqliteStorage::open(&path).unwrap();
        fill(&s);
    }
    raw(&path).execute_batch("DROP TABLE abkit_units").unwrap();
    for err in [
        SqliteStorage::open(&path).unwrap_err(),
        SqliteStorage::open_read_only(&path).unwrap_err(),
    ] {
        assert!(
            matches!(&err, StorageError::Corrupt(m) if m.ends_with("has no table abkit_units")),
            "{err:?}"
        );
    }
    // Nothing else was touched.
    let n: i64 = raw(&path)
        .query_row("SELECT COUNT(*) FROM abkit_records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    remove_db(&path);
}

#[test]
fn random_bytes_are_corrupt_and_left_alone() {
    let path = temp_db("random");
    // Deterministic junk (a fixed LCG), longer than a SQLite header.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let junk: Vec<u8> = (0..8192)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 56) as u8
        })
        .collect();
    std::fs::write(&path, &junk).unwrap();
    assert!(matches!(
        SqliteStorage::open(&path),
        Err(StorageError::Corrupt(_))
    ));
    assert!(matches!(
        SqliteStorage::open_read_only(&path),
        Err(StorageError::Corrupt(_))
    ));
    assert_eq!(std::fs::read(&path).unwrap(), junk, "nothing was modified");
    remove_db(&path);
}

#[test]
fn foreign_database_is_refused_and_left_alone() {
    let path = temp_db("foreign");
    raw(&path)
        .execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'ann');")
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    assert_eq!(
        SqliteStorage::open(&path).unwrap_err(),
        StorageError::Corrupt(
            "not an abkit database: it has tables [\"users\"] and no abkit_schema table".into()
        )
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let name: String = raw(&path)
        .query_row("SELECT name FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "ann");
    remove_db(&path);
}

#[test]
fn read_only_store_reads_and_refuses_every_write() {
    let path = temp_db("ro");
    drop({
        let s = SqliteStorage::open(&path).unwrap();
        fill(&s);
        s
    });
    let s = SqliteStorage::open_read_only(&path).unwrap();
    assert!(s.is_read_only());
    assert_eq!(s.totals("exp_1").unwrap().variant(0).participants, 1);
    let body = json!({});
    let writes: Vec<Result<(), StorageError>> = vec![
        s.put_record(
            RecordWrite {
                kind: RecordKind::Audience,
                id: "a",
                unique_key: None,
                body: &body,
            },
            None,
        )
        .map(drop),
        s.delete_record(RecordKind::Experiment, "exp_1", 1),
        s.apply_events(&[ev("exp_1", "u9", None, expose(0))])
            .map(drop),
        s.purge_events("exp_1"),
        s.save_sticky_assignments("u9", &[("exp_1", "x")]),
    ];
    for w in writes {
        assert!(matches!(w, Err(StorageError::ReadOnly(_))), "{w:?}");
    }
    drop(s);
    // Missing files are not created read-only.
    let missing = temp_db("ro-missing");
    assert!(matches!(
        SqliteStorage::open_read_only(&missing),
        Err(StorageError::Backend(_))
    ));
    assert!(!missing.exists());
    let s = SqliteStorage::open(&path).unwrap();
    check_filled(&s);
    drop(s);
    remove_db(&path);
}

#[test]
fn full_database_refuses_the_batch_and_keeps_what_was_stored() {
    let path = temp_db("full");
    let s = SqliteStorage::open_with(&path, &SqliteOptions::new().max_page_count(24)).unwrap();
    fill(&s);
    let long = "x".repeat(300);
    let mut applied = 0u64;
    let mut err = None;
    for b in 0..1000 {
        let units: Vec<String> = (0..20).map(|i| format!("{long}-{b}-{i}")).collect();
        let batch: Vec<UnitEvent<'_>> = units
            .iter()
            .map(|u| ev("big", u, None, expose(0)))
            .collect();
        match s.apply_events(&batch) {
            Ok(_) => applied += 20,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert!(matches!(err, Some(StorageError::Full(_))), "{err:?}");
    assert!(applied > 0);
    assert_eq!(
        participants(&s, "big"),
        applied,
        "the failed batch left nothing"
    );
    // A small write that fits may still fail, but never corrupts: reopen without the limit.
    drop(s);
    let s = SqliteStorage::open(&path).unwrap();
    check_filled(&s);
    assert_eq!(participants(&s, "big"), applied);
    let ok: String = raw(&path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    s.apply_event(&ev("big", "after", None, expose(0))).unwrap();
    assert_eq!(participants(&s, "big"), applied + 1);
    drop(s);
    remove_db(&path);
}

/// Runs this test binary's `test` as a child in `role`, on `db`.
fn spawn_role(test: &str, role: &str, db: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(DB, db)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn role() -> Option<(String, PathBuf)> {
    let role = std::env::var(ROLE).ok()?;
    let db = std::env::var(DB).ok()?;
    Some((role, PathBuf::from(db)))
}

const KILL_BATCH: usize = 300_000;

/// Child: commits a small batch, then starts a long one and, once the long batch's pages are
/// spilling into the WAL file (it is part-written), creates the marker file and carries on
/// until the parent kills it.
fn kill_child(db: &Path) {
    let s = SqliteStorage::open(db).unwrap();
    let pre: Vec<String> = (0..10).map(|i| format!("pre-{i}")).collect();
    let batch: Vec<UnitEvent<'_>> = pre.iter().map(|u| ev("pre", u, None, expose(0))).collect();
    s.apply_events(&batch).unwrap();
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let start = std::fs::metadata(&wal).map_or(0, |m| m.len());
    let marker = PathBuf::from(format!("{}.marker", db.display()));
    std::thread::spawn(move || {
        loop {
            let len = std::fs::metadata(&wal).map_or(0, |m| m.len());
            if len > start + 1_000_000 {
                std::fs::write(&marker, b"part written").unwrap();
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let units: Vec<String> = (0..KILL_BATCH).map(|i| format!("unit-{i:08}")).collect();
    let batch: Vec<UnitEvent<'_>> = units
        .iter()
        .enumerate()
        .map(|(i, u)| ev("long", u, None, expose((i % 2) as u32)))
        .collect();
    s.apply_events(&batch).unwrap();
    // Finished before being killed: wait to be killed all the same.
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn killed_mid_batch_applies_it_wholly_or_not_at_all() {
    if let Some((role, db)) = role() {
        if role == "kill" {
            kill_child(&db);
        }
        return;
    }
    let path = temp_db("kill");
    let marker = PathBuf::from(format!("{}.marker", path.display()));
    let mut child = spawn_role(
        "killed_mid_batch_applies_it_wholly_or_not_at_all",
        "kill",
        &path,
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "child never signalled");
        assert!(child.try_wait().unwrap().is_none(), "child exited early");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let s = SqliteStorage::open(&path).unwrap();
    assert_eq!(participants(&s, "pre"), 10, "the committed batch survives");
    let n = participants(&s, "long");
    assert!(
        n == 0 || n == KILL_BATCH as u64,
        "batch applied partly: {n} of {KILL_BATCH}"
    );
    let first = s.unit_state("long", "unit-00000000").unwrap().is_some();
    let last = s
        .unit_state("long", &format!("unit-{:08}", KILL_BATCH - 1))
        .unwrap()
        .is_some();
    assert_eq!(
        (first, last),
        (n > 0, n > 0),
        "unit states agree with totals"
    );
    let ok: String = raw(&path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    drop(s);
    remove_db(&path);
}

const WRITER_INCREMENTS: u64 = 40;
const WRITER_UNITS: u32 = 200;

/// One concurrent writer: versioned increments of a shared counter, and every event of an
/// overlapping unit range sent (each writer sends the same exposures, conversions and
/// event-id'd values).
fn writer(s: &dyn Storage) {
    for _ in 0..WRITER_INCREMENTS {
        loop {
            let r = s
                .get_record(RecordKind::Settings, "counter")
                .unwrap()
                .unwrap();
            let n = r.body["n"].as_u64().unwrap();
            let body = json!({"n": n + 1});
            match s.put_record(
                RecordWrite {
                    kind: RecordKind::Settings,
                    id: "counter",
                    unique_key: None,
                    body: &body,
                },
                Some(r.version),
            ) {
                Ok(_) => break,
                Err(StorageError::VersionConflict { .. }) => continue,
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }
    for chunk in (0..WRITER_UNITS).collect::<Vec<_>>().chunks(20) {
        let units: Vec<String> = chunk.iter().map(|i| format!("u{i}")).collect();
        let ids: Vec<String> = chunk.iter().map(|i| format!("v{i}")).collect();
        let mut batch = Vec::new();
        for (u, id) in units.iter().zip(&ids) {
            batch.push(ev("shared", u, None, expose(0)));
            batch.push(ev("shared", u, None, convert()));
            batch.push(ev("shared", u, Some(id), value(1.0)));
        }
        s.apply_events(&batch).unwrap();
    }
}

fn seed_counter(path: &Path) {
    let s = SqliteStorage::open(path).unwrap();
    put(&s, RecordKind::Settings, "counter", None, &json!({"n": 0}));
}

fn check_writers(path: &Path, writers: u64) {
    let s = SqliteStorage::open(path).unwrap();
    let r = s
        .get_record(RecordKind::Settings, "counter")
        .unwrap()
        .unwrap();
    assert_eq!(
        r.body["n"],
        writers * WRITER_INCREMENTS,
        "no lost config update"
    );
    assert_eq!(r.version, writers * WRITER_INCREMENTS + 1);
    assert_eq!(participants(&s, "shared"), u64::from(WRITER_UNITS));
    assert_eq!(metric_sum(&s, "shared", 0), f64::from(WRITER_UNITS));
    assert_eq!(
        metric_sum(&s, "shared", 1),
        f64::from(WRITER_UNITS),
        "event ids count once"
    );
}

#[test]
fn threads_with_their_own_connections_never_lose_updates() {
    let path = temp_db("threads");
    seed_counter(&path);
    let opts = SqliteOptions::new().busy_timeout(Duration::from_secs(60));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::new(SqliteStorage::open_with(&path, &opts).unwrap());
            std::thread::spawn(move || writer(&*s))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    check_writers(&path, 4);
    remove_db(&path);
}

#[test]
fn two_processes_on_one_file_never_lose_updates() {
    if let Some((role, db)) = role() {
        if role == "writer" {
            let s = SqliteStorage::open_with(
                &db,
                &SqliteOptions::new().busy_timeout(Duration::from_secs(60)),
            )
            .unwrap();
            writer(&s);
        }
        return;
    }
    let path = temp_db("procs");
    seed_counter(&path);
    let children: Vec<_> = (0..2)
        .map(|_| {
            spawn_role(
                "two_processes_on_one_file_never_lose_updates",
                "writer",
                &path,
            )
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a writer process failed");
    }
    check_writers(&path, 2);
    remove_db(&path);
}

/// Two processes on one file: the second lab follows the first's writes through the change feed
/// (schema version 4), polled by a `fleet::Watcher` (SQLite cannot signal).
#[test]
fn a_watcher_follows_another_connection_through_the_change_feed() {
    use abkit::fleet::{WatchOptions, Watcher};
    use abkit::{Context, Lab, NewFlag};
    let path = temp_db("feed");
    let a = Lab::builder()
        .storage(Arc::new(SqliteStorage::open(&path).unwrap()))
        .build()
        .unwrap();
    let b = Arc::new(
        Lab::builder()
            .storage(Arc::new(SqliteStorage::open(&path).unwrap()))
            .build()
            .unwrap(),
    );
    let start = b.storage().change_position().unwrap().unwrap();
    let watcher = Watcher::start(&b, WatchOptions::new().poll(Duration::from_millis(20))).unwrap();
    let new: NewFlag = serde_json::from_value(json!({
        "project_id": "p", "key": "k", "default_value": "on", "environment": "production"
    }))
    .unwrap();
    a.flags().create(new).unwrap();
    // The feed names the write, and only committed writes.
    let changes = a.storage().changes_since(start).unwrap().unwrap();
    assert_eq!(changes.position, start + 1);
    assert_eq!(changes.records.unwrap().len(), 1);
    let ctx = Context::new("u");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while b.evaluate("p", "production", "k", &ctx).value() != &json!("on") {
        assert!(
            std::time::Instant::now() < deadline,
            "the flag never reached the second lab"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = watcher.stop();
    assert!(stats.syncs >= 1 && stats.errors == 0, "{stats:?}");
    drop((a, b));
    remove_db(&path);
}

/// Same events, same answers: SQLite against the reference in-memory store.
#[test]
fn prop_matches_memory_storage() {
    differential::matches_memory(&SqliteStorage::open_in_memory().unwrap(), 256);
}
