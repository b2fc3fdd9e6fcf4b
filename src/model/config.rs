//! Audiences, saved groups, layers, the global holdout and lab-wide settings.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::allocation::BucketRange;
use crate::model::experiment::Experiment;
use crate::model::flag::Flag;
use crate::model::ids::{AudienceId, LayerId, SavedGroupId};
use crate::targeting::{Condition, SavedGroups};
use crate::time::Timestamp;

/// A named, reusable targeting condition that experiments reference by `audienceId`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Audience {
    /// Its id, such as `aud_xyz`.
    pub id: AudienceId,
    /// A human name.
    pub name: String,
    /// Who is in it.
    pub condition: Condition,
}

/// A named list of values for `$inGroup` / `$notInGroup`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedGroup {
    /// Its id.
    pub id: SavedGroupId,
    /// The values.
    pub values: Vec<Value>,
}

/// A layer (namespace): its experiments own disjoint ranges of its own hash, so a unit is in at
/// most one of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    /// Its id.
    pub id: LayerId,
    /// The salt of its hash (default: its id).
    #[serde(default)]
    pub salt: Option<String>,
    /// A range of the layer that no experiment may own: units there are held out of every
    /// experiment of the layer.
    #[serde(default)]
    pub holdout: Option<BucketRange>,
}

impl Layer {
    /// The salt its hash uses.
    pub fn salt(&self) -> &str {
        self.salt.as_deref().unwrap_or(self.id.as_str())
    }
}

/// A holdout: units whose bucket under `salt` falls in `range` are enrolled in no experiment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holdout {
    /// The salt of the holdout's own hash.
    pub salt: String,
    /// The held-out buckets.
    pub range: BucketRange,
}

/// Lab-wide settings: one record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// The global holdout.
    #[serde(default)]
    pub holdout: Option<Holdout>,
}

/// The whole configuration, decoded: what a snapshot is compiled from. Kept by the control
/// plane under its writer lock and changed one record at a time.
#[derive(Clone, Debug, Default)]
pub(crate) struct Configuration {
    pub(crate) experiments: BTreeMap<String, Experiment>,
    pub(crate) flags: BTreeMap<String, Flag>,
    pub(crate) audiences: BTreeMap<String, Audience>,
    pub(crate) saved_groups: BTreeMap<String, SavedGroup>,
    pub(crate) layers: BTreeMap<String, Layer>,
    pub(crate) settings: Settings,
    /// The saved groups as conditions bind them (kept in step with `saved_groups`).
    pub(crate) groups: SavedGroups,
    /// Flag id → the experiments attached to it (kept in step with `experiments`).
    by_flag: BTreeMap<String, BTreeSet<String>>,
    /// Layer id → the experiments placed in it (kept in step with `experiments`).
    by_layer: BTreeMap<String, BTreeSet<String>>,
    /// Claim id (`flag:{id}`, `layer:{id}`) → the version of its claim record as this process
    /// last wrote or loaded it (see `RecordKind::Claim`).
    pub(crate) claims: BTreeMap<String, u64>,
    /// The instant flag rules' active windows are compiled at: set by the control plane when it
    /// loads and by every `Lab::tick` (never read from a clock while deciding).
    pub(crate) as_of: Option<Timestamp>,
}

impl Configuration {
    /// Adds or replaces an experiment, keeping the reverse indexes in step.
    pub(crate) fn put_experiment(&mut self, e: Experiment) {
        let id = e.id().to_string();
        self.remove_experiment(&id);
        if let Some(f) = e.flag_id() {
            self.by_flag
                .entry(f.to_string())
                .or_default()
                .insert(id.clone());
        }
        if let Some(l) = e.layer() {
            self.by_layer
                .entry(l.id.to_string())
                .or_default()
                .insert(id.clone());
        }
        self.experiments.insert(id, e);
    }

    /// Removes an experiment.
    pub(crate) fn remove_experiment(&mut self, id: &str) {
        let Some(old) = self.experiments.remove(id) else {
            return;
        };
        let unindex = |index: &mut BTreeMap<String, BTreeSet<String>>, key: &str| {
            if let Some(set) = index.get_mut(key) {
                set.remove(id);
                if set.is_empty() {
                    index.remove(key);
                }
            }
        };
        if let Some(f) = old.flag_id() {
            unindex(&mut self.by_flag, f.as_str());
        }
        if let Some(l) = old.layer() {
            unindex(&mut self.by_layer, l.id.as_str());
        }
    }

    /// The experiments attached to flag `flag`.
    pub(crate) fn experiments_of_flag<'a>(
        &'a self,
        flag: &str,
    ) -> impl Iterator<Item = &'a Experiment> + 'a {
        self.by_flag
            .get(flag)
            .into_iter()
            .flatten()
            .filter_map(|id| self.experiments.get(id))
    }

    /// The experiments placed in layer `layer`.
    pub(crate) fn experiments_of_layer<'a>(
        &'a self,
        layer: &str,
    ) -> impl Iterator<Item = &'a Experiment> + 'a {
        self.by_layer
            .get(layer)
            .into_iter()
            .flatten()
            .filter_map(|id| self.experiments.get(id))
    }

    /// Adds or replaces a saved group, keeping the bound form in step.
    pub(crate) fn put_saved_group(&mut self, group: SavedGroup) {
        self.groups.insert(group.id.as_str(), group.values.clone());
        self.saved_groups.insert(group.id.to_string(), group);
    }

    /// Removes a saved group.
    pub(crate) fn remove_saved_group(&mut self, id: &str) {
        self.groups.remove(id);
        self.saved_groups.remove(id);
    }
}
