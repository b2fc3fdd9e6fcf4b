//! A flat evaluation plan for the most common shape of condition: every key a top-level
//! attribute (`{"country": {"$in": ["DE", "FR"]}, "plan": "pro"}`).
//!
//! The tree in `ast` stays the definition; the plan is derived from it when a condition is parsed
//! or bound and evaluates identically, with less indirection: no logical operators to dispatch on,
//! no path to walk, and a lone `$in`/`$nin` unwrapped from its operator object.

use serde_json::{Map, Value};

use super::ast::{Clause, CondNode, Op, StrLit, ValueTest};
use super::groups::InList;
use super::js;
use super::short::ShortStr;

/// How a condition is evaluated.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// Walk the tree.
    Tree,
    /// Every clause tests one top-level attribute; all must pass.
    Attrs(Box<[AttrTest]>),
}

/// A test of one top-level attribute.
#[derive(Debug, Clone)]
pub(crate) struct AttrTest {
    key: ShortStr,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    /// `{"$in": [...]}`.
    In(InList),
    /// `{"$nin": [...]}`.
    Nin(InList),
    /// A string literal (`{"plan": "pro"}`).
    Str(StrLit),
    /// Any other lone operator (`{"$regex": "^D"}`).
    Op(Op),
    /// Anything else.
    Value(ValueTest),
}

impl Plan {
    pub(crate) fn new(root: &CondNode) -> Self {
        let mut tests = Vec::with_capacity(root.clauses.len());
        for clause in &root.clauses {
            let Clause::Path { path, test } = clause else {
                return Self::Tree;
            };
            let [segment] = &*path.segments else {
                return Self::Tree;
            };
            let test = match test {
                ValueTest::Ops(ops) => match &**ops {
                    [Op::In(list)] => Test::In(list.clone()),
                    [Op::Nin(list)] => Test::Nin(list.clone()),
                    [op] => Test::Op(op.clone()),
                    _ => Test::Value(test.clone()),
                },
                ValueTest::StrEq(lit) => Test::Str(lit.clone()),
                _ => Test::Value(test.clone()),
            };
            tests.push(AttrTest {
                key: segment.key.clone(),
                test,
            });
        }
        Self::Attrs(tests.into_boxed_slice())
    }
}

impl AttrTest {
    /// The clause `{key: test}` on an attributes object.
    #[inline]
    pub(crate) fn eval(&self, attrs: &Map<String, Value>) -> bool {
        // GrowthBook's `getPath`: a missing attribute is null.
        let v = self.key.get(attrs).unwrap_or(&js::NULL);
        match &self.test {
            Test::In(list) => match v {
                Value::String(s) => list.contains_str(s),
                _ => list.is_in(v, false),
            },
            Test::Nin(list) => match v {
                Value::String(s) => !list.contains_str(s),
                _ => !list.is_in(v, false),
            },
            Test::Str(lit) => match v {
                Value::String(s) => lit.eq_str(s),
                _ => lit.matches(v, false),
            },
            Test::Op(op) => op.eval(v),
            Test::Value(test) => test.eval(v, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse_condition;
    use super::*;
    use serde_json::json;

    fn plan_eval(plan: &Plan, attrs: &Value) -> Option<bool> {
        match (plan, attrs) {
            (Plan::Attrs(tests), Value::Object(map)) => Some(tests.iter().all(|t| t.eval(map))),
            _ => None,
        }
    }

    /// The plan decides exactly as the tree for every condition and attribute value here.
    #[test]
    fn plan_agrees_with_tree() {
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-0.0),
            json!(1),
            json!(1.5),
            json!(""),
            json!("DE"),
            json!("de"),
            json!("FR"),
            json!("US"),
            json!("D"),
            json!("DEU"),
            json!("1"),
            json!("pro"),
            json!("Pro"),
            json!("true"),
            json!("null"),
            json!("[object Object]"),
            json!("a-string-longer-than-fifteen-bytes"),
            json!([]),
            json!(["DE"]),
            json!(["US", "FR"]),
            json!([1, "x"]),
            json!([["DE"]]),
            json!({}),
            json!({"DE": 1}),
        ];
        let operands = [
            json!({"$in": ["DE", "FR"]}),
            json!({"$in": ["DE", "FR", "AT"]}),
            json!({"$in": []}),
            json!({"$in": ["DE", 1, null, true, "a-string-longer-than-fifteen-bytes"]}),
            json!({"$in": ["", "1", "null"]}),
            json!({"$nin": ["DE", "FR"]}),
            json!({"$nin": []}),
            json!({"$nin": [0, false]}),
            json!({"$ini": ["de"]}),
            json!({"$in": ["DE"], "$nin": ["FR"]}),
            json!({"$eq": "DE"}),
            json!({"$ne": "DE"}),
            json!({"$exists": false}),
            json!("DE"),
            json!("pro"),
            json!("1"),
            json!(""),
            json!("null"),
            json!("true"),
            json!("[object Object]"),
            json!("a-string-longer-than-fifteen-bytes"),
            json!(1),
            json!(true),
            json!(null),
            json!(["DE"]),
        ];
        for operand in &operands {
            for key in ["country", "a", "", "length", "a-long-attribute-name"] {
                let cond = json!({ key: operand });
                let (root, _) = parse_condition(&cond).unwrap();
                let plan = Plan::new(&root);
                assert!(matches!(plan, Plan::Attrs(_)), "{cond} has a flat plan");
                for v in &values {
                    for attrs in [
                        json!({ key: v }),
                        json!({ key: v, "other": "DE", "plan": "pro" }),
                        json!({ "other": v }),
                        json!({}),
                    ] {
                        assert_eq!(
                            plan_eval(&plan, &attrs),
                            Some(root.eval(&attrs)),
                            "{cond} on {attrs}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn several_attributes_must_all_pass() {
        let cond =
            json!({"country": {"$in": ["DE", "FR"]}, "plan": "pro", "v": {"$vgte": "2.0.0"}});
        let (root, _) = parse_condition(&cond).unwrap();
        let plan = Plan::new(&root);
        let yes = json!({"country": "FR", "plan": "pro", "v": "2.3.1"});
        assert_eq!(plan_eval(&plan, &yes), Some(true));
        for no in [
            json!({"country": "US", "plan": "pro", "v": "2.3.1"}),
            json!({"country": "FR", "plan": "free", "v": "2.3.1"}),
            json!({"country": "FR", "plan": "pro", "v": "1.9"}),
            json!({"country": "FR", "plan": "pro"}),
        ] {
            assert_eq!(plan_eval(&plan, &no), Some(false), "{no}");
        }
    }

    #[test]
    fn nested_paths_and_logic_walk_the_tree() {
        for cond in [
            json!({"a.b": 1}),
            json!({"$or": [{"a": 1}]}),
            json!({"a": 1, "$not": {"b": 1}}),
        ] {
            let (root, _) = parse_condition(&cond).unwrap();
            assert!(matches!(Plan::new(&root), Plan::Tree), "{cond}");
        }
        let (root, _) = parse_condition(&json!({})).unwrap();
        assert!(matches!(Plan::new(&root), Plan::Attrs(ref t) if t.is_empty()));
    }
}
