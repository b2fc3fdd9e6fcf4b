//! Quickstart (placeholder).
fn main() {}
