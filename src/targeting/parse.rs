//! Parsing a JSON condition into the precompiled tree that `eval` walks.

use serde_json::{Map, Value};

use super::ast::{
    AttrPath, Clause, CondNode, ElemMatch, GroupRef, JsType, Op, Prim, Rel, Segment, StrLit,
    ValueTest, VersionOp,
};
use super::error::{ConditionError, show};
use super::groups::InList;
use super::jsregex::JsRegex;
use super::short::ShortStr;
use super::{js, version};

/// How deeply conditions and operators may nest.
pub(crate) const MAX_DEPTH: usize = 64;

/// Operators that apply to an attribute's value.
const VALUE_OPERATORS: &[&str] = &[
    "$eq",
    "$ne",
    "$lt",
    "$lte",
    "$gt",
    "$gte",
    "$in",
    "$nin",
    "$ini",
    "$nini",
    "$all",
    "$alli",
    "$elemMatch",
    "$size",
    "$exists",
    "$type",
    "$regex",
    "$regexi",
    "$notRegex",
    "$notRegexi",
    "$veq",
    "$vne",
    "$vgt",
    "$vgte",
    "$vlt",
    "$vlte",
    "$inGroup",
    "$notInGroup",
];

/// A position in the condition, rendered into a JSON-pointer-like path only for errors.
#[derive(Clone, Copy)]
struct Ptr<'a> {
    parent: Option<&'a Ptr<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> Ptr<'a> {
    const ROOT: Ptr<'static> = Ptr {
        parent: None,
        seg: Seg::Root,
    };

    fn key(&'a self, key: &'a str) -> Ptr<'a> {
        Ptr {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }

    fn index(&'a self, i: usize) -> Ptr<'a> {
        Ptr {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }

    fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            segs.push(p.seg);
            cur = p.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Key(k) => {
                    out.push('/');
                    out.push_str(&k.replace('~', "~0").replace('/', "~1"));
                }
                Seg::Index(i) => {
                    out.push('/');
                    out.push_str(&i.to_string());
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

/// What parsing produces besides the tree.
pub(crate) struct ParseOutput {
    /// Saved group ids referenced, distinct, in order of appearance.
    pub(crate) groups: Vec<Box<str>>,
    /// What the condition's regexes may still compile to (bytes, see
    /// [`super::jsregex::REGEX_BUDGET`]).
    regex_budget: usize,
}

impl Default for ParseOutput {
    fn default() -> Self {
        ParseOutput {
            groups: Vec::new(),
            regex_budget: super::jsregex::REGEX_BUDGET,
        }
    }
}

/// Parses a top-level condition.
/// The deepest JSON nesting a valid condition can have: every condition level is at most an
/// operator object inside a field object (or an element inside an array), so twice the
/// condition depth, with room for an operand's own array.
const MAX_JSON_NESTING: usize = 2 * MAX_DEPTH + 4;

/// Refuses JSON nested deeper than any valid condition, walking it without recursion: run before
/// anything recursive touches the value (cloning it included), so that 10 000 nested `$not`s are
/// a [`ConditionError::TooDeep`], not a stack overflow.
pub(crate) fn check_nesting(v: &Value) -> Result<(), ConditionError> {
    enum Children<'a> {
        Object(serde_json::map::Iter<'a>),
        Array(std::iter::Enumerate<std::slice::Iter<'a, Value>>),
    }
    fn children(v: &Value) -> Option<Children<'_>> {
        match v {
            Value::Object(m) => Some(Children::Object(m.iter())),
            Value::Array(a) => Some(Children::Array(a.iter().enumerate())),
            _ => None,
        }
    }
    let Some(root) = children(v) else {
        return Ok(());
    };
    let mut stack: Vec<(String, Children<'_>)> = vec![(String::new(), root)];
    while let Some((_, top)) = stack.last_mut() {
        let next = match top {
            Children::Object(it) => it
                .next()
                .map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v)),
            Children::Array(it) => it.next().map(|(i, v)| (i.to_string(), v)),
        };
        let Some((key, child)) = next else {
            stack.pop();
            continue;
        };
        if let Some(grandchildren) = children(child) {
            if stack.len() >= MAX_JSON_NESTING {
                let mut path: String = stack
                    .iter()
                    .skip(1)
                    .flat_map(|(k, _)| ["/", k.as_str()])
                    .collect();
                path.push('/');
                path.push_str(&key);
                return Err(ConditionError::TooDeep {
                    path,
                    limit: MAX_DEPTH,
                });
            }
            stack.push((key, grandchildren));
        }
    }
    Ok(())
}

pub(crate) fn parse_condition(v: &Value) -> Result<(CondNode, ParseOutput), ConditionError> {
    let mut out = ParseOutput::default();
    let node = parse_cond(v, &Ptr::ROOT, 0, &mut out)?;
    Ok((node, out))
}

fn check_depth(depth: usize, ptr: &Ptr<'_>) -> Result<(), ConditionError> {
    if depth > MAX_DEPTH {
        return Err(ConditionError::TooDeep {
            path: ptr.render(),
            limit: MAX_DEPTH,
        });
    }
    Ok(())
}

fn invalid(ptr: &Ptr<'_>, operator: &str, expected: &'static str, got: &Value) -> ConditionError {
    ConditionError::InvalidOperand {
        path: ptr.render(),
        operator: operator.to_owned(),
        expected,
        got: show(got),
    }
}

fn parse_cond(
    v: &Value,
    ptr: &Ptr<'_>,
    depth: usize,
    out: &mut ParseOutput,
) -> Result<CondNode, ConditionError> {
    check_depth(depth, ptr)?;
    let Value::Object(map) = v else {
        return Err(ConditionError::ExpectedObject {
            path: ptr.render(),
            got: show(v),
        });
    };
    let mut clauses = Vec::with_capacity(map.len());
    for (key, val) in map {
        let here = ptr.key(key);
        let clause = match key.as_str() {
            "$or" | "$nor" | "$and" => {
                let Value::Array(items) = val else {
                    return Err(invalid(&here, key, "an array of conditions", val));
                };
                let list = items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| parse_cond(c, &here.index(i), depth + 1, out))
                    .collect::<Result<Box<[_]>, _>>()?;
                match key.as_str() {
                    "$or" => Clause::Or(list),
                    "$nor" => Clause::Nor(list),
                    _ => Clause::And(list),
                }
            }
            "$not" => Clause::Not(Box::new(parse_cond(val, &here, depth + 1, out)?)),
            // Newer GrowthBook SDKs' typed saved-group reference: unsupported, and reading it as an
            // attribute name (as older SDKs do) would silently match nobody.
            "$savedGroup" => {
                return Err(ConditionError::UnknownOperator {
                    path: here.render(),
                    operator: key.clone(),
                });
            }
            op if VALUE_OPERATORS.contains(&op) => {
                return Err(ConditionError::OperatorWithoutAttribute {
                    path: here.render(),
                    operator: op.to_owned(),
                });
            }
            // Any other key, including one starting with `$`, is an attribute path (GrowthBook).
            _ => Clause::Path {
                path: parse_path(key),
                test: parse_value(val, &here, depth + 1, out)?,
            },
        };
        clauses.push(clause);
    }
    Ok(CondNode {
        clauses: clauses.into_boxed_slice(),
    })
}

fn parse_path(key: &str) -> AttrPath {
    AttrPath {
        segments: key
            .split('.')
            .map(|k| Segment {
                key: ShortStr::new(k),
                index: array_index(k),
            })
            .collect(),
    }
}

/// A canonical JavaScript array index: `0`, or digits without a leading zero, below 2^32 - 1.
fn array_index(k: &str) -> Option<usize> {
    let canonical =
        k == "0" || (!k.is_empty() && !k.starts_with('0') && k.bytes().all(|b| b.is_ascii_digit()));
    if !canonical {
        return None;
    }
    k.parse::<u32>()
        .ok()
        .filter(|&i| i < u32::MAX)
        .and_then(|i| usize::try_from(i).ok())
}

/// Whether GrowthBook treats an object as operators: non-empty, every key starting with `$`.
fn is_operator_object(map: &Map<String, Value>) -> bool {
    !map.is_empty() && map.keys().all(|k| k.starts_with('$'))
}

fn parse_value(
    v: &Value,
    ptr: &Ptr<'_>,
    depth: usize,
    out: &mut ParseOutput,
) -> Result<ValueTest, ConditionError> {
    check_depth(depth, ptr)?;
    Ok(match v {
        Value::String(s) => ValueTest::StrEq(StrLit::new(s)),
        Value::Number(n) => ValueTest::NumEq(js::num(n)),
        Value::Bool(b) => ValueTest::BoolEq(*b),
        Value::Null => ValueTest::IsNull,
        Value::Object(map) if is_operator_object(map) => {
            let ops = map
                .iter()
                .map(|(op, operand)| parse_op(op, operand, &ptr.key(op), depth + 1, out))
                .collect::<Result<Box<[_]>, _>>()?;
            ValueTest::Ops(ops)
        }
        Value::Array(_) | Value::Object(_) => {
            // Structural equality recurses through the literal: keep it within the limit too.
            if nesting(v, MAX_DEPTH.saturating_sub(depth)) > MAX_DEPTH.saturating_sub(depth) {
                return Err(ConditionError::TooDeep {
                    path: ptr.render(),
                    limit: MAX_DEPTH,
                });
            }
            ValueTest::DeepEq(Box::new(v.clone()))
        }
    })
}

/// How deeply `v` nests arrays and objects, counting no further than `limit + 1`.
fn nesting(v: &Value, limit: usize) -> usize {
    let deepest = |children: &mut dyn Iterator<Item = &Value>| {
        if limit == 0 {
            return 1;
        }
        1 + children.map(|c| nesting(c, limit - 1)).max().unwrap_or(0)
    };
    match v {
        Value::Array(items) => deepest(&mut items.iter()),
        Value::Object(map) => deepest(&mut map.values()),
        _ => 0,
    }
}

fn parse_prim(op: &str, v: &Value, ptr: &Ptr<'_>) -> Result<Prim, ConditionError> {
    Ok(match v {
        Value::String(s) => Prim::Str {
            s: s.as_str().into(),
            num: js::string_to_number(s),
        },
        Value::Number(n) => Prim::Num(js::num(n)),
        Value::Bool(b) => Prim::Bool(*b),
        Value::Null => Prim::Null,
        Value::Array(_) | Value::Object(_) => {
            return Err(invalid(ptr, op, "a string, number, boolean or null", v));
        }
    })
}

fn parse_list(
    op: &str,
    v: &Value,
    ptr: &Ptr<'_>,
    lowercase: bool,
) -> Result<InList, ConditionError> {
    let Value::Array(items) = v else {
        return Err(invalid(ptr, op, "an array", v));
    };
    for (i, item) in items.iter().enumerate() {
        if item.is_array() || item.is_object() {
            // JavaScript's `includes` compares arrays and objects by identity: never a match.
            return Err(invalid(
                &ptr.index(i),
                op,
                "a string, number, boolean or null",
                item,
            ));
        }
    }
    Ok(InList::new(items, lowercase))
}

fn parse_op(
    op: &str,
    v: &Value,
    ptr: &Ptr<'_>,
    depth: usize,
    out: &mut ParseOutput,
) -> Result<Op, ConditionError> {
    check_depth(depth, ptr)?;
    Ok(match op {
        "$eq" => Op::Eq(parse_prim(op, v, ptr)?),
        "$ne" => Op::Ne(parse_prim(op, v, ptr)?),
        "$lt" => Op::Rel(Rel::Lt, parse_prim(op, v, ptr)?),
        "$lte" => Op::Rel(Rel::Lte, parse_prim(op, v, ptr)?),
        "$gt" => Op::Rel(Rel::Gt, parse_prim(op, v, ptr)?),
        "$gte" => Op::Rel(Rel::Gte, parse_prim(op, v, ptr)?),
        "$exists" => match v {
            Value::Bool(b) => Op::Exists(*b),
            Value::Number(_) => Op::Exists(js::truthy(v)),
            _ => return Err(invalid(ptr, op, "a boolean", v)),
        },
        "$in" => Op::In(parse_list(op, v, ptr, false)?),
        "$nin" => Op::Nin(parse_list(op, v, ptr, false)?),
        "$ini" => Op::Ini(parse_list(op, v, ptr, true)?),
        "$nini" => Op::Nini(parse_list(op, v, ptr, true)?),
        "$all" | "$alli" => {
            let Value::Array(items) = v else {
                return Err(invalid(ptr, op, "an array", v));
            };
            let tests = items
                .iter()
                .enumerate()
                .map(|(i, c)| parse_value(c, &ptr.index(i), depth + 1, out))
                .collect::<Result<Box<[_]>, _>>()?;
            if op == "$all" {
                Op::All(tests)
            } else {
                Op::Alli(tests)
            }
        }
        "$elemMatch" => match v {
            Value::Object(map) if is_operator_object(map) => Op::ElemMatch(Box::new(
                ElemMatch::Value(parse_value(v, ptr, depth + 1, out)?),
            )),
            Value::Object(_) => Op::ElemMatch(Box::new(ElemMatch::Cond(parse_cond(
                v,
                ptr,
                depth + 1,
                out,
            )?))),
            _ => return Err(invalid(ptr, op, "an object", v)),
        },
        "$size" => match v {
            Value::Number(n) => {
                let x = js::num(n);
                if x < 0.0 || x.fract() != 0.0 {
                    return Err(invalid(
                        ptr,
                        op,
                        "a non-negative integer or an operator condition",
                        v,
                    ));
                }
                Op::Size(Box::new(ValueTest::NumEq(x)))
            }
            Value::Object(map) if is_operator_object(map) => {
                Op::Size(Box::new(parse_value(v, ptr, depth + 1, out)?))
            }
            _ => {
                return Err(invalid(
                    ptr,
                    op,
                    "a non-negative integer or an operator condition",
                    v,
                ));
            }
        },
        "$type" => {
            let ty = match v.as_str() {
                Some("string") => JsType::String,
                Some("number") => JsType::Number,
                Some("boolean") => JsType::Boolean,
                Some("object") => JsType::Object,
                Some("array") => JsType::Array,
                Some("null") => JsType::Null,
                _ => {
                    return Err(invalid(
                        ptr,
                        op,
                        "one of \"string\", \"number\", \"boolean\", \"object\", \"array\", \"null\"",
                        v,
                    ));
                }
            };
            Op::Type(ty)
        }
        "$regex" | "$regexi" | "$notRegex" | "$notRegexi" => {
            let Value::String(pattern) = v else {
                return Err(invalid(ptr, op, "a regular expression string", v));
            };
            let re = JsRegex::within(pattern, op.ends_with('i'), &mut out.regex_budget).map_err(
                |reason| ConditionError::InvalidRegex {
                    path: ptr.render(),
                    pattern: pattern.clone(),
                    reason,
                },
            )?;
            if op.starts_with("$not") {
                Op::NotRegex(re)
            } else {
                Op::Regex(re)
            }
        }
        "$not" => Op::Not(Box::new(parse_value(v, ptr, depth + 1, out)?)),
        "$veq" | "$vne" | "$vgt" | "$vgte" | "$vlt" | "$vlte" => {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => js::number_to_string(js::num(n)),
                _ => return Err(invalid(ptr, op, "a version string", v)),
            };
            version::validate(&text).map_err(|reason| ConditionError::InvalidVersion {
                path: ptr.render(),
                got: show(v),
                reason,
            })?;
            let vop = match op {
                "$veq" => VersionOp::Eq,
                "$vne" => VersionOp::Ne,
                "$vgt" => VersionOp::Gt,
                "$vgte" => VersionOp::Gte,
                "$vlt" => VersionOp::Lt,
                _ => VersionOp::Lte,
            };
            Op::Version(vop, version::padded(&text).into_boxed_str())
        }
        "$inGroup" | "$notInGroup" => {
            let Value::String(id) = v else {
                return Err(invalid(ptr, op, "a saved group id string", v));
            };
            if !out.groups.iter().any(|g| **g == **id) {
                out.groups.push(id.as_str().into());
            }
            let group = GroupRef {
                id: id.as_str().into(),
                pointer: ptr.render().into_boxed_str(),
                set: None,
            };
            if op == "$inGroup" {
                Op::InGroup(group)
            } else {
                Op::NotInGroup(group)
            }
        }
        _ => {
            return Err(ConditionError::UnknownOperator {
                path: ptr.render(),
                operator: op.to_owned(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> ConditionError {
        parse_condition(&v).map(|_| ()).unwrap_err()
    }

    #[test]
    fn not_an_object() {
        let e = err(json!([1]));
        assert_eq!(
            e,
            ConditionError::ExpectedObject {
                path: "/".into(),
                got: "[1]".into()
            }
        );
        assert_eq!(e.to_string(), "condition at /: expected an object, got [1]");
        assert_eq!(err(json!({"$or": [{}, 5]})).path(), "/$or/1");
        assert_eq!(err(json!({"$not": "x"})).path(), "/$not");
        assert_eq!(err(json!({"a": {"$elemMatch": 3}})).path(), "/a/$elemMatch");
    }

    #[test]
    fn unknown_operator() {
        let e = err(json!({"age": {"$gtt": 3}}));
        assert_eq!(
            e,
            ConditionError::UnknownOperator {
                path: "/age/$gtt".into(),
                operator: "$gtt".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "condition at /age/$gtt: unknown operator $gtt"
        );
        assert_eq!(
            err(json!({"$savedGroup": "grp"})),
            ConditionError::UnknownOperator {
                path: "/$savedGroup".into(),
                operator: "$savedGroup".into()
            }
        );
        // Logical operators do not apply to values (GrowthBook: unknown operator).
        assert_eq!(err(json!({"a": {"$or": [{"$eq": 1}]}})).path(), "/a/$or");
    }

    #[test]
    fn operator_without_attribute() {
        let e = err(json!({"$in": [1]}));
        assert_eq!(
            e,
            ConditionError::OperatorWithoutAttribute {
                path: "/$in".into(),
                operator: "$in".into()
            }
        );
        assert!(
            e.to_string()
                .starts_with("condition at /$in: operator $in applies to an attribute")
        );
    }

    #[test]
    fn invalid_operands() {
        let e = err(json!({"country": {"$in": "US"}}));
        assert_eq!(
            e.to_string(),
            r#"condition at /country/$in: expected an array, got "US""#
        );
        let cases = [
            (json!({"a": {"$nin": 1}}), "/a/$nin"),
            (json!({"a": {"$ini": {}}}), "/a/$ini"),
            (json!({"a": {"$nini": null}}), "/a/$nini"),
            (json!({"a": {"$in": [1, [2]]}}), "/a/$in/1"),
            (json!({"a": {"$all": "x"}}), "/a/$all"),
            (json!({"a": {"$alli": 1}}), "/a/$alli"),
            (json!({"a": {"$eq": [1]}}), "/a/$eq"),
            (json!({"a": {"$ne": {"b": 1}}}), "/a/$ne"),
            (json!({"a": {"$lt": []}}), "/a/$lt"),
            (json!({"a": {"$exists": "yes"}}), "/a/$exists"),
            (json!({"a": {"$size": "3"}}), "/a/$size"),
            (json!({"a": {"$size": -1}}), "/a/$size"),
            (json!({"a": {"$size": 1.5}}), "/a/$size"),
            (json!({"a": {"$size": {"b": 1}}}), "/a/$size"),
            (json!({"a": {"$type": "undefined"}}), "/a/$type"),
            (json!({"a": {"$regex": 5}}), "/a/$regex"),
            (json!({"a": {"$vgt": true}}), "/a/$vgt"),
            (json!({"a": {"$inGroup": 5}}), "/a/$inGroup"),
            (json!({"$or": {}}), "/$or"),
            (json!({"$and": 1}), "/$and"),
            (json!({"$nor": "x"}), "/$nor"),
            (json!({"a.b": {"$not": {"$in": 2}}}), "/a.b/$not/$in"),
            (json!({"a/b~c": {"$in": 2}}), "/a~1b~0c/$in"),
        ];
        for (cond, path) in cases {
            let e = err(cond.clone());
            assert!(
                matches!(e, ConditionError::InvalidOperand { .. }),
                "{cond}: {e:?}"
            );
            assert_eq!(e.path(), path, "{cond}");
        }
    }

    #[test]
    fn invalid_regex() {
        let e = err(json!({"name": {"$regex": "/???***[)"}}));
        let ConditionError::InvalidRegex {
            path,
            pattern,
            reason,
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!(path, "/name/$regex");
        assert_eq!(pattern, "/???***[)");
        assert!(!reason.is_empty() && !reason.contains('\n'), "{reason}");
        // Look-around and back-references are not supported by the regex crate.
        assert!(matches!(
            err(json!({"a": {"$regexi": "a(?=b)"}})),
            ConditionError::InvalidRegex { .. }
        ));
        assert!(matches!(
            err(json!({"a": {"$regex": "(a)\\1"}})),
            ConditionError::InvalidRegex { .. }
        ));
        assert_eq!(
            err(json!({"a": {"$notRegexi": "("}})).path(),
            "/a/$notRegexi"
        );
        assert!(matches!(
            err(json!({"a": {"$notRegex": 1}})),
            ConditionError::InvalidOperand { .. }
        ));
    }

    #[test]
    fn invalid_version() {
        for bad in [
            json!(""),
            json!("latest"),
            json!("v"),
            json!(-1),
            json!("1 .2"),
        ] {
            let e = err(json!({"v": {"$vgt": bad}}));
            assert!(
                matches!(e, ConditionError::InvalidVersion { .. }),
                "{bad}: {e:?}"
            );
            assert_eq!(e.path(), "/v/$vgt");
        }
        assert!(parse_condition(&json!({"v": {"$vlt": 2}})).is_ok());
    }

    #[test]
    fn too_deep() {
        let mut cond = json!({"a": 1});
        for _ in 0..100 {
            cond = json!({"$not": cond});
        }
        let e = err(cond);
        assert!(
            matches!(
                e,
                ConditionError::TooDeep {
                    limit: MAX_DEPTH,
                    ..
                }
            ),
            "{e:?}"
        );
        let mut value = json!({"$eq": 1});
        for _ in 0..100 {
            value = json!({"$not": value});
        }
        assert!(matches!(
            err(json!({"a": value})),
            ConditionError::TooDeep { .. }
        ));
        let mut literal = json!(1);
        for _ in 0..100 {
            literal = json!([literal]);
        }
        let e = err(json!({"a": literal}));
        assert!(matches!(e, ConditionError::TooDeep { .. }), "{e:?}");
        assert_eq!(e.path(), "/a");
        assert_eq!(nesting(&json!([[1], {"a": [2]}]), 10), 3);
        assert_eq!(nesting(&json!([[[[1]]]]), 2), 3);
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let e = err(json!({"a": {"$in": "x".repeat(500)}}));
        let ConditionError::InvalidOperand { got, .. } = &e else {
            panic!("{e:?}");
        };
        assert!(got.chars().count() <= 81 && got.ends_with('…'), "{got}");
    }

    #[test]
    fn paths_are_split_once_with_array_indices() {
        let (node, _) = parse_condition(&json!({"a.0.01.length": 1})).unwrap();
        let Clause::Path { path, .. } = &node.clauses[0] else {
            panic!("{node:?}");
        };
        let keys: Vec<_> = path
            .segments
            .iter()
            .map(|s| (s.key.as_str(), s.index))
            .collect();
        assert_eq!(
            keys,
            [("a", None), ("0", Some(0)), ("01", None), ("length", None)]
        );
        assert_eq!(array_index("4294967295"), None);
        assert_eq!(array_index("4294967294"), Some(4_294_967_294));
    }

    #[test]
    fn dollar_keys_that_are_not_operators_are_paths() {
        let (node, _) = parse_condition(&json!({"$groups": {"$elemMatch": {"$eq": "a"}}})).unwrap();
        assert!(matches!(&node.clauses[0], Clause::Path { .. }));
    }

    #[test]
    fn operator_objects_and_literals() {
        let (node, _) =
            parse_condition(&json!({"a": {"b": 1, "$c": 2}, "d": {}, "e": [1]})).unwrap();
        assert!(node.clauses.iter().all(|c| matches!(
            c,
            Clause::Path {
                test: ValueTest::DeepEq(_),
                ..
            }
        )));
    }

    #[test]
    fn string_literals_know_their_number() {
        assert_eq!(StrLit::new("10").as_num, Some(10.0));
        assert_eq!(StrLit::new("1.5").as_num, Some(1.5));
        assert_eq!(StrLit::new("1e+21").as_num, Some(1e21));
        assert_eq!(StrLit::new("010").as_num, None);
        assert_eq!(StrLit::new("1.0").as_num, None);
        assert_eq!(StrLit::new(" 1").as_num, None);
        assert_eq!(StrLit::new("-0").as_num, None);
        assert_eq!(StrLit::new("NaN").as_num, None);
        assert_eq!(&*StrLit::new("ÀB").lower, "àb");
    }

    #[test]
    fn group_ids_are_collected_once() {
        let (_, out) = parse_condition(&json!({
            "a": {"$inGroup": "g1"},
            "b": {"$notInGroup": "g2"},
            "$or": [{"c": {"$inGroup": "g1"}}]
        }))
        .unwrap();
        let ids: Vec<&str> = out.groups.iter().map(|g| &**g).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&"g1") && ids.contains(&"g2"));
    }
}
