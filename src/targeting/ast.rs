//! The parsed form of a condition: what `parse` builds and `eval` walks.

use std::sync::Arc;

use serde_json::Value;

use super::groups::InList;
use super::js;
use super::jsregex::JsRegex;
use super::short::{self, ShortStr};

/// A condition object: every clause must pass (GrowthBook's `evalCondition`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CondNode {
    pub(crate) clauses: Box<[Clause]>,
}

/// One key of a condition object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Clause {
    /// `$or`: any passes; an empty list passes.
    Or(Box<[CondNode]>),
    /// `$nor`: not `$or` (so an empty list fails, as in GrowthBook).
    Nor(Box<[CondNode]>),
    /// `$and`: all pass.
    And(Box<[CondNode]>),
    /// `$not`: the condition fails.
    Not(Box<CondNode>),
    /// An attribute path and the test its value must pass.
    Path { path: AttrPath, test: ValueTest },
}

/// A dotted attribute path, split once.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AttrPath {
    pub(crate) segments: Box<[Segment]>,
}

/// One part of a dotted path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Segment {
    pub(crate) key: ShortStr,
    /// The array index this key names (JavaScript's `"2" in array`), if canonical.
    pub(crate) index: Option<usize>,
}

/// A test on one value (GrowthBook's `evalConditionValue`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueTest {
    /// A string condition: `String(value) === s`.
    StrEq(StrLit),
    /// A number condition: `Number(value) === n`.
    NumEq(f64),
    /// A boolean condition: `value !== null && !!value === b`.
    BoolEq(bool),
    /// A `null` condition: `value === null`.
    IsNull,
    /// An array, or an object that is not all operators: JSON equality.
    DeepEq(Box<Value>),
    /// An operator object: every operator must pass.
    Ops(Box<[Op]>),
}

/// A string literal with its precomputed comparison forms.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StrLit {
    pub(crate) s: Box<str>,
    /// The number whose JavaScript string form is exactly `s`, if any.
    pub(crate) as_num: Option<f64>,
    /// `s` lowercased, for `$alli`.
    pub(crate) lower: Box<str>,
    /// `s` packed, when short (see `short`).
    pub(crate) packed: Option<u128>,
}

impl StrLit {
    pub(crate) fn new(s: &str) -> Self {
        let x = js::string_to_number(s);
        let as_num = (x.is_finite() && js::number_to_string(x) == s).then_some(x);
        Self {
            s: s.into(),
            as_num,
            lower: js::lowercase(s).into_boxed_str(),
            packed: short::pack(s),
        }
    }
}

/// A primitive operand of `$eq`, `$ne`, `$lt`, `$lte`, `$gt`, `$gte`.
#[derive(Debug, Clone)]
pub(crate) enum Prim {
    /// A string and its `Number(s)` (often NaN).
    Str {
        s: Box<str>,
        num: f64,
    },
    Num(f64),
    Bool(bool),
    Null,
}

impl PartialEq for Prim {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            // `num` follows from `s` (and may be NaN, which never equals itself).
            (Self::Str { s: a, .. }, Self::Str { s: b, .. }) => a == b,
            (Self::Num(a), Self::Num(b)) => a == b,
            (Self::Bool(a), Self::Bool(b)) => a == b,
            (Self::Null, Self::Null) => true,
            _ => false,
        }
    }
}

/// Relational operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rel {
    Lt,
    Lte,
    Gt,
    Gte,
}

/// Version operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// `$type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsType {
    String,
    Number,
    Boolean,
    Object,
    Array,
    Null,
}

impl JsType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Object => "object",
            Self::Array => "array",
            Self::Null => "null",
        }
    }
}

/// `$elemMatch`'s operand.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ElemMatch {
    /// An operator object, applied to each element.
    Value(ValueTest),
    /// A condition, evaluated with each element as the attributes.
    Cond(CondNode),
}

/// A saved group reference; `set` is `None` until bound (an unbound group is empty).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupRef {
    pub(crate) id: Box<str>,
    pub(crate) pointer: Box<str>,
    pub(crate) set: Option<Arc<InList>>,
}

/// One operator of an operator object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Eq(Prim),
    Ne(Prim),
    Rel(Rel, Prim),
    Exists(bool),
    In(InList),
    Nin(InList),
    Ini(InList),
    Nini(InList),
    All(Box<[ValueTest]>),
    Alli(Box<[ValueTest]>),
    ElemMatch(Box<ElemMatch>),
    Size(Box<ValueTest>),
    Type(JsType),
    Regex(JsRegex),
    NotRegex(JsRegex),
    Not(Box<ValueTest>),
    Version(VersionOp, Box<str>),
    InGroup(GroupRef),
    NotInGroup(GroupRef),
}
