//! The flow experiments API, in process: create an onboarding-flow test with the API's body,
//! list it with its counts, start it, route users to flows, record conversions, read the raw and
//! computed results, stop and archive it.
//!
//! Run with `cargo run --example flow_api`.

#![allow(clippy::print_stdout)]

use abkit::{Audience, Context, Lab, ListQuery, NewExperiment, StopRequest, TrackEvent};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lab = Lab::new();
    // The audience the body names may be created after the experiment, but before it starts.
    let exp = lab
        .experiments()
        .create(serde_json::from_str::<NewExperiment>(
            r#"{
          "name": "Onboarding Flow Test",
          "description": "Compare short vs. detailed onboarding",
          "type": "ab_test",
          "audienceId": "aud_xyz",
          "variants": [
            {"name": "Control", "splitPercentage": 50, "flowId": "flow_a", "config": {}},
            {"name": "Detailed", "splitPercentage": 50, "flowId": "flow_b", "config": {}}
          ]
        }"#,
        )?)?;
    let id = exp.id().as_str();
    lab.targeting().put_audience(Audience {
        id: "aud_xyz".parse()?,
        name: "New users".into(),
        condition: serde_json::from_str(r#"{"signupDays": {"$lt": 7}}"#)?,
    })?;
    lab.experiments().start(id)?;

    // Route 2 000 users: new users get a flow; the Detailed flow converts a little better.
    for i in 0..2_000 {
        let user = format!("user_{i}");
        let ctx = Context::new(user.as_str()).with_attribute("signupDays", i % 10);
        let decision = lab.assign(id, &ctx)?;
        let Some(variant) = decision.variant() else {
            continue;
        };
        if let Some(exposure) = decision.exposure() {
            lab.events().record(&exposure)?;
        }
        let rate = if variant.flow_id.as_deref() == Some("flow_b") {
            30
        } else {
            22
        };
        let converts = (i * 7_919) % 100 < rate;
        if converts {
            lab.events().track(&TrackEvent::conversion(id, &user))?;
        }
    }

    let page = lab.reports().list_with_counts(&ListQuery::default())?;
    println!(
        "GET /api/experiments\n{}\n",
        serde_json::to_string_pretty(&abkit::wire::flow::experiments_page(page))?
    );
    println!(
        "GET /api/experiments/{id}/results\n{}\n",
        serde_json::to_string_pretty(&lab.reports().results(id)?)?
    );
    println!(
        "POST /api/experiments/{id}/compute-results\n{}\n",
        serde_json::to_string_pretty(&lab.reports().compute_results(id)?)?
    );

    lab.experiments().stop(
        id,
        StopRequest {
            winner: None,
            reason: Some("enough data".into()),
        },
    )?;
    let archived = lab.experiments().archive(id)?;
    println!("stopped, then archived: status={}", archived.status());
    Ok(())
}
