//! Audiences, saved groups, layers and the global holdout: the records experiments and flags
//! target through.

use crate::control::codec::{ConfigRecord, SETTINGS_ID, Versioned};
use crate::control::{Control, Writer};
use crate::error::{Conflict, Result};
use crate::model::config::{Audience, Configuration, Holdout, Layer, SavedGroup, Settings};
use crate::model::experiment::Experiment;
use crate::model::lifecycle::Status;

/// The targeting records of a lab: `lab.targeting()`. Each write recompiles only the
/// experiments and flags that use the record.
///
/// # Examples
///
/// ```
/// use abkit::{Audience, Condition, Lab};
///
/// let lab = Lab::new();
/// let audience = Audience {
///     id: "aud_de".parse()?,
///     name: "Germany".into(),
///     condition: Condition::parse(&serde_json::json!({"country": "DE"}))?,
/// };
/// let stored = lab.targeting().put_audience(audience)?;
/// assert_eq!(stored.version(), 1);
/// assert_eq!(lab.targeting().list_audiences()?.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Targeting<'l> {
    control: &'l Control,
}

/// Which running experiment uses a record, if any.
fn used_by_running(
    config: &Configuration,
    uses: impl Fn(&Experiment) -> bool,
) -> Option<&Experiment> {
    config
        .experiments
        .values()
        .find(|e| e.status() == Status::Running && uses(e))
}

impl<'l> Targeting<'l> {
    pub(crate) fn new(control: &'l Control) -> Targeting<'l> {
        Targeting { control }
    }

    /// Creates or replaces a record (last writer wins).
    fn put<T: ConfigRecord>(&self, value: T) -> Result<Versioned<T>> {
        let mut w = self.control.writer();
        let expected = self
            .control
            .get::<T>(value.record_id())?
            .map(|v| v.version());
        w.put(value, expected)
    }

    /// Deletes a record unless `in_use` names a running experiment that needs it.
    fn delete<T: ConfigRecord>(
        &self,
        id: &str,
        in_use: impl Fn(&Writer<'_>) -> Option<String>,
    ) -> Result<()> {
        let mut w = self.control.writer();
        let stored: Versioned<T> = self.control.require(id)?;
        if let Some(by) = in_use(&w) {
            return Err(Conflict::InUse {
                kind: T::NAME,
                id: id.to_owned(),
                by,
            }
            .into());
        }
        w.delete::<T>(id, stored.version())
    }

    /// Creates or replaces an audience. Its condition was validated when it was parsed.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn put_audience(&self, audience: Audience) -> Result<Versioned<Audience>> {
        self.put(audience)
    }

    /// The audience `id`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`]; a storage failure.
    pub fn get_audience(&self, id: &str) -> Result<Versioned<Audience>> {
        self.control.require(id)
    }

    /// Every audience, sorted by id.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn list_audiences(&self) -> Result<Vec<Versioned<Audience>>> {
        self.control.list()
    }

    /// Deletes an audience that no running experiment uses.
    ///
    /// # Errors
    ///
    /// [`Conflict::InUse`]; [`crate::Error::NotFound`].
    pub fn delete_audience(&self, id: &str) -> Result<()> {
        self.delete::<Audience>(id, |w| {
            used_by_running(w.config(), |e| {
                e.audience_id().is_some_and(|a| a.as_str() == id)
            })
            .map(|e| e.id().to_string())
        })
    }

    /// Creates or replaces a saved group (values for `$inGroup` / `$notInGroup`).
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn put_saved_group(&self, group: SavedGroup) -> Result<Versioned<SavedGroup>> {
        self.put(group)
    }

    /// The saved group `id`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`]; a storage failure.
    pub fn get_saved_group(&self, id: &str) -> Result<Versioned<SavedGroup>> {
        self.control.require(id)
    }

    /// Every saved group, sorted by id.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn list_saved_groups(&self) -> Result<Vec<Versioned<SavedGroup>>> {
        self.control.list()
    }

    /// Deletes a saved group that no running experiment's condition names (directly or through
    /// its audience). Flags whose rules name it then match nobody through it.
    ///
    /// # Errors
    ///
    /// [`Conflict::InUse`]; [`crate::Error::NotFound`].
    pub fn delete_saved_group(&self, id: &str) -> Result<()> {
        self.delete::<SavedGroup>(id, |w| {
            let config = w.config();
            used_by_running(config, |e| {
                let direct = e
                    .targeting()
                    .is_some_and(|t| t.saved_groups().any(|g| g == id));
                direct
                    || e.audience_id()
                        .and_then(|a| config.audiences.get(a.as_str()))
                        .is_some_and(|a| a.condition.saved_groups().any(|g| g == id))
            })
            .map(|e| e.id().to_string())
        })
    }

    /// Creates or replaces a layer.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn put_layer(&self, layer: Layer) -> Result<Versioned<Layer>> {
        self.put(layer)
    }

    /// The layer `id`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`]; a storage failure.
    pub fn get_layer(&self, id: &str) -> Result<Versioned<Layer>> {
        self.control.require(id)
    }

    /// Every layer, sorted by id.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn list_layers(&self) -> Result<Vec<Versioned<Layer>>> {
        self.control.list()
    }

    /// Deletes a layer that no running experiment is placed in.
    ///
    /// # Errors
    ///
    /// [`Conflict::InUse`]; [`crate::Error::NotFound`].
    pub fn delete_layer(&self, id: &str) -> Result<()> {
        self.delete::<Layer>(id, |w| {
            used_by_running(w.config(), |e| {
                e.layer().is_some_and(|l| l.id.as_str() == id)
            })
            .map(|e| e.id().to_string())
        })
    }

    /// Sets (or clears) the global holdout: units in it are enrolled in no experiment. Every
    /// experiment is recompiled.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn set_holdout(&self, holdout: Option<Holdout>) -> Result<()> {
        let mut w = self.control.writer();
        let stored = self.control.get::<Settings>(SETTINGS_ID)?;
        let version = stored.as_ref().map(Versioned::version);
        let mut settings = stored.map(Versioned::into_inner).unwrap_or_default();
        settings.holdout = holdout;
        w.put(settings, version)?;
        Ok(())
    }

    /// The global holdout, if one is set.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn holdout(&self) -> Result<Option<Holdout>> {
        Ok(self
            .control
            .get::<Settings>(SETTINGS_ID)?
            .and_then(|s| s.into_inner().holdout))
    }
}
