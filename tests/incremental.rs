//! The incrementally maintained snapshot decides exactly as a snapshot compiled from scratch.
//!
//! Every configuration write (experiments, flags, audiences, saved groups, layers, the global
//! holdout) updates the lab's compiled snapshot incrementally (`Snapshot::apply` recompiles
//! only the changed record and its dependents). A new lab built on the same storage compiles
//! everything from scratch. Seeded random walks of writes check that the two agree on:
//!
//! - the experiment record compiled into the snapshot, and `assign` (variant and reason, or the
//!   error) for every experiment id ever created (deleted ones must be unknown to both);
//! - `evaluate` (value, reason, rule id, variant, error code, flag served) for every
//!   (project, environment, key), including an environment and a key no flag has;
//! - `evaluate_all` (the whole list, in order) for every (project, environment);
//!
//! on 64 contexts: unit ids in and out of the saved groups, countries, a numeric tier, a hash
//! attribute, one anonymous context.
//!
//! * The small walks (4 seeds, 450 random writes each, compared after **every** successful
//!   write) range over 3 saved groups, 3 audiences naming them (and one never created), 2
//!   layers, the global holdout, a few dozen experiments (audiences, targeting naming the saved
//!   groups, layer ranges, traffic, overrides, hash attributes, salts; started, ramped, patched,
//!   stopped with and without a winner, completed, archived, deleted), flags of 3 keys in 2
//!   projects for every environment or for `production` / `staging` (rules naming the saved
//!   groups, percentage rollouts; patched, enabled, disabled, deleted), and flag experiments
//!   started, stopped and promoted.
//! * The wide walk grows the snapshot's chunked indexes past one chunk (150 flags of one
//!   project, 90+ experiments), drains a whole chunk and refills it, then writes at random.
//!
//! The comparison has teeth: the lab compiled at the previous check (a stale snapshot) must
//! differ from the incremental one after most writes, the compared decisions must cover every
//! reason an experiment or flag decides with, and every kind of write must succeed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use abkit::storage::{MemoryStorage, Storage};
use abkit::{
    Audience, BucketRange, Condition, Context, ErrorCode, Experiment, ExperimentPatch, FlagId,
    FlagPatch, FlagRule, FlagType, Holdout, Lab, Layer, ManualClock, NewExperiment, NewFlag,
    Reason, SavedGroup, SequentialIdGenerator, StopRequest, Timestamp, VariantKey,
};
use serde_json::{Value, json};

/// Random writes per seed of the small walks.
const OPS: usize = 450;

const GROUPS: [&str; 3] = ["g1", "g2", "g3"];
const AUDIENCES: [&str; 3] = ["aud_a", "aud_b", "aud_c"];
const LAYERS: [&str; 2] = ["L1", "L2"];
const PROJECTS: [&str; 2] = ["p1", "p2"];
/// A flag key never created (evaluated too: not found in both labs).
const ABSENT_KEY: &str = "k_absent";
/// Evaluated environments: the two flags are made for, and one no flag is made for.
const EVAL_ENVS: [&str; 3] = ["production", "staging", "dev"];
const UNITS: usize = 16;

/// SplitMix64: a small, fixed, dependency-free generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// The flag keys of a walk and what it has created so far (deleted ids stay: they must be
/// unknown to both labs).
#[derive(Default)]
struct World {
    /// The flag keys; a key's position decides its flags' type (string, bool, number, …).
    keys: Vec<String>,
    experiments: Vec<String>,
    flags: Vec<String>,
}

impl World {
    fn with_keys(keys: Vec<String>) -> World {
        World {
            keys,
            ..World::default()
        }
    }

    fn flag_type_of(&self, key: &str) -> FlagType {
        match self.keys.iter().position(|k| k == key).map(|i| i % 3) {
            Some(1) => FlagType::Bool,
            Some(2) => FlagType::Number,
            _ => FlagType::String,
        }
    }
}

/// The kinds of write, for the coverage count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Experiment,
    Flag,
    Audience,
    SavedGroup,
    Layer,
    Settings,
}

fn condition(rng: &mut Rng) -> Value {
    let g = *rng.pick(&GROUPS);
    match rng.below(10) {
        0 => json!({}),
        1 => json!({"country": "DE"}),
        2 => json!({"country": {"$in": ["DE", "FR"]}}),
        3 | 4 => json!({"id": {"$inGroup": g}}),
        5 => json!({"id": {"$notInGroup": g}}),
        6 => json!({"$or": [{"id": {"$inGroup": g}}, {"country": "US"}]}),
        7 => json!({"$and": [{"country": {"$ne": "FR"}}, {"id": {"$notInGroup": g}}]}),
        8 => json!({"tier": {"$gte": 2}}),
        _ => {
            let h = *rng.pick(&GROUPS);
            json!({"$or": [{"id": {"$inGroup": g}}, {"id": {"$inGroup": h}}]})
        }
    }
}

fn range(rng: &mut Rng) -> BucketRange {
    let start = 500 * rng.below(19) as u32;
    let end = start + 500 * (1 + rng.below(((10_000 - start) / 500) as usize) as u32);
    BucketRange::new(start, end).unwrap()
}

fn range_json(r: BucketRange) -> Value {
    serde_json::to_value(r).unwrap()
}

fn traffic(rng: &mut Rng) -> f64 {
    *rng.pick(&[0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
}

fn typed_value(rng: &mut Rng, t: FlagType) -> Value {
    match t {
        FlagType::Bool => json!(rng.chance(50)),
        FlagType::Number => json!(*rng.pick(&[1, 2, 3, 10, 20])),
        _ => json!(*rng.pick(&["off", "on", "blue", "green"])),
    }
}

fn variants(rng: &mut Rng, t: Option<FlagType>) -> Value {
    let n = 2 + rng.below(2);
    let vs: Vec<Value> = ["a", "b", "c"]
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, id)| {
            let value = match t {
                None => json!(id.to_uppercase()),
                Some(FlagType::Bool) => json!(i % 2 == 0),
                Some(FlagType::Number) => json!(100 + i),
                Some(_) => json!(format!("variant-{id}")),
            };
            json!({"id": id, "value": value})
        })
        .collect();
    Value::Array(vs)
}

/// The optional parts of an experiment body (or patch).
fn experiment_options(rng: &mut Rng, body: &mut serde_json::Map<String, Value>) {
    if rng.chance(40) {
        // Mostly audiences of the universe; now and then one that never exists.
        let aud = if rng.chance(90) {
            *rng.pick(&AUDIENCES)
        } else {
            "aud_missing"
        };
        body.insert("audienceId".into(), json!(aud));
    }
    if rng.chance(40) {
        body.insert("targeting".into(), condition(rng));
    }
    if rng.chance(45) {
        body.insert(
            "layer".into(),
            json!({"id": rng.pick(&LAYERS), "range": range_json(range(rng))}),
        );
    }
    if rng.chance(50) {
        body.insert("traffic".into(), json!(traffic(rng)));
    }
    if rng.chance(10) {
        body.insert("hashAttribute".into(), json!("member"));
    }
    if rng.chance(10) {
        body.insert("salt".into(), json!(format!("salt{}", rng.below(3))));
    }
}

fn new_experiment(rng: &mut Rng, n: usize, t: Option<FlagType>) -> Value {
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!(format!("experiment {n}")));
    body.insert("variants".into(), variants(rng, t));
    experiment_options(rng, &mut body);
    if t.is_none() && rng.chance(15) {
        body.insert("overrides".into(), json!({"u3": "b", "u7": "a"}));
    }
    Value::Object(body)
}

fn flag_rules(rng: &mut Rng, t: FlagType) -> Value {
    let rules: Vec<Value> = (0..rng.below(4))
        .map(|i| {
            let mut r = json!({"id": format!("r{i}"), "condition": condition(rng), "value": typed_value(rng, t)});
            if rng.chance(40) {
                r["percentage"] = json!(*rng.pick(&[10, 25, 50, 75, 100]));
            }
            r
        })
        .collect();
    Value::Array(rules)
}

fn from_json<T: serde::de::DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// A write: what it was (enough to replay it), its kind, and whether it succeeded.
type Write = (String, Kind, bool);

fn create_experiment(lab: &Lab, rng: &mut Rng, world: &mut World) -> Write {
    let body = new_experiment(rng, world.experiments.len(), None);
    let r = lab.experiments().create(from_json::<NewExperiment>(&body));
    let ok = r.is_ok();
    let id = r.map_or_else(|e| format!("error: {e}"), |e| e.id().to_string());
    if ok {
        world.experiments.push(id.clone());
    }
    (
        format!("experiments().create({body}) -> {id}"),
        Kind::Experiment,
        ok,
    )
}

fn create_flag_experiment(lab: &Lab, rng: &mut Rng, world: &mut World, flag_id: &str) -> Write {
    let flags = lab.flags();
    let t = flags
        .get(flag_id)
        .map(|f| (f.flag_type, f.environment.clone()));
    let t = t.unwrap_or((FlagType::String, None));
    let mut body = new_experiment(rng, world.experiments.len(), Some(t.0));
    match (t.1, rng.below(4)) {
        (Some(env), 0 | 1) => body["environment"] = json!(env),
        (_, 2) => body["environment"] = json!(rng.pick(&["production", "staging"])),
        _ => {}
    }
    let r = flags.create_experiment(flag_id, from_json::<NewExperiment>(&body));
    let ok = r.is_ok();
    let id = r.map_or_else(|e| format!("error: {e}"), |e| e.id().to_string());
    if ok {
        world.experiments.push(id.clone());
    }
    (
        format!("flags().create_experiment({flag_id}, {body}) -> {id}"),
        Kind::Experiment,
        ok,
    )
}

/// Creates a flag; its id (if created) is the last of `world.flags`.
fn create_flag(
    lab: &Lab,
    rng: &mut Rng,
    world: &mut World,
    project: &str,
    key: &str,
    env: Option<&str>,
) -> Write {
    let t = world.flag_type_of(key);
    let mut body = json!({
        "projectId": project,
        "key": key,
        "defaultValue": typed_value(rng, t),
        "enabled": rng.chance(60),
        "rules": flag_rules(rng, t),
    });
    if let Some(env) = env {
        body["environment"] = json!(env);
    }
    let r = lab.flags().create(from_json::<NewFlag>(&body));
    let ok = r.is_ok();
    let id = r.map_or_else(|e| format!("error: {e}"), |f| f.id.to_string());
    if ok {
        world.flags.push(id.clone());
    }
    (format!("flags().create({body}) -> {id}"), Kind::Flag, ok)
}

/// One random write: what it was (enough to replay it), its kind, and whether it succeeded.
fn random_op(lab: &Lab, rng: &mut Rng, world: &mut World) -> Write {
    let exps = lab.experiments();
    let flags = lab.flags();
    let targeting = lab.targeting();
    let any_exp = |rng: &mut Rng, world: &World| {
        if world.experiments.is_empty() {
            "exp_none".to_owned()
        } else {
            rng.pick(&world.experiments).clone()
        }
    };
    let any_flag = |rng: &mut Rng, world: &World| {
        if world.flags.is_empty() {
            "flag_none".to_owned()
        } else {
            rng.pick(&world.flags).clone()
        }
    };
    let winner = |rng: &mut Rng| {
        if rng.chance(60) {
            Some((*rng.pick(&["a", "b", "c"])).to_owned())
        } else {
            None
        }
    };
    match rng.below(100) {
        // ----- experiments -----
        0..=9 => create_experiment(lab, rng, world),
        10..=15 => {
            let flag_id = any_flag(rng, world);
            create_flag_experiment(lab, rng, world, &flag_id)
        }
        16..=29 => {
            let id = any_exp(rng, world);
            let ok = exps.start(&id).is_ok();
            (format!("experiments().start({id})"), Kind::Experiment, ok)
        }
        30..=35 => {
            let id = any_exp(rng, world);
            let req = StopRequest {
                winner: winner(rng),
                reason: None,
            };
            let ok = exps.stop(&id, req.clone()).is_ok();
            (
                format!("experiments().stop({id}, winner {:?})", req.winner),
                Kind::Experiment,
                ok,
            )
        }
        36..=40 => {
            let id = any_exp(rng, world);
            let req = StopRequest {
                winner: winner(rng),
                reason: None,
            };
            let promote = rng.chance(70);
            let ok = flags.stop_experiment(&id, req.clone(), promote).is_ok();
            (
                format!(
                    "flags().stop_experiment({id}, winner {:?}, promote {promote})",
                    req.winner
                ),
                Kind::Experiment,
                ok,
            )
        }
        41..=44 => {
            let id = any_exp(rng, world);
            let t = traffic(rng);
            let ok = exps.ramp(&id, t).is_ok();
            (
                format!("experiments().ramp({id}, {t})"),
                Kind::Experiment,
                ok,
            )
        }
        45..=50 => {
            let id = any_exp(rng, world);
            let mut body = serde_json::Map::new();
            experiment_options(rng, &mut body);
            if rng.chance(20) {
                let t = exps
                    .get(&id)
                    .ok()
                    .and_then(|e| e.flag_id().cloned())
                    .and_then(|f| flags.get(f.as_str()).ok())
                    .map(|f| f.flag_type);
                body.insert("variants".into(), variants(rng, t));
            }
            if rng.chance(10) {
                body.insert("targeting".into(), Value::Null);
            }
            let body = Value::Object(body);
            let ok = exps
                .update_latest(&id, from_json::<ExperimentPatch>(&body))
                .is_ok();
            (
                format!("experiments().update_latest({id}, {body})"),
                Kind::Experiment,
                ok,
            )
        }
        51..=52 => {
            let id = any_exp(rng, world);
            let ok = exps.complete(&id).is_ok();
            (
                format!("experiments().complete({id})"),
                Kind::Experiment,
                ok,
            )
        }
        53..=54 => {
            let id = any_exp(rng, world);
            let ok = exps.archive(&id).is_ok();
            (format!("experiments().archive({id})"), Kind::Experiment, ok)
        }
        55..=57 => {
            let id = any_exp(rng, world);
            let ok = exps.delete(&id).is_ok();
            (format!("experiments().delete({id})"), Kind::Experiment, ok)
        }
        // ----- flags -----
        58..=64 => {
            let project = *rng.pick(&PROJECTS);
            let key = rng.pick(&world.keys).clone();
            let env = *rng.pick(&[None, Some("production"), Some("staging")]);
            create_flag(lab, rng, world, project, &key, env)
        }
        65..=70 => {
            let id = any_flag(rng, world);
            let t = flags.get(&id).map_or(FlagType::String, |f| f.flag_type);
            let mut patch = FlagPatch::default();
            if rng.chance(60) {
                patch.rules = Some(from_json::<Vec<FlagRule>>(&flag_rules(rng, t)));
            }
            if rng.chance(40) {
                patch.default_value = Some(typed_value(rng, t));
            }
            if rng.chance(30) {
                patch.enabled = Some(rng.chance(60));
            }
            let ok = flags.update_latest(&id, patch.clone()).is_ok();
            (
                format!("flags().update_latest({id}, {patch:?})"),
                Kind::Flag,
                ok,
            )
        }
        71..=73 => {
            let id = any_flag(rng, world);
            let on = rng.chance(60);
            let ok = flags.set_enabled(&id, on).is_ok();
            (format!("flags().set_enabled({id}, {on})"), Kind::Flag, ok)
        }
        74..=75 => {
            let id = any_flag(rng, world);
            let ok = flags.delete(&id).is_ok();
            (format!("flags().delete({id})"), Kind::Flag, ok)
        }
        // ----- targeting -----
        76..=81 => {
            let id = *rng.pick(&GROUPS);
            let values: Vec<Value> = (0..UNITS)
                .filter(|_| rng.chance(30))
                .map(|u| json!(format!("u{u}")))
                .collect();
            let ok = targeting
                .put_saved_group(SavedGroup {
                    id: id.parse().unwrap(),
                    values: values.clone(),
                })
                .is_ok();
            (
                format!(
                    "targeting().put_saved_group({id}, {})",
                    Value::Array(values)
                ),
                Kind::SavedGroup,
                ok,
            )
        }
        82..=83 => {
            let id = *rng.pick(&GROUPS);
            let ok = targeting.delete_saved_group(id).is_ok();
            (
                format!("targeting().delete_saved_group({id})"),
                Kind::SavedGroup,
                ok,
            )
        }
        84..=89 => {
            let id = *rng.pick(&AUDIENCES);
            let cond = condition(rng);
            let ok = targeting
                .put_audience(Audience {
                    id: id.parse().unwrap(),
                    name: id.to_owned(),
                    condition: Condition::parse(&cond).unwrap(),
                })
                .is_ok();
            (
                format!("targeting().put_audience({id}, {cond})"),
                Kind::Audience,
                ok,
            )
        }
        90..=91 => {
            let id = *rng.pick(&AUDIENCES);
            let ok = targeting.delete_audience(id).is_ok();
            (
                format!("targeting().delete_audience({id})"),
                Kind::Audience,
                ok,
            )
        }
        92..=94 => {
            let id = *rng.pick(&LAYERS);
            let salt = rng
                .pick(&[None, Some("salt-x"), Some("salt-y")])
                .map(str::to_owned);
            let holdout = rng.chance(30).then(|| range(rng));
            let ok = targeting
                .put_layer(Layer {
                    id: id.parse().unwrap(),
                    salt: salt.clone(),
                    holdout,
                })
                .is_ok();
            (
                format!("targeting().put_layer({id}, salt {salt:?}, holdout {holdout:?})"),
                Kind::Layer,
                ok,
            )
        }
        95..=96 => {
            let id = *rng.pick(&LAYERS);
            let ok = targeting.delete_layer(id).is_ok();
            (format!("targeting().delete_layer({id})"), Kind::Layer, ok)
        }
        _ => {
            let holdout = rng.chance(60).then(|| Holdout {
                salt: (*rng.pick(&["h1", "h2"])).to_owned(),
                range: range(rng),
            });
            let ok = targeting.set_holdout(holdout.clone()).is_ok();
            (
                format!("targeting().set_holdout({holdout:?})"),
                Kind::Settings,
                ok,
            )
        }
    }
}

fn contexts() -> Vec<Context> {
    let mut out: Vec<Context> = (0..63)
        .map(|i| {
            let unit = format!("u{}", i % UNITS);
            let mut ctx = Context::new(unit.clone()).with_attribute("id", unit);
            if let Some(c) = ["DE", "FR", "US"].get(i / UNITS) {
                ctx = ctx.with_attribute("country", *c);
            }
            if i % 3 != 0 {
                ctx = ctx.with_attribute("tier", i % 4);
            }
            if i % 2 == 0 {
                ctx = ctx.with_attribute("member", format!("m{}", i % 5));
            }
            ctx
        })
        .collect();
    out.push(Context::anonymous().with_attribute("country", "DE"));
    out
}

/// Where a decision was asked: indexes into the world's experiments and keys, the contexts,
/// [`PROJECTS`] and [`EVAL_ENVS`].
#[derive(Clone, Copy, Debug)]
enum Site {
    /// The experiment record compiled into the snapshot.
    Compiled(usize),
    /// `assign(experiment)` for a context.
    Assign(usize, usize),
    /// `evaluate(project, env, key)` for a context (key index `keys.len()`: [`ABSENT_KEY`]).
    Evaluate(usize, usize, usize, usize),
    /// `evaluate_all(project, env)` for a context.
    All(usize, usize, usize),
}

/// What a lab decided at a [`Site`].
#[derive(Debug, PartialEq)]
enum Outcome {
    Compiled(Option<Box<Experiment>>),
    Assign(Result<(Option<VariantKey>, Reason), String>),
    Evaluate {
        value: Value,
        reason: Reason,
        rule: Option<String>,
        variant: Option<VariantKey>,
        error: Option<ErrorCode>,
        flag: Option<FlagId>,
    },
    All(Vec<(String, Value, Option<String>)>),
}

fn eval_key(world: &World, k: usize) -> &str {
    world.keys.get(k).map_or(ABSENT_KEY, String::as_str)
}

fn describe(site: Site, world: &World, contexts: &[Context]) -> String {
    let who = |c: usize| {
        let ctx = &contexts[c];
        format!("context #{c} {:?} {}", ctx.key(), ctx.attributes())
    };
    match site {
        Site::Compiled(e) => format!("compiled experiment {}", world.experiments[e]),
        Site::Assign(c, e) => format!("assign({}) for {}", world.experiments[e], who(c)),
        Site::Evaluate(c, p, v, k) => format!(
            "evaluate({}, {}, {}) for {}",
            PROJECTS[p],
            EVAL_ENVS[v],
            eval_key(world, k),
            who(c)
        ),
        Site::All(c, p, v) => format!(
            "evaluate_all({}, {}) for {}",
            PROJECTS[p],
            EVAL_ENVS[v],
            who(c)
        ),
    }
}

/// Every decision of `lab` the comparison looks at, in a fixed order.
fn decisions(lab: &Lab, world: &World, contexts: &[Context]) -> Vec<(Site, Outcome)> {
    let mut out = Vec::new();
    for (e, id) in world.experiments.iter().enumerate() {
        let compiled = lab
            .compiled_experiment(id)
            .map(|c| Box::new(c.experiment().clone()));
        out.push((Site::Compiled(e), Outcome::Compiled(compiled)));
    }
    for (c, ctx) in contexts.iter().enumerate() {
        for (e, id) in world.experiments.iter().enumerate() {
            let got = lab
                .assign(id, ctx)
                .map(|d| (d.variant_key().cloned(), d.reason()))
                .map_err(|err| err.to_string());
            out.push((Site::Assign(c, e), Outcome::Assign(got)));
        }
        for (p, project) in PROJECTS.iter().enumerate() {
            for (v, env) in EVAL_ENVS.iter().enumerate() {
                for k in 0..=world.keys.len() {
                    let e = lab.evaluate(project, env, eval_key(world, k), ctx);
                    let got = Outcome::Evaluate {
                        value: e.value().clone(),
                        reason: e.reason(),
                        rule: e.rule_id().map(str::to_owned),
                        variant: e.variant_key().cloned(),
                        error: e.error_code(),
                        flag: e.flag().map(|f| f.id.clone()),
                    };
                    out.push((Site::Evaluate(c, p, v, k), got));
                }
                let all = lab
                    .evaluate_all(project, env, ctx)
                    .iter()
                    .map(|(k, v, r)| (k.to_owned(), v.clone(), r.map(str::to_owned)))
                    .collect();
                out.push((Site::All(c, p, v), Outcome::All(all)));
            }
        }
    }
    out
}

/// Where two lists of [`decisions`] differ: (what, the first's outcome, the second's).
fn differences(
    a: &[(Site, Outcome)],
    b: &[(Site, Outcome)],
    world: &World,
    contexts: &[Context],
) -> Vec<(String, String, String)> {
    assert_eq!(a.len(), b.len(), "the same decisions are listed");
    a.iter()
        .zip(b)
        .filter(|((_, x), (_, y))| x != y)
        .map(|((site, x), (_, y))| {
            (
                describe(*site, world, contexts),
                format!("{x:?}"),
                format!("{y:?}"),
            )
        })
        .collect()
}

/// Where labs `a` and `b` decide differently.
fn lab_differences(
    a: &Lab,
    b: &Lab,
    world: &World,
    contexts: &[Context],
) -> Vec<(String, String, String)> {
    differences(
        &decisions(a, world, contexts),
        &decisions(b, world, contexts),
        world,
        contexts,
    )
}

fn from_scratch(store: &Arc<dyn Storage>) -> Lab {
    Lab::builder().storage(Arc::clone(store)).build().unwrap()
}

/// What one walk did.
#[derive(Debug, Default)]
struct Stats {
    writes: usize,
    successes: usize,
    by_kind: BTreeMap<Kind, usize>,
    checks: usize,
    /// Checks at which the lab built at the previous check decides differently.
    stale_differs: usize,
    /// Experiments and flags created.
    experiments: usize,
    flags: usize,
    /// The reasons of the decisions compared, over every check.
    reasons: BTreeMap<&'static str, usize>,
    compared: usize,
}

/// A lab under test, its storage, and the checks made on it.
struct Run {
    seed: u64,
    store: Arc<dyn Storage>,
    lab: Lab,
    rng: Rng,
    world: World,
    contexts: Vec<Context>,
    /// Compare after every this many successful writes.
    check_every: usize,
    /// The lab compiled from scratch at the previous check.
    before: Lab,
    log: Vec<String>,
    stats: Stats,
}

impl Run {
    fn new(seed: u64, keys: Vec<String>, contexts: Vec<Context>, check_every: usize) -> Run {
        let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let lab = Lab::builder()
            .storage(Arc::clone(&store))
            .clock(Arc::new(ManualClock::new(Timestamp::from_unix_millis(
                1_700_000_000_000,
            ))))
            .id_generator(Arc::new(SequentialIdGenerator::default()))
            .build()
            .unwrap();
        let before = from_scratch(&store);
        Run {
            seed,
            store,
            lab,
            rng: Rng(seed),
            world: World::with_keys(keys),
            contexts,
            check_every,
            before,
            log: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Counts a write and, every `check_every` successes, compares the lab with a lab
    /// compiled from scratch.
    fn after(&mut self, (what, kind, ok): Write) {
        let i = self.stats.writes;
        self.stats.writes += 1;
        if !ok {
            return;
        }
        self.stats.successes += 1;
        *self.stats.by_kind.entry(kind).or_default() += 1;
        self.log.push(format!("write {i}: {what}"));
        if self.stats.successes.is_multiple_of(self.check_every) {
            self.check(&what);
        }
    }

    fn check(&mut self, last: &str) {
        let seed = self.seed;
        self.stats.checks += 1;
        let fresh = from_scratch(&self.store);
        let incremental = decisions(&self.lab, &self.world, &self.contexts);
        let diffs = differences(
            &incremental,
            &decisions(&fresh, &self.world, &self.contexts),
            &self.world,
            &self.contexts,
        );
        if !diffs.is_empty() {
            let mut msg = format!(
                "seed {seed}: after write {} ({last}) the incremental snapshot differs from a \
                 compile from scratch in {} decisions; first ones (what: incremental vs fresh):\n",
                self.stats.writes - 1,
                diffs.len()
            );
            for (what, x, y) in diffs.iter().take(8) {
                let _ = writeln!(msg, "  {what}:\n    {x}\n    {y}");
            }
            let shown = self.log.len().min(80);
            let _ = writeln!(
                msg,
                "successful writes so far: {} (the last {shown}):",
                self.log.len()
            );
            for l in &self.log[self.log.len() - shown..] {
                let _ = writeln!(msg, "  {l}");
            }
            panic!("{msg}");
        }
        let stale = decisions(&self.before, &self.world, &self.contexts);
        if incremental
            .iter()
            .zip(&stale)
            .any(|((_, x), (_, y))| x != y)
        {
            self.stats.stale_differs += 1;
        }
        self.stats.compared += incremental.len();
        for (_, outcome) in &incremental {
            let reason = match outcome {
                Outcome::Assign(Ok((_, r))) | Outcome::Evaluate { reason: r, .. } => *r,
                _ => continue,
            };
            *self.stats.reasons.entry(reason.as_str()).or_default() += 1;
        }
        self.before = fresh;
    }

    /// Ends the walk with a last check.
    fn finish(mut self) -> Stats {
        self.check("the end");
        self.stats.experiments = self.world.experiments.len();
        self.stats.flags = self.world.flags.len();
        self.stats
    }
}

/// A walk of [`OPS`] random writes over 3 flag keys, compared after every write.
fn small_walk(seed: u64) -> Stats {
    let keys = ["k1", "k2", "k3"].map(str::to_owned).to_vec();
    let mut run = Run::new(seed, keys, contexts(), 1);
    for _ in 0..OPS {
        let w = random_op(&run.lab, &mut run.rng, &mut run.world);
        run.after(w);
    }
    run.finish()
}

/// Runs a small walk and checks it covered what it should; its stats, for `--nocapture`.
fn check_small(seed: u64) -> String {
    let stats = small_walk(seed);
    assert!(
        stats.successes >= OPS / 3,
        "seed {seed}: only {} of {OPS} writes succeeded: {stats:?}",
        stats.successes
    );
    for kind in [
        Kind::Experiment,
        Kind::Flag,
        Kind::Audience,
        Kind::SavedGroup,
        Kind::Layer,
        Kind::Settings,
    ] {
        assert!(
            stats.by_kind.get(&kind).is_some_and(|&n| n >= 3),
            "seed {seed}: fewer than 3 successful {kind:?} writes: {stats:?}"
        );
    }
    // Compared after every write: the lab before the write is stale after most of them.
    assert!(
        stats.stale_differs >= stats.successes / 2,
        "seed {seed}: the snapshot before a write seldom differs from the one after it, so \
         the comparison proves little: {stats:?}"
    );
    for reason in [
        "split",
        "forced",
        "rollout",
        "not_running",
        "no_unit_id",
        "audience_not_matched",
        "in_holdout",
        "excluded_by_layer",
        "not_in_traffic",
        "default",
        "disabled",
        "targeting_match",
        "error",
    ] {
        assert!(
            stats.reasons.contains_key(reason),
            "seed {seed}: no decision compared had reason {reason:?}: {stats:?}"
        );
    }
    format!("seed {seed}: {stats:?}")
}

#[test]
fn incremental_snapshot_matches_a_compile_from_scratch_seed_2() {
    println!("{}", check_small(2));
}

#[test]
fn incremental_snapshot_matches_a_compile_from_scratch_seed_5() {
    println!("{}", check_small(5));
}

#[test]
fn incremental_snapshot_matches_a_compile_from_scratch_seed_deadbeef() {
    println!("{}", check_small(0xDEAD_BEEF));
}

#[test]
fn incremental_snapshot_matches_a_compile_from_scratch_seed_42() {
    println!("{}", check_small(42));
}

/// Flag keys of the wide walk: more than one chunk of a project's sorted key list (the list
/// splits past 128 keys).
const WIDE_KEYS: usize = 150;
/// Experiments the wide walk creates up front: more than one chunk (64) of slots.
const WIDE_EXPERIMENTS: usize = 90;

/// A walk over many flags and experiments, so the snapshot's chunked indexes grow past one
/// chunk, split, drain a whole chunk and refill it: 150 flags of one project in key order,
/// more in other environments and the other project, 90 experiments (some on flags, most
/// started), then the first 70 keys' flags deleted and half of them created again, then random
/// writes. Compared every 10 writes (every 3 in the random part), on 8 contexts.
fn wide_walk(seed: u64) -> Stats {
    let keys: Vec<String> = (0..WIDE_KEYS).map(|i| format!("k{i:03}")).collect();
    let contexts: Vec<Context> = contexts().into_iter().step_by(9).collect();
    let mut run = Run::new(seed, keys.clone(), contexts, 10);
    // p1 flags by key, to delete them later.
    let mut p1: Vec<(usize, String)> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let mut envs = vec![None];
        if i % 5 == 0 {
            envs.push(Some("production"));
        }
        for env in envs {
            let w = create_flag(&run.lab, &mut run.rng, &mut run.world, "p1", key, env);
            if w.2 {
                p1.push((i, run.world.flags.last().unwrap().clone()));
            }
            run.after(w);
        }
        if i % 3 == 0 {
            let env = *run.rng.pick(&[None, Some("production"), Some("staging")]);
            let w = create_flag(&run.lab, &mut run.rng, &mut run.world, "p2", key, env);
            run.after(w);
        }
    }
    for _ in 0..WIDE_EXPERIMENTS {
        let w = if run.rng.chance(30) {
            let flag = run.rng.pick(&run.world.flags).clone();
            create_flag_experiment(&run.lab, &mut run.rng, &mut run.world, &flag)
        } else {
            create_experiment(&run.lab, &mut run.rng, &mut run.world)
        };
        let created = w.2;
        run.after(w);
        if created && run.rng.chance(70) {
            let id = run.world.experiments.last().unwrap().clone();
            let ok = run.lab.experiments().start(&id).is_ok();
            run.after((format!("experiments().start({id})"), Kind::Experiment, ok));
        }
    }
    // Drain the first chunk of p1's key list (keys k000..k069, every environment), then
    // refill part of it: keys below the first key of what is now the first chunk.
    for (i, id) in &p1 {
        if *i < 70 {
            let ok = run.lab.flags().delete(id).is_ok();
            run.after((format!("flags().delete({id})"), Kind::Flag, ok));
        }
    }
    for key in keys.iter().take(70).step_by(2) {
        let w = create_flag(&run.lab, &mut run.rng, &mut run.world, "p1", key, None);
        run.after(w);
    }
    run.check_every = 3;
    for _ in 0..250 {
        let w = random_op(&run.lab, &mut run.rng, &mut run.world);
        run.after(w);
    }
    run.finish()
}

#[test]
fn incremental_snapshot_matches_a_compile_from_scratch_with_many_flags_and_experiments() {
    let seed = 7;
    let stats = wide_walk(seed);
    println!("wide seed {seed}: {stats:?}");
    let deletes = 70 + 70 / 5;
    assert!(
        stats
            .by_kind
            .get(&Kind::Flag)
            .is_some_and(|&n| n >= WIDE_KEYS + WIDE_KEYS / 5 + deletes),
        "seed {seed}: {stats:?}"
    );
    assert!(
        stats
            .by_kind
            .get(&Kind::Experiment)
            .is_some_and(|&n| n >= WIDE_EXPERIMENTS + WIDE_EXPERIMENTS / 3),
        "seed {seed}: {stats:?}"
    );
    assert!(
        stats.stale_differs >= stats.checks / 2,
        "seed {seed}: {stats:?}"
    );
    assert!(
        stats.reasons.contains_key("split"),
        "seed {seed}: {stats:?}"
    );
}

/// The teeth of the comparison on a hand-made case: a stale snapshot is caught.
#[test]
fn a_stale_snapshot_is_caught() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let lab = Lab::builder().storage(Arc::clone(&store)).build().unwrap();
    let e = lab
        .experiments()
        .create(from_json(&json!({
            "name": "x",
            "variants": [{"id": "a", "value": "A"}, {"id": "b", "value": "B"}],
            "targeting": {"id": {"$inGroup": "g1"}}
        })))
        .unwrap();
    lab.targeting()
        .put_saved_group(SavedGroup {
            id: "g1".parse().unwrap(),
            values: vec![json!("u1")],
        })
        .unwrap();
    lab.experiments().start(e.id().as_str()).unwrap();
    let world = World {
        experiments: vec![e.id().to_string()],
        ..World::default()
    };
    let contexts = contexts();
    let stale = from_scratch(&store);
    assert!(lab_differences(&lab, &stale, &world, &contexts).is_empty());
    lab.targeting()
        .put_saved_group(SavedGroup {
            id: "g1".parse().unwrap(),
            values: vec![json!("u1"), json!("u2")],
        })
        .unwrap();
    let diffs = lab_differences(&lab, &stale, &world, &contexts);
    assert!(
        diffs
            .iter()
            .any(|(what, _, _)| what.contains("\"id\":\"u2\"")),
        "{diffs:?}"
    );
    assert!(lab_differences(&lab, &from_scratch(&store), &world, &contexts).is_empty());
}
