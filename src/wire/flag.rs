//! The flag service (`/api/v1/flags…`): snake_case payloads in `{"data": …}` envelopes;
//! `POST /evaluate` returns `{"flags": {key: {"value": …, "rule_id": …}}}` (no envelope).
//!
//! Where the document is partial, abkit adds, and says so here:
//! * a flag carries `environment` and `rules` when it has them (the example flag has neither);
//! * an experiment's get carries `flag_id` as its create does (the results example leaves it out);
//!   once stopped it carries `winner`;
//! * list answers (not shown) are `{"data": […]}`; delete's is `{"data": {"id", "deleted": true}}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decision::context::Context;
use crate::decision::flag::EvaluateAllResponse;
use crate::model::experiment::Experiment;
use crate::model::flag::{Flag, FlagRule, FlagType};
use crate::model::lifecycle::Status;
use crate::model::variant::percent;
use crate::reports::ExperimentWithCounts;
use crate::time::Timestamp;
use crate::wire::Data;

/// The flag API's evaluate response, borrowing every value from the evaluation: keys sorted.
#[derive(Debug)]
pub struct EvaluateResponse<'a>(pub &'a EvaluateAllResponse<'a>);

/// One flag in the flag API's evaluate response: `{"value": …, "rule_id": …}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FlagValue<'a> {
    /// The value.
    pub value: &'a Value,
    /// The matching rule's id, or null.
    pub rule_id: Option<&'a str>,
}

impl EvaluateResponse<'_> {
    /// Appends the response's JSON to `out` from the fragments the snapshot encoded once
    /// ([`EvaluateAllResponse::json_parts`]): byte for byte what serializing it writes, without
    /// re-encoding a string. What the `http` feature answers with.
    ///
    /// ```
    /// use abkit::{Context, Lab, NewFlag};
    /// let lab = Lab::new();
    /// let new: NewFlag = serde_json::from_value(serde_json::json!({
    ///     "project_id": "p", "key": "dark \"mode\"", "flag_type": "boolean", "default_value": true
    /// }))?;
    /// lab.flags().create(new)?;
    /// let ctx = Context::new("u1");
    /// let all = lab.evaluate_all("p", "production", &ctx);
    /// let response = abkit::wire::flag::EvaluateResponse(&all);
    /// let mut out = Vec::new();
    /// response.write_json(&mut out);
    /// assert_eq!(out, serde_json::to_vec(&response)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"flags\":{");
        for (n, (key, value, rule)) in self.0.json_parts().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b":{\"value\":");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b",\"rule_id\":");
            out.extend_from_slice(rule.as_bytes());
            out.push(b'}');
        }
        out.extend_from_slice(b"}}");
    }
}

impl Serialize for EvaluateResponse<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Flags<'a>(&'a EvaluateAllResponse<'a>);
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
        m.serialize_entry("flags", &Flags(self.0))?;
        m.end()
    }
}

/// A flag as the flag API writes it: `{id, project_id, key, name, flag_type, default_value,
/// enabled, description, created_at}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlagPayload {
    /// Its id.
    pub id: String,
    /// Its project.
    pub project_id: String,
    /// Its key.
    pub key: String,
    /// Its name.
    pub name: String,
    /// `boolean`, `string`, `number`, `json`.
    pub flag_type: FlagType,
    /// The value served when nothing else applies.
    pub default_value: Value,
    /// Whether its rules are served.
    pub enabled: bool,
    /// Its description (`null` when none).
    pub description: Option<String>,
    /// Its environment, when it is for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Its targeting rules, when it has any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<FlagRule>,
    /// When it was created.
    pub created_at: Timestamp,
}

impl From<&Flag> for FlagPayload {
    fn from(f: &Flag) -> FlagPayload {
        FlagPayload {
            id: f.id.to_string(),
            project_id: f.project_id.to_string(),
            key: f.key.to_string(),
            name: f.name.clone(),
            flag_type: f.flag_type,
            default_value: f.default_value.clone(),
            enabled: f.enabled,
            description: f.description.clone(),
            environment: f.environment.clone(),
            rules: f.rules.clone(),
            created_at: f.created_at,
        }
    }
}

/// A variant of a flag experiment: `{key, value, percentage}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlagVariant {
    /// Its key.
    pub key: String,
    /// The flag value it serves.
    pub value: Value,
    /// Its share in percent, an integer when whole.
    #[serde(serialize_with = "percent")]
    pub percentage: crate::allocation::Weight,
}

/// A flag experiment: `{id, flag_id, name, environment, status, variants, conversions,
/// created_at}` (and `start_at` / `stop_at` when scheduled).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlagExperiment {
    /// Its id.
    pub id: String,
    /// Its flag.
    pub flag_id: Option<String>,
    /// Its name.
    pub name: String,
    /// The environment it runs in.
    pub environment: Option<String>,
    /// `draft`, `running`, `stopped`, …
    pub status: Status,
    /// Its variants.
    pub variants: Vec<FlagVariant>,
    /// Units that converted.
    pub conversions: u64,
    /// The winner it was stopped with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winner: Option<String>,
    /// When `Lab::tick` starts it (scheduled; absent when not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_at: Option<Timestamp>,
    /// When `Lab::tick` stops it (scheduled; absent when not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
}

impl From<&ExperimentWithCounts> for FlagExperiment {
    fn from(c: &ExperimentWithCounts) -> FlagExperiment {
        let e: &Experiment = &c.experiment;
        FlagExperiment {
            id: e.id().to_string(),
            flag_id: e.flag_id().map(ToString::to_string),
            name: e.name().to_owned(),
            environment: e.environment().map(str::to_owned),
            status: e.status(),
            variants: e
                .variants()
                .iter()
                .map(|v| FlagVariant {
                    key: v.id.to_string(),
                    value: v.value.clone().unwrap_or(Value::Null),
                    percentage: v.weight,
                })
                .collect(),
            conversions: c.conversions,
            winner: e.winner().map(ToString::to_string),
            start_at: e.start_at(),
            stop_at: e.stop_at(),
            created_at: e.created_at(),
        }
    }
}

/// Start's and stop's answer: `{id, status}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusAnswer {
    /// The experiment.
    pub id: String,
    /// Its status now.
    pub status: Status,
}

impl StatusAnswer {
    /// The answer for `e`.
    pub fn new(e: &Experiment) -> Data<StatusAnswer> {
        Data::new(StatusAnswer {
            id: e.id().to_string(),
            status: e.status(),
        })
    }
}

/// The body of `POST /api/v1/flags/evaluate`: `{project_id, environment, context}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// The project whose flags are evaluated.
    pub project_id: String,
    /// The environment.
    pub environment: String,
    /// Who for: `user_id` and attributes.
    #[serde(default)]
    pub context: Context,
}

/// The body of a flag experiment's stop (not in the document: optional): `{winner, reason,
/// promote}`; `promote: true` makes the winner's value the flag's default in the same call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// The winning variant's key.
    #[serde(default)]
    pub winner: Option<String>,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// Promote the winner's value to the flag's default.
    #[serde(default)]
    pub promote: bool,
}
