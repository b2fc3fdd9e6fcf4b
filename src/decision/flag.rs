//! Flags compiled for evaluation, and the evaluation itself.
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
//! A stopped experiment no longer affects evaluation (the flag API's lifecycle table: "after
//! stopping, the flag reverts to its default_value"), and [`crate::Lab::assign`] agrees: a flag
//! experiment stopped with a winner rolls nothing out. Stopping with `promote_winner` makes the
//! winner's value the flag's new default in the same call.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::allocation::{LayerHasher, Traffic};
use crate::decision::context::Context;
use crate::decision::experiment::{CompiledExperiment, Exposure, Reason};
use crate::decision::snapshot::{Pinned, Snapshot};
use crate::hashing::key_eq;
use crate::model::flag::Flag;
use crate::model::ids::VariantKey;
use crate::targeting::SavedGroups;
use crate::targeting::short::pack;

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

/// An environment name as flags compare it: packed into an integer when it is short (most are:
/// `production`, `staging`), so matching one is an integer comparison with no load of the
/// name's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EnvName {
    /// At most 15 bytes, packed.
    Packed(u128),
    /// Longer.
    Long(Box<str>),
}

impl EnvName {
    pub(crate) fn new(name: &str) -> EnvName {
        match pack(name) {
            Some(p) => EnvName::Packed(p),
            None => EnvName::Long(name.into()),
        }
    }

    /// Whether this is `query`.
    #[inline]
    pub(crate) fn is(&self, query: &Env<'_>) -> bool {
        match (self, query.packed) {
            (EnvName::Packed(a), Some(b)) => *a == b,
            (EnvName::Long(a), None) => key_eq(a, query.name),
            _ => false,
        }
    }
}

/// The environment a request asks for, packed once per request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Env<'a> {
    name: &'a str,
    packed: Option<u128>,
}

impl<'a> Env<'a> {
    #[inline]
    pub(crate) fn new(name: &'a str) -> Env<'a> {
        Env {
            name,
            packed: pack(name),
        }
    }
}

struct CompiledRule {
    id: String,
    condition: crate::targeting::Condition,
    value: Value,
    rollout: Option<(LayerHasher, u16)>,
    /// `id` and `value` as JSON text, encoded once at compile time.
    id_json: Box<str>,
    value_json: Box<str>,
}

/// `v` as JSON text (a `Value` always encodes; `null` if it somehow did not).
fn json_text<T: serde::Serialize + ?Sized>(v: &T) -> Box<str> {
    serde_json::to_string(v)
        .unwrap_or_else(|_| "null".to_owned())
        .into_boxed_str()
}

/// A flag compiled for evaluation: its rules bound to their saved groups, and the running
/// experiments attached to it (sorted by id, so every process serves the same one first).
pub(crate) struct CompiledFlag {
    pub(crate) flag: Flag,
    rules: Vec<CompiledRule>,
    /// Running experiments attached to it: (environment, experiment).
    experiments: Vec<(Option<EnvName>, Arc<CompiledExperiment>)>,
    /// The key, the default value and each experiment's variant values as JSON text, encoded
    /// once so that writing an evaluation is copying (see [`EvaluateAllResponse::json_parts`]).
    key_json: Box<str>,
    default_json: Box<str>,
    variants_json: Vec<Vec<Box<str>>>,
}

impl std::fmt::Debug for CompiledFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledFlag")
            .field("key", &self.flag.key)
            .field("experiments", &self.experiments.len())
            .finish_non_exhaustive()
    }
}

impl CompiledFlag {
    /// Compiles `flag` with its running experiments (any order; sorted here).
    pub(crate) fn new(
        flag: Flag,
        groups: &SavedGroups,
        mut experiments: Vec<Arc<CompiledExperiment>>,
    ) -> CompiledFlag {
        let rules = flag
            .rules
            .iter()
            .map(|rule| CompiledRule {
                id: rule.id.clone(),
                id_json: json_text(&rule.id),
                value_json: json_text(&rule.value),
                condition: rule.condition.bind_lenient(groups),
                value: rule.value.clone(),
                rollout: rule.percentage.map(|p| {
                    let bp = Traffic::from_fraction(p / 100.0).map_or(0, Traffic::basis_points);
                    (LayerHasher::new(&format!("{}:{}", flag.key, rule.id)), bp)
                }),
            })
            .collect();
        experiments.sort_by(|a, b| a.experiment().id().cmp(b.experiment().id()));
        let variants_json = experiments
            .iter()
            .map(|c| {
                c.experiment()
                    .variants()
                    .iter()
                    .map(|v| json_text(v.value.as_ref().unwrap_or(&NULL)))
                    .collect()
            })
            .collect();
        let experiments = experiments
            .into_iter()
            .map(|c| (c.experiment().environment().map(EnvName::new), c))
            .collect();
        CompiledFlag {
            key_json: json_text(flag.key.as_str()),
            default_json: json_text(&flag.default_value),
            flag,
            rules,
            experiments,
            variants_json,
        }
    }

    /// Evaluates this flag in `environment` for `ctx`.
    #[inline]
    pub(crate) fn evaluate(&self, environment: &Env<'_>, ctx: &Context) -> Outcome {
        let mut key_missing = false;
        for (i, (env, x)) in self.experiments.iter().enumerate() {
            if env.as_ref().is_some_and(|e| !e.is(environment)) {
                continue;
            }
            let a = x.assign(ctx);
            key_missing |= a.reason() == Reason::NoUnitId;
            if let (true, Some(v)) = (a.reason().is_assigned(), a.variant_index()) {
                return Outcome {
                    source: Source::Variant(i as u32, v),
                    reason: a.reason(),
                    error: None,
                };
            }
        }
        // A unit without a targeting key still gets the flag's rules; only when nothing else
        // applies is the missing key reported (with the default value).
        let fallback = |otherwise: Reason| {
            if key_missing {
                Outcome {
                    source: Source::Default,
                    reason: Reason::Error,
                    error: Some(ErrorCode::TargetingKeyMissing),
                }
            } else {
                Outcome {
                    source: Source::Default,
                    reason: otherwise,
                    error: None,
                }
            }
        };
        if !self.flag.enabled {
            return fallback(Reason::Disabled);
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.condition.matches(ctx.attributes()) {
                continue;
            }
            if let Some((h, bp)) = &rule.rollout {
                let unit = ctx.key().unwrap_or("");
                if unit.is_empty() || h.bucket(unit.as_bytes()) >= *bp {
                    continue;
                }
            }
            return Outcome {
                source: Source::Rule(i as u32),
                reason: Reason::TargetingMatch,
                error: None,
            };
        }
        fallback(Reason::Default)
    }

    #[inline]
    fn value(&self, source: Source) -> &Value {
        match source {
            Source::None => &NULL,
            Source::Default => &self.flag.default_value,
            Source::Rule(i) => self.rules.get(i as usize).map_or(&NULL, |r| &r.value),
            Source::Variant(e, v) => self
                .experiments
                .get(e as usize)
                .and_then(|(_, x)| x.experiment().variants().get(v as usize))
                .and_then(|v| v.value.as_ref())
                .unwrap_or(&NULL),
        }
    }

    /// The key, the value served and the rule id (`null` when none) as JSON text.
    fn json_parts(&self, source: Source) -> (&str, &str, &str) {
        let value = match source {
            Source::None => "null",
            Source::Default => &self.default_json,
            Source::Rule(i) => self
                .rules
                .get(i as usize)
                .map_or("null", |r| &*r.value_json),
            Source::Variant(e, v) => self
                .variants_json
                .get(e as usize)
                .and_then(|vs| vs.get(v as usize))
                .map_or("null", |s| &**s),
        };
        let rule = match source {
            Source::Rule(i) => self.rules.get(i as usize).map_or("null", |r| &*r.id_json),
            _ => "null",
        };
        (&self.key_json, value, rule)
    }

    fn rule_id(&self, source: Source) -> Option<&str> {
        match source {
            Source::Rule(i) => self.rules.get(i as usize).map(|r| r.id.as_str()),
            _ => None,
        }
    }

    fn experiment(&self, source: Source) -> Option<(&CompiledExperiment, u32)> {
        match source {
            Source::Variant(e, v) => self.experiments.get(e as usize).map(|(_, x)| (&**x, v)),
            _ => None,
        }
    }
}

/// Where an evaluated value comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source {
    None,
    Default,
    Rule(u32),
    Variant(u32, u32),
}

/// The outcome of evaluating one compiled flag.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outcome {
    source: Source,
    reason: Reason,
    error: Option<ErrorCode>,
}

static NULL: Value = Value::Null;

/// The result of evaluating one flag for one context. Holds the snapshot it read (pinned for
/// this thread: no shared reference count is touched, no copy is made; hence not `Send`) and
/// the context it was made for, so [`Evaluation::exposure`] cannot be asked about anyone else.
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// let lab = abkit::Lab::new();
/// let ctx = abkit::Context::new("u1");
/// send(lab.evaluate("p", "production", "k", &ctx)); // an Evaluation is not Send
/// ```
pub struct Evaluation<'c> {
    snapshot: Pinned,
    flag: Option<u32>,
    outcome: Outcome,
    ctx: &'c Context,
}

impl std::fmt::Debug for Evaluation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluation")
            .field("value", &self.value())
            .field("variant", &self.variant_key())
            .field("rule_id", &self.rule_id())
            .field("reason", &self.outcome.reason)
            .field("error", &self.outcome.error)
            .finish()
    }
}

impl<'c> Evaluation<'c> {
    /// Evaluates flag `key` of `project` in `environment` for `ctx` on `snapshot`.
    #[inline]
    pub(crate) fn new(
        snapshot: Pinned,
        project: &str,
        environment: &str,
        key: &str,
        ctx: &'c Context,
    ) -> Evaluation<'c> {
        let environment = Env::new(environment);
        let (flag, outcome) = match snapshot.flags.find(project, &environment, key) {
            Some((slot, f)) => (Some(slot), f.evaluate(&environment, ctx)),
            None => (
                None,
                Outcome {
                    source: Source::None,
                    reason: Reason::Error,
                    error: Some(ErrorCode::FlagNotFound),
                },
            ),
        };
        Evaluation {
            snapshot,
            flag,
            outcome,
            ctx,
        }
    }

    fn compiled(&self) -> Option<&CompiledFlag> {
        self.flag.and_then(|i| self.snapshot.flags.get(i))
    }

    /// The value served (`null` for a flag not found).
    #[inline]
    pub fn value(&self) -> &Value {
        self.compiled()
            .map_or(&NULL, |f| f.value(self.outcome.source))
    }

    /// The flag evaluated, if it was found.
    pub fn flag(&self) -> Option<&Flag> {
        self.compiled().map(|f| &f.flag)
    }

    /// The context it was evaluated for.
    pub fn context(&self) -> &'c Context {
        self.ctx
    }

    /// The experiment variant served, if an experiment decided.
    pub fn variant_key(&self) -> Option<&VariantKey> {
        let (x, v) = self.compiled()?.experiment(self.outcome.source)?;
        x.experiment().variants().get(v as usize).map(|v| &v.id)
    }

    /// The id of the rule that matched.
    pub fn rule_id(&self) -> Option<&str> {
        self.compiled().and_then(|f| f.rule_id(self.outcome.source))
    }

    /// Why: [`Reason::Split`] (or `Sticky`, `Forced`) when an experiment served the value,
    /// [`Reason::TargetingMatch`], [`Reason::Disabled`], [`Reason::Default`] or
    /// [`Reason::Error`].
    pub fn reason(&self) -> Reason {
        self.outcome.reason
    }

    /// The error, when the reason is [`Reason::Error`].
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.outcome.error
    }

    /// The exposure this evaluation implies (when an experiment allocated the unit), for the
    /// context it was made for; record it with [`crate::Events::record`].
    pub fn exposure(&self) -> Option<Exposure<'_>> {
        let (x, v) = self.compiled()?.experiment(self.outcome.source)?;
        x.exposure_for(self.ctx, v, self.outcome.reason == Reason::Forced)
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

/// Every flag of a project evaluated for one context, sorted by key. Borrows every value from
/// the snapshot it read: building it copies nothing. (The flag API's `{"flags": …}` payload is
/// [`crate::wire::flag::EvaluateResponse`].) Holds the context it was made for, so
/// [`EvaluateAllResponse::exposures`] cannot be asked about anyone else.
pub struct EvaluateAllResponse<'c> {
    snapshot: Pinned,
    results: Vec<(u32, Outcome)>,
    ctx: &'c Context,
}

impl std::fmt::Debug for EvaluateAllResponse<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v, r)| (k, (v, r))))
            .finish()
    }
}

impl<'c> EvaluateAllResponse<'c> {
    /// Evaluates every flag of `project` in `environment` for `ctx` on `snapshot`.
    #[inline]
    pub(crate) fn new(
        snapshot: Pinned,
        project: &str,
        environment: &str,
        ctx: &'c Context,
    ) -> EvaluateAllResponse<'c> {
        let results = evaluate_project(&snapshot, project, environment, ctx);
        EvaluateAllResponse {
            snapshot,
            results,
            ctx,
        }
    }

    /// (key, value, rule id) for every flag, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value, Option<&str>)> {
        self.results.iter().filter_map(|(i, outcome)| {
            let f = self.snapshot.flags.get(*i)?;
            Some((
                f.flag.key.as_str(),
                f.value(outcome.source),
                f.rule_id(outcome.source),
            ))
        })
    }

    /// (key, value, rule id) for every flag as JSON text (a string literal, a JSON value, a
    /// string literal or `null`), sorted by key: encoded once when the flag was compiled, so
    /// writing a response is copying. The same data as [`EvaluateAllResponse::iter`].
    pub fn json_parts(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.results.iter().filter_map(|(i, outcome)| {
            Some(self.snapshot.flags.get(*i)?.json_parts(outcome.source))
        })
    }

    /// The exposures these evaluations imply (one per flag an experiment allocated the unit
    /// in), for the context they were made for; record them with [`crate::Events::record`].
    /// A service that serves the values records these, so a later conversion is attributed.
    pub fn exposures(&self) -> impl Iterator<Item = Exposure<'_>> {
        self.results.iter().filter_map(|(i, outcome)| {
            let (x, v) = self.snapshot.flags.get(*i)?.experiment(outcome.source)?;
            x.exposure_for(self.ctx, v, outcome.reason == Reason::Forced)
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

fn evaluate_project(
    snapshot: &Snapshot,
    project: &str,
    environment: &str,
    ctx: &Context,
) -> Vec<(u32, Outcome)> {
    let Some(entries) = snapshot.flags.project(project) else {
        return Vec::new();
    };
    let environment = Env::new(environment);
    let mut results = Vec::with_capacity(entries.len());
    for entry in entries {
        if let Some((slot, f)) = entry.for_env(&environment) {
            results.push((slot, f.evaluate(&environment, ctx)));
        }
    }
    results
}
