//! Allocation-free decision path (placeholder).
fn main() {}
