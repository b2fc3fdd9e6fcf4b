//! The quickstart against a SQLite file: run it twice with the same path and the second run
//! finds the experiment the first one created, and adds to its counts.
//!
//! ```text
//! cargo run --features sqlite --example sqlite -- /tmp/abkit-demo.db
//! cargo run --features sqlite --example sqlite -- /tmp/abkit-demo.db
//! ```
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::Arc;

use abkit::storage::SqliteStorage;
use abkit::{Context, Lab, ListQuery, NewExperiment, NewVariant, Status, TrackEvent};

const NAME: &str = "Checkout button colour";
/// Users exposed per run.
const USERS_PER_RUN: u64 = 300;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("abkit-sqlite-example.db"));
    let store = Arc::new(SqliteStorage::open(&path)?);
    let lab = Lab::builder().storage(store).build()?;

    // Find the experiment by name, or create and start it.
    let query = ListQuery {
        status: Some(Status::Running),
        limit: 100,
        ..ListQuery::default()
    };
    let existing = lab
        .experiments()
        .list(&query)?
        .items
        .into_iter()
        .find(|e| e.name() == NAME);
    let exp = match existing {
        Some(e) => {
            println!("found experiment {} in {}", e.id(), path.display());
            e
        }
        None => {
            let e = lab.experiments().create(NewExperiment {
                name: NAME.into(),
                variants: vec![
                    NewVariant::named("control", "Blue"),
                    NewVariant::named("green", "Green"),
                ],
                ..NewExperiment::default()
            })?;
            let e = lab.experiments().start(e.id().as_str())?;
            println!(
                "created and started experiment {} in {}",
                e.id(),
                path.display()
            );
            e
        }
    };
    let id = exp.id().as_str();

    // New users each run: continue numbering after everyone exposed so far.
    let before: u64 = lab
        .storage()
        .totals(id)?
        .variants
        .iter()
        .map(|v| v.participants)
        .sum();
    for n in before..before + USERS_PER_RUN {
        let user = format!("usr_{n:06}");
        let variant = lab.expose(id, &Context::new(user.as_str()))?;
        // A made-up behaviour: a third of the users convert, a few more on green.
        let converts =
            n % 3 == 0 || (variant.as_ref().is_some_and(|v| v.as_str() == "green") && n % 10 == 1);
        if converts {
            lab.events().track(&TrackEvent::conversion(id, &user))?;
        }
    }

    let totals = lab.storage().totals(id)?;
    for (i, v) in exp.variants().iter().enumerate() {
        let t = totals.variant(i);
        let conversions = t.metrics.first().map_or(0.0, |m| m.sum);
        let rate = if t.participants == 0 {
            0.0
        } else {
            100.0 * conversions / t.participants as f64
        };
        println!(
            "  {:<8} {:>5} participants, {:>5} conversions ({rate:.1}%)",
            v.id.as_str(),
            t.participants,
            conversions
        );
    }
    Ok(())
}
