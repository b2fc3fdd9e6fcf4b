//! abkit: in-process A/B and multivariate experiments.
//!
//! (Crate documentation is completed as the planes land.)

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

pub mod allocation;
pub mod stats;
pub mod targeting;

mod error;
mod hashing;
mod lifecycle;
mod model;
pub mod storage;
mod time;

pub use crate::error::{Error, ValidationError};
pub use crate::lifecycle::{Operation, Status};
pub use crate::model::experiment::{
    Experiment, ExperimentPatch, ExperimentType, LayerPlacement, NewExperiment,
};
pub use crate::model::ids::{
    AudienceId, DefaultIdGenerator, ExperimentId, FlagId, FlagKey, IdGenerator, LayerId, ProjectId,
    SavedGroupId, SequentialIdGenerator, VariantKey,
};
pub use crate::model::metric::{
    MetricCatalogue, MetricDefinition, MetricInput, MetricKind, MetricSpec,
};
pub use crate::model::variant::{NewVariant, Variant};
pub use crate::time::{Clock, ManualClock, SystemClock, Timestamp, TimestampError};
