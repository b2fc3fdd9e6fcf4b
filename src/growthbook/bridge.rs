//! GrowthBook experiments analysed by abkit: [`mirror`] creates (once) and starts an abkit
//! experiment for a GrowthBook experiment — found again by its key, which is its name and salt —
//! with its variations as variants (ids from `meta[i].key`, else the index; weights as the
//! GrowthBook experiment's, else an even split); [`record`] records a GrowthBook result as the
//! exposure it implies, so `lab.events().track(..)` and `lab.reports().analyze(..)` work on
//! GrowthBook traffic. Use it from a [`super::Tracking`] callback.
//!
//! ```
//! use abkit::growthbook::{bridge, Experiment, Features, GbContext};
//! use abkit::{Lab, TrackEvent};
//! use serde_json::json;
//!
//! let lab = Lab::new();
//! let features = Features::default();
//! let exp = Experiment::from_json(&json!({"key": "checkout", "variations": ["old", "new"]}),
//!                                 features.saved_groups())?;
//! let id = bridge::mirror(&lab, &exp)?;
//! let ctx = GbContext { attributes: json!({"id": "u1"}), ..GbContext::default() };
//! let result = features.run(&exp, &ctx);
//! bridge::record(&lab, &id, &result)?;
//! lab.events().track(&TrackEvent::conversion(&id, "u1"))?;
//! assert_eq!(lab.reports().compute_results(&id)?.variants.iter().map(|v| v.conversions).sum::<u64>(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde_json::json;

use super::{Experiment, ExperimentResult};
use crate::decision::experiment::Exposure;
use crate::error::{Error, Result};
use crate::lab::Lab;
use crate::model::experiment::NewExperiment;
use crate::model::lifecycle::Status;
use crate::storage::EventOutcome;

/// The abkit experiment mirroring `exp` (by key): created and started on first use; a
/// stopped or draft one is started. Returns its id.
///
/// # Errors
///
/// [`Error::Validation`] when the GrowthBook experiment's weights are not valid for abkit (they
/// must sum to 1); a storage failure.
pub fn mirror(lab: &Lab, exp: &Experiment) -> Result<String> {
    let key = exp.key();
    let found = existing(lab, key)?;
    let id = match found {
        Some(id) => id,
        None => {
            let variants: Vec<_> = (0..exp.variations().len())
                .map(|i| {
                    let mut v = json!({"id": exp.variation_key(i).to_string()});
                    if let Some(w) = exp.weights().and_then(|w| w.get(i)) {
                        v["traffic"] = json!(w);
                    }
                    v
                })
                .collect();
            let new: NewExperiment = serde_json::from_value(json!({
                "name": key, "salt": key, "variants": variants,
            }))
            .map_err(|e| {
                Error::from(crate::model::validation::ValidationError::field(
                    "experiment",
                    format!("growthbook experiment {key:?} does not map to abkit: {e}"),
                ))
            })?;
            lab.experiments().create(new)?.id().to_string()
        }
    };
    if lab.experiments().get(&id)?.status() == Status::Draft {
        lab.experiments().start(&id)?;
    }
    Ok(id)
}

fn existing(lab: &Lab, key: &str) -> Result<Option<String>> {
    let mut q = crate::control::ListQuery {
        limit: 100,
        ..crate::control::ListQuery::default()
    };
    loop {
        let page = lab.experiments().list(&q)?;
        if let Some(e) = page
            .items
            .iter()
            .find(|e| e.name() == key && e.salt() == key)
        {
            return Ok(Some(e.id().to_string()));
        }
        if u64::from(q.page) >= page.total_pages {
            return Ok(None);
        }
        q.page += 1;
    }
}

/// Records `result` (of the GrowthBook experiment [`mirror`]ed as `id`) as an exposure: the
/// unit is the hash attribute's value, the variant the variation's. A result not in the
/// experiment records nothing (`Ok(None)`).
///
/// # Errors
///
/// [`Error::NotFound`] for `id`; [`Error::Lifecycle`] unless it is running; a storage failure.
pub fn record(lab: &Lab, id: &str, result: &ExperimentResult<'_>) -> Result<Option<EventOutcome>> {
    if !result.in_experiment {
        return Ok(None);
    }
    let e = lab.experiments().get(id)?;
    let index = result.variation_id;
    let Some(variant) = e.variants().get(index) else {
        return Err(Error::NotFound {
            kind: "variant",
            id: format!("{id}[{index}]"),
        });
    };
    let unit = super::eval::js_string(result.hash_value);
    let exposure = Exposure {
        experiment_id: e.id(),
        unit_id: &unit,
        variant: &variant.id,
        variant_index: u32::try_from(index).unwrap_or(u32::MAX),
        forced: !result.hash_used,
    };
    lab.events().record(&exposure).map(Some)
}
