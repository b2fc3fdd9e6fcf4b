//! What an event does to a unit and to its variant's totals: the arithmetic every storage
//! shares, so that implementations supply atomicity, not maths.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// The most metric slots an experiment may have.
pub const MAX_METRIC_SLOTS: u32 = 256;
/// The most variants an experiment may have.
pub const MAX_VARIANTS: u32 = 1000;
/// The largest magnitude a unit's total (value, denominator or covariate) may reach: its square
/// and the sums over any realistic number of units stay finite, so no total ever becomes
/// infinite or NaN. An event that would exceed it is rejected as [`Rejection::InvalidValue`].
pub const MAX_UNIT_VALUE: f64 = 1e100;

fn bounded(v: &UnitValue) -> bool {
    v.numerator.abs() <= MAX_UNIT_VALUE
        && v.denominator.abs() <= MAX_UNIT_VALUE
        && v.covariate.is_none_or(|c| c.abs() <= MAX_UNIT_VALUE)
}

/// How a metric folds a unit's events into its per-unit value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// A conversion: the unit's value becomes 1 the first time; later ones are duplicates.
    Once,
    /// A sum of values (and of denominators, for a ratio).
    Sum,
}

/// Which metric an event is for, and how it is counted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricSlot {
    /// The metric's position in the experiment's metrics.
    pub index: u32,
    /// How events fold into the unit's value.
    pub aggregation: Aggregation,
    /// Winsorise the unit's total at this value (upper cap), if set.
    pub cap: Option<f64>,
    /// Only events within this many milliseconds of the unit's exposure count.
    pub window_millis: Option<i64>,
}

/// What happened to a unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnitEventKind {
    /// The unit saw `variant`: enrols it. `excluded` units (overrides) are stored but never
    /// counted in results.
    Exposure {
        /// The variant's index.
        variant: u32,
        /// Left out of results (a forced unit).
        excluded: bool,
    },
    /// A metric event: a conversion (`Once`) or a value (`Sum`, with a denominator for ratios).
    Metric {
        /// The metric.
        slot: MetricSlot,
        /// The value (ignored for `Once`: a conversion counts 1).
        value: f64,
        /// The ratio denominator to add (0 for other kinds).
        denominator: f64,
    },
    /// The unit's pre-period covariate for a metric (CUPED); replaces any earlier one.
    Covariate {
        /// The metric.
        slot: MetricSlot,
        /// The covariate's value.
        value: f64,
    },
}

/// One event about one unit of one experiment, as storage receives it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitEvent<'a> {
    /// The experiment's id.
    pub experiment: &'a str,
    /// The unit's id.
    pub unit: &'a str,
    /// A caller-supplied id: a retried event with the same id (for the same unit) counts once.
    pub event_id: Option<&'a str>,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: UnitEventKind,
}

/// Why an event was not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// The unit has no recorded exposure: it cannot be attributed to a variant.
    NotEnrolled,
    /// The event happened before the unit's exposure.
    BeforeExposure,
    /// The event happened after the metric's conversion window closed.
    OutsideWindow,
    /// A non-finite value, or a slot or variant out of range.
    InvalidValue,
}

impl Rejection {
    /// A lowercase description.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rejection::NotEnrolled => "unit is not enrolled (no exposure recorded)",
            Rejection::BeforeExposure => "event is earlier than the unit's exposure",
            Rejection::OutsideWindow => "event is outside the metric's conversion window",
            Rejection::InvalidValue => {
                "value is not finite or too large (a unit's total must stay within ±1e100), or metric or variant out of range"
            }
        }
    }
}

/// What storage did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum EventOutcome {
    /// An exposure that enrolled the unit.
    Enrolled,
    /// An exposure of a unit already enrolled: nothing changed.
    AlreadyEnrolled,
    /// A metric value or covariate that was counted.
    Recorded,
    /// A conversion of a unit that had already converted on that goal: nothing changed.
    Duplicate,
    /// An event whose id was seen before for this unit: nothing changed.
    DuplicateEventId,
    /// An event of a forced (overridden) unit: stored, not counted in results.
    Excluded,
    /// Not counted, for the reason given; nothing changed.
    Rejected(Rejection),
}

impl EventOutcome {
    /// Whether the event changed stored state (and its event id should be remembered).
    pub const fn is_stored(self) -> bool {
        matches!(
            self,
            EventOutcome::Enrolled | EventOutcome::Recorded | EventOutcome::Excluded
        )
    }
}

/// One unit's value of one metric.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitValue {
    /// The summed value (1 for a converted unit), uncapped.
    pub numerator: f64,
    /// The summed ratio denominator.
    pub denominator: f64,
    /// The pre-period covariate, if given.
    pub covariate: Option<f64>,
}

/// Everything stored about one enrolled unit of one experiment.
///
/// Build one from stored parts with [`UnitState::new`]; change it only through
/// [`UnitState::apply`] (which keeps the conversion bits in step with the values). It is 32
/// bytes, so an in-memory table can keep a unit in one cache line: a plain conversion in one of
/// the first 64 metric slots is kept as one bit, and other values sit behind one pointer that
/// is `None` until a unit has any.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(into = "UnitStateParts", from = "UnitStateParts")]
pub struct UnitState {
    /// The variant it was exposed to.
    pub variant: u32,
    /// When.
    pub exposed_at: Timestamp,
    /// A forced unit, left out of results.
    pub excluded: bool,
    /// Metric values by slot that are more than a plain conversion (missing slots are zero);
    /// `None` until the first such value.
    values: Option<Box<Values>>,
    /// Bit `i` (slots below 64) is set when the value's numerator is at least 1. A set bit over
    /// a stored numerator below 1 means exactly 1: a plain conversion needs no stored value. Lets
    /// the de-duplication of a repeated conversion answer without reading the values. Derived
    /// from the values on [`UnitState::new`], never stored.
    converted: u64,
}

/// A unit's values, boxed so that [`UnitState`] stays one pointer wide for them.
#[derive(Clone, Debug, Default)]
struct Values(Vec<UnitValue>);

impl PartialEq for UnitState {
    fn eq(&self, other: &Self) -> bool {
        // Trailing zero values are the same as absent ones.
        let (a, b) = (self.values(), other.values());
        let (a, b) = (a.as_slice(), b.as_slice());
        let n = a.len().max(b.len());
        self.variant == other.variant
            && self.exposed_at == other.exposed_at
            && self.excluded == other.excluded
            && (0..n).all(|i| {
                a.get(i).copied().unwrap_or_default() == b.get(i).copied().unwrap_or_default()
            })
    }
}

/// The stored form of a [`UnitState`] (its serialization).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnitStateParts {
    variant: u32,
    exposed_at: Timestamp,
    excluded: bool,
    values: Vec<UnitValue>,
}

impl From<UnitStateParts> for UnitState {
    fn from(p: UnitStateParts) -> Self {
        UnitState::new(p.variant, p.exposed_at, p.excluded, p.values)
    }
}

impl From<UnitState> for UnitStateParts {
    fn from(s: UnitState) -> Self {
        UnitStateParts {
            variant: s.variant,
            exposed_at: s.exposed_at,
            excluded: s.excluded,
            values: s.values(),
        }
    }
}

/// Sufficient statistics of one metric in one variant (over enrolled units; units without a
/// value count as zero).
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricTotals {
    /// Σ x (capped per-unit values).
    pub sum: f64,
    /// Σ x².
    pub sum_squares: f64,
    /// Σ y (ratio denominators).
    pub denominator_sum: f64,
    /// Σ y².
    pub denominator_sum_squares: f64,
    /// Σ x·y.
    pub sum_products: f64,
    /// Σ c (covariates).
    pub covariate_sum: f64,
    /// Σ c².
    pub covariate_sum_squares: f64,
    /// Σ c·x.
    pub covariate_sum_products: f64,
    /// Units with a covariate.
    pub covariate_count: u64,
}

impl MetricTotals {
    /// Adds `d` field by field.
    pub fn add(&mut self, d: &MetricTotals) {
        self.sum += d.sum;
        self.sum_squares += d.sum_squares;
        self.denominator_sum += d.denominator_sum;
        self.denominator_sum_squares += d.denominator_sum_squares;
        self.sum_products += d.sum_products;
        self.covariate_sum += d.covariate_sum;
        self.covariate_sum_squares += d.covariate_sum_squares;
        self.covariate_sum_products += d.covariate_sum_products;
        self.covariate_count = self.covariate_count.saturating_add(d.covariate_count);
    }

    /// The contribution of one unit's value (capped at `cap`).
    fn of(v: &UnitValue, cap: Option<f64>) -> MetricTotals {
        let x = cap.map_or(v.numerator, |c| v.numerator.min(c));
        let y = v.denominator;
        let c = v.covariate.unwrap_or(0.0);
        MetricTotals {
            sum: x,
            sum_squares: x * x,
            denominator_sum: y,
            denominator_sum_squares: y * y,
            sum_products: x * y,
            covariate_sum: c,
            covariate_sum_squares: c * c,
            covariate_sum_products: c * x,
            covariate_count: u64::from(v.covariate.is_some()),
        }
    }

    /// `after − before`: the change to totals when a unit's value changes.
    fn change(before: &UnitValue, after: &UnitValue, cap: Option<f64>) -> MetricTotals {
        let (b, a) = (MetricTotals::of(before, cap), MetricTotals::of(after, cap));
        MetricTotals {
            sum: a.sum - b.sum,
            sum_squares: a.sum_squares - b.sum_squares,
            denominator_sum: a.denominator_sum - b.denominator_sum,
            denominator_sum_squares: a.denominator_sum_squares - b.denominator_sum_squares,
            sum_products: a.sum_products - b.sum_products,
            covariate_sum: a.covariate_sum - b.covariate_sum,
            covariate_sum_squares: a.covariate_sum_squares - b.covariate_sum_squares,
            covariate_sum_products: a.covariate_sum_products - b.covariate_sum_products,
            covariate_count: a.covariate_count.saturating_sub(b.covariate_count),
        }
    }
}

/// One variant's totals.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantTotals {
    /// Enrolled units (exposures, de-duplicated, forced units left out).
    pub participants: u64,
    /// Per metric slot.
    pub metrics: Vec<MetricTotals>,
}

/// An experiment's totals, per variant index.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentTotals {
    /// Per variant index.
    pub variants: Vec<VariantTotals>,
}

/// The change one event makes to its experiment's totals.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct TotalsDelta {
    /// The variant index.
    pub variant: u32,
    /// New participants (0 or 1).
    pub participants: u64,
    /// The metric slot and the change to its totals.
    pub metric: Option<(u32, MetricTotals)>,
}

impl ExperimentTotals {
    /// Applies a delta.
    pub fn apply(&mut self, delta: &TotalsDelta) {
        let v = delta.variant as usize;
        if self.variants.len() <= v {
            self.variants.resize_with(v + 1, VariantTotals::default);
        }
        if let Some(t) = self.variants.get_mut(v) {
            t.participants = t.participants.saturating_add(delta.participants);
            if let Some((slot, d)) = &delta.metric {
                let s = *slot as usize;
                if t.metrics.len() <= s {
                    t.metrics.resize_with(s + 1, MetricTotals::default);
                }
                if let Some(m) = t.metrics.get_mut(s) {
                    m.add(d);
                }
            }
        }
    }

    /// Adds another set of totals (shards of one experiment).
    pub fn merge(&mut self, other: &ExperimentTotals) {
        for (i, v) in other.variants.iter().enumerate() {
            if self.variants.len() <= i {
                self.variants.resize_with(i + 1, VariantTotals::default);
            }
            if let Some(t) = self.variants.get_mut(i) {
                t.participants = t.participants.saturating_add(v.participants);
                if t.metrics.len() < v.metrics.len() {
                    t.metrics
                        .resize_with(v.metrics.len(), MetricTotals::default);
                }
                for (m, d) in t.metrics.iter_mut().zip(&v.metrics) {
                    m.add(d);
                }
            }
        }
    }

    /// The totals of variant `index` (zeros when nothing was recorded for it).
    pub fn variant(&self, index: usize) -> VariantTotals {
        self.variants.get(index).cloned().unwrap_or_default()
    }
}

impl UnitState {
    /// Applies `kind` to the unit's state `state` (`None`: not enrolled), returning the outcome
    /// and the change to the experiment's totals. Nothing changes unless the outcome is
    /// [`EventOutcome::is_stored`]. Event-id de-duplication is the storage's job, before this.
    pub fn apply(
        state: &mut Option<UnitState>,
        at: Timestamp,
        kind: &UnitEventKind,
    ) -> (EventOutcome, Option<TotalsDelta>) {
        match (state.as_mut(), kind) {
            (Some(_), UnitEventKind::Exposure { .. }) => (EventOutcome::AlreadyEnrolled, None),
            (None, UnitEventKind::Exposure { variant, excluded }) => {
                if *variant >= MAX_VARIANTS {
                    return (EventOutcome::Rejected(Rejection::InvalidValue), None);
                }
                *state = Some(UnitState::new(*variant, at, *excluded, Vec::new()));
                if *excluded {
                    (EventOutcome::Excluded, None)
                } else {
                    let delta = TotalsDelta {
                        variant: *variant,
                        participants: 1,
                        metric: None,
                    };
                    (EventOutcome::Enrolled, Some(delta))
                }
            }
            (None, _) => (EventOutcome::Rejected(Rejection::NotEnrolled), None),
            (
                Some(s),
                UnitEventKind::Metric {
                    slot,
                    value,
                    denominator,
                },
            ) => {
                if !value.is_finite() || !denominator.is_finite() || slot.index >= MAX_METRIC_SLOTS
                {
                    return (EventOutcome::Rejected(Rejection::InvalidValue), None);
                }
                if at < s.exposed_at {
                    return (EventOutcome::Rejected(Rejection::BeforeExposure), None);
                }
                if let Some(w) = slot.window_millis
                    && at > s.exposed_at.add_millis(w)
                {
                    return (EventOutcome::Rejected(Rejection::OutsideWindow), None);
                }
                if slot.aggregation == Aggregation::Once && s.has_converted(slot.index) {
                    return (EventOutcome::Duplicate, None);
                }
                let before = s.value(slot.index);
                let mut after = before;
                match slot.aggregation {
                    Aggregation::Once => after.numerator = 1.0,
                    Aggregation::Sum => {
                        after.numerator += value;
                        after.denominator += denominator;
                    }
                }
                s.update(slot, before, after)
            }
            (Some(s), UnitEventKind::Covariate { slot, value }) => {
                if !value.is_finite() || slot.index >= MAX_METRIC_SLOTS {
                    return (EventOutcome::Rejected(Rejection::InvalidValue), None);
                }
                let before = s.value(slot.index);
                let after = UnitValue {
                    covariate: Some(*value),
                    ..before
                };
                s.update(slot, before, after)
            }
        }
    }

    /// A state from its stored parts.
    pub fn new(
        variant: u32,
        exposed_at: Timestamp,
        excluded: bool,
        values: Vec<UnitValue>,
    ) -> UnitState {
        let converted = values
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, v)| v.numerator >= 1.0)
            .fold(0u64, |acc, (i, _)| acc | (1 << i));
        UnitState {
            variant,
            exposed_at,
            excluded,
            values: (!values.is_empty()).then(|| Box::new(Values(values))),
            converted,
        }
    }

    /// Its metric values by slot (slots past the end are zero), plain conversions included.
    /// Builds a vector: for storing and reporting, not for the event path (use
    /// [`UnitState::value`]).
    pub fn values(&self) -> Vec<UnitValue> {
        let stored = self.stored();
        let bits = 64 - u64::leading_zeros(self.converted) as usize;
        (0..stored.len().max(bits))
            .map(|i| self.value(i as u32))
            .collect()
    }

    fn stored(&self) -> &[UnitValue] {
        self.values.as_ref().map_or(&[], |v| &v.0)
    }

    /// Whether the value in `slot` is at least 1 (a `Once` metric has converted).
    pub fn has_converted(&self, slot: u32) -> bool {
        if slot < 64 {
            self.converted & (1 << slot) != 0
        } else {
            self.value(slot).numerator >= 1.0
        }
    }

    /// The unit's value in `slot` (zero when absent).
    pub fn value(&self, slot: u32) -> UnitValue {
        let mut v = self
            .stored()
            .get(slot as usize)
            .copied()
            .unwrap_or_default();
        if slot < 64 && self.converted & (1 << slot) != 0 && v.numerator < 1.0 {
            v.numerator = 1.0;
        }
        v
    }

    fn update(
        &mut self,
        slot: &MetricSlot,
        before: UnitValue,
        after: UnitValue,
    ) -> (EventOutcome, Option<TotalsDelta>) {
        if !bounded(&after) {
            return (EventOutcome::Rejected(Rejection::InvalidValue), None);
        }
        let i = slot.index as usize;
        // A plain conversion in the first 64 slots is its bit alone (no allocation), unless a
        // value is already stored there.
        let plain = slot.index < 64
            && after
                == UnitValue {
                    numerator: 1.0,
                    ..UnitValue::default()
                }
            && self.stored().len() <= i;
        if !plain {
            let values = &mut self.values.get_or_insert_with(Box::default).0;
            if values.len() <= i {
                values.resize_with(i + 1, UnitValue::default);
            }
            if let Some(v) = values.get_mut(i) {
                *v = after;
            }
        }
        if slot.index < 64 {
            let bit = 1u64 << slot.index;
            if after.numerator >= 1.0 {
                self.converted |= bit;
            } else {
                self.converted &= !bit;
            }
        }
        if self.excluded {
            return (EventOutcome::Excluded, None);
        }
        let delta = TotalsDelta {
            variant: self.variant,
            participants: 0,
            metric: Some((slot.index, MetricTotals::change(&before, &after, slot.cap))),
        };
        (EventOutcome::Recorded, Some(delta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(aggregation: Aggregation, cap: Option<f64>) -> MetricSlot {
        MetricSlot {
            index: 0,
            aggregation,
            cap,
            window_millis: Some(1000),
        }
    }

    #[test]
    fn exposure_then_conversion_once() {
        let mut st = None;
        let t = Timestamp::from_unix_millis(10);
        let exp = UnitEventKind::Exposure {
            variant: 1,
            excluded: false,
        };
        assert_eq!(UnitState::apply(&mut st, t, &exp).0, EventOutcome::Enrolled);
        assert_eq!(
            UnitState::apply(&mut st, t, &exp).0,
            EventOutcome::AlreadyEnrolled
        );
        let conv = UnitEventKind::Metric {
            slot: slot(Aggregation::Once, None),
            value: 7.0,
            denominator: 0.0,
        };
        let (o, d) = UnitState::apply(&mut st, t, &conv);
        assert_eq!(o, EventOutcome::Recorded);
        let d = d.unwrap();
        assert_eq!(
            (
                d.variant,
                d.metric.unwrap().1.sum,
                d.metric.unwrap().1.sum_squares
            ),
            (1, 1.0, 1.0)
        );
        assert_eq!(
            UnitState::apply(&mut st, t, &conv).0,
            EventOutcome::Duplicate
        );
    }

    #[test]
    fn sums_square_per_unit_totals_and_cap() {
        let mut st = None;
        let t = Timestamp::from_unix_millis(0);
        UnitState::apply(
            &mut st,
            t,
            &UnitEventKind::Exposure {
                variant: 0,
                excluded: false,
            },
        );
        let mut totals = MetricTotals::default();
        for v in [3.0, 4.0, 10.0] {
            let k = UnitEventKind::Metric {
                slot: slot(Aggregation::Sum, Some(10.0)),
                value: v,
                denominator: 1.0,
            };
            let (_, d) = UnitState::apply(&mut st, t, &k);
            totals.add(&d.unwrap().metric.unwrap().1);
        }
        // per-unit total 17 capped at 10; denominator 3.
        assert_eq!(totals.sum, 10.0);
        assert_eq!(totals.sum_squares, 100.0);
        assert_eq!(totals.denominator_sum, 3.0);
        assert_eq!(totals.denominator_sum_squares, 9.0);
        assert_eq!(totals.sum_products, 30.0);
    }

    #[test]
    fn rejections() {
        let mut st = None;
        let k = UnitEventKind::Metric {
            slot: slot(Aggregation::Sum, None),
            value: 1.0,
            denominator: 0.0,
        };
        let t = Timestamp::from_unix_millis(100);
        assert_eq!(
            UnitState::apply(&mut st, t, &k).0,
            EventOutcome::Rejected(Rejection::NotEnrolled)
        );
        UnitState::apply(
            &mut st,
            t,
            &UnitEventKind::Exposure {
                variant: 0,
                excluded: false,
            },
        );
        assert_eq!(
            UnitState::apply(&mut st, Timestamp::from_unix_millis(99), &k).0,
            EventOutcome::Rejected(Rejection::BeforeExposure)
        );
        assert_eq!(
            UnitState::apply(&mut st, Timestamp::from_unix_millis(1101), &k).0,
            EventOutcome::Rejected(Rejection::OutsideWindow)
        );
        let nan = UnitEventKind::Metric {
            slot: slot(Aggregation::Sum, None),
            value: f64::NAN,
            denominator: 0.0,
        };
        assert_eq!(
            UnitState::apply(&mut st, t, &nan).0,
            EventOutcome::Rejected(Rejection::InvalidValue)
        );
    }

    #[test]
    fn excluded_units_never_reach_totals() {
        let mut st = None;
        let t = Timestamp::from_unix_millis(0);
        let (o, d) = UnitState::apply(
            &mut st,
            t,
            &UnitEventKind::Exposure {
                variant: 0,
                excluded: true,
            },
        );
        assert_eq!((o, d), (EventOutcome::Excluded, None));
        let k = UnitEventKind::Metric {
            slot: slot(Aggregation::Once, None),
            value: 1.0,
            denominator: 0.0,
        };
        assert_eq!(
            UnitState::apply(&mut st, t, &k),
            (EventOutcome::Excluded, None)
        );
    }

    #[test]
    fn covariate_replaces_and_tracks_products() {
        let mut st = None;
        let t = Timestamp::from_unix_millis(0);
        UnitState::apply(
            &mut st,
            t,
            &UnitEventKind::Exposure {
                variant: 0,
                excluded: false,
            },
        );
        let mut totals = MetricTotals::default();
        let s = slot(Aggregation::Sum, None);
        for k in [
            UnitEventKind::Metric {
                slot: s,
                value: 5.0,
                denominator: 0.0,
            },
            UnitEventKind::Covariate {
                slot: s,
                value: 2.0,
            },
            UnitEventKind::Covariate {
                slot: s,
                value: 3.0,
            },
        ] {
            totals.add(
                &UnitState::apply(&mut st, t, &k)
                    .1
                    .unwrap()
                    .metric
                    .unwrap()
                    .1,
            );
        }
        assert_eq!(
            (
                totals.covariate_sum,
                totals.covariate_sum_squares,
                totals.covariate_sum_products,
                totals.covariate_count
            ),
            (3.0, 9.0, 15.0, 1)
        );
    }

    fn enrolled() -> Option<UnitState> {
        let mut st = None;
        let exposure = UnitEventKind::Exposure {
            variant: 0,
            excluded: false,
        };
        UnitState::apply(&mut st, Timestamp::from_unix_millis(0), &exposure);
        st
    }

    fn slot_at(index: u32, aggregation: Aggregation) -> MetricSlot {
        MetricSlot {
            index,
            aggregation,
            cap: None,
            window_millis: None,
        }
    }

    fn metric(index: u32, aggregation: Aggregation, value: f64) -> UnitEventKind {
        UnitEventKind::Metric {
            slot: slot_at(index, aggregation),
            value,
            denominator: 0.0,
        }
    }

    fn one() -> UnitValue {
        UnitValue {
            numerator: 1.0,
            ..UnitValue::default()
        }
    }

    #[test]
    fn a_plain_conversion_is_a_bit_and_reads_back_as_one() {
        let t = Timestamp::from_unix_millis(1);
        let mut st = enrolled();
        UnitState::apply(&mut st, t, &metric(3, Aggregation::Once, 1.0));
        let s = st.clone().unwrap();
        assert!(s.values.is_none(), "no allocation for a plain conversion");
        assert_eq!(s.value(3), one());
        assert_eq!(s.value(2), UnitValue::default());
        assert_eq!(
            s.values(),
            vec![
                UnitValue::default(),
                UnitValue::default(),
                UnitValue::default(),
                one()
            ]
        );
        // The stored form round-trips to an equal state.
        let back = UnitState::new(s.variant, s.exposed_at, s.excluded, s.values());
        assert_eq!(back, s);
        let json: UnitState = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(json.value(3), one());
        assert!(json.has_converted(3));
    }

    #[test]
    fn bits_and_stored_values_stay_consistent_through_sums_and_covariates() {
        let t = Timestamp::from_unix_millis(1);
        let mut st = enrolled();
        // A sum that lands on exactly 1 is kept as the bit; later sums read it as 1.
        UnitState::apply(&mut st, t, &metric(0, Aggregation::Sum, 1.0));
        assert_eq!(st.as_ref().unwrap().value(0), one());
        UnitState::apply(&mut st, t, &metric(0, Aggregation::Sum, 2.0));
        assert_eq!(st.as_ref().unwrap().value(0).numerator, 3.0);
        // Falling below 1 clears the bit.
        UnitState::apply(&mut st, t, &metric(0, Aggregation::Sum, -2.5));
        let s = st.as_ref().unwrap();
        assert_eq!(s.value(0).numerator, 0.5);
        assert!(!s.has_converted(0));
        // Back to exactly 1 with a value stored there: stored, and still 1.
        UnitState::apply(&mut st, t, &metric(0, Aggregation::Sum, 0.5));
        assert_eq!(st.as_ref().unwrap().value(0), one());
        // A conversion below a stored slot (the vector is longer): a bit, read as 1, even
        // though slot 1's stored entry is a zero filler.
        UnitState::apply(&mut st, t, &metric(4, Aggregation::Sum, 5.0));
        UnitState::apply(&mut st, t, &metric(1, Aggregation::Once, 1.0));
        assert_eq!(st.as_ref().unwrap().value(1), one());
        // A covariate on a converted slot keeps the conversion.
        let cov = UnitEventKind::Covariate {
            slot: slot_at(1, Aggregation::Once),
            value: 7.0,
        };
        UnitState::apply(&mut st, t, &cov);
        let s = st.as_ref().unwrap();
        assert_eq!(
            s.value(1),
            UnitValue {
                numerator: 1.0,
                denominator: 0.0,
                covariate: Some(7.0)
            }
        );
        assert_eq!(
            UnitState::apply(&mut st, t, &metric(1, Aggregation::Once, 1.0)).0,
            EventOutcome::Duplicate
        );
        let s = st.unwrap();
        let back = UnitState::new(s.variant, s.exposed_at, s.excluded, s.values());
        assert_eq!(back, s);
        for i in 0..6 {
            assert_eq!(back.value(i), s.value(i), "slot {i}");
        }
    }
}
