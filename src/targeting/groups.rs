//! Value lists for `$in`-style operators and saved groups.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::js;
use super::short;

/// Lists with more strings than this are looked up through a hash set.
const SET_THRESHOLD: usize = 8;

/// Strings of a value list.
#[derive(Debug, Clone, PartialEq)]
enum StrSet {
    /// Few strings, compared one by one: `packed` holds the packed form of each that is short
    /// enough (see `short`), so a short string is looked up without comparing bytes.
    Small {
        strs: Box<[Box<str>]>,
        packed: Box<[u128]>,
    },
    Large(HashSet<Box<str>>),
}

impl StrSet {
    fn new(strs: Vec<Box<str>>) -> Self {
        if strs.len() > SET_THRESHOLD {
            Self::Large(strs.into_iter().collect())
        } else {
            let mut strs = strs;
            strs.dedup();
            let packed = strs.iter().filter_map(|s| short::pack(s)).collect();
            Self::Small {
                strs: strs.into_boxed_slice(),
                packed,
            }
        }
    }

    #[inline]
    fn contains(&self, s: &str) -> bool {
        match self {
            Self::Small { strs, packed } => match short::pack(s) {
                // A string that packs can only equal one that packs.
                Some(p) => packed.contains(&p),
                None => strs.iter().any(|x| **x == *s),
            },
            Self::Large(set) => set.contains(s),
        }
    }

    fn any(&self, mut f: impl FnMut(&str) -> bool) -> bool {
        match self {
            Self::Small { strs, .. } => strs.iter().any(|x| f(x)),
            Self::Large(set) => set.iter().any(|x| f(x)),
        }
    }
}

/// The precompiled operand of `$in`, `$nin`, `$ini`, `$nini` and saved groups: membership by
/// JavaScript's `Array.prototype.includes` (SameValueZero), with strings lowercased for the
/// case-insensitive forms.
///
/// Arrays and objects are left out: `includes` compares them by identity, so a value taken from
/// the attributes never equals one of them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InList {
    strs: StrSet,
    /// Sorted, `-0` stored as `0`.
    nums: Box<[f64]>,
    has_true: bool,
    has_false: bool,
    has_null: bool,
}

impl Default for InList {
    fn default() -> Self {
        Self {
            strs: StrSet::Small {
                strs: Box::default(),
                packed: Box::default(),
            },
            nums: Box::default(),
            has_true: false,
            has_false: false,
            has_null: false,
        }
    }
}

impl InList {
    /// Builds the list; `lowercase` folds strings for `$ini`/`$nini`.
    pub(crate) fn new<'a>(values: impl IntoIterator<Item = &'a Value>, lowercase: bool) -> Self {
        let mut list = Self::default();
        let mut strs = Vec::new();
        let mut nums = Vec::new();
        for v in values {
            match v {
                Value::Null => list.has_null = true,
                Value::Bool(true) => list.has_true = true,
                Value::Bool(false) => list.has_false = true,
                Value::Number(n) => nums.push(js::num(n) + 0.0),
                Value::String(s) if lowercase => strs.push(js::lowercase(s).into_boxed_str()),
                Value::String(s) => strs.push(s.as_str().into()),
                Value::Array(_) | Value::Object(_) => {}
            }
        }
        nums.sort_by(f64::total_cmp);
        nums.dedup();
        list.nums = nums.into_boxed_slice();
        list.strs = StrSet::new(strs);
        list
    }

    /// `list.includes(v)`, or with `insensitive` the `caseFold` comparison of `$ini`.
    fn contains(&self, v: &Value, insensitive: bool) -> bool {
        match v {
            Value::String(s) if insensitive => match js::lowercase_on_stack::<128>(s) {
                Some(lower) => self.strs.contains(lower.as_str()),
                None => self.strs.any(|x| js::lower_eq(v, x)),
            },
            Value::String(s) => self.strs.contains(s),
            Value::Number(n) => {
                let x = js::num(n) + 0.0;
                self.nums.binary_search_by(|y| y.total_cmp(&x)).is_ok()
            }
            Value::Bool(true) => self.has_true,
            Value::Bool(false) => self.has_false,
            Value::Null => self.has_null,
            Value::Array(_) | Value::Object(_) => false,
        }
    }

    /// `list.includes(s)` for a string attribute.
    #[inline]
    pub(crate) fn contains_str(&self, s: &str) -> bool {
        self.strs.contains(s)
    }

    /// GrowthBook's `isIn`: an array attribute matches when any element is in the list.
    pub(crate) fn is_in(&self, actual: &Value, insensitive: bool) -> bool {
        match actual {
            Value::Array(items) => items.iter().any(|x| self.contains(x, insensitive)),
            _ => self.contains(actual, insensitive),
        }
    }
}

#[derive(Clone)]
struct SavedGroup {
    values: Vec<Value>,
    set: Arc<InList>,
}

/// Saved groups: named lists of attribute values that conditions reference with
/// `{"attr": {"$inGroup": "id"}}` and `{"attr": {"$notInGroup": "id"}}`.
///
/// Each list is precompiled into a set when inserted, so [`Condition::bind`] shares it with every
/// condition it binds. Serializes as a JSON object `{"id": [values...]}`.
///
/// [`Condition::bind`]: super::Condition::bind
///
/// # Examples
///
/// ```
/// use abkit::targeting::{Condition, SavedGroups};
/// use serde_json::json;
///
/// let mut groups = SavedGroups::new();
/// groups.insert("beta_testers", vec![json!("u1"), json!("u2")]);
/// let cond = Condition::parse(&json!({"id": {"$inGroup": "beta_testers"}}))?.bind(&groups)?;
/// assert!(cond.matches(&json!({"id": "u2"})));
/// assert!(!cond.matches(&json!({"id": "u3"})));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct SavedGroups {
    groups: BTreeMap<String, SavedGroup>,
}

impl SavedGroups {
    /// No groups.
    ///
    /// # Examples
    ///
    /// ```
    /// let groups = abkit::targeting::SavedGroups::new();
    /// assert!(groups.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the group `id`, returning the values it replaced.
    ///
    /// Arrays and objects may be stored but never match: GrowthBook compares group members with
    /// JavaScript's `includes`, which compares them by identity.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde_json::json;
    ///
    /// let mut groups = abkit::targeting::SavedGroups::new();
    /// assert_eq!(groups.insert("staff", vec![json!(1), json!(2)]), None);
    /// assert_eq!(groups.insert("staff", vec![json!(3)]), Some(vec![json!(1), json!(2)]));
    /// ```
    pub fn insert(&mut self, id: impl Into<String>, values: Vec<Value>) -> Option<Vec<Value>> {
        let set = Arc::new(InList::new(&values, false));
        self.groups
            .insert(id.into(), SavedGroup { values, set })
            .map(|old| old.values)
    }

    /// The values of group `id`.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde_json::json;
    ///
    /// let mut groups = abkit::targeting::SavedGroups::new();
    /// groups.insert("staff", vec![json!("ann")]);
    /// assert_eq!(groups.get("staff"), Some(&[json!("ann")][..]));
    /// assert_eq!(groups.get("nobody"), None);
    /// ```
    #[must_use]
    pub fn get(&self, id: &str) -> Option<&[Value]> {
        self.groups.get(id).map(|g| g.values.as_slice())
    }

    /// Removes group `id`, returning its values.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde_json::json;
    ///
    /// let mut groups = abkit::targeting::SavedGroups::new();
    /// groups.insert("staff", vec![json!("ann")]);
    /// assert_eq!(groups.remove("staff"), Some(vec![json!("ann")]));
    /// assert!(groups.is_empty());
    /// ```
    pub fn remove(&mut self, id: &str) -> Option<Vec<Value>> {
        self.groups.remove(id).map(|g| g.values)
    }

    /// The group ids, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut groups = abkit::targeting::SavedGroups::new();
    /// groups.insert("b", vec![]);
    /// groups.insert("a", vec![]);
    /// assert_eq!(groups.ids().collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// The number of groups.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut groups = abkit::targeting::SavedGroups::new();
    /// groups.insert("a", vec![]);
    /// assert_eq!(groups.len(), 1);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are no groups.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(abkit::targeting::SavedGroups::default().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub(crate) fn set(&self, id: &str) -> Option<&Arc<InList>> {
        self.groups.get(id).map(|g| &g.set)
    }
}

impl fmt::Debug for SavedGroups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.groups.iter().map(|(id, g)| (id, &g.values)))
            .finish()
    }
}

impl PartialEq for SavedGroups {
    fn eq(&self, other: &Self) -> bool {
        self.groups.len() == other.groups.len()
            && self
                .groups
                .iter()
                .zip(&other.groups)
                .all(|((a, ga), (b, gb))| a == b && ga.values == gb.values)
    }
}

impl<S: Into<String>> FromIterator<(S, Vec<Value>)> for SavedGroups {
    fn from_iter<I: IntoIterator<Item = (S, Vec<Value>)>>(iter: I) -> Self {
        let mut groups = Self::new();
        for (id, values) in iter {
            groups.insert(id, values);
        }
        groups
    }
}

impl Serialize for SavedGroups {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.groups.iter().map(|(id, g)| (id, &g.values)))
    }
}

impl<'de> Deserialize<'de> for SavedGroups {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, Vec<Value>>::deserialize(deserializer)?;
        Ok(raw.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn membership_is_same_value_zero() {
        let list = InList::new(
            &[json!(1), json!("2"), json!(-0.0), json!(null), json!([1])],
            false,
        );
        assert!(list.is_in(&json!(1), false));
        assert!(list.is_in(&json!(1.0), false));
        assert!(list.is_in(&json!(0), false));
        assert!(list.is_in(&json!("2"), false));
        assert!(!list.is_in(&json!(2), false));
        assert!(!list.is_in(&json!("1"), false));
        assert!(list.is_in(&json!(null), false));
        assert!(!list.is_in(&json!(false), false));
        assert!(list.is_in(&json!(["x", 1]), false));
        assert!(!list.is_in(&json!([[1]]), false));
        assert!(!list.is_in(&json!({}), false));
    }

    #[test]
    fn large_string_lists_use_a_set() {
        let values: Vec<Value> = (0..100).map(|i| json!(format!("s{i}"))).collect();
        let list = InList::new(&values, false);
        assert!(matches!(list.strs, StrSet::Large(_)));
        assert!(list.is_in(&json!("s99"), false));
        assert!(!list.is_in(&json!("s100"), false));
        let folded = InList::new(&values, true);
        assert!(folded.is_in(&json!("S42"), true));
    }

    #[test]
    fn case_insensitive_membership() {
        let list = InList::new(&[json!("US"), json!("uk"), json!(true)], true);
        assert!(list.is_in(&json!("us"), true));
        assert!(list.is_in(&json!("UK"), true));
        assert!(list.is_in(&json!(true), true));
        assert!(!list.is_in(&json!("ca"), true));
        let long = "X".repeat(300);
        let list = InList::new(&[json!(long.clone())], true);
        assert!(list.is_in(&json!(long.to_lowercase().to_uppercase()), true));
        assert!(!list.is_in(&json!("X".repeat(299)), true));
    }

    #[test]
    fn saved_groups_serde_round_trip() {
        let groups: SavedGroups = serde_json::from_value(json!({"g": [1, "a"], "h": []})).unwrap();
        assert_eq!(groups.get("g"), Some(&[json!(1), json!("a")][..]));
        assert_eq!(
            serde_json::to_value(&groups).unwrap(),
            json!({"g": [1, "a"], "h": []})
        );
        assert_eq!(
            format!("{groups:?}"),
            r#"{"g": [Number(1), String("a")], "h": []}"#
        );
        assert!(serde_json::from_value::<SavedGroups>(json!({"g": 1})).is_err());
    }
}
