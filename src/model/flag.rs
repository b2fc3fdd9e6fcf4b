//! Feature flags: the flag, its request forms and its validation. Pure: no storage, no clock.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::allocation::Traffic;
use crate::model::experiment::Experiment;
use crate::model::ids::{FlagId, FlagKey, ProjectId};
use crate::model::limits::MAX_DESCRIPTION_LEN;
use crate::model::validation::ValidationError;
use crate::model::variant::check_name;
use crate::targeting::Condition;
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

    /// Its name: `bool`, `string`, `number` or `json`.
    pub const fn as_str(self) -> &'static str {
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
    /// Served from this instant on (`Lab::tick` applies it; before: skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_from: Option<Timestamp>,
    /// Served until this instant (`Lab::tick` applies it; from then on: skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_until: Option<Timestamp>,
}

impl FlagRule {
    /// Whether the rule is served at `now` (its active window holds it). `None`: no time is
    /// known yet, so only a rule without a window is served.
    pub fn is_active_at(&self, now: Option<Timestamp>) -> bool {
        match now {
            Some(t) => {
                self.active_from.is_none_or(|f| f <= t) && self.active_until.is_none_or(|u| t < u)
            }
            None => self.active_from.is_none() && self.active_until.is_none(),
        }
    }

    /// Whether the rule's window opens or closes in `(from, to]` (either order).
    pub fn has_boundary_between(&self, from: Option<Timestamp>, to: Timestamp) -> bool {
        let Some(from) = from else {
            return self.active_from.is_some() || self.active_until.is_some();
        };
        let (lo, hi) = if from <= to { (from, to) } else { (to, from) };
        [self.active_from, self.active_until]
            .into_iter()
            .flatten()
            .any(|b| lo < b && b <= hi)
    }
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

fn unique_key_of(project: &str, environment: Option<&str>, key: &str) -> String {
    // `*` for every environment; `=name` for one (so an environment named `*` is distinct).
    match environment {
        None => format!("{project}\u{1f}*\u{1f}{key}"),
        Some(env) => format!("{project}\u{1f}={env}\u{1f}{key}"),
    }
}

fn check_flag(f: &Flag) -> Result<(), ValidationError> {
    check_description(f.description.as_deref())?;
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
        if let (Some(from), Some(until)) = (r.active_from, r.active_until)
            && until <= from
        {
            return Err(ValidationError::field(
                format!("rules[{i}].activeUntil"),
                format!("{until} is not after activeFrom {from}"),
            ));
        }
        if let Some(p) = r.percentage {
            if !(p.is_finite() && (0.0..=100.0).contains(&p)) {
                return Err(ValidationError::field(
                    format!("rules[{i}].percentage"),
                    format!("{p} is outside [0, 100]"),
                ));
            }
            Traffic::from_fraction(p / 100.0)
                .map_err(|e| ValidationError::weight(format!("rules[{i}].percentage"), e))?;
        }
    }
    Ok(())
}

fn check_description(d: Option<&str>) -> Result<(), ValidationError> {
    match d {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_LEN => Err(ValidationError::field(
            "description",
            format!(
                "{} characters, at most {MAX_DESCRIPTION_LEN} allowed",
                d.chars().count()
            ),
        )),
        _ => Ok(()),
    }
}

/// Whether an experiment in `experiment_env` may run on a flag for `flag_env`: a flag for every
/// environment takes experiments of any; a flag of one environment only experiments of that
/// environment (or of every environment, which then run only there).
fn environments_meet(flag_env: Option<&str>, experiment_env: Option<&str>) -> bool {
    match (flag_env, experiment_env) {
        (Some(f), Some(e)) => f == e,
        _ => true,
    }
}

impl Flag {
    /// This flag with only the rules active at `now` (what a snapshot compiles: the window is
    /// applied at compile time, never while evaluating).
    pub(crate) fn active_at(&self, now: Option<Timestamp>) -> Flag {
        let mut f = self.clone();
        f.rules.retain(|r| r.is_active_at(now));
        f
    }

    /// Validates a create request into a flag with id `id`, made at `now`.
    ///
    /// # Errors
    ///
    /// Invalid ids, name or description; a default or rule value not of the flag's type; a
    /// rule percentage outside [0, 100].
    pub fn create(new: NewFlag, id: FlagId, now: Timestamp) -> Result<Flag, ValidationError> {
        let flag_type = new.flag_type.unwrap_or(match &new.default_value {
            Value::Bool(_) => FlagType::Bool,
            Value::String(_) => FlagType::String,
            Value::Number(_) => FlagType::Number,
            _ => FlagType::Json,
        });
        let key = FlagKey::new(new.key).map_err(|e| e.within("key"))?;
        let flag = Flag {
            id,
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
        };
        check_flag(&flag)?;
        Ok(flag)
    }

    /// This flag with `patch` applied at `now` (only the fields given).
    ///
    /// # Errors
    ///
    /// As [`Flag::create`].
    pub fn patched(&self, patch: FlagPatch, now: Timestamp) -> Result<Flag, ValidationError> {
        let mut f = self.clone();
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
        f.updated_at = now;
        check_flag(&f)?;
        Ok(f)
    }

    /// Checks a stored flag (one read back from storage).
    ///
    /// # Errors
    ///
    /// As [`Flag::create`].
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_flag(self)
    }

    /// The key unique among flags: project, environment and flag key (`*` for every
    /// environment, `=name` for one, so an environment named `*` is distinct).
    pub fn unique_key(&self) -> String {
        unique_key_of(
            self.project_id.as_str(),
            self.environment.as_deref(),
            self.key.as_str(),
        )
    }

    /// Checks an experiment that is to run on this flag: every variant has a value of the
    /// flag's type, and its environment is the flag's (when both name one).
    ///
    /// # Errors
    ///
    /// The first variant without a value or with one of another type; an environment mismatch.
    pub fn check_experiment(&self, e: &Experiment) -> Result<(), ValidationError> {
        if !environments_meet(self.environment.as_deref(), e.environment()) {
            return Err(ValidationError::field(
                "environment",
                format!(
                    "{:?} is not the environment of flag {:?} ({:?})",
                    e.environment().unwrap_or("*"),
                    self.key.as_str(),
                    self.environment.as_deref().unwrap_or("*")
                ),
            ));
        }
        for (i, v) in e.variants().iter().enumerate() {
            let value = v.value.as_ref().ok_or_else(|| {
                ValidationError::field(
                    format!("variants[{i}].value"),
                    "missing: a flag experiment's variants need a value",
                )
            })?;
            if !self.flag_type.accepts(value) {
                return Err(ValidationError::field(
                    format!("variants[{i}].value"),
                    format!(
                        "{value} is not a {} value (flag {:?})",
                        self.flag_type.as_str(),
                        self.key.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }
}
