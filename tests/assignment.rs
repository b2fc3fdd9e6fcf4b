//! The decision plane through the facade: reasons, overrides, sticky bucketing, layers,
//! holdouts, rollouts and ramps.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use abkit::{BucketRange, Context, Error, Holdout, Lab, Layer, NewExperiment, Reason, StopRequest};
use serde_json::json;

fn create(lab: &Lab, extra: serde_json::Value) -> String {
    let mut body = json!({"name": "x", "variants": [{"id": "a"}, {"id": "b"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let new: NewExperiment = serde_json::from_value(body).unwrap();
    lab.experiments().create(new).unwrap().id().to_string()
}

#[test]
fn reasons_for_every_path() {
    let lab = Lab::new();
    let id = create(
        &lab,
        json!({"overrides": {"qa": "b"}, "hashAttribute": "deviceId", "traffic": 0.5}),
    );
    let ctx = Context::new("u1").with_attribute("deviceId", "d1");
    assert_eq!(lab.assign(&id, &ctx).unwrap().reason(), Reason::NotRunning);
    lab.experiments().start(&id).unwrap();
    assert_eq!(
        lab.assign(&id, &Context::new("u1")).unwrap().reason(),
        Reason::NoUnitId,
        "no deviceId"
    );
    let forced = Context::new("x").with_attribute("deviceId", "qa");
    let a = lab.assign(&id, &forced).unwrap();
    assert_eq!(
        (a.reason(), a.variant().unwrap().id.as_str()),
        (Reason::Forced, "b")
    );
    assert!(a.exposure().unwrap().forced);
    let reasons: std::collections::BTreeSet<String> = (0..200)
        .map(|i| {
            format!(
                "{:?}",
                lab.assign(
                    &id,
                    &Context::new("u").with_attribute("deviceId", format!("d{i}"))
                )
                .unwrap()
                .reason()
            )
        })
        .collect();
    assert_eq!(
        reasons.into_iter().collect::<Vec<_>>(),
        ["NotInTraffic", "Split"]
    );
    assert!(matches!(
        lab.assign("nope", &ctx),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn hashing_the_attribute_ignores_the_key() {
    let lab = Lab::new();
    let id = create(&lab, json!({"hashAttribute": "deviceId"}));
    lab.experiments().start(&id).unwrap();
    for i in 0..50 {
        let d = format!("d{i}");
        let (c1, c2) = (
            Context::new("one").with_attribute("deviceId", d.as_str()),
            Context::new("two").with_attribute("deviceId", d.as_str()),
        );
        let a = lab.assign(&id, &c1).unwrap();
        let b = lab.assign(&id, &c2).unwrap();
        assert_eq!(a.variant().unwrap().id, b.variant().unwrap().id);
    }
}

#[test]
fn a_stopped_winner_is_rolled_out_without_exposures() {
    let lab = Lab::new();
    let id = create(&lab, json!({"traffic": 0.1}));
    lab.experiments().start(&id).unwrap();
    lab.experiments()
        .stop(
            &id,
            StopRequest {
                winner: Some("b".into()),
                reason: None,
            },
        )
        .unwrap();
    for i in 0..100 {
        let ctx = Context::new(format!("u{i}"));
        let a = lab.assign(&id, &ctx).unwrap();
        assert_eq!(
            (a.reason(), a.variant().unwrap().id.as_str()),
            (Reason::Rollout, "b")
        );
        assert!(a.exposure().is_none());
    }
    lab.experiments().complete(&id).unwrap();
    assert_eq!(
        lab.assign(&id, &Context::new("z")).unwrap().reason(),
        Reason::Rollout
    );
    let other = create(&lab, json!({}));
    lab.experiments().start(&other).unwrap();
    lab.experiments()
        .stop(&other, StopRequest::default())
        .unwrap();
    assert_eq!(
        lab.assign(&other, &Context::new("z")).unwrap().reason(),
        Reason::NotRunning
    );
}

#[test]
fn ramping_only_adds_or_removes_units_and_never_moves_one() {
    let lab = Lab::new();
    let id = create(&lab, json!({"traffic": 0.1}));
    lab.experiments().start(&id).unwrap();
    let units: Vec<String> = (0..3000).map(|i| format!("user-{i}")).collect();
    let decide = |lab: &Lab| -> Vec<Option<String>> {
        units
            .iter()
            .map(|u| {
                lab.assign(&id, &Context::new(u.as_str()))
                    .unwrap()
                    .variant()
                    .map(|v| v.id.to_string())
            })
            .collect()
    };
    let mut before = decide(&lab);
    for t in [0.2, 0.5, 1.0, 0.3] {
        lab.experiments().ramp(&id, t).unwrap();
        let after = decide(&lab);
        for (b, a) in before.iter().zip(&after) {
            if let (Some(b), Some(a)) = (b, a) {
                assert_eq!(a, b, "no unit changes variant");
            }
        }
        let n_before = before.iter().flatten().count();
        let n_after = after.iter().flatten().count();
        let kept = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b.is_some() && a.is_some())
            .count();
        assert_eq!(
            kept,
            n_before.min(n_after),
            "raising only adds, lowering only removes"
        );
        before = after;
    }
}

#[test]
fn sticky_assignments_win_and_new_ones_are_stored() {
    let lab = Lab::new();
    let id = create(&lab, json!({"sticky": true}));
    lab.experiments().start(&id).unwrap();
    let ctx = Context::new("u1");
    let a = lab.assign(&id, &ctx).unwrap();
    let hashed = a.variant().unwrap().id.to_string();
    assert_eq!(a.sticky_assignment(), Some((id.as_str(), hashed.as_str())));
    lab.expose(&id, &ctx).unwrap();
    assert_eq!(
        lab.storage().sticky_assignments("u1").unwrap(),
        [(id.clone(), hashed.clone())]
    );
    let other = if hashed == "a" { "b" } else { "a" };
    let stored = Context::new("u1").with_sticky_assignments(vec![(id.clone(), other.to_owned())]);
    let a = lab.assign(&id, &stored).unwrap();
    assert_eq!(
        (a.reason(), a.variant().unwrap().id.as_str()),
        (Reason::Sticky, other)
    );
    assert_eq!(a.sticky_assignment(), None, "nothing new to store");
}

#[test]
fn layers_are_exclusive_and_overlaps_refused() {
    let lab = Lab::new();
    lab.targeting()
        .put_layer(Layer {
            id: "home".parse().unwrap(),
            salt: None,
            holdout: Some(BucketRange::new(9000, 10_000).unwrap()),
        })
        .unwrap();
    let left = create(
        &lab,
        json!({"layer": {"id": "home", "range": {"start": 0, "end": 5000}}}),
    );
    let right = create(
        &lab,
        json!({"layer": {"id": "home", "range": {"start": 5000, "end": 9000}}}),
    );
    let clash = create(
        &lab,
        json!({"layer": {"id": "home", "range": {"start": 4000, "end": 6000}}}),
    );
    let held = create(
        &lab,
        json!({"layer": {"id": "home", "range": {"start": 8500, "end": 9500}}}),
    );
    let nowhere = create(
        &lab,
        json!({"layer": {"id": "missing", "range": {"start": 0, "end": 100}}}),
    );
    lab.experiments().start(&left).unwrap();
    lab.experiments().start(&right).unwrap();
    assert!(matches!(
        lab.experiments().start(&clash),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        lab.experiments().start(&held),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        lab.experiments().start(&nowhere),
        Err(Error::NotFound { kind: "layer", .. })
    ));
    let (mut l, mut r, mut none) = (0, 0, 0);
    for i in 0..4000 {
        let ctx = Context::new(format!("u{i}"));
        let in_l = lab.assign(&left, &ctx).unwrap().variant().is_some();
        let in_r = lab.assign(&right, &ctx).unwrap().variant().is_some();
        assert!(
            !(in_l && in_r),
            "a unit is in at most one experiment of a layer"
        );
        match (in_l, in_r) {
            (true, _) => l += 1,
            (_, true) => r += 1,
            _ => {
                none += 1;
                assert_eq!(
                    lab.assign(&left, &ctx).unwrap().reason(),
                    Reason::ExcludedByLayer
                );
            }
        }
    }
    // 50% / 40% / 10% held out, within sampling error.
    assert!(
        (1850..2150).contains(&l) && (1450..1750).contains(&r) && (300..500).contains(&none),
        "{l} {r} {none}"
    );
}

#[test]
fn the_global_holdout_enrols_nobody() {
    let lab = Lab::new();
    lab.targeting()
        .set_holdout(Some(Holdout {
            salt: "global".into(),
            range: BucketRange::new(0, 1000).unwrap(),
        }))
        .unwrap();
    let id = create(&lab, json!({}));
    lab.experiments().start(&id).unwrap();
    let held = (0..5000)
        .filter(|i| {
            lab.assign(&id, &Context::new(format!("u{i}")))
                .unwrap()
                .reason()
                == Reason::InHoldout
        })
        .count();
    assert!((400..600).contains(&held), "{held}");
    lab.targeting().set_holdout(None).unwrap();
    let held = (0..500)
        .filter(|i| {
            lab.assign(&id, &Context::new(format!("u{i}")))
                .unwrap()
                .reason()
                == Reason::InHoldout
        })
        .count();
    assert_eq!(held, 0);
}

#[test]
fn audiences_and_inline_targeting_gate_enrolment() {
    let lab = Lab::new();
    lab.targeting()
        .put_saved_group(abkit::SavedGroup {
            id: "beta".parse().unwrap(),
            values: vec![json!("u1"), json!("u2")],
        })
        .unwrap();
    lab.targeting()
        .put_audience(abkit::Audience {
            id: "aud_de".parse().unwrap(),
            name: "Germany".into(),
            condition: serde_json::from_value(json!({"country": "DE"})).unwrap(),
        })
        .unwrap();
    let id = create(
        &lab,
        json!({"audienceId": "aud_de", "targetingRules": {"id": {"$inGroup": "beta"}}}),
    );
    lab.experiments().start(&id).unwrap();
    let ctx = |key: &str, country: &str| {
        Context::new(key)
            .with_attribute("id", key)
            .with_attribute("country", country)
    };
    assert!(
        lab.assign(&id, &ctx("u1", "DE"))
            .unwrap()
            .variant()
            .is_some()
    );
    assert_eq!(
        lab.assign(&id, &ctx("u1", "FR")).unwrap().reason(),
        Reason::AudienceNotMatched
    );
    assert_eq!(
        lab.assign(&id, &ctx("u9", "DE")).unwrap().reason(),
        Reason::AudienceNotMatched
    );
}

#[test]
fn malformed_conditions_are_rejected_at_creation_and_unknown_groups_at_start() {
    let lab = Lab::new();
    let bad: NewExperiment = serde_json::from_value(json!({
        "name": "x", "variants": [{}, {}], "targetingRules": {"country": {"$bogus": 1}}
    }))
    .unwrap();
    let err = lab.experiments().create(bad).unwrap_err();
    assert!(
        err.to_string().starts_with("targeting:") && err.to_string().contains("$bogus"),
        "{err}"
    );
    let id = create(
        &lab,
        json!({"targetingRules": {"id": {"$inGroup": "missing_group"}}}),
    );
    let err = lab.experiments().start(&id).unwrap_err();
    assert!(err.to_string().contains("missing_group"), "{err}");
    assert_eq!(
        lab.experiments().get(&id).unwrap().status(),
        abkit::Status::Draft
    );
}
