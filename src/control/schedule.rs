//! Time-driven configuration changes, applied by an explicit [`crate::Lab::tick`]: scheduled
//! starts and stops (`startAt`, `stopAt`), flag rules' active windows (`activeFrom`,
//! `activeUntil`), and bandit weight updates.
//!
//! A tick reads no clock: the host passes `now`. It scans the decoded configuration in memory
//! (nothing is read from storage unless something is due), then applies each due transition as
//! one versioned write of the version it re-read from storage: of several instances ticking on
//! one store exactly one write succeeds, and the others see a version conflict (or the
//! transition already made) and move on. A late tick catches up: everything due by `now` is
//! applied (a start and a stop that both passed are both made; a bandit due for several periods
//! is updated once).

use serde::Serialize;

use crate::allocation::Weight;
use crate::control::Control;
use crate::control::codec::Versioned;
use crate::control::experiments::{Experiments, check_startable};
use crate::decision::snapshot::Change;
use crate::error::{Conflict, Error, Result};
use crate::model::bandit::{ArmBaseline, BanditPeriod, MAX_BANDIT_PERIODS};
use crate::model::experiment::{Experiment, ExperimentType};
use crate::model::lifecycle::{Operation, Status};
use crate::model::metric::MetricKind;
use crate::model::validation::ValidationError;
use crate::stats::bandit::{ArmTotals, bandit_seed, thompson_weights};
use crate::storage::{ExperimentTotals, RecordKind};
use crate::time::Timestamp;

/// What one [`crate::Lab::tick`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TickReport {
    /// The instant ticked at.
    pub now: Timestamp,
    /// Experiments this tick started (their `startAt` had come).
    pub started: Vec<String>,
    /// Experiments this tick stopped (their `stopAt` had come).
    pub stopped: Vec<String>,
    /// Bandits whose weights this tick recomputed (a new weight version each).
    pub reweighted: Vec<String>,
    /// Transitions another instance made first: its versioned write won, nothing was written
    /// here.
    pub lost: Vec<String>,
    /// Transitions that failed (experiment id, error message); the next tick tries again.
    pub failed: Vec<(String, String)>,
    /// Flags recompiled because a rule's active window opened or closed.
    pub flags_recompiled: usize,
}

impl TickReport {
    /// Whether the tick wrote nothing and recompiled nothing.
    pub fn is_empty(&self) -> bool {
        self.started.is_empty()
            && self.stopped.is_empty()
            && self.reweighted.is_empty()
            && self.lost.is_empty()
            && self.failed.is_empty()
            && self.flags_recompiled == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Due {
    Start,
    Stop,
    Reweight,
}

/// What is due at `now` for `e`, from the decoded configuration.
fn due(e: &Experiment, now: Timestamp) -> Option<Due> {
    match e.status() {
        Status::Draft if e.start_at().is_some_and(|t| t <= now) => Some(Due::Start),
        Status::Running if e.stop_at().is_some_and(|t| t <= now) => Some(Due::Stop),
        Status::Running
            if e.kind() == ExperimentType::Bandit
                && e.bandit()
                    .and_then(|b| b.next_update(e.started_at()))
                    .is_some_and(|t| t <= now) =>
        {
            Some(Due::Reweight)
        }
        _ => None,
    }
}

/// Whether `err` says another writer got there first.
fn is_lost(err: &Error) -> bool {
    matches!(
        err,
        Error::Conflict(Conflict::Version {
            kind: "experiment",
            ..
        }) | Error::Lifecycle { .. }
    )
}

/// Applies everything due at `now` (see the module docs).
pub(crate) fn tick(control: &Control, now: Timestamp) -> Result<TickReport> {
    let mut report = TickReport {
        now,
        ..TickReport::default()
    };
    let due_now: Vec<(String, Due)> = {
        let mut w = control.writer();
        let before = w.config.as_of;
        let flags: Vec<String> = w
            .config
            .flags
            .values()
            .filter(|f| f.rules.iter().any(|r| r.has_boundary_between(before, now)))
            .map(|f| f.id.to_string())
            .collect();
        w.config.as_of = Some(now);
        for id in &flags {
            w.publish(&Change::Flag(id))?;
        }
        report.flags_recompiled = flags.len();
        w.config
            .experiments
            .values()
            .filter_map(|e| due(e, now).map(|d| (e.id().to_string(), d)))
            .collect()
    };
    for (id, first) in due_now {
        let mut step = Some(first);
        while let Some(d) = step.take() {
            match apply(control, &id, d, now) {
                Ok(Some((d, e))) => {
                    match d {
                        Due::Start => report.started.push(id.clone()),
                        Due::Stop => report.stopped.push(id.clone()),
                        Due::Reweight => report.reweighted.push(id.clone()),
                    }
                    // Catch up: a start whose stop has passed too is stopped in the same tick.
                    step = due(&e, now).filter(|next| *next != d);
                }
                Ok(None) => {
                    report.lost.push(id.clone());
                    reload(control, &id)?;
                }
                Err(err) if is_lost(&err) => {
                    report.lost.push(id.clone());
                    reload(control, &id)?;
                }
                Err(err) => report.failed.push((id.clone(), err.to_string())),
            }
        }
    }
    Ok(report)
}

/// Re-reads experiment `id` into the configuration (another instance changed it).
fn reload(control: &Control, id: &str) -> Result<()> {
    control.writer().reload(RecordKind::Experiment, id)?;
    Ok(())
}

/// Applies what the stored record of `id` calls for at `now` (`expected`, or another step when
/// another instance already made that one: a stale instance still catches up); `None` when
/// nothing is due any more.
fn apply(
    control: &Control,
    id: &str,
    expected: Due,
    now: Timestamp,
) -> Result<Option<(Due, Experiment)>> {
    let stored: Versioned<Experiment> = control.require(id)?;
    let Some(d) = due(&stored, now) else {
        return Ok(None);
    };
    if d != expected {
        // Another instance moved it on: take in its state, then do what is due now.
        reload(control, id)?;
    }
    let version = Some(stored.version());
    let exps = Experiments::new(control);
    let written = match d {
        Due::Start => exps.transition_with(
            id,
            version,
            Operation::Start,
            true,
            Some(now),
            |w, e, at| {
                check_startable(w, e)?;
                e.data_mut().started_at = Some(at);
                Ok(())
            },
        )?,
        Due::Stop => exps.transition_with(
            id,
            version,
            Operation::Stop,
            false,
            Some(now),
            |_, e, at| {
                let d = e.data_mut();
                d.stop_reason = Some("scheduled stop (stopAt)".to_owned());
                d.ended_at = Some(at);
                Ok(())
            },
        )?,
        Due::Reweight => {
            let (arms, bps) = new_weights(control, &stored)?;
            exps.transition_with(
                id,
                version,
                Operation::Ramp,
                false,
                Some(now),
                |_, e, at| reweigh(e, &arms, &bps, at),
            )?
        }
    };
    Ok(Some((d, written.into_inner())))
}

/// Each of the first `arms` variants' cumulative totals on the primary (first) metric: what a
/// bandit's weights and its per-period analysis are computed from.
pub(crate) fn arm_totals(totals: &ExperimentTotals, arms: usize) -> Vec<ArmTotals> {
    (0..arms)
        .map(|i| {
            let t = totals.variant(i);
            let m = t.metrics.first().copied().unwrap_or_default();
            ArmTotals {
                count: t.participants,
                sum: m.sum,
                sum_squares: m.sum_squares,
            }
        })
        .collect()
}

/// The arms' cumulative primary-metric totals and their next weights in basis points.
fn new_weights(control: &Control, e: &Experiment) -> Result<(Vec<ArmTotals>, Vec<u16>)> {
    let totals = control.storage.totals(e.id().as_str())?;
    let arms = arm_totals(&totals, e.variants().len());
    let kind = e
        .metrics()
        .first()
        .map_or(MetricKind::Proportion, |m| m.kind());
    let (share, version) = e
        .bandit()
        .map_or((0.0, 0), |b| (b.min_exploration_share, b.weight_version));
    let shares = thompson_weights(
        kind,
        &arms,
        share,
        bandit_seed(e.id().as_str(), version + 1),
    )?;
    Ok((arms, to_basis_points(&shares)))
}

/// Fractions summing to 1 as basis points summing to exactly 10 000 (largest remainders).
fn to_basis_points(shares: &[f64]) -> Vec<u16> {
    let full = f64::from(Weight::FULL.basis_points());
    let mut bps: Vec<u16> = shares
        .iter()
        .map(|s| (s * full).floor().clamp(0.0, full) as u16)
        .collect();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    let frac = |i: usize| shares.get(i).map_or(0.0, |s| s * full - (s * full).floor());
    order.sort_by(|a, b| frac(*b).total_cmp(&frac(*a)).then(a.cmp(b)));
    let mut missing = Weight::FULL
        .basis_points()
        .saturating_sub(bps.iter().sum::<u16>());
    for i in order.iter().cycle().take(order.len() * 2) {
        if missing == 0 {
            break;
        }
        if let Some(b) = bps.get_mut(*i) {
            *b += 1;
            missing -= 1;
        }
    }
    bps
}

/// Writes the new weights and a new period into `e`'s bandit state.
fn reweigh(e: &mut Experiment, arms: &[ArmTotals], bps: &[u16], at: Timestamp) -> Result<()> {
    let d = e.data_mut();
    let old: Vec<u16> = d.variants.iter().map(|v| v.weight.basis_points()).collect();
    for (v, bp) in d.variants.iter_mut().zip(bps) {
        v.weight = Weight::from_basis_points(u32::from(*bp))
            .map_err(|err| ValidationError::weight("variants", err))?;
    }
    let started = d.started_at.unwrap_or(at);
    let Some(b) = d.bandit.as_mut() else {
        return Err(ValidationError::field("bandit", "missing for a bandit").into());
    };
    if b.periods.is_empty() {
        b.periods.push(BanditPeriod {
            start: started,
            weights: old,
            baseline: vec![ArmBaseline::default(); arms.len()],
        });
    }
    b.periods.push(BanditPeriod {
        start: at,
        weights: bps.to_vec(),
        baseline: arms
            .iter()
            .map(|a| ArmBaseline {
                count: a.count,
                sum: a.sum,
                sum_squares: a.sum_squares,
            })
            .collect(),
    });
    if b.periods.len() > MAX_BANDIT_PERIODS {
        // The two oldest become one: the second's data joins the first's.
        b.periods.remove(1);
    }
    b.weight_version += 1;
    b.updated_at = Some(at);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_points_sum_to_full() {
        let bps = to_basis_points(&[1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
        assert_eq!(bps.iter().sum::<u16>(), 10_000);
        let bps = to_basis_points(&[0.05, 0.90, 0.05]);
        assert_eq!(bps, vec![500, 9000, 500]);
    }
}
