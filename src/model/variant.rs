//! Variants and the weight forms the source APIs write.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::allocation::{Weight, Weights};
use crate::model::ids::VariantKey;
use crate::model::limits::{MAX_NAME_LEN, MAX_VARIANTS};
use crate::model::validation::ValidationError;

/// One arm of an experiment.
///
/// Serializes with `id`, `name`, `splitPercentage` (a whole number when it is one, else the
/// exact percentage such as `33.33`) and the optional `config`, `flowId` and `value`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    /// Its id (the flag API's `key`).
    pub id: VariantKey,
    /// A human name (defaults to the id).
    pub name: String,
    /// Its share of the experiment's traffic.
    #[serde(rename = "splitPercentage", serialize_with = "percent")]
    pub weight: Weight,
    /// An arbitrary JSON payload the variant serves: ranking weights, `ads.frequency.interval`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// The flow API's flow this variant shows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    /// For a flag-attached experiment: the flag value this variant serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// A weight as a percentage: a whole number when it is one (`50`), else exact (`33.33`). Every
/// source API writes percentages so; `wire` serializes them with this too.
pub(crate) fn percent<S: Serializer>(w: &Weight, s: S) -> Result<S::Ok, S::Error> {
    let bp = w.basis_points();
    if bp.is_multiple_of(100) {
        s.serialize_u16(bp / 100)
    } else {
        s.serialize_f64(w.as_percent())
    }
}

/// A variant as the source APIs write it: `id` or `key`, and one of `splitPercentage` (percent),
/// `traffic` (a fraction), `percentage` (percent) or `weight` (basis points).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewVariant {
    /// Its id; `v1`, `v2`, … by position when absent.
    #[serde(default, alias = "key")]
    pub id: Option<String>,
    /// A human name.
    #[serde(default)]
    pub name: Option<String>,
    /// The flow API's integer percentage.
    #[serde(default)]
    pub split_percentage: Option<f64>,
    /// The feed API's fraction of the experiment's traffic.
    #[serde(default)]
    pub traffic: Option<f64>,
    /// The flag API's percentage.
    #[serde(default)]
    pub percentage: Option<f64>,
    /// Basis points (10 000 = 100%).
    #[serde(default)]
    pub weight: Option<f64>,
    /// An arbitrary JSON payload.
    #[serde(default)]
    pub config: Option<Value>,
    /// The flow API's flow id.
    #[serde(default)]
    pub flow_id: Option<String>,
    /// The flag value for a flag-attached experiment.
    #[serde(default)]
    pub value: Option<Value>,
    /// Ignored on input: counts come from the event plane.
    #[serde(default, skip_serializing)]
    #[allow(dead_code)]
    participants: Option<Value>,
}

impl NewVariant {
    /// A variant with an id and a name, its weight left to an even split.
    pub fn named(id: &str, name: &str) -> NewVariant {
        NewVariant {
            id: Some(id.to_owned()),
            name: Some(name.to_owned()),
            ..NewVariant::default()
        }
    }

    /// Sets the weight as an integer percentage (`splitPercentage`).
    #[must_use]
    pub fn split_percentage(mut self, percent: f64) -> NewVariant {
        self.split_percentage = Some(percent);
        self
    }

    /// Sets the weight as a fraction (the feed API's `traffic`).
    #[must_use]
    pub fn traffic(mut self, fraction: f64) -> NewVariant {
        self.traffic = Some(fraction);
        self
    }

    /// Sets the JSON payload.
    #[must_use]
    pub fn config(mut self, config: Value) -> NewVariant {
        self.config = Some(config);
        self
    }

    /// Sets the flag value.
    #[must_use]
    pub fn value(mut self, value: Value) -> NewVariant {
        self.value = Some(value);
        self
    }

    /// The weight this variant gives, if it gives one; `field` is its path for errors.
    fn weight(&self, field: &str) -> Result<Option<Weight>, ValidationError> {
        let forms = [
            ("splitPercentage", self.split_percentage),
            ("traffic", self.traffic),
            ("percentage", self.percentage),
            ("weight", self.weight),
        ];
        let mut given = forms.iter().filter_map(|(n, v)| v.map(|v| (*n, v)));
        let Some((form, value)) = given.next() else {
            return Ok(None);
        };
        if let Some((other, _)) = given.next() {
            return Err(ValidationError::field(
                field,
                format!("gives both {form} and {other}; give one weight form per variant"),
            ));
        }
        let field = format!("{field}.{form}");
        if !value.is_finite() {
            return Err(ValidationError::field(
                field,
                format!("{value} is not a finite number"),
            ));
        }
        let w = match form {
            "traffic" => Weight::from_fraction(value),
            "weight" => {
                if value.fract() != 0.0 || value < 0.0 {
                    return Err(ValidationError::field(
                        field,
                        format!("{value} is not a whole number of basis points"),
                    ));
                }
                // Fits: a finite whole number ≥ 0; larger than u32 is caught by the range check.
                Weight::from_basis_points(if value > 1e9 { u32::MAX } else { value as u32 })
            }
            _ => Weight::from_percentage(value),
        };
        w.map(Some).map_err(|e| ValidationError::weight(field, e))
    }
}

/// Resolves request variants into validated variants: ids (`v1`, `v2`, … where absent), unique
/// ids, and weights that sum to exactly 100% (an even split when no variant gives a weight).
pub(crate) fn resolve_variants(
    inputs: &[NewVariant],
) -> Result<(Vec<Variant>, Weights), ValidationError> {
    if inputs.len() < 2 {
        return Err(ValidationError::field(
            "variants",
            format!("{} given, at least 2 required", inputs.len()),
        ));
    }
    if inputs.len() > MAX_VARIANTS {
        return Err(ValidationError::field(
            "variants",
            format!("{} given, at most {MAX_VARIANTS} allowed", inputs.len()),
        ));
    }
    let weights: Vec<Option<Weight>> = inputs
        .iter()
        .enumerate()
        .map(|(i, v)| v.weight(&format!("variants[{i}]")))
        .collect::<Result<_, _>>()?;
    let weights = if weights.iter().all(Option::is_none) {
        Weights::even(inputs.len()).map_err(|e| ValidationError::weight("variants", e))?
    } else {
        let mut ws = Vec::with_capacity(weights.len());
        for (i, w) in weights.into_iter().enumerate() {
            ws.push(w.ok_or_else(|| {
                ValidationError::field(
                    format!("variants[{i}]"),
                    "has no weight while others do; give splitPercentage, traffic or percentage to every variant, or to none for an even split",
                )
            })?);
        }
        Weights::new(ws).map_err(|e| ValidationError::weight("variants", e))?
    };
    let mut variants: Vec<Variant> = Vec::with_capacity(inputs.len());
    for (i, (input, weight)) in inputs.iter().zip(weights.as_slice()).enumerate() {
        let v = input.build(i, *weight)?;
        if variants.iter().any(|x| x.id == v.id) {
            return Err(ValidationError::field(
                format!("variants[{i}].id"),
                format!("duplicate variant id {:?}", v.id.as_str()),
            ));
        }
        variants.push(v);
    }
    Ok((variants, weights))
}

/// Checks a human name: 1 to 200 characters.
pub(crate) fn check_name(field: &str, name: &str) -> Result<(), ValidationError> {
    let n = name.chars().count();
    if name.trim().is_empty() {
        Err(ValidationError::field(field, format!("{name:?} is empty")))
    } else if n > MAX_NAME_LEN {
        Err(ValidationError::field(
            field,
            format!("{n} characters, at most {MAX_NAME_LEN} allowed"),
        ))
    } else {
        Ok(())
    }
}

impl NewVariant {
    /// The variant at position `i` with `weight`.
    fn build(&self, i: usize, weight: Weight) -> Result<Variant, ValidationError> {
        let id = match &self.id {
            Some(id) => {
                VariantKey::new(id.as_str()).map_err(|e| e.within(&format!("variants[{i}].id")))?
            }
            None => VariantKey::new(format!("v{}", i + 1))?,
        };
        let name = self.name.clone().unwrap_or_else(|| id.to_string());
        check_name(&format!("variants[{i}].name"), &name)?;
        Ok(Variant {
            id,
            name,
            weight,
            config: self.config.clone(),
            flow_id: self.flow_id.clone(),
            value: self.value.clone(),
        })
    }

    /// A stored variant: it must carry its id and weight (the sum is checked on the experiment).
    pub(crate) fn into_stored_variant(self) -> Result<Variant, ValidationError> {
        if self.id.is_none() {
            return Err(ValidationError::field(
                "variants[].id",
                "a stored variant has no id",
            ));
        }
        let weight = self.weight("variants[]")?.ok_or_else(|| {
            ValidationError::field("variants[]", "a stored variant has no weight")
        })?;
        self.build(0, weight)
    }
}

impl Variant {
    pub(crate) fn to_input(&self) -> NewVariant {
        NewVariant {
            id: Some(self.id.to_string()),
            name: Some(self.name.clone()),
            weight: Some(f64::from(self.weight.basis_points())),
            config: self.config.clone(),
            flow_id: self.flow_id.clone(),
            value: self.value.clone(),
            ..NewVariant::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(json: &str) -> Vec<NewVariant> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn every_form_converts_exactly() {
        for json in [
            r#"[{"splitPercentage":50},{"splitPercentage":50}]"#,
            r#"[{"traffic":0.5},{"traffic":0.5}]"#,
            r#"[{"key":"a","percentage":50},{"key":"b","percentage":50}]"#,
            r#"[{"weight":5000},{"weight":5000}]"#,
        ] {
            let (vs, _) = resolve_variants(&v(json)).unwrap();
            assert!(vs.iter().all(|x| x.weight.basis_points() == 5000), "{json}");
        }
        let (vs, _) = resolve_variants(&v(
            r#"[{"traffic":0.33},{"traffic":0.33},{"traffic":0.34}]"#,
        ))
        .unwrap();
        let bp: Vec<u16> = vs.iter().map(|x| x.weight.basis_points()).collect();
        assert_eq!(bp, [3300, 3300, 3400]);
        let (vs, _) =
            resolve_variants(&v(r#"[{"traffic":0.1},{"traffic":0.2},{"traffic":0.7}]"#)).unwrap();
        let bp: Vec<u16> = vs.iter().map(|x| x.weight.basis_points()).collect();
        assert_eq!(bp, [1000, 2000, 7000]);
    }

    #[test]
    fn ids_are_generated_and_unique() {
        let (vs, _) = resolve_variants(&v(r#"[{"name":"Control"},{"name":"Detailed"}]"#)).unwrap();
        assert_eq!(vs[0].id, "v1");
        assert_eq!(vs[1].id, "v2");
        let err = resolve_variants(&v(r#"[{"id":"a"},{"id":"a"}]"#)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "variants[1].id: duplicate variant id \"a\""
        );
    }

    #[test]
    fn bad_weights_name_the_field() {
        let err = resolve_variants(&v(r#"[{"traffic":0.12345},{"traffic":0.87655}]"#)).unwrap_err();
        assert!(err.to_string().starts_with("variants[0].traffic:"), "{err}");
        let err =
            resolve_variants(&v(r#"[{"splitPercentage":50},{"splitPercentage":49}]"#)).unwrap_err();
        assert!(err.to_string().starts_with("variants:"), "{err}");
        let err = resolve_variants(&v(
            r#"[{"splitPercentage":50},{"traffic":0.5, "percentage": 50}]"#,
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("both traffic and percentage"),
            "{err}"
        );
        let err = resolve_variants(&v(r#"[{"splitPercentage":100}]"#)).unwrap_err();
        assert_eq!(err.to_string(), "variants: 1 given, at least 2 required");
    }
}
