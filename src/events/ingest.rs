//! Buffered ingestion: [`Ingestor`] queues exposures and track events in memory and one
//! background thread writes them in batches, so a service records without waiting on its
//! database.
//!
//! The queue is bounded ([`IngestOptions::capacity`]): when it is full, enqueueing fails with
//! [`IngestError::Full`] (back-pressure), and nothing is ever dropped silently. Every item
//! enqueued ends in exactly one of the counters of [`IngestStats`].

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::decision::experiment::Exposure;
use crate::error::Error;
use crate::model::ids::{ExperimentId, VariantKey};
use crate::storage::EventOutcome;
use crate::time::Timestamp;

use super::{BatchItem, Events, TrackEvent};

/// How many of the most recent errors [`IngestStats::recent_errors`] keeps.
const RECENT_ERRORS: usize = 8;

/// What the flusher thread writes through: the lab (implemented in `src/lab.rs`, which owns the
/// `Lab` type; the event plane does not import the facade).
pub(crate) trait Source: Send + Sync + 'static {
    /// The lab's event plane.
    fn events(&self) -> Events<'_>;
}

/// The options of an [`Ingestor`], builder-style; every count and delay must be at least 1.
///
/// ```
/// use std::time::Duration;
/// use abkit::IngestOptions;
///
/// let options = IngestOptions::default()
///     .max_batch(500)
///     .max_delay(Duration::from_millis(20))
///     .capacity(10_000);
/// assert!(options.validate().is_ok());
/// assert!(IngestOptions::default().max_batch(0).validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestOptions {
    max_batch: usize,
    max_delay: Duration,
    capacity: usize,
    retries: u32,
    backoff: Duration,
    max_backoff: Duration,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            max_batch: 1000,
            max_delay: Duration::from_millis(50),
            capacity: 100_000,
            retries: 5,
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl IngestOptions {
    /// The most items written in one storage call (default 1 000).
    #[must_use]
    pub fn max_batch(mut self, items: usize) -> Self {
        self.max_batch = items;
        self
    }

    /// How long after its first item arrived a partial batch is written (default 50 ms).
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The most items queued and not yet taken into a batch (default 100 000): beyond,
    /// enqueueing is [`IngestError::Full`].
    #[must_use]
    pub fn capacity(mut self, items: usize) -> Self {
        self.capacity = items;
        self
    }

    /// How many attempts a batch gets when storage fails (default 5, the first included);
    /// after the last, its items are counted as [`IngestStats::failed`].
    #[must_use]
    pub fn retries(mut self, attempts: u32) -> Self {
        self.retries = attempts;
        self
    }

    /// The wait before the first retry (default 10 ms); it doubles with each retry, up to
    /// [`IngestOptions::max_backoff`].
    #[must_use]
    pub fn backoff(mut self, first: Duration) -> Self {
        self.backoff = first;
        self
    }

    /// The longest wait between two attempts (default 1 s).
    #[must_use]
    pub fn max_backoff(mut self, cap: Duration) -> Self {
        self.max_backoff = cap;
        self
    }

    /// Checks the options: every count and delay at least 1, `max_backoff` at least `backoff`.
    ///
    /// # Errors
    ///
    /// [`IngestError::InvalidOption`] naming the first option that is not.
    pub fn validate(&self) -> Result<(), IngestError> {
        let invalid =
            |field, value: String, must| Err(IngestError::InvalidOption { field, value, must });
        if self.max_batch == 0 {
            return invalid("max_batch", "0".into(), "at least 1 item");
        }
        if self.max_delay.is_zero() {
            return invalid("max_delay", "0ns".into(), "at least 1ns");
        }
        if self.capacity == 0 {
            return invalid("capacity", "0".into(), "at least 1 item");
        }
        if self.retries == 0 {
            return invalid("retries", "0".into(), "at least 1 attempt");
        }
        if self.backoff.is_zero() {
            return invalid("backoff", "0ns".into(), "at least 1ns");
        }
        if self.max_backoff < self.backoff {
            return invalid(
                "max_backoff",
                format!("{:?}", self.max_backoff),
                "at least backoff",
            );
        }
        Ok(())
    }
}

/// What an [`Ingestor`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// An option out of range.
    #[error("ingest option {field} is {value}: it must be {must}")]
    InvalidOption {
        /// The option (`max_batch`, `max_delay`, `capacity`, `retries`, `backoff`,
        /// `max_backoff`).
        field: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        must: &'static str,
    },
    /// The queue holds `capacity` items: nothing was enqueued; retry later (back-pressure).
    #[error("ingest queue is full ({capacity} items queued): nothing was enqueued, retry later")]
    Full {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The ingestor was shut down: it accepts nothing more.
    #[error("ingestor is shut down: nothing more can be enqueued")]
    Closed,
    /// A flush did not complete in time; the items are still being written.
    #[error("flush timed out after {waited:?}: {pending} items not yet written")]
    Timeout {
        /// How long the flush waited.
        waited: Duration,
        /// Items enqueued before the flush and not yet written (or failed).
        pending: u64,
    },
    /// The flusher thread could not be started, or stopped abnormally.
    #[error("ingest flusher thread: {0}")]
    Thread(String),
}

/// What an [`Ingestor`] did: every item enqueued is counted in exactly one of `queued`,
/// `in_flight`, `written`, `duplicates`, `rejected`, `invalid` and `failed`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct IngestStats {
    /// Items waiting for a batch.
    pub queued: u64,
    /// Items of the batch being written.
    pub in_flight: u64,
    /// Items applied by storage that changed it (an enrolment, a counted value, a stored
    /// event of a forced unit).
    pub written: u64,
    /// Items applied by storage that changed nothing: a unit already enrolled, a conversion
    /// already counted, an event id seen before.
    pub duplicates: u64,
    /// Items storage refused (a unit not enrolled, an event outside the metric's window…).
    pub rejected: u64,
    /// Items that failed validation (an unknown experiment or goal, an experiment not running,
    /// a missing value…).
    pub invalid: u64,
    /// Items given up on after the last attempt of their batch failed.
    pub failed: u64,
    /// Attempts repeated after a storage failure.
    pub retries: u64,
    /// Batches taken from the queue.
    pub batches: u64,
    /// The most recent error (a rejection, a validation error, a batch given up on).
    pub last_error: Option<String>,
    /// The most recent errors, oldest first (at most 8).
    pub recent_errors: Vec<String>,
}

impl IngestStats {
    /// Items accounted for: everything but `queued` and `in_flight`.
    pub fn completed(&self) -> u64 {
        self.written + self.duplicates + self.rejected + self.invalid + self.failed
    }

    fn error(&mut self, message: String) {
        if self.recent_errors.len() >= RECENT_ERRORS {
            self.recent_errors.remove(0);
        }
        self.recent_errors.push(message.clone());
        self.last_error = Some(message);
    }
}

/// An exposure, owned (as queued).
#[derive(Debug)]
struct OwnedExposure {
    experiment_id: ExperimentId,
    unit_id: String,
    variant: VariantKey,
    variant_index: u32,
    forced: bool,
    at: Timestamp,
}

#[derive(Debug)]
enum Item {
    Exposure(OwnedExposure),
    Track(TrackEvent),
}

impl Item {
    fn as_batch_item(&self) -> BatchItem<'_> {
        match self {
            Item::Exposure(x) => BatchItem::Exposure {
                exposure: Exposure {
                    experiment_id: &x.experiment_id,
                    unit_id: &x.unit_id,
                    variant: &x.variant,
                    variant_index: x.variant_index,
                    forced: x.forced,
                },
                at: x.at,
            },
            Item::Track(e) => BatchItem::Track(e),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Items with the instant each arrived, oldest first.
    queue: VecDeque<(Instant, Item)>,
    /// Items taken into batches so far (the sequence number of the queue's head).
    taken: u64,
    /// Items written or given up on so far.
    done: u64,
    /// Flushes want every item before this sequence number written without delay.
    flush_upto: u64,
    /// No more items are accepted.
    closed: bool,
    /// The flusher thread has ended.
    finished: bool,
    stats: IngestStats,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the flusher: a first item, a full batch, a flush, the close.
    work: Condvar,
    /// Wakes producers waiting for room.
    room: Condvar,
    /// Wakes flushes: a batch done, the thread ended.
    progress: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Waits on `cv` until `deadline` (forever when `None`); `false` once it has passed.
fn wait_until<'a>(
    cv: &Condvar,
    guard: MutexGuard<'a, State>,
    deadline: Option<Instant>,
) -> (MutexGuard<'a, State>, bool) {
    match deadline {
        None => (cv.wait(guard).unwrap_or_else(PoisonError::into_inner), true),
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                return (guard, false);
            }
            let (g, _) = cv
                .wait_timeout(guard, d - now)
                .unwrap_or_else(PoisonError::into_inner);
            (g, true)
        }
    }
}

/// A buffered, non-blocking way in for exposures and track events: a bounded queue in
/// memory and ONE background thread (named `abkit-ingest`) that writes it in batches through
/// the lab's event plane, in queue order, retrying storage failures with a backoff.
///
/// * Enqueueing ([`try_track`](Ingestor::try_track), [`try_record`](Ingestor::try_record))
///   never waits on the database; a full queue is [`IngestError::Full`], never a silent drop.
/// * Items are checked when their batch is written: errors are counted in
///   [`IngestStats`] (`invalid`, `rejected`) with the most recent messages.
/// * A batch is written in one atomic `Storage::apply_events` call, exposures and events in
///   the order they were enqueued; it is retried whole when storage fails. A valued event
///   without an `event_id` is given one when enqueued (`ingest:{nonce}:{sequence}`), so a
///   retry of a batch whose write was committed but reported failed counts it once
///   (exposures and conversions are idempotent per unit anyway). The exposure hook is called
///   for new enrolments of a successful write.
/// * Track events and exposures without a timestamp are stamped with the lab's clock when
///   enqueued.
/// * [`flush`](Ingestor::flush) waits for everything enqueued before it;
///   [`shutdown`](Ingestor::shutdown) (and `Drop`) flushes and joins the thread.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use abkit::{Context, IngestOptions, Ingestor, Lab, NewExperiment, TrackEvent};
///
/// let lab = Arc::new(Lab::new());
/// let new: NewExperiment = serde_json::from_value(serde_json::json!({
///     "name": "checkout", "variants": [{"id": "a"}, {"id": "b"}]
/// }))?;
/// let id = lab.experiments().create(new)?.id().to_string();
/// lab.experiments().start(&id)?;
///
/// let ingest = Ingestor::start(Arc::clone(&lab), IngestOptions::default())?;
/// let ctx = Context::new("u1");
/// let decision = lab.assign(&id, &ctx)?;
/// if let Some(exposure) = decision.exposure() {
///     ingest.try_record(&exposure)?; // enqueued, not yet written
/// }
/// ingest.try_track(TrackEvent::conversion(&id, "u1"))?;
/// let stats = ingest.flush()?; // both written, the exposure first
/// assert_eq!((stats.written, stats.completed()), (2, 2));
/// assert_eq!(lab.events().enrolled(&id, "u1")?, decision.variant_key().cloned());
/// let counts = lab.reports().experiment_with_counts(&id)?;
/// assert_eq!((counts.participants.iter().sum::<u64>(), counts.conversions), (1, 1));
/// ingest.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ingestor {
    shared: Arc<Shared>,
    source: Arc<dyn Source>,
    options: IngestOptions,
    nonce: u64,
    sequence: AtomicU64,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// A number no other ingestor (of this process or, with overwhelming probability, another)
/// uses: the prefix of the event ids it assigns.
fn nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.write_u32(std::process::id());
    h.finish()
}

impl Ingestor {
    /// Starts the flusher thread writing through `source` (the lab: see `Ingestor::start`).
    pub(crate) fn spawn(
        source: Arc<dyn Source>,
        options: IngestOptions,
    ) -> Result<Ingestor, IngestError> {
        options.validate()?;
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("abkit-ingest".into())
            .spawn({
                let (shared, source) = (Arc::clone(&shared), Arc::clone(&source));
                move || run(&shared, &*source, &options)
            })
            .map_err(|e| IngestError::Thread(format!("cannot be started: {e}")))?;
        Ok(Ingestor {
            shared,
            source,
            options,
            nonce: nonce(),
            sequence: AtomicU64::new(0),
            thread: Some(thread),
        })
    }

    /// Enqueues a track event without waiting. A valued event without an id is given one; an
    /// event without a timestamp is stamped now.
    ///
    /// # Errors
    ///
    /// [`IngestError::Full`] when the queue is at capacity (nothing was enqueued);
    /// [`IngestError::Closed`] after shutdown.
    pub fn try_track(&self, event: TrackEvent) -> Result<(), IngestError> {
        let item = Item::Track(self.prepare(event));
        self.push(item, None)
    }

    /// Enqueues a track event, waiting up to `timeout` for room in the queue.
    ///
    /// # Errors
    ///
    /// [`IngestError::Full`] when there was still no room after `timeout`;
    /// [`IngestError::Closed`] after shutdown.
    pub fn track_timeout(&self, event: TrackEvent, timeout: Duration) -> Result<(), IngestError> {
        let item = Item::Track(self.prepare(event));
        self.push(item, Some(timeout))
    }

    /// Enqueues an exposure ([`crate::Decision::exposure`], [`crate::Evaluation::exposure`])
    /// without waiting, stamped now: when written, it enrols the unit as
    /// [`Events::record`] does.
    ///
    /// # Errors
    ///
    /// As [`Ingestor::try_track`].
    pub fn try_record(&self, exposure: &Exposure<'_>) -> Result<(), IngestError> {
        let item = Item::Exposure(OwnedExposure {
            experiment_id: exposure.experiment_id.clone(),
            unit_id: exposure.unit_id.to_owned(),
            variant: exposure.variant.clone(),
            variant_index: exposure.variant_index,
            forced: exposure.forced,
            at: self.source.events().now(),
        });
        self.push(item, None)
    }

    /// Waits until every item enqueued before the call is written (or counted as failed, or
    /// invalid…), writing a partial batch at once; returns the stats then.
    ///
    /// # Errors
    ///
    /// [`IngestError::Thread`] if the flusher thread ended abnormally.
    pub fn flush(&self) -> Result<IngestStats, IngestError> {
        self.flush_until(None)
    }

    /// [`Ingestor::flush`], waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`IngestError::Timeout`] when items enqueued before the call are still pending after
    /// `timeout`; [`IngestError::Thread`] as [`Ingestor::flush`].
    pub fn flush_timeout(&self, timeout: Duration) -> Result<IngestStats, IngestError> {
        self.flush_until(Some(timeout))
    }

    /// The counters now.
    pub fn stats(&self) -> IngestStats {
        let st = self.shared.lock();
        Self::stats_of(&st)
    }

    /// The options it runs with.
    pub fn options(&self) -> &IngestOptions {
        &self.options
    }

    /// Stops accepting items, writes everything queued, joins the thread; returns the final
    /// stats. Dropping an ingestor does the same, ignoring errors.
    ///
    /// # Errors
    ///
    /// [`IngestError::Thread`] if the flusher thread panicked.
    pub fn shutdown(mut self) -> Result<IngestStats, IngestError> {
        self.finish()
    }

    /// Stops accepting items without waiting: later enqueues (and producers waiting in
    /// [`Ingestor::track_timeout`]) are [`IngestError::Closed`]; the thread still writes
    /// everything queued, then ends. [`Ingestor::flush`] still works.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_all();
        self.shared.room.notify_all();
    }

    fn finish(&mut self) -> Result<IngestStats, IngestError> {
        self.close();
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| IngestError::Thread("panicked".into()))?;
        }
        Ok(self.stats())
    }

    fn stats_of(st: &State) -> IngestStats {
        let mut stats = st.stats.clone();
        stats.queued = st.queue.len() as u64;
        stats
    }

    fn prepare(&self, mut event: TrackEvent) -> TrackEvent {
        if event.value.is_some() && event.event_id.is_none() {
            let n = self.sequence.fetch_add(1, Ordering::Relaxed);
            event.event_id = Some(format!("ingest:{:016x}:{n}", self.nonce));
        }
        if event.timestamp.is_none() {
            event.timestamp = Some(self.source.events().now());
        }
        event
    }

    fn push(&self, item: Item, wait: Option<Duration>) -> Result<(), IngestError> {
        let capacity = self.options.capacity;
        let deadline = wait.map(|w| Instant::now().checked_add(w));
        let mut st = self.shared.lock();
        loop {
            if st.closed {
                return Err(IngestError::Closed);
            }
            if st.queue.len() < capacity {
                break;
            }
            let Some(deadline) = deadline else {
                return Err(IngestError::Full { capacity });
            };
            let (g, more) = wait_until(&self.shared.room, st, deadline);
            st = g;
            if !more && st.queue.len() >= capacity && !st.closed {
                return Err(IngestError::Full { capacity });
            }
        }
        st.queue.push_back((Instant::now(), item));
        let len = st.queue.len();
        drop(st);
        // The flusher waits for a first item (then for its deadline) or for a full batch.
        if len == 1 || len == self.options.max_batch {
            self.shared.work.notify_one();
        }
        Ok(())
    }

    fn flush_until(&self, timeout: Option<Duration>) -> Result<IngestStats, IngestError> {
        let started = Instant::now();
        let deadline = timeout.and_then(|t| started.checked_add(t));
        let mut st = self.shared.lock();
        let target = st.taken + st.queue.len() as u64;
        if st.flush_upto < target {
            st.flush_upto = target;
            self.shared.work.notify_one();
        }
        while st.done < target {
            if st.finished {
                return Err(IngestError::Thread(
                    "ended before writing every item".into(),
                ));
            }
            let (g, more) = wait_until(&self.shared.progress, st, deadline);
            st = g;
            if !more && st.done < target {
                return Err(IngestError::Timeout {
                    waited: started.elapsed(),
                    pending: target - st.done,
                });
            }
        }
        Ok(Self::stats_of(&st))
    }
}

impl Drop for Ingestor {
    fn drop(&mut self) {
        // Best effort: a panicked flusher has nothing left to report to.
        let _ = self.finish();
    }
}

/// The flusher thread: takes batches off the queue and writes them until the ingestor is
/// closed and the queue drained.
fn run(shared: &Shared, source: &dyn Source, options: &IngestOptions) {
    let mut st = shared.lock();
    loop {
        while st.queue.is_empty() && !st.closed {
            st = shared.work.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        if st.queue.is_empty() {
            break; // closed and drained
        }
        // A partial batch waits for more until its first item is `max_delay` old.
        loop {
            if st.queue.len() >= options.max_batch || st.closed || st.flush_upto > st.taken {
                break;
            }
            let Some(&(arrived, _)) = st.queue.front() else {
                break;
            };
            let (g, more) = wait_until(&shared.work, st, arrived.checked_add(options.max_delay));
            st = g;
            if !more {
                break;
            }
        }
        let n = st.queue.len().min(options.max_batch);
        let batch: Vec<Item> = st.queue.drain(..n).map(|(_, item)| item).collect();
        st.taken += n as u64;
        st.stats.in_flight = n as u64;
        st.stats.batches += 1;
        drop(st);
        shared.room.notify_all();

        let tally = write_batch(source, &batch, options);

        st = shared.lock();
        let stats = &mut st.stats;
        stats.in_flight = 0;
        stats.written += tally.written;
        stats.duplicates += tally.duplicates;
        stats.rejected += tally.rejected;
        stats.invalid += tally.invalid;
        stats.failed += tally.failed;
        stats.retries += tally.retries;
        for e in tally.errors {
            stats.error(e);
        }
        st.done += n as u64;
        shared.progress.notify_all();
    }
    st.finished = true;
    drop(st);
    shared.progress.notify_all();
}

/// What writing one batch did.
#[derive(Default)]
struct Tally {
    written: u64,
    duplicates: u64,
    rejected: u64,
    invalid: u64,
    failed: u64,
    retries: u64,
    errors: Vec<String>,
}

/// Writes `batch` in one storage call, retrying storage failures with the backoff.
fn write_batch(source: &dyn Source, batch: &[Item], options: &IngestOptions) -> Tally {
    let items: Vec<BatchItem<'_>> = batch.iter().map(Item::as_batch_item).collect();
    let n = items.len() as u64;
    let mut tally = Tally::default();
    let mut delay = options.backoff;
    let mut attempt = 1;
    loop {
        // A panicking store or exposure hook must not take the thread (and every later
        // flush) down with it: its batch is counted as failed.
        let result = catch_unwind(AssertUnwindSafe(|| source.events().apply_batch(&items)));
        match result {
            Ok(Ok(outcomes)) => {
                let mut errors: Vec<&Error> = Vec::new();
                for outcome in &outcomes {
                    match outcome {
                        Ok(
                            EventOutcome::Enrolled
                            | EventOutcome::Recorded
                            | EventOutcome::Excluded,
                        ) => {
                            tally.written += 1;
                        }
                        Ok(EventOutcome::Rejected(_)) => tally.rejected += 1,
                        Ok(_) => tally.duplicates += 1,
                        Err(e) => {
                            if matches!(e, Error::Rejected { .. }) {
                                tally.rejected += 1;
                            } else {
                                tally.invalid += 1;
                            }
                            errors.push(e);
                        }
                    }
                }
                let skip = errors.len().saturating_sub(RECENT_ERRORS);
                tally.errors = errors.iter().skip(skip).map(|e| e.to_string()).collect();
                return tally;
            }
            Ok(Err(_)) if attempt < options.retries => {
                tally.retries += 1;
                attempt += 1;
                std::thread::sleep(delay);
                delay = delay.saturating_mul(2).min(options.max_backoff);
            }
            Ok(Err(e)) => {
                tally.failed = n;
                tally.errors = vec![format!(
                    "batch of {n} items failed after {attempt} attempts: {e}"
                )];
                return tally;
            }
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                tally.failed = n;
                tally.errors = vec![format!(
                    "batch of {n} items failed: writing it panicked: {why}"
                )];
                return tally;
            }
        }
    }
}
