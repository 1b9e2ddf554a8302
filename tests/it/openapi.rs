//! The OpenAPI document at `GET /api/v1/openapi.json` against the code:
//! every route of the API's router has an operation (and its access rule),
//! every operation is a route, the records' schemas list their fields, and
//! real answers carry the fields their documented schemas name, and no
//! others. A route added without its `#[utoipa::path]` fails here.

use crate::access::{agent, InProcess};
use crate::common::system::GitRepo;
use constructicon::http::guard::Need;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const CYBERTRON: &str = r#"cybertron = #{
    workers: #{ w1: #{} },
    resources: ["db"],
    repos: #{ allow: ["/*"] },
    access: #{ anonymous: "none", people: #{ vic: "viewer" } },
};"#;

const REPO: &str = r#"constructicon = #{
    builders: #{
        basic: #{
            commands: ["true"],
            schedulers: ["force"],
            resources: ["db"],
            upload: #{ "out/docs": "docs" },
            url: #{ "docs": "index.html" },
        },
    },
    schedulers: #{ force: #{ type: "force", parameters: #{ p: "x" } } },
};"#;

/// The methods an OpenAPI path item may hold.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// Sends `method path` with the bearer `token` (if any) and a JSON body.
fn call(
    server: &InProcess,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, String, String) {
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", server.url));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let bytes = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            serde_json::to_vec(body).expect("json")
        }
        None => Vec::new(),
    };
    let mut response = agent()
        .run(request.body(bytes).expect("request"))
        .expect("the megatron answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, content_type, text)
}

/// The document, as anyone gets it.
fn fetch_document(server: &InProcess) -> Value {
    let (status, content_type, text) = call(server, "GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    serde_json::from_str(&text).expect("the document is JSON")
}

/// Every operation of the document: (METHOD, path) → operation.
fn operations(document: &Value) -> BTreeMap<(String, String), Value> {
    let mut found = BTreeMap::new();
    let paths = document["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for method in METHODS {
            if let Some(operation) = item.get(*method) {
                found.insert((method.to_uppercase(), path.clone()), operation.clone());
            }
        }
    }
    found
}

fn schema<'d>(document: &'d Value, name: &str) -> &'d Value {
    let schema = &document["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

#[test]
fn the_document_is_public_json_named_constructicon() {
    let server = InProcess::start(CYBERTRON);
    // Anonymous callers may see nothing else.
    let (status, _, _) = call(&server, "GET", "/api/v1/builders", None, None);
    assert_eq!(status, 401);
    let document = fetch_document(&server);
    let version = document["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert_eq!(document["info"]["title"], "constructicon");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
}

/// The test that fails when a route is added undocumented, or a documented
/// one removed: the document and the router's own table, both ways.
#[test]
fn every_route_is_documented_and_every_operation_is_a_route() {
    let server = InProcess::start(CYBERTRON);
    let document = fetch_document(&server);
    let documented = operations(&document);
    let routes = constructicon::http::route_table(server.state.clone());
    assert!(routes.len() >= 38, "{} routes", routes.len());

    let mut problems = Vec::new();
    let mut routed = BTreeSet::new();
    for route in &routes {
        // axum's `{*path}` wildcard is `{path}` in OpenAPI.
        let path = route.path.replace("{*", "{");
        let key = (route.method.as_str().to_string(), path.clone());
        routed.insert(key.clone());
        let Some(operation) = documented.get(&key) else {
            problems.push(format!(
                "{} {}: no operation in the document: annotate its handler with #[utoipa::path] and list it in src/http/openapi.rs",
                route.method, route.path
            ));
            continue;
        };
        let name = format!("{} {}", route.method, route.path);
        // Each `{name}` of the path is a path parameter, and no other is.
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_string)
            .collect();
        let parameters: BTreeSet<String> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect();
        if in_path != parameters {
            problems.push(format!(
                "{name}: path parameters {in_path:?}, documented {parameters:?}"
            ));
        }
        if !operation["responses"]
            .as_object()
            .is_some_and(|r| r.keys().any(|s| s.starts_with('2')))
        {
            problems.push(format!("{name}: no success response"));
        }
        // Who may call it, from the route's rule.
        let description = operation["description"].as_str().unwrap_or("");
        if !description.contains("**Access**") {
            problems.push(format!(
                "{name}: the description does not say who may call it"
            ));
        }
        let security = &operation["security"];
        let expected = match route.need {
            Need::Public | Need::Webhook => json!([]),
            Need::Worker => json!([{ "worker_name": [], "worker_token": [] }]),
            Need::Role(role) => {
                json!([{ "token": [role.as_str()] }, { "session": [role.as_str()] }])
            }
        };
        if *security != expected {
            problems.push(format!("{name}: security {security}, expected {expected}"));
        }
        if matches!(route.need, Need::Role(_)) {
            for status in ["401", "403"] {
                if operation["responses"][status].is_null() {
                    problems.push(format!("{name}: no {status} response"));
                }
            }
        }
    }
    for (method, path) in documented.keys() {
        if !routed.contains(&(method.clone(), path.clone())) {
            problems.push(format!(
                "{method} {path}: documented, but the router has no such route"
            ));
        }
    }
    let mut ids = BTreeSet::new();
    for ((method, path), operation) in &documented {
        let id = operation["operationId"].as_str().unwrap_or("");
        if id.is_empty() || !ids.insert(id.to_string()) {
            problems.push(format!(
                "{method} {path}: operationId {id:?} is missing or taken"
            ));
        }
    }
    // Every `$ref` points at something in the document.
    let mut references = Vec::new();
    collect_refs(&document, &mut references);
    for reference in references {
        let found = reference
            .strip_prefix('#')
            .and_then(|pointer| document.pointer(pointer));
        if found.is_none() {
            problems.push(format!("$ref {reference} points at nothing"));
        }
    }
    // The security schemes the operations name exist.
    for scheme in ["token", "session", "worker_token", "worker_name"] {
        if document["components"]["securitySchemes"][scheme].is_null() {
            problems.push(format!("no security scheme {scheme}"));
        }
    }
    assert!(
        problems.is_empty(),
        "the document and the router disagree:\n{}",
        problems.join("\n")
    );

    // The badge is an image, the log is text.
    let badge = &documented[&("GET".to_string(), "/badge/{builder}".to_string())];
    assert!(
        badge["responses"]["200"]["content"]["image/svg+xml"].is_object(),
        "{badge}"
    );
    let log = &documented[&(
        "GET".to_string(),
        "/api/v1/builds/{id}/steps/{step}/log".to_string(),
    )];
    assert!(
        log["responses"]["200"]["content"]["text/plain"].is_object(),
        "{log}"
    );
}

fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(reference)) => into.push(reference.clone()),
                    _ => collect_refs(inner, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, into)),
        _ => {}
    }
}

#[test]
fn the_records_schemas_list_their_fields() {
    let server = InProcess::start(CYBERTRON);
    let document = fetch_document(&server);
    let build = schema(&document, "BuildRecord");
    let properties = build["properties"].as_object().expect("properties");
    for field in [
        "id",
        "number",
        "builder",
        "repo",
        "revision",
        "branch",
        "parameters",
        "state",
        "result",
        "reason",
        "result_reason",
        "by",
        "cancelled_by",
        "worker",
        "attempts",
        "created",
        "started",
        "finished",
        "steps",
        "revisions",
        "pins",
        "provenance",
        "spec",
        "got",
    ] {
        assert!(properties.contains_key(field), "BuildRecord lacks {field}");
    }
    assert!(
        !properties.contains_key("lease"),
        "the lease is never in an answer"
    );
    assert_eq!(
        schema(&document, "BuildResult")["enum"],
        json!(["success", "warnings", "failure", "exception", "cancelled"])
    );
    assert_eq!(
        schema(&document, "BuildState")["enum"],
        json!(["queued", "running", "finished"])
    );
    let step = schema(&document, "StepRecord")["properties"]
        .as_object()
        .expect("properties");
    for field in [
        "name",
        "command",
        "result",
        "exit_code",
        "started",
        "finished",
    ] {
        assert!(step.contains_key(field), "StepRecord lacks {field}");
    }
    let provenance = schema(&document, "Provenance")["properties"]
        .as_object()
        .expect("properties");
    for field in [
        "config_commit",
        "config_hash",
        "cybertron_hash",
        "graph_version",
        "system_version",
    ] {
        assert!(provenance.contains_key(field), "Provenance lacks {field}");
    }
    // A build's answer adds its artifacts and links to the record.
    let detail = serde_json::to_string(schema(&document, "BuildDetail")).expect("json");
    for part in ["#/components/schemas/BuildRecord", "artifacts", "links"] {
        assert!(detail.contains(part), "BuildDetail: {detail}");
    }
}

/// The object schema `schema` stands for, `$ref`s followed and `allOf`
/// merged: its properties, required names, and whether other keys may be
/// there. A `oneOf` of objects offers the properties of every branch.
fn object_shape(
    document: &Value,
    schema: &Value,
) -> (BTreeMap<String, Value>, BTreeSet<String>, bool) {
    let schema = resolve(document, schema);
    let mut properties = BTreeMap::new();
    let mut required = BTreeSet::new();
    let mut open = schema
        .get("additionalProperties")
        .is_some_and(|a| *a != json!(false))
        || (schema.get("properties").is_none()
            && schema.get("allOf").is_none()
            && schema.get("oneOf").is_none());
    if let Some(own) = schema["properties"].as_object() {
        properties.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if let Some(own) = schema["required"].as_array() {
        required.extend(own.iter().filter_map(|r| r.as_str().map(str::to_string)));
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r, o) = object_shape(document, part);
        properties.extend(p);
        required.extend(r);
        open |= o;
    }
    if let Some(branches) = schema["oneOf"].as_array() {
        // A property several branches have may take any of their schemas.
        let mut offered: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for branch in branches {
            let (p, _, o) = object_shape(document, branch);
            for (name, property) in p {
                offered.entry(name).or_default().push(property);
            }
            open |= o;
        }
        for (name, mut schemas) in offered {
            let property = match schemas.len() {
                1 => schemas.remove(0),
                _ => json!({ "oneOf": schemas }),
            };
            properties.insert(name, property);
        }
    }
    (properties, required, open)
}

fn resolve<'d>(document: &'d Value, schema: &'d Value) -> &'d Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("a $ref out of the document: {reference}"));
            resolve(document, schema_of(document, name))
        }
        None => schema,
    }
}

fn schema_of<'d>(document: &'d Value, name: &str) -> &'d Value {
    &document["components"]["schemas"][name]
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

/// What in `value` does not fit `schema`, each with where it is.
fn misfits(document: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(document, schema);
    if let Some(branches) = schema["oneOf"].as_array() {
        let fits: Vec<Vec<String>> = branches
            .iter()
            .map(|b| misfits(document, b, value, at))
            .collect();
        if fits.iter().any(Vec::is_empty) {
            return Vec::new();
        }
        return vec![format!("{at}: fits no branch of {schema}: {fits:?}")];
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
        return vec![format!("{at}: {value} is not {types:?}")];
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            return vec![format!("{at}: {value} is not one of {allowed:?}")];
        }
    }
    let mut problems = Vec::new();
    match value {
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    problems.extend(misfits(document, item_schema, item, &format!("{at}[{i}]")));
                }
            }
        }
        Value::Object(object) => {
            let (properties, required, open) = object_shape(document, schema);
            for name in &required {
                if !object.contains_key(name) {
                    problems.push(format!("{at}: lacks the required {name}"));
                }
            }
            for (key, field) in object {
                let at = format!("{at}.{key}");
                match properties.get(key) {
                    Some(field_schema) => {
                        problems.extend(misfits(document, field_schema, field, &at))
                    }
                    None if open => {
                        if let Some(values) = schema.get("additionalProperties") {
                            if values.is_object() {
                                problems.extend(misfits(document, values, field, &at));
                            }
                        }
                    }
                    None => problems.push(format!("{at}: not in the documented schema")),
                }
            }
        }
        _ => {}
    }
    problems
}

/// Real answers, of the routes that answer JSON, against the schema the
/// document gives for their status.
#[test]
fn answers_fit_their_documented_schemas() {
    let server = InProcess::start(CYBERTRON);
    let admin = server.admin_token();
    let repo = GitRepo::new("hello", REPO);
    let document = fetch_document(&server);

    let mut problems = Vec::new();
    let mut check = |method: &str, path: &str, template: &str, body: Option<Value>| -> Value {
        let (status, content_type, text) = call(&server, method, path, Some(&admin), body.as_ref());
        assert!(
            content_type.starts_with("application/json"),
            "{method} {path}: {status} {content_type}: {text}"
        );
        let answer: Value = serde_json::from_str(&text).expect("a JSON answer");
        let operation = &document["paths"][template][method.to_lowercase()];
        let documented =
            &operation["responses"][status.to_string()]["content"]["application/json"]["schema"];
        if documented.is_null() {
            problems.push(format!(
                "{method} {path}: status {status} is not documented: {text}"
            ));
        } else {
            problems.extend(misfits(
                &document,
                documented,
                &answer,
                &format!("{method} {path} ({status})"),
            ));
        }
        answer
    };

    let added = check(
        "POST",
        "/api/v1/repos",
        "/api/v1/repos",
        Some(json!({ "url": repo.url() })),
    );
    assert_eq!(added["builders"], json!(["hello-basic"]), "{added}");
    check("GET", "/api/v1/repos", "/api/v1/repos", None);
    check("GET", "/api/v1/repos/hello", "/api/v1/repos/{repo}", None);
    let forced = check(
        "POST",
        "/api/v1/builders/hello-basic/force",
        "/api/v1/builders/{name}/force",
        Some(json!({ "parameters": { "p": "y" } })),
    );
    let id = forced["build"].as_u64().expect("a build id");
    check("GET", "/api/v1/builders", "/api/v1/builders", None);
    let builder = check(
        "GET",
        "/api/v1/builders/hello-basic",
        "/api/v1/builders/{name}",
        None,
    );
    assert_eq!(builder["workers"], json!(["w1"]), "{builder}");
    check(
        "GET",
        "/api/v1/builders/hello-basic/builds",
        "/api/v1/builders/{name}/builds",
        None,
    );
    check(
        "GET",
        "/api/v1/builders/hello-basic/builds/1",
        "/api/v1/builders/{name}/builds/{number}",
        None,
    );
    check(
        "GET",
        "/api/v1/builders/hello-basic/get",
        "/api/v1/builders/{name}/get",
        None,
    );
    let build = check(
        "GET",
        &format!("/api/v1/builds/{id}"),
        "/api/v1/builds/{id}",
        None,
    );
    assert_eq!(
        build["links"]["docs"],
        json!(format!("/api/v1/builds/{id}/artifacts/docs/index.html")),
        "{build}"
    );
    check(
        "GET",
        &format!("/api/v1/builds/{id}/artifacts"),
        "/api/v1/builds/{id}/artifacts",
        None,
    );
    let queue = check("GET", "/api/v1/queue", "/api/v1/queue", None);
    assert_eq!(queue["pending"][0]["build"], json!(id), "{queue}");
    check("GET", "/api/v1/workers", "/api/v1/workers", None);
    check("GET", "/api/v1/whoami", "/api/v1/whoami", None);
    check(
        "POST",
        "/api/v1/people/vic/tokens",
        "/api/v1/people/{person}/tokens",
        None,
    );
    check(
        "GET",
        "/api/v1/people/vic/tokens",
        "/api/v1/people/{person}/tokens",
        None,
    );
    // Not finished yet: refused, then cancelled, then rebuilt.
    check(
        "POST",
        &format!("/api/v1/builds/{id}/rebuild"),
        "/api/v1/builds/{id}/rebuild",
        None,
    );
    check(
        "POST",
        &format!("/api/v1/builds/{id}/cancel"),
        "/api/v1/builds/{id}/cancel",
        None,
    );
    check(
        "POST",
        &format!("/api/v1/builds/{id}/rebuild"),
        "/api/v1/builds/{id}/rebuild",
        None,
    );
    check("GET", "/api/v1/builds/999999", "/api/v1/builds/{id}", None);
    check("POST", "/api/v1/admin/reload", "/api/v1/admin/reload", None);
    check(
        "POST",
        "/api/v1/workers/w1/token",
        "/api/v1/workers/{name}/token",
        None,
    );
    assert!(
        problems.is_empty(),
        "answers that do not fit the document:\n{}",
        problems.join("\n")
    );
}
