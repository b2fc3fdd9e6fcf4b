//! Many instances on one store: a [`Watcher`] keeps a lab's snapshot current with the
//! configuration writes other instances commit.
//!
//! Each instance decides locally, from its own compiled snapshot; only writes and events go to
//! the shared database. A watcher is a background thread the host starts explicitly: it waits
//! on the store's change signal ([`Storage::wait_for_change`](crate::storage::Storage::wait_for_change):
//! `LISTEN/NOTIFY` on PostgreSQL) and then calls [`Lab::sync`], which re-reads only the records
//! that changed. Every wait is bounded by [`WatchOptions::poll`], so the store's cheap change
//! counter is also polled — after a reconnect, when a notification was missed, and on stores
//! that cannot signal (SQLite).
//!
//! Architecture invariant: the fleet module drives a [`Lab`] through its public facade and
//! its storage's change feed; it holds no configuration of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::control::SyncReport;
use crate::error::{Result, ValidationError};
use crate::lab::Lab;

/// How a [`Watcher`] follows its store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchOptions {
    poll: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            poll: Duration::from_millis(500),
        }
    }
}

impl WatchOptions {
    /// The defaults: wait at most 500 ms for a signal before polling the change counter.
    pub fn new() -> WatchOptions {
        WatchOptions::default()
    }

    /// The longest wait for a change signal before the counter is polled anyway (also how long
    /// stopping the watcher may take). At least 1 ms.
    pub fn poll(mut self, poll: Duration) -> WatchOptions {
        self.poll = poll.max(Duration::from_millis(1));
        self
    }
}

/// What a [`Watcher`] has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WatchStats {
    /// Syncs that found changes (and applied those the snapshot holds).
    pub syncs: u64,
    /// Records applied over all syncs.
    pub applied: u64,
    /// Syncs that reloaded everything.
    pub reloads: u64,
    /// Failed waits or syncs (each retried at the next poll).
    pub errors: u64,
    /// The most recent failure.
    pub last_error: Option<String>,
    /// The change-feed position the lab reflects.
    pub position: Option<u64>,
}

type OnSync = Box<dyn Fn(&SyncReport) + Send + Sync>;

/// A background thread keeping one lab current with a shared store. Stops when dropped (or
/// when the lab is dropped).
///
/// ```
/// use std::sync::Arc;
/// use abkit::Lab;
/// use abkit::fleet::{WatchOptions, Watcher};
///
/// // The memory store is one process's own: there is nothing to watch.
/// let lab = Arc::new(Lab::new());
/// assert!(Watcher::start(&lab, WatchOptions::new()).is_err());
/// ```
pub struct Watcher {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<WatchStats>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// Starts watching `lab`'s store.
    ///
    /// # Errors
    ///
    /// [`crate::error::Error::Validation`] (field `storage`) when the store keeps no change feed (the
    /// memory store: nothing else writes to it); a storage failure reading the feed.
    pub fn start(lab: &Arc<Lab>, options: WatchOptions) -> Result<Watcher> {
        Watcher::start_with(lab, options, |_| {})
    }

    /// Like [`Watcher::start`], calling `on_sync` after every sync that found changes
    /// (the `http` feature's server reloads its API keys there).
    ///
    /// # Errors
    ///
    /// As [`Watcher::start`].
    pub fn start_with(
        lab: &Arc<Lab>,
        options: WatchOptions,
        on_sync: impl Fn(&SyncReport) + Send + Sync + 'static,
    ) -> Result<Watcher> {
        if lab.storage().change_position()?.is_none() {
            return Err(ValidationError::field(
                "storage",
                format!(
                    "{:?} keeps no change feed: no other instance writes to it, so there is \
                     nothing to watch",
                    lab.storage()
                ),
            )
            .into());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(WatchStats::default()));
        let weak = Arc::downgrade(lab);
        let on_sync: OnSync = Box::new(on_sync);
        let thread = {
            let stop = Arc::clone(&stop);
            let stats = Arc::clone(&stats);
            std::thread::Builder::new()
                .name("abkit-watcher".into())
                .spawn(move || watch(&weak, &options, &stop, &stats, &on_sync))
                .map_err(|e| {
                    crate::error::Error::Storage(crate::storage::StorageError::Backend(format!(
                        "cannot start the watcher thread: {e}"
                    )))
                })?
        };
        Ok(Watcher {
            stop,
            stats,
            thread: Some(thread),
        })
    }

    /// What the watcher has done so far.
    pub fn stats(&self) -> WatchStats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the thread and waits for it (at most about one poll interval).
    pub fn stop(mut self) -> WatchStats {
        self.halt();
        self.stats()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.halt();
    }
}

fn watch(
    lab: &Weak<Lab>,
    options: &WatchOptions,
    stop: &AtomicBool,
    stats: &Mutex<WatchStats>,
    on_sync: &OnSync,
) {
    let record = |f: &dyn Fn(&mut WatchStats)| {
        f(&mut stats.lock().unwrap_or_else(PoisonError::into_inner));
    };
    while !stop.load(Ordering::Acquire) {
        let Some(lab) = lab.upgrade() else {
            return;
        };
        if let Err(e) = lab.storage().wait_for_change(options.poll) {
            let text = e.to_string();
            record(&|s| {
                s.errors += 1;
                s.last_error = Some(text.clone());
            });
            // The store is unreachable: do not spin; the next wait reconnects.
            std::thread::sleep(options.poll);
        }
        if stop.load(Ordering::Acquire) {
            return;
        }
        match lab.sync() {
            Ok(report) => {
                let changed = !report.kinds.is_empty() || report.reloaded;
                record(&|s| {
                    s.position = report.position;
                    if changed {
                        s.syncs += 1;
                        s.applied += report.applied as u64;
                        s.reloads += u64::from(report.reloaded);
                    }
                });
                if changed {
                    on_sync(&report);
                }
            }
            Err(e) => {
                let text = e.to_string();
                record(&|s| {
                    s.errors += 1;
                    s.last_error = Some(text.clone());
                });
            }
        }
    }
}
