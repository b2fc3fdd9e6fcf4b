//! Buffered ingestion (`Ingestor`): totals equal direct tracking, batching by size and time,
//! back-pressure, retries that never double count, shutdown, concurrency, queue order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use abkit::storage::{
    EventOutcome, ExperimentTotals, MemoryStorage, Record, RecordChange, RecordKind, RecordWrite,
    Storage, StorageError, UnitEvent, UnitState,
};
use abkit::{
    Context, IngestError, IngestOptions, IngestStats, Ingestor, Lab, ManualClock, NewExperiment,
    SequentialIdGenerator, Timestamp, TrackEvent,
};
use serde_json::json;

const T0: i64 = 1_736_949_600_000;

/// A store around `MemoryStorage` whose `apply_events`, once armed, can wait on a gate, lose
/// the answer of a committed write, or refuse every write.
#[derive(Debug, Default)]
struct Wrapped {
    inner: MemoryStorage,
    armed: AtomicBool,
    /// While set, each call waits for a message (or for the sender to be dropped).
    gate: Mutex<Option<mpsc::Receiver<()>>>,
    /// Told when a call reaches the gate.
    entered: Mutex<Option<mpsc::Sender<()>>>,
    /// This many calls apply the batch and then report a failure.
    lose_answers: AtomicU64,
    /// Every call fails without applying anything.
    refuse: AtomicBool,
    calls: AtomicU64,
}

impl Storage for Wrapped {
    fn get_record(&self, kind: RecordKind, id: &str) -> Result<Option<Record>, StorageError> {
        self.inner.get_record(kind, id)
    }
    fn list_records(&self, kind: RecordKind) -> Result<Vec<Record>, StorageError> {
        self.inner.list_records(kind)
    }
    fn put_record(&self, w: RecordWrite<'_>, expected: Option<u64>) -> Result<u64, StorageError> {
        self.inner.put_record(w, expected)
    }
    fn delete_record(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StorageError> {
        self.inner.delete_record(kind, id, expected)
    }
    fn commit(&self, changes: &[RecordChange<'_>]) -> Result<Vec<u64>, StorageError> {
        self.inner.commit(changes)
    }
    fn apply_events(&self, events: &[UnitEvent<'_>]) -> Result<Vec<EventOutcome>, StorageError> {
        if !self.armed.load(Ordering::SeqCst) {
            return self.inner.apply_events(events);
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(tx) = self.entered.lock().unwrap().as_ref() {
            let _ = tx.send(());
        }
        if let Some(rx) = self.gate.lock().unwrap().as_ref() {
            let _ = rx.recv();
        }
        if self.refuse.load(Ordering::SeqCst) {
            return Err(StorageError::Backend("injected outage".into()));
        }
        let out = self.inner.apply_events(events)?;
        let lose = self
            .lose_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if lose {
            return Err(StorageError::Backend("connection lost after commit".into()));
        }
        Ok(out)
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

/// A lab on `storage` with a manual clock and sequential ids (two labs built alike give their
/// experiments the same ids, hence the same assignments), counting exposure-hook calls.
fn lab_on(storage: Arc<dyn Storage>) -> (Arc<Lab>, Arc<AtomicU64>) {
    let hooked = Arc::new(AtomicU64::new(0));
    let lab = Lab::builder()
        .storage(storage)
        .clock(Arc::new(ManualClock::new(Timestamp::from_unix_millis(T0))))
        .id_generator(Arc::new(SequentialIdGenerator::default()))
        .exposure_hook({
            let hooked = Arc::clone(&hooked);
            move |_, _| {
                hooked.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    (Arc::new(lab), hooked)
}

fn lab() -> Arc<Lab> {
    lab_on(Arc::new(MemoryStorage::new())).0
}

/// A running experiment with `conversion` (slot 0) and the mean `watchTime` (slot 1).
fn running(lab: &Lab) -> String {
    let new: NewExperiment = serde_json::from_value(json!({
        "name": "t",
        "variants": [{"id": "control"}, {"id": "treatment"}],
        "metrics": ["conversion", "watchTime"],
    }))
    .unwrap();
    let e = lab.experiments().create(new).unwrap();
    lab.experiments().start(e.id().as_str()).unwrap();
    e.id().to_string()
}

/// Options that never write a partial batch on time alone (only on flush or a full batch).
fn no_timer() -> IngestOptions {
    IngestOptions::default().max_delay(Duration::from_secs(600))
}

/// Enqueues the exposure of `unit` in `id`.
fn record(ingest: &Ingestor, lab: &Lab, id: &str, unit: &str) {
    let ctx = Context::new(unit);
    let d = lab.assign(id, &ctx).unwrap();
    ingest.try_record(&d.exposure().unwrap()).unwrap();
}

fn participants(t: &ExperimentTotals) -> u64 {
    t.variants.iter().map(|v| v.participants).sum()
}

/// Σ over variants of slot `slot`'s sum.
fn metric_sum(t: &ExperimentTotals, slot: usize) -> f64 {
    t.variants
        .iter()
        .map(|v| v.metrics.get(slot).map_or(0.0, |m| m.sum))
        .sum()
}

/// A fixed-seed xorshift.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What a test sends: exposures (by unit) and track events, in order.
enum Sent {
    Expose(String),
    Track(TrackEvent),
}

#[test]
fn ingested_totals_equal_direct_tracking() {
    let (a, hooked_a) = lab_on(Arc::new(MemoryStorage::new()));
    let (b, hooked_b) = lab_on(Arc::new(MemoryStorage::new()));
    let id = running(&a);
    assert_eq!(
        running(&b),
        id,
        "sequential ids: the same experiment in both labs"
    );

    // A fixed-seed stream: each unit is exposed (sometimes twice), then converts (sometimes
    // twice) and sends watch times; a few events are invalid or for units never exposed.
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut sent = Vec::new();
    let (mut expected_sum, mut converted, mut exposed) = (0.0, 0_u64, 0_u64);
    let (mut invalid, mut rejected) = (0_u64, 0_u64);
    for u in 0..300 {
        let unit = format!("u{u}");
        if rng.next(10) == 0 {
            // Never exposed: each of its events is rejected.
            sent.push(Sent::Track(TrackEvent::conversion(&id, &unit)));
            rejected += 1;
            continue;
        }
        sent.push(Sent::Expose(unit.clone()));
        exposed += 1;
        if rng.next(4) == 0 {
            sent.push(Sent::Expose(unit.clone()));
        }
        let conversions = rng.next(3);
        converted += u64::from(conversions > 0);
        for _ in 0..conversions {
            sent.push(Sent::Track(TrackEvent::conversion(&id, &unit)));
        }
        for _ in 0..rng.next(4) {
            let v = (1 + rng.next(100)) as f64;
            expected_sum += v;
            sent.push(Sent::Track(TrackEvent::value(&id, &unit, "watchTime", v)));
        }
        if rng.next(20) == 0 {
            sent.push(Sent::Track(
                TrackEvent::conversion(&id, &unit).goal("clicks"),
            ));
            invalid += 1;
        }
    }

    let ingest = Ingestor::start(Arc::clone(&a), IngestOptions::default().max_batch(64)).unwrap();
    for s in &sent {
        match s {
            Sent::Expose(unit) => record(&ingest, &a, &id, unit),
            Sent::Track(e) => ingest.try_track(e.clone()).unwrap(),
        }
    }
    let stats = ingest.flush().unwrap();

    // The same events, directly: every exposure first, then one batch of track events.
    let mut tracks = Vec::new();
    for s in &sent {
        match s {
            Sent::Expose(unit) => {
                b.expose(&id, &Context::new(unit.as_str())).unwrap();
            }
            Sent::Track(e) => tracks.push(e.clone()),
        }
    }
    b.events().track_batch(&tracks).unwrap();

    let (ta, tb) = (
        a.storage().totals(&id).unwrap(),
        b.storage().totals(&id).unwrap(),
    );
    assert_eq!(ta, tb, "the same per-variant totals as direct tracking");
    assert_eq!(participants(&ta), exposed);
    assert_eq!(metric_sum(&ta, 0), converted as f64);
    assert_eq!(metric_sum(&ta, 1), expected_sum);
    assert_eq!(
        a.reports().experiment_with_counts(&id).unwrap().conversions,
        converted
    );
    assert_eq!(
        hooked_a.load(Ordering::SeqCst),
        exposed,
        "one hook call per new enrolment"
    );
    assert_eq!(hooked_b.load(Ordering::SeqCst), exposed);

    assert_eq!(stats.completed(), sent.len() as u64, "{stats:?}");
    assert_eq!((stats.queued, stats.in_flight), (0, 0));
    assert_eq!(
        (stats.invalid, stats.rejected, stats.failed),
        (invalid, rejected, 0)
    );
    let values = sent
        .iter()
        .filter(|s| matches!(s, Sent::Track(e) if e.value.is_some()))
        .count() as u64;
    assert_eq!(stats.written, exposed + converted + values, "{stats:?}");
    assert!(stats.recent_errors.len() <= 8 && !stats.recent_errors.is_empty());
    assert_eq!(stats.last_error.as_ref(), stats.recent_errors.last());
    ingest.shutdown().unwrap();
}

#[test]
fn batches_by_size() {
    let lab = lab();
    let id = running(&lab);
    for u in 0..95 {
        lab.expose(&id, &Context::new(format!("u{u}").as_str()))
            .unwrap();
    }
    let ingest = Ingestor::start(Arc::clone(&lab), no_timer().max_batch(10)).unwrap();
    for u in 0..95 {
        ingest
            .try_track(TrackEvent::conversion(&id, &format!("u{u}")))
            .unwrap();
    }
    let stats = ingest.flush().unwrap();
    assert_eq!((stats.batches, stats.written), (10, 95), "{stats:?}");
    assert_eq!(metric_sum(&lab.storage().totals(&id).unwrap(), 0), 95.0);
}

#[test]
fn a_partial_batch_is_written_after_max_delay_without_a_flush() {
    let lab = lab();
    let id = running(&lab);
    lab.expose(&id, &Context::new("u1")).unwrap();
    let ingest = Ingestor::start(
        Arc::clone(&lab),
        IngestOptions::default().max_delay(Duration::from_millis(20)),
    )
    .unwrap();
    ingest.try_track(TrackEvent::conversion(&id, "u1")).unwrap();
    let start = Instant::now();
    while ingest.stats().written < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not written on time: {:?}",
            ingest.stats()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(ingest.stats().batches, 1);
    assert_eq!(metric_sum(&lab.storage().totals(&id).unwrap(), 0), 1.0);
}

#[test]
fn a_full_queue_is_refused_then_drains() {
    let store = Arc::new(Wrapped::default());
    let (lab, _) = lab_on(store.clone());
    let id = running(&lab);
    for u in 0..10 {
        lab.expose(&id, &Context::new(format!("u{u}").as_str()))
            .unwrap();
    }
    let (release, gate) = mpsc::channel();
    let (entered_tx, entered) = mpsc::channel();
    *store.gate.lock().unwrap() = Some(gate);
    *store.entered.lock().unwrap() = Some(entered_tx);
    store.armed.store(true, Ordering::SeqCst);

    let options = IngestOptions::default()
        .capacity(4)
        .max_batch(2)
        .max_delay(Duration::from_millis(1));
    let ingest = Arc::new(Ingestor::start(Arc::clone(&lab), options).unwrap());
    let conversion = |u: usize| TrackEvent::conversion(&id, &format!("u{u}"));
    // The first item is taken into a batch, whose write blocks on the gate.
    ingest.try_track(conversion(0)).unwrap();
    entered.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(ingest.stats().in_flight, 1);
    for u in 1..5 {
        ingest.try_track(conversion(u)).unwrap();
    }
    assert_eq!(
        ingest.try_track(conversion(5)),
        Err(IngestError::Full { capacity: 4 })
    );
    assert_eq!(
        ingest.track_timeout(conversion(5), Duration::from_millis(30)),
        Err(IngestError::Full { capacity: 4 })
    );
    let s = ingest.stats();
    assert_eq!((s.queued, s.in_flight, s.completed()), (4, 1, 0));

    // A producer waiting for room gets it once the write goes through.
    let waiting = std::thread::spawn({
        let (ingest, e) = (Arc::clone(&ingest), conversion(5));
        move || ingest.track_timeout(e, Duration::from_secs(10))
    });
    std::thread::sleep(Duration::from_millis(20));
    drop(release); // every call passes the gate from now on
    waiting.join().unwrap().unwrap();
    let stats = ingest.flush().unwrap();
    assert_eq!(
        (stats.written, stats.completed(), stats.failed),
        (6, 6, 0),
        "{stats:?}"
    );
    assert_eq!(metric_sum(&lab.storage().totals(&id).unwrap(), 0), 6.0);
}

#[test]
fn retries_after_a_lost_answer_count_once() {
    let store = Arc::new(Wrapped::default());
    let (lab, hooked) = lab_on(store.clone());
    let id = running(&lab);
    store.lose_answers.store(2, Ordering::SeqCst);
    store.armed.store(true, Ordering::SeqCst);
    let options = no_timer().backoff(Duration::from_millis(1));
    let ingest = Ingestor::start(Arc::clone(&lab), options).unwrap();
    let mut rng = Rng(0xFEED_0000_0000_0042);
    let (mut sum, mut items) = (0.0, 0_u64);
    for u in 0..50 {
        let unit = format!("u{u}");
        record(&ingest, &lab, &id, &unit);
        ingest
            .try_track(TrackEvent::conversion(&id, &unit))
            .unwrap();
        items += 2;
        for _ in 0..3 {
            let v = (1 + rng.next(50)) as f64;
            sum += v;
            ingest
                .try_track(TrackEvent::value(&id, &unit, "watchTime", v))
                .unwrap();
            items += 1;
        }
    }
    let stats = ingest.flush().unwrap();
    let totals = lab.storage().totals(&id).unwrap();
    assert_eq!(participants(&totals), 50);
    assert_eq!(metric_sum(&totals, 0), 50.0);
    assert_eq!(
        metric_sum(&totals, 1),
        sum,
        "the retried values were counted once"
    );
    let squares: f64 = totals
        .variants
        .iter()
        .map(|v| v.metrics[1].sum_squares)
        .sum();
    assert!(squares > 0.0);
    assert_eq!(stats.retries, 2, "{stats:?}");
    assert_eq!(store.calls.load(Ordering::SeqCst), 3);
    assert_eq!(stats.failed, 0);
    // The committed first attempt did the work: the retry found it all done.
    assert_eq!((stats.written, stats.duplicates), (0, items), "{stats:?}");
    assert_eq!(
        hooked.load(Ordering::SeqCst),
        0,
        "the lost answer's enrolments are not re-announced"
    );
}

#[test]
fn a_store_that_always_fails_counts_every_item_as_failed() {
    let store = Arc::new(Wrapped::default());
    let (lab, _) = lab_on(store.clone());
    let id = running(&lab);
    lab.expose(&id, &Context::new("u0")).unwrap();
    store.refuse.store(true, Ordering::SeqCst);
    store.armed.store(true, Ordering::SeqCst);
    let options = no_timer()
        .retries(3)
        .backoff(Duration::from_millis(1))
        .max_batch(4);
    let ingest = Ingestor::start(Arc::clone(&lab), options).unwrap();
    for u in 0..7 {
        ingest
            .try_track(TrackEvent::value(&id, &format!("u{u}"), "watchTime", 1.0))
            .unwrap();
    }
    let stats = ingest.flush().unwrap();
    assert_eq!(
        (stats.failed, stats.completed(), stats.batches),
        (7, 7, 2),
        "{stats:?}"
    );
    assert_eq!(stats.retries, 4, "two repeated attempts per batch");
    assert_eq!(store.calls.load(Ordering::SeqCst), 6);
    let last = stats.last_error.unwrap();
    assert!(
        last.contains("injected outage") && last.contains("after 3 attempts"),
        "{last}"
    );
    assert_eq!(metric_sum(&lab.storage().totals(&id).unwrap(), 1), 0.0);
}

#[test]
fn shutdown_writes_everything_and_close_refuses_more() {
    let lab = lab();
    let id = running(&lab);
    let ingest = Ingestor::start(Arc::clone(&lab), no_timer()).unwrap();
    for u in 0..250 {
        let unit = format!("u{u}");
        record(&ingest, &lab, &id, &unit);
        ingest
            .try_track(TrackEvent::conversion(&id, &unit))
            .unwrap();
    }
    ingest.close();
    assert_eq!(
        ingest.try_track(TrackEvent::conversion(&id, "u0")),
        Err(IngestError::Closed)
    );
    let ctx = Context::new("late");
    let d = lab.assign(&id, &ctx).unwrap();
    assert_eq!(
        ingest.try_record(&d.exposure().unwrap()),
        Err(IngestError::Closed)
    );
    let stats = ingest.shutdown().unwrap();
    assert_eq!((stats.written, stats.completed()), (500, 500), "{stats:?}");
    let totals = lab.storage().totals(&id).unwrap();
    assert_eq!(
        (participants(&totals), metric_sum(&totals, 0)),
        (250, 250.0)
    );

    // Dropping an ingestor writes what is queued too.
    let ingest = Ingestor::start(Arc::clone(&lab), no_timer()).unwrap();
    for u in 250..260 {
        record(&ingest, &lab, &id, &format!("u{u}"));
    }
    drop(ingest);
    assert_eq!(participants(&lab.storage().totals(&id).unwrap()), 260);
}

#[test]
fn concurrent_producers_account_for_every_event() {
    const THREADS: usize = 4;
    const EACH: usize = 500;
    let lab = lab();
    let id = running(&lab);
    // Even units are enrolled; odd ones are not (rejected); every 7th event has a bad goal.
    for u in (0..THREADS * EACH).step_by(2) {
        lab.expose(&id, &Context::new(format!("u{u}").as_str()))
            .unwrap();
    }
    let options = no_timer().capacity(64).max_batch(50);
    let ingest = Arc::new(Ingestor::start(Arc::clone(&lab), options).unwrap());
    let producers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (ingest, id) = (Arc::clone(&ingest), id.clone());
            std::thread::spawn(move || {
                for k in 0..EACH {
                    let u = t * EACH + k;
                    let mut e = TrackEvent::conversion(&id, &format!("u{u}"));
                    if u.is_multiple_of(7) {
                        e = e.goal("nope");
                    }
                    ingest.track_timeout(e, Duration::from_secs(30)).unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let stats = ingest.flush().unwrap();
    let n = (THREADS * EACH) as u64;
    let bad_goal = (0..THREADS * EACH).filter(|u| u.is_multiple_of(7)).count() as u64;
    let counted = (0..THREADS * EACH)
        .filter(|u| u.is_multiple_of(2) && !u.is_multiple_of(7))
        .count() as u64;
    assert_eq!(stats.completed(), n, "{stats:?}");
    assert_eq!(
        stats.written + stats.duplicates + stats.rejected + stats.invalid + stats.failed,
        n
    );
    assert_eq!(
        (stats.invalid, stats.written),
        (bad_goal, counted),
        "{stats:?}"
    );
    assert_eq!(stats.rejected, n - bad_goal - counted);
    assert_eq!(
        metric_sum(&lab.storage().totals(&id).unwrap(), 0),
        counted as f64
    );
}

#[test]
fn an_exposure_enqueued_before_a_conversion_is_applied_first() {
    let lab = lab();
    let id = running(&lab);
    let ingest = Ingestor::start(Arc::clone(&lab), no_timer()).unwrap();
    record(&ingest, &lab, &id, "first");
    ingest
        .try_track(TrackEvent::conversion(&id, "first"))
        .unwrap();
    // The other order: the conversion comes before the unit is enrolled.
    ingest
        .try_track(TrackEvent::conversion(&id, "second"))
        .unwrap();
    record(&ingest, &lab, &id, "second");
    let stats = ingest.flush().unwrap();
    assert_eq!(stats.batches, 1, "one batch, one storage call");
    assert_eq!((stats.written, stats.rejected), (3, 1), "{stats:?}");
    assert!(
        stats
            .last_error
            .as_deref()
            .unwrap()
            .contains("not enrolled"),
        "{stats:?}"
    );
    let totals = lab.storage().totals(&id).unwrap();
    assert_eq!((participants(&totals), metric_sum(&totals, 0)), (2, 1.0));
}

#[test]
fn flush_timeout_reports_what_is_pending() {
    let store = Arc::new(Wrapped::default());
    let (lab, _) = lab_on(store.clone());
    let id = running(&lab);
    let (release, gate) = mpsc::channel();
    *store.gate.lock().unwrap() = Some(gate);
    store.armed.store(true, Ordering::SeqCst);
    let ingest = Ingestor::start(Arc::clone(&lab), no_timer()).unwrap();
    record(&ingest, &lab, &id, "u1");
    match ingest.flush_timeout(Duration::from_millis(30)) {
        Err(IngestError::Timeout { pending: 1, .. }) => {}
        other => panic!("expected a timeout with one item pending, got {other:?}"),
    }
    drop(release);
    let stats = ingest.flush_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(stats.written, 1);
}

#[test]
fn options_out_of_range_are_refused_by_name() {
    let lab = lab();
    let d = IngestOptions::default();
    let cases = [
        (d.max_batch(0), "max_batch is 0"),
        (d.max_delay(Duration::ZERO), "max_delay is 0ns"),
        (d.capacity(0), "capacity is 0"),
        (d.retries(0), "retries is 0"),
        (d.backoff(Duration::ZERO), "backoff is 0ns"),
        (
            d.max_backoff(Duration::from_millis(1)),
            "max_backoff is 1ms",
        ),
    ];
    for (options, message) in cases {
        let err = Ingestor::start(Arc::clone(&lab), options).unwrap_err();
        assert!(
            matches!(err, IngestError::InvalidOption { .. }) && err.to_string().contains(message),
            "{err}"
        );
    }
    assert_eq!(d.validate(), Ok(()));
}

#[test]
fn valued_events_get_ids_and_the_public_types_are_shared() {
    fn shared<T: Send + Sync + std::fmt::Debug>() {}
    shared::<Ingestor>();
    shared::<IngestOptions>();
    shared::<IngestError>();
    shared::<IngestStats>();
    let lab = lab();
    let id = running(&lab);
    lab.expose(&id, &Context::new("u1")).unwrap();
    let ingest = Ingestor::start(Arc::clone(&lab), no_timer()).unwrap();
    // A caller's own id is kept: the same id twice counts once.
    for _ in 0..2 {
        ingest
            .try_track(TrackEvent::value(&id, "u1", "watchTime", 5.0).event_id("order-1"))
            .unwrap();
    }
    // Without ids, two equal values are two events.
    for _ in 0..2 {
        ingest
            .try_track(TrackEvent::value(&id, "u1", "watchTime", 7.0))
            .unwrap();
    }
    let stats = ingest.flush().unwrap();
    assert_eq!((stats.written, stats.duplicates), (3, 1), "{stats:?}");
    assert_eq!(metric_sum(&lab.storage().totals(&id).unwrap(), 1), 19.0);
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["inFlight"], 0);
    assert_eq!(json["lastError"], serde_json::Value::Null);
    assert!(format!("{ingest:?}").contains("Ingestor"));
}

#[cfg(feature = "sqlite")]
#[test]
fn ingests_into_sqlite() {
    let store = Arc::new(abkit::storage::SqliteStorage::open_in_memory().unwrap());
    let (lab, _) = lab_on(store);
    let id = running(&lab);
    let ingest = Ingestor::start(Arc::clone(&lab), IngestOptions::default().max_batch(32)).unwrap();
    let mut sum = 0.0;
    for u in 0_u32..100 {
        let unit = format!("u{u}");
        record(&ingest, &lab, &id, &unit);
        if u.is_multiple_of(3) {
            ingest
                .try_track(TrackEvent::conversion(&id, &unit))
                .unwrap();
        }
        let v = f64::from(u % 11);
        sum += v;
        ingest
            .try_track(TrackEvent::value(&id, &unit, "watchTime", v))
            .unwrap();
    }
    let stats = ingest.shutdown().unwrap();
    assert_eq!((stats.completed(), stats.failed), (234, 0), "{stats:?}");
    let totals = lab.storage().totals(&id).unwrap();
    assert_eq!(participants(&totals), 100);
    assert_eq!(metric_sum(&totals, 0), 34.0);
    assert_eq!(metric_sum(&totals, 1), sum);
}
