//! Evaluating a parsed condition against attributes, with GrowthBook's semantics.
//!
//! Nothing here allocates: values are borrowed from the attributes, strings are compared as
//! streams and numbers are formatted on the stack (see `js`). The one exception is a regex operator
//! (`$regex`, `$notRegex`, ...) on an array attribute whose JavaScript string form (its elements
//! joined with commas) exceeds 256 bytes: that string is built on the heap.

use std::cmp::Ordering;

use serde_json::Value;

use super::ast::{
    AttrPath, Clause, CondNode, ElemMatch, GroupRef, Op, Prim, Rel, StrLit, ValueTest, VersionOp,
};
use super::groups::InList;
use super::js;
use super::short;
use super::version;

/// The value a path names: borrowed, or the length of an array (`"tags.length"`).
enum Found<'a> {
    Val(&'a Value),
    Len(usize),
}

impl AttrPath {
    /// GrowthBook's `getPath`: a missing key (or indexing into a non-object) gives `null`.
    fn lookup<'a>(&self, obj: &'a Value) -> Found<'a> {
        // The common case: a top-level attribute.
        if let ([seg], Value::Object(map)) = (&*self.segments, obj) {
            return Found::Val(seg.key.get(map).unwrap_or(&js::NULL));
        }
        let mut cur = obj;
        let mut segments = self.segments.iter().peekable();
        while let Some(seg) = segments.next() {
            let next = match cur {
                Value::Object(map) => seg.key.get(map),
                Value::Array(items) => match seg.index {
                    Some(i) => items.get(i),
                    None if seg.key.as_str() == "length" => {
                        return if segments.peek().is_none() {
                            Found::Len(items.len())
                        } else {
                            // A number has no properties.
                            Found::Val(&js::NULL)
                        };
                    }
                    None => None,
                },
                _ => None,
            };
            match next {
                Some(v) => cur = v,
                None => return Found::Val(&js::NULL),
            }
        }
        Found::Val(cur)
    }
}

impl CondNode {
    /// GrowthBook's `evalCondition` on any value (array elements in `$elemMatch` included).
    pub(crate) fn eval(&self, obj: &Value) -> bool {
        self.clauses.iter().all(|c| c.eval(obj))
    }
}

impl Clause {
    fn eval(&self, obj: &Value) -> bool {
        match self {
            Self::Or(list) => list.is_empty() || list.iter().any(|c| c.eval(obj)),
            Self::Nor(list) => !(list.is_empty() || list.iter().any(|c| c.eval(obj))),
            Self::And(list) => list.iter().all(|c| c.eval(obj)),
            Self::Not(c) => !c.eval(obj),
            Self::Path { path, test } => match path.lookup(obj) {
                Found::Val(v) => test.eval(v, false),
                Found::Len(n) => test.eval(&len_value(n), false),
            },
        }
    }
}

/// A length as a JSON number (on the stack: numbers hold no heap data).
fn len_value(n: usize) -> Value {
    Value::from(u64::try_from(n).unwrap_or(u64::MAX))
}

impl ValueTest {
    /// GrowthBook's `evalConditionValue`; `insensitive` only affects string literals (`$alli`).
    pub(crate) fn eval(&self, v: &Value, insensitive: bool) -> bool {
        match self {
            Self::StrEq(lit) => lit.matches(v, insensitive),
            Self::NumEq(n) => js::to_number(v) == *n,
            Self::BoolEq(b) => !v.is_null() && js::truthy(v) == *b,
            Self::IsNull => v.is_null(),
            Self::DeepEq(expected) => json_eq(v, expected),
            Self::Ops(ops) => ops.iter().all(|op| op.eval(v)),
        }
    }
}

impl StrLit {
    /// `s === self.s`.
    #[inline]
    pub(crate) fn eq_str(&self, s: &str) -> bool {
        match self.packed {
            // Equal lengths first: strings of another length are rejected without packing them.
            Some(p) => s.len() == self.s.len() && short::pack(s) == Some(p),
            None => *s == *self.s,
        }
    }

    /// `value + "" === s`, or `String(value).toLowerCase() === s.toLowerCase()`.
    pub(crate) fn matches(&self, v: &Value, insensitive: bool) -> bool {
        if insensitive {
            return js::lower_eq(v, &self.lower);
        }
        match v {
            Value::String(s) => self.eq_str(s),
            Value::Number(n) => self.as_num == Some(js::num(n)),
            Value::Bool(b) => *self.s == *if *b { "true" } else { "false" },
            Value::Null => &*self.s == "null",
            Value::Object(_) => &*self.s == js::OBJECT_STRING,
            Value::Array(_) => js::cmp_js_string(v, &self.s) == Some(Ordering::Equal),
        }
    }
}

/// `JSON.stringify(a) === JSON.stringify(b)`, with numbers compared as doubles and object keys
/// compared as sets (serde_json maps do not keep insertion order).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => js::num(x) == js::num(y),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && y.iter()
                    .all(|(k, q)| x.get(k).is_some_and(|p| json_eq(p, q)))
        }
        _ => false,
    }
}

impl Prim {
    /// `value === operand`.
    fn strict_eq(&self, v: &Value) -> bool {
        match (self, v) {
            (Self::Str { s, .. }, Value::String(x)) => **x == **s,
            (Self::Num(n), Value::Number(x)) => js::num(x) == *n,
            (Self::Bool(b), Value::Bool(x)) => b == x,
            (Self::Null, Value::Null) => true,
            _ => false,
        }
    }

    fn number(&self) -> f64 {
        match self {
            Self::Str { num, .. } => *num,
            Self::Num(n) => *n,
            Self::Bool(b) => f64::from(u8::from(*b)),
            Self::Null => 0.0,
        }
    }

    /// JavaScript's relational comparison of `value` with the operand: strings compare as strings
    /// (after arrays and objects become strings), anything else as numbers; `None` when undefined
    /// (a NaN).
    fn compare(&self, v: &Value) -> Option<Ordering> {
        if let Self::Str { s, .. } = self {
            match v {
                Value::String(x) => return Some(js::js_cmp_str(x, s)),
                Value::Array(_) => return js::cmp_js_string(v, s),
                Value::Object(_) => return Some(js::js_cmp_str(js::OBJECT_STRING, s)),
                _ => {}
            }
        }
        js::to_number(v).partial_cmp(&self.number())
    }
}

impl GroupRef {
    fn set(&self) -> Option<&InList> {
        self.set.as_deref()
    }
}

impl Op {
    pub(crate) fn eval(&self, v: &Value) -> bool {
        match self {
            Self::Eq(p) => p.strict_eq(v),
            Self::Ne(p) => !p.strict_eq(v),
            Self::Rel(rel, p) => p.compare(v).is_some_and(|ord| match rel {
                Rel::Lt => ord == Ordering::Less,
                Rel::Lte => ord != Ordering::Greater,
                Rel::Gt => ord == Ordering::Greater,
                Rel::Gte => ord != Ordering::Less,
            }),
            Self::Exists(want) => *want != v.is_null(),
            Self::In(list) => list.is_in(v, false),
            Self::Nin(list) => !list.is_in(v, false),
            Self::Ini(list) => list.is_in(v, true),
            Self::Nini(list) => !list.is_in(v, true),
            Self::All(tests) => all_match(v, tests, false),
            Self::Alli(tests) => all_match(v, tests, true),
            Self::ElemMatch(em) => match v {
                // GrowthBook skips null elements (SDKs before 2025 skipped every falsy one).
                Value::Array(items) => items.iter().any(|x| {
                    !x.is_null()
                        && match &**em {
                            ElemMatch::Value(test) => test.eval(x, false),
                            ElemMatch::Cond(cond) => cond.eval(x),
                        }
                }),
                _ => false,
            },
            Self::Size(test) => match v {
                Value::Array(items) => test.eval(&len_value(items.len()), false),
                _ => false,
            },
            Self::Type(ty) => js::type_name(v) == ty.name(),
            Self::Regex(re) => js::with_js_string(v, |s| re.is_match(s)),
            // Anything that cannot be converted (absurdly nested arrays) matches neither.
            Self::NotRegex(re) => js::with_js_string(v, |s| !re.is_match(s)),
            Self::Not(test) => !test.eval(v, false),
            Self::Version(op, expected) => {
                let ord = version::compare(v, expected);
                match op {
                    VersionOp::Eq => ord == Ordering::Equal,
                    VersionOp::Ne => ord != Ordering::Equal,
                    VersionOp::Gt => ord == Ordering::Greater,
                    VersionOp::Gte => ord != Ordering::Less,
                    VersionOp::Lt => ord == Ordering::Less,
                    VersionOp::Lte => ord != Ordering::Greater,
                }
            }
            Self::InGroup(g) => g.set().is_some_and(|set| set.is_in(v, false)),
            Self::NotInGroup(g) => !g.set().is_some_and(|set| set.is_in(v, false)),
        }
    }
}

/// GrowthBook's `isInAll`: every test passes for some element of the array.
fn all_match(v: &Value, tests: &[ValueTest], insensitive: bool) -> bool {
    match v {
        Value::Array(items) => tests
            .iter()
            .all(|t| items.iter().any(|x| t.eval(x, insensitive))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse_condition;
    use serde_json::{Value, json};

    fn check(cond: Value, attrs: Value) -> bool {
        let (node, _) = parse_condition(&cond).unwrap();
        node.eval(&attrs)
    }

    /// Asserts `cond` matches exactly the attribute objects in `yes` and none in `no`.
    fn table(cond: Value, yes: &[Value], no: &[Value]) {
        for a in yes {
            assert!(check(cond.clone(), a.clone()), "{cond} should match {a}");
        }
        for a in no {
            assert!(
                !check(cond.clone(), a.clone()),
                "{cond} should not match {a}"
            );
        }
    }

    #[test]
    fn implicit_string_equality_coerces() {
        table(
            json!({"a": "10"}),
            &[
                json!({"a": "10"}),
                json!({"a": 10}),
                json!({"a": 10.0}),
                json!({"a": ["10"]}),
            ],
            &[
                json!({"a": "010"}),
                json!({"a": 11}),
                json!({}),
                json!({"a": null}),
            ],
        );
        table(
            json!({"a": "true"}),
            &[json!({"a": true})],
            &[json!({"a": 1})],
        );
        table(
            json!({"a": "null"}),
            &[json!({}), json!({"a": null})],
            &[json!({"a": "x"})],
        );
        table(
            json!({"a": "1,2"}),
            &[json!({"a": [1, 2]})],
            &[json!({"a": [1, 3]})],
        );
        table(
            json!({"a": "[object Object]"}),
            &[json!({"a": {"b": 1}})],
            &[json!({"a": 1})],
        );
    }

    #[test]
    fn implicit_number_equality_coerces() {
        table(
            json!({"a": 5}),
            &[
                json!({"a": 5}),
                json!({"a": "5"}),
                json!({"a": " 5 "}),
                json!({"a": [5]}),
            ],
            &[
                json!({"a": 6}),
                json!({"a": "5x"}),
                json!({"a": [5, 5]}),
                json!({}),
            ],
        );
        // A missing attribute is null, and Number(null) is 0.
        table(
            json!({"a": 0}),
            &[json!({}), json!({"a": false}), json!({"a": ""})],
            &[json!({"a": "x"})],
        );
        table(
            json!({"a": 1}),
            &[json!({"a": true})],
            &[json!({"a": false})],
        );
    }

    #[test]
    fn implicit_boolean_and_null_equality() {
        table(
            json!({"a": true}),
            &[
                json!({"a": 1}),
                json!({"a": "x"}),
                json!({"a": []}),
                json!({"a": true}),
            ],
            &[
                json!({"a": 0}),
                json!({"a": ""}),
                json!({}),
                json!({"a": false}),
            ],
        );
        table(
            json!({"a": false}),
            &[json!({"a": 0}), json!({"a": ""})],
            &[json!({}), json!({"a": 1})],
        );
        table(
            json!({"a": null}),
            &[json!({}), json!({"a": null})],
            &[json!({"a": 0}), json!({"a": ""})],
        );
    }

    #[test]
    fn deep_equality() {
        table(
            json!({"a": {"b": [1, {"c": null}]}}),
            &[json!({"a": {"b": [1.0, {"c": null}]}})],
            &[
                json!({"a": {"b": [1, {"c": null, "d": 1}]}}),
                json!({"a": {"b": [1, {}]}}),
                json!({"a": "x"}),
            ],
        );
        table(
            json!({"a": {}}),
            &[json!({"a": {}})],
            &[json!({}), json!({"a": {"b": 1}})],
        );
        table(
            json!({"a": []}),
            &[json!({"a": []})],
            &[json!({"a": [null]}), json!({"a": ""})],
        );
    }

    #[test]
    fn eq_and_ne_are_strict() {
        table(
            json!({"a": {"$eq": 5}}),
            &[json!({"a": 5}), json!({"a": 5.0})],
            &[json!({"a": "5"}), json!({})],
        );
        table(
            json!({"a": {"$eq": null}}),
            &[json!({}), json!({"a": null})],
            &[json!({"a": false})],
        );
        table(
            json!({"a": {"$eq": "x"}}),
            &[json!({"a": "x"})],
            &[json!({"a": ["x"]})],
        );
        table(
            json!({"a": {"$eq": true}}),
            &[json!({"a": true})],
            &[json!({"a": 1})],
        );
        table(
            json!({"a": {"$ne": "x"}}),
            &[json!({"a": "y"}), json!({})],
            &[json!({"a": "x"})],
        );
    }

    #[test]
    fn relational_operators() {
        table(
            json!({"a": {"$gt": 5}}),
            &[json!({"a": 6}), json!({"a": "6"}), json!({"a": 7})],
            &[json!({"a": 5}), json!({"a": "x"}), json!({})],
        );
        table(
            json!({"a": {"$gte": 5}}),
            &[json!({"a": 5}), json!({"a": [5]})],
            &[json!({"a": 4.9})],
        );
        table(
            json!({"a": {"$lt": 5}}),
            &[
                json!({"a": 4}),
                json!({}),
                json!({"a": null}),
                json!({"a": false}),
                json!({"a": []}),
            ],
            &[json!({"a": 5}), json!({"a": "abc"}), json!({"a": {}})],
        );
        table(
            json!({"a": {"$lte": 0}}),
            &[json!({}), json!({"a": ""})],
            &[json!({"a": 1})],
        );
        // Strings against strings compare as strings: "10" < "9".
        table(
            json!({"a": {"$lt": "9"}}),
            &[json!({"a": "10"}), json!({"a": [10]})],
            &[json!({"a": "95"})],
        );
        // Strings against numbers compare as numbers.
        table(
            json!({"a": {"$lt": "9"}}),
            &[json!({"a": 8})],
            &[json!({"a": 10})],
        );
        table(
            json!({"a": {"$gt": "Z"}}),
            &[json!({"a": "a"}), json!({"a": {}})],
            &[json!({"a": "A"})],
        );
        table(
            json!({"a": {"$gte": true}}),
            &[json!({"a": 1}), json!({"a": true})],
            &[json!({"a": 0})],
        );
        table(
            json!({"a": {"$lte": null}}),
            &[json!({"a": 0}), json!({})],
            &[json!({"a": 0.1})],
        );
    }

    #[test]
    fn exists_and_type() {
        table(
            json!({"a.b": {"$exists": true}}),
            &[json!({"a": {"b": 0}})],
            &[json!({"a": {"b": null}}), json!({"a": 1})],
        );
        table(
            json!({"a": {"$exists": false}}),
            &[json!({}), json!({"a": null})],
            &[json!({"a": false})],
        );
        table(
            json!({"a": {"$exists": 1}}),
            &[json!({"a": 1})],
            &[json!({})],
        );
        table(
            json!({"a": {"$type": "null"}}),
            &[json!({}), json!({"a": null})],
            &[json!({"a": 0})],
        );
        table(
            json!({"a": {"$type": "number"}}),
            &[json!({"a": 1.5})],
            &[json!({"a": "1"})],
        );
        table(
            json!({"a": {"$type": "boolean"}}),
            &[json!({"a": false})],
            &[json!({"a": 0})],
        );
        table(
            json!({"a": {"$type": "string"}}),
            &[json!({"a": ""})],
            &[json!({"a": []})],
        );
        table(
            json!({"a": {"$type": "array"}}),
            &[json!({"a": []})],
            &[json!({"a": {}})],
        );
        table(
            json!({"a": {"$type": "object"}}),
            &[json!({"a": {}})],
            &[json!({"a": []})],
        );
    }

    #[test]
    fn in_and_nin() {
        table(
            json!({"a": {"$in": ["x", 1, null, true]}}),
            &[
                json!({"a": "x"}),
                json!({"a": 1.0}),
                json!({}),
                json!({"a": true}),
                json!({"a": ["z", 1]}),
            ],
            &[
                json!({"a": "1"}),
                json!({"a": false}),
                json!({"a": []}),
                json!({"a": ["z"]}),
                json!({"a": {}}),
            ],
        );
        table(
            json!({"a": {"$nin": ["x"]}}),
            &[json!({"a": "y"}), json!({}), json!({"a": []})],
            &[json!({"a": "x"}), json!({"a": ["x", "y"]})],
        );
        table(
            json!({"a": {"$in": []}}),
            &[],
            &[json!({"a": 1}), json!({})],
        );
        table(
            json!({"a": {"$ini": ["Ab", 2]}}),
            &[
                json!({"a": "aB"}),
                json!({"a": ["x", "AB"]}),
                json!({"a": 2}),
            ],
            &[json!({"a": "abc"}), json!({"a": "2x"})],
        );
        table(
            json!({"a": {"$nini": ["Ab"]}}),
            &[json!({"a": "b"})],
            &[json!({"a": "AB"}), json!({"a": ["ab"]})],
        );
    }

    #[test]
    fn all_and_alli() {
        table(
            json!({"a": {"$all": ["x", {"$gt": 5}]}}),
            &[json!({"a": ["x", 6]}), json!({"a": [6, "x", 1]})],
            &[json!({"a": ["x"]}), json!({"a": "x"}), json!({})],
        );
        table(
            json!({"a": {"$all": []}}),
            &[json!({"a": []})],
            &[json!({"a": "x"})],
        );
        table(
            json!({"a": {"$alli": ["X", "y"]}}),
            &[json!({"a": ["x", "Y"]})],
            &[json!({"a": ["x"]})],
        );
        // Case folding applies to string literals only, not to operators inside $alli.
        table(
            json!({"a": {"$alli": [{"$eq": "X"}]}}),
            &[json!({"a": ["X"]})],
            &[json!({"a": ["x"]})],
        );
    }

    #[test]
    fn elem_match() {
        table(
            json!({"a": {"$elemMatch": {"$gt": 1}}}),
            &[json!({"a": [0, 2]})],
            &[json!({"a": [0, 1]}), json!({"a": 5}), json!({})],
        );
        table(
            json!({"a": {"$elemMatch": {"b": 1}}}),
            &[json!({"a": [{"b": 2}, {"b": 1}]})],
            &[json!({"a": [{"b": 2}]}), json!({"a": [1]})],
        );
        // Falsy elements are tested; null elements are skipped, as in GrowthBook.
        table(
            json!({"a": {"$elemMatch": {"$eq": 0}}}),
            &[json!({"a": [0]})],
            &[json!({"a": [1]})],
        );
        table(
            json!({"a": {"$elemMatch": {"$eq": false}}}),
            &[json!({"a": [false]})],
            &[],
        );
        table(
            json!({"a": {"$elemMatch": {"$eq": null}}}),
            &[],
            &[json!({"a": [null]})],
        );
        table(
            json!({"a": {"$elemMatch": {"$exists": false}}}),
            &[],
            &[json!({"a": [null, 1]})],
        );
        // An empty condition matches any non-null element.
        table(
            json!({"a": {"$elemMatch": {}}}),
            &[json!({"a": [null, 0]})],
            &[json!({"a": [null]}), json!({"a": []})],
        );
    }

    #[test]
    fn size() {
        table(
            json!({"a": {"$size": 2}}),
            &[json!({"a": [1, 2]})],
            &[json!({"a": [1]}), json!({"a": "ab"}), json!({})],
        );
        table(
            json!({"a": {"$size": {"$gte": 1}}}),
            &[json!({"a": [1]})],
            &[json!({"a": []})],
        );
    }

    #[test]
    fn regex() {
        table(
            json!({"a": {"$regex": "^ab"}}),
            &[json!({"a": "abc"})],
            &[json!({"a": "Abc"}), json!({"a": "cab"})],
        );
        table(
            json!({"a": {"$regexi": "^ab"}}),
            &[json!({"a": "ABc"})],
            &[json!({"a": "cab"})],
        );
        // The value is converted with String(): numbers, null (missing), arrays.
        table(
            json!({"a": {"$regex": "^12"}}),
            &[json!({"a": 123}), json!({"a": [12, 3]})],
            &[json!({"a": 312})],
        );
        table(
            json!({"a": {"$regex": "^null$"}}),
            &[json!({})],
            &[json!({"a": "x"})],
        );
        // JavaScript's \d and \w are ASCII.
        table(
            json!({"a": {"$regex": "^\\d+$"}}),
            &[json!({"a": "123"})],
            &[json!({"a": "١٢٣"})],
        );
        table(
            json!({"a": {"$regex": "\\bcat\\b"}}),
            &[json!({"a": "a cat!"})],
            &[json!({"a": "cats"})],
        );
        table(
            json!({"a": {"$regex": "a/b"}}),
            &[json!({"a": "a/b"})],
            &[json!({"a": "ab"})],
        );
        // Braces that are not a counted repetition are literals, as in JavaScript.
        table(
            json!({"a": {"$regex": "^{x}a{,2}$"}}),
            &[json!({"a": "{x}a{,2}"})],
            &[json!({"a": "xaa"})],
        );
        table(
            json!({"a": {"$regex": "^a{2}$"}}),
            &[json!({"a": "aa"})],
            &[json!({"a": "a{2}"})],
        );
        table(
            json!({"a": {"$notRegex": "^ab"}}),
            &[json!({"a": "Abc"}), json!({})],
            &[json!({"a": "abc"})],
        );
        table(
            json!({"a": {"$notRegexi": "^ab"}}),
            &[json!({"a": "cab"})],
            &[json!({"a": "ABc"})],
        );
    }

    #[test]
    fn not_operator() {
        table(
            json!({"a": {"$not": {"$in": [1]}}}),
            &[json!({"a": 2}), json!({})],
            &[json!({"a": 1})],
        );
        table(
            json!({"a": {"$not": "x"}}),
            &[json!({"a": "y"})],
            &[json!({"a": "x"})],
        );
        table(
            json!({"$not": {"a": 1}}),
            &[json!({"a": 2})],
            &[json!({"a": 1})],
        );
    }

    #[test]
    fn logical_operators() {
        table(json!({"$or": []}), &[json!({})], &[]);
        table(json!({"$and": []}), &[json!({})], &[]);
        // GrowthBook's $nor is "not $or", and an empty $or passes: an empty $nor fails.
        table(json!({"$nor": []}), &[], &[json!({})]);
        table(
            json!({"$or": [{"a": 1}, {"b": 1}]}),
            &[json!({"a": 1}), json!({"b": 1})],
            &[json!({"a": 2})],
        );
        table(
            json!({"$and": [{"a": 1}, {"b": 1}]}),
            &[json!({"a": 1, "b": 1})],
            &[json!({"a": 1})],
        );
        table(
            json!({"$nor": [{"a": 1}, {"b": 1}]}),
            &[json!({"a": 2})],
            &[json!({"b": 1})],
        );
    }

    #[test]
    fn versions() {
        table(
            json!({"v": {"$vgt": "1.2.3"}}),
            &[json!({"v": "1.10.0"}), json!({"v": "v2.0.0"})],
            &[json!({"v": "1.2.3"}), json!({"v": "1.2.3-rc.1"}), json!({})],
        );
        table(
            json!({"v": {"$vgte": "1.2.3"}}),
            &[json!({"v": "1.2.3+b"})],
            &[json!({"v": "1.2.2"})],
        );
        table(
            json!({"v": {"$vlt": "2"}}),
            &[json!({"v": 1}), json!({}), json!({"v": ""})],
            &[json!({"v": 3})],
        );
        table(
            json!({"v": {"$vlte": "1.0.0"}}),
            &[json!({"v": "1.0.0"}), json!({"v": "1.0.0-beta"})],
            &[json!({"v": "1.0.1"})],
        );
        table(
            json!({"v": {"$veq": "1.2.3"}}),
            &[json!({"v": "v1.2.3"}), json!({"v": "1-2-3"})],
            &[json!({"v": "1.2.4"})],
        );
        table(
            json!({"v": {"$vne": "1.2.3"}}),
            &[json!({"v": "1.2.4"})],
            &[json!({"v": "1.2.3"})],
        );
    }

    #[test]
    fn paths() {
        table(
            json!({"a.b.c": 1}),
            &[json!({"a": {"b": {"c": 1}}})],
            &[json!({"a": {"b": 1}}), json!({"a": null})],
        );
        table(
            json!({"a.1": "y"}),
            &[json!({"a": ["x", "y"]})],
            &[json!({"a": ["y"]}), json!({"a": {"0": "y"}})],
        );
        table(json!({"a.1": "y"}), &[json!({"a": {"1": "y"}})], &[]);
        table(
            json!({"a.length": 2}),
            &[json!({"a": [1, 2]})],
            &[json!({"a": "ab"}), json!({"a": [1]})],
        );
        table(json!({"a.length.x": null}), &[json!({"a": [1]})], &[]);
        table(
            json!({"a..b": 1}),
            &[json!({"a": {"": {"b": 1}}})],
            &[json!({"a": {"b": 1}})],
        );
        table(
            json!({"$groups": "x"}),
            &[json!({"$groups": "x"})],
            &[json!({"groups": "x"})],
        );
    }

    #[test]
    fn unbound_groups_are_empty() {
        table(
            json!({"a": {"$inGroup": "g"}}),
            &[],
            &[json!({"a": 1}), json!({})],
        );
        table(
            json!({"a": {"$notInGroup": "g"}}),
            &[json!({"a": 1}), json!({})],
            &[],
        );
    }
}
