//! The OpenAPI 3.1 document of every route, built from the same [`Route`] list the router
//! registers (so a route cannot be served undocumented), served at `/openapi.json`.

use serde_json::{Map, Value, json};

use super::{Route, Scope};

/// The request bodies' schemas, by the name a [`Route::body`] gives.
const SCHEMAS: [(&str, &str); 13] = [
    (
        "Audience",
        "{id, name, condition}: a named targeting condition",
    ),
    (
        "NewApiKey",
        "{name, project, environment, scope: admin|client}",
    ),
    (
        "NewExperiment",
        "an experiment as the flow or flag document writes it: name, description, type, audienceId, variants [{name, splitPercentage | percentage, flowId, config, key, value}]",
    ),
    (
        "FeedNewExperiment",
        "the feed document's create body: name, description, type, traffic (0.0-1.0), variants [{id, name, traffic, config}], metrics, targetingRules",
    ),
    (
        "ExperimentPatch",
        "a partial update of a draft: any of name, description, type, audienceId, targeting, traffic, variants, metrics",
    ),
    ("StopRequest", "{winner?, reason?}; the body may be empty"),
    (
        "FlagStopRequest",
        "{winner?, reason?, promote?}; the body may be empty",
    ),
    ("AssignRequest", "{userId, attributes}"),
    (
        "ConversionRequest",
        "{userId, goal?, value?, eventId?, timestamp?}",
    ),
    (
        "TrackEvent",
        "{experimentId | experiment_id, userId | user_id, metric | goal, value?, denominator?, eventId?, timestamp?, flag_id?}",
    ),
    (
        "NewFlag",
        "{project_id, key, name, flag_type, default_value, description, enabled, environment, rules}",
    ),
    (
        "FlagPatch",
        "{name?, description?, default_value?, enabled?, rules?}",
    ),
    (
        "EvaluateRequest",
        "{project_id, environment, context: {user_id, ...attributes}}",
    ),
];

fn params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
        })
        .collect()
}

fn operation(r: &Route) -> Value {
    let mut responses = Map::new();
    responses.insert(r.success.to_string(), json!({"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}}));
    let errors: &[(&str, &str)] = &[
        (
            "400",
            "validation: the message names the field and the value",
        ),
        ("401", "no or an unknown api key"),
        ("403", "the key's scope does not allow this route"),
        ("404", "not found, or another project's"),
        ("409", "lifecycle, version or exclusivity conflict"),
        ("413", "body too large"),
        ("422", "the body is not JSON of the route's shape"),
        ("503", "storage unavailable or the request timed out"),
    ];
    for (status, description) in errors {
        if r.scope.is_none() && matches!(*status, "401" | "403") {
            continue;
        }
        responses.insert(
            (*status).to_owned(),
            json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    let mut op = json!({
        "summary": r.summary,
        "tags": [r.tag],
        "operationId": format!("{} {}", r.method, r.path),
        "parameters": params(r.path),
        "responses": responses,
    });
    if let Some(o) = op.as_object_mut() {
        match r.scope {
            None => {
                o.insert("security".into(), json!([]));
            }
            Some(scope) => {
                o.insert("security".into(), json!([{"bearer": []}]));
                o.insert(
                    "x-abkit-scope".into(),
                    json!(match scope {
                        Scope::Admin => "admin",
                        Scope::Client => "client",
                    }),
                );
            }
        }
        if let Some(body) = r.body {
            o.insert(
                "requestBody".into(),
                json!({"required": !matches!(body, "StopRequest" | "FlagStopRequest"),
                       "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}}),
            );
        }
        if r.path.ends_with("/experiments") && r.method == "GET" && !r.path.contains("flags") {
            o.insert(
                "parameters".into(),
                json!([
                    {"name": "page", "in": "query", "schema": {"type": ["string", "integer"], "default": "1"}},
                    {"name": "limit", "in": "query", "schema": {"type": ["string", "integer"], "default": "20"}},
                    {"name": "status", "in": "query", "schema": {"enum": ["draft", "running", "stopped", "completed", "archived"]}}
                ]),
            );
        }
    }
    op
}

/// The document for `routes` (plus `/openapi.json` itself).
pub fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for r in routes {
        let entry = paths
            .entry(r.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(o) = entry.as_object_mut() {
            o.insert(r.method.to_ascii_lowercase(), operation(r));
        }
    }
    paths.insert(
        "/openapi.json".into(),
        json!({"get": {"summary": "this document", "tags": ["service"], "operationId": "GET /openapi.json", "security": [],
                       "responses": {"200": {"description": "the OpenAPI 3.1 document"}}}}),
    );
    let mut schemas = Map::new();
    for (name, description) in SCHEMAS {
        schemas.insert(
            name.into(),
            json!({"type": "object", "description": description}),
        );
    }
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
            "required": ["code", "message", "field"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": ["string", "null"]}}}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "abkit",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The flow (/api/experiments), feed (/v1/experiments) and flag (/api/v1/flags) experiment APIs, served by abkit."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas
        }
    })
}
