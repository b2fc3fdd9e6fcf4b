//! The main job, end to end: define an experiment, run it, decide for 20 000 simulated users,
//! record exposures, conversions and watch time, and read the analysis.
//!
//! Run with `cargo run --example quickstart`.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;

use abkit::{
    AnalysisOptions, Context, Lab, ListQuery, ManualClock, NewExperiment, StopRequest, Timestamp,
    TrackEvent,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock = Arc::new(ManualClock::new(
        "2025-02-01T00:00:00Z".parse::<Timestamp>()?,
    ));
    let lab = Lab::builder().clock(clock.clone()).build()?;

    // 1. Create: the feed API's body, as written.
    let exp = lab
        .experiments()
        .create(serde_json::from_str::<NewExperiment>(
            r#"{
          "name": "Checkout copy test",
          "description": "Does the new copy convert better without hurting watch time?",
          "type": "ab_test",
          "traffic": 1.0,
          "variants": [
            {"id": "control", "name": "Current copy", "traffic": 0.5},
            {"id": "new_copy", "name": "New copy", "traffic": 0.5}
          ],
          "metrics": ["conversion", {"name": "watchTime", "guardrail": true}]
        }"#,
        )?)?;
    let id = exp.id().to_string();
    println!("created  {id}  {:?}  status={}", exp.name(), exp.status());

    // 2. List and start.
    let page = lab.experiments().list(&ListQuery::default())?;
    println!(
        "listed   {} experiment(s), {} page(s)",
        page.total, page.total_pages
    );
    let started = lab.experiments().start(&id)?;
    println!(
        "started  at {}",
        started
            .started_at()
            .map(|t| t.to_string())
            .unwrap_or_default()
    );

    // 3. Simulate 20 000 users over a week: the new copy converts at 12% instead of 10%.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2025);
    for day in 0..7 {
        for i in 0..20_000 / 7 + 1 {
            let user = format!("usr_{day}_{i}");
            let ctx = Context::new(user.as_str());
            let Some(variant) = lab.expose(&id, &ctx)? else {
                continue;
            };
            let treated = variant.as_str() == "new_copy";
            let p = if treated { 0.12 } else { 0.10 };
            if rng.random_bool(p) {
                lab.events().track(&TrackEvent::conversion(&id, &user))?;
            }
            let minutes: f64 = 20.0 + 10.0 * rng.random::<f64>() + if treated { 0.3 } else { 0.0 };
            lab.events()
                .track(&TrackEvent::value(&id, &user, "watchTime", minutes))?;
        }
        clock.advance_millis(86_400_000);
    }

    // 4. Read the results.
    let computed = lab.reports().compute_results(&id)?;
    println!(
        "\n{:<10} {:>8} {:>12} {:>10}",
        "variant", "users", "conversions", "rate"
    );
    for v in &computed.variants {
        println!(
            "{:<10} {:>8} {:>12} {:>9.2}%",
            v.variant_id,
            v.sample_size,
            v.conversions,
            100.0 * v.conversion_rate.unwrap_or(0.0)
        );
    }

    let analysis = lab.reports().analyze(&id, &AnalysisOptions::default())?;
    println!(
        "\n{:<10} {:<11} {:>9} {:>9} {:>21} {:>9} {:>6}",
        "variant", "metric", "value", "lift", "lift 95% CI", "p-value", "sig."
    );
    for v in &analysis.variants {
        for m in &v.report.metrics {
            let c = m.comparison.as_ref();
            let pct = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{:+.1}%", 100.0 * x));
            println!(
                "{:<10} {:<11} {:>9.4} {:>9} {:>21} {:>9} {:>6}",
                v.report.id,
                m.name,
                m.value.unwrap_or(f64::NAN),
                pct(c.and_then(|c| c.lift)),
                c.map_or("-".to_owned(), |c| format!(
                    "[{}, {}]",
                    pct(c.lift_ci_lower),
                    pct(c.lift_ci_upper)
                )),
                c.and_then(|c| c.p_value)
                    .map_or("-".to_owned(), |p| if p < 1e-4 {
                        format!("{p:.1e}")
                    } else {
                        format!("{p:.4}")
                    }),
                c.map_or("", |c| if c.significant { "yes" } else { "no" }),
            );
        }
    }
    let rec = &analysis.recommendation;
    println!(
        "\nrecommendation: winner={}  confidence={}  MDE={}  SRM p={:.3}  days={}",
        rec.winner.as_deref().unwrap_or("none"),
        rec.confidence.map_or("-".into(), |c| format!("{c:.3}")),
        rec.minimum_detectable_effect
            .map_or("-".into(), |m| format!("{:.1}%", 100.0 * m)),
        analysis.srm.p_value,
        analysis.duration.days,
    );

    // 5. Stop with the recommended winner: everyone now gets it (a rollout).
    let winner = rec.winner.clone();
    let stopped = lab.experiments().stop(
        &id,
        StopRequest {
            winner: winner.clone(),
            reason: Some("significant on conversion".into()),
        },
    )?;
    println!("stopped  status={} winner={:?}", stopped.status(), winner);
    let new_user = Context::new("a_new_user");
    let decision = lab.assign(&id, &new_user)?;
    println!(
        "a new user now gets {:?} ({:?})",
        decision.variant_key().map(|k| k.as_str()),
        decision.reason()
    );

    println!(
        "\nanalysis as JSON:\n{}",
        serde_json::to_string_pretty(&analysis)?
    );
    Ok(())
}
