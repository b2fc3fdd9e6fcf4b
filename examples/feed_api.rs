//! The feed experiments API, in process: a ranking experiment at 20% traffic with targeting,
//! variants carrying ranking weights, watch time, completion rate and sessions per user tracked
//! per user, a ramp to 30% while running ("begin with 10–20% and increase"), the results with
//! lift, significance and a recommendation, and a stop that rolls the winner out.
//!
//! Run with `cargo run --example feed_api`.

#![allow(clippy::print_stdout)]

use abkit::{AnalysisOptions, Context, Lab, NewExperiment, StopRequest, TrackEvent};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lab = Lab::new();
    let exp = lab
        .experiments()
        .create(serde_json::from_str::<NewExperiment>(
            r#"{
          "name": "Engagement weight test",
          "description": "Testing higher engagement weight in ranking",
          "type": "ranking",
          "traffic": 0.20,
          "targetingRules": {"platform": {"$in": ["ios", "android"]}},
          "variants": [
            {"id": "control", "name": "Control", "traffic": 0.5,
             "config": {"weights": {"recency": 0.25, "engagement": 0.20}}},
            {"id": "high_engagement", "name": "High engagement", "traffic": 0.5,
             "config": {"weights": {"recency": 0.20, "engagement": 0.35}}}
          ],
          "metrics": ["completionRate", "watchTime", "sessionsPerUser"]
        }"#,
        )?)?;
    let id = exp.id().as_str();
    lab.experiments().start(id)?;

    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let mut simulate = |lab: &Lab, from: usize, to: usize| -> Result<(), abkit::Error> {
        for i in from..to {
            let user = format!("viewer_{i}");
            let ctx = Context::new(user.as_str())
                .with_attribute("platform", ["ios", "android", "web"][i % 3]);
            let Some(variant) = lab.expose(id, &ctx)? else {
                continue;
            };
            // The feed would rank with variant.config's weights; the treatment engages a bit more.
            let lift: f64 = if variant.as_str() == "high_engagement" {
                1.06
            } else {
                1.0
            };
            let views = 5 + i % 10;
            for _ in 0..views {
                let completed = if rng.random_bool((0.42 * lift).min(1.0)) {
                    1.0
                } else {
                    0.0
                };
                let mut e = TrackEvent::value(id, &user, "completionRate", completed);
                e.denominator = Some(1.0);
                lab.events().track(&e)?;
            }
            lab.events().track(&TrackEvent::value(
                id,
                &user,
                "watchTime",
                28.5 * lift * (0.5 + rng.random::<f64>()),
            ))?;
            lab.events().track(&TrackEvent::value(
                id,
                &user,
                "sessionsPerUser",
                f64::from(1 + rng.random_range(0..3u32)),
            ))?;
        }
        Ok(())
    };
    simulate(&lab, 0, 40_000)?;
    // No harm seen at 20%: ramp to 30% while running. Enrolled viewers keep their variant.
    lab.experiments().ramp(id, 0.30)?;
    simulate(&lab, 40_000, 80_000)?;

    let results = lab.reports().analyze(id, &AnalysisOptions::default())?;
    println!(
        "GET /v1/experiments/{id}/results\n{}\n",
        serde_json::to_string_pretty(&results)?
    );

    let winner = results.recommendation.winner.clone();
    lab.experiments().stop(
        id,
        StopRequest {
            winner: winner.clone(),
            reason: Some("Statistical significance reached".into()),
        },
    )?;
    let viewer = Context::new("someone_new").with_attribute("platform", "ios");
    let after = lab.assign(id, &viewer)?;
    println!(
        "stopped with winner {:?}; a new iOS viewer now gets {:?} ({:?})",
        winner,
        after.variant_key().map(|k| k.as_str()),
        after.reason()
    );
    Ok(())
}
