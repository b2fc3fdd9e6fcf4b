//! The typed records codec: configuration records to and from storage, with their versions
//! kept beside the domain value ([`Versioned`]), never inside it.

use std::ops::Deref;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::decision::snapshot::Change;
use crate::error::{Error, Result};
use crate::model::config::{Audience, Configuration, Layer, SavedGroup, Settings};
use crate::model::experiment::Experiment;
use crate::model::flag::Flag;
use crate::model::validation::ValidationError;
use crate::storage::{Record, RecordKind, StorageError};

/// A stored value and the storage version it was read at (or written as). Derefs to the value.
///
/// Pass [`Versioned::version`] back to an update (`lab.experiments().update(id, version, …)`):
/// if the record changed in between, the update fails with
/// [`Conflict::Version`](crate::Conflict::Version) instead of overwriting the other change.
///
/// Serializes as the value's fields plus `"version"`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Versioned<T> {
    #[serde(flatten)]
    value: T,
    version: u64,
}

impl<T> Versioned<T> {
    /// `value` at `version`.
    pub fn new(value: T, version: u64) -> Versioned<T> {
        Versioned { value, version }
    }

    /// The storage version: 1 when created, +1 on every write.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value, without its version.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for Versioned<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// A configuration record: how it is stored, validated when read, and folded into the
/// decoded [`Configuration`].
pub(crate) trait ConfigRecord: Serialize + DeserializeOwned + Clone {
    /// Its storage kind.
    const KIND: RecordKind;
    /// What errors call it.
    const NAME: &'static str;
    /// Its id.
    fn record_id(&self) -> &str;
    /// A second key unique within the kind.
    fn unique_key(&self) -> Option<String> {
        None
    }
    /// Checks a decoded record.
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
    /// Puts it into `config`.
    fn store(self, config: &mut Configuration);
    /// Takes record `id` out of `config`.
    fn unstore(id: &str, config: &mut Configuration);
    /// The snapshot change writing record `id` makes.
    fn change(id: &str) -> Change<'_>;
}

impl ConfigRecord for Experiment {
    const KIND: RecordKind = RecordKind::Experiment;
    const NAME: &'static str = "experiment";
    fn record_id(&self) -> &str {
        self.id().as_str()
    }
    fn store(self, config: &mut Configuration) {
        config.put_experiment(self);
    }
    fn unstore(id: &str, config: &mut Configuration) {
        config.remove_experiment(id);
    }
    fn change(id: &str) -> Change<'_> {
        Change::Experiment(id)
    }
}

impl ConfigRecord for Flag {
    const KIND: RecordKind = RecordKind::Flag;
    const NAME: &'static str = "flag";
    fn record_id(&self) -> &str {
        self.id.as_str()
    }
    fn unique_key(&self) -> Option<String> {
        Some(Flag::unique_key(self))
    }
    fn validate(&self) -> Result<(), ValidationError> {
        Flag::validate(self)
    }
    fn store(self, config: &mut Configuration) {
        config.flags.insert(self.id.to_string(), self);
    }
    fn unstore(id: &str, config: &mut Configuration) {
        config.flags.remove(id);
    }
    fn change(id: &str) -> Change<'_> {
        Change::Flag(id)
    }
}

impl ConfigRecord for Audience {
    const KIND: RecordKind = RecordKind::Audience;
    const NAME: &'static str = "audience";
    fn record_id(&self) -> &str {
        self.id.as_str()
    }
    fn store(self, config: &mut Configuration) {
        config.audiences.insert(self.id.to_string(), self);
    }
    fn unstore(id: &str, config: &mut Configuration) {
        config.audiences.remove(id);
    }
    fn change(id: &str) -> Change<'_> {
        Change::Audience(id)
    }
}

impl ConfigRecord for SavedGroup {
    const KIND: RecordKind = RecordKind::SavedGroup;
    const NAME: &'static str = "saved group";
    fn record_id(&self) -> &str {
        self.id.as_str()
    }
    fn store(self, config: &mut Configuration) {
        config.put_saved_group(self);
    }
    fn unstore(id: &str, config: &mut Configuration) {
        config.remove_saved_group(id);
    }
    fn change(id: &str) -> Change<'_> {
        Change::SavedGroup(id)
    }
}

impl ConfigRecord for Layer {
    const KIND: RecordKind = RecordKind::Layer;
    const NAME: &'static str = "layer";
    fn record_id(&self) -> &str {
        self.id.as_str()
    }
    fn store(self, config: &mut Configuration) {
        config.layers.insert(self.id.to_string(), self);
    }
    fn unstore(id: &str, config: &mut Configuration) {
        config.layers.remove(id);
    }
    fn change(id: &str) -> Change<'_> {
        Change::Layer(id)
    }
}

/// The id of the one settings record.
pub(crate) const SETTINGS_ID: &str = "settings";

impl ConfigRecord for Settings {
    const KIND: RecordKind = RecordKind::Settings;
    const NAME: &'static str = "settings";
    fn record_id(&self) -> &str {
        SETTINGS_ID
    }
    fn store(self, config: &mut Configuration) {
        config.settings = self;
    }
    fn unstore(_: &str, config: &mut Configuration) {
        config.settings = Settings::default();
    }
    fn change(_: &str) -> Change<'_> {
        Change::Settings
    }
}

/// Decodes a stored record.
///
/// # Errors
///
/// [`StorageError::Corrupt`] naming the record when its body is not a valid `T`.
pub(crate) fn decode<T: ConfigRecord>(r: &Record) -> Result<Versioned<T>> {
    let corrupt = |e: String| {
        Error::Storage(StorageError::Corrupt(format!(
            "{} {:?} (version {}): {e}",
            T::NAME,
            r.id,
            r.version
        )))
    };
    let value: T = serde_json::from_value(r.body.clone()).map_err(|e| corrupt(e.to_string()))?;
    value.validate().map_err(|e| corrupt(e.to_string()))?;
    Ok(Versioned::new(value, r.version))
}

/// Encodes a record's body.
///
/// # Errors
///
/// A value that does not serialize (never for the crate's types).
pub(crate) fn encode<T: ConfigRecord>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| {
        Error::Storage(StorageError::Backend(format!(
            "{} {:?} does not serialize: {e}",
            T::NAME,
            value.record_id()
        )))
    })
}
