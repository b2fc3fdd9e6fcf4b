//! Audiences, saved groups, layers and lab-wide settings.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::allocation::BucketRange;
use crate::assign::Holdout;
use crate::model::ids::{AudienceId, LayerId, SavedGroupId};
use crate::targeting::Condition;

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

/// Lab-wide settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Settings {
    #[serde(default)]
    pub(crate) holdout: Option<Holdout>,
}
