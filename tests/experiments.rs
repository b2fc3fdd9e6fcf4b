//! The experiments API: source request bodies, the lifecycle rule by rule, listing, validation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::sync::Arc;

use abkit::{
    Error, ExperimentPatch, Lab, ListQuery, ManualClock, NewExperiment, Operation,
    SequentialIdGenerator, Status, StopRequest, Timestamp,
};

fn lab() -> Lab {
    Lab::builder()
        .clock(Arc::new(ManualClock::new(
            "2025-01-15T14:00:00Z".parse().unwrap(),
        )))
        .id_generator(Arc::new(SequentialIdGenerator::default()))
        .build()
        .unwrap()
}

fn body(name: &str) -> NewExperiment {
    let text = std::fs::read_to_string(format!(
        "{}/tests/data/bodies/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn two_variants(name: &str) -> NewExperiment {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "variants": [{"id": "control", "splitPercentage": 50}, {"id": "treatment", "splitPercentage": 50}]
    }))
    .unwrap()
}

#[test]
fn flow_api_body_creates_a_valid_draft() {
    let lab = lab();
    let e = lab.experiments().create(body("flow-create.json")).unwrap();
    assert_eq!(e.status(), Status::Draft);
    assert_eq!(e.name(), "Onboarding Flow Test");
    assert_eq!(e.kind().to_string(), "ab_test");
    assert_eq!(e.audience_id().unwrap().as_str(), "aud_xyz");
    let ids: Vec<&str> = e.variants().iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["v1", "v2"], "variants without ids get v1, v2");
    assert_eq!(e.variants()[0].flow_id.as_deref(), Some("flow_a"));
    assert_eq!(e.variants()[1].weight.basis_points(), 5000);
    assert_eq!(
        e.traffic().basis_points(),
        10_000,
        "traffic defaults to everyone"
    );
    assert_eq!(e.metrics()[0].name(), "conversion", "the default metric");
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["variants"][0]["splitPercentage"], 50);
    assert_eq!(json["createdAt"], "2025-01-15T14:00:00Z");
    assert_eq!(json["endedAt"], serde_json::Value::Null);
}

#[test]
fn feed_api_bodies_create_valid_drafts() {
    let lab = lab();
    let ranking = lab
        .experiments()
        .create(body("feed-ranking-create.json"))
        .unwrap();
    assert_eq!(ranking.traffic().basis_points(), 2000);
    assert_eq!(ranking.variants()[1].id.as_str(), "high_engagement");
    assert_eq!(
        ranking.variants()[1].config.as_ref().unwrap()["weights"]["engagement"],
        0.35
    );
    let kinds: Vec<String> = ranking
        .metrics()
        .iter()
        .map(|m| format!("{}:{:?}", m.name(), m.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            "completionRate:Ratio",
            "watchTime:Mean",
            "sessionsPerUser:Mean"
        ]
    );

    let config = lab
        .experiments()
        .create(body("feed-config-create.json"))
        .unwrap();
    let bp: Vec<u16> = config
        .variants()
        .iter()
        .map(|v| v.weight.basis_points())
        .collect();
    assert_eq!(
        bp,
        [3300, 3300, 3400],
        "0.33 + 0.33 + 0.34 converts exactly"
    );
    assert_eq!(
        config.variants()[0].config.as_ref().unwrap()["ads.frequency.interval"],
        5
    );
    assert_eq!(config.kind().to_string(), "config");
}

#[test]
fn flag_api_bodies_create_a_flag_and_its_experiment() {
    let lab = lab();
    let flag: abkit::NewFlag = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/data/bodies/flag-create.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let flag = lab.flags().create(flag).unwrap();
    assert!(!flag.enabled, "flags are created disabled");
    let e = lab
        .flags()
        .create_experiment(flag.id.as_str(), body("flag-experiment-create.json"))
        .unwrap();
    assert_eq!(e.flag_id(), Some(&flag.id));
    assert_eq!(e.environment(), Some("production"));
    assert_eq!(e.variants()[1].value.as_ref().unwrap(), "new_checkout");
    assert_eq!(e.kind().to_string(), "feature");
}

#[test]
fn experiments_round_trip_through_json() {
    let lab = lab();
    for name in [
        "flow-create.json",
        "feed-ranking-create.json",
        "feed-config-create.json",
    ] {
        let e = lab.experiments().create(body(name)).unwrap();
        let text = serde_json::to_string(e.value()).unwrap();
        let back: abkit::Experiment = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, e.value(), "{name}");
        // The versioned form is the same fields plus the version (old records carry one too).
        let versioned = serde_json::to_value(&e).unwrap();
        assert_eq!(versioned["version"], 1);
        let back: abkit::Experiment = serde_json::from_value(versioned).unwrap();
        assert_eq!(&back, e.value(), "{name}");
    }
}

fn lifecycle_error(r: Result<impl std::fmt::Debug, Error>, op: Operation, status: Status) {
    match r {
        Err(Error::Lifecycle {
            operation,
            status: s,
            ..
        }) => assert_eq!((operation, s), (op, status)),
        other => panic!("expected a lifecycle error for {op} in {status}, got {other:?}"),
    }
}

#[test]
fn lifecycle_rules_one_by_one() {
    let lab = lab();
    let id = lab
        .experiments()
        .create(two_variants("a"))
        .unwrap()
        .id()
        .to_string();
    let id = id.as_str();
    // draft: update, ramp ok; stop, complete refused.
    lab.experiments()
        .update_latest(
            id,
            ExperimentPatch {
                name: Some("renamed".into()),
                ..Default::default()
            },
        )
        .unwrap();
    lab.experiments().ramp(id, 0.5).unwrap();
    lifecycle_error(
        lab.experiments().stop(id, StopRequest::default()),
        Operation::Stop,
        Status::Draft,
    );
    lifecycle_error(
        lab.experiments().complete(id),
        Operation::Complete,
        Status::Draft,
    );
    // running: ramp ok; update, start, archive, delete refused.
    let e = lab.experiments().start(id).unwrap();
    assert_eq!(e.status(), Status::Running);
    assert_eq!(
        e.started_at(),
        Some(Timestamp::from_unix_millis(1_736_949_600_000))
    );
    lab.experiments().ramp(id, 0.8).unwrap();
    lifecycle_error(
        lab.experiments()
            .update_latest(id, ExperimentPatch::default()),
        Operation::Update,
        Status::Running,
    );
    lifecycle_error(
        lab.experiments().start(id),
        Operation::Start,
        Status::Running,
    );
    lifecycle_error(
        lab.experiments().archive(id),
        Operation::Archive,
        Status::Running,
    );
    lifecycle_error(
        lab.experiments().delete(id),
        Operation::Delete,
        Status::Running,
    );
    // stop with an unknown winner is refused and changes nothing.
    let err = lab
        .experiments()
        .stop(
            id,
            StopRequest {
                winner: Some("nope".into()),
                reason: None,
            },
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "winner: unknown variant \"nope\"");
    assert_eq!(lab.experiments().get(id).unwrap().status(), Status::Running);
    let e = lab
        .experiments()
        .stop(
            id,
            StopRequest {
                winner: Some("treatment".into()),
                reason: Some("Statistical significance reached".into()),
            },
        )
        .unwrap();
    assert_eq!(e.status(), Status::Stopped);
    assert_eq!(e.winner().unwrap().as_str(), "treatment");
    assert_eq!(e.stop_reason(), Some("Statistical significance reached"));
    // stopped: ramp, update, stop refused; complete ok.
    lifecycle_error(
        lab.experiments().ramp(id, 0.1),
        Operation::Ramp,
        Status::Stopped,
    );
    lifecycle_error(
        lab.experiments().stop(id, StopRequest::default()),
        Operation::Stop,
        Status::Stopped,
    );
    assert_eq!(
        lab.experiments().complete(id).unwrap().status(),
        Status::Completed
    );
    lifecycle_error(
        lab.experiments().complete(id),
        Operation::Complete,
        Status::Completed,
    );
    assert_eq!(
        lab.experiments().archive(id).unwrap().status(),
        Status::Archived
    );
    lifecycle_error(
        lab.experiments().archive(id),
        Operation::Archive,
        Status::Archived,
    );
    lab.experiments().delete(id).unwrap();
    assert!(matches!(
        lab.experiments().get(id),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn draft_can_be_archived_and_deleted() {
    let lab = lab();
    let a = lab.experiments().create(two_variants("a")).unwrap();
    let b = lab.experiments().create(two_variants("b")).unwrap();
    lab.experiments().archive(a.id().as_str()).unwrap();
    lab.experiments().delete(b.id().as_str()).unwrap();
    assert_eq!(
        lab.experiments().list(&ListQuery::default()).unwrap().total,
        0,
        "archived hidden"
    );
    let q = ListQuery {
        status: Some(Status::Archived),
        ..Default::default()
    };
    assert_eq!(lab.experiments().list(&q).unwrap().total, 1);
}

#[test]
fn list_pages_and_filters() {
    let lab = lab();
    for i in 0..25 {
        let e = lab
            .experiments()
            .create(two_variants(&format!("e{i}")))
            .unwrap();
        if i % 5 == 0 {
            lab.experiments().start(e.id().as_str()).unwrap();
        }
    }
    let p1 = lab.experiments().list(&ListQuery::default()).unwrap();
    assert_eq!((p1.items.len(), p1.total, p1.total_pages), (20, 25, 2));
    let p2 = lab
        .experiments()
        .list(&ListQuery {
            page: 2,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(p2.items.len(), 5);
    let running = lab
        .experiments()
        .list(&ListQuery {
            status: Some(Status::Running),
            limit: 2,
            page: 1,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(
        (running.items.len(), running.total, running.total_pages),
        (2, 5, 3)
    );
    assert!(running.items.iter().all(|e| e.status() == Status::Running));
    // The domain page is flat camelCase; the flow API's `{data, meta}` is the wire form.
    let json = serde_json::to_value(&running).unwrap();
    assert_eq!(json["totalPages"], 3);
    assert_eq!(json["items"].as_array().map(Vec::len), Some(2));
    let wire = serde_json::to_value(abkit::wire::flow::Paged::from_page(running, |e| e)).unwrap();
    assert_eq!(
        wire["meta"],
        serde_json::json!({"total": 5, "page": 1, "limit": 2, "totalPages": 3})
    );
    assert_eq!(wire["data"].as_array().map(Vec::len), Some(2));
    for (q, field) in [
        (
            ListQuery {
                page: 0,
                ..Default::default()
            },
            "page",
        ),
        (
            ListQuery {
                limit: 0,
                ..Default::default()
            },
            "limit",
        ),
        (
            ListQuery {
                limit: 101,
                ..Default::default()
            },
            "limit",
        ),
    ] {
        match lab.experiments().list(&q) {
            Err(Error::Validation(v)) => assert_eq!(v.field_name(), field),
            other => panic!("{q:?}: {other:?}"),
        }
    }
}

#[test]
fn bad_input_names_field_and_value() {
    let lab = lab();
    let cases: Vec<(serde_json::Value, &str, &str)> = vec![
        (
            serde_json::json!({"name": "", "variants": [{}, {}]}),
            "name",
            "\"\"",
        ),
        (
            serde_json::json!({"name": "x".repeat(201), "variants": [{}, {}]}),
            "name",
            "201",
        ),
        (
            serde_json::json!({"name": "a", "variants": [{}]}),
            "variants",
            "1 given",
        ),
        (
            serde_json::json!({"name": "a", "variants": [{"id": "x"}, {"id": "x"}]}),
            "variants[1].id",
            "\"x\"",
        ),
        (
            serde_json::json!({"name": "a", "variants": [{"splitPercentage": 60}, {"splitPercentage": 30}]}),
            "variants",
            "9000",
        ),
        (
            serde_json::json!({"name": "a", "variants": [{"traffic": -0.5}, {"traffic": 1.5}]}),
            "variants[0].traffic",
            "-0.5",
        ),
        (
            serde_json::json!({"name": "a", "traffic": 1.5, "variants": [{}, {}]}),
            "traffic",
            "1.5",
        ),
        (
            serde_json::json!({"name": "a", "traffic": -0.1, "variants": [{}, {}]}),
            "traffic",
            "-0.1",
        ),
        (
            serde_json::json!({"name": "a", "metrics": ["ctr"], "variants": [{}, {}]}),
            "metrics[0]",
            "completionRate",
        ),
        (
            serde_json::json!({"name": "a", "variants": [{"traffic": 0.3333}, {"traffic": 0.3333}, {"traffic": 0.3333}]}),
            "variants",
            "9999",
        ),
        (
            serde_json::json!({"name": "a", "variants": [{"traffic": 0.12345}, {"traffic": 0.87655}]}),
            "variants[0].traffic",
            "0.12345",
        ),
    ];
    for (json, field, needle) in cases {
        let new: NewExperiment = serde_json::from_value(json.clone()).unwrap();
        match lab.experiments().create(new) {
            Err(Error::Validation(v)) => {
                assert_eq!(v.field_name(), field, "{json}");
                assert!(v.to_string().contains(needle), "{json}: {v}");
            }
            other => panic!("{json}: expected a validation error, got {other:?}"),
        }
    }
    assert_eq!(
        lab.experiments().list(&ListQuery::default()).unwrap().total,
        0,
        "nothing stored"
    );
    assert!(matches!(
        lab.experiments().get("exp_missing"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        lab.experiments().start("exp_missing"),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn audience_must_resolve_at_start() {
    let lab = lab();
    let e = lab.experiments().create(body("flow-create.json")).unwrap();
    let err = lab.experiments().start(e.id().as_str()).unwrap_err();
    assert_eq!(err.to_string(), "audience \"aud_xyz\" not found");
    lab.targeting()
        .put_audience(abkit::Audience {
            id: "aud_xyz".parse().unwrap(),
            name: "Everyone in DE".into(),
            condition: serde_json::from_value(serde_json::json!({"country": "DE"})).unwrap(),
        })
        .unwrap();
    assert_eq!(
        lab.experiments().start(e.id().as_str()).unwrap().status(),
        Status::Running
    );
}

#[test]
fn stale_writes_are_conflicts_not_overwrites() {
    let store: Arc<dyn abkit::storage::Storage> = Arc::new(abkit::storage::MemoryStorage::new());
    let a = Lab::builder().storage(Arc::clone(&store)).build().unwrap();
    let e = a.experiments().create(two_variants("x")).unwrap();
    let read_by_a = e.version();
    let b = Lab::builder().storage(Arc::clone(&store)).build().unwrap();
    let by_b = b
        .experiments()
        .update(
            e.id().as_str(),
            read_by_a,
            ExperimentPatch {
                name: Some("by b".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(by_b.version(), read_by_a + 1);
    // a's update names the version it read: b's change is not overwritten.
    let err = a
        .experiments()
        .update(
            e.id().as_str(),
            read_by_a,
            ExperimentPatch {
                description: Some("by a".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Conflict(abkit::Conflict::Version {
                expected: 1,
                found: 2,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(a.experiments().get(e.id().as_str()).unwrap().name(), "by b");
    // Re-reading and retrying (or asking for last-writer-wins) applies on top of b's change.
    let after = a
        .experiments()
        .update_latest(
            e.id().as_str(),
            ExperimentPatch {
                description: Some("by a".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((after.name(), after.description()), ("by b", Some("by a")));
    assert_eq!(after.version(), 3);
}
