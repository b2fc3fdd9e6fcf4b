//! Targeting conditions: which units an experiment or flag rule applies to.
//!
//! A [`Condition`] is a JSON document in the language of GrowthBook's SDKs (`evalCondition`, spec
//! 0.8), matched against a unit's attributes (a JSON object). It is parsed once — regexes compiled,
//! versions normalised, dotted paths split, `$in` lists turned into sets — and then evaluated any
//! number of times without failing, panicking or allocating.
//!
//! ```
//! use abkit::targeting::Condition;
//! use serde_json::json;
//!
//! let cond = Condition::parse(&json!({
//!     "country": {"$in": ["US", "CA"]},
//!     "app.version": {"$vgte": "2.4.0"},
//!     "$or": [{"plan": "pro"}, {"beta": true}]
//! }))?;
//! assert!(cond.matches(&json!({"country": "CA", "app": {"version": "2.10.1"}, "plan": "pro"})));
//! assert!(!cond.matches(&json!({"country": "CA", "app": {"version": "2.3.9"}, "plan": "pro"})));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The language
//!
//! A condition is an object whose keys are dotted attribute paths (`"father.age"`, `"tags.0"`,
//! `"tags.length"`) or the logical operators `$and`, `$or`, `$nor` (arrays of conditions) and
//! `$not` (a condition); every key must pass. The value under a path is either a literal —
//! compared for equality with JavaScript's coercions (`{"age": "30"}` matches `30`) or, for arrays
//! and objects, structurally — or an operator object:
//!
//! | operators | operand | passes when the attribute |
//! |---|---|---|
//! | `$eq` `$ne` | string, number, boolean, null | is (not) strictly equal |
//! | `$lt` `$lte` `$gt` `$gte` | string, number, boolean, null | compares so, by JavaScript's `<` |
//! | `$in` `$nin` | array of primitives | is (not) in it; an array attribute intersects |
//! | `$ini` `$nini` | array of primitives | the same, ignoring the case of strings |
//! | `$all` `$alli` | array of values or operator objects | is an array with a match for each |
//! | `$elemMatch` | operator object, or condition | is an array with a non-null element passing it |
//! | `$size` | non-negative integer, or operator object | is an array of that length |
//! | `$exists` | boolean | is (not) missing or null |
//! | `$type` | `"string"` `"number"` `"boolean"` `"object"` `"array"` `"null"` | has that type |
//! | `$regex` `$regexi` | regular expression | as a string, matches (`$regexi`: ignoring case) |
//! | `$notRegex` `$notRegexi` | regular expression | as a string, does not match |
//! | `$not` | literal or operator object | fails it |
//! | `$veq` `$vne` `$vgt` `$vgte` `$vlt` `$vlte` | version string | compares so as a version |
//! | `$inGroup` `$notInGroup` | saved group id | is (not) in the [`SavedGroups`] list |
//!
//! A missing attribute reads as `null`, as in GrowthBook. Attributes that are not a JSON object
//! match only the empty condition ([`Condition::always`]).
//!
//! # Differences from GrowthBook
//!
//! - What GrowthBook silently evaluates to `false` — an unknown operator, an invalid regex, an
//!   operand of the wrong type, a `$in` entry that is an array or object (JavaScript compares those
//!   by identity), a value operator used where an attribute name belongs — is rejected by
//!   [`Condition::parse`] with a [`ConditionError`] naming the place.
//! - Regexes use the `regex` crate, so look-around and back-references are rejected; `\d`, `\w`,
//!   `\b` keep JavaScript's ASCII meaning.
//! - Structural equality compares object keys as a set (JavaScript's `JSON.stringify` also compares
//!   their order, which serde_json does not keep).
//! - Case-insensitive comparisons lowercase character by character, without the final-sigma rule.
//! - Inherited JavaScript properties (`"name.constructor"`) are not attributes.
//! - `$elemMatch` skips only `null` elements, as current GrowthBook SDKs do (older ones skipped
//!   every falsy element, so `{"$elemMatch": {"$eq": 0}}` never matched).
//! - `$notRegex`/`$notRegexi` (from GrowthBook's newer SDKs) are supported; the newer top-level
//!   `$savedGroup` operator is not, and is rejected rather than read as an attribute name.

mod ast;
mod error;
mod eval;
mod groups;
mod js;
mod jsregex;
mod parse;
mod plan;
pub(crate) mod short;
mod version;

use std::fmt;
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use error::ConditionError;
pub use groups::SavedGroups;
pub use jsregex::{REGEX_BUDGET, REGEX_SIZE_LIMIT};

use ast::{Clause, CondNode, ElemMatch, GroupRef, Op, ValueTest};
use plan::Plan;

/// A parsed targeting condition: immutable, cheap to clone (shared), `Send + Sync`.
///
/// Serializes as the JSON it was parsed from; deserializing parses, so a malformed condition in
/// JSON is a deserialization error carrying the [`ConditionError`] message. Two conditions are
/// equal when they parse to the same tree and have the same saved groups bound.
///
/// # Examples
///
/// ```
/// use abkit::targeting::Condition;
/// use serde_json::json;
///
/// let cond: Condition = serde_json::from_str(r#"{"age": {"$gte": 18}}"#)?;
/// assert!(cond.matches(&json!({"age": 21})));
/// assert_eq!(serde_json::to_value(&cond)?, json!({"age": {"$gte": 18}}));
/// assert!(serde_json::from_str::<Condition>(r#"{"age": {"$gte": [18]}}"#).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Condition {
    inner: Arc<Inner>,
}

struct Inner {
    source: Value,
    root: CondNode,
    /// How `root` is evaluated (derived from it).
    plan: Plan,
    groups: Box<[Box<str>]>,
}

impl Inner {
    fn new(source: Value, root: CondNode, groups: Box<[Box<str>]>) -> Self {
        Self {
            source,
            plan: Plan::new(&root),
            root,
            groups,
        }
    }
}

static ALWAYS: LazyLock<Condition> = LazyLock::new(|| Condition {
    inner: Arc::new(Inner::new(
        Value::Object(serde_json::Map::new()),
        CondNode {
            clauses: Box::default(),
        },
        Box::default(),
    )),
});

impl Condition {
    /// Parses a condition.
    ///
    /// # Errors
    ///
    /// A [`ConditionError`] pointing at the offending part when the condition is not an object, uses
    /// an unknown operator, gives an operator an operand of the wrong type (such as `$in` with a
    /// non-array), has an invalid regex or version, or nests deeper than 64 levels.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::targeting::Condition;
    /// use serde_json::json;
    ///
    /// let cond = Condition::parse(&json!({"tags": {"$elemMatch": {"$regexi": "^vip"}}}))?;
    /// assert!(cond.matches(&json!({"tags": ["new", "VIP-gold"]})));
    ///
    /// let err = Condition::parse(&json!({"country": {"$in": "US"}})).unwrap_err();
    /// assert_eq!(err.to_string(), r#"condition at /country/$in: expected an array, got "US""#);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parse(condition: &Value) -> Result<Self, ConditionError> {
        // Before the clone: cloning (like parsing) recurses.
        parse::check_nesting(condition)?;
        Self::parse_owned(condition.clone())
    }

    fn parse_owned(source: Value) -> Result<Self, ConditionError> {
        parse::check_nesting(&source)?;
        let (root, out) = parse::parse_condition(&source)?;
        Ok(Self {
            inner: Arc::new(Inner::new(source, root, out.groups.into_boxed_slice())),
        })
    }

    /// The empty condition `{}`, which matches every unit.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::targeting::Condition;
    /// use serde_json::json;
    ///
    /// let all = Condition::always();
    /// assert!(all.is_always());
    /// assert!(all.matches(&json!({"anything": 1})));
    /// assert!(all.matches(&json!(null)));
    /// ```
    #[must_use]
    pub fn always() -> Self {
        ALWAYS.clone()
    }

    /// Whether this is the empty condition (no keys), which matches every unit.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::targeting::Condition;
    /// use serde_json::json;
    ///
    /// assert!(Condition::parse(&json!({}))?.is_always());
    /// assert!(!Condition::parse(&json!({"a": 1}))?.is_always());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn is_always(&self) -> bool {
        self.inner.root.clauses.is_empty()
    }

    /// Whether `attributes` (a JSON object) satisfy the condition.
    ///
    /// Never fails and never allocates, with one exception: a regex operator applied to an array
    /// attribute whose JavaScript string form (elements joined with commas) exceeds 256 bytes builds
    /// that string on the heap. Attributes that are not an object
    /// match only the empty condition. Saved groups that were not bound count as empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::targeting::Condition;
    /// use serde_json::json;
    ///
    /// let cond = Condition::parse(&json!({"age": {"$gt": 30, "$lt": 60}}))?;
    /// assert!(cond.matches(&json!({"age": 45})));
    /// assert!(cond.matches(&json!({"age": "45"}))); // JavaScript comparison rules
    /// assert!(!cond.matches(&json!({"name": "no age"})));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn matches(&self, attributes: &Value) -> bool {
        match (attributes, &self.inner.plan) {
            (Value::Object(attrs), Plan::Attrs(tests)) => tests.iter().all(|t| t.eval(attrs)),
            (Value::Object(_), Plan::Tree) => self.inner.root.eval(attributes),
            _ => self.is_always(),
        }
    }

    /// The JSON this condition was parsed from.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::targeting::Condition;
    /// use serde_json::json;
    ///
    /// let cond = Condition::parse(&json!({"a": 1}))?;
    /// assert_eq!(cond.as_json(), &json!({"a": 1}));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn as_json(&self) -> &Value {
        &self.inner.source
    }

    /// The saved group ids the condition references (`$inGroup`, `$notInGroup`), each once, in
    /// order of appearance.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::targeting::Condition;
    /// use serde_json::json;
    ///
    /// let cond = Condition::parse(&json!({
    ///     "id": {"$inGroup": "beta"},
    ///     "$or": [{"id": {"$notInGroup": "banned"}}, {"id": {"$inGroup": "beta"}}]
    /// }))?;
    /// let mut ids: Vec<&str> = cond.saved_groups().collect();
    /// ids.sort_unstable();
    /// assert_eq!(ids, ["banned", "beta"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn saved_groups(&self) -> impl Iterator<Item = &str> {
        self.inner.groups.iter().map(|g| &**g)
    }

    /// A copy of the condition with every saved group reference resolved to the group's values
    /// (shared, precompiled sets). Binding again replaces earlier bindings.
    ///
    /// # Errors
    ///
    /// [`ConditionError::UnknownGroup`] naming the first referenced group that `groups` lacks.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::targeting::{Condition, SavedGroups};
    /// use serde_json::json;
    ///
    /// let cond = Condition::parse(&json!({"id": {"$notInGroup": "banned"}}))?;
    /// let groups: SavedGroups = serde_json::from_value(json!({"banned": ["u9"]}))?;
    /// let bound = cond.bind(&groups)?;
    /// assert!(!bound.matches(&json!({"id": "u9"})));
    /// assert!(bound.matches(&json!({"id": "u1"})));
    ///
    /// let err = cond.bind(&SavedGroups::new()).unwrap_err();
    /// assert_eq!(err.to_string(), r#"condition at /id/$notInGroup: unknown saved group "banned""#);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(&self, groups: &SavedGroups) -> Result<Self, ConditionError> {
        self.bind_with(groups, true)
    }

    /// Like [`bind`](Self::bind), but a group missing from `groups` is bound as empty (GrowthBook's
    /// behaviour): `$inGroup` fails and `$notInGroup` passes for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::targeting::{Condition, SavedGroups};
    /// use serde_json::json;
    ///
    /// let cond = Condition::parse(&json!({"id": {"$inGroup": "nobody"}}))?;
    /// let bound = cond.bind_lenient(&SavedGroups::new());
    /// assert!(!bound.matches(&json!({"id": 1})));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn bind_lenient(&self, groups: &SavedGroups) -> Self {
        // Lenient binding cannot fail.
        self.bind_with(groups, false)
            .unwrap_or_else(|_| self.clone())
    }

    fn bind_with(&self, groups: &SavedGroups, strict: bool) -> Result<Self, ConditionError> {
        if self.inner.groups.is_empty() {
            return Ok(self.clone());
        }
        let mut root = self.inner.root.clone();
        visit_groups_cond(&mut root, &mut |g: &mut GroupRef| {
            g.set = match groups.set(&g.id) {
                Some(set) => Some(Arc::clone(set)),
                None if strict => {
                    return Err(ConditionError::UnknownGroup {
                        path: g.pointer.to_string(),
                        group: g.id.to_string(),
                    });
                }
                None => None,
            };
            Ok(())
        })?;
        Ok(Self {
            inner: Arc::new(Inner::new(
                self.inner.source.clone(),
                root,
                self.inner.groups.clone(),
            )),
        })
    }
}

type GroupVisitor<'a> = dyn FnMut(&mut GroupRef) -> Result<(), ConditionError> + 'a;

fn visit_groups_cond(node: &mut CondNode, f: &mut GroupVisitor<'_>) -> Result<(), ConditionError> {
    for clause in &mut node.clauses {
        match clause {
            Clause::Or(list) | Clause::Nor(list) | Clause::And(list) => {
                for c in list.iter_mut() {
                    visit_groups_cond(c, f)?;
                }
            }
            Clause::Not(c) => visit_groups_cond(c, f)?,
            Clause::Path { test, .. } => visit_groups_value(test, f)?,
        }
    }
    Ok(())
}

fn visit_groups_value(
    test: &mut ValueTest,
    f: &mut GroupVisitor<'_>,
) -> Result<(), ConditionError> {
    let ValueTest::Ops(ops) = test else {
        return Ok(());
    };
    for op in ops.iter_mut() {
        match op {
            Op::All(tests) | Op::Alli(tests) => {
                for t in tests.iter_mut() {
                    visit_groups_value(t, f)?;
                }
            }
            Op::ElemMatch(em) => match &mut **em {
                ElemMatch::Value(t) => visit_groups_value(t, f)?,
                ElemMatch::Cond(c) => visit_groups_cond(c, f)?,
            },
            Op::Size(t) | Op::Not(t) => visit_groups_value(t, f)?,
            Op::InGroup(g) | Op::NotInGroup(g) => f(g)?,
            _ => {}
        }
    }
    Ok(())
}

impl Default for Condition {
    /// The empty condition, [`Condition::always`].
    fn default() -> Self {
        Self::always()
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition")
            .field(&self.inner.source)
            .finish()
    }
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.inner.root == other.inner.root
    }
}

impl TryFrom<&Value> for Condition {
    type Error = ConditionError;

    fn try_from(value: &Value) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl TryFrom<Value> for Condition {
    type Error = ConditionError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Self::parse_owned(value)
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.inner.source.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = Value::deserialize(deserializer)?;
        Self::parse_owned(source).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod deep_tests {
    use super::*;

    /// `{"$not": {"$not": … {}}}`, `n` deep, built without recursion.
    fn nested_not(n: usize) -> Value {
        let mut v = Value::Object(serde_json::Map::new());
        for _ in 0..n {
            let mut m = serde_json::Map::new();
            m.insert("$not".into(), v);
            v = Value::Object(m);
        }
        v
    }

    #[test]
    fn deep_conditions_are_errors_not_stack_overflows() {
        // On a 2 MiB stack (a common thread default), as the hostile test did.
        let handle = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let deep = nested_not(10_000);
                let err = Condition::parse(&deep).map(|_| ()).unwrap_err();
                // The value is leaked: dropping 10 000 levels recurses in serde_json itself.
                std::mem::forget(deep);
                err
            })
            .expect("thread");
        let err = handle.join().expect("no stack overflow");
        assert!(
            matches!(err, ConditionError::TooDeep { limit: 64, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with("condition at /$not/$not"),
            "{err}"
        );
        // At the limit it still parses; one level more is refused with the same error.
        assert!(Condition::parse(&nested_not(parse::MAX_DEPTH)).is_ok());
        assert!(matches!(
            Condition::parse(&nested_not(parse::MAX_DEPTH + 2)),
            Err(ConditionError::TooDeep { .. })
        ));
        // Wide is fine: a 100 000-element `$in` parses.
        let wide: Vec<Value> = (0..100_000).map(|i| Value::from(format!("u{i}"))).collect();
        let cond = Condition::parse(&serde_json::json!({"id": {"$in": wide}})).expect("wide");
        assert!(cond.matches(&serde_json::json!({"id": "u99999"})));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn condition_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Condition>();
        assert_send_sync::<SavedGroups>();
        assert_send_sync::<ConditionError>();
        let a = Condition::parse(&json!({"a": 1})).unwrap();
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
    }

    #[test]
    fn non_object_attributes_match_only_the_empty_condition() {
        let cond = Condition::parse(&json!({"$or": []})).unwrap();
        for attrs in [json!(null), json!([]), json!("x"), json!(1)] {
            assert!(!cond.matches(&attrs));
            assert!(Condition::always().matches(&attrs));
        }
    }

    #[test]
    fn equality_is_structural() {
        let a = Condition::parse(&json!({"a": 1})).unwrap();
        assert_eq!(a, Condition::parse(&json!({"a": 1.0})).unwrap());
        assert_ne!(a, Condition::parse(&json!({"a": 2})).unwrap());
        assert_eq!(Condition::default(), Condition::parse(&json!({})).unwrap());
        let g = Condition::parse(&json!({"a": {"$inGroup": "g"}})).unwrap();
        let groups: SavedGroups = [("g", vec![json!(1)])].into_iter().collect();
        assert_ne!(g, g.bind(&groups).unwrap());
        assert_eq!(g.bind(&groups).unwrap(), g.bind(&groups).unwrap());
    }

    #[test]
    fn bind_resolves_nested_references() {
        let cond = Condition::parse(&json!({
            "$and": [{"$not": {"a": {"$all": [{"$inGroup": "g"}]}}}],
            "b": {"$elemMatch": {"c": {"$notInGroup": "h"}}},
            "d": {"$size": {"$not": {"$inGroup": "g"}}}
        }))
        .unwrap();
        let groups: SavedGroups = [("g", vec![json!(1), json!(2)]), ("h", vec![json!("x")])]
            .into_iter()
            .collect();
        let bound = cond.bind(&groups).unwrap();
        assert!(bound.matches(&json!({"a": [5], "b": [{"c": "y"}], "d": [0, 0, 0]})));
        assert!(!bound.matches(&json!({"a": [1], "b": [{"c": "y"}], "d": [0, 0, 0]})));
        assert!(!bound.matches(&json!({"a": [5], "b": [{"c": "x"}], "d": [0, 0, 0]})));
        assert!(!bound.matches(&json!({"a": [5], "b": [{"c": "y"}], "d": [0, 0]})));
        // Rebinding replaces; lenient binding empties unknown groups.
        let only_g: SavedGroups = [("g", vec![json!(5)])].into_iter().collect();
        let rebound = bound.bind_lenient(&only_g);
        assert!(!rebound.matches(&json!({"a": [5], "b": [{"c": "x"}], "d": [0]})));
        assert!(rebound.matches(&json!({"a": [1], "b": [{"c": "x"}], "d": [0]})));
        assert_eq!(
            cond.bind(&only_g).unwrap_err(),
            ConditionError::UnknownGroup {
                path: "/b/$elemMatch/c/$notInGroup".into(),
                group: "h".into()
            }
        );
    }

    #[test]
    fn debug_shows_the_source() {
        let cond = Condition::parse(&json!({"a": 1})).unwrap();
        assert_eq!(format!("{cond:?}"), r#"Condition(Object {"a": Number(1)})"#);
    }

    #[test]
    fn try_from_and_serde() {
        let cond = Condition::try_from(json!({"a": {"$in": [1]}})).unwrap();
        assert_eq!(
            serde_json::to_string(&cond).unwrap(),
            r#"{"a":{"$in":[1]}}"#
        );
        let err = serde_json::from_str::<Condition>(r#"{"a": {"$in": 1}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "condition at /a/$in: expected an array, got 1"
        );
        assert!(Condition::try_from(&json!(5)).is_err());
    }
}
