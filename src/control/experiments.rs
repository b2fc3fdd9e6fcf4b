//! Experiments: create, read, update while a draft, and the lifecycle verbs.

use serde::{Deserialize, Serialize};

use crate::allocation::Traffic;
use crate::control::codec::Versioned;
use crate::control::{Control, ListQuery, Page, Writer};
use crate::error::{Conflict, Error, Result};
use crate::model::config::{Audience, Layer};
use crate::model::experiment::{Experiment, ExperimentPatch, NewExperiment};
use crate::model::flag::Flag;
use crate::model::ids::ExperimentId;
use crate::model::lifecycle::{Operation, Status};
use crate::model::validation::ValidationError;
use crate::time::Timestamp;

/// How an experiment is stopped: optionally with a winner to roll out, and a reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopRequest {
    /// The variant to roll out to everyone in the audience.
    #[serde(default)]
    pub winner: Option<String>,
    /// Why it was stopped.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The experiments of a lab: `lab.experiments()`.
///
/// Writes are validated, stored with optimistic concurrency and compiled into the snapshot
/// before they return. Reads come from storage.
///
/// # Examples
///
/// ```
/// use abkit::{Lab, NewExperiment, NewVariant, StopRequest};
///
/// let lab = Lab::new();
/// let exps = lab.experiments();
/// let exp = exps.create(NewExperiment {
///     name: "Checkout button".into(),
///     variants: vec![NewVariant::named("control", "Blue"), NewVariant::named("green", "Green")],
///     ..NewExperiment::default()
/// })?;
/// let id = exp.id().as_str();
/// exps.start(id)?;
/// let stopped = exps.stop(id, StopRequest { winner: Some("green".into()), reason: None })?;
/// assert_eq!(stopped.winner().map(|w| w.as_str()), Some("green"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Experiments<'l> {
    control: &'l Control,
}

impl<'l> Experiments<'l> {
    pub(crate) fn new(control: &'l Control) -> Experiments<'l> {
        Experiments { control }
    }

    /// Creates a draft experiment from a request (any source API's create body).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] naming the field and value (for a flag experiment: the flag's
    /// type and environment); [`Error::NotFound`] for its flag; a storage failure.
    pub fn create(&self, new: NewExperiment) -> Result<Versioned<Experiment>> {
        let id = ExperimentId::new(self.control.new_id("exp_"))?;
        let mut w = self.control.writer();
        let e = Experiment::create(new, id, self.control.now(), &self.control.catalogue)?;
        if let Some(f) = e.flag_id() {
            check_flag(&w, f.as_str(), &e)?;
        }
        w.put(e, None)
    }

    /// The experiment `id`, as stored.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; a storage failure.
    pub fn get(&self, id: &str) -> Result<Versioned<Experiment>> {
        self.control.require(id)
    }

    /// A page of experiments, newest first, optionally of one status. Archived experiments are
    /// hidden unless the filter asks for them.
    ///
    /// # Errors
    ///
    /// `page` 0, `limit` 0 or over 100; a storage failure.
    pub fn list(&self, query: &ListQuery) -> Result<Page<Versioned<Experiment>>> {
        query.validate()?;
        let mut all: Vec<Versioned<Experiment>> = self
            .control
            .list::<Experiment>()?
            .into_iter()
            .filter(|e| match query.status {
                Some(s) => e.status() == s,
                None => e.status() != Status::Archived,
            })
            .filter(|e| match &query.project {
                Some(p) => e.project_id().is_some_and(|q| q.as_str() == p),
                None => true,
            })
            .filter(|e| match &query.flag {
                Some(f) => e.flag_id().is_some_and(|g| g.as_str() == f),
                None => true,
            })
            .collect();
        all.sort_by(|a, b| {
            b.created_at()
                .cmp(&a.created_at())
                .then_with(|| b.id().cmp(a.id()))
        });
        Ok(query.page_of(all))
    }

    /// Changes a draft experiment: only the fields given. `version` is the one the caller read
    /// ([`Versioned::version`]); if the experiment changed since, nothing is written.
    ///
    /// # Errors
    ///
    /// [`Conflict::Version`] for a stale `version`; [`Error::Lifecycle`] unless it is a
    /// draft; [`Error::Validation`]; a storage failure.
    pub fn update(
        &self,
        id: &str,
        version: u64,
        patch: ExperimentPatch,
    ) -> Result<Versioned<Experiment>> {
        self.update_at(id, Some(version), patch)
    }

    /// [`Experiments::update`] of whatever version is stored (last writer wins).
    ///
    /// # Errors
    ///
    /// As [`Experiments::update`], without the version check.
    pub fn update_latest(&self, id: &str, patch: ExperimentPatch) -> Result<Versioned<Experiment>> {
        self.update_at(id, None, patch)
    }

    fn update_at(
        &self,
        id: &str,
        version: Option<u64>,
        patch: ExperimentPatch,
    ) -> Result<Versioned<Experiment>> {
        let catalogue = &self.control.catalogue;
        self.transition(id, version, Operation::Update, |w, e, now| {
            let next = e.patched(patch, now, catalogue)?;
            if let Some(f) = next.flag_id() {
                check_flag(w, f.as_str(), &next)?;
            }
            *e = next;
            Ok(())
        })
    }

    /// Changes the traffic fraction of a draft or running experiment (a ramp). Raising it only
    /// adds units; lowering it only removes units; no unit ever changes variant.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] unless draft or running; a fraction outside [0, 1] or not a whole
    /// number of basis points.
    pub fn ramp(&self, id: &str, traffic: f64) -> Result<Versioned<Experiment>> {
        self.transition(id, None, Operation::Ramp, |_, e, _| {
            if !(traffic.is_finite() && (0.0..=1.0).contains(&traffic)) {
                return Err(ValidationError::field(
                    "traffic",
                    format!("{traffic} is outside [0, 1]"),
                )
                .into());
            }
            e.data_mut().traffic = Traffic::from_fraction(traffic)
                .map_err(|err| ValidationError::weight("traffic", err))?;
            Ok(())
        })
    }

    /// Starts a draft experiment. Its audience and saved groups must exist; its layer must exist
    /// and its range may not overlap a running experiment of the layer or the layer's holdout;
    /// a flag runs one experiment per environment at a time.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] unless draft; [`Error::NotFound`] for a missing audience, saved
    /// group, layer or flag; [`Conflict::LayerOverlap`]; [`Conflict::RunningOnFlag`].
    ///
    /// The rules hold across processes sharing one store: the start writes its flag's and
    /// layer's claim records in the same atomic commit, so of two conflicting starts in two
    /// processes one fails in storage; it then re-reads the configuration and checks again (up
    /// to three times), so its caller gets the conflict above.
    pub fn start(&self, id: &str) -> Result<Versioned<Experiment>> {
        let mut attempt = 0;
        loop {
            let started = self.transition_claiming(id, Operation::Start, |w, e, now| {
                check_startable(w, e)?;
                e.data_mut().started_at = Some(now);
                Ok(())
            });
            match started {
                Err(e) if super::is_stale_claim(&e) && attempt < super::CLAIM_RETRIES => {
                    attempt += 1;
                    self.control.refresh()?;
                }
                other => return other,
            }
        }
    }

    /// Stops a running experiment, optionally with a winner (one of its variants) that is then
    /// rolled out to everyone in its audience, and a reason. Existing assignments and events
    /// stay for results. (A flag experiment rolls nothing out: its flag serves its default; see
    /// [`crate::Flags::stop_experiment`] to promote the winner.)
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] unless running; an unknown winner.
    pub fn stop(&self, id: &str, request: StopRequest) -> Result<Versioned<Experiment>> {
        self.transition(id, None, Operation::Stop, |_, e, now| {
            let winner = match &request.winner {
                None => None,
                Some(w) => Some(
                    e.variant(w)
                        .ok_or_else(|| {
                            ValidationError::field("winner", format!("unknown variant {w:?}"))
                        })?
                        .id
                        .clone(),
                ),
            };
            let d = e.data_mut();
            d.winner = winner;
            d.stop_reason = request.reason.clone();
            d.ended_at = Some(now);
            Ok(())
        })
    }

    /// Marks a running or stopped experiment completed.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] unless running or stopped.
    pub fn complete(&self, id: &str) -> Result<Versioned<Experiment>> {
        self.transition(id, None, Operation::Complete, |_, e, now| {
            let d = e.data_mut();
            d.ended_at = d.ended_at.or(Some(now));
            Ok(())
        })
    }

    /// Archives an experiment that is not running.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] when running or already archived.
    pub fn archive(&self, id: &str) -> Result<Versioned<Experiment>> {
        self.transition(id, None, Operation::Archive, |_, _, _| Ok(()))
    }

    /// Deletes an experiment that is not running, with its events. The events go first: if
    /// purging them fails the experiment stays (retry); if deleting the record then fails,
    /// the experiment stays with no events, which a retry completes.
    ///
    /// # Errors
    ///
    /// [`Error::Lifecycle`] when running; [`Error::NotFound`].
    pub fn delete(&self, id: &str) -> Result<()> {
        let mut w = self.control.writer();
        let e: Versioned<Experiment> = self.control.require(id)?;
        if !e.status().allows(Operation::Delete) {
            return Err(Error::Lifecycle {
                id: id.to_owned(),
                operation: Operation::Delete,
                status: e.status(),
            });
        }
        self.control.storage.purge_events(id)?;
        w.delete::<Experiment>(id, e.version())
    }

    /// Applies `op` to experiment `id` if its status allows it, writing the change `f` makes,
    /// under the writer lock. `expected`: the version the caller read (`None`: the stored one).
    fn transition(
        &self,
        id: &str,
        expected: Option<u64>,
        op: Operation,
        f: impl FnOnce(&mut Writer<'_>, &mut Experiment, Timestamp) -> Result<()>,
    ) -> Result<Versioned<Experiment>> {
        self.transition_with(id, expected, op, false, None, f)
    }

    /// A transition that writes the experiment's claims with it (a start).
    fn transition_claiming(
        &self,
        id: &str,
        op: Operation,
        f: impl FnOnce(&mut Writer<'_>, &mut Experiment, Timestamp) -> Result<()>,
    ) -> Result<Versioned<Experiment>> {
        self.transition_with(id, None, op, true, None, f)
    }

    /// `at`: the instant the change is stamped with (`None`: the lab's clock).
    pub(crate) fn transition_with(
        &self,
        id: &str,
        expected: Option<u64>,
        op: Operation,
        claim: bool,
        at: Option<Timestamp>,
        f: impl FnOnce(&mut Writer<'_>, &mut Experiment, Timestamp) -> Result<()>,
    ) -> Result<Versioned<Experiment>> {
        let mut w = self.control.writer();
        let stored: Versioned<Experiment> = self.control.require(id)?;
        let version = stored.version();
        if let Some(expected) = expected
            && expected != version
        {
            return Err(Conflict::Version {
                kind: "experiment",
                id: id.to_owned(),
                expected,
                found: version,
            }
            .into());
        }
        let mut e = stored.into_inner();
        let next = e.status().apply(op).ok_or_else(|| Error::Lifecycle {
            id: id.to_owned(),
            operation: op,
            status: e.status(),
        })?;
        let now = at.unwrap_or_else(|| self.control.now());
        f(&mut w, &mut e, now)?;
        let d = e.data_mut();
        d.status = next;
        d.updated_at = now;
        let e = Experiment::from_data(e.into_data())?;
        if claim {
            let claims = super::claims_of(&e);
            w.put_claiming(e, Some(version), &claims, id)
        } else {
            w.put(e, Some(version))
        }
    }
}

/// Checks a flag experiment against its flag (from storage: the flag's type is the truth).
fn check_flag(w: &Writer<'_>, flag_id: &str, e: &Experiment) -> Result<()> {
    let flag: Versioned<Flag> = w.control().require(flag_id)?;
    flag.check_experiment(e)?;
    Ok(())
}

/// What must hold for `e` to start. Reads the writer's configuration (no storage scan); a
/// concurrent start in another process is caught in storage by the start's claims (see
/// [`Experiments::start`]), which then re-runs this against the refreshed configuration.
pub(crate) fn check_startable(w: &Writer<'_>, e: &Experiment) -> Result<()> {
    let config = w.config();
    if let Some(aud) = e.audience_id() {
        let a: Versioned<Audience> = w.control().require(aud.as_str())?;
        a.condition
            .bind(&config.groups)
            .map_err(|err| ValidationError::condition("audienceId", err))?;
    }
    if let Some(t) = e.targeting() {
        t.bind(&config.groups)
            .map_err(|err| ValidationError::condition("targeting", err))?;
    }
    if let Some(p) = e.layer() {
        let layer: Versioned<Layer> = w.control().require(p.id.as_str())?;
        let overlap = |other: Option<&Experiment>| Conflict::LayerOverlap {
            experiment: e.id().to_string(),
            layer: p.id.to_string(),
            start: p.range.start(),
            end: p.range.end(),
            other: other.map(|o| o.id().to_string()),
        };
        if let Some(h) = layer.holdout
            && h.overlaps(&p.range)
        {
            return Err(overlap(None).into());
        }
        for other in config.experiments_of_layer(p.id.as_str()) {
            if other.id() == e.id() || other.status() != Status::Running {
                continue;
            }
            if let Some(q) = other.layer()
                && q.id == p.id
                && q.range.overlaps(&p.range)
            {
                return Err(overlap(Some(other)).into());
            }
        }
    }
    if let Some(f) = e.flag_id() {
        let flag: Versioned<Flag> = w.control().require(f.as_str())?;
        flag.check_experiment(e)?;
        for other in config.experiments_of_flag(f.as_str()) {
            let same_env = match (other.environment(), e.environment()) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            if other.id() != e.id()
                && other.status() == Status::Running
                && other.flag_id() == Some(f)
                && same_env
            {
                return Err(Conflict::RunningOnFlag {
                    flag: flag.key.to_string(),
                    running: other.id().to_string(),
                    environment: e.environment().unwrap_or("*").to_owned(),
                }
                .into());
            }
        }
    }
    Ok(())
}
