//! The pure in-process types: ids, the lifecycle, experiments, variants, metrics, flags and
//! configuration records, with their validation and limits.
//!
//! Architecture invariant: the model imports only `allocation`, `targeting`, `time` and
//! `stats::MetricKind`; it knows nothing of storage, versions, snapshots or payload shapes.

pub(crate) mod bandit;
pub(crate) mod config;
pub(crate) mod experiment;
pub(crate) mod flag;
pub(crate) mod ids;
pub(crate) mod lifecycle;
pub mod limits;
pub(crate) mod metric;
pub(crate) mod validation;
pub(crate) mod variant;
