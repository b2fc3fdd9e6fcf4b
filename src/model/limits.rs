//! Size limits of the domain, in one place: the model validates against them, and storage
//! sizes its layouts from them.

/// The most metrics an experiment may have (each one a slot of per-unit state).
pub const MAX_METRIC_SLOTS: u32 = 256;
/// The most variants an experiment may have.
pub const MAX_VARIANTS: usize = 1000;
/// The longest id, in bytes.
pub const MAX_ID_LEN: usize = 200;
/// The longest name, in characters.
pub const MAX_NAME_LEN: usize = 200;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 10_000;
