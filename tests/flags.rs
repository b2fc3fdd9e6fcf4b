//! Flags: the flag API's walkthrough as written, evaluation order, typed accessors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use abkit::{
    Context, Error, ErrorCode, Lab, NewExperiment, NewFlag, Reason, StopRequest, TrackEvent,
};
use serde_json::{Value, json};

fn read(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/bodies/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn the_flag_api_walkthrough_works_as_written() {
    let lab = Lab::new();
    // Step 1: a string flag, created disabled, never enabled.
    let flag = lab
        .flags()
        .create(serde_json::from_str(&read("flag-create.json")).unwrap())
        .unwrap();
    assert!(!flag.enabled);
    // Step 2: attach an experiment; draft evaluates to the default value.
    let exp = lab
        .flags()
        .create_experiment(
            flag.id.as_str(),
            serde_json::from_str(&read("flag-experiment-create.json")).unwrap(),
        )
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&read("flag-evaluate.json")).unwrap();
    let ctx: Context = serde_json::from_value(body["context"].clone()).unwrap();
    let (project, env) = (
        body["project_id"].as_str().unwrap(),
        body["environment"].as_str().unwrap(),
    );
    let e = lab.evaluate(project, env, "checkout_flow", &ctx);
    assert_eq!(e.value(), "control");
    assert_eq!(e.reason(), Reason::Disabled);
    assert!(e.exposure().is_none());
    // Step 3: start; evaluation returns the allocated variant's value, the same for the same user.
    lab.experiments().start(exp.id().as_str()).unwrap();
    let e = lab.evaluate(project, env, "checkout_flow", &ctx);
    assert_eq!(e.reason(), Reason::Split);
    let served = e.value().as_str().unwrap().to_owned();
    assert!(
        served == "old_checkout" || served == "new_checkout",
        "{served}"
    );
    for _ in 0..10 {
        assert_eq!(
            lab.evaluate(project, env, "checkout_flow", &ctx).value(),
            served.as_str()
        );
    }
    let all = serde_json::to_value(abkit::wire::flag::EvaluateResponse(
        &lab.evaluate_all(project, env, &ctx),
    ))
    .unwrap();
    assert_eq!(
        all,
        json!({"flags": {"checkout_flow": {"value": served, "rule_id": null}}})
    );
    // Both variants are served across users.
    let values: std::collections::BTreeSet<String> = (0..200)
        .map(|i| {
            lab.evaluate(
                project,
                env,
                "checkout_flow",
                &Context::new(format!("u{i}")),
            )
            .str_or("?")
            .to_owned()
        })
        .collect();
    assert_eq!(values.len(), 2, "{values:?}");
    // Step 4: record the exposure, track a conversion (twice: counted once).
    let exposure = e.exposure().unwrap();
    lab.events().record(&exposure).unwrap();
    let mut track: TrackEvent = serde_json::from_str(&read("flag-track.json")).unwrap();
    track.experiment_id = exp.id().to_string();
    track.flag_id = Some(flag.id.to_string());
    lab.events().track(&track).unwrap();
    lab.events().track(&track).unwrap();
    // Step 5: results.
    let counts = lab
        .reports()
        .experiment_with_counts(exp.id().as_str())
        .unwrap();
    assert_eq!(counts.conversions, 1);
    assert_eq!(serde_json::to_value(&counts).unwrap()["conversions"], 1);
    // Step 6: stop; the flag reverts to its default value; tracking is rejected.
    lab.experiments()
        .stop(exp.id().as_str(), StopRequest::default())
        .unwrap();
    assert_eq!(
        lab.evaluate(project, env, "checkout_flow", &ctx).value(),
        "control"
    );
    assert!(matches!(
        lab.events().track(&track),
        Err(Error::Lifecycle { .. })
    ));
}

#[test]
fn stopping_with_a_winner_can_promote_it_to_the_default() {
    let lab = Lab::new();
    let flag = lab
        .flags()
        .create(serde_json::from_str(&read("flag-create.json")).unwrap())
        .unwrap();
    let exp = lab
        .flags()
        .create_experiment(
            flag.id.as_str(),
            serde_json::from_str(&read("flag-experiment-create.json")).unwrap(),
        )
        .unwrap();
    lab.experiments().start(exp.id().as_str()).unwrap();
    let req = StopRequest {
        winner: Some("treatment".into()),
        reason: Some("won".into()),
    };
    lab.flags()
        .stop_experiment(exp.id().as_str(), req, true)
        .unwrap();
    assert_eq!(
        lab.flags().get(flag.id.as_str()).unwrap().default_value,
        "new_checkout"
    );
    assert_eq!(
        lab.string_value(
            "PROJECT_ID",
            "production",
            "checkout_flow",
            &Context::new("x"),
            "?"
        ),
        "new_checkout"
    );
}

#[test]
fn rules_default_disabled_and_errors() {
    let lab = Lab::new();
    let new: NewFlag = serde_json::from_value(json!({
        "project_id": "p", "key": "dark_mode", "flag_type": "bool", "default_value": false, "enabled": true,
        "rules": [{"id": "everyone", "condition": {}, "value": true, "percentage": 100}]
    }))
    .unwrap();
    let flag = lab.flags().create(new).unwrap();
    let ctx = Context::new("u1");
    let e = lab.evaluate("p", "production", "dark_mode", &ctx);
    assert_eq!(
        (e.value(), e.rule_id(), e.reason()),
        (&json!(true), Some("everyone"), Reason::TargetingMatch)
    );
    assert!(lab.bool_value("p", "production", "dark_mode", &ctx, false));
    assert_eq!(
        lab.number_value("p", "production", "dark_mode", &ctx, 7.0),
        7.0,
        "type mismatch gives the default"
    );
    lab.flags().set_enabled(flag.id.as_str(), false).unwrap();
    assert_eq!(
        lab.evaluate("p", "production", "dark_mode", &ctx).reason(),
        Reason::Disabled
    );
    let missing = lab.evaluate("p", "production", "nope", &ctx);
    assert_eq!(
        (missing.reason(), missing.error_code()),
        (Reason::Error, Some(ErrorCode::FlagNotFound))
    );
    assert!(lab.bool_value("p", "production", "nope", &ctx, true));
    // Percentage rollouts take a share of units.
    lab.flags().update_latest(
        flag.id.as_str(),
        serde_json::from_value(
            json!({"enabled": true, "rules": [{"id": "half", "value": true, "percentage": 50}]}),
        )
        .unwrap(),
    )
    .unwrap();
    let on = (0..2000)
        .filter(|i| {
            lab.bool_value(
                "p",
                "production",
                "dark_mode",
                &Context::new(format!("u{i}")),
                false,
            )
        })
        .count();
    assert!((900..1100).contains(&on), "{on}");
}

#[test]
fn bad_flags_are_refused_and_nothing_is_stored() {
    let lab = Lab::new();
    let mk = |v: serde_json::Value| -> NewFlag { serde_json::from_value(v).unwrap() };
    lab.flags()
        .create(mk(
            json!({"project_id": "p", "key": "k", "default_value": "a"}),
        ))
        .unwrap();
    let dup = lab
        .flags()
        .create(mk(
            json!({"project_id": "p", "key": "k", "default_value": "b"}),
        ))
        .unwrap_err();
    assert_eq!(
        dup.to_string(),
        "flag key \"k\" already exists in project \"p\" (environment \"*\")"
    );
    assert!(
        matches!(
            &dup,
            abkit::Error::Conflict(abkit::Conflict::FlagKeyTaken { key, .. }) if key == "k"
        ),
        "{dup:?}"
    );
    // The same key in another project or environment is fine.
    lab.flags()
        .create(mk(
            json!({"project_id": "q", "key": "k", "default_value": "b"}),
        ))
        .unwrap();
    lab.flags()
        .create(mk(
            json!({"project_id": "p", "key": "k", "environment": "staging", "default_value": "b"}),
        ))
        .unwrap();
    let err = lab
        .flags()
        .create(mk(
            json!({"project_id": "p", "key": "n", "flag_type": "number", "default_value": "x"}),
        ))
        .unwrap_err();
    assert_eq!(err.to_string(), "defaultValue: \"x\" is not a number value");
    assert_eq!(lab.flags().list("p").unwrap().len(), 2);
    // Variant values must have the flag's type.
    let flag = &lab.flags().list("q").unwrap()[0];
    let exp: NewExperiment = serde_json::from_value(json!({
        "name": "x", "environment": "production",
        "variants": [{"key": "a", "value": "s", "percentage": 50}, {"key": "b", "value": 3, "percentage": 50}]
    }))
    .unwrap();
    let err = lab
        .flags()
        .create_experiment(flag.id.as_str(), exp)
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("variants[1].value: 3 is not a string value"),
        "{err}"
    );
    assert_eq!(
        lab.experiments().list(&Default::default()).unwrap().total,
        0
    );
}

#[test]
fn environment_specific_flags_win() {
    let lab = Lab::new();
    let mk = |v: serde_json::Value| -> NewFlag { serde_json::from_value(v).unwrap() };
    lab.flags()
        .create(mk(
            json!({"project_id": "p", "key": "k", "default_value": "any"}),
        ))
        .unwrap();
    lab.flags().create(mk(
        json!({"project_id": "p", "key": "k", "environment": "staging", "default_value": "stg"}),
    ))
    .unwrap();
    let ctx = Context::new("u");
    assert_eq!(lab.evaluate("p", "staging", "k", &ctx).value(), "stg");
    assert_eq!(lab.evaluate("p", "production", "k", &ctx).value(), "any");
}

#[test]
fn one_running_experiment_per_flag_and_environment_and_anonymous_units_get_rules() {
    let lab = Lab::new();
    let new: NewFlag = serde_json::from_value(json!({
        "project_id": "p", "key": "k", "default_value": "d", "enabled": true,
        "rules": [{"id": "all", "value": "rule"}]
    }))
    .unwrap();
    let flag = lab.flags().create(new).unwrap();
    let exp = |name: &str| -> NewExperiment {
        serde_json::from_value(json!({
            "name": name, "environment": "production", "targetingRules": {"country": "US"},
            "variants": [{"key": "a", "value": "x1", "percentage": 50}, {"key": "b", "value": "x2", "percentage": 50}]
        }))
        .unwrap()
    };
    let first = lab
        .flags()
        .create_experiment(flag.id.as_str(), exp("first"))
        .unwrap();
    let second = lab
        .flags()
        .create_experiment(flag.id.as_str(), exp("second"))
        .unwrap();
    lab.experiments().start(first.id().as_str()).unwrap();
    let err = lab.experiments().start(second.id().as_str()).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    // An anonymous unit outside the experiment's audience still gets the flag's rule.
    let anon = Context::anonymous().with_attribute("country", "DE");
    let e = lab.evaluate("p", "production", "k", &anon);
    assert_eq!(
        (e.value(), e.reason()),
        (&json!("rule"), Reason::TargetingMatch)
    );
    // A flag for an environment literally named "*" does not collide with the all-environments one.
    let star: NewFlag = serde_json::from_value(
        json!({"project_id": "p", "key": "k", "environment": "*", "default_value": "s"}),
    )
    .unwrap();
    lab.flags().create(star).unwrap();
}

/// The evaluate response written from the fragments the snapshot encoded once is byte for byte
/// what serde writes, for every kind of value a flag serves (defaults, rules, variants; strings
/// that need escaping, numbers, objects, arrays, null) and for users in and out of the rules.
#[test]
fn pre_encoded_evaluate_response_equals_serde() {
    let lab = Lab::new();
    let values = [
        json!("plain"),
        json!("quote \" backslash \\ newline \n tab \t é ☃ \u{1}"),
        json!(0.1),
        json!(-3),
        json!(1e300),
        json!({"nested": {"list": [1, "two", null, true]}, "k\"ey": "v"}),
        json!([]),
        json!(null),
    ];
    for (i, v) in values.iter().enumerate() {
        let flag_type = match v {
            Value::String(_) => "string",
            Value::Number(_) => "number",
            _ => "json",
        };
        let default = if v.is_null() { json!({}) } else { v.clone() };
        let new: NewFlag = serde_json::from_value(json!({
            "project_id": "p", "key": format!("flag \"{i}\" ☃"), "flag_type": flag_type,
            "default_value": default, "enabled": true,
            "rules": [{"id": format!("rule \"{i}\""), "condition": {"plan": "pro"}, "value": default}]
        }))
        .unwrap();
        lab.flags().create(new).unwrap();
    }
    let flag = lab
        .flags()
        .create(serde_json::from_value(json!({"project_id": "p", "key": "exp", "flag_type": "string", "default_value": "a\""})).unwrap())
        .unwrap();
    let exp = lab
        .flags()
        .create_experiment(
            flag.id.as_str(),
            serde_json::from_value(json!({"name": "e", "variants": [
                {"key": "a", "value": "a\"", "percentage": 50}, {"key": "b", "value": "b\\", "percentage": 50}]}))
            .unwrap(),
        )
        .unwrap();
    lab.experiments().start(exp.id().as_str()).unwrap();
    for user in 0..50 {
        let ctx = Context::new(format!("u{user}"))
            .with_attribute("plan", if user % 2 == 0 { "pro" } else { "free" });
        let all = lab.evaluate_all("p", "production", &ctx);
        let response = abkit::wire::flag::EvaluateResponse(&all);
        let mut written = Vec::new();
        response.write_json(&mut written);
        assert_eq!(
            String::from_utf8(written).unwrap(),
            serde_json::to_string(&response).unwrap()
        );
    }
}
