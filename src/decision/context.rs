//! The evaluation context: who is asking, with what attributes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Who a decision is for: the targeting key (the unit id; the flag API's `user_id`), the
/// attributes targeting conditions read, and the unit's stored sticky assignments.
///
/// # Examples
///
/// ```
/// use abkit::Context;
///
/// let ctx = Context::new("usr_123").with_attribute("country", "DE");
/// assert_eq!(ctx.key(), Some("usr_123"));
/// // The flag API's evaluate context deserializes as written.
/// let ctx: Context = serde_json::from_str(r#"{"user_id": "usr_123", "plan": "pro"}"#)?;
/// assert_eq!(ctx.key(), Some("usr_123"));
/// assert_eq!(ctx.attribute("plan"), Some(&serde_json::json!("pro")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    key: Option<String>,
    attributes: Value,
    sticky: Vec<(String, String)>,
}

/// Attribute names read as the targeting key when a context is built from JSON, in order.
pub const KEY_ATTRIBUTES: [&str; 5] = ["targetingKey", "user_id", "userId", "id", "unitId"];

impl Context {
    /// A context for the unit `key`, with no other attributes.
    pub fn new(key: impl Into<String>) -> Context {
        Context {
            key: Some(key.into()),
            attributes: Value::Object(Map::new()),
            sticky: Vec::new(),
        }
    }

    /// A context with no targeting key (anonymous: experiments cannot allocate it).
    pub fn anonymous() -> Context {
        Context {
            key: None,
            attributes: Value::Object(Map::new()),
            sticky: Vec::new(),
        }
    }

    /// A context from a JSON object of attributes; the key is the first of
    /// [`KEY_ATTRIBUTES`] present as a string (or integer).
    pub fn from_attributes(attributes: Map<String, Value>) -> Context {
        let key = KEY_ATTRIBUTES
            .iter()
            .find_map(|k| match attributes.get(*k) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
                _ => None,
            });
        Context {
            key,
            attributes: Value::Object(attributes),
            sticky: Vec::new(),
        }
    }

    /// Adds or replaces an attribute.
    #[must_use]
    pub fn with_attribute(mut self, name: &str, value: impl Into<Value>) -> Context {
        if let Value::Object(m) = &mut self.attributes {
            m.insert(name.to_owned(), value.into());
        }
        self
    }

    /// Adds the unit's stored sticky assignments (experiment id, variant id), as loaded from
    /// storage once per request.
    #[must_use]
    pub fn with_sticky_assignments(mut self, assignments: Vec<(String, String)>) -> Context {
        self.sticky = assignments;
        self
    }

    /// The targeting key.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The attributes, a JSON object.
    pub fn attributes(&self) -> &Value {
        &self.attributes
    }

    /// One attribute.
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        self.attributes.get(name)
    }

    /// The stored sticky variant for `experiment`.
    pub fn sticky_variant(&self, experiment: &str) -> Option<&str> {
        self.sticky
            .iter()
            .find(|(e, _)| e == experiment)
            .map(|(_, v)| v.as_str())
    }
}

impl Serialize for Context {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.attributes.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Context {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Context::from_attributes(Map::deserialize(d)?))
    }
}
