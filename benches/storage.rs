//! Benchmarks (placeholder until the plane lands).
fn main() {}
