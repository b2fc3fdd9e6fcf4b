//! Targeting conditions through the public API: GrowthBook conformance cases, serde, saved groups
//! and properties.
//!
//! `tests/data/conditions.json` is a subset of growthbook/growthbook
//! `packages/sdk-js/test/cases.json` (spec 0.8.0, section `evalCondition`), MIT licence,
//! © GrowthBook. Set `ABKIT_CONDITION_CASES` to a file of the same layout to run that instead.

// Test helpers outside #[test] functions may unwrap: a broken fixture should fail loudly.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use abkit::targeting::{Condition, ConditionError, SavedGroups};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use serde_json::{Value, json};

fn case_file() -> PathBuf {
    match std::env::var_os("ABKIT_CONDITION_CASES") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/conditions.json"),
    }
}

/// The cases of a file in GrowthBook's layout: either `cases.json` itself (an object with an
/// `evalCondition` array) or the bare array.
fn load_cases() -> Vec<Value> {
    let path = case_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap();
    match doc {
        Value::Array(cases) => cases,
        Value::Object(mut map) => match map.remove("evalCondition") {
            Some(Value::Array(cases)) => cases,
            other => panic!("{}: no evalCondition array ({other:?})", path.display()),
        },
        other => panic!("{}: unexpected document {other}", path.display()),
    }
}

/// Runs one `[name, condition, attributes, expected, savedGroups?]` case; `Err` describes a failure.
fn run_case(case: &Value) -> Result<(), String> {
    let Some(
        [
            Value::String(name),
            condition,
            attributes,
            Value::Bool(expected),
            rest @ ..,
        ],
    ) = case.as_array().map(Vec::as_slice)
    else {
        return Err(format!("malformed case {case}"));
    };
    let groups: SavedGroups = match rest.first() {
        Some(g) => serde_json::from_value(g.clone()).map_err(|e| format!("{name}: groups: {e}"))?,
        None => SavedGroups::new(),
    };
    let got = match Condition::parse(condition) {
        Ok(cond) => cond.bind_lenient(&groups).matches(attributes),
        // A condition abkit rejects counts as GrowthBook's `false`.
        Err(e) if !*expected => {
            let _rejected: ConditionError = e;
            false
        }
        Err(e) => return Err(format!("{name}: rejected ({e}) but expected true")),
    };
    if got == *expected {
        Ok(())
    } else {
        Err(format!("{name}: got {got}, expected {expected}"))
    }
}

#[test]
fn growthbook_conformance_cases() {
    let cases = load_cases();
    assert!(!cases.is_empty(), "no cases in {}", case_file().display());
    let mut ran = 0;
    let mut failures = Vec::new();
    for case in &cases {
        ran += 1;
        if let Err(failure) = run_case(case) {
            failures.push(failure);
        }
    }
    assert_eq!(ran, cases.len());
    assert!(
        failures.is_empty(),
        "{} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn rejected_conformance_cases_are_the_expected_ones() {
    // Only conditions GrowthBook itself evaluates to false (invalid regex, non-array operands)
    // are rejected at parse.
    let rejected: Vec<String> = load_cases()
        .iter()
        .filter(|c| Condition::parse(&c[1]).is_err())
        .map(|c| c[0].as_str().unwrap_or_default().to_owned())
        .collect();
    if std::env::var_os("ABKIT_CONDITION_CASES").is_none() {
        assert_eq!(
            rejected,
            [
                "$nin - not array",
                "$ini - not array",
                "$nini - not array",
                "$regex invalid - pass"
            ]
        );
    }
}

#[test]
fn parse_error_messages_point_at_the_offending_part() {
    let cases = [
        (
            json!({"country": {"$in": "US"}}),
            r#"condition at /country/$in: expected an array, got "US""#,
        ),
        (
            json!({"$or": [{"a": 1}, {"b": {"$bogus": 1}}]}),
            "condition at /$or/1/b/$bogus: unknown operator $bogus",
        ),
        (
            json!({"name": {"$regex": "(unclosed"}}),
            r#"condition at /name/$regex: invalid regex "(unclosed": unclosed group"#,
        ),
        (
            json!({"v": {"$vgt": "latest"}}),
            r#"condition at /v/$vgt: invalid version "latest": a version starts with a digit, optionally after a 'v'"#,
        ),
        (
            json!({"tags": {"$size": "3"}}),
            r#"condition at /tags/$size: expected a non-negative integer or an operator condition, got "3""#,
        ),
        (json!("x"), r#"condition at /: expected an object, got "x""#),
    ];
    for (cond, message) in cases {
        let err = Condition::parse(&cond).unwrap_err();
        assert_eq!(err.to_string(), message, "{cond}");
    }
}

#[test]
fn serde_round_trips_the_source() {
    let source = json!({"$or": [{"a.b": {"$vgte": "1.0.0"}}, {"c": {"$inGroup": "g"}}], "d": [1, {"e": null}]});
    let cond: Condition = serde_json::from_value(source.clone()).unwrap();
    assert_eq!(serde_json::to_value(&cond).unwrap(), source);
    let groups: SavedGroups = serde_json::from_value(json!({"g": [1]})).unwrap();
    // Binding does not change the serialized form.
    assert_eq!(
        serde_json::to_value(cond.bind(&groups).unwrap()).unwrap(),
        source
    );
    let err = serde_json::from_value::<Condition>(json!({"a": {"$in": 1}})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "condition at /a/$in: expected an array, got 1"
    );
}

#[test]
fn saved_groups_bind_strictly_or_leniently() {
    let cond = Condition::parse(
        &json!({"id": {"$inGroup": "staff"}, "country": {"$notInGroup": "blocked"}}),
    )
    .unwrap();
    let ids: Vec<&str> = cond.saved_groups().collect();
    assert_eq!(ids.len(), 2);
    let mut groups = SavedGroups::new();
    groups.insert("staff", vec![json!("ann"), json!(7)]);
    let err = cond.bind(&groups).unwrap_err();
    assert_eq!(err.path(), "/country/$notInGroup");
    assert!(matches!(err, ConditionError::UnknownGroup { ref group, .. } if group == "blocked"));

    let lenient = cond.bind_lenient(&groups);
    assert!(lenient.matches(&json!({"id": "ann", "country": "NZ"})));
    assert!(lenient.matches(&json!({"id": [1, 7], "country": "NZ"})));
    assert!(!lenient.matches(&json!({"id": "7", "country": "NZ"})));

    groups.insert("blocked", vec![json!("NZ")]);
    let strict = cond.bind(&groups).unwrap();
    assert!(!strict.matches(&json!({"id": "ann", "country": "NZ"})));
    assert!(strict.matches(&json!({"id": "ann", "country": "AU"})));
    // The unbound condition treats every group as empty.
    assert!(!cond.matches(&json!({"id": "ann", "country": "AU"})));
}

#[test]
fn conditions_are_shared_across_threads() {
    let cond = Condition::parse(&json!({"n": {"$gte": 10}})).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let cond = cond.clone();
            std::thread::spawn(move || {
                (0..100)
                    .filter(|i| cond.matches(&json!({"n": i + t})))
                    .count()
            })
        })
        .collect();
    let counts: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(counts, [90, 91, 92, 93]);
}

// ---- properties ----------------------------------------------------------------------------

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        rng_seed: RngSeed::Fixed(0x07a1_26e7),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const KEYS: &[&str] = &[
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
    "$and",
    "$or",
    "$nor",
    "$not",
    "$veq",
    "$vne",
    "$vgt",
    "$vgte",
    "$vlt",
    "$vlte",
    "$inGroup",
    "$notInGroup",
    "$bogus",
    "a",
    "b",
    "a.b",
    "tags",
    "tags.0",
    "tags.length",
    "v",
    "$groups",
    "",
];

const STRINGS: &[&str] = &[
    "",
    "a",
    "A",
    "US",
    "us",
    "10",
    "9",
    "1e3",
    " 5 ",
    "0x1f",
    "true",
    "null",
    "1.2.3",
    "v2.0.0-beta.1",
    "1.0.0+build",
    "^a",
    "(unclosed",
    "[object Object]",
    "Σ",
    "\u{1F600}",
    "g1",
    "string",
    "number",
    "array",
    "object",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-20i64..20).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        prop::sample::select(STRINGS).prop_map(Value::from),
        "[a-c0-9.\\-^$]{0,6}".prop_map(Value::from),
    ]
}

/// Any JSON, with object keys drawn mostly from operator names and attribute paths.
fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..5).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// Well-formed conditions covering every operator.
fn valid_condition() -> impl Strategy<Value = Value> {
    let prim = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-20i64..20).prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
    ];
    let version =
        prop::sample::select(&["1.2.3", "v2.0.0-beta.1", "1.0.0+build", "10", "0.9.9"][..]);
    let op_leaf = prop_oneof![
        prim.clone(),
        (
            prop::sample::select(&["$eq", "$ne", "$lt", "$lte", "$gt", "$gte"][..]),
            prim.clone()
        )
            .prop_map(|(op, v)| json!({ op: v })),
        (
            prop::sample::select(&["$in", "$nin", "$ini", "$nini"][..]),
            prop::collection::vec(prim.clone(), 0..12)
        )
            .prop_map(|(op, v)| json!({ op: v })),
        any::<bool>().prop_map(|b| json!({"$exists": b})),
        prop::sample::select(&["string", "number", "boolean", "object", "array", "null"][..])
            .prop_map(|t| json!({"$type": t})),
        (0u8..4).prop_map(|n| json!({"$size": n})),
        (
            prop::sample::select(&["$regex", "$regexi", "$notRegex", "$notRegexi"][..]),
            prop::sample::select(&["^a", "1$", "\\d", "U|s", ""][..])
        )
            .prop_map(|(op, p)| json!({ op: p })),
        (
            prop::sample::select(&["$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte"][..]),
            version
        )
            .prop_map(|(op, v)| json!({ op: v })),
        (
            prop::sample::select(&["$inGroup", "$notInGroup"][..]),
            prop::sample::select(&["g1", "g2"][..])
        )
            .prop_map(|(op, g)| json!({ op: g })),
    ];
    let path = prop::sample::select(&["a", "b", "a.b", "tags", "tags.0", "tags.length", "v"][..]);
    let value_test = op_leaf.prop_recursive(3, 24, 3, move |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| json!({"$not": t})),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|ts| json!({"$all": ts})),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|ts| json!({"$alli": ts})),
            inner.clone().prop_filter_map("operator object", |t| {
                t.as_object()
                    .filter(|m| m.keys().all(|k| k.starts_with('$')))
                    .map(|_| json!({"$elemMatch": t.clone()}))
            }),
        ]
    });
    let clause = (path, value_test).prop_map(|(p, t)| json!({ p: t }));
    clause.prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|cs| json!({"$and": cs})),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|cs| json!({"$or": cs})),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|cs| json!({"$nor": cs})),
            inner.clone().prop_map(|c| json!({"$not": c})),
            // An all-operator object under $elemMatch is a value test, not a condition.
            (prop::sample::select(&["tags", "a"][..]), inner.clone()).prop_filter_map(
                "has a path key",
                |(p, c)| {
                    c.as_object()
                        .filter(|m| m.is_empty() || m.keys().any(|k| !k.starts_with('$')))
                        .map(|_| json!({ p: {"$elemMatch": c.clone()} }))
                }
            ),
            (inner.clone(), inner).prop_map(|(a, b)| {
                let mut m = a.as_object().cloned().unwrap_or_default();
                m.extend(b.as_object().cloned().unwrap_or_default());
                Value::Object(m)
            }),
        ]
    })
}

fn attributes() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop::sample::select(&["a", "b", "tags", "v", "$groups"][..]),
            any_json(),
        ),
        0..5,
    )
    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn groups() -> SavedGroups {
    serde_json::from_value(json!({"g1": [1, "a", "US", true], "g2": []})).unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn prop_arbitrary_json_never_panics(cond in any_json(), attrs in attributes(), other in any_json()) {
        if let Ok(c) = Condition::parse(&cond) {
            let bound = c.bind_lenient(&groups());
            let _ = bound.matches(&attrs);
            let _ = c.matches(&attrs);
            let _ = bound.matches(&other);
            if !other.is_object() {
                prop_assert_eq!(bound.matches(&other), bound.is_always());
            }
        } else {
            let err = Condition::parse(&cond).unwrap_err();
            prop_assert!(err.to_string().starts_with("condition at /"));
            prop_assert!(err.path().starts_with('/'));
        }
    }

    #[test]
    fn prop_valid_conditions_parse_round_trip_and_evaluate(cond in valid_condition(), attrs in attributes()) {
        let parsed = Condition::parse(&cond);
        prop_assert!(parsed.is_ok(), "{} rejected: {:?}", cond, parsed.err());
        let c = parsed.unwrap();
        prop_assert_eq!(serde_json::to_value(&c).unwrap(), cond.clone());
        let again: Condition = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        prop_assert_eq!(&again, &c);
        let bound = c.bind(&groups()).unwrap();
        // $not negates, and binding twice is the same as binding once.
        let negated = Condition::parse(&json!({"$not": cond})).unwrap().bind(&groups()).unwrap();
        prop_assert_eq!(negated.matches(&attrs), !bound.matches(&attrs));
        prop_assert_eq!(bound.bind(&groups()).unwrap().matches(&attrs), bound.matches(&attrs));
    }

    #[test]
    fn prop_in_is_membership(list in prop::collection::vec(prop_oneof![(0i64..6).prop_map(Value::from), prop::sample::select(&["a", "b", "3", "B"][..]).prop_map(Value::from), any::<bool>().prop_map(Value::from), Just(Value::Null)], 0..20), x in prop_oneof![(0i64..6).prop_map(Value::from), prop::sample::select(&["a", "b", "3", "B"][..]).prop_map(Value::from), any::<bool>().prop_map(Value::from), Just(Value::Null)]) {
        let expected = list.contains(&x);
        let cin = Condition::parse(&json!({"x": {"$in": list.clone()}})).unwrap();
        let cnin = Condition::parse(&json!({"x": {"$nin": list.clone()}})).unwrap();
        prop_assert_eq!(cin.matches(&json!({"x": x.clone()})), expected);
        prop_assert_eq!(cnin.matches(&json!({"x": x.clone()})), !expected);
        // An array attribute matches when any element is in the list.
        prop_assert_eq!(cin.matches(&json!({"x": [x.clone(), "zz"]})), expected);
        // $ini folds case of strings only.
        let folded = |v: &Value| v.as_str().map_or_else(|| v.clone(), |s| Value::from(s.to_lowercase()));
        let expected_i = list.iter().any(|v| folded(v) == folded(&x));
        let cini = Condition::parse(&json!({"x": {"$ini": list}})).unwrap();
        prop_assert_eq!(cini.matches(&json!({"x": x})), expected_i);
    }

    #[test]
    fn prop_number_comparisons_follow_f64(a in -1e6f64..1e6, b in -1e6f64..1e6) {
        let attrs = json!({"n": a});
        let check = |op: &str| Condition::parse(&json!({"n": {op: b}})).unwrap().matches(&attrs);
        prop_assert_eq!(check("$lt"), a < b);
        prop_assert_eq!(check("$lte"), a <= b);
        prop_assert_eq!(check("$gt"), a > b);
        prop_assert_eq!(check("$gte"), a >= b);
        prop_assert_eq!(check("$eq"), a == b);
        // Numbers given as strings compare numerically against numbers.
        let as_string = Condition::parse(&json!({"n": {"$lt": b.to_string()}})).unwrap();
        prop_assert_eq!(as_string.matches(&attrs), a < b);
    }

    #[test]
    fn prop_versions_order_like_tuples(x in (0u32..30, 0u32..30, 0u32..30), y in (0u32..30, 0u32..30, 0u32..30), pre in any::<bool>()) {
        let vx = format!("{}.{}.{}", x.0, x.1, x.2);
        let vy = format!("{}.{}.{}", y.0, y.1, y.2);
        let attrs = json!({"v": vx});
        let check = |op: &str| Condition::parse(&json!({"v": {op: vy.clone()}})).unwrap().matches(&attrs);
        prop_assert_eq!(check("$vlt"), x < y);
        prop_assert_eq!(check("$vlte"), x <= y);
        prop_assert_eq!(check("$vgt"), x > y);
        prop_assert_eq!(check("$vgte"), x >= y);
        prop_assert_eq!(check("$veq"), x == y);
        prop_assert_eq!(check("$vne"), x != y);
        if pre {
            // A pre-release sorts before its release.
            let c = Condition::parse(&json!({"v": {"$vlt": vx.clone()}})).unwrap();
            let release_candidate = json!({"v": format!("{vx}-rc.1")});
            prop_assert!(c.matches(&release_candidate));
        }
    }
}
