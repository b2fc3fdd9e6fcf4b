//! Metric definitions and the catalogue that resolves bare metric names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::validation::ValidationError;
pub use crate::stats::MetricKind;

/// What an experiment measures, and how.
///
/// An experiment's first metric is its primary metric: the one the recommendation is made on.
///
/// # Examples
///
/// ```
/// use abkit::{MetricDefinition, MetricKind};
///
/// let revenue = MetricDefinition::new("revenue", MetricKind::Mean)?.with_cap(500.0)?;
/// assert_eq!(revenue.name(), "revenue");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "MetricInput")]
pub struct MetricDefinition {
    name: String,
    kind: MetricKind,
    guardrail: bool,
    higher_is_better: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    cap: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion_window_hours: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// A metric as written in a request: a full definition, or one whose kind comes from the
/// catalogue.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricInput {
    /// The metric's name, such as `watchTime`.
    pub name: String,
    /// Its kind; taken from the catalogue when absent.
    #[serde(default)]
    pub kind: Option<MetricKind>,
    /// A guardrail: a treatment significantly worse on it cannot win.
    #[serde(default)]
    pub guardrail: Option<bool>,
    /// Whether larger values are better (default true).
    #[serde(default)]
    pub higher_is_better: Option<bool>,
    /// Winsorise per-unit totals at this value.
    #[serde(default)]
    pub cap: Option<f64>,
    /// Only count events within this many hours of the unit's exposure.
    #[serde(default)]
    pub conversion_window_hours: Option<u32>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A metric in an experiment request: a bare name (the feed API's `["watchTime", …]`) or an
/// object.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum MetricSpec {
    /// A name resolved through the [`MetricCatalogue`].
    Name(String),
    /// A definition, whose missing parts come from the catalogue.
    Definition(MetricInput),
}

impl From<&str> for MetricSpec {
    fn from(name: &str) -> Self {
        MetricSpec::Name(name.to_owned())
    }
}

impl From<MetricDefinition> for MetricSpec {
    fn from(d: MetricDefinition) -> Self {
        MetricSpec::Definition(MetricInput {
            name: d.name,
            kind: Some(d.kind),
            guardrail: Some(d.guardrail),
            higher_is_better: Some(d.higher_is_better),
            cap: d.cap,
            conversion_window_hours: d.conversion_window_hours,
            description: d.description,
        })
    }
}

impl TryFrom<MetricInput> for MetricDefinition {
    type Error = ValidationError;

    fn try_from(m: MetricInput) -> Result<Self, Self::Error> {
        let kind = m.kind.ok_or_else(|| {
            ValidationError::field("kind", format!("metric {:?} has no kind", m.name))
        })?;
        let mut d = MetricDefinition::new(m.name, kind)?;
        d.guardrail = m.guardrail.unwrap_or(false);
        d.higher_is_better = m.higher_is_better.unwrap_or(true);
        if let Some(cap) = m.cap {
            d = d.with_cap(cap)?;
        }
        d.conversion_window_hours = m.conversion_window_hours;
        d.description = m.description;
        Ok(d)
    }
}

/// The longest metric name accepted, in characters.
const MAX_METRIC_NAME: usize = 100;

impl MetricDefinition {
    /// A metric with default settings: not a guardrail, higher is better, no cap, no window.
    ///
    /// # Errors
    ///
    /// An empty name, one over 100 characters, or one with control characters.
    pub fn new(name: impl Into<String>, kind: MetricKind) -> Result<Self, ValidationError> {
        let name = name.into();
        if name.is_empty()
            || name.chars().count() > MAX_METRIC_NAME
            || name.chars().any(char::is_control)
        {
            return Err(ValidationError::field(
                "name",
                format!(
                    "metric name {name:?} must be 1 to 100 characters without control characters"
                ),
            ));
        }
        Ok(MetricDefinition {
            name,
            kind,
            guardrail: false,
            higher_is_better: true,
            cap: None,
            conversion_window_hours: None,
            description: None,
        })
    }

    /// Marks it a guardrail: a treatment significantly worse on it cannot be recommended.
    #[must_use]
    pub fn guardrail(mut self) -> Self {
        self.guardrail = true;
        self
    }

    /// Marks lower values as better (latency, churn).
    #[must_use]
    pub fn lower_is_better(mut self) -> Self {
        self.higher_is_better = false;
        self
    }

    /// Winsorises each unit's total at `cap` (watch time and revenue have outliers).
    ///
    /// # Errors
    ///
    /// A cap that is not a positive finite number.
    pub fn with_cap(mut self, cap: f64) -> Result<Self, ValidationError> {
        if !(cap.is_finite() && cap > 0.0) {
            return Err(ValidationError::field(
                "cap",
                format!("{cap} is not a positive finite number"),
            ));
        }
        self.cap = Some(cap);
        Ok(self)
    }

    /// Only counts events within `hours` of the unit's exposure.
    #[must_use]
    pub fn with_conversion_window_hours(mut self, hours: u32) -> Self {
        self.conversion_window_hours = Some(hours);
        self
    }

    /// The metric's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Proportion, mean or ratio.
    pub fn kind(&self) -> MetricKind {
        self.kind
    }

    /// Whether it is a guardrail.
    pub fn is_guardrail(&self) -> bool {
        self.guardrail
    }

    /// Whether larger values are better.
    pub fn higher_is_better(&self) -> bool {
        self.higher_is_better
    }

    /// The per-unit cap, if any.
    pub fn cap(&self) -> Option<f64> {
        self.cap
    }

    /// The conversion window in hours, if any.
    pub fn conversion_window_hours(&self) -> Option<u32> {
        self.conversion_window_hours
    }

    /// The conversion window in milliseconds, if any.
    pub fn conversion_window_millis(&self) -> Option<i64> {
        self.conversion_window_hours
            .map(|h| i64::from(h) * 3_600_000)
    }

    /// Free text.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

/// Named metric definitions that bare names in requests resolve through.
///
/// Built in: `conversion` and `retention` (proportion), `watchTime` and `sessionsPerUser` (mean),
/// `completionRate` (ratio: completions / views). Hosts add their own with
/// [`register`](Self::register).
///
/// # Examples
///
/// ```
/// use abkit::{MetricCatalogue, MetricDefinition, MetricKind};
///
/// let mut catalogue = MetricCatalogue::default();
/// catalogue.register(MetricDefinition::new("revenue", MetricKind::Mean)?);
/// assert_eq!(catalogue.resolve(&"watchTime".into())?.kind(), MetricKind::Mean);
/// assert!(catalogue.resolve(&"nope".into()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MetricCatalogue {
    definitions: BTreeMap<String, MetricDefinition>,
}

impl Default for MetricCatalogue {
    fn default() -> Self {
        let mut c = MetricCatalogue {
            definitions: BTreeMap::new(),
        };
        for (name, kind) in [
            ("conversion", MetricKind::Proportion),
            ("retention", MetricKind::Proportion),
            ("watchTime", MetricKind::Mean),
            ("sessionsPerUser", MetricKind::Mean),
            ("completionRate", MetricKind::Ratio),
        ] {
            c.definitions.insert(
                name.to_owned(),
                MetricDefinition {
                    name: name.to_owned(),
                    kind,
                    guardrail: false,
                    higher_is_better: true,
                    cap: None,
                    conversion_window_hours: None,
                    description: None,
                },
            );
        }
        c
    }
}

impl MetricCatalogue {
    /// Adds or replaces a definition.
    pub fn register(&mut self, definition: MetricDefinition) {
        self.definitions.insert(definition.name.clone(), definition);
    }

    /// The definition registered under `name`.
    pub fn get(&self, name: &str) -> Option<&MetricDefinition> {
        self.definitions.get(name)
    }

    /// The known names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.definitions.keys().map(String::as_str)
    }

    /// Turns a request's metric into a full definition.
    ///
    /// # Errors
    ///
    /// An unknown bare name (the message lists the known ones) or an invalid definition.
    pub fn resolve(&self, spec: &MetricSpec) -> Result<MetricDefinition, ValidationError> {
        match spec {
            MetricSpec::Name(name) => self.get(name).cloned().ok_or_else(|| self.unknown(name)),
            MetricSpec::Definition(input) => {
                let mut input = input.clone();
                if input.kind.is_none() {
                    let known = self
                        .get(&input.name)
                        .ok_or_else(|| self.unknown(&input.name))?;
                    input.kind = Some(known.kind);
                }
                MetricDefinition::try_from(input)
            }
        }
    }

    fn unknown(&self, name: &str) -> ValidationError {
        let known: Vec<&str> = self.names().collect();
        ValidationError::field(
            "metrics",
            format!(
                "unknown metric {name:?}; known metrics: {}",
                known.join(", ")
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_have_their_kinds() {
        let c = MetricCatalogue::default();
        for (n, k) in [
            ("conversion", MetricKind::Proportion),
            ("retention", MetricKind::Proportion),
            ("watchTime", MetricKind::Mean),
            ("sessionsPerUser", MetricKind::Mean),
            ("completionRate", MetricKind::Ratio),
        ] {
            assert_eq!(c.resolve(&n.into()).unwrap().kind(), k, "{n}");
        }
    }

    #[test]
    fn unknown_name_lists_the_known_ones() {
        let err = MetricCatalogue::default()
            .resolve(&"ctr".into())
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("\"ctr\"") && msg.contains("completionRate, conversion"),
            "{msg}"
        );
    }

    #[test]
    fn object_form_fills_kind_from_catalogue_and_round_trips() {
        let spec: MetricSpec =
            serde_json::from_str(r#"{"name":"watchTime","guardrail":true,"cap":600}"#).unwrap();
        let d = MetricCatalogue::default().resolve(&spec).unwrap();
        assert!(d.is_guardrail());
        assert_eq!(d.kind(), MetricKind::Mean);
        let json = serde_json::to_value(&d).unwrap();
        let back: MetricDefinition = serde_json::from_value(json).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn bad_caps_and_names_are_rejected() {
        assert!(MetricDefinition::new("", MetricKind::Mean).is_err());
        let m = MetricDefinition::new("x", MetricKind::Mean).unwrap();
        assert!(m.clone().with_cap(f64::NAN).is_err());
        assert!(m.with_cap(-1.0).unwrap_err().to_string().contains("-1"));
    }
}
