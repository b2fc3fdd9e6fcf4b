//! The handlers: one per route, each registered with its [`Route`] description.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::keys::{NewApiKey, Principal, Scope};
use super::{AppState, Builder, Key, Route, blocking, body, json, json_bytes, query};
use crate::control::ListQuery;
use crate::control::codec::Versioned;
use crate::error::Error;
use crate::events::TrackEvent;
use crate::lab::Lab;
use crate::model::config::Audience;
use crate::model::experiment::{Experiment, ExperimentPatch, NewExperiment};
use crate::model::flag::{Flag, FlagPatch, NewFlag};
use crate::model::lifecycle::Status;
use crate::reports::{AnalysisOptions, ExperimentWithCounts};
use crate::wire::{self, Acknowledged, ApiError, AssignRequest, Data, feed, flag, flow};

type Body = Result<Bytes, BytesRejection>;
type Q = Result<Query<Vec<(String, String)>>, QueryRejection>;
type Answer = Result<Response, ApiError>;

const fn route(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    scope: Option<Scope>,
    body: Option<&'static str>,
    success: u16,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        summary,
        scope,
        tag,
        body,
        success,
    }
}

const ADMIN: Option<Scope> = Some(Scope::Admin);
const CLIENT: Option<Scope> = Some(Scope::Client);

pub(crate) fn register(b: &mut Builder) {
    use self::route as r;
    // service
    b.add(
        r(
            "GET",
            "/health",
            "service",
            None,
            None,
            200,
            "liveness: {\"status\": \"ok\"}",
        ),
        health,
    );
    b.add(
        r(
            "GET",
            "/api/audiences",
            "service",
            ADMIN,
            None,
            200,
            "list audiences",
        ),
        audiences_list,
    );
    b.add(
        r(
            "POST",
            "/api/audiences",
            "service",
            ADMIN,
            Some("Audience"),
            201,
            "create or replace an audience (instance-wide keys)",
        ),
        audiences_put,
    );
    b.add(
        r(
            "GET",
            "/api/audiences/{id}",
            "service",
            ADMIN,
            None,
            200,
            "get an audience",
        ),
        audiences_get,
    );
    b.add(
        r(
            "DELETE",
            "/api/audiences/{id}",
            "service",
            ADMIN,
            None,
            200,
            "delete an audience (instance-wide keys)",
        ),
        audiences_delete,
    );
    b.add(
        r(
            "GET",
            "/api/keys",
            "service",
            ADMIN,
            None,
            200,
            "list api keys (instance-wide admin keys only)",
        ),
        keys_list,
    );
    b.add(
        r(
            "POST",
            "/api/keys",
            "service",
            ADMIN,
            Some("NewApiKey"),
            201,
            "create an api key; its token is shown once",
        ),
        keys_create,
    );
    b.add(
        r(
            "DELETE",
            "/api/keys/{id}",
            "service",
            ADMIN,
            None,
            200,
            "revoke an api key",
        ),
        keys_revoke,
    );
    // flow
    b.add(
        r(
            "GET",
            "/api/experiments",
            "flow",
            ADMIN,
            None,
            200,
            "list experiments (page, limit, status)",
        ),
        flow_list,
    );
    b.add(
        r(
            "POST",
            "/api/experiments",
            "flow",
            ADMIN,
            Some("NewExperiment"),
            201,
            "create an experiment",
        ),
        flow_create,
    );
    b.add(
        r(
            "GET",
            "/api/experiments/{id}",
            "flow",
            ADMIN,
            None,
            200,
            "get an experiment with all variant details",
        ),
        flow_get,
    );
    b.add(
        r(
            "PATCH",
            "/api/experiments/{id}",
            "flow",
            ADMIN,
            Some("ExperimentPatch"),
            200,
            "update a draft experiment",
        ),
        flow_update,
    );
    b.add(
        r(
            "DELETE",
            "/api/experiments/{id}",
            "flow",
            ADMIN,
            None,
            200,
            "archive an experiment",
        ),
        flow_archive,
    );
    b.add(
        r(
            "POST",
            "/api/experiments/{id}/start",
            "flow",
            ADMIN,
            None,
            200,
            "start an experiment",
        ),
        flow_start,
    );
    b.add(
        r(
            "POST",
            "/api/experiments/{id}/stop",
            "flow",
            ADMIN,
            Some("StopRequest"),
            200,
            "stop: enrolled users keep their variant, no new users",
        ),
        flow_stop,
    );
    b.add(
        r(
            "GET",
            "/api/experiments/{id}/results",
            "flow",
            ADMIN,
            None,
            200,
            "raw assignment and conversion data",
        ),
        flow_results,
    );
    b.add(
        r(
            "POST",
            "/api/experiments/{id}/compute-results",
            "flow",
            ADMIN,
            None,
            200,
            "computed conversion rates",
        ),
        flow_compute,
    );
    b.add(
        r(
            "POST",
            "/api/experiments/{id}/assign",
            "flow",
            CLIENT,
            Some("AssignRequest"),
            200,
            "the user's variant with its flowId and config; records the exposure",
        ),
        flow_assign,
    );
    b.add(
        r(
            "POST",
            "/api/experiments/{id}/conversions",
            "flow",
            CLIENT,
            Some("ConversionRequest"),
            200,
            "record a conversion (once per user and goal)",
        ),
        flow_convert,
    );
    // feed
    b.add(
        r(
            "GET",
            "/v1/experiments",
            "feed",
            ADMIN,
            None,
            200,
            "list experiments (status, limit, page)",
        ),
        feed_list,
    );
    b.add(
        r(
            "POST",
            "/v1/experiments",
            "feed",
            ADMIN,
            Some("FeedNewExperiment"),
            201,
            "create an experiment (name, type, traffic, variants required)",
        ),
        feed_create,
    );
    b.add(
        r(
            "GET",
            "/v1/experiments/{id}",
            "feed",
            ADMIN,
            None,
            200,
            "get experiment details",
        ),
        feed_get,
    );
    b.add(
        r(
            "PATCH",
            "/v1/experiments/{id}",
            "feed",
            ADMIN,
            Some("ExperimentPatch"),
            200,
            "update a draft experiment",
        ),
        feed_update,
    );
    b.add(
        r(
            "DELETE",
            "/v1/experiments/{id}",
            "feed",
            ADMIN,
            None,
            200,
            "delete an experiment (never while running)",
        ),
        feed_delete,
    );
    b.add(
        r(
            "POST",
            "/v1/experiments/{id}/start",
            "feed",
            ADMIN,
            None,
            200,
            "start an experiment",
        ),
        feed_start,
    );
    b.add(
        r(
            "POST",
            "/v1/experiments/{id}/stop",
            "feed",
            ADMIN,
            Some("StopRequest"),
            200,
            "stop, optionally rolling out a winner",
        ),
        feed_stop,
    );
    b.add(
        r(
            "GET",
            "/v1/experiments/{id}/results",
            "feed",
            ADMIN,
            None,
            200,
            "results and statistics",
        ),
        feed_results,
    );
    b.add(
        r(
            "POST",
            "/v1/experiments/{id}/assign",
            "feed",
            CLIENT,
            Some("AssignRequest"),
            200,
            "the user's variant and config; records the exposure",
        ),
        feed_assign,
    );
    b.add(
        r(
            "POST",
            "/v1/events",
            "feed",
            CLIENT,
            Some("TrackEvent"),
            200,
            "record a metric event",
        ),
        feed_event,
    );
    // flag
    b.add(
        r(
            "GET",
            "/api/v1/flags",
            "flag",
            ADMIN,
            None,
            200,
            "list a project's flags (project_id)",
        ),
        flags_list,
    );
    b.add(
        r(
            "POST",
            "/api/v1/flags",
            "flag",
            ADMIN,
            Some("NewFlag"),
            201,
            "create a flag",
        ),
        flags_create,
    );
    b.add(
        r(
            "POST",
            "/api/v1/flags/evaluate",
            "flag",
            CLIENT,
            Some("EvaluateRequest"),
            200,
            "evaluate every flag of a project for a user; records exposures",
        ),
        flags_evaluate,
    );
    b.add(
        r(
            "POST",
            "/api/v1/flags/track",
            "flag",
            CLIENT,
            Some("TrackEvent"),
            200,
            "track a conversion (once per user and goal)",
        ),
        flags_track,
    );
    b.add(
        r(
            "GET",
            "/api/v1/flags/{id}",
            "flag",
            ADMIN,
            None,
            200,
            "get a flag",
        ),
        flags_get,
    );
    b.add(
        r(
            "PATCH",
            "/api/v1/flags/{id}",
            "flag",
            ADMIN,
            Some("FlagPatch"),
            200,
            "update a flag",
        ),
        flags_update,
    );
    b.add(
        r(
            "DELETE",
            "/api/v1/flags/{id}",
            "flag",
            ADMIN,
            None,
            200,
            "delete a flag",
        ),
        flags_delete,
    );
    b.add(
        r(
            "GET",
            "/api/v1/flags/{id}/experiments",
            "flag",
            ADMIN,
            None,
            200,
            "list a flag's experiments",
        ),
        flag_experiments_list,
    );
    b.add(
        r(
            "POST",
            "/api/v1/flags/{id}/experiments",
            "flag",
            ADMIN,
            Some("NewExperiment"),
            201,
            "attach an experiment to a flag",
        ),
        flag_experiments_create,
    );
    b.add(
        r(
            "GET",
            "/api/v1/flags/{id}/experiments/{eid}",
            "flag",
            ADMIN,
            None,
            200,
            "get a flag experiment with its conversions",
        ),
        flag_experiment_get,
    );
    b.add(
        r(
            "POST",
            "/api/v1/flags/{id}/experiments/{eid}/start",
            "flag",
            ADMIN,
            None,
            200,
            "start a flag experiment",
        ),
        flag_experiment_start,
    );
    b.add(
        r(
            "POST",
            "/api/v1/flags/{id}/experiments/{eid}/stop",
            "flag",
            ADMIN,
            Some("FlagStopRequest"),
            200,
            "stop a flag experiment",
        ),
        flag_experiment_stop,
    );
}

// ----- helpers -----

fn ok<T: serde::Serialize>(value: &T) -> Answer {
    Ok(json(StatusCode::OK, value))
}

fn created<T: serde::Serialize>(value: &T) -> Answer {
    Ok(json(StatusCode::CREATED, value))
}

fn with_etag(mut r: Response, version: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// The version an `If-Match` header names, if any.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .unwrap_or_default()
        .trim()
        .trim_start_matches("W/");
    s.trim_matches('"').parse().map(Some).map_err(|_| {
        ApiError::validation(&crate::model::validation::ValidationError::field(
            "If-Match",
            format!("{s:?} is not a version this server wrote (an ETag such as \"3\")"),
        ))
    })
}

/// A body that may be empty: `T::default()` then.
fn optional<T: serde::de::DeserializeOwned + Default>(b: &[u8]) -> Result<T, ApiError> {
    if b.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        wire::parse(b)
    }
}

/// Experiment `id` if `p` may see it; 404 otherwise (so ids of other projects don't leak).
fn experiment(lab: &Lab, p: &Principal, id: &str) -> Result<Versioned<Experiment>, ApiError> {
    let e = lab.experiments().get(id)?;
    if p.sees(e.project_id().map(|x| x.as_str())) {
        Ok(e)
    } else {
        Err(ApiError::not_found("experiment", id))
    }
}

fn flag_of(lab: &Lab, p: &Principal, id: &str) -> Result<Versioned<Flag>, ApiError> {
    let f = lab.flags().get(id)?;
    if p.sees(Some(f.project_id.as_str())) {
        Ok(f)
    } else {
        Err(ApiError::not_found("flag", id))
    }
}

/// Experiment `eid` of flag `id`, both visible to `p`.
fn flag_experiment(
    lab: &Lab,
    p: &Principal,
    id: &str,
    eid: &str,
) -> Result<Versioned<Experiment>, ApiError> {
    flag_of(lab, p, id)?;
    let e = experiment(lab, p, eid)?;
    if e.flag_id().is_some_and(|f| f.as_str() == id) {
        Ok(e)
    } else {
        Err(ApiError::not_found("experiment", eid))
    }
}

/// The project a create goes to: the key's; a body naming another answers 404.
fn bind_project(p: &Principal, given: &mut Option<String>) -> Result<(), ApiError> {
    match (&p.project, given.as_deref()) {
        (Some(mine), Some(other)) if mine != other => Err(ApiError::not_found("project", other)),
        (Some(mine), _) => {
            *given = Some(mine.clone());
            Ok(())
        }
        (None, _) => Ok(()),
    }
}

fn fresh_counts(e: Versioned<Experiment>) -> ExperimentWithCounts {
    let n = e.variants().len();
    ExperimentWithCounts {
        experiment: e,
        participants: vec![0; n],
        conversions: 0,
    }
}

fn list_query(p: &Principal, pairs: &[(String, String)]) -> Result<ListQuery, ApiError> {
    let mut q = wire::list_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    q.project.clone_from(&p.project);
    Ok(q)
}

/// What a unit is served by experiment `e`: running, its allocation (exposure recorded); stopped
/// or completed, the winner rolled out or else the variant it was enrolled in; otherwise none.
fn assignment(lab: &Lab, e: &Experiment, req: &AssignRequest) -> Result<Option<String>, Error> {
    let id = e.id().as_str();
    Ok(match e.status() {
        Status::Running => lab.expose(id, &req.context())?.map(|k| k.to_string()),
        Status::Stopped | Status::Completed => match e.winner() {
            Some(w) => Some(w.to_string()),
            None => lab
                .events()
                .enrolled(id, &req.user_id)?
                .map(|k| k.to_string()),
        },
        _ => None,
    })
}

/// Records `event` for `p`'s project.
fn track(lab: &Lab, p: &Principal, event: &TrackEvent) -> Result<(), ApiError> {
    experiment(lab, p, &event.experiment_id)?;
    lab.events().track(event)?;
    Ok(())
}

/// `value` in `{"data": …}` with its version as `ETag`.
fn tagged<T: serde::Serialize>(value: &T, version: u64) -> Response {
    with_etag(json(StatusCode::OK, &Data::new(value)), version)
}

/// Runs `f` on the blocking pool with experiment `id`, once `p` may see it.
async fn on_experiment<T, F>(s: &AppState, p: Key, id: String, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Lab, Versioned<Experiment>) -> Result<T, ApiError> + Send + 'static,
{
    blocking(s, move |lab| {
        let e = experiment(lab, &p, &id)?;
        f(lab, e)
    })
    .await
}

/// Experiment `id`, visible to `p`, with its counts.
async fn counted(s: &AppState, p: Key, id: String) -> Result<ExperimentWithCounts, ApiError> {
    on_experiment(s, p, id, |lab, e| Ok(lab.reports().counts_of(e)?)).await
}

/// Assigns the body's user in experiment `id` (see [`assignment`]) and answers with `answer`.
async fn assign_with<T, F>(s: &AppState, p: Key, id: String, b: Body, answer: F) -> Answer
where
    T: serde::Serialize + Send + 'static,
    F: FnOnce(&Experiment, &str, Option<&str>) -> Data<T> + Send + 'static,
{
    let req: AssignRequest = wire::parse(&body(b)?)?;
    let data = blocking(s, move |lab| {
        let e = experiment(lab, &p, &id)?;
        let v = assignment(lab, &e, &req)?;
        Ok(answer(&e, &req.user_id, v.as_deref()))
    })
    .await?;
    ok(&data)
}

/// Runs delete `f` on `id` and answers `{"data": {"id", "deleted": true}}`.
async fn delete_with<F>(s: &AppState, id: String, f: F) -> Answer
where
    F: FnOnce(&Lab, &str) -> Result<(), ApiError> + Send + 'static,
{
    let answer = feed::Deleted::new(&id);
    blocking(s, move |lab| f(lab, &id)).await?;
    ok(&answer)
}

// ----- service -----

async fn health() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

async fn audiences_list(State(s): State<AppState>) -> Answer {
    let all = blocking(&s, |lab| Ok(lab.targeting().list_audiences()?)).await?;
    ok(&Data::new(
        all.iter().map(|a| &**a).collect::<Vec<&Audience>>(),
    ))
}

async fn audiences_put(State(s): State<AppState>, Extension(p): Extension<Key>, b: Body) -> Answer {
    shared_write(&p)?;
    let a: Audience = wire::parse(&body(b)?)?;
    let a = blocking(&s, move |lab| Ok(lab.targeting().put_audience(a)?)).await?;
    created(&Data::new(&*a))
}

async fn audiences_get(State(s): State<AppState>, Path(id): Path<String>) -> Answer {
    let a = blocking(&s, move |lab| Ok(lab.targeting().get_audience(&id)?)).await?;
    Ok(with_etag(
        json(StatusCode::OK, &Data::new(&*a)),
        a.version(),
    ))
}

async fn audiences_delete(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    shared_write(&p)?;
    delete_with(&s, id, |lab, id| Ok(lab.targeting().delete_audience(id)?)).await
}

/// Audiences are shared by every project (any admin key reads them, to name one in an
/// experiment); only an instance-wide key changes them, so no project can alter another's
/// targeting.
fn shared_write(p: &Principal) -> Result<(), ApiError> {
    if p.project.is_none() {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            "forbidden",
            "audiences are shared by every project: change them with an instance-wide admin key",
        ))
    }
}

fn instance_admin(p: &Principal) -> Result<(), ApiError> {
    if p.project.is_none() {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            "forbidden",
            "api keys are managed with an instance-wide admin key",
        ))
    }
}

async fn keys_list(State(s): State<AppState>, Extension(p): Extension<Key>) -> Answer {
    instance_admin(&p)?;
    let keys = s.keys.clone();
    let all = blocking(&s, move |_| Ok(keys.list()?)).await?;
    ok(&Data::new(all))
}

async fn keys_create(State(s): State<AppState>, Extension(p): Extension<Key>, b: Body) -> Answer {
    instance_admin(&p)?;
    let new: NewApiKey = wire::parse(&body(b)?)?;
    let keys = s.keys.clone();
    let (key, token) = blocking(&s, move |_| Ok(keys.create(new)?)).await?;
    #[derive(serde::Serialize)]
    struct Created {
        #[serde(flatten)]
        key: super::ApiKey,
        token: String,
    }
    created(&Data::new(Created { key, token }))
}

async fn keys_revoke(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    instance_admin(&p)?;
    let keys = s.keys.clone();
    delete_with(&s, id, move |_, id| Ok(keys.revoke(id)?)).await
}

// ----- flow -----

async fn flow_list(State(s): State<AppState>, Extension(p): Extension<Key>, q: Q) -> Answer {
    let q = list_query(&p, &query(q)?)?;
    let page = blocking(&s, move |lab| Ok(lab.reports().list_with_counts(&q)?)).await?;
    ok(&flow::experiments_page(page))
}

async fn flow_create(State(s): State<AppState>, Extension(p): Extension<Key>, b: Body) -> Answer {
    let mut new: NewExperiment = wire::parse(&body(b)?)?;
    bind_project(&p, &mut new.project_id)?;
    let e = blocking(&s, move |lab| Ok(lab.experiments().create(new)?)).await?;
    let v = e.version();
    Ok(with_etag(
        json(
            StatusCode::CREATED,
            &Data::new(flow::FlowExperiment::detail(&fresh_counts(e))),
        ),
        v,
    ))
}

async fn flow_get(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    let c = counted(&s, p, id).await?;
    Ok(tagged(
        &flow::FlowExperiment::detail(&c),
        c.experiment.version(),
    ))
}

async fn update_experiment(
    s: &AppState,
    p: Key,
    id: String,
    headers: &HeaderMap,
    b: Body,
) -> Result<ExperimentWithCounts, ApiError> {
    let patch: ExperimentPatch = wire::parse(&body(b)?)?;
    let version = if_match(headers)?;
    blocking(s, move |lab| {
        experiment(lab, &p, &id)?;
        let e = match version {
            Some(v) => lab.experiments().update(&id, v, patch)?,
            None => lab.experiments().update_latest(&id, patch)?,
        };
        Ok(fresh_counts(e))
    })
    .await
}

async fn flow_update(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Answer {
    let c = update_experiment(&s, p, id, &headers, b).await?;
    Ok(tagged(
        &flow::FlowExperiment::detail(&c),
        c.experiment.version(),
    ))
}

/// Runs lifecycle verb `f` on experiment `id` and answers with its counts.
async fn transition<F>(
    s: &AppState,
    p: Key,
    id: String,
    f: F,
) -> Result<ExperimentWithCounts, ApiError>
where
    F: FnOnce(&Lab, &str) -> Result<Versioned<Experiment>, Error> + Send + 'static,
{
    let e = verb(s, p, id, f).await?;
    blocking(s, move |lab| Ok(lab.reports().counts_of(e)?)).await
}

/// Runs lifecycle verb `f` on experiment `id` (visible to `p`); answers with the experiment
/// alone, for answers that carry no counts (the feed API's start and stop).
async fn verb<F>(s: &AppState, p: Key, id: String, f: F) -> Result<Versioned<Experiment>, ApiError>
where
    F: FnOnce(&Lab, &str) -> Result<Versioned<Experiment>, Error> + Send + 'static,
{
    on_experiment(s, p, id, move |lab, e| Ok(f(lab, e.id().as_str())?)).await
}

async fn flow_archive(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    let c = transition(&s, p, id, |lab, id| lab.experiments().archive(id)).await?;
    ok(&Data::new(flow::FlowExperiment::detail(&c)))
}

async fn flow_start(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    let c = transition(&s, p, id, |lab, id| lab.experiments().start(id)).await?;
    ok(&Data::new(flow::FlowExperiment::detail(&c)))
}

async fn flow_stop(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
    b: Body,
) -> Answer {
    let req: crate::control::experiments::StopRequest = optional(&body(b)?)?;
    let c = transition(&s, p, id, move |lab, id| lab.experiments().stop(id, req)).await?;
    ok(&Data::new(flow::FlowExperiment::detail(&c)))
}

async fn flow_results(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    let r = on_experiment(&s, p, id, |lab, e| {
        Ok(flow::Results::new(lab.reports().results(e.id().as_str())?))
    })
    .await?;
    ok(&r)
}

async fn flow_compute(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    let r = on_experiment(&s, p, id, |lab, e| {
        Ok(flow::Computed::new(
            lab.reports().compute_results(e.id().as_str())?,
        ))
    })
    .await?;
    ok(&r)
}

async fn flow_assign(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
    b: Body,
) -> Answer {
    assign_with(&s, p, id, b, flow::Assigned::new).await
}

async fn flow_convert(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
    b: Body,
) -> Answer {
    let req: flow::ConversionRequest = wire::parse(&body(b)?)?;
    let event = req.event(&id);
    blocking(&s, move |lab| track(lab, &p, &event)).await?;
    ok(&Data::new(Acknowledged { ok: true }))
}

// ----- feed -----

async fn feed_list(State(s): State<AppState>, Extension(p): Extension<Key>, q: Q) -> Answer {
    let q = list_query(&p, &query(q)?)?;
    let page = blocking(&s, move |lab| Ok(lab.experiments().list(&q)?)).await?;
    ok(&feed::List {
        data: page
            .items
            .iter()
            .map(|e| feed::FeedExperiment::summary(e))
            .collect(),
        meta: feed::ListMeta { total: page.total },
    })
}

async fn feed_create(State(s): State<AppState>, Extension(p): Extension<Key>, b: Body) -> Answer {
    let mut new = feed::create_request(&body(b)?)?;
    bind_project(&p, &mut new.project_id)?;
    let e = blocking(&s, move |lab| Ok(lab.experiments().create(new)?)).await?;
    Ok(with_etag(
        json(
            StatusCode::CREATED,
            &Data::new(feed::FeedExperiment::created(&e)),
        ),
        e.version(),
    ))
}

async fn feed_get(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    let c = counted(&s, p, id).await?;
    Ok(tagged(
        &feed::FeedExperiment::detail(&c),
        c.experiment.version(),
    ))
}

async fn feed_update(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Answer {
    let c = update_experiment(&s, p, id, &headers, b).await?;
    Ok(tagged(
        &feed::FeedExperiment::detail(&c),
        c.experiment.version(),
    ))
}

async fn feed_delete(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    delete_with(&s, id, move |lab, id| {
        experiment(lab, &p, id)?;
        Ok(lab.experiments().delete(id)?)
    })
    .await
}

async fn feed_start(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    let e = verb(&s, p, id, |lab, id| lab.experiments().start(id)).await?;
    ok(&feed::Started::new(&e))
}

async fn feed_stop(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
    b: Body,
) -> Answer {
    let req: crate::control::experiments::StopRequest = optional(&body(b)?)?;
    let e = verb(&s, p, id, move |lab, id| lab.experiments().stop(id, req)).await?;
    ok(&feed::Stopped::new(&e))
}

async fn feed_results(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    let a = on_experiment(&s, p, id, |lab, e| {
        Ok(lab
            .reports()
            .analyze(e.id().as_str(), &AnalysisOptions::default())?)
    })
    .await?;
    ok(&feed::results(a))
}

async fn feed_assign(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
    b: Body,
) -> Answer {
    assign_with(&s, p, id, b, feed::Assigned::new).await
}

async fn feed_event(State(s): State<AppState>, Extension(p): Extension<Key>, b: Body) -> Answer {
    let event: TrackEvent = wire::parse(&body(b)?)?;
    blocking(&s, move |lab| {
        let e = experiment(lab, &p, &event.experiment_id)?;
        lab.events().track(&feed::event(event, &e))?;
        Ok(())
    })
    .await?;
    ok(&Data::new(Acknowledged { ok: true }))
}

// ----- flag -----

async fn flags_list(State(s): State<AppState>, Extension(p): Extension<Key>, q: Q) -> Answer {
    let mut project = p.project.clone();
    for (k, v) in query(q)? {
        match k.as_str() {
            "project_id" => {
                if !p.sees(Some(&v)) {
                    return Err(ApiError::not_found("project", &v));
                }
                project = Some(v);
            }
            other => {
                return Err(ApiError::validation(
                    &crate::model::validation::ValidationError::field(
                        other,
                        format!("unknown query parameter {other:?}; expected project_id"),
                    ),
                ));
            }
        }
    }
    let Some(project) = project else {
        return Err(ApiError::validation(
            &crate::model::validation::ValidationError::field(
                "project_id",
                "project_id is required with an instance-wide key",
            ),
        ));
    };
    let flags = blocking(&s, move |lab| Ok(lab.flags().list(&project)?)).await?;
    ok(&Data::new(
        flags
            .iter()
            .map(|f| flag::FlagPayload::from(&**f))
            .collect::<Vec<_>>(),
    ))
}

async fn flags_create(State(s): State<AppState>, Extension(p): Extension<Key>, b: Body) -> Answer {
    let mut new: NewFlag = wire::parse(&body(b)?)?;
    let mut project = Some(std::mem::take(&mut new.project_id));
    bind_project(&p, &mut project)?;
    new.project_id = project.unwrap_or_default();
    let f = blocking(&s, move |lab| Ok(lab.flags().create(new)?)).await?;
    Ok(with_etag(
        json(
            StatusCode::CREATED,
            &Data::new(flag::FlagPayload::from(&*f)),
        ),
        f.version(),
    ))
}

async fn flags_get(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    let f = blocking(&s, move |lab| flag_of(lab, &p, &id)).await?;
    Ok(with_etag(
        json(StatusCode::OK, &Data::new(flag::FlagPayload::from(&*f))),
        f.version(),
    ))
}

async fn flags_update(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Answer {
    let patch: FlagPatch = wire::parse(&body(b)?)?;
    let version = if_match(&headers)?;
    let f = blocking(&s, move |lab| {
        flag_of(lab, &p, &id)?;
        Ok(match version {
            Some(v) => lab.flags().update(&id, v, patch)?,
            None => lab.flags().update_latest(&id, patch)?,
        })
    })
    .await?;
    Ok(with_etag(
        json(StatusCode::OK, &Data::new(flag::FlagPayload::from(&*f))),
        f.version(),
    ))
}

async fn flags_delete(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    delete_with(&s, id, move |lab, id| {
        flag_of(lab, &p, id)?;
        Ok(lab.flags().delete(id)?)
    })
    .await
}

async fn flag_experiments_list(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
) -> Answer {
    let all = blocking(&s, move |lab| {
        flag_of(lab, &p, &id)?;
        let mut out = Vec::new();
        let mut q = ListQuery {
            limit: 100,
            flag: Some(id),
            ..ListQuery::default()
        };
        loop {
            let page = lab.reports().list_with_counts(&q)?;
            out.extend(page.items.iter().map(flag::FlagExperiment::from));
            if u64::from(q.page) >= page.total_pages {
                break;
            }
            q.page += 1;
        }
        Ok(out)
    })
    .await?;
    ok(&Data::new(all))
}

async fn flag_experiments_create(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path(id): Path<String>,
    b: Body,
) -> Answer {
    let new: NewExperiment = wire::parse(&body(b)?)?;
    let e = blocking(&s, move |lab| {
        flag_of(lab, &p, &id)?;
        Ok(lab.flags().create_experiment(&id, new)?)
    })
    .await?;
    created(&Data::new(flag::FlagExperiment::from(&fresh_counts(e))))
}

async fn flag_experiment_get(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path((id, eid)): Path<(String, String)>,
) -> Answer {
    let c = blocking(&s, move |lab| {
        let e = flag_experiment(lab, &p, &id, &eid)?;
        Ok(lab.reports().counts_of(e)?)
    })
    .await?;
    let v = c.experiment.version();
    Ok(with_etag(
        json(StatusCode::OK, &Data::new(flag::FlagExperiment::from(&c))),
        v,
    ))
}

async fn flag_experiment_start(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path((id, eid)): Path<(String, String)>,
) -> Answer {
    let e = blocking(&s, move |lab| {
        flag_experiment(lab, &p, &id, &eid)?;
        Ok(lab.experiments().start(&eid)?)
    })
    .await?;
    ok(&flag::StatusAnswer::new(&e))
}

async fn flag_experiment_stop(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    Path((id, eid)): Path<(String, String)>,
    b: Body,
) -> Answer {
    let req: flag::StopRequest = optional(&body(b)?)?;
    let e = blocking(&s, move |lab| {
        flag_experiment(lab, &p, &id, &eid)?;
        let stop = crate::control::experiments::StopRequest {
            winner: req.winner,
            reason: req.reason,
        };
        Ok(lab.flags().stop_experiment(&eid, stop, req.promote)?)
    })
    .await?;
    ok(&flag::StatusAnswer::new(&e))
}

/// An exposure evaluate implies, owned so it can cross to the blocking pool.
struct PendingExposure {
    experiment: crate::model::ids::ExperimentId,
    unit: String,
    variant: crate::model::ids::VariantKey,
    index: u32,
    forced: bool,
}

async fn flags_evaluate(
    State(s): State<AppState>,
    Extension(p): Extension<Key>,
    b: Body,
) -> Answer {
    let req: flag::EvaluateRequest = wire::parse(&body(b)?)?;
    if !p.sees(Some(&req.project_id)) {
        return Err(ApiError::not_found("project", &req.project_id));
    }
    if !p.may_evaluate(&req.environment) {
        return Err(ApiError::not_found("environment", &req.environment));
    }
    // The decision: inline, no I/O. Exposures are recorded before answering, so a track that
    // follows the answer finds the unit enrolled.
    let (bytes, pending) = {
        let all = s
            .lab
            .evaluate_all(&req.project_id, &req.environment, &req.context);
        let mut bytes = Vec::with_capacity(64 * all.len() + 16);
        flag::EvaluateResponse(&all).write_json(&mut bytes);
        let pending: Vec<PendingExposure> = all
            .exposures()
            .map(|x| PendingExposure {
                experiment: x.experiment_id.clone(),
                unit: x.unit_id.to_owned(),
                variant: x.variant.clone(),
                index: x.variant_index,
                forced: x.forced,
            })
            .collect();
        (bytes, pending)
    };
    if !pending.is_empty() {
        blocking(&s, move |lab| {
            for x in &pending {
                lab.events()
                    .record(&crate::decision::experiment::Exposure {
                        experiment_id: &x.experiment,
                        unit_id: &x.unit,
                        variant: &x.variant,
                        variant_index: x.index,
                        forced: x.forced,
                    })?;
            }
            Ok(())
        })
        .await?;
    }
    Ok(json_bytes(StatusCode::OK, bytes))
}

async fn flags_track(State(s): State<AppState>, Extension(p): Extension<Key>, b: Body) -> Answer {
    let event: TrackEvent = wire::parse(&body(b)?)?;
    blocking(&s, move |lab| track(lab, &p, &event)).await?;
    ok(&Data::new(Acknowledged { ok: true }))
}
