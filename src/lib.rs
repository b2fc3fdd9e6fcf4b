//! abkit: A/B and multivariate experiments, in process.
//!
//! Define experiments and feature flags, assign units to variants deterministically, run them
//! through a lifecycle, record exposures and conversions, and analyse the results with exact
//! statistics — all inside your service, with persistence you supply.
//!
//! ```
//! use abkit::{Context, Lab, NewExperiment, NewVariant, StopRequest, TrackEvent};
//!
//! let lab = Lab::new();
//! let exp = lab.create_experiment(NewExperiment {
//!     name: "Checkout button colour".into(),
//!     variants: vec![NewVariant::named("control", "Blue"), NewVariant::named("green", "Green")],
//!     ..NewExperiment::default()
//! })?;
//! let id = exp.id().as_str();
//! lab.start(id)?;
//!
//! // Decide (pure, no I/O) and record the exposure the decision implies.
//! let variant = lab.expose(id, &Context::new("usr_123"))?;
//! assert!(variant.is_some());
//! lab.track(&TrackEvent::conversion(id, "usr_123"))?;
//!
//! lab.stop(id, StopRequest { winner: Some("green".into()), reason: Some("shipped".into()) })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Overview
//!
//! * **Control plane** — [`Lab`], the facade: experiments ([`NewExperiment`], [`Experiment`],
//!   [`ExperimentPatch`]) through the lifecycle of [`Status`]; flags ([`NewFlag`], [`Flag`]);
//!   audiences, saved groups, layers and a global holdout. Everything is validated and
//!   persisted through [`storage::Storage`].
//! * **Decision plane** — [`Lab::assign`] and [`Lab::evaluate`]: pure functions of a compiled
//!   snapshot and a [`Context`]. The hashing is [`allocation`], fixed forever; targeting
//!   conditions are [`targeting`].
//! * **Event plane** — [`Lab::record_exposure`], [`Lab::track`], [`Lab::track_batch`]: folded
//!   into per-variant sufficient statistics.
//! * **Analysis plane** — [`stats`]: from sufficient statistics to a report.
//!
//! # Crate features
//!
//! * `sqlite` — `storage::SqliteStorage`, a durable store on SQLite (bundled: nothing to
//!   install).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

pub mod allocation;
mod assign;
mod context;
mod error;
mod flags;
mod hashing;
mod lab;
mod lifecycle;
mod model;
mod results;
pub mod stats;
pub mod storage;
pub mod targeting;
mod time;
mod tracking;

pub use crate::allocation::{BucketRange, Traffic, Weight, Weights};
pub use crate::assign::{Assignment, CompiledExperiment, Exposure, Holdout, Reason};
pub use crate::context::{Context, KEY_ATTRIBUTES};
pub use crate::error::{Error, ValidationError};
pub use crate::flags::{
    ErrorCode, EvaluateAllResponse, Evaluation, EvaluationReason, Flag, FlagPatch, FlagRule,
    FlagType, FlagValue, NewFlag,
};
pub use crate::lab::{
    Decision, ExposureHook, Lab, LabBuilder, ListQuery, Page, PageMeta, StopRequest,
};
pub use crate::lifecycle::{Operation, Status};
pub use crate::model::config::{Audience, Layer, SavedGroup};
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
pub use crate::results::{
    AnalysisOptions, AnalysisVariant, ComputedResults, ComputedVariant, Duration,
    ExperimentAnalysis, ExperimentWithCounts, RawMetric, RawResults, RawVariantResults,
};
pub use crate::targeting::{Condition, ConditionError, SavedGroups};
pub use crate::time::{Clock, ManualClock, SystemClock, Timestamp, TimestampError};
pub use crate::tracking::TrackEvent;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
