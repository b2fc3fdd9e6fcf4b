//! abkit: in-process A/B and multivariate experiments.
//!
//! (Crate documentation is completed as the planes land.)

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

pub mod allocation;
pub mod stats;
pub mod targeting;
