//! SQLite example (placeholder).
fn main() {}
