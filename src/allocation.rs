//! Deterministic allocation (see ALLOCATION.md).
