//! Feature flags, flag-attached experiments and flag evaluation.
//!
//! # How a flag is evaluated
//!
//! For `evaluate(project, environment, key, context)`:
//! 1. the flag is the one with that key in the project for that environment, or else the one
//!    for every environment;
//! 2. **a running experiment attached to the flag in that environment is served whatever
//!    `enabled` says**: starting the experiment is the decision to serve it (this is how the
//!    flag API's walkthrough works: its flag is created disabled and never enabled, yet
//!    evaluation returns the allocated variant once the experiment starts). A unit the
//!    experiment does not allocate (outside its traffic or audience) falls through;
//! 3. a disabled flag serves its default value (reason `disabled`);
//! 4. the first targeting rule whose condition matches (and whose percentage rollout includes
//!    the unit) serves its value (reason `targeting_match`);
//! 5. otherwise the default value (reason `default`).
//!
//! A stopped experiment no longer affects evaluation (the flag API's lifecycle table); stopping
//! with `promote_winner` makes the winner's value the flag's new default in the same call.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::allocation::{LayerHasher, Traffic};
use crate::assign::{CompiledExperiment, Exposure, Reason, Snapshot};
use crate::context::Context;
use crate::error::{Error, ValidationError};
use crate::hashing::FastMap;
use crate::lab::{Lab, StopRequest};
use crate::lifecycle::{Operation, Status};
use crate::model::experiment::{Experiment, NewExperiment};
use crate::model::ids::{FlagId, FlagKey, ProjectId, VariantKey};
use crate::model::variant::check_name;
use crate::storage::RecordKind;
use crate::targeting::{Condition, SavedGroups};
use crate::time::Timestamp;

/// The type of a flag's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagType {
    /// `true` / `false`.
    #[serde(alias = "boolean")]
    Bool,
    /// A string.
    String,
    /// A number.
    Number,
    /// Any JSON value.
    Json,
}

impl FlagType {
    /// Whether `value` has this type.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            FlagType::Bool => value.is_boolean(),
            FlagType::String => value.is_string(),
            FlagType::Number => value.is_number(),
            FlagType::Json => true,
        }
    }

    const fn as_str(self) -> &'static str {
        match self {
            FlagType::Bool => "bool",
            FlagType::String => "string",
            FlagType::Number => "number",
            FlagType::Json => "json",
        }
    }
}

/// A targeting rule: when `condition` matches (and the unit is in `percentage`), serve `value`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagRule {
    /// Its id, reported as `rule_id` by evaluation.
    pub id: String,
    /// Who it applies to (`{}` for everyone).
    #[serde(default = "Condition::always")]
    pub condition: Condition,
    /// The value it serves.
    pub value: Value,
    /// A percentage rollout (0 to 100): only this share of matching units get the value.
    #[serde(default)]
    pub percentage: Option<f64>,
}

/// A feature flag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flag {
    /// Its id.
    pub id: FlagId,
    /// Its project.
    #[serde(alias = "project_id")]
    pub project_id: ProjectId,
    /// Its key, unique within the project and environment.
    pub key: FlagKey,
    /// A human name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The type of its values.
    #[serde(alias = "flag_type")]
    pub flag_type: FlagType,
    /// The value served when nothing else applies.
    #[serde(alias = "default_value")]
    pub default_value: Value,
    /// Whether its rules are served.
    pub enabled: bool,
    /// The environment it is for; `None` for every environment.
    #[serde(default)]
    pub environment: Option<String>,
    /// Ordered targeting rules.
    #[serde(default)]
    pub rules: Vec<FlagRule>,
    /// When it was created.
    #[serde(alias = "created_at")]
    pub created_at: Timestamp,
    /// When it last changed.
    #[serde(alias = "updated_at")]
    pub updated_at: Timestamp,
    /// Its storage version.
    #[serde(default)]
    pub version: u64,
}

/// A request to create a flag: the flag API's body as written.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewFlag {
    /// Its project.
    #[serde(alias = "project_id")]
    pub project_id: String,
    /// Its key.
    pub key: String,
    /// A human name (default: the key).
    #[serde(default)]
    pub name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The type of its values.
    #[serde(alias = "flag_type")]
    pub flag_type: Option<FlagType>,
    /// The default value.
    #[serde(alias = "default_value")]
    pub default_value: Value,
    /// Created enabled? (default false, as the flag API).
    #[serde(default)]
    pub enabled: bool,
    /// Its environment (`None`: every environment).
    #[serde(default)]
    pub environment: Option<String>,
    /// Targeting rules.
    #[serde(default)]
    pub rules: Vec<FlagRule>,
}

/// A partial update of a flag.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New default value.
    #[serde(default, alias = "default_value")]
    pub default_value: Option<Value>,
    /// Enable or disable.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// New rules (replace all).
    #[serde(default)]
    pub rules: Option<Vec<FlagRule>>,
}

fn unique_key(project: &str, environment: Option<&str>, key: &str) -> String {
    // `*` for every environment; `=name` for one (so an environment named `*` is distinct).
    match environment {
        None => format!("{project}\u{1f}*\u{1f}{key}"),
        Some(env) => format!("{project}\u{1f}={env}\u{1f}{key}"),
    }
}

fn check_flag(f: &Flag) -> Result<(), ValidationError> {
    check_name("name", &f.name)?;
    if !f.flag_type.accepts(&f.default_value) {
        return Err(ValidationError::field(
            "defaultValue",
            format!(
                "{} is not a {} value",
                f.default_value,
                f.flag_type.as_str()
            ),
        ));
    }
    let mut ids: Vec<&str> = Vec::new();
    for (i, r) in f.rules.iter().enumerate() {
        if r.id.is_empty() || ids.contains(&r.id.as_str()) {
            return Err(ValidationError::field(
                format!("rules[{i}].id"),
                format!("{:?} is empty or duplicate", r.id),
            ));
        }
        ids.push(&r.id);
        if !f.flag_type.accepts(&r.value) {
            return Err(ValidationError::field(
                format!("rules[{i}].value"),
                format!("{} is not a {} value", r.value, f.flag_type.as_str()),
            ));
        }
        if let Some(p) = r.percentage {
            if !(p.is_finite() && (0.0..=100.0).contains(&p)) {
                return Err(ValidationError::field(
                    format!("rules[{i}].percentage"),
                    format!("{p} is outside [0, 100]"),
                ));
            }
            Traffic::from_fraction(p / 100.0).map_err(|e| {
                ValidationError::field(format!("rules[{i}].percentage"), e.to_string())
            })?;
        }
    }
    Ok(())
}

/// Checks a flag-attached experiment against its flag: the flag exists and every variant has a
/// value of the flag's type.
pub(crate) fn check_flag_experiment(lab: &Lab, flag_id: &str, e: &Experiment) -> Result<(), Error> {
    let flag = lab.get_flag(flag_id)?;
    for (i, v) in e.variants().iter().enumerate() {
        let value = v.value.as_ref().ok_or_else(|| {
            ValidationError::field(
                format!("variants[{i}].value"),
                "missing: a flag experiment's variants need a value",
            )
        })?;
        if !flag.flag_type.accepts(value) {
            return Err(ValidationError::field(
                format!("variants[{i}].value"),
                format!(
                    "{value} is not a {} value (flag {:?})",
                    flag.flag_type.as_str(),
                    flag.key.as_str()
                ),
            )
            .into());
        }
    }
    Ok(())
}

struct CompiledRule {
    id: String,
    condition: Condition,
    value: Value,
    rollout: Option<(LayerHasher, u16)>,
}

/// A flag compiled for evaluation.
pub(crate) struct CompiledFlag {
    flag: Flag,
    rules: Vec<CompiledRule>,
    /// Running experiments attached to it: (environment, experiment).
    experiments: Vec<(Option<String>, Arc<CompiledExperiment>)>,
}

impl std::fmt::Debug for CompiledFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledFlag")
            .field("key", &self.flag.key)
            .finish_non_exhaustive()
    }
}

/// The flags of one key in one project: the one for every environment and the
/// environment-specific ones.
#[derive(Debug, Default)]
struct KeyEntry {
    project: Box<str>,
    key: Box<str>,
    any: Option<usize>,
    per_env: Vec<(Box<str>, usize)>,
}

impl KeyEntry {
    fn for_env(&self, environment: &str) -> Option<usize> {
        self.per_env
            .iter()
            .find(|(e, _)| &**e == environment)
            .map(|(_, i)| *i)
            .or(self.any)
    }
}

/// The flag index of a snapshot. Lookups hash (project, key) once into a `u64` and compare the
/// strings of the (almost always single) entry found; `evaluate_all` walks a per-project list
/// sorted by key.
#[derive(Debug, Default)]
pub(crate) struct FlagIndex {
    flags: Vec<CompiledFlag>,
    entries: Vec<KeyEntry>,
    by_hash: std::collections::HashMap<u64, Vec<usize>, crate::hashing::IdentityBuild>,
    by_project: FastMap<Box<str>, Vec<usize>>,
    keys: crate::hashing::Seeded,
}

impl FlagIndex {
    fn find(&self, project: &str, environment: &str, key: &str) -> Option<usize> {
        let h = self.keys.hash_pair(project, key);
        let candidates = self.by_hash.get(&h)?;
        candidates
            .iter()
            .filter_map(|&i| self.entries.get(i))
            .find(|e| &*e.project == project && &*e.key == key)
            .and_then(|e| e.for_env(environment))
    }

    fn flag(&self, i: usize) -> Option<&CompiledFlag> {
        self.flags.get(i)
    }
}

pub(crate) fn compile_flags(
    lab: &Lab,
    snapshot: &mut Snapshot,
    groups: &SavedGroups,
) -> Result<(), Error> {
    let mut index = FlagIndex::default();
    let mut entry_of: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in lab.storage().list_records(RecordKind::Flag)? {
        let mut flag: Flag = serde_json::from_value(r.body.clone()).map_err(|e| {
            Error::Storage(crate::storage::StorageError::Corrupt(format!(
                "flag {:?}: {e}",
                r.id
            )))
        })?;
        flag.version = r.version;
        let rules = flag
            .rules
            .iter()
            .map(|rule| CompiledRule {
                id: rule.id.clone(),
                condition: rule.condition.bind_lenient(groups),
                value: rule.value.clone(),
                rollout: rule.percentage.map(|p| {
                    let bp = Traffic::from_fraction(p / 100.0).map_or(0, Traffic::basis_points);
                    (LayerHasher::new(&format!("{}:{}", flag.key, rule.id)), bp)
                }),
            })
            .collect();
        let experiments = snapshot
            .experiments
            .values()
            .filter(|c| {
                let e = c.experiment();
                e.status() == Status::Running && e.flag_id() == Some(&flag.id)
            })
            .map(|c| {
                (
                    c.experiment().environment().map(str::to_owned),
                    Arc::clone(c),
                )
            })
            .collect::<Vec<_>>();
        // The snapshot's map iterates in a per-process hash order: sort so every process
        // serves the same experiment first.
        let mut experiments = experiments;
        experiments.sort_by(|a, b| a.1.experiment().id().cmp(b.1.experiment().id()));
        let i = index.flags.len();
        let slot = *entry_of
            .entry((flag.project_id.to_string(), flag.key.to_string()))
            .or_insert_with(|| {
                index.entries.push(KeyEntry {
                    project: flag.project_id.as_str().into(),
                    key: flag.key.as_str().into(),
                    ..KeyEntry::default()
                });
                index.entries.len() - 1
            });
        if let Some(entry) = index.entries.get_mut(slot) {
            match &flag.environment {
                None => entry.any = Some(i),
                Some(env) => entry.per_env.push((env.as_str().into(), i)),
            }
        }
        index.flags.push(CompiledFlag {
            flag,
            rules,
            experiments,
        });
    }
    // entry_of iterates sorted by (project, key): per-project lists come out sorted by key.
    for ((project, key), slot) in entry_of {
        let h = index.keys.hash_pair(&project, &key);
        index.by_hash.entry(h).or_default().push(slot);
        index
            .by_project
            .entry(project.into())
            .or_default()
            .push(slot);
    }
    snapshot.flags = index;
    Ok(())
}

/// Why a flag evaluated to its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EvaluationReason {
    /// Nothing applied: the default value.
    Default,
    /// The flag is disabled: the default value.
    Disabled,
    /// A targeting rule matched.
    TargetingMatch,
    /// A running experiment allocated the unit (by the hash, a sticky assignment or an override).
    Split,
    /// Something went wrong: see the error code; the default value.
    Error,
}

/// OpenFeature-style error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// No flag with that key in that project and environment.
    FlagNotFound,
    /// The value is not of the type asked for.
    TypeMismatch,
    /// A running experiment needs a targeting key and the context has none.
    TargetingKeyMissing,
    /// The stored configuration could not be parsed.
    ParseError,
}

#[derive(Clone, Copy, Debug)]
enum Source {
    None,
    Default,
    Rule(usize),
    Variant(usize, u32),
}

type SnapshotGuard = arc_swap::Guard<Arc<Snapshot>>;

/// The result of evaluating one flag. Holds the snapshot it read (an `arc-swap` guard: no
/// reference count is touched, no copy is made).
pub struct Evaluation<'c> {
    snapshot: SnapshotGuard,
    flag: Option<usize>,
    source: Source,
    reason: EvaluationReason,
    error: Option<ErrorCode>,
    ctx: &'c Context,
}

impl std::fmt::Debug for Evaluation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluation")
            .field("value", &self.value())
            .field("variant", &self.variant_key())
            .field("rule_id", &self.rule_id())
            .field("reason", &self.reason)
            .field("error", &self.error)
            .finish()
    }
}

static NULL: Value = Value::Null;

fn value_of(f: &CompiledFlag, source: Source) -> &Value {
    match source {
        Source::None => &NULL,
        Source::Default => &f.flag.default_value,
        Source::Rule(i) => f.rules.get(i).map_or(&NULL, |r| &r.value),
        Source::Variant(e, v) => f
            .experiments
            .get(e)
            .and_then(|(_, x)| x.experiment().variants().get(v as usize))
            .and_then(|v| v.value.as_ref())
            .unwrap_or(&NULL),
    }
}

fn rule_id_of(f: &CompiledFlag, source: Source) -> Option<&str> {
    match source {
        Source::Rule(i) => f.rules.get(i).map(|r| r.id.as_str()),
        _ => None,
    }
}

impl<'c> Evaluation<'c> {
    fn compiled(&self) -> Option<&CompiledFlag> {
        self.flag.and_then(|i| self.snapshot.flags.flag(i))
    }

    /// The value served (`null` for a flag not found).
    pub fn value(&self) -> &Value {
        self.compiled().map_or(&NULL, |f| value_of(f, self.source))
    }

    /// The experiment variant served, if an experiment decided.
    pub fn variant_key(&self) -> Option<&VariantKey> {
        match (self.compiled(), self.source) {
            (Some(f), Source::Variant(e, v)) => f
                .experiments
                .get(e)
                .and_then(|(_, x)| x.experiment().variants().get(v as usize))
                .map(|v| &v.id),
            _ => None,
        }
    }

    /// The id of the rule that matched.
    pub fn rule_id(&self) -> Option<&str> {
        self.compiled().and_then(|f| rule_id_of(f, self.source))
    }

    /// Why.
    pub fn reason(&self) -> EvaluationReason {
        self.reason
    }

    /// The error, when the reason is [`EvaluationReason::Error`].
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.error
    }

    /// The exposure this evaluation implies (when an experiment allocated the unit); record it
    /// through [`Lab::record_exposure`].
    pub fn exposure(&self) -> Option<Exposure<'_>> {
        let (Some(f), Source::Variant(e, v)) = (self.compiled(), self.source) else {
            return None;
        };
        let (_, x) = f.experiments.get(e)?;
        let forced = x.experiment().overrides().contains_key(x.unit_id(self.ctx));
        x.exposure_for(self.ctx, v, forced)
    }

    /// The value as a bool, or `default` when it is not one.
    pub fn bool_or(&self, default: bool) -> bool {
        self.value().as_bool().unwrap_or(default)
    }

    /// The value as a string, or `default` when it is not one.
    pub fn str_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.value().as_str().unwrap_or(default)
    }

    /// The value as a number, or `default` when it is not one.
    pub fn f64_or(&self, default: f64) -> f64 {
        self.value().as_f64().unwrap_or(default)
    }
}

/// The flag API's evaluate response: `{"flags": {key: {"value": …, "rule_id": …}}}`, keys
/// sorted. Borrows every value from the snapshot it read: building it copies nothing.
pub struct EvaluateAllResponse {
    snapshot: SnapshotGuard,
    results: Vec<(usize, Source)>,
}

impl std::fmt::Debug for EvaluateAllResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v, r)| (k, (v, r))))
            .finish()
    }
}

impl EvaluateAllResponse {
    /// (key, value, rule id) for every flag, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value, Option<&str>)> {
        self.results.iter().filter_map(|(i, source)| {
            let f = self.snapshot.flags.flag(*i)?;
            Some((
                f.flag.key.as_str(),
                value_of(f, *source),
                rule_id_of(f, *source),
            ))
        })
    }

    /// The value of flag `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.iter().find(|(k, _, _)| *k == key).map(|(_, v, _)| v)
    }

    /// How many flags.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }
}

impl Serialize for EvaluateAllResponse {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Flags<'a>(&'a EvaluateAllResponse);
        impl Serialize for Flags<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (key, value, rule_id) in self.0.iter() {
                    m.serialize_entry(key, &FlagValue { value, rule_id })?;
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("flags", &Flags(self))?;
        m.end()
    }
}

/// One flag in the flag API's evaluate response: `{"value": …, "rule_id": …}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FlagValue<'a> {
    /// The value.
    pub value: &'a Value,
    /// The matching rule's id, or null.
    pub rule_id: Option<&'a str>,
}

fn evaluate_compiled(
    f: &CompiledFlag,
    environment: &str,
    ctx: &Context,
) -> (Source, EvaluationReason, Option<ErrorCode>) {
    let mut key_missing = false;
    for (i, (env, x)) in f.experiments.iter().enumerate() {
        if env.as_deref().is_some_and(|e| e != environment) {
            continue;
        }
        let a = x.assign(ctx);
        key_missing |= a.reason() == Reason::NoUnitId;
        if let (true, Some(v)) = (a.reason().is_assigned(), a.variant_index()) {
            return (Source::Variant(i, v), EvaluationReason::Split, None);
        }
    }
    // A unit without a targeting key still gets the flag's rules; only when nothing else
    // applies is the missing key reported (with the default value).
    let fallback = |otherwise: EvaluationReason| {
        if key_missing {
            (
                Source::Default,
                EvaluationReason::Error,
                Some(ErrorCode::TargetingKeyMissing),
            )
        } else {
            (Source::Default, otherwise, None)
        }
    };
    if !f.flag.enabled {
        return fallback(EvaluationReason::Disabled);
    }
    for (i, rule) in f.rules.iter().enumerate() {
        if !rule.condition.matches(ctx.attributes()) {
            continue;
        }
        if let Some((h, bp)) = &rule.rollout {
            let unit = ctx.key().unwrap_or("");
            if unit.is_empty() || h.bucket(unit.as_bytes()) >= *bp {
                continue;
            }
        }
        return (Source::Rule(i), EvaluationReason::TargetingMatch, None);
    }
    fallback(EvaluationReason::Default)
}

impl Lab {
    /// Creates a flag (the flag API's create body deserializes into [`NewFlag`]).
    ///
    /// # Errors
    ///
    /// A duplicate key in the project and environment ([`Error::Conflict`]); a default or rule
    /// value not of the flag's type; invalid ids.
    pub fn create_flag(&self, new: NewFlag) -> Result<Flag, Error> {
        let now = self.now();
        let flag_type = new.flag_type.unwrap_or(match &new.default_value {
            Value::Bool(_) => FlagType::Bool,
            Value::String(_) => FlagType::String,
            Value::Number(_) => FlagType::Number,
            _ => FlagType::Json,
        });
        let key = FlagKey::new(new.key).map_err(|e| e.within("key"))?;
        let mut flag = Flag {
            id: FlagId::new(self.new_id("flag_"))?,
            project_id: ProjectId::new(new.project_id).map_err(|e| e.within("projectId"))?,
            name: new.name.unwrap_or_else(|| key.to_string()),
            key,
            description: new.description,
            flag_type,
            default_value: new.default_value,
            enabled: new.enabled,
            environment: new.environment,
            rules: new.rules,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        check_flag(&flag)?;
        let uk = unique_key(
            flag.project_id.as_str(),
            flag.environment.as_deref(),
            flag.key.as_str(),
        );
        let body = serde_json::to_value(&flag)
            .map_err(|e| ValidationError::field("flag", e.to_string()))?;
        flag.version = self
            .write_config(RecordKind::Flag, flag.id.as_str(), Some(&uk), &body, None)
            .map_err(|e| match e {
                Error::Storage(crate::storage::StorageError::UniqueViolation { .. }) => {
                    Error::Conflict(format!(
                        "flag key {:?} already exists in project {:?}",
                        flag.key.as_str(),
                        flag.project_id.as_str()
                    ))
                }
                other => other,
            })?;
        Ok(flag)
    }

    /// The flag `id`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; a storage failure.
    pub fn get_flag(&self, id: &str) -> Result<Flag, Error> {
        let r = self
            .storage()
            .get_record(RecordKind::Flag, id)?
            .ok_or_else(|| Error::not_found("flag", id))?;
        let mut f: Flag = serde_json::from_value(r.body).map_err(|e| {
            Error::Storage(crate::storage::StorageError::Corrupt(format!(
                "flag {id:?}: {e}"
            )))
        })?;
        f.version = r.version;
        Ok(f)
    }

    /// Every flag of `project`, sorted by key.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn list_flags(&self, project: &str) -> Result<Vec<Flag>, Error> {
        let mut out = Vec::new();
        for r in self.storage().list_records(RecordKind::Flag)? {
            let f: Flag = serde_json::from_value(r.body).map_err(|e| {
                Error::Storage(crate::storage::StorageError::Corrupt(e.to_string()))
            })?;
            if f.project_id == project {
                out.push(f);
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Changes a flag: only the fields given.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; values not of the flag's type; a concurrent change.
    pub fn update_flag(&self, id: &str, patch: FlagPatch) -> Result<Flag, Error> {
        let mut f = self.get_flag(id)?;
        let expected = f.version;
        if let Some(n) = patch.name {
            f.name = n;
        }
        if let Some(d) = patch.description {
            f.description = Some(d);
        }
        if let Some(v) = patch.default_value {
            f.default_value = v;
        }
        if let Some(e) = patch.enabled {
            f.enabled = e;
        }
        if let Some(r) = patch.rules {
            f.rules = r;
        }
        f.updated_at = self.now();
        check_flag(&f)?;
        let uk = unique_key(
            f.project_id.as_str(),
            f.environment.as_deref(),
            f.key.as_str(),
        );
        let body =
            serde_json::to_value(&f).map_err(|e| ValidationError::field("flag", e.to_string()))?;
        f.version = self.write_config(RecordKind::Flag, id, Some(&uk), &body, Some(expected))?;
        Ok(f)
    }

    /// Enables or disables a flag.
    ///
    /// # Errors
    ///
    /// As [`Lab::update_flag`].
    pub fn set_flag_enabled(&self, id: &str, enabled: bool) -> Result<Flag, Error> {
        self.update_flag(
            id,
            FlagPatch {
                enabled: Some(enabled),
                ..FlagPatch::default()
            },
        )
    }

    /// Deletes a flag that has no running experiment.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] while an attached experiment runs; [`Error::NotFound`].
    pub fn delete_flag(&self, id: &str) -> Result<(), Error> {
        let f = self.get_flag(id)?;
        let running = self.snapshot().experiments.values().any(|c| {
            c.experiment().flag_id() == Some(&f.id) && c.experiment().status() == Status::Running
        });
        if running {
            return Err(Error::Conflict(format!(
                "flag {:?} has a running experiment; stop it first",
                f.key.as_str()
            )));
        }
        let _w = self.lock_writer();
        self.storage()
            .delete_record(RecordKind::Flag, id, f.version)?;
        self.rebuild()
    }

    /// Attaches a draft experiment to flag `flag_id` (the flag API's experiment body as
    /// written). Variant values must be of the flag's type.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for the flag; [`Error::Validation`].
    pub fn create_flag_experiment(
        &self,
        flag_id: &str,
        mut new: NewExperiment,
    ) -> Result<Experiment, Error> {
        self.get_flag(flag_id)?;
        new.flag_id = Some(flag_id.to_owned());
        self.create_experiment(new)
    }

    /// Stops a flag's running experiment; with `promote_winner`, the winner's value becomes
    /// the flag's default value in the same call. The two are separate writes: if the
    /// promotion fails (a concurrent flag change, say), the stop stands and calling again with
    /// the same winner completes the promotion.
    ///
    /// # Errors
    ///
    /// As [`Lab::stop`]; `promote_winner` without a winner.
    pub fn stop_flag_experiment(
        &self,
        experiment_id: &str,
        request: StopRequest,
        promote_winner: bool,
    ) -> Result<Experiment, Error> {
        if promote_winner && request.winner.is_none() {
            return Err(ValidationError::field("winner", "promote_winner needs a winner").into());
        }
        let e = self.get_experiment(experiment_id)?;
        let flag_id = e
            .flag_id()
            .ok_or_else(|| {
                ValidationError::field(
                    "experimentId",
                    format!("{experiment_id:?} is not attached to a flag"),
                )
            })?
            .clone();
        // A retry after the promotion failed: the stop already happened with this winner, so
        // only the promotion is left to do (the call is safe to repeat).
        let already_stopped = e.status() == Status::Stopped
            && promote_winner
            && e.winner().map(VariantKey::as_str) == request.winner.as_deref();
        if !already_stopped && !e.status().allows(Operation::Stop) {
            return Err(Error::Lifecycle {
                id: experiment_id.to_owned(),
                operation: Operation::Stop,
                status: e.status(),
            });
        }
        let winner_value = match &request.winner {
            Some(w) if promote_winner => {
                Some(e.variant(w).and_then(|v| v.value.clone()).ok_or_else(|| {
                    ValidationError::field("winner", format!("unknown variant {w:?}"))
                })?)
            }
            _ => None,
        };
        let stopped = if already_stopped {
            e
        } else {
            self.stop(experiment_id, request)?
        };
        if let Some(v) = winner_value {
            self.update_flag(
                flag_id.as_str(),
                FlagPatch {
                    default_value: Some(v),
                    ..FlagPatch::default()
                },
            )?;
        }
        Ok(stopped)
    }

    /// Evaluates flag `key` of `project` in `environment` for `ctx`. Never fails: problems are
    /// reported through [`Evaluation::reason`] and [`Evaluation::error_code`]. Reads only the
    /// snapshot: no I/O, no clock, no allocation.
    pub fn evaluate<'c>(
        &self,
        project: &str,
        environment: &str,
        key: &str,
        ctx: &'c Context,
    ) -> Evaluation<'c> {
        let snapshot = self.snapshot();
        let found = snapshot.flags.find(project, environment, key);
        let (source, reason, error) = match found.and_then(|i| snapshot.flags.flag(i)) {
            Some(f) => evaluate_compiled(f, environment, ctx),
            None => (
                Source::None,
                EvaluationReason::Error,
                Some(ErrorCode::FlagNotFound),
            ),
        };
        Evaluation {
            snapshot,
            flag: found,
            source,
            reason,
            error,
            ctx,
        }
    }

    /// Evaluates a flag as a bool, with `default` for any error or type mismatch.
    pub fn bool_value(
        &self,
        project: &str,
        environment: &str,
        key: &str,
        ctx: &Context,
        default: bool,
    ) -> bool {
        self.evaluate(project, environment, key, ctx)
            .bool_or(default)
    }

    /// Evaluates a flag as a string, with `default` for any error or type mismatch.
    pub fn string_value(
        &self,
        project: &str,
        environment: &str,
        key: &str,
        ctx: &Context,
        default: &str,
    ) -> String {
        self.evaluate(project, environment, key, ctx)
            .str_or(default)
            .to_owned()
    }

    /// Evaluates a flag as a number, with `default` for any error or type mismatch.
    pub fn number_value(
        &self,
        project: &str,
        environment: &str,
        key: &str,
        ctx: &Context,
        default: f64,
    ) -> f64 {
        self.evaluate(project, environment, key, ctx)
            .f64_or(default)
    }

    /// Evaluates a flag as JSON, with `default` for a flag not found.
    pub fn json_value(
        &self,
        project: &str,
        environment: &str,
        key: &str,
        ctx: &Context,
        default: Value,
    ) -> Value {
        let e = self.evaluate(project, environment, key, ctx);
        if e.error_code() == Some(ErrorCode::FlagNotFound) {
            default
        } else {
            e.value().clone()
        }
    }

    /// Evaluates every flag of `project` in `environment`: the flag API's evaluate response.
    /// One allocation (the result list); every value is borrowed from the snapshot.
    pub fn evaluate_all(
        &self,
        project: &str,
        environment: &str,
        ctx: &Context,
    ) -> EvaluateAllResponse {
        let snapshot = self.snapshot();
        let mut results = Vec::new();
        if let Some(slots) = snapshot.flags.by_project.get(project) {
            results.reserve(slots.len());
            for &slot in slots {
                let Some(i) = snapshot
                    .flags
                    .entries
                    .get(slot)
                    .and_then(|e| e.for_env(environment))
                else {
                    continue;
                };
                if let Some(f) = snapshot.flags.flag(i) {
                    results.push((i, evaluate_compiled(f, environment, ctx).0));
                }
            }
        }
        EvaluateAllResponse { snapshot, results }
    }
}
