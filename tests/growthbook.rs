//! GrowthBook conformance: the cases of `tests/data/growthbook-cases.json` (a part of GrowthBook's
//! `packages/sdk-js/test/cases.json`, spec 0.8.0, MIT, © GrowthBook), or of the file named by
//! `ABKIT_GROWTHBOOK_CASES` (same layout). Every case of every section built so far runs; the
//! sections not built yet are listed by name, so a section this test does not know fails it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests: a panic is a failure

use std::path::PathBuf;

use abkit::growthbook::{
    Experiment, Features, GbContext, Namespace, StickyBucketDoc, StickyBuckets, bucket_ranges,
    choose_variation, decrypt, equal_weights, hash, in_namespace, query_string_override,
};
use abkit::{Condition, SavedGroups};
use serde_json::Value;

/// Sections of the spec abkit does not evaluate yet (issue 15 is open), and the browser-only one.
const NOT_YET: [&str; 5] = [
    "feature",
    "run",
    "stickyBucket",
    "contextualBandit",
    "urlRedirect",
];

fn cases() -> serde_json::Map<String, Value> {
    let path = std::env::var_os("ABKIT_GROWTHBOOK_CASES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/growthbook-cases.json"),
        PathBuf::from,
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match serde_json::from_str(&text).unwrap() {
        Value::Object(m) => m,
        other => panic!("{}: not an object: {other}", path.display()),
    }
}

fn section(name: &str) -> Vec<Value> {
    match cases().remove(name) {
        Some(Value::Array(a)) => a,
        other => panic!("section {name}: {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn every_section_is_known() {
    let known = [
        "specVersion",
        "source",
        "evalCondition",
        "hash",
        "getBucketRange",
        "chooseVariation",
        "getQueryStringOverride",
        "inNamespace",
        "getEqualWeights",
        "decrypt",
        "feature",
        "run",
        "stickyBucket",
    ];
    for k in cases().keys() {
        assert!(
            known.contains(&k.as_str()) || NOT_YET.contains(&k.as_str()),
            "section {k} is neither run nor listed as not built"
        );
    }
}

#[test]
fn eval_condition() {
    let all = section("evalCondition");
    assert!(all.len() >= 149);
    let mut failures = Vec::new();
    for case in &all {
        let c = case.as_array().unwrap();
        let (name, condition, attributes, expected) =
            (&c[0], &c[1], &c[2], c[3].as_bool().unwrap());
        let groups: SavedGroups = c
            .get(4)
            .map(|g| serde_json::from_value(g.clone()).unwrap())
            .unwrap_or_default();
        let got = match Condition::parse(condition) {
            Ok(cond) => cond.bind_lenient(&groups).matches(attributes),
            Err(_) => false, // GrowthBook's false for a condition it cannot evaluate
        };
        if got != expected {
            failures.push(format!("{name}: got {got}, expected {expected}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn hash_cases() {
    let all = section("hash");
    assert!(!all.is_empty());
    for case in all {
        let c = case.as_array().unwrap();
        let (seed, value, version) = (
            c[0].as_str().unwrap(),
            c[1].as_str().unwrap(),
            c[2].as_u64().unwrap(),
        );
        let got = hash(seed, value, u32::try_from(version).unwrap());
        match c[3].as_f64() {
            Some(expected) => assert!(got.is_some_and(|g| close(g, expected)), "{case}: {got:?}"),
            None => assert_eq!(got, None, "{case}"),
        }
    }
}

/// Non-ASCII ids hash over UTF-16 code units, as JavaScript's `charCodeAt`. The expected values
/// were computed with this JavaScript (Node 20), not with this crate:
/// `h = s => { let v = 0x811c9dc5; for (let i = 0; i < s.length; i++) { v ^= s.charCodeAt(i);
/// v += (v << 1) + (v << 4) + (v << 7) + (v << 8) + (v << 24); } return v >>> 0; }`,
/// `(h(h(seed + value) + "") % 10000) / 10000` and `(h(value + seed) % 1000) / 1000`.
#[test]
fn non_ascii_hashes_are_javascripts() {
    for (seed, value, version, expected) in [
        ("seed", "josé", 2, 0.5199),
        ("seed", "josé", 1, 0.803),
        ("", "😀", 2, 0.4971),
        ("exp", "Ünïcödé", 1, 0.041),
        ("über", "user-1", 2, 0.9475),
        ("", "日本語", 2, 0.1203),
    ] {
        let got = hash(seed, value, version);
        assert!(
            got.is_some_and(|g| close(g, expected)),
            "{seed:?} {value:?} v{version}: {got:?}"
        );
    }
}

#[test]
fn bucket_range_cases() {
    for case in section("getBucketRange") {
        let c = case.as_array().unwrap();
        let args = c[1].as_array().unwrap();
        let n = usize::try_from(args[0].as_u64().unwrap()).unwrap();
        let coverage = args[1].as_f64().unwrap();
        let weights: Option<Vec<f64>> = serde_json::from_value(args[2].clone()).unwrap();
        let got = bucket_ranges(n, coverage, weights.as_deref());
        let expected: Vec<(f64, f64)> = serde_json::from_value(c[2].clone()).unwrap();
        assert_eq!(got.len(), expected.len(), "{case}");
        for (g, e) in got.iter().zip(&expected) {
            assert!(close(g.0, e.0) && close(g.1, e.1), "{case}: {got:?}");
        }
    }
}

#[test]
fn choose_variation_cases() {
    for case in section("chooseVariation") {
        let c = case.as_array().unwrap();
        let ranges: Vec<(f64, f64)> = serde_json::from_value(c[2].clone()).unwrap();
        let got = choose_variation(c[1].as_f64().unwrap(), &ranges)
            .map_or(-1, |i| i64::try_from(i).unwrap());
        assert_eq!(got, c[3].as_i64().unwrap(), "{case}");
    }
}

#[test]
fn query_string_override_cases() {
    for case in section("getQueryStringOverride") {
        let c = case.as_array().unwrap();
        let n = usize::try_from(c[3].as_u64().unwrap()).unwrap();
        let got = query_string_override(c[1].as_str().unwrap(), c[2].as_str().unwrap(), n);
        let expected = c[4].as_u64().map(|v| usize::try_from(v).unwrap());
        assert_eq!(got, expected, "{case}");
    }
}

#[test]
fn in_namespace_cases() {
    for case in section("inNamespace") {
        let c = case.as_array().unwrap();
        let ns: Namespace = serde_json::from_value(c[2].clone()).unwrap();
        assert_eq!(
            in_namespace(c[1].as_str().unwrap(), &ns),
            c[3].as_bool().unwrap(),
            "{case}"
        );
    }
}

#[test]
fn equal_weights_cases() {
    for case in section("getEqualWeights") {
        let c = case.as_array().unwrap();
        let got = equal_weights(c[0].as_i64().unwrap());
        let expected: Vec<f64> = serde_json::from_value(c[1].clone()).unwrap();
        assert_eq!(got.len(), expected.len(), "{case}");
        assert!(
            got.iter().zip(&expected).all(|(g, e)| close(*g, *e)),
            "{case}: {got:?}"
        );
    }
}

#[test]
fn decrypt_cases() {
    let all = section("decrypt");
    assert!(!all.is_empty());
    for case in all {
        let c = case.as_array().unwrap();
        let got = decrypt(c[1].as_str().unwrap(), c[2].as_str().unwrap());
        match c[3].as_str() {
            Some(expected) => assert_eq!(got.as_deref(), Ok(expected), "{case}"),
            None => {
                let e = got.expect_err(&case.to_string());
                assert!(e.to_string().starts_with("cannot decrypt"), "{e}");
            }
        }
    }
}

/// A context of the cases: the SDK context's fields; `features` and `savedGroups` compile.
fn context(v: &Value) -> (Features, GbContext) {
    let features = Features::new(
        v.get("features").unwrap_or(&Value::Null),
        v.get("savedGroups"),
    )
    .unwrap();
    let mut ctx: GbContext = serde_json::from_value(v.clone()).unwrap_or_default();
    if let Some(a) = v.get("attributes") {
        ctx.attributes = a.clone();
    }
    (features, ctx)
}

#[test]
fn feature_cases() {
    let all = section("feature");
    let mut bandits = 0;
    let mut failures = Vec::new();
    for case in &all {
        let c = case.as_array().unwrap();
        let name = c[0].as_str().unwrap();
        if c[1].get("contextualBandits").is_some() {
            bandits += 1; // contextual bandits: not supported (see NOT_YET)
            continue;
        }
        let (features, ctx) = context(&c[1]);
        let got =
            serde_json::to_value(features.eval_feature(c[2].as_str().unwrap(), &ctx)).unwrap();
        if got != c[3] {
            failures.push(format!("{name}:\n  got      {got}\n  expected {}", c[3]));
        }
    }
    assert_eq!(
        bandits, 3,
        "the contextual-bandit cases are the three known ones"
    );
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn run_cases() {
    let all = section("run");
    let mut failures = Vec::new();
    for case in &all {
        let c = case.as_array().unwrap();
        let name = c[0].as_str().unwrap();
        let (features, ctx) = context(&c[1]);
        let exp = Experiment::from_json(&c[2], features.saved_groups()).unwrap();
        let r = features.run(&exp, &ctx);
        let got = (r.value.clone(), r.in_experiment, r.hash_used);
        let expected = (
            c[3].clone(),
            c[4].as_bool().unwrap(),
            c[5].as_bool().unwrap(),
        );
        if got != expected {
            failures.push(format!("{name}: got {got:?}, expected {expected:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn sticky_bucket_cases() {
    let all = section("stickyBucket");
    assert!(!all.is_empty());
    let mut failures = Vec::new();
    for case in &all {
        let c = case.as_array().unwrap();
        let name = c[0].as_str().unwrap();
        let (features, ctx) = context(&c[1]);
        let stored: Vec<StickyBucketDoc> = serde_json::from_value(c[2].clone()).unwrap();
        let mut docs = StickyBuckets::from_docs(stored);
        let r = features.eval_feature_sticky(c[3].as_str().unwrap(), &ctx, &mut docs);
        let got = serde_json::to_value(&r.experiment_result).unwrap();
        if got != c[4] {
            failures.push(format!(
                "{name}: result\n  got      {got}\n  expected {}",
                c[4]
            ));
        }
        let got_docs = serde_json::to_value(&docs).unwrap();
        if got_docs != c[5] {
            failures.push(format!(
                "{name}: documents\n  got      {got_docs}\n  expected {}",
                c[5]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// An encrypted payload (the `decrypt` section's valid and broken ciphertexts, used as
/// `encryptedFeatures`) loads with its key and is refused clearly without it.
#[test]
fn encrypted_payloads_load() {
    let cases = section("decrypt");
    let find = |name: &str| {
        cases
            .iter()
            .find(|c| c[0] == name)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let valid = find("Valid feature");
    let payload = serde_json::json!({"encryptedFeatures": valid[1]});
    let gb = Features::from_payload(&payload, valid[2].as_str()).unwrap();
    let ctx = GbContext::default();
    let r = gb.eval_feature("feature", &ctx);
    assert_eq!((r.value, r.on), (&serde_json::json!(true), true));
    let e = Features::from_payload(&payload, None).unwrap_err();
    assert!(e.to_string().contains("no decryption key"), "{e}");
    let e = Features::from_payload(&payload, Some("Zvwv/+uhpFDznZ6SX39Yjg==")).unwrap_err();
    assert!(e.to_string().starts_with("cannot decrypt"), "{e}");
    let broken = find("Broken JSON");
    let e = Features::from_payload(
        &serde_json::json!({"encryptedFeatures": broken[1]}),
        broken[2].as_str(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("encryptedFeatures"), "{e}");
    // Auto experiments are compiled too, and a malformed one is named.
    let gb = Features::from_payload(
        &serde_json::json!({"experiments": [{"key": "e", "variations": [0, 1]}]}),
        None,
    )
    .unwrap();
    assert_eq!(gb.experiments().len(), 1);
    let e = Features::from_payload(
        &serde_json::json!({"experiments": [{"variations": [0, 1]}]}),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("experiments[0]"), "{e}");
}

/// Tracking is de-duplicated as the JavaScript SDK's: one "experiment viewed" per user and
/// variation, one "feature usage" per feature and value; through the bridge, GrowthBook traffic is
/// analysed by abkit.
#[test]
fn tracking_dedupes_and_the_bridge_records_into_a_lab() {
    use abkit::growthbook::{Tracking, bridge};
    use std::sync::{Arc, Mutex};
    let lab = Arc::new(abkit::Lab::new());
    let viewed = Arc::new(Mutex::new(Vec::new()));
    let used = Arc::new(Mutex::new(Vec::new()));
    let tracking = {
        let (lab, viewed, used) = (Arc::clone(&lab), Arc::clone(&viewed), Arc::clone(&used));
        Tracking::new(move |e, r| {
            viewed
                .lock()
                .unwrap()
                .push((e.key().to_owned(), r.hash_value.clone(), r.variation_id));
            let id = bridge::mirror(&lab, e).unwrap();
            bridge::record(&lab, &id, r).unwrap();
        })
        .with_feature_usage(move |k, r| used.lock().unwrap().push((k.to_owned(), r.value.clone())))
    };
    let features = Features::new(
        &serde_json::json!({
            "checkout": {"defaultValue": "old", "rules": [
                {"key": "checkout-test", "variations": ["old", "new"],
                 "meta": [{"key": "control"}, {"key": "treatment"}]}]}
        }),
        None,
    )
    .unwrap();
    let mut changes = 0;
    let mut last: Option<Value> = None;
    for round in 0..3 {
        for u in 0..20 {
            let ctx = GbContext {
                attributes: serde_json::json!({"id": format!("u{u}")}),
                ..GbContext::default()
            };
            let r = features.eval_feature_tracked("checkout", &ctx, &tracking);
            assert_eq!(
                r.source,
                abkit::growthbook::Source::Experiment,
                "round {round}"
            );
            if last.as_ref() != Some(r.value) {
                changes += 1;
                last = Some(r.value.clone());
            }
        }
    }
    assert_eq!(
        viewed.lock().unwrap().len(),
        20,
        "once per user, not per evaluation"
    );
    let values: std::collections::BTreeSet<String> = used
        .lock()
        .unwrap()
        .iter()
        .map(|(_, v)| v.to_string())
        .collect();
    assert_eq!(
        used.lock().unwrap().len(),
        changes,
        "feature usage once per value change"
    );
    assert_eq!(values.len(), 2);
    // The bridge: one abkit experiment with the variations' keys, 20 exposures.
    let page = lab
        .experiments()
        .list(&abkit::ListQuery::default())
        .unwrap();
    assert_eq!(page.total, 1);
    let e = &page.items[0];
    let ids: Vec<&str> = e.variants().iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["control", "treatment"]);
    let counts = lab
        .reports()
        .experiment_with_counts(e.id().as_str())
        .unwrap();
    assert_eq!(counts.participants.iter().sum::<u64>(), 20);
    // abkit's own assignment for the same user agrees with nothing in particular (other hash):
    // what is analysed is what GrowthBook served, by the variation recorded.
    let served: u64 = viewed
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, v)| *v == 1)
        .count() as u64;
    assert_eq!(counts.participants[1], served);
}

/// Feature evaluation for non-ASCII ids hashes UTF-16 code units, as the JavaScript SDK. The
/// expected buckets and variations were computed with the SDK's formulas in JavaScript (Node 20;
/// `hash("greet-test", id, 2)`, equal ranges of three), not with this crate.
#[test]
#[allow(clippy::approx_constant)] // 0.7854 is a bucket, not π/4
fn non_ascii_feature_cases_are_javascripts() {
    let features = Features::new(
        &serde_json::json!({"greeting": {"defaultValue": "hello", "rules": [
            {"key": "greet-test", "hashVersion": 2, "variations": ["hi", "hola", "salut"]}]}}),
        None,
    )
    .unwrap();
    for (id, bucket, variation) in [
        ("josé", 0.3607, 1),
        ("😀", 0.6075, 1),
        ("日本語", 0.7854, 2),
        ("Zoë", 0.7776, 2),
        ("user-1", 0.4109, 1),
    ] {
        let ctx = GbContext {
            attributes: serde_json::json!({"id": id}),
            ..GbContext::default()
        };
        let r = features.eval_feature("greeting", &ctx);
        let x = r.experiment_result.unwrap();
        assert_eq!(
            (x.bucket, x.variation_id),
            (Some(bucket), variation),
            "{id}"
        );
        assert_eq!(
            r.value,
            &serde_json::json!(["hi", "hola", "salut"][variation])
        );
    }
}

/// A compiled payload and the tracking state are shared across threads.
#[test]
fn shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Features>();
    send_sync::<Experiment>();
    send_sync::<abkit::growthbook::Tracking>();
    send_sync::<GbContext>();
    let features = std::sync::Arc::new(
        Features::new(
            &serde_json::json!({"f": {"defaultValue": 1, "rules": [{"variations": [1, 2]}]}}),
            None,
        )
        .unwrap(),
    );
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let f = std::sync::Arc::clone(&features);
            std::thread::spawn(move || {
                let ctx = GbContext {
                    attributes: serde_json::json!({"id": format!("t{t}")}),
                    ..GbContext::default()
                };
                f.eval_feature("f", &ctx).value.as_i64()
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap().is_some());
    }
}
