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
//! let exp = lab.experiments().create(NewExperiment {
//!     name: "Checkout button colour".into(),
//!     variants: vec![NewVariant::named("control", "Blue"), NewVariant::named("green", "Green")],
//!     ..NewExperiment::default()
//! })?;
//! let id = exp.id().as_str();
//! lab.experiments().start(id)?;
//!
//! // Decide (pure, no I/O) and record the exposure the decision implies.
//! let variant = lab.expose(id, &Context::new("usr_123"))?;
//! assert!(variant.is_some());
//! lab.events().track(&TrackEvent::conversion(id, "usr_123"))?;
//!
//! lab.experiments().stop(id, StopRequest { winner: Some("green".into()), reason: Some("shipped".into()) })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Overview
//!
//! [`Lab`] composes four planes (see ARCHITECTURE.md for the rules between them):
//!
//! * **Control** — [`Lab::experiments`] ([`NewExperiment`], [`Experiment`], [`ExperimentPatch`])
//!   through the lifecycle of [`Status`]; [`Lab::flags`] ([`NewFlag`], [`Flag`]);
//!   [`Lab::targeting`]: audiences, saved groups, layers and a global holdout. Everything is
//!   validated and persisted through [`storage::Storage`], returned as [`Versioned`].
//! * **Decision** — [`Lab::assign`], [`Lab::peek`] and [`Lab::evaluate`]: pure functions of a
//!   compiled snapshot and a [`Context`]. The hashing is [`allocation`], fixed forever;
//!   targeting conditions are [`targeting`].
//! * **Events** — [`Lab::events`]: exposures, conversions, values and covariates, folded into
//!   per-variant sufficient statistics; [`Ingestor`] buffers them and writes them in batches
//!   from a background thread.
//! * **Reports** — [`Lab::reports`]: counts, results and the analysis of [`stats`].
//!
//! The source APIs' payload shapes are [`wire`]'s.
//!
//! # Crate features
//!
//! * `sqlite` — `storage::SqliteStorage`, a durable store on SQLite (bundled: nothing to
//!   install).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

pub mod allocation;
mod control;
mod decision;
mod error;
mod events;
pub mod fleet;
#[cfg(feature = "growthbook")]
pub mod growthbook;
mod hashing;
#[cfg(feature = "http")]
pub mod http;
mod lab;
mod model;
mod reports;
pub mod stats;
pub mod storage;
pub mod targeting;
mod time;
pub mod wire;

pub use crate::allocation::{BucketRange, Traffic, Weight, Weights};
pub use crate::control::codec::Versioned;
pub use crate::control::experiments::{Experiments, StopRequest};
pub use crate::control::flags::Flags;
pub use crate::control::schedule::TickReport;
pub use crate::control::targeting::Targeting;
pub use crate::control::{ListQuery, Page, SyncReport};
pub use crate::decision::context::{Context, KEY_ATTRIBUTES};
pub use crate::decision::experiment::{Assignment, CompiledExperiment, Exposure, Reason};
pub use crate::decision::flag::{ErrorCode, EvaluateAllResponse, Evaluation};
pub use crate::decision::{Decision, Peek};
pub use crate::error::{Conflict, Error, Result, ValidationError};
pub use crate::events::{
    Events, ExposureHook, IngestError, IngestOptions, IngestStats, Ingestor, TrackEvent,
};
pub use crate::lab::{Lab, LabBuilder};
pub use crate::model::bandit::{ArmBaseline, Bandit, BanditPeriod, BanditSettings};
pub use crate::model::config::{Audience, Holdout, Layer, SavedGroup};
pub use crate::model::experiment::{
    Experiment, ExperimentPatch, ExperimentType, LayerPlacement, NewExperiment,
};
pub use crate::model::flag::{Flag, FlagPatch, FlagRule, FlagType, NewFlag};
pub use crate::model::ids::{
    AudienceId, DefaultIdGenerator, ExperimentId, FlagId, FlagKey, IdGenerator, LayerId, ProjectId,
    SavedGroupId, SequentialIdGenerator, VariantKey,
};
pub use crate::model::lifecycle::{Operation, Status};
pub use crate::model::limits;
pub use crate::model::metric::{
    MetricCatalogue, MetricDefinition, MetricInput, MetricKind, MetricSpec,
};
pub use crate::model::variant::{NewVariant, Variant};
pub use crate::reports::{
    AnalysisOptions, AnalysisVariant, BanditArm, ComputedResults, ComputedVariant, Duration,
    ExperimentAnalysis, ExperimentWithCounts, RawMetric, RawResults, RawVariantResults, Reports,
};
pub use crate::targeting::{Condition, ConditionError, SavedGroups};
pub use crate::time::{Clock, ManualClock, SystemClock, Timestamp, TimestampError};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
