//! SQLite storage (placeholder until the sqlite branch lands).

/// A durable store on SQLite.
#[derive(Debug)]
pub struct SqliteStorage;
