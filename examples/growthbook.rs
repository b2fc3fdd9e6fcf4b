//! Evaluates a GrowthBook SDK payload exactly as GrowthBook's JavaScript SDK would, and analyses
//! its experiment with abkit: features for a few users, then 20 000 simulated users through the
//! tracking callback and the bridge into a `Lab`, conversions tracked, results computed.
//!
//! ```text
//! cargo run --features growthbook --example growthbook -- examples/data/growthbook-payload.json
//! cargo run --features growthbook --example growthbook -- payload.json --key <base64 key>   # encrypted
//! ```

#![allow(clippy::print_stdout)]

use std::sync::Arc;

use abkit::growthbook::{Features, GbContext, Tracking, bridge};
use abkit::{AnalysisOptions, Lab, TrackEvent};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "examples/data/growthbook-payload.json".into());
    let key = match (args.next().as_deref(), args.next()) {
        (Some("--key"), Some(k)) => Some(k),
        (None, _) => None,
        (Some(other), _) => {
            return Err(format!("unknown argument {other:?}; expected --key KEY").into());
        }
    };
    let payload: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let features = Features::from_payload(&payload, key.as_deref())?;

    for (id, country, plan) in [
        ("u-001", "US", "free"),
        ("u-417", "DE", "pro"),
        ("u-900", "FR", "free"),
    ] {
        let ctx = GbContext {
            attributes: json!({"id": id, "country": country, "plan": plan}),
            ..GbContext::default()
        };
        let layout = features.eval_feature("checkout-layout", &ctx);
        println!(
            "{id}: dark-mode={} checkout-layout={} ({:?}{}) max-items={}",
            features.is_on("dark-mode", &ctx),
            layout.value,
            layout.source,
            layout
                .experiment_result
                .as_ref()
                .map(|r| format!(", variation {} bucket {:?}", r.key, r.bucket))
                .unwrap_or_default(),
            features.number_value("max-items", &ctx, 10.0),
        );
    }

    // GrowthBook serves; abkit records what it served and analyses it.
    let lab = Arc::new(Lab::new());
    let tracking = {
        let lab = Arc::clone(&lab);
        Tracking::new(move |experiment, result| {
            let recorded =
                bridge::mirror(&lab, experiment).and_then(|id| bridge::record(&lab, &id, result));
            if let Err(e) = recorded {
                println!("could not record {}: {e}", experiment.key());
            }
        })
    };
    for i in 0..20_000u32 {
        let id = format!("user-{i}");
        let country = ["DE", "FR", "ES", "US"][(i % 4) as usize];
        let ctx = GbContext {
            attributes: json!({"id": id, "country": country}),
            ..GbContext::default()
        };
        let r = features.eval_feature_tracked("checkout-layout", &ctx, &tracking);
        // The one-page checkout converts a little better.
        let p = if r.value == "one-page" { 9 } else { 7 };
        if r.experiment_result.is_some() && i % 100 < p {
            let exp = lab.experiments().list(&abkit::ListQuery::default())?;
            if let Some(e) = exp.items.first() {
                lab.events()
                    .track(&TrackEvent::conversion(e.id().as_str(), &id))?;
            }
        }
    }
    let page = lab.experiments().list(&abkit::ListQuery::default())?;
    let e = page.items.first().ok_or("no experiment was mirrored")?;
    let computed = lab.reports().compute_results(e.id().as_str())?;
    println!("\n{}", serde_json::to_string_pretty(&computed)?);
    let analysis = lab
        .reports()
        .analyze(e.id().as_str(), &AnalysisOptions::default())?;
    println!(
        "recommendation: {}",
        serde_json::to_string(&analysis.recommendation)?
    );
    Ok(())
}
