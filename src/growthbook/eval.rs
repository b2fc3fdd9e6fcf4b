//! Feature evaluation and experiments, as the JavaScript SDK's `evalFeature` and `run`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    GrowthBookError, Namespace, choose_variation, hash, in_namespace, query_string_override, ranges,
};
use crate::targeting::{Condition, SavedGroups};

/// A targeting condition as GrowthBook evaluates it: one abkit cannot parse is `false`, as the
/// SDK's evaluation of it is.
#[derive(Clone, Debug)]
enum Cond {
    Ok(Condition),
    Invalid,
}

impl Cond {
    fn new(v: &Value, groups: &SavedGroups) -> Cond {
        match Condition::parse(v) {
            Ok(c) => Cond::Ok(c.bind_lenient(groups)),
            Err(_) => Cond::Invalid,
        }
    }

    fn passes(&self, attributes: &Value) -> bool {
        match self {
            Cond::Ok(c) => c.matches(attributes),
            Cond::Invalid => false,
        }
    }
}

/// A prerequisite: feature `id`'s value must satisfy `condition` (`gate`: else the dependent
/// feature is blocked, not just the rule skipped).
#[derive(Clone, Debug)]
struct Parent {
    id: String,
    condition: Cond,
    gate: bool,
}

fn parents(v: Option<&Value>, groups: &SavedGroups) -> Vec<Parent> {
    v.and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    Some(Parent {
                        id: p.get("id")?.as_str()?.to_owned(),
                        condition: Cond::new(
                            p.get("condition").unwrap_or(&Value::Object(Map::new())),
                            groups,
                        ),
                        gate: p.get("gate").and_then(Value::as_bool).unwrap_or(false),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A hash filter: units whose hash of `attribute` with `seed` falls in none of `ranges` are out.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    attribute: Option<String>,
    #[serde(default)]
    seed: String,
    #[serde(default)]
    hash_version: Option<u32>,
    #[serde(default)]
    ranges: Vec<(f64, f64)>,
}

/// One variation's metadata: `{key, name, passthrough}`.
#[derive(Clone, Debug, Default, Deserialize)]
struct Meta {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    passthrough: Option<bool>,
}

/// An experiment: inline (`run`) or built from a feature's experiment rule.
#[derive(Clone, Debug)]
pub struct Experiment {
    key: String,
    variations: Vec<Value>,
    weights: Option<Vec<f64>>,
    coverage: Option<f64>,
    ranges: Option<Vec<(f64, f64)>>,
    meta: Vec<Meta>,
    namespace: Option<Namespace>,
    filters: Option<Vec<Filter>>,
    seed: Option<String>,
    hash_attribute: Option<String>,
    fallback_attribute: Option<String>,
    hash_version: Option<u32>,
    condition: Option<Cond>,
    parents: Vec<Parent>,
    force: Option<Option<i64>>,
    active: bool,
    status: Option<String>,
    bucket_version: i64,
    min_bucket_version: i64,
    disable_sticky: bool,
    /// The experiment as the SDK reports it (`experiment` of a feature result).
    json: Value,
}

fn opt<T: serde::de::DeserializeOwned>(o: &Map<String, Value>, k: &str) -> Option<T> {
    o.get(k)
        .filter(|v| !v.is_null())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

impl Experiment {
    /// Its key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Its variations' values.
    pub fn variations(&self) -> &[Value] {
        &self.variations
    }

    /// Its weights, when given.
    pub fn weights(&self) -> Option<&[f64]> {
        self.weights.as_deref()
    }

    /// The key of variation `i`: `meta[i].key`, else the index.
    pub fn variation_key(&self, i: usize) -> VariationKey<'_> {
        self.meta
            .get(i)
            .and_then(|m| m.key.as_deref())
            .map_or(VariationKey::Index(i), VariationKey::Meta)
    }
}

impl PartialEq for Experiment {
    /// Experiments are equal when their JSON is.
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl Experiment {
    /// An experiment from its JSON (`{key, variations, weights, coverage, …}`), its conditions
    /// bound to `groups`.
    ///
    /// # Errors
    ///
    /// [`GrowthBookError::Invalid`] unless it is an object with a `key` and `variations`.
    pub fn from_json(v: &Value, groups: &SavedGroups) -> Result<Experiment, GrowthBookError> {
        let o = v.as_object().ok_or_else(|| GrowthBookError::Invalid {
            field: "experiment".into(),
            reason: format!("{v} is not an object"),
        })?;
        let key: String = opt(o, "key").ok_or_else(|| GrowthBookError::Invalid {
            field: "experiment.key".into(),
            reason: "missing".into(),
        })?;
        let variations: Vec<Value> =
            opt(o, "variations").ok_or_else(|| GrowthBookError::Invalid {
                field: "experiment.variations".into(),
                reason: "missing".into(),
            })?;
        Ok(Experiment {
            key,
            variations,
            weights: opt(o, "weights"),
            coverage: o.get("coverage").and_then(Value::as_f64),
            ranges: opt(o, "ranges"),
            meta: opt(o, "meta").unwrap_or_default(),
            namespace: opt(o, "namespace"),
            filters: opt(o, "filters"),
            seed: opt(o, "seed"),
            hash_attribute: opt(o, "hashAttribute"),
            fallback_attribute: opt(o, "fallbackAttribute"),
            hash_version: opt(o, "hashVersion"),
            condition: o.get("condition").map(|c| Cond::new(c, groups)),
            parents: parents(o.get("parentConditions"), groups),
            force: o
                .contains_key("force")
                .then(|| o.get("force").and_then(Value::as_i64)),
            active: o.get("active").and_then(Value::as_bool).unwrap_or(true),
            status: opt(o, "status"),
            bucket_version: o.get("bucketVersion").and_then(Value::as_i64).unwrap_or(0),
            min_bucket_version: o
                .get("minBucketVersion")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            disable_sticky: o
                .get("disableStickyBucketing")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            json: v.clone(),
        })
    }
}

/// A feature rule: force (with condition, rollout range or coverage, filters), or experiment.
#[derive(Clone, Debug)]
struct Rule {
    id: String,
    condition: Option<Cond>,
    parents: Vec<Parent>,
    filters: Option<Vec<Filter>>,
    force: Option<Value>,
    range: Option<(f64, f64)>,
    coverage: Option<f64>,
    seed: Option<String>,
    hash_attribute: Option<String>,
    hash_version: Option<u32>,
    experiment: Option<Experiment>,
}

/// The experiment fields a rule hands on, in the SDK's order.
const RULE_TO_EXPERIMENT: [&str; 16] = [
    "coverage",
    "weights",
    "hashAttribute",
    "fallbackAttribute",
    "disableStickyBucketing",
    "bucketVersion",
    "minBucketVersion",
    "namespace",
    "meta",
    "ranges",
    "name",
    "phase",
    "seed",
    "hashVersion",
    "filters",
    "condition",
];

impl Rule {
    fn new(feature: &str, o: &Map<String, Value>, groups: &SavedGroups) -> Rule {
        let experiment = o.get("variations").and_then(Value::as_array).map(|vs| {
            let mut e = Map::new();
            e.insert("variations".into(), Value::Array(vs.clone()));
            let key = o
                .get("key")
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
                .unwrap_or(feature);
            e.insert("key".into(), Value::String(key.to_owned()));
            for k in RULE_TO_EXPERIMENT {
                if let Some(v) = o.get(k) {
                    // `coverage` and the bucket versions are copied when present; the rest when
                    // truthy (as the SDK's `if (rule.x)`).
                    if matches!(k, "coverage" | "bucketVersion" | "minBucketVersion") || truthy(v) {
                        e.insert(k.into(), v.clone());
                    }
                }
            }
            Experiment::from_json(&Value::Object(e), groups)
        });
        Rule {
            id: opt(o, "id").unwrap_or_default(),
            condition: o.get("condition").map(|c| Cond::new(c, groups)),
            parents: parents(o.get("parentConditions"), groups),
            filters: opt(o, "filters"),
            force: o
                .contains_key("force")
                .then(|| o.get("force").cloned().unwrap_or_default()),
            range: opt(o, "range"),
            coverage: o.get("coverage").and_then(Value::as_f64),
            seed: opt(o, "seed"),
            hash_attribute: opt(o, "hashAttribute"),
            hash_version: opt(o, "hashVersion"),
            experiment: experiment.and_then(Result::ok),
        }
    }
}

#[derive(Clone, Debug)]
struct Feature {
    default_value: Value,
    rules: Vec<Rule>,
}

/// One evaluation's walk: the features being evaluated (to catch prerequisite cycles) and the
/// sticky-bucket documents, when sticky bucketing is on.
struct Walk<'a, 's> {
    stack: [&'a str; MAX_DEPTH],
    depth: usize,
    sticky: Option<&'s mut StickyBuckets>,
    tracking: Option<&'s Tracking>,
}

impl<'a, 's> Walk<'a, 's> {
    fn new(sticky: Option<&'s mut StickyBuckets>) -> Self {
        Walk {
            stack: [""; MAX_DEPTH],
            depth: 0,
            sticky,
            tracking: None,
        }
    }

    fn tracked(mut self, tracking: &'s Tracking) -> Self {
        self.tracking = Some(tracking);
        self
    }

    /// Enters feature `key`; `false` when it is already being evaluated or too deep.
    fn enter(&mut self, key: &'a str) -> bool {
        let active = self.stack.get(..self.depth).unwrap_or_default();
        if active.contains(&key) || self.depth >= MAX_DEPTH {
            return false;
        }
        if let Some(slot) = self.stack.get_mut(self.depth) {
            *slot = key;
        }
        self.depth += 1;
        true
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}

type ExperimentViewed = Box<dyn Fn(&Experiment, &ExperimentResult<'_>) + Send + Sync>;
type FeatureUsed = Box<dyn Fn(&str, &FeatureResult<'_>) + Send + Sync>;

/// The SDK's tracking callbacks, de-duplicated as the JavaScript SDK does: "experiment viewed"
/// once per (hash attribute, hash value, experiment, variation), "feature usage" once per feature
/// and value. The host sends them to its analytics (or records them in a `Lab`, see
/// [`super::bridge`]). Shared by every evaluation that passes it; thread-safe.
pub struct Tracking {
    on_experiment: ExperimentViewed,
    on_feature: Option<FeatureUsed>,
    seen_experiments: std::sync::Mutex<std::collections::HashSet<String>>,
    seen_features: std::sync::Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Tracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracking")
            .field("feature_usage", &self.on_feature.is_some())
            .finish_non_exhaustive()
    }
}

impl Tracking {
    /// Tracking that calls `on_experiment(experiment, result)` when a user is first assigned a
    /// variation by the hash (the SDK's `trackingCallback`).
    pub fn new(
        on_experiment: impl Fn(&Experiment, &ExperimentResult<'_>) + Send + Sync + 'static,
    ) -> Tracking {
        Tracking {
            on_experiment: Box::new(on_experiment),
            on_feature: None,
            seen_experiments: std::sync::Mutex::default(),
            seen_features: std::sync::Mutex::default(),
        }
    }

    /// Also calls `on_feature(key, result)` when a feature is first evaluated to a value (the
    /// SDK's `onFeatureUsage`).
    #[must_use]
    pub fn with_feature_usage(
        mut self,
        on_feature: impl Fn(&str, &FeatureResult<'_>) + Send + Sync + 'static,
    ) -> Tracking {
        self.on_feature = Some(Box::new(on_feature));
        self
    }

    fn experiment_viewed(&self, e: &Experiment, r: &ExperimentResult<'_>) {
        let key = format!(
            "{}{}{}{}",
            r.hash_attribute,
            js_string(r.hash_value),
            e.key,
            r.variation_id
        );
        let new = self
            .seen_experiments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key);
        if new {
            (self.on_experiment)(e, r);
        }
    }

    fn feature_used(&self, key: &str, r: &FeatureResult<'_>) {
        let Some(f) = &self.on_feature else {
            return;
        };
        let value = r.value.to_string();
        let new = self
            .seen_features
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_owned(), value.clone())
            .is_none_or(|old| old != value);
        if new {
            f(key, r);
        }
    }
}

/// A user's sticky-bucket document, as the SDK stores them: `{attributeName, attributeValue,
/// assignments: {"{experiment}__{bucketVersion}": "{variation key}"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StickyBucketDoc {
    /// The attribute the document is for (`id`, `deviceId`, …).
    pub attribute_name: String,
    /// Its value.
    pub attribute_value: String,
    /// Experiment and bucket version → variation key.
    #[serde(default)]
    pub assignments: std::collections::BTreeMap<String, String>,
}

/// The sticky-bucket documents of a user, by `"{attributeName}||{attributeValue}"`. The host
/// loads them before evaluating and stores the ones evaluation changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StickyBuckets(pub std::collections::BTreeMap<String, StickyBucketDoc>);

impl StickyBuckets {
    /// The documents keyed as the SDK keys them.
    pub fn from_docs(docs: impl IntoIterator<Item = StickyBucketDoc>) -> StickyBuckets {
        StickyBuckets(
            docs.into_iter()
                .map(|d| (format!("{}||{}", d.attribute_name, d.attribute_value), d))
                .collect(),
        )
    }

    /// The assignments for (`hash_attribute`, `fallback_attribute`): the fallback's, overridden
    /// by the hash attribute's.
    fn assignments(
        &self,
        ctx: &GbContext,
        hash_attribute: Option<&str>,
        fallback: Option<&str>,
    ) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        let key_of = |attr: Option<&str>| {
            let (name, value) = hash_attribute_of(attr, ctx);
            value.map(|v| format!("{name}||{}", js_string(v)))
        };
        if fallback.is_some()
            && let Some(k) = key_of(fallback)
            && let Some(d) = self.0.get(&k)
        {
            out.extend(d.assignments.clone());
        }
        if let Some(k) = key_of(hash_attribute)
            && let Some(d) = self.0.get(&k)
        {
            out.extend(d.assignments.clone());
        }
        out
    }
}

/// A compiled set of features (a payload's `features` with its `savedGroups`).
#[derive(Clone, Debug, Default)]
pub struct Features {
    features: HashMap<String, Feature>,
    groups: SavedGroups,
    experiments: Vec<Experiment>,
}

/// Who a feature is evaluated for, and the SDK context's switches.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GbContext {
    /// The user's attributes.
    pub attributes: Value,
    /// The page URL (query-string overrides).
    pub url: String,
    /// Experiment key → forced variation index.
    pub forced_variations: HashMap<String, i64>,
    /// QA mode: no experiment assigns anyone.
    pub qa_mode: bool,
    /// `false` turns every experiment off.
    pub enabled: bool,
}

impl Default for GbContext {
    fn default() -> Self {
        GbContext {
            attributes: Value::Object(Map::new()),
            url: String::new(),
            forced_variations: HashMap::new(),
            qa_mode: false,
            enabled: true,
        }
    }
}

/// Where a feature's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// No such feature.
    UnknownFeature,
    /// Its default value: no rule applied.
    DefaultValue,
    /// A force (or rollout) rule.
    Force,
    /// An experiment rule.
    Experiment,
    /// A prerequisite gate blocked it.
    Prerequisite,
    /// Its prerequisites form a cycle (or are nested deeper than [`MAX_DEPTH`]).
    CyclicPrerequisite,
}

/// How deep prerequisites may nest: deeper counts as a cycle.
pub const MAX_DEPTH: usize = 32;

/// A variation's key: its `meta[i].key`, or its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VariationKey<'a> {
    /// `meta[i].key`.
    Meta(&'a str),
    /// No key given: the index, written as a string.
    Index(usize),
}

impl Serialize for VariationKey<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            VariationKey::Meta(k) => s.serialize_str(k),
            VariationKey::Index(i) => s.collect_str(i),
        }
    }
}

impl std::fmt::Display for VariationKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VariationKey::Meta(k) => f.write_str(k),
            VariationKey::Index(i) => write!(f, "{i}"),
        }
    }
}

static NULL: Value = Value::Null;
static EMPTY: Value = Value::String(String::new());

/// What `run` decided, as the SDK's `Result`; borrows from the features and the context, so
/// deciding allocates nothing.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentResult<'a> {
    /// The feature whose rule ran it (`null` for an inline experiment).
    pub feature_id: Option<&'a str>,
    /// The variation's value.
    pub value: &'a Value,
    /// The variation's index.
    pub variation_id: usize,
    /// Whether the user is in the experiment.
    pub in_experiment: bool,
    /// Whether the hash chose the variation.
    pub hash_used: bool,
    /// The attribute hashed.
    pub hash_attribute: &'a str,
    /// Its value (`""` when the user has none).
    pub hash_value: &'a Value,
    /// The variation's key (`meta[i].key`, else its index).
    pub key: VariationKey<'a>,
    /// The variation's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// The hash, when it was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<f64>,
    /// Whether a sticky bucket decided.
    pub sticky_bucket_used: bool,
    /// A passthrough variation (the feature's value is not overridden).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<bool>,
}

fn experiment_json<S: serde::Serializer>(e: &Option<&Experiment>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => e.json.serialize(s),
        None => s.serialize_none(),
    }
}

/// What `eval_feature` answered, as the SDK's `FeatureResult`; borrows from the features.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureResult<'a> {
    /// The value.
    pub value: &'a Value,
    /// JavaScript truthiness of the value.
    pub on: bool,
    /// Its negation.
    pub off: bool,
    /// Where the value came from.
    pub source: Source,
    /// The rule's id (`""` when none).
    pub rule_id: &'a str,
    /// The experiment, when one decided (as the SDK reports it).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "experiment_json"
    )]
    pub experiment: Option<&'a Experiment>,
    /// Its result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment_result: Option<ExperimentResult<'a>>,
}

impl FeatureResult<'_> {
    /// JavaScript truthiness of the value (`isOn`).
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        self.value.as_str()
    }

    /// The value as a bool, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        self.value.as_bool()
    }

    /// The value as a number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        self.value.as_f64()
    }
}

/// JavaScript truthiness.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// JavaScript's `String(v)` for a hash attribute's value.
pub(crate) fn js_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                if x.is_null() {
                    String::new()
                } else {
                    js_string(x)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// Calls `f` with JavaScript's `String(v)`, on the stack for strings and numbers.
fn with_js_str<R>(v: &Value, f: impl FnOnce(&str) -> R) -> R {
    match v {
        Value::String(s) => f(s),
        Value::Number(n) => {
            let mut b = super::StackStr::default();
            let written = match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => std::fmt::Write::write_fmt(&mut b, format_args!("{i}")),
                (None, Some(u), _) => std::fmt::Write::write_fmt(&mut b, format_args!("{u}")),
                _ => Err(std::fmt::Error),
            };
            match written {
                Ok(()) => f(b.as_str()),
                Err(_) => f(&js_string(v)),
            }
        }
        _ => f(&js_string(v)),
    }
}

fn result<'a>(value: &'a Value, source: Source, rule_id: &'a str) -> FeatureResult<'a> {
    let on = truthy(value);
    FeatureResult {
        value,
        on,
        off: !on,
        source,
        rule_id,
        experiment: None,
        experiment_result: None,
    }
}

impl Features {
    /// Compiles an SDK payload as the SDK's `setPayload` / `init` does: `features` (or
    /// `encryptedFeatures`, decrypted with `decryption_key`), `savedGroups` (or
    /// `encryptedSavedGroups`), and `experiments` (auto experiments, for [`Features::run`]).
    ///
    /// ```
    /// use abkit::growthbook::{Features, GbContext};
    /// let payload = serde_json::json!({
    ///     "features": {"dark-mode": {"defaultValue": false,
    ///         "rules": [{"condition": {"id": {"$inGroup": "staff"}}, "force": true}]}},
    ///     "savedGroups": {"staff": ["u1", "u2"]}
    /// });
    /// let gb = Features::from_payload(&payload, None)?;
    /// let ctx = GbContext { attributes: serde_json::json!({"id": "u1"}), ..GbContext::default() };
    /// assert!(gb.eval_feature("dark-mode", &ctx).is_on());
    /// # Ok::<(), abkit::growthbook::GrowthBookError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`GrowthBookError::Decrypt`] for an encrypted part without a key or with the wrong one;
    /// [`GrowthBookError::Invalid`] for parts that are not of the SDK's shape (the field named).
    pub fn from_payload(
        payload: &Value,
        decryption_key: Option<&str>,
    ) -> Result<Features, GrowthBookError> {
        let part = |plain: &str, encrypted: &str| -> Result<Option<Value>, GrowthBookError> {
            if let Some(v) = payload.get(plain).filter(|v| !v.is_null()) {
                return Ok(Some(v.clone()));
            }
            let Some(text) = payload.get(encrypted).and_then(Value::as_str) else {
                return Ok(None);
            };
            let key = decryption_key.ok_or_else(|| GrowthBookError::Decrypt {
                what: "payload",
                reason: format!("{encrypted} is present but no decryption key was given"),
            })?;
            let json = super::decrypt(text, key)?;
            serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| GrowthBookError::Invalid {
                    field: encrypted.to_owned(),
                    reason: format!("decrypts to text that is not JSON: {e}"),
                })
        };
        let features = part("features", "encryptedFeatures")?.unwrap_or(Value::Null);
        let groups = part("savedGroups", "encryptedSavedGroups")?;
        let mut out = Features::new(&features, groups.as_ref())?;
        if let Some(list) = payload.get("experiments").and_then(Value::as_array) {
            out.experiments = list
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    Experiment::from_json(e, &out.groups).map_err(|err| GrowthBookError::Invalid {
                        field: format!("experiments[{i}]"),
                        reason: err.to_string(),
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(out)
    }

    /// The payload's auto experiments (its `experiments`), to [`Features::run`].
    pub fn experiments(&self) -> &[Experiment] {
        &self.experiments
    }

    /// Compiles a payload's `features` (and `savedGroups`), as the SDK's `setPayload`.
    ///
    /// # Errors
    ///
    /// [`GrowthBookError::Invalid`] when `features` is not an object or `savedGroups` does not
    /// decode.
    pub fn new(
        features: &Value,
        saved_groups: Option<&Value>,
    ) -> Result<Features, GrowthBookError> {
        let groups: SavedGroups = match saved_groups {
            Some(g) => serde_json::from_value(g.clone()).map_err(|e| GrowthBookError::Invalid {
                field: "savedGroups".into(),
                reason: e.to_string(),
            })?,
            None => SavedGroups::new(),
        };
        let map = match features {
            Value::Null => Map::new(),
            Value::Object(m) => m.clone(),
            other => {
                return Err(GrowthBookError::Invalid {
                    field: "features".into(),
                    reason: format!("{other} is not an object"),
                });
            }
        };
        let features = map
            .iter()
            .map(|(key, f)| {
                let default_value = f.get("defaultValue").cloned().unwrap_or(Value::Null);
                let rules = f
                    .get("rules")
                    .and_then(Value::as_array)
                    .map(|rs| {
                        rs.iter()
                            .filter_map(Value::as_object)
                            .map(|r| Rule::new(key, r, &groups))
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    key.clone(),
                    Feature {
                        default_value,
                        rules,
                    },
                )
            })
            .collect();
        Ok(Features {
            features,
            groups,
            experiments: Vec::new(),
        })
    }

    /// The saved groups conditions are bound to.
    pub fn saved_groups(&self) -> &SavedGroups {
        &self.groups
    }

    /// Evaluates feature `key` for `ctx`, as the SDK's `evalFeature`.
    pub fn eval_feature<'a>(&'a self, key: &'a str, ctx: &'a GbContext) -> FeatureResult<'a> {
        self.eval(key, ctx, &mut Walk::new(None))
    }

    /// [`Features::eval_feature`] with sticky bucketing: `docs` (the host's stored
    /// sticky-bucket documents for this user) decide where they hold an assignment, and receive
    /// the new assignments to store.
    pub fn eval_feature_sticky<'a>(
        &'a self,
        key: &'a str,
        ctx: &'a GbContext,
        docs: &mut StickyBuckets,
    ) -> FeatureResult<'a> {
        self.eval(key, ctx, &mut Walk::new(Some(docs)))
    }

    fn eval<'a>(
        &'a self,
        key: &'a str,
        ctx: &'a GbContext,
        st: &mut Walk<'a, '_>,
    ) -> FeatureResult<'a> {
        let Some(feature) = self.features.get(key) else {
            return result(&NULL, Source::UnknownFeature, "");
        };
        if !st.enter(key) {
            return result(&NULL, Source::CyclicPrerequisite, "");
        }
        let out = self.eval_rules(key, feature, ctx, st);
        st.leave();
        if let Some(t) = st.tracking {
            t.feature_used(key, &out);
        }
        out
    }

    fn eval_rules<'a>(
        &'a self,
        key: &'a str,
        feature: &'a Feature,
        ctx: &'a GbContext,
        st: &mut Walk<'a, '_>,
    ) -> FeatureResult<'a> {
        'rules: for rule in &feature.rules {
            for p in &rule.parents {
                let parent = self.eval(&p.id, ctx, st);
                if parent.source == Source::CyclicPrerequisite {
                    return result(&NULL, Source::CyclicPrerequisite, "");
                }
                let ok = p
                    .condition
                    .passes(&serde_json::json!({ "value": parent.value }));
                if !ok {
                    if p.gate {
                        return result(&NULL, Source::Prerequisite, "");
                    }
                    continue 'rules;
                }
            }
            if let Some(filters) = &rule.filters
                && filtered_out(filters, ctx)
            {
                continue;
            }
            if let Some(force) = &rule.force {
                if rule
                    .condition
                    .as_ref()
                    .is_some_and(|c| !c.passes(&ctx.attributes))
                {
                    continue;
                }
                let seed = rule.seed.as_deref().unwrap_or(key);
                if !in_rollout(
                    seed,
                    rule.hash_attribute.as_deref(),
                    rule.range,
                    rule.coverage,
                    rule.hash_version,
                    ctx,
                ) {
                    continue;
                }
                return result(force, Source::Force, &rule.id);
            }
            let Some(exp) = &rule.experiment else {
                continue;
            };
            let res = self.run_in(exp, Some(key), ctx, st);
            if res.in_experiment && res.passthrough != Some(true) {
                let mut out = result(res.value, Source::Experiment, &rule.id);
                out.experiment = Some(exp);
                out.experiment_result = Some(res);
                return out;
            }
        }
        result(&feature.default_value, Source::DefaultValue, "")
    }

    /// Whether feature `key` is on for `ctx` (JavaScript truthiness of its value: `isOn`).
    pub fn is_on(&self, key: &str, ctx: &GbContext) -> bool {
        self.eval_feature(key, ctx).on
    }

    /// Whether feature `key` is off for `ctx` (`isOff`).
    pub fn is_off(&self, key: &str, ctx: &GbContext) -> bool {
        !self.is_on(key, ctx)
    }

    /// Feature `key`'s value for `ctx` (`null` for an unknown feature).
    pub fn value<'a>(&'a self, key: &'a str, ctx: &'a GbContext) -> &'a Value {
        self.eval_feature(key, ctx).value
    }

    /// Feature `key`'s value as a string, or `default` when it is not one (unknown feature,
    /// `null`, another type).
    pub fn string_value<'a>(
        &'a self,
        key: &'a str,
        ctx: &'a GbContext,
        default: &'a str,
    ) -> &'a str {
        self.value(key, ctx).as_str().unwrap_or(default)
    }

    /// Feature `key`'s value as a bool, or `default` when it is not one.
    pub fn bool_value(&self, key: &str, ctx: &GbContext, default: bool) -> bool {
        self.value(key, ctx).as_bool().unwrap_or(default)
    }

    /// Feature `key`'s value as a number, or `default` when it is not one.
    pub fn number_value(&self, key: &str, ctx: &GbContext, default: f64) -> f64 {
        self.value(key, ctx).as_f64().unwrap_or(default)
    }

    /// [`Features::eval_feature`] calling `tracking`'s callbacks (de-duplicated) for the
    /// experiments it assigns the user in and the features it evaluates, prerequisites included.
    /// Tracking allocates (its de-duplication keys); plain `eval_feature` does not.
    pub fn eval_feature_tracked<'a>(
        &'a self,
        key: &'a str,
        ctx: &'a GbContext,
        tracking: &Tracking,
    ) -> FeatureResult<'a> {
        self.eval(key, ctx, &mut Walk::new(None).tracked(tracking))
    }

    /// [`Features::run`] calling `tracking`'s experiment callback (de-duplicated).
    pub fn run_tracked<'a>(
        &'a self,
        exp: &'a Experiment,
        ctx: &'a GbContext,
        tracking: &Tracking,
    ) -> ExperimentResult<'a> {
        self.run_in(exp, None, ctx, &mut Walk::new(None).tracked(tracking))
    }

    /// Runs an inline experiment for `ctx`, as the SDK's `run`.
    pub fn run<'a>(&'a self, exp: &'a Experiment, ctx: &'a GbContext) -> ExperimentResult<'a> {
        self.run_in(exp, None, ctx, &mut Walk::new(None))
    }

    /// [`Features::run`] with sticky bucketing (see [`Features::eval_feature_sticky`]).
    pub fn run_sticky<'a>(
        &'a self,
        exp: &'a Experiment,
        ctx: &'a GbContext,
        docs: &mut StickyBuckets,
    ) -> ExperimentResult<'a> {
        self.run_in(exp, None, ctx, &mut Walk::new(Some(docs)))
    }

    fn run_in<'a>(
        &'a self,
        exp: &'a Experiment,
        feature: Option<&'a str>,
        ctx: &'a GbContext,
        st: &mut Walk<'a, '_>,
    ) -> ExperimentResult<'a> {
        let n_variations = exp.variations.len();
        let sticky_on = st.sticky.is_some() && !exp.disable_sticky;
        let fallback = if sticky_on {
            exp.fallback_attribute.as_deref()
        } else {
            None
        };
        let (hash_attribute, hash_value) =
            hash_attribute_with(exp.hash_attribute.as_deref(), fallback, ctx);
        let make = |index: i64, hash_used: bool, bucket: Option<f64>, sticky_used: bool| {
            let (index, in_experiment) = match usize::try_from(index) {
                Ok(i) if i < n_variations => (i, true),
                _ => (0, false),
            };
            let meta = exp.meta.get(index);
            ExperimentResult {
                feature_id: feature,
                value: exp.variations.get(index).unwrap_or(&NULL),
                variation_id: index,
                in_experiment,
                hash_used,
                hash_attribute,
                hash_value: hash_value.unwrap_or(&EMPTY),
                key: meta
                    .and_then(|m| m.key.as_deref())
                    .map_or(VariationKey::Index(index), VariationKey::Meta),
                name: meta.and_then(|m| m.name.as_deref()),
                bucket,
                sticky_bucket_used: sticky_used,
                passthrough: meta.and_then(|m| m.passthrough),
            }
        };
        let out = |why: i64| make(why, false, None, false);
        if n_variations < 2 || !ctx.enabled {
            return out(-1);
        }
        if let Some(v) = query_string_override(&exp.key, &ctx.url, n_variations) {
            return make(i64::try_from(v).unwrap_or(-1), false, None, false);
        }
        if let Some(&v) = ctx.forced_variations.get(&exp.key) {
            return make(v, false, None, false);
        }
        if exp.status.as_deref() == Some("draft") || !exp.active {
            return out(-1);
        }
        let Some(hv) = hash_value else {
            return out(-1);
        };
        // A stored sticky bucket decides before (and instead of) targeting; a bucket of a
        // version below the experiment's minimum blocks enrolment.
        let mut sticky: Option<usize> = None;
        let mut blocked = false;
        if sticky_on && let Some(docs) = st.sticky.as_deref() {
            let assignments = docs.assignments(
                ctx,
                exp.hash_attribute.as_deref(),
                exp.fallback_attribute.as_deref(),
            );
            blocked = (0..exp.min_bucket_version)
                .any(|v| assignments.contains_key(&format!("{}__{v}", exp.key)));
            if !blocked {
                sticky = assignments
                    .get(&format!("{}__{}", exp.key, exp.bucket_version))
                    .and_then(|k| exp.meta.iter().position(|m| m.key.as_deref() == Some(k)));
            }
        }
        if sticky.is_none() {
            if let Some(filters) = &exp.filters {
                if filtered_out(filters, ctx) {
                    return out(-1);
                }
            } else if let Some(ns) = &exp.namespace
                && !with_js_str(hv, |v| in_namespace(v, ns))
            {
                return out(-1);
            }
            if exp
                .condition
                .as_ref()
                .is_some_and(|c| !c.passes(&ctx.attributes))
            {
                return out(-1);
            }
            for p in &exp.parents {
                let parent = self.eval(&p.id, ctx, st);
                if parent.source == Source::CyclicPrerequisite
                    || !p
                        .condition
                        .passes(&serde_json::json!({ "value": parent.value }))
                {
                    return out(-1);
                }
            }
        }
        let seed = exp.seed.as_deref().unwrap_or(&exp.key);
        let Some(n) = with_js_str(hv, |v| hash(seed, v, exp.hash_version.unwrap_or(1))) else {
            return out(-1);
        };
        let assigned = match (sticky, &exp.ranges) {
            (Some(v), _) => Some(v),
            (None, Some(r)) => choose_variation(n, r),
            (None, None) => ranges(
                n_variations,
                exp.coverage.unwrap_or(1.0),
                exp.weights.as_deref(),
            )
            .position(|(s, e)| n >= s && n < e),
        };
        if blocked {
            return make(-1, false, None, true);
        }
        let Some(assigned) = assigned else {
            return out(-1);
        };
        if let Some(force) = exp.force {
            return make(force.unwrap_or(-1), false, None, false);
        }
        if ctx.qa_mode || exp.status.as_deref() == Some("stopped") {
            return out(-1);
        }
        let result = make(
            i64::try_from(assigned).unwrap_or(-1),
            true,
            Some(n),
            sticky.is_some(),
        );
        if sticky_on && let Some(docs) = st.sticky.as_deref_mut() {
            let value = js_string(hv);
            let doc = docs
                .0
                .entry(format!("{}||{value}", result.hash_attribute))
                .or_insert_with(|| StickyBucketDoc {
                    attribute_name: result.hash_attribute.to_owned(),
                    attribute_value: value,
                    assignments: std::collections::BTreeMap::new(),
                });
            doc.assignments.insert(
                format!("{}__{}", exp.key, exp.bucket_version),
                result.key.to_string(),
            );
        }
        if let Some(t) = st.tracking {
            t.experiment_viewed(exp, &result);
        }
        result
    }
}

/// The attribute hashed and its value (`None` when falsy, as the SDK's `""`).
fn hash_attribute_of<'a>(
    attr: Option<&'a str>,
    ctx: &'a GbContext,
) -> (&'a str, Option<&'a Value>) {
    let name = attr.filter(|a| !a.is_empty()).unwrap_or("id");
    let value = ctx.attributes.get(name).filter(|v| truthy(v));
    (name, value)
}

/// The hash attribute, or the fallback when the hash attribute has no value.
fn hash_attribute_with<'a>(
    attr: Option<&'a str>,
    fallback: Option<&'a str>,
    ctx: &'a GbContext,
) -> (&'a str, Option<&'a Value>) {
    let (name, value) = hash_attribute_of(attr, ctx);
    if value.is_none()
        && let Some(f) = fallback
    {
        let (fname, fvalue) = hash_attribute_of(Some(f), ctx);
        if fvalue.is_some() {
            return (fname, fvalue);
        }
    }
    (name, value)
}

fn filtered_out(filters: &[Filter], ctx: &GbContext) -> bool {
    filters.iter().any(|f| {
        let (_, v) = hash_attribute_of(f.attribute.as_deref(), ctx);
        let Some(v) = v else {
            return true;
        };
        match with_js_str(v, |v| hash(&f.seed, v, f.hash_version.unwrap_or(2))) {
            Some(n) => !f.ranges.iter().any(|&(s, e)| n >= s && n < e),
            None => true,
        }
    })
}

fn in_rollout(
    seed: &str,
    attr: Option<&str>,
    range: Option<(f64, f64)>,
    coverage: Option<f64>,
    hash_version: Option<u32>,
    ctx: &GbContext,
) -> bool {
    if range.is_none() && coverage.is_none() {
        return true;
    }
    if range.is_none() && coverage == Some(0.0) {
        return false;
    }
    let (_, v) = hash_attribute_of(attr, ctx);
    let Some(v) = v else {
        return false;
    };
    let Some(n) = with_js_str(v, |v| hash(seed, v, hash_version.unwrap_or(1))) else {
        return false;
    };
    match (range, coverage) {
        (Some((s, e)), _) => n >= s && n < e,
        (None, Some(c)) => n <= c,
        (None, None) => true,
    }
}
