//! TEMPORARY STUB: replaced by the targeting branch at merge.
#![allow(missing_docs)]
use serde_json::Value;
#[derive(Clone, Debug, PartialEq)]
pub struct Condition(Value);
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("bad condition")]
pub struct ConditionError;
impl Condition {
    pub fn parse(v: &Value) -> Result<Condition, ConditionError> {
        if v.is_object() {
            Ok(Condition(v.clone()))
        } else {
            Err(ConditionError)
        }
    }
    pub fn matches(&self, _attrs: &Value) -> bool {
        true
    }
}
impl serde::Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl<'de> serde::Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Condition::parse(&Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SavedGroups(std::collections::BTreeMap<String, Vec<Value>>);
impl SavedGroups {
    pub fn insert(&mut self, id: &str, v: Vec<Value>) {
        self.0.insert(id.into(), v);
    }
}
impl Condition {
    pub fn bind(&self, _g: &SavedGroups) -> Result<Condition, ConditionError> {
        Ok(self.clone())
    }
    pub fn bind_lenient(&self, _g: &SavedGroups) -> Condition {
        self.clone()
    }
    pub fn saved_groups(&self) -> impl Iterator<Item = &str> {
        std::iter::empty()
    }
}
impl Condition {
    pub fn always() -> Condition {
        Condition(Value::Object(Default::default()))
    }
}
