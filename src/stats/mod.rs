//! The analysis plane (see STATS.md).
