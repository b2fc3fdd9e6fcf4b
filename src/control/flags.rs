//! Flags: create, read, update, delete, and the experiments attached to them.

use crate::control::codec::Versioned;
use crate::control::experiments::{Experiments, StopRequest};
use crate::control::{Control, Writer};
use crate::error::{Conflict, Error, Result};
use crate::model::experiment::{Experiment, NewExperiment};
use crate::model::flag::{Flag, FlagPatch, NewFlag};
use crate::model::ids::{FlagId, VariantKey};
use crate::model::lifecycle::{Operation, Status};
use crate::model::validation::ValidationError;
use crate::storage::StorageError;

/// The flags of a lab: `lab.flags()`. Evaluation is a decision: [`crate::Lab::evaluate`].
///
/// # Examples
///
/// ```
/// use abkit::{Context, Lab, NewFlag};
///
/// let lab = Lab::new();
/// let flag = lab.flags().create(NewFlag {
///     project_id: "proj_1".into(),
///     key: "new-checkout".into(),
///     default_value: false.into(),
///     ..NewFlag::default()
/// })?;
/// assert_eq!(flag.version(), 1);
/// let on = lab.flags().set_enabled(flag.id.as_str(), true)?;
/// assert!(on.enabled);
/// assert!(!lab.bool_value("proj_1", "production", "new-checkout", &Context::new("u1"), true));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Flags<'l> {
    control: &'l Control,
}

fn taken(flag: &Flag) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Storage(StorageError::UniqueViolation { .. }) => {
            Error::Conflict(Conflict::FlagKeyTaken {
                project: flag.project_id.to_string(),
                key: flag.key.to_string(),
                environment: flag.environment.as_deref().unwrap_or("*").to_owned(),
            })
        }
        other => other,
    }
}

impl<'l> Flags<'l> {
    pub(crate) fn new(control: &'l Control) -> Flags<'l> {
        Flags { control }
    }

    /// Creates a flag (the flag API's create body deserializes into [`NewFlag`]).
    ///
    /// # Errors
    ///
    /// [`Conflict::FlagKeyTaken`] for a key that exists in the project and environment; a
    /// default or rule value not of the flag's type; invalid ids.
    pub fn create(&self, new: NewFlag) -> Result<Versioned<Flag>> {
        let id = FlagId::new(self.control.new_id("flag_"))?;
        let flag = Flag::create(new, id, self.control.now())?;
        let mut w = self.control.writer();
        let conflict = taken(&flag);
        w.put(flag.clone(), None).map_err(conflict)
    }

    /// The flag `id`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; a storage failure.
    pub fn get(&self, id: &str) -> Result<Versioned<Flag>> {
        self.control.require(id)
    }

    /// Every flag of `project`, sorted by key (then environment), with its stored version.
    ///
    /// # Errors
    ///
    /// A storage failure.
    pub fn list(&self, project: &str) -> Result<Vec<Versioned<Flag>>> {
        let mut out: Vec<Versioned<Flag>> = self
            .control
            .list::<Flag>()?
            .into_iter()
            .filter(|f| f.project_id == project)
            .collect();
        out.sort_by(|a, b| {
            a.key
                .cmp(&b.key)
                .then_with(|| a.environment.cmp(&b.environment))
        });
        Ok(out)
    }

    /// Changes a flag: only the fields given. `version` is the one the caller read; if the flag
    /// changed since, nothing is written.
    ///
    /// # Errors
    ///
    /// [`Conflict::Version`] for a stale `version`; [`Error::NotFound`]; values not of the
    /// flag's type.
    pub fn update(&self, id: &str, version: u64, patch: FlagPatch) -> Result<Versioned<Flag>> {
        let mut w = self.control.writer();
        self.update_with(&mut w, id, Some(version), patch)
    }

    /// [`Flags::update`] of whatever version is stored (last writer wins).
    ///
    /// # Errors
    ///
    /// As [`Flags::update`], without the version check.
    pub fn update_latest(&self, id: &str, patch: FlagPatch) -> Result<Versioned<Flag>> {
        let mut w = self.control.writer();
        self.update_with(&mut w, id, None, patch)
    }

    fn update_with(
        &self,
        w: &mut Writer<'_>,
        id: &str,
        version: Option<u64>,
        patch: FlagPatch,
    ) -> Result<Versioned<Flag>> {
        let stored: Versioned<Flag> = self.control.require(id)?;
        let expected = version.unwrap_or(stored.version());
        let next = stored.patched(patch, self.control.now())?;
        let conflict = taken(&next);
        w.put(next.clone(), Some(expected)).map_err(conflict)
    }

    /// Enables or disables a flag (last writer wins).
    ///
    /// # Errors
    ///
    /// As [`Flags::update_latest`].
    pub fn set_enabled(&self, id: &str, enabled: bool) -> Result<Versioned<Flag>> {
        self.update_latest(
            id,
            FlagPatch {
                enabled: Some(enabled),
                ..FlagPatch::default()
            },
        )
    }

    /// Deletes a flag that has no running experiment. The check and the delete happen under
    /// the writer lock, so a concurrent start cannot slip in between.
    ///
    /// # Errors
    ///
    /// [`Conflict::FlagHasRunningExperiment`]; [`Error::NotFound`].
    pub fn delete(&self, id: &str) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self.delete_once(id) {
                Err(e) if super::is_stale_claim(&e) && attempt < super::CLAIM_RETRIES => {
                    attempt += 1;
                    self.control.refresh()?;
                }
                other => return other,
            }
        }
    }

    /// One attempt of [`Flags::delete`]: the delete commits with a check of the flag's claim,
    /// so a start of one of its experiments in another process since this one read it makes
    /// the delete fail in storage (and be retried against the fresh configuration).
    fn delete_once(&self, id: &str) -> Result<()> {
        let mut w = self.control.writer();
        let f: Versioned<Flag> = self.control.require(id)?;
        let running = w
            .config()
            .experiments_of_flag(id)
            .find(|e| e.status() == Status::Running);
        if let Some(e) = running {
            return Err(Conflict::FlagHasRunningExperiment {
                flag: f.key.to_string(),
                running: e.id().to_string(),
            }
            .into());
        }
        w.delete_claiming::<Flag>(id, f.version(), &[format!("flag:{id}")])
    }

    /// Attaches a draft experiment to flag `flag_id` (the flag API's experiment body as
    /// written). Variant values must be of the flag's type.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for the flag; [`Error::Validation`].
    pub fn create_experiment(
        &self,
        flag_id: &str,
        mut new: NewExperiment,
    ) -> Result<Versioned<Experiment>> {
        let flag = self.get(flag_id)?;
        if let Some(p) = new.project_id.as_deref()
            && p != flag.project_id.as_str()
        {
            return Err(ValidationError::field(
                "projectId",
                format!(
                    "{p:?} is not flag {flag_id:?}'s project {:?}",
                    flag.project_id.as_str()
                ),
            )
            .into());
        }
        new.project_id = Some(flag.project_id.as_str().to_owned());
        new.flag_id = Some(flag_id.to_owned());
        Experiments::new(self.control).create(new)
    }

    /// Stops a flag's running experiment; with `promote_winner`, the winner's value becomes
    /// the flag's default value in the same call. The two are separate writes: if the
    /// promotion fails (a concurrent flag change, say), the stop stands and calling again with
    /// the same winner completes the promotion.
    ///
    /// # Errors
    ///
    /// As [`Experiments::stop`]; `promote_winner` without a winner.
    pub fn stop_experiment(
        &self,
        experiment_id: &str,
        request: StopRequest,
        promote_winner: bool,
    ) -> Result<Versioned<Experiment>> {
        if promote_winner && request.winner.is_none() {
            return Err(ValidationError::field("winner", "promote_winner needs a winner").into());
        }
        let experiments = Experiments::new(self.control);
        let e = experiments.get(experiment_id)?;
        let flag_id = e
            .flag_id()
            .ok_or_else(|| {
                ValidationError::field(
                    "experimentId",
                    format!("{experiment_id:?} is not attached to a flag"),
                )
            })?
            .clone();
        // A retry after the promotion failed: the stop already happened with this winner, so
        // only the promotion is left to do (the call is safe to repeat).
        let already_stopped = e.status() == Status::Stopped
            && promote_winner
            && e.winner().map(VariantKey::as_str) == request.winner.as_deref();
        if !already_stopped && !e.status().allows(Operation::Stop) {
            return Err(Error::Lifecycle {
                id: experiment_id.to_owned(),
                operation: Operation::Stop,
                status: e.status(),
            });
        }
        let winner_value = match &request.winner {
            Some(w) if promote_winner => {
                Some(e.variant(w).and_then(|v| v.value.clone()).ok_or_else(|| {
                    ValidationError::field("winner", format!("unknown variant {w:?}"))
                })?)
            }
            _ => None,
        };
        let stopped = if already_stopped {
            e
        } else {
            experiments.stop(experiment_id, request)?
        };
        if let Some(v) = winner_value {
            self.update_latest(
                flag_id.as_str(),
                FlagPatch {
                    default_value: Some(v),
                    ..FlagPatch::default()
                },
            )?;
        }
        Ok(stopped)
    }
}
