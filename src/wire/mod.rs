//! The source APIs' payload shapes, and nothing else: the flow experiments API's `{data, meta}`
//! pages and `_count`, the flag service's `{"flags": {key: {value, rule_id}}}`. Domain types
//! serialize to one canonical camelCase form; a service that serves a source API wraps them in
//! these.
//!
//! Architecture invariant: `wire` depends on the planes and nothing depends on `wire` (except
//! the crate root's re-exports); no other module knows a source API's JSON.

pub mod flag;
pub mod flow;
