//! The flag service: `POST /evaluate` returns `{"flags": {key: {"value": …, "rule_id": …}}}`.

use serde::Serialize;
use serde_json::Value;

use crate::decision::flag::EvaluateAllResponse;

/// The flag API's evaluate response, borrowing every value from the evaluation: keys sorted.
#[derive(Debug)]
pub struct EvaluateResponse<'a>(pub &'a EvaluateAllResponse<'a>);

/// One flag in the flag API's evaluate response: `{"value": …, "rule_id": …}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FlagValue<'a> {
    /// The value.
    pub value: &'a Value,
    /// The matching rule's id, or null.
    pub rule_id: Option<&'a str>,
}

impl Serialize for EvaluateResponse<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Flags<'a>(&'a EvaluateAllResponse<'a>);
        impl Serialize for Flags<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (key, value, rule_id) in self.0.iter() {
                    m.serialize_entry(key, &FlagValue { value, rule_id })?;
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("flags", &Flags(self.0))?;
        m.end()
    }
}
