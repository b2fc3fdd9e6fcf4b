//! The flag service's walkthrough, step by step, in process: a string flag (created disabled and
//! never enabled), an attached experiment, evaluation, conversion tracking, results, stop with the
//! winner promoted to the flag's default.
//!
//! Run with `cargo run --example flag_api`.

#![allow(clippy::print_stdout)]

use abkit::{Context, Lab, NewExperiment, NewFlag, StopRequest, TrackEvent};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lab = Lab::new();

    // Step 1: a string flag whose default is the control value (the API's body, as written).
    let flag = lab.flags().create(serde_json::from_str::<NewFlag>(
        r#"{"project_id": "PROJECT_ID", "key": "checkout_flow", "name": "Checkout Flow",
            "flag_type": "string", "default_value": "control", "description": "Checkout flow A/B test"}"#,
    )?)?;
    println!(
        "step 1  flag {} created, enabled={}",
        flag.key, flag.enabled
    );

    // Step 2: attach an experiment; in draft, evaluation still returns the default value.
    let exp = lab.flags().create_experiment(
        flag.id.as_str(),
        serde_json::from_str::<NewExperiment>(
            r#"{"name": "Checkout Flow Test", "environment": "production",
                "variants": [{"key": "control", "value": "old_checkout", "percentage": 50},
                             {"key": "treatment", "value": "new_checkout", "percentage": 50}]}"#,
        )?,
    )?;
    let ctx: Context = serde_json::from_str(r#"{"user_id": "usr_123"}"#)?;
    let e = lab.evaluate("PROJECT_ID", "production", "checkout_flow", &ctx);
    println!(
        "step 2  experiment {} is {}; usr_123 gets {} ({:?})",
        exp.id(),
        exp.status(),
        e.value(),
        e.reason()
    );

    // Step 3: start; evaluation now returns the allocated variant, the same for the same user.
    lab.experiments().start(exp.id().as_str())?;
    let response = lab.evaluate_all("PROJECT_ID", "production", &ctx);
    println!(
        "step 3  evaluate response: {}",
        serde_json::to_string(&abkit::wire::flag::EvaluateResponse(&response))?
    );

    // Step 4: users see their variant (exposure recorded), some convert; duplicates are ignored.
    let mut served = [0u32; 2];
    for i in 0..1000 {
        let user = format!("usr_{i}");
        let ctx = Context::new(user.as_str());
        let e = lab.evaluate("PROJECT_ID", "production", "checkout_flow", &ctx);
        if let Some(x) = e.exposure() {
            lab.events().record(&x)?;
        }
        served[usize::from(e.str_or("") == "new_checkout")] += 1;
        if i % 7 == 0 {
            let track = TrackEvent::conversion(exp.id().as_str(), &user);
            lab.events().track(&track)?;
            lab.events().track(&track)?; // counted once
        }
    }
    println!(
        "step 4  served old_checkout to {}, new_checkout to {}",
        served[0], served[1]
    );

    // Step 5: results.
    let counts = lab.reports().experiment_with_counts(exp.id().as_str())?;
    println!(
        "step 5  {}",
        serde_json::to_string(&abkit::wire::Data::new(
            abkit::wire::flag::FlagExperiment::from(&counts)
        ))?
    );

    // Step 6: stop with a winner and promote its value to the flag's default in one call.
    lab.flags().stop_experiment(
        exp.id().as_str(),
        StopRequest {
            winner: Some("treatment".into()),
            reason: Some("converted better".into()),
        },
        true,
    )?;
    let e = lab.evaluate("PROJECT_ID", "production", "checkout_flow", &ctx);
    println!(
        "step 6  stopped; the flag now serves {} ({:?})",
        e.value(),
        e.reason()
    );
    Ok(())
}
