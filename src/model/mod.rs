//! The pure in-process types: ids, experiments, variants, metrics, flags.

pub(crate) mod config;
pub(crate) mod experiment;
pub(crate) mod ids;
pub(crate) mod metric;
pub(crate) mod variant;
