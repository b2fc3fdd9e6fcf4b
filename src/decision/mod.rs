//! The decision plane: a compiled [`Snapshot`](snapshot::Snapshot) of the configuration and the
//! pure functions that read it — `assign` for experiments, `evaluate` for flags.
//!
//! Architecture invariant: the decision plane imports only `model`, `allocation` and
//! `targeting` (and the crate's hashing helpers); a decision does no I/O, reads no clock, draws
//! no random number and allocates nothing for plain values.

pub(crate) mod context;
pub(crate) mod experiment;
pub(crate) mod flag;
pub(crate) mod index;
pub(crate) mod snapshot;

use crate::decision::context::Context;
use crate::decision::experiment::{Exposure, Reason};
use crate::decision::snapshot::Pinned;
use crate::model::experiment::Experiment;
use crate::model::ids::VariantKey;
use crate::model::variant::Variant;

/// The outcome of [`crate::Lab::assign`]: the variant (or why none), for the context it was made
/// for. Holds the snapshot it read (pinned for this thread: no shared reference count is
/// touched, so it is not `Send`) and the context, so [`Decision::exposure`] takes no second
/// context and cannot record someone else.
///
/// Use it where it was made; send its answer, not the decision:
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// let lab = abkit::Lab::new();
/// let ctx = abkit::Context::new("u1");
/// send(lab.assign("exp_1", &ctx)); // a Decision is not Send
/// ```
pub struct Decision<'c> {
    inner: Decided<'c>,
}

/// The outcome of [`crate::Lab::peek`]: the variant a unit would see, with no exposure implied
/// (for previews, debugging and QA tools that must not enrol anyone).
pub struct Peek<'c> {
    inner: Decided<'c>,
}

struct Decided<'c> {
    snapshot: Pinned,
    slot: u32,
    variant: Option<u32>,
    reason: Reason,
    sticky: bool,
    ctx: &'c Context,
}

impl<'c> Decided<'c> {
    #[inline]
    fn new(snapshot: Pinned, id: &str, ctx: &'c Context) -> Option<Decided<'c>> {
        let (slot, variant, reason, sticky) = {
            let (slot, c) = snapshot.experiment_entry(id)?;
            let a = c.assign(ctx);
            (
                slot,
                a.variant_index(),
                a.reason(),
                a.sticky_assignment().is_some(),
            )
        };
        Some(Decided {
            snapshot,
            slot,
            variant,
            reason,
            sticky,
            ctx,
        })
    }

    fn experiment(&self) -> Option<&Experiment> {
        self.snapshot
            .experiment_at(self.slot)
            .map(|c| c.experiment())
    }

    fn variant(&self) -> Option<&Variant> {
        self.experiment()?.variants().get(self.variant? as usize)
    }
}

impl std::fmt::Debug for Decided<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decision")
            .field("experiment", &self.experiment().map(|e| e.id()))
            .field("variant", &self.variant().map(|v| &v.id))
            .field("reason", &self.reason)
            .field("unit", &self.ctx.key())
            .finish()
    }
}

macro_rules! decided_accessors {
    () => {
        /// The assigned variant, if any.
        pub fn variant(&self) -> Option<&Variant> {
            self.inner.variant()
        }

        /// The assigned variant's id.
        pub fn variant_key(&self) -> Option<&VariantKey> {
            self.variant().map(|v| &v.id)
        }

        /// The assigned variant's index.
        #[inline]
        pub fn variant_index(&self) -> Option<u32> {
            self.inner.variant
        }

        /// Why.
        #[inline]
        pub fn reason(&self) -> Reason {
            self.inner.reason
        }

        /// The experiment decided on, as compiled into the snapshot the decision read.
        pub fn experiment(&self) -> Option<&Experiment> {
            self.inner.experiment()
        }

        /// The context it was made for.
        pub fn context(&self) -> &'c Context {
            self.inner.ctx
        }
    };
}

impl<'c> Decision<'c> {
    /// Decides on experiment `id` of `snapshot` (`None`: no such experiment).
    #[inline]
    pub(crate) fn new(snapshot: Pinned, id: &str, ctx: &'c Context) -> Option<Self> {
        Decided::new(snapshot, id, ctx).map(|inner| Decision { inner })
    }

    decided_accessors!();

    /// The exposure to record, for the context the decision was made for. `None` for a
    /// rollout (no longer an experiment), a unit without an id, or no variant.
    pub fn exposure(&self) -> Option<Exposure<'_>> {
        if self.inner.reason == Reason::Rollout {
            return None;
        }
        let c = self.inner.snapshot.experiment_at(self.inner.slot)?;
        c.exposure_for(
            self.inner.ctx,
            self.inner.variant?,
            self.inner.reason == Reason::Forced,
        )
    }

    /// For a sticky experiment, the new assignment to store: (experiment id, variant id).
    pub fn sticky_assignment(&self) -> Option<(&str, &str)> {
        if !self.inner.sticky {
            return None;
        }
        Some((
            self.experiment()?.id().as_str(),
            self.variant_key()?.as_str(),
        ))
    }
}

impl<'c> Peek<'c> {
    /// Decides on experiment `id` of `snapshot`, implying nothing.
    #[inline]
    pub(crate) fn new(snapshot: Pinned, id: &str, ctx: &'c Context) -> Option<Self> {
        Decided::new(snapshot, id, ctx).map(|inner| Peek { inner })
    }

    decided_accessors!();
}

impl std::fmt::Debug for Decision<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl std::fmt::Debug for Peek<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}
