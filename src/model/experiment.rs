//! The experiment: its definition, its request forms and its validation.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::allocation::{BucketRange, Traffic, Weights};
use crate::model::bandit::{Bandit, BanditSettings};
use crate::model::ids::{AudienceId, ExperimentId, FlagId, LayerId, ProjectId, VariantKey};
use crate::model::lifecycle::Status;
use crate::model::limits::{MAX_DESCRIPTION_LEN, MAX_METRIC_SLOTS};
use crate::model::metric::{MetricCatalogue, MetricDefinition, MetricSpec};
use crate::model::validation::ValidationError;
use crate::model::variant::{NewVariant, Variant, check_name, resolve_variants};
use crate::targeting::Condition;
use crate::time::Timestamp;

/// What kind of experiment this is. Informational: every type allocates the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExperimentType {
    /// A classic A/B (or A/B/n) test: the flow API's `ab_test`.
    #[default]
    AbTest,
    /// Several factors varied at once.
    Multivariate,
    /// A feed-ranking experiment: variants carry ranking weights.
    Ranking,
    /// A remote-configuration experiment: variants carry config values.
    Config,
    /// A feature experiment, such as one attached to a flag.
    Feature,
    /// A multi-armed bandit: `Lab::tick` moves traffic to the best arm by Thompson sampling on
    /// the primary metric (sticky bucketing is always on, so units keep their arm).
    Bandit,
}

impl fmt::Display for ExperimentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ExperimentType::AbTest => "ab_test",
            ExperimentType::Multivariate => "multivariate",
            ExperimentType::Ranking => "ranking",
            ExperimentType::Config => "config",
            ExperimentType::Feature => "feature",
            ExperimentType::Bandit => "bandit",
        };
        f.write_str(s)
    }
}

/// Where an experiment sits in a layer (namespace): the range of the layer's buckets it owns.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LayerPlacement {
    /// The layer.
    pub id: LayerId,
    /// The layer buckets this experiment owns, `[start, end)` in basis points.
    pub range: BucketRange,
}

/// A request to create an experiment: every source API's create body deserializes into it as
/// written.
///
/// # Examples
///
/// ```
/// use abkit::NewExperiment;
///
/// let flow_api_body = r#"{
///   "name": "Onboarding Flow Test",
///   "type": "ab_test",
///   "audienceId": "aud_xyz",
///   "variants": [
///     {"name": "Control", "splitPercentage": 50, "flowId": "flow_a", "config": {}},
///     {"name": "Detailed", "splitPercentage": 50, "flowId": "flow_b", "config": {}}
///   ]
/// }"#;
/// let new: NewExperiment = serde_json::from_str(flow_api_body)?;
/// assert_eq!(new.variants.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewExperiment {
    /// 1 to 200 characters.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// `ab_test` (default), `ranking`, `config`, `feature`, `multivariate`.
    #[serde(default, rename = "type")]
    pub kind: Option<ExperimentType>,
    /// The project it belongs to (a flag-attached experiment: its flag's project). `None`: no
    /// project; a project-bound API key neither sees nor changes it.
    #[serde(default, alias = "project_id")]
    pub project_id: Option<String>,
    /// A saved audience; may not exist yet while in draft, must resolve at start.
    #[serde(default, alias = "audience_id")]
    pub audience_id: Option<String>,
    /// An inline targeting condition (the feed API's `targetingRules`).
    #[serde(default, alias = "targetingRules", alias = "targeting_rules")]
    pub targeting: Option<Value>,
    /// The fraction of units in the experiment, 0.0 to 1.0 (default 1.0).
    #[serde(default)]
    pub traffic: Option<f64>,
    /// At least two variants.
    #[serde(default)]
    pub variants: Vec<NewVariant>,
    /// Metrics, by name or as objects; the first is primary. Default: `conversion`.
    #[serde(default)]
    pub metrics: Vec<MetricSpec>,
    /// The hashing salt (default: the experiment id). Changing it re-randomises every unit.
    #[serde(default)]
    pub salt: Option<String>,
    /// The flag this experiment is attached to.
    #[serde(default, alias = "flag_id")]
    pub flag_id: Option<String>,
    /// The flag environment it runs in (flag-attached experiments).
    #[serde(default)]
    pub environment: Option<String>,
    /// Its layer and range, for mutually exclusive experiments.
    #[serde(default)]
    pub layer: Option<LayerPlacement>,
    /// The context attribute to hash instead of the targeting key (a device id, say).
    #[serde(default, alias = "hash_attribute")]
    pub hash_attribute: Option<String>,
    /// Sticky bucketing: a unit's stored assignment wins over the hash.
    #[serde(default, alias = "stickyBucketing")]
    pub sticky: Option<bool>,
    /// Units forced into variants (QA, staff): unit id → variant id. Left out of results.
    #[serde(default)]
    pub overrides: BTreeMap<String, String>,
    /// When `Lab::tick` starts it (a draft whose time has come).
    #[serde(default, alias = "start_at")]
    pub start_at: Option<Timestamp>,
    /// When `Lab::tick` stops it (a running experiment whose time has come).
    #[serde(default, alias = "stop_at")]
    pub stop_at: Option<Timestamp>,
    /// Bandit settings (type `bandit`; defaults when left out).
    #[serde(default)]
    pub bandit: Option<BanditSettings>,
}

/// A partial update: only the fields given change. Allowed in draft only.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New type.
    #[serde(default, rename = "type")]
    pub kind: Option<ExperimentType>,
    /// New audience.
    #[serde(default, alias = "audience_id")]
    pub audience_id: Option<String>,
    /// New inline targeting condition.
    #[serde(default, alias = "targetingRules")]
    pub targeting: Option<Value>,
    /// New traffic fraction.
    #[serde(default)]
    pub traffic: Option<f64>,
    /// New variants (replace all).
    #[serde(default)]
    pub variants: Option<Vec<NewVariant>>,
    /// New metrics (replace all).
    #[serde(default)]
    pub metrics: Option<Vec<MetricSpec>>,
    /// New salt.
    #[serde(default)]
    pub salt: Option<String>,
    /// New layer placement.
    #[serde(default)]
    pub layer: Option<LayerPlacement>,
    /// New hash attribute.
    #[serde(default)]
    pub hash_attribute: Option<String>,
    /// Sticky bucketing on or off.
    #[serde(default)]
    pub sticky: Option<bool>,
    /// New overrides (replace all).
    #[serde(default)]
    pub overrides: Option<BTreeMap<String, String>>,
    /// New scheduled start.
    #[serde(default, alias = "start_at")]
    pub start_at: Option<Timestamp>,
    /// New scheduled stop.
    #[serde(default, alias = "stop_at")]
    pub stop_at: Option<Timestamp>,
    /// New bandit settings (type `bandit`).
    #[serde(default)]
    pub bandit: Option<BanditSettings>,
}

/// An experiment: validated, as stored and served.
///
/// Built by [`crate::Experiments::create`]; read through its getters; serializes to the
/// canonical camelCase form, which deserializes back (with the same validation).
#[derive(Clone, Debug, PartialEq)]
pub struct Experiment(ExperimentData);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExperimentData {
    pub(crate) id: ExperimentId,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(rename = "type", default)]
    pub(crate) kind: ExperimentType,
    #[serde(default)]
    pub(crate) status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) project_id: Option<ProjectId>,
    #[serde(default)]
    pub(crate) audience_id: Option<AudienceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) targeting: Option<Condition>,
    #[serde(default)]
    pub(crate) traffic: Traffic,
    pub(crate) variants: Vec<Variant>,
    #[serde(default)]
    pub(crate) metrics: Vec<MetricDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) salt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) flag_id: Option<FlagId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) layer: Option<LayerPlacement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hash_attribute: Option<String>,
    #[serde(default)]
    pub(crate) sticky: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) overrides: BTreeMap<String, VariantKey>,
    #[serde(default, alias = "startDate")]
    pub(crate) started_at: Option<Timestamp>,
    #[serde(default, alias = "endDate")]
    pub(crate) ended_at: Option<Timestamp>,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    #[serde(default)]
    pub(crate) winner: Option<VariantKey>,
    #[serde(default)]
    pub(crate) stop_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) start_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stop_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) bandit: Option<Bandit>,
}

// `Variant` deserializes through the request form, so stored experiments accept every alias.
impl<'de> Deserialize<'de> for Variant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        NewVariant::deserialize(d)?
            .into_stored_variant()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Experiment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Experiment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let data = ExperimentData::deserialize(d)?;
        Experiment::from_data(data).map_err(serde::de::Error::custom)
    }
}

fn traffic_from(field: &str, fraction: f64) -> Result<Traffic, ValidationError> {
    if !fraction.is_finite() || !(0.0..=1.0).contains(&fraction) {
        return Err(ValidationError::field(
            field,
            format!("{fraction} is outside [0, 1]"),
        ));
    }
    Traffic::from_fraction(fraction).map_err(|e| ValidationError::weight(field, e))
}

fn parse_condition(field: &str, value: &Value) -> Result<Condition, ValidationError> {
    Condition::parse(value).map_err(|e| ValidationError::condition(field, e))
}

fn resolve_metrics(
    specs: &[MetricSpec],
    catalogue: &MetricCatalogue,
) -> Result<Vec<MetricDefinition>, ValidationError> {
    if specs.is_empty() {
        return Ok(vec![catalogue.resolve(&"conversion".into())?]);
    }
    let mut out: Vec<MetricDefinition> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let d = catalogue.resolve(spec).map_err(|e| match e {
            ValidationError::Field { message, .. } => {
                ValidationError::field(format!("metrics[{i}]"), message)
            }
            other => other,
        })?;
        if out.iter().any(|m| m.name() == d.name()) {
            return Err(ValidationError::field(
                format!("metrics[{i}]"),
                format!("duplicate metric {:?}", d.name()),
            ));
        }
        out.push(d);
    }
    Ok(out)
}

fn resolve_overrides(
    overrides: &BTreeMap<String, String>,
    variants: &[Variant],
) -> Result<BTreeMap<String, VariantKey>, ValidationError> {
    overrides
        .iter()
        .map(|(unit, key)| {
            let found = variants
                .iter()
                .find(|v| v.id == key.as_str())
                .ok_or_else(|| {
                    ValidationError::field(
                        format!("overrides.{unit}"),
                        format!("unknown variant {key:?}"),
                    )
                })?;
            Ok((unit.clone(), found.id.clone()))
        })
        .collect()
}

fn optional_id<T>(
    field: &str,
    value: Option<&str>,
    make: impl Fn(&str) -> Result<T, ValidationError>,
) -> Result<Option<T>, ValidationError> {
    value
        .map(|v| make(v).map_err(|e| e.within(field)))
        .transpose()
}

impl Experiment {
    /// Validates a create request into a draft experiment.
    pub(crate) fn create(
        new: NewExperiment,
        id: ExperimentId,
        now: Timestamp,
        catalogue: &MetricCatalogue,
    ) -> Result<Experiment, ValidationError> {
        let (variants, _) = resolve_variants(&new.variants)?;
        let kind = new.kind.unwrap_or(if new.flag_id.is_some() {
            ExperimentType::Feature
        } else {
            ExperimentType::AbTest
        });
        let bandit = bandit_for(kind, new.bandit.as_ref(), None)?;
        let data = ExperimentData {
            id,
            name: new.name,
            description: new.description,
            kind,
            status: Status::Draft,
            project_id: optional_id("projectId", new.project_id.as_deref(), |s| {
                ProjectId::new(s)
            })?,
            audience_id: optional_id("audienceId", new.audience_id.as_deref(), |s| {
                AudienceId::new(s)
            })?,
            targeting: new
                .targeting
                .as_ref()
                .map(|v| parse_condition("targeting", v))
                .transpose()?,
            traffic: new
                .traffic
                .map(|t| traffic_from("traffic", t))
                .transpose()?
                .unwrap_or(Traffic::FULL),
            overrides: resolve_overrides(&new.overrides, &variants)?,
            variants,
            metrics: resolve_metrics(&new.metrics, catalogue)?,
            salt: new.salt,
            flag_id: optional_id("flagId", new.flag_id.as_deref(), |s| FlagId::new(s))?,
            environment: new.environment,
            layer: new.layer,
            hash_attribute: new.hash_attribute,
            sticky: new.sticky.unwrap_or(false) || kind == ExperimentType::Bandit,
            started_at: None,
            ended_at: None,
            created_at: now,
            updated_at: now,
            winner: None,
            stop_reason: None,
            start_at: new.start_at,
            stop_at: new.stop_at,
            bandit,
        };
        Experiment::from_data(data)
    }

    /// Applies a partial update (the caller checks the lifecycle).
    pub(crate) fn patched(
        &self,
        patch: ExperimentPatch,
        now: Timestamp,
        catalogue: &MetricCatalogue,
    ) -> Result<Experiment, ValidationError> {
        let mut d = self.0.clone();
        if let Some(name) = patch.name {
            d.name = name;
        }
        if let Some(desc) = patch.description {
            d.description = Some(desc);
        }
        if let Some(kind) = patch.kind {
            d.kind = kind;
        }
        if let Some(aud) = patch.audience_id {
            d.audience_id = optional_id("audienceId", Some(&aud), |s| AudienceId::new(s))?;
        }
        if let Some(t) = patch.targeting {
            d.targeting = if t.is_null() {
                None
            } else {
                Some(parse_condition("targeting", &t)?)
            };
        }
        if let Some(t) = patch.traffic {
            d.traffic = traffic_from("traffic", t)?;
        }
        if let Some(vs) = patch.variants {
            d.variants = resolve_variants(&vs)?.0;
        }
        if let Some(ms) = patch.metrics {
            d.metrics = resolve_metrics(&ms, catalogue)?;
        }
        if let Some(salt) = patch.salt {
            d.salt = Some(salt);
        }
        if let Some(layer) = patch.layer {
            d.layer = Some(layer);
        }
        if let Some(h) = patch.hash_attribute {
            d.hash_attribute = Some(h);
        }
        if let Some(s) = patch.sticky {
            d.sticky = s;
        }
        let overrides: BTreeMap<String, String> = match patch.overrides {
            Some(o) => o,
            None => d
                .overrides
                .iter()
                .map(|(u, v)| (u.clone(), v.to_string()))
                .collect(),
        };
        d.overrides = resolve_overrides(&overrides, &d.variants)?;
        if let Some(t) = patch.start_at {
            d.start_at = Some(t);
        }
        if let Some(t) = patch.stop_at {
            d.stop_at = Some(t);
        }
        d.bandit = bandit_for(d.kind, patch.bandit.as_ref(), d.bandit.take())?;
        if d.kind == ExperimentType::Bandit {
            d.sticky = true;
        }
        d.updated_at = now;
        Experiment::from_data(d)
    }

    pub(crate) fn from_data(d: ExperimentData) -> Result<Experiment, ValidationError> {
        check_name("name", &d.name)?;
        if let Some(desc) = &d.description
            && desc.chars().count() > MAX_DESCRIPTION_LEN
        {
            return Err(ValidationError::field(
                "description",
                format!(
                    "{} characters, at most {MAX_DESCRIPTION_LEN} allowed",
                    desc.chars().count()
                ),
            ));
        }
        // Variant ids unique, weights summing to exactly 100%.
        let inputs: Vec<NewVariant> = d.variants.iter().map(Variant::to_input).collect();
        resolve_variants(&inputs)?;
        if d.metrics.len() > MAX_METRIC_SLOTS as usize {
            return Err(ValidationError::field(
                "metrics",
                format!(
                    "{} given, at most {} allowed",
                    d.metrics.len(),
                    MAX_METRIC_SLOTS
                ),
            ));
        }
        if d.metrics.is_empty() {
            return Err(ValidationError::field(
                "metrics",
                "no metrics; at least one is required",
            ));
        }
        if let Some(w) = &d.winner
            && !d.variants.iter().any(|v| &v.id == w)
        {
            return Err(ValidationError::field(
                "winner",
                format!("unknown variant {:?}", w.as_str()),
            ));
        }
        for (unit, v) in &d.overrides {
            if !d.variants.iter().any(|x| &x.id == v) {
                return Err(ValidationError::field(
                    format!("overrides.{unit}"),
                    format!("unknown variant {:?}", v.as_str()),
                ));
            }
        }
        if let Some(salt) = &d.salt
            && salt.is_empty()
        {
            return Err(ValidationError::field("salt", "\"\" is empty"));
        }
        if let Some(h) = &d.hash_attribute
            && h.is_empty()
        {
            return Err(ValidationError::field("hashAttribute", "\"\" is empty"));
        }
        if let (Some(start), Some(stop)) = (d.start_at, d.stop_at)
            && stop <= start
        {
            return Err(ValidationError::field(
                "stopAt",
                format!("{stop} is not after startAt {start}"),
            ));
        }
        match (&d.bandit, d.kind) {
            (Some(b), ExperimentType::Bandit) => {
                b.validate(d.variants.len())?;
                if !d.sticky {
                    return Err(ValidationError::field(
                        "sticky",
                        "false for a bandit; its units must keep their arm",
                    ));
                }
            }
            (None, ExperimentType::Bandit) => {
                return Err(ValidationError::field("bandit", "missing for a bandit"));
            }
            (Some(_), kind) => {
                return Err(ValidationError::field(
                    "bandit",
                    format!("given for a {kind} experiment; only type bandit has one"),
                ));
            }
            (None, _) => {}
        }
        Ok(Experiment(d))
    }

    pub(crate) fn into_data(self) -> ExperimentData {
        self.0
    }

    pub(crate) fn data_mut(&mut self) -> &mut ExperimentData {
        &mut self.0
    }

    /// Its id.
    pub fn id(&self) -> &ExperimentId {
        &self.0.id
    }
    /// Its name.
    pub fn name(&self) -> &str {
        &self.0.name
    }
    /// Its description.
    pub fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Its type.
    pub fn kind(&self) -> ExperimentType {
        self.0.kind
    }
    /// Its lifecycle status.
    pub fn status(&self) -> Status {
        self.0.status
    }
    /// The project it belongs to, if any.
    pub fn project_id(&self) -> Option<&ProjectId> {
        self.0.project_id.as_ref()
    }
    /// The saved audience it targets.
    pub fn audience_id(&self) -> Option<&AudienceId> {
        self.0.audience_id.as_ref()
    }
    /// Its inline targeting condition.
    pub fn targeting(&self) -> Option<&Condition> {
        self.0.targeting.as_ref()
    }
    /// The fraction of units in it.
    pub fn traffic(&self) -> Traffic {
        self.0.traffic
    }
    /// Its variants, in allocation order.
    pub fn variants(&self) -> &[Variant] {
        &self.0.variants
    }
    /// The variant with id `key`.
    pub fn variant(&self, key: &str) -> Option<&Variant> {
        self.0.variants.iter().find(|v| v.id == key)
    }
    /// The variants' weights.
    ///
    /// # Errors
    ///
    /// Never for an experiment built by this crate (its weights were validated); the `Result`
    /// keeps the no-panic promise without an `unwrap`.
    pub fn weights(&self) -> Result<Weights, ValidationError> {
        let ws = self.0.variants.iter().map(|v| v.weight).collect();
        Weights::new(ws).map_err(|e| ValidationError::weight("variants", e))
    }
    /// Its metrics; the first is primary.
    pub fn metrics(&self) -> &[MetricDefinition] {
        &self.0.metrics
    }
    /// The salt the allocator hashes with: the given salt, or the id.
    pub fn salt(&self) -> &str {
        self.0.salt.as_deref().unwrap_or(self.0.id.as_str())
    }
    /// The flag it is attached to.
    pub fn flag_id(&self) -> Option<&FlagId> {
        self.0.flag_id.as_ref()
    }
    /// The flag environment it runs in.
    pub fn environment(&self) -> Option<&str> {
        self.0.environment.as_deref()
    }
    /// Its layer placement.
    pub fn layer(&self) -> Option<&LayerPlacement> {
        self.0.layer.as_ref()
    }
    /// The attribute hashed instead of the targeting key.
    pub fn hash_attribute(&self) -> Option<&str> {
        self.0.hash_attribute.as_deref()
    }
    /// Whether sticky bucketing is on.
    pub fn is_sticky(&self) -> bool {
        self.0.sticky
    }
    /// Forced assignments: unit id → variant id.
    pub fn overrides(&self) -> &BTreeMap<String, VariantKey> {
        &self.0.overrides
    }
    /// When it started.
    pub fn started_at(&self) -> Option<Timestamp> {
        self.0.started_at
    }
    /// When it stopped or completed.
    pub fn ended_at(&self) -> Option<Timestamp> {
        self.0.ended_at
    }
    /// When it was created.
    pub fn created_at(&self) -> Timestamp {
        self.0.created_at
    }
    /// When it last changed.
    pub fn updated_at(&self) -> Timestamp {
        self.0.updated_at
    }
    /// The winner it was stopped with.
    pub fn winner(&self) -> Option<&VariantKey> {
        self.0.winner.as_ref()
    }
    /// Why it was stopped.
    pub fn stop_reason(&self) -> Option<&str> {
        self.0.stop_reason.as_deref()
    }
    /// When `Lab::tick` starts it, if scheduled.
    pub fn start_at(&self) -> Option<Timestamp> {
        self.0.start_at
    }
    /// When `Lab::tick` stops it, if scheduled.
    pub fn stop_at(&self) -> Option<Timestamp> {
        self.0.stop_at
    }
    /// A bandit's settings and weight history (type `bandit` only).
    pub fn bandit(&self) -> Option<&Bandit> {
        self.0.bandit.as_ref()
    }
}

/// The bandit state of an experiment of type `kind`: `current` with `settings` applied, or a
/// new one; `None` for any other type (settings given for one are refused).
fn bandit_for(
    kind: ExperimentType,
    settings: Option<&BanditSettings>,
    current: Option<Bandit>,
) -> Result<Option<Bandit>, ValidationError> {
    if kind != ExperimentType::Bandit {
        if settings.is_some() {
            return Err(ValidationError::field(
                "bandit",
                format!("given for a {kind} experiment; only type bandit has one"),
            ));
        }
        return Ok(None);
    }
    let defaults = BanditSettings::default();
    let s = settings.unwrap_or(&defaults);
    Ok(Some(match current {
        None => Bandit::from_settings(s),
        Some(mut b) => {
            if let Some(x) = s.min_exploration_share {
                b.min_exploration_share = x;
            }
            if let Some(x) = s.update_period_seconds {
                b.update_period_seconds = x;
            }
            b
        }
    }))
}
