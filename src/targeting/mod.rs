//! Targeting conditions.
