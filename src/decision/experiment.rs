//! Experiments compiled for decisions, and `assign`.
//!
//! `assign` is a pure function of (compiled experiment, context): no I/O, no clock, no random
//! number, no heap allocation. It *returns* the exposure a decision implies; the event plane
//! records it.

use serde::Serialize;
use serde_json::Value;

use crate::allocation::{Allocator, BucketRange, LayerHasher};
use crate::decision::context::Context;
use crate::hashing::FastMap;
use crate::model::config::Holdout;
use crate::model::experiment::Experiment;
use crate::model::ids::{ExperimentId, VariantKey};
use crate::model::lifecycle::Status;
use crate::model::validation::ValidationError;
use crate::model::variant::Variant;
use crate::targeting::Condition;

/// An experiment compiled for decisions: seeds, cumulative weights, the layer hash, bound
/// conditions and an index of overrides, all computed once.
#[derive(Debug)]
pub struct CompiledExperiment {
    experiment: Experiment,
    allocator: Allocator,
    layer: Option<(LayerHasher, BucketRange)>,
    holdout: Option<(LayerHasher, BucketRange)>,
    conditions: Vec<Condition>,
    overrides: FastMap<Box<str>, u32>,
    /// The winner rolled out after the experiment ends (never for a flag experiment: its flag
    /// serves its own default then).
    rollout: Option<u32>,
}

/// Why a decision came out as it did: one naming scheme for [`CompiledExperiment::assign`]
/// (and [`crate::Lab::assign`]) and for flag evaluation ([`crate::Evaluation::reason`]).
/// Serialized in snake_case (`split`, `targeting_match`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Allocated by the hash.
    Split,
    /// A stored sticky assignment was honoured.
    Sticky,
    /// The unit is forced into a variant (an override); left out of results.
    Forced,
    /// The experiment was stopped with a winner: everyone in its audience gets it.
    Rollout,
    /// The experiment is not running (and has no winner to roll out).
    NotRunning,
    /// The context has no unit id (no targeting key, or no value for the hash attribute).
    NoUnitId,
    /// The unit does not match the audience or targeting condition.
    AudienceNotMatched,
    /// The unit is in the global holdout.
    InHoldout,
    /// The unit's layer bucket belongs to another experiment of the layer.
    ExcludedByLayer,
    /// The unit is outside the experiment's traffic fraction.
    NotInTraffic,
    /// Flag evaluation: nothing applied; the flag's default value.
    Default,
    /// Flag evaluation: the flag is disabled; its default value.
    Disabled,
    /// Flag evaluation: a targeting rule matched.
    TargetingMatch,
    /// Flag evaluation: something went wrong (see the error code); the default value.
    Error,
}

impl Reason {
    /// Its snake_case name, as serialized.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Split => "split",
            Reason::Sticky => "sticky",
            Reason::Forced => "forced",
            Reason::Rollout => "rollout",
            Reason::NotRunning => "not_running",
            Reason::NoUnitId => "no_unit_id",
            Reason::AudienceNotMatched => "audience_not_matched",
            Reason::InHoldout => "in_holdout",
            Reason::ExcludedByLayer => "excluded_by_layer",
            Reason::NotInTraffic => "not_in_traffic",
            Reason::Default => "default",
            Reason::Disabled => "disabled",
            Reason::TargetingMatch => "targeting_match",
            Reason::Error => "error",
        }
    }

    /// Whether an experiment's variant is served (by the hash, a sticky assignment, an
    /// override or a rollout).
    pub const fn is_assigned(self) -> bool {
        matches!(
            self,
            Reason::Split | Reason::Sticky | Reason::Forced | Reason::Rollout
        )
    }
}

/// The outcome of [`CompiledExperiment::assign`]: the variant (or why none) and the exposure it
/// implies. Borrows the experiment and the context; allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct Assignment<'a> {
    experiment: &'a Experiment,
    unit: Option<&'a str>,
    variant: Option<u32>,
    reason: Reason,
    new_sticky: bool,
}

/// A unit saw a variant: what the event plane records (de-duplicated per experiment and unit).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exposure<'a> {
    /// The experiment.
    pub experiment_id: &'a ExperimentId,
    /// The unit.
    pub unit_id: &'a str,
    /// The variant's id.
    pub variant: &'a VariantKey,
    /// The variant's index.
    pub variant_index: u32,
    /// A forced unit: recorded but left out of results.
    pub forced: bool,
}

impl<'a> Assignment<'a> {
    /// The variant assigned, if any.
    pub fn variant(&self) -> Option<&'a Variant> {
        self.variant
            .and_then(|i| self.experiment.variants().get(i as usize))
    }

    /// The assigned variant's index.
    pub fn variant_index(&self) -> Option<u32> {
        self.variant
    }

    /// The assigned variant's id.
    pub fn variant_key(&self) -> Option<&'a VariantKey> {
        self.variant().map(|v| &v.id)
    }

    /// Why.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The experiment decided on.
    pub fn experiment(&self) -> &'a Experiment {
        self.experiment
    }

    /// The unit id hashed (the targeting key or the hash attribute's value).
    pub fn unit(&self) -> Option<&'a str> {
        self.unit
    }

    /// The exposure to record: present when a variant was served by the running experiment
    /// (never for a rollout, which is no longer an experiment).
    pub fn exposure(&self) -> Option<Exposure<'a>> {
        if self.reason == Reason::Rollout {
            return None;
        }
        exposure_of(
            self.experiment,
            self.unit?,
            self.variant?,
            self.reason == Reason::Forced,
        )
    }

    /// For a sticky experiment, the assignment the host should store when it is new:
    /// (experiment id, variant id).
    pub fn sticky_assignment(&self) -> Option<(&'a str, &'a str)> {
        if !self.new_sticky {
            return None;
        }
        Some((self.experiment.id().as_str(), self.variant_key()?.as_str()))
    }
}

/// The exposure of `unit` to variant `index` of `experiment`: `None` for an empty unit id or an
/// index out of range. The one place an `Exposure` is built.
fn exposure_of<'a>(
    experiment: &'a Experiment,
    unit: &'a str,
    index: u32,
    forced: bool,
) -> Option<Exposure<'a>> {
    let v = experiment.variants().get(index as usize)?;
    (!unit.is_empty()).then_some(Exposure {
        experiment_id: experiment.id(),
        unit_id: unit,
        variant: &v.id,
        variant_index: index,
        forced,
    })
}

impl CompiledExperiment {
    /// Compiles an experiment. `conditions` are its audience and targeting conditions, already
    /// bound to their saved groups; `layer_salt` is its layer's salt when it has a layer.
    ///
    /// # Errors
    ///
    /// Weights that do not validate (never for an experiment built by this crate).
    pub fn new(
        experiment: Experiment,
        conditions: Vec<Condition>,
        layer_salt: Option<&str>,
        holdout: Option<&Holdout>,
    ) -> Result<CompiledExperiment, ValidationError> {
        let allocator = Allocator::new(
            experiment.salt(),
            experiment.traffic(),
            &experiment.weights()?,
        );
        let layer = match (experiment.layer(), layer_salt) {
            (Some(p), Some(salt)) => Some((LayerHasher::new(salt), p.range)),
            _ => None,
        };
        let mut overrides = FastMap::default();
        for (unit, key) in experiment.overrides() {
            if let Some(i) = experiment.variants().iter().position(|v| &v.id == key) {
                overrides.insert(Box::from(unit.as_str()), i as u32);
            }
        }
        let rollout = experiment
            .winner()
            .filter(|_| experiment.flag_id().is_none())
            .and_then(|w| experiment.variants().iter().position(|v| &v.id == w))
            .map(|i| i as u32);
        Ok(CompiledExperiment {
            allocator,
            layer,
            holdout: holdout.map(|h| (LayerHasher::new(&h.salt), h.range)),
            conditions,
            overrides,
            rollout,
            experiment,
        })
    }

    /// The experiment.
    pub fn experiment(&self) -> &Experiment {
        &self.experiment
    }

    /// Decides which variant `ctx`'s unit sees.
    ///
    /// Order: status (a concluded experiment with a winner rolls it out to its audience, unless
    /// it ran on a flag: the flag then serves its own default);
    /// unit id; overrides; audience and targeting; sticky assignment; global holdout; layer
    /// range; traffic; variant weights. See the [`crate::allocation`] docs for the hashing.
    pub fn assign<'a>(&'a self, ctx: &'a Context) -> Assignment<'a> {
        let e = &self.experiment;
        let mut out = Assignment {
            experiment: e,
            unit: None,
            variant: None,
            reason: Reason::NotRunning,
            new_sticky: false,
        };
        match e.status() {
            Status::Running => {}
            Status::Stopped | Status::Completed if self.rollout.is_some() => {
                if !self.matches(ctx) {
                    out.reason = Reason::AudienceNotMatched;
                    return out;
                }
                out.variant = self.rollout;
                out.reason = Reason::Rollout;
                return out;
            }
            _ => return out,
        }
        let unit = self.unit_id(ctx);
        if unit.is_empty() {
            out.reason = Reason::NoUnitId;
            return out;
        }
        let bytes = unit.as_bytes();
        out.unit = Some(unit);
        if let Some(&v) = (!self.overrides.is_empty())
            .then(|| self.overrides.get(unit))
            .flatten()
        {
            out.variant = Some(v);
            out.reason = Reason::Forced;
            return out;
        }
        if !self.matches(ctx) {
            out.reason = Reason::AudienceNotMatched;
            return out;
        }
        if e.is_sticky()
            && let Some(stored) = ctx.sticky_variant(e.id().as_str())
            && let Some(i) = e.variants().iter().position(|v| v.id == stored)
        {
            out.variant = Some(i as u32);
            out.reason = Reason::Sticky;
            return out;
        }
        if let Some((h, range)) = &self.holdout
            && range.contains(h.bucket(bytes))
        {
            out.reason = Reason::InHoldout;
            return out;
        }
        if let Some((h, range)) = &self.layer
            && !range.contains(h.bucket(bytes))
        {
            out.reason = Reason::ExcludedByLayer;
            return out;
        }
        match self.allocator.allocate(bytes) {
            None => out.reason = Reason::NotInTraffic,
            Some(i) => {
                out.variant = Some(i as u32);
                out.reason = Reason::Split;
                out.new_sticky = e.is_sticky();
            }
        }
        out
    }

    /// The unit id this experiment hashes for `ctx`: the targeting key, or the value of its hash
    /// attribute (a string); empty when there is none.
    pub fn unit_id<'a>(&self, ctx: &'a Context) -> &'a str {
        match self.experiment.hash_attribute() {
            None => ctx.key().unwrap_or(""),
            Some(attr) => ctx.attribute(attr).and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// The exposure of `ctx`'s unit to variant `index` (`None` without a unit id or for an
    /// index out of range).
    pub(crate) fn exposure_for<'a>(
        &'a self,
        ctx: &'a Context,
        index: u32,
        forced: bool,
    ) -> Option<Exposure<'a>> {
        exposure_of(&self.experiment, self.unit_id(ctx), index, forced)
    }

    fn matches(&self, ctx: &Context) -> bool {
        self.conditions.iter().all(|c| c.matches(ctx.attributes()))
    }
}
