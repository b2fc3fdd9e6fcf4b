//! What an event does to a unit and to its variant's totals: the arithmetic every storage
//! shares, so that implementations supply atomicity, not maths.

use serde::{Deserialize, Serialize};

use super::ExactSum;
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

/// The most event ids a store remembers per (experiment, unit): an event with an id beyond it
/// is [`Rejection::TooManyEventIds`] (events without an id are still counted). It bounds the
/// memory a single unit can take; no real unit sends this many idempotent events to one
/// experiment.
pub const MAX_EVENT_IDS_PER_UNIT: u32 = 100_000;
/// The longest event id, in bytes; a longer one is [`Rejection::InvalidEventId`].
pub const MAX_EVENT_ID_LEN: usize = 200;

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
    /// A caller-supplied id: a retried event with the same id counts once. Ids are unique per
    /// (experiment, unit, [scope](UnitEvent::id_scope)): one order id may carry a conversion
    /// and a revenue value, which are different metrics.
    pub event_id: Option<&'a str>,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: UnitEventKind,
}

impl UnitEvent<'_> {
    /// The scope within which its event id must be unique for its unit: its metric's slot for a
    /// metric value (`0..256`), `256 + slot` for a covariate, 512 for an exposure.
    pub const fn id_scope(&self) -> u32 {
        match self.kind {
            UnitEventKind::Metric { slot, .. } => slot.index,
            UnitEventKind::Covariate { slot, .. } => MAX_METRIC_SLOTS + slot.index,
            UnitEventKind::Exposure { .. } => 2 * MAX_METRIC_SLOTS,
        }
    }

    /// Why its event id cannot be remembered for a unit that already has `remembered` ids, if it
    /// cannot (a store checks this after finding the id new, before applying the event).
    pub fn check_event_id(&self, remembered: u32) -> Option<Rejection> {
        match self.event_id {
            Some(id) if id.len() > MAX_EVENT_ID_LEN || id.is_empty() => {
                Some(Rejection::InvalidEventId)
            }
            Some(_) if remembered >= MAX_EVENT_IDS_PER_UNIT => Some(Rejection::TooManyEventIds),
            _ => None,
        }
    }
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
    /// An empty event id, or one longer than [`MAX_EVENT_ID_LEN`] bytes.
    InvalidEventId,
    /// The unit already has [`MAX_EVENT_IDS_PER_UNIT`] event ids in this experiment.
    TooManyEventIds,
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
            Rejection::InvalidEventId => "event id is empty or longer than 200 bytes",
            Rejection::TooManyEventIds => {
                "unit already has 100000 event ids in this experiment, the most a store keeps; send it without an id"
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
    /// An event whose id was seen before for this unit and scope: nothing changed.
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
/// is `None` until a unit has any. Values are sparse: a unit with one value in slot 255 stores
/// that one value, not 256.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(into = "UnitStateParts", from = "UnitStateParts")]
pub struct UnitState {
    /// The variant it was exposed to.
    pub variant: u32,
    /// When.
    pub exposed_at: Timestamp,
    /// A forced unit, left out of results.
    pub excluded: bool,
    /// Metric values that are more than a plain conversion, by ascending slot (missing slots
    /// are zero, or 1 when their conversion bit is set); `None` until the first such value.
    values: Option<Box<Values>>,
    /// Bit `i` (slots below 64) is set when the value's numerator is at least 1. A set bit
    /// with no stored value is a plain conversion: exactly 1. Lets the de-duplication of a
    /// repeated conversion answer without reading the values. Derived from the values on
    /// [`UnitState::new`], never stored.
    converted: u64,
}

/// A unit's values, boxed so that [`UnitState`] stays one pointer wide for them: (slot, value)
/// by ascending slot, no zero values.
#[derive(Clone, Debug, Default)]
struct Values(Vec<(u32, UnitValue)>);

/// A plain conversion's value.
const ONE: UnitValue = UnitValue {
    numerator: 1.0,
    denominator: 0.0,
    covariate: None,
};

impl PartialEq for UnitState {
    fn eq(&self, other: &Self) -> bool {
        self.variant == other.variant
            && self.exposed_at == other.exposed_at
            && self.excluded == other.excluded
            && self.values() == other.values()
    }
}

/// One stored value: its slot and the value.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlotValue {
    slot: u32,
    #[serde(flatten)]
    value: UnitValue,
}

/// The stored form of a [`UnitState`] (its serialization): values sparse, by slot.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnitStateParts {
    variant: u32,
    exposed_at: Timestamp,
    excluded: bool,
    values: Vec<SlotValue>,
}

impl From<UnitStateParts> for UnitState {
    fn from(p: UnitStateParts) -> Self {
        let values = p.values.into_iter().map(|v| (v.slot, v.value)).collect();
        UnitState::new(p.variant, p.exposed_at, p.excluded, values)
    }
}

impl From<UnitState> for UnitStateParts {
    fn from(s: UnitState) -> Self {
        UnitStateParts {
            variant: s.variant,
            exposed_at: s.exposed_at,
            excluded: s.excluded,
            values: s
                .values()
                .into_iter()
                .map(|(slot, value)| SlotValue { slot, value })
                .collect(),
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

    /// The eight sums, in the order of the fields.
    fn sums(&self) -> [f64; 8] {
        [
            self.sum,
            self.sum_squares,
            self.denominator_sum,
            self.denominator_sum_squares,
            self.sum_products,
            self.covariate_sum,
            self.covariate_sum_squares,
            self.covariate_sum_products,
        ]
    }
}

/// The change one event makes to one metric's totals: the unit's contribution before it is
/// removed and its contribution after is added. Kept as the two contributions, not their
/// difference: `after − before` would round, and the rounding would stay in the totals.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct MetricChange {
    /// The unit's contribution before the event.
    pub removed: MetricTotals,
    /// Its contribution after.
    pub added: MetricTotals,
}

/// The exact running form of [`MetricTotals`]: each sum an [`ExactSum`], so the totals equal a
/// fresh sum of the units' current contributions whatever the order of events (a cancelled
/// large value leaves no trace). Stores keep this and round when read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExactMetricTotals {
    /// The sums, in the order of [`MetricTotals`]' fields.
    sums: [ExactSum; 8],
    /// Units with a covariate.
    covariate_count: u64,
}

impl ExactMetricTotals {
    /// Removes one contribution and adds another, exactly.
    pub fn apply(&mut self, change: &MetricChange) {
        let (removed, added) = (change.removed.sums(), change.added.sums());
        for ((s, r), a) in self.sums.iter_mut().zip(removed).zip(added) {
            if r != a {
                s.add(a);
                s.add(-r);
            }
        }
        self.covariate_count = self
            .covariate_count
            .saturating_add(change.added.covariate_count)
            .saturating_sub(change.removed.covariate_count);
    }

    /// Adds another set of totals exactly (shards of one experiment, a batch's change).
    pub fn merge(&mut self, other: &ExactMetricTotals) {
        for (s, o) in self.sums.iter_mut().zip(&other.sums) {
            s.add_sum(o);
        }
        self.covariate_count = self.covariate_count.saturating_add(other.covariate_count);
    }

    /// The totals, each sum rounded once.
    pub fn rounded(&self) -> MetricTotals {
        let [a, b, c, d, e, f, g, h] = &self.sums;
        MetricTotals {
            sum: a.value(),
            sum_squares: b.value(),
            denominator_sum: c.value(),
            denominator_sum_squares: d.value(),
            sum_products: e.value(),
            covariate_sum: f.value(),
            covariate_sum_squares: g.value(),
            covariate_sum_products: h.value(),
            covariate_count: self.covariate_count,
        }
    }

    /// The sums (for storing), in the order of [`MetricTotals`]' fields.
    pub fn sums(&self) -> &[ExactSum; 8] {
        &self.sums
    }

    /// Units with a covariate.
    pub fn covariate_count(&self) -> u64 {
        self.covariate_count
    }

    /// Totals from stored parts.
    pub fn from_parts(sums: [ExactSum; 8], covariate_count: u64) -> ExactMetricTotals {
        ExactMetricTotals {
            sums,
            covariate_count,
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
    pub metric: Option<(u32, MetricChange)>,
}

impl ExperimentTotals {
    /// The totals of variant `index` (zeros when nothing was recorded for it).
    pub fn variant(&self, index: usize) -> VariantTotals {
        self.variants.get(index).cloned().unwrap_or_default()
    }
}

/// One variant's exact running totals.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExactVariantTotals {
    /// Enrolled units.
    pub participants: u64,
    /// Per metric slot.
    pub metrics: Vec<ExactMetricTotals>,
}

/// An experiment's exact running totals, per variant index: what a store keeps and adds
/// events' [`TotalsDelta`]s to. [`ExactTotals::rounded`] is what it returns from
/// [`Storage::totals`](super::Storage::totals).
///
/// # Examples
///
/// ```
/// use abkit::storage::{ExactTotals, MetricChange, MetricTotals, TotalsDelta};
///
/// let value = |x: f64| MetricTotals { sum: x, sum_squares: x * x, ..MetricTotals::default() };
/// let change = |before: f64, after: f64| TotalsDelta {
///     variant: 0,
///     participants: 0,
///     metric: Some((0, MetricChange { removed: value(before), added: value(after) })),
/// };
/// let mut totals = ExactTotals::default();
/// totals.apply(&change(0.0, 1e20)); // a whale
/// totals.apply(&change(0.0, 1.5)); // another unit
/// totals.apply(&change(1e20, 0.0)); // the whale's value cancelled
/// let m = totals.rounded().variant(0).metrics[0];
/// assert_eq!((m.sum, m.sum_squares), (1.5, 2.25));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExactTotals {
    /// Per variant index.
    pub variants: Vec<ExactVariantTotals>,
}

impl ExactTotals {
    /// Applies an event's change.
    pub fn apply(&mut self, delta: &TotalsDelta) {
        let v = delta.variant as usize;
        if self.variants.len() <= v {
            self.variants
                .resize_with(v + 1, ExactVariantTotals::default);
        }
        if let Some(t) = self.variants.get_mut(v) {
            t.participants = t.participants.saturating_add(delta.participants);
            if let Some((slot, change)) = &delta.metric {
                let s = *slot as usize;
                if t.metrics.len() <= s {
                    t.metrics.resize_with(s + 1, ExactMetricTotals::default);
                }
                if let Some(m) = t.metrics.get_mut(s) {
                    m.apply(change);
                }
            }
        }
    }

    /// Adds another set of totals exactly (shards of one experiment, a batch's change).
    pub fn merge(&mut self, other: &ExactTotals) {
        for (i, v) in other.variants.iter().enumerate() {
            if self.variants.len() <= i {
                self.variants
                    .resize_with(i + 1, ExactVariantTotals::default);
            }
            if let Some(t) = self.variants.get_mut(i) {
                t.participants = t.participants.saturating_add(v.participants);
                if t.metrics.len() < v.metrics.len() {
                    t.metrics
                        .resize_with(v.metrics.len(), ExactMetricTotals::default);
                }
                for (m, d) in t.metrics.iter_mut().zip(&v.metrics) {
                    m.merge(d);
                }
            }
        }
    }

    /// The totals, each sum rounded once.
    pub fn rounded(&self) -> ExperimentTotals {
        ExperimentTotals {
            variants: self
                .variants
                .iter()
                .map(|v| VariantTotals {
                    participants: v.participants,
                    metrics: v.metrics.iter().map(ExactMetricTotals::rounded).collect(),
                })
                .collect(),
        }
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

    /// A state from its stored parts: `values` are (slot, value) pairs in any order (zero
    /// values are dropped; of two for one slot, the later is kept).
    pub fn new(
        variant: u32,
        exposed_at: Timestamp,
        excluded: bool,
        mut values: Vec<(u32, UnitValue)>,
    ) -> UnitState {
        // Stable: of equal slots the later stays last, and is the one kept.
        values.sort_by_key(|&(slot, _)| slot);
        let mut kept: Vec<(u32, UnitValue)> = Vec::with_capacity(values.len());
        for (slot, v) in values {
            match kept.last_mut() {
                Some(last) if last.0 == slot => last.1 = v,
                _ => kept.push((slot, v)),
            }
        }
        let mut converted = 0u64;
        kept.retain(|&(slot, v)| {
            if slot < 64 && v.numerator >= 1.0 {
                converted |= 1 << slot;
            }
            // A plain conversion is its bit alone.
            v != UnitValue::default() && !(slot < 64 && v == ONE)
        });
        UnitState {
            variant,
            exposed_at,
            excluded,
            values: (!kept.is_empty()).then(|| Box::new(Values(kept))),
            converted,
        }
    }

    /// Its non-zero metric values, (slot, value) by ascending slot, plain conversions included.
    /// Builds a vector: for storing and reporting, not for the event path (use
    /// [`UnitState::value`]).
    pub fn values(&self) -> Vec<(u32, UnitValue)> {
        let stored = self.stored();
        let mut out = stored.to_vec();
        let mut bits = self.converted;
        while bits != 0 {
            let slot = bits.trailing_zeros();
            bits &= bits - 1;
            if stored.binary_search_by_key(&slot, |&(s, _)| s).is_err() {
                out.push((slot, ONE));
            }
        }
        out.sort_by_key(|&(slot, _)| slot);
        out
    }

    fn stored(&self) -> &[(u32, UnitValue)] {
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
        let stored = self.stored();
        match stored.binary_search_by_key(&slot, |&(s, _)| s) {
            Ok(i) => stored.get(i).map_or_else(UnitValue::default, |&(_, v)| v),
            Err(_) if slot < 64 && self.converted & (1 << slot) != 0 => ONE,
            Err(_) => UnitValue::default(),
        }
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
        // A plain conversion in the first 64 slots is its bit alone (no allocation); a zero
        // value is nothing.
        let bare = after == UnitValue::default() || (slot.index < 64 && after == ONE);
        let found = self.stored().binary_search_by_key(&slot.index, |&(s, _)| s);
        match (found, bare) {
            (Ok(i), true) => {
                if let Some(v) = self.values.as_mut() {
                    v.0.remove(i);
                    if v.0.is_empty() {
                        self.values = None;
                    }
                }
            }
            (Ok(i), false) => {
                if let Some(v) = self.values.as_mut().and_then(|v| v.0.get_mut(i)) {
                    v.1 = after;
                }
            }
            (Err(_), true) => {}
            (Err(i), false) => {
                self.values
                    .get_or_insert_with(Box::default)
                    .0
                    .insert(i, (slot.index, after));
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
            metric: Some((
                slot.index,
                MetricChange {
                    removed: MetricTotals::of(&before, slot.cap),
                    added: MetricTotals::of(&after, slot.cap),
                },
            )),
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
                d.metric.unwrap().1.added.sum - d.metric.unwrap().1.removed.sum,
                d.metric.unwrap().1.added.sum_squares
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
        let mut totals = ExactMetricTotals::default();
        for v in [3.0, 4.0, 10.0] {
            let k = UnitEventKind::Metric {
                slot: slot(Aggregation::Sum, Some(10.0)),
                value: v,
                denominator: 1.0,
            };
            let (_, d) = UnitState::apply(&mut st, t, &k);
            totals.apply(&d.unwrap().metric.unwrap().1);
        }
        // per-unit total 17 capped at 10; denominator 3.
        let totals = totals.rounded();
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
        let mut totals = ExactMetricTotals::default();
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
            totals.apply(
                &UnitState::apply(&mut st, t, &k)
                    .1
                    .unwrap()
                    .metric
                    .unwrap()
                    .1,
            );
        }
        let totals = totals.rounded();
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
        assert_eq!(s.values(), vec![(3, one())]);
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
        // A conversion below a stored slot: a bit, read as 1.
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

    #[test]
    fn a_late_slot_costs_one_value_not_the_slots_before_it() {
        let t = Timestamp::from_unix_millis(1);
        let mut st = enrolled();
        UnitState::apply(&mut st, t, &metric(255, Aggregation::Sum, 2.5));
        UnitState::apply(&mut st, t, &metric(130, Aggregation::Sum, 1.0));
        let s = st.clone().unwrap();
        assert_eq!(s.stored().len(), 2, "two values stored, not 256");
        assert_eq!(s.value(255).numerator, 2.5);
        assert_eq!(s.value(130).numerator, 1.0);
        assert_eq!(s.value(200), UnitValue::default());
        assert!(s.has_converted(130) && !s.has_converted(131));
        assert_eq!(
            s.values().iter().map(|v| v.0).collect::<Vec<_>>(),
            [130, 255]
        );
        // A value summed back to zero is removed.
        UnitState::apply(&mut st, t, &metric(130, Aggregation::Sum, -1.0));
        assert_eq!(st.as_ref().unwrap().stored().len(), 1);
        // The serialized form is sparse too, and round-trips.
        let json = serde_json::to_value(st.as_ref().unwrap()).unwrap();
        assert_eq!(json["values"].as_array().map(Vec::len), Some(1));
        assert_eq!(json["values"][0]["slot"], 255);
        let back: UnitState = serde_json::from_value(json).unwrap();
        assert_eq!(&back, st.as_ref().unwrap());
        // Stored parts in any order, with a duplicate slot: sorted, the later kept.
        let v = |x: f64| UnitValue {
            numerator: x,
            ..UnitValue::default()
        };
        let s = UnitState::new(0, t, false, vec![(9, v(2.0)), (3, v(0.5)), (9, v(4.0))]);
        assert_eq!(s.values(), vec![(3, v(0.5)), (9, v(4.0))]);
    }

    mod exact_totals {
        use super::*;
        use proptest::prelude::*;

        /// Applies events to units and to exact totals, and checks the totals against a fresh
        /// fold of the units' current states.
        fn check(ops: &[(u8, u8, f64, bool)]) -> Result<(), TestCaseError> {
            let t = Timestamp::from_unix_millis(1);
            let cap = Some(1e30);
            let mut units: Vec<Option<UnitState>> = vec![None; 8];
            let mut totals = ExactTotals::default();
            for &(unit, kind, value, covariate) in ops {
                let Some(st) = units.get_mut(usize::from(unit % 8)) else {
                    continue;
                };
                if st.is_none() {
                    let exposure = UnitEventKind::Exposure {
                        variant: u32::from(unit % 2),
                        excluded: false,
                    };
                    if let (_, Some(d)) = UnitState::apply(st, t, &exposure) {
                        totals.apply(&d);
                    }
                }
                let slot = MetricSlot {
                    index: u32::from(kind % 3),
                    aggregation: Aggregation::Sum,
                    cap,
                    window_millis: None,
                };
                let event = if covariate {
                    UnitEventKind::Covariate { slot, value }
                } else {
                    UnitEventKind::Metric {
                        slot,
                        value,
                        denominator: value / 3.0,
                    }
                };
                if let (_, Some(d)) = UnitState::apply(st, t, &event) {
                    totals.apply(&d);
                }
            }
            // A fresh fold, exact too, of the units' current contributions.
            let mut fresh = ExactTotals::default();
            let mut largest = 0f64;
            for st in units.iter().flatten() {
                fresh.apply(&TotalsDelta {
                    variant: st.variant,
                    participants: 1,
                    metric: None,
                });
                for (slot, v) in st.values() {
                    let added = MetricTotals::of(&v, cap);
                    largest = added.sums().iter().fold(largest, |m, x| m.max(x.abs()));
                    fresh.apply(&TotalsDelta {
                        variant: st.variant,
                        participants: 0,
                        metric: Some((
                            slot,
                            MetricChange {
                                removed: MetricTotals::default(),
                                added,
                            },
                        )),
                    });
                }
            }
            let (got, want) = (totals.rounded(), fresh.rounded());
            for (i, w) in want.variants.iter().enumerate() {
                let g = got.variant(i);
                prop_assert_eq!(g.participants, w.participants);
                for (j, wm) in w.metrics.iter().enumerate() {
                    let gm = g.metrics.get(j).copied().unwrap_or_default();
                    for (a, b) in gm.sums().iter().zip(wm.sums()) {
                        prop_assert!(
                            (a - b).abs() <= 1e-12 * largest,
                            "{} vs {} (largest {})",
                            a,
                            b,
                            largest
                        );
                    }
                    prop_assert_eq!(gm.covariate_count, wm.covariate_count);
                }
            }
            Ok(())
        }

        #[test]
        fn a_cancelled_whale_leaves_the_small_values() {
            // value("whale", 1e20), value("u1", 1.5), value("whale", -1e20): 1.5 and 2.25.
            let t = Timestamp::from_unix_millis(1);
            let slot = slot_at(0, Aggregation::Sum);
            let mut totals = ExactTotals::default();
            let mut units = [enrolled(), enrolled()];
            for (u, x) in [(0, 1e20), (1, 1.5), (0, -1e20)] {
                let event = UnitEventKind::Metric {
                    slot,
                    value: x,
                    denominator: 0.0,
                };
                if let (_, Some(d)) = UnitState::apply(&mut units[u], t, &event) {
                    totals.apply(&d);
                }
            }
            let m = totals.rounded().variant(0).metrics[0];
            assert_eq!((m.sum, m.sum_squares), (1.5, 2.25));
            // A unit raised far and brought back: its earlier small square does not linger.
            let mut totals = ExactTotals::default();
            let mut st = enrolled();
            for x in [3.0, 1e20, -1e20] {
                let event = UnitEventKind::Metric {
                    slot,
                    value: x,
                    denominator: 0.0,
                };
                if let (_, Some(d)) = UnitState::apply(&mut st, t, &event) {
                    totals.apply(&d);
                }
            }
            let m = totals.rounded().variant(0).metrics[0];
            assert_eq!(
                (m.sum, m.sum_squares),
                (
                    st.as_ref().unwrap().value(0).numerator,
                    st.as_ref().unwrap().value(0).numerator.powi(2)
                )
            );
        }

        fn magnitude() -> impl Strategy<Value = f64> {
            prop_oneof![
                (-1e3f64..1e3),
                (-1e3f64..1e3).prop_map(|x| x * 1e17),
                (-1e3f64..1e3).prop_map(|x| x * 1e-9),
                Just(0.0),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 400, rng_seed: proptest::test_runner::RngSeed::Fixed(2), ..ProptestConfig::default() })]

            #[test]
            fn prop_totals_equal_a_fresh_fold_of_the_units(ops in proptest::collection::vec((any::<u8>(), any::<u8>(), magnitude(), proptest::bool::weighted(0.15)), 1..120)) {
                check(&ops)?;
            }
        }
    }
}
