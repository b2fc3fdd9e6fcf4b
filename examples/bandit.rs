//! A simulated bandit: three arms with different conversion rates; every hour the host calls
//! `lab.tick(now)`, which recomputes the weights by Thompson sampling, and the example prints
//! them per period, then the per-period weighted estimates.
//!
//! Run: `cargo run --example bandit`.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use abkit::stats::bandit::SplitMix64;
use abkit::{
    BanditSettings, Context, ExperimentType, Lab, ManualClock, NewExperiment, NewVariant,
    Timestamp, TrackEvent,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Timestamp::from_unix_millis(1_800_000_000_000);
    let clock = Arc::new(ManualClock::new(start));
    let lab = Lab::builder().clock(clock.clone()).build()?;
    let exp = lab.experiments().create(NewExperiment {
        name: "Headline bandit".into(),
        kind: Some(ExperimentType::Bandit),
        variants: vec![
            NewVariant::named("calm", "Calm"),
            NewVariant::named("bold", "Bold"),
            NewVariant::named("loud", "Loud"),
        ],
        bandit: Some(BanditSettings {
            min_exploration_share: Some(0.05),
            update_period_seconds: Some(3600),
        }),
        ..NewExperiment::default()
    })?;
    let id = exp.id().to_string();
    lab.experiments().start(&id)?;
    let rates = [0.04, 0.06, 0.10];
    let mut rng = SplitMix64::new(42);
    let mut unit = 0u64;
    println!("period  weights (calm / bold / loud, %)");
    for period in 0..8 {
        let e = lab.experiments().get(&id)?;
        let w: Vec<String> = e
            .variants()
            .iter()
            .map(|v| format!("{:5.1}", v.weight.as_percent()))
            .collect();
        println!("{period:>6}  {}", w.join(" / "));
        for _ in 0..400 {
            unit += 1;
            let key = format!("user-{unit}");
            let ctx = Context::new(&key);
            if let Some(v) = lab.expose(&id, &ctx)? {
                let arm = e.variants().iter().position(|x| x.id == v).unwrap_or(0);
                if rng.uniform() < rates[arm] {
                    lab.events().track(&TrackEvent::conversion(&id, &key))?;
                }
            }
        }
        clock.advance_millis(3_600_000);
        let report = lab.tick(abkit::Clock::now(&*clock))?;
        assert_eq!(report.reweighted, vec![id.clone()]);
    }
    println!("\narm   weight  units  pooled  per-period mean ± se");
    for a in lab.reports().bandit(&id)? {
        println!(
            "{:<5} {:>5.1}% {:>6}  {:.4}  {:.4} ± {:.4}",
            a.variant_id,
            f64::from(a.weight) / 100.0,
            a.participants,
            a.pooled_mean.unwrap_or(0.0),
            a.mean.unwrap_or(0.0),
            a.standard_error.unwrap_or(0.0)
        );
    }
    Ok(())
}
