//! A bandit experiment's settings and state: how it explores, how often its weights are
//! recomputed, and the history of weight versions (periods) its analysis needs.
//!
//! Pure data: the weights are configuration like any experiment's. `Lab::tick` recomputes them
//! from the results (Thompson sampling, [`crate::stats::bandit`]) and writes a new weight
//! version; the decision path never draws a random number.

use serde::{Deserialize, Serialize};

use crate::model::validation::ValidationError;
use crate::time::Timestamp;

/// At most this many periods are kept; beyond it the two oldest are merged into one.
pub const MAX_BANDIT_PERIODS: usize = 1000;

/// The default minimum share of traffic every arm keeps (5%).
pub const DEFAULT_MIN_EXPLORATION_SHARE: f64 = 0.05;

/// The default time between weight updates (one day).
pub const DEFAULT_UPDATE_PERIOD_SECONDS: u64 = 86_400;

/// A bandit's settings, as a create or update request gives them (`"bandit": {...}`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BanditSettings {
    /// The least share of traffic (a fraction, 0 to 1/arms) every arm keeps (default 0.05).
    #[serde(default)]
    pub min_exploration_share: Option<f64>,
    /// Seconds between weight updates (default 86 400: daily; at least 1).
    #[serde(default)]
    pub update_period_seconds: Option<u64>,
}

/// The arms' cumulative totals of the primary metric when a period began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmBaseline {
    /// Units enrolled.
    pub count: u64,
    /// Σ x of the primary metric.
    pub sum: f64,
    /// Σ x² of the primary metric.
    pub sum_squares: f64,
}

/// One weight version: when it began, the weights served (basis points per variant) and the
/// cumulative totals at its start (so a period's own data is the next baseline minus this one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BanditPeriod {
    /// When these weights were first served.
    pub start: Timestamp,
    /// The weights, in basis points, in variant order.
    pub weights: Vec<u16>,
    /// Per variant, the cumulative totals when the period began.
    pub baseline: Vec<ArmBaseline>,
}

/// A bandit experiment's settings and weight history, stored with the experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bandit {
    /// The least share of traffic every arm keeps.
    pub min_exploration_share: f64,
    /// Seconds between weight updates.
    pub update_period_seconds: u64,
    /// Incremented by every weight update (0: the initial weights).
    #[serde(default)]
    pub weight_version: u64,
    /// When the weights were last recomputed.
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    /// The weight versions served so far, oldest first (empty before the first update).
    #[serde(default)]
    pub periods: Vec<BanditPeriod>,
}

impl Bandit {
    /// A bandit from request settings (defaults filled in).
    pub(crate) fn from_settings(s: &BanditSettings) -> Bandit {
        Bandit {
            min_exploration_share: s
                .min_exploration_share
                .unwrap_or(DEFAULT_MIN_EXPLORATION_SHARE),
            update_period_seconds: s
                .update_period_seconds
                .unwrap_or(DEFAULT_UPDATE_PERIOD_SECONDS),
            weight_version: 0,
            updated_at: None,
            periods: Vec::new(),
        }
    }

    /// Checks the settings against `arms` variants.
    pub(crate) fn validate(&self, arms: usize) -> Result<(), ValidationError> {
        let s = self.min_exploration_share;
        let most = 1.0 / arms.max(1) as f64;
        if !(s.is_finite() && s >= 0.0 && s <= most + 1e-12) {
            return Err(ValidationError::field(
                "bandit.minExplorationShare",
                format!("{s} is outside [0, 1/{arms}]"),
            ));
        }
        if self.update_period_seconds == 0 {
            return Err(ValidationError::field(
                "bandit.updatePeriodSeconds",
                "0 is not a period; at least 1 second",
            ));
        }
        if self.periods.len() > MAX_BANDIT_PERIODS {
            return Err(ValidationError::field(
                "bandit.periods",
                format!("{} kept, at most {MAX_BANDIT_PERIODS}", self.periods.len()),
            ));
        }
        for (i, p) in self.periods.iter().enumerate() {
            if p.weights.len() != arms || p.baseline.len() != arms {
                return Err(ValidationError::field(
                    format!("bandit.periods[{i}]"),
                    format!("{} weights for {arms} variants", p.weights.len()),
                ));
            }
        }
        Ok(())
    }

    /// When the next weight update is due, counting from `started_at` until the first one.
    pub fn next_update(&self, started_at: Option<Timestamp>) -> Option<Timestamp> {
        let from = self.updated_at.or(started_at)?;
        let ms = i64::try_from(self.update_period_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        Some(from.add_millis(ms))
    }
}
