//! Access control over every route: the table of routes comes from the
//! router itself, so a route added without a rule here fails the test.
//! Each route is called as anonymous, with a wrong token, with an expired
//! session, and as each role (plus a role limited to other repos), and the
//! status is checked against the route's rule; refused calls change nothing.
//!
//! The megatron runs in process (its `State` on a temp dir, served on a
//! loopback port), so the test can plant an expired session in its store.

use constructicon::access::people::{issue_person_token, start_session};
use constructicon::config::{evaluate_cybertron, Limits};
use constructicon::http::guard::{Need, RouteInfo};
use constructicon::megatron::{Options, State, Timing, DEFAULT_MAX_ARTIFACT_BYTES};
use constructicon::store::now_ms;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::system::GitRepo;

fn cybertron(anonymous: &str) -> String {
    format!(
        r#"cybertron = #{{
    workers: #{{ w1: #{{}} }},
    repos: #{{ allow: ["/*"] }},
    access: #{{
        anonymous: "{anonymous}",
        people: #{{
            vic: "viewer",
            olga: "operator",
            max: "maintainer",
            ada: "admin",
            sam: #{{ role: "operator", repos: ["other*"] }},
            zed: "viewer",
        }},
    }},
}};"#
    )
}

const REPO: &str = r#"constructicon = #{
    builders: #{ basic: #{ commands: ["true"], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force", parameters: #{ p: "x" } } },
};"#;

/// A megatron served in process on a loopback port.
pub struct InProcess {
    pub state: Arc<State>,
    pub url: String,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    pub fn start(cybertron: &str) -> InProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let evaluation = evaluate_cybertron(
            "cybertron.rhai",
            cybertron.as_bytes().to_vec(),
            &Limits::default(),
        );
        let cybertron = evaluation
            .value
            .unwrap_or_else(|| panic!("cybertron: {:?}", evaluation.errors));
        let state = State::open(Options {
            data_dir: dir.path().join("data"),
            cybertron,
            timing: Timing::default(),
            max_artifact_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
            cybertron_path: None,
        })
        .expect("open the state");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(constructicon::server::serve_state(
            listener,
            state.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        InProcess {
            state,
            url: format!("http://{address}"),
            runtime: Some(runtime),
            stop: Some(stop),
            _dir: dir,
        }
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.state.data_dir.join("admin-token"))
            .expect("admin token")
            .trim()
            .to_string()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// One way of calling.
#[derive(Debug, Clone)]
enum As {
    Anonymous,
    Bearer(String),
    Cookie(String),
}

/// Sends `method path` as `caller`, with `body` for methods that take one.
fn call(url: &str, method: &str, path: &str, caller: &As, body: &Value) -> (u16, String) {
    let agent = agent();
    let full = format!("{url}{path}");
    let mut request = ureq::http::Request::builder().method(method).uri(&full);
    match caller {
        As::Anonymous => {}
        As::Bearer(token) => request = request.header("authorization", format!("Bearer {token}")),
        As::Cookie(cookie) => {
            request = request.header("cookie", format!("constructicon_session={cookie}"))
        }
    }
    let bytes = if method == "GET" || method == "DELETE" {
        Vec::new()
    } else {
        request = request.header("content-type", "application/json");
        serde_json::to_vec(body).expect("json")
    };
    let request = request.body(bytes).expect("request");
    let mut response = agent.run(request).expect("the megatron answers");
    let status = response.status().as_u16();
    // A live stream never ends: its status is the answer.
    let streaming = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streaming {
        return (status, String::new());
    }
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, text)
}

/// Fills a route's path parameters with things that exist.
fn concrete(path: &str, build: u64) -> String {
    path.replace("{repo}", "hello")
        .replace("{name}", "hello-basic")
        .replace("{builder}", "hello-basic.svg")
        .replace("{id}", &build.to_string())
        .replace("{step}", "0")
        .replace("{number}", "1")
        .replace("{*path}", "nothing.txt")
        .replace("{person}", "zed")
        .replace("{secret}", "not-a-link")
}

/// What each role may do, as the test expects it (the router's own table
/// must agree route by route).
fn expected_need(method: &str, path: &str) -> Option<Need> {
    use constructicon::config::access::Role::*;
    use Need::*;
    let table: &[(&str, &str, Need)] = &[
        ("GET", "/api/v1/openapi.json", Public),
        ("GET", "/api/v1/whoami", Public),
        ("GET", "/api/v1/repos", Role(Viewer)),
        ("POST", "/api/v1/repos", Role(Maintainer)),
        ("GET", "/api/v1/repos/{repo}", Role(Viewer)),
        ("DELETE", "/api/v1/repos/{repo}", Role(Maintainer)),
        ("POST", "/api/v1/repos/{repo}/refresh", Role(Maintainer)),
        ("POST", "/api/v1/repos/{repo}/eval", Role(Operator)),
        ("GET", "/api/v1/repos/{repo}/pulls", Role(Viewer)),
        (
            "POST",
            "/api/v1/repos/{repo}/pulls/{number}/approve",
            Role(Operator),
        ),
        ("GET", "/api/v1/repos/{repo}/public-key", Role(Viewer)),
        ("GET", "/api/v1/builders", Role(Viewer)),
        ("GET", "/api/v1/builders/{name}", Role(Viewer)),
        ("GET", "/api/v1/builders/{name}/builds", Role(Viewer)),
        (
            "GET",
            "/api/v1/builders/{name}/builds/{number}",
            Role(Viewer),
        ),
        ("POST", "/api/v1/builders/{name}/force", Role(Operator)),
        ("GET", "/api/v1/builders/{name}/get", Role(Viewer)),
        ("GET", "/api/v1/builds/{id}", Role(Viewer)),
        ("POST", "/api/v1/builds/{id}/cancel", Role(Operator)),
        ("GET", "/api/v1/builds/{id}/steps/{step}/log", Role(Viewer)),
        ("GET", "/api/v1/builds/{id}/artifacts", Role(Viewer)),
        ("GET", "/api/v1/builds/{id}/artifacts/{*path}", Role(Viewer)),
        ("POST", "/api/v1/builds/{id}/rebuild", Role(Operator)),
        ("GET", "/api/v1/queue", Role(Viewer)),
        ("GET", "/api/v1/workers", Role(Viewer)),
        ("GET", "/api/v1/usage", Role(Viewer)),
        ("GET", "/badge/{builder}", Role(Viewer)),
        ("GET", "/metrics", Role(Viewer)),
        ("POST", "/api/v1/hooks/push", Webhook),
        ("POST", "/api/v1/admin/reload", Role(Admin)),
        ("POST", "/api/v1/workers/{name}/token", Role(Admin)),
        ("DELETE", "/api/v1/workers/{name}/token", Role(Admin)),
        ("POST", "/api/v1/people/{person}/tokens", Role(Admin)),
        ("GET", "/api/v1/people/{person}/tokens", Role(Admin)),
        ("DELETE", "/api/v1/people/{person}/tokens", Role(Admin)),
        ("POST", "/api/v1/worker/claim", Worker),
        ("POST", "/api/v1/worker/builds/{id}/heartbeat", Worker),
        ("POST", "/api/v1/worker/builds/{id}/release", Worker),
        (
            "POST",
            "/api/v1/worker/builds/{id}/steps/{step}/start",
            Worker,
        ),
        (
            "POST",
            "/api/v1/worker/builds/{id}/steps/{step}/log",
            Worker,
        ),
        (
            "POST",
            "/api/v1/worker/builds/{id}/steps/{step}/finish",
            Worker,
        ),
        ("POST", "/api/v1/worker/builds/{id}/finish", Worker),
        ("POST", "/api/v1/worker/builds/{id}/revisions", Worker),
        (
            "PUT",
            "/api/v1/worker/builds/{id}/artifacts/{*path}",
            Worker,
        ),
        ("GET", "/", Role(Viewer)),
        ("GET", "/repos/{repo}", Role(Viewer)),
        ("GET", "/builders/{name}", Role(Viewer)),
        ("POST", "/builders/{name}/force", Role(Operator)),
        (
            "POST",
            "/repos/{repo}/pulls/{number}/approve",
            Role(Operator),
        ),
        ("GET", "/builds/{id}", Role(Viewer)),
        ("GET", "/builders/{name}/builds/{number}", Role(Viewer)),
        ("POST", "/builds/{id}/cancel", Role(Operator)),
        ("POST", "/builds/{id}/rebuild", Role(Operator)),
        ("GET", "/builds/{id}/events", Role(Viewer)),
        ("GET", "/builds/{id}/steps/{step}", Role(Viewer)),
        ("GET", "/queue", Role(Viewer)),
        ("GET", "/workers", Role(Viewer)),
        ("GET", "/events", Role(Viewer)),
        ("GET", "/assets/live.js", Public),
        ("GET", "/assets/style.css", Public),
        ("GET", "/login", Public),
        ("POST", "/login", Public),
        ("POST", "/logout", Public),
        ("GET", "/login/oauth", Public),
        ("GET", "/login/oauth/callback", Public),
        ("GET", "/login/link/{secret}", Public),
    ];
    table
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, need)| *need)
}

/// What the megatron holds that a refused call must not change.
fn snapshot(server: &InProcess) -> Value {
    let state = &server.state;
    let builds: Vec<Value> = state
        .store
        .builder_builds("hello-basic", 1000)
        .expect("builds")
        .iter()
        .map(|b| json!([b.id, b.state, b.result, b.cancel_requested]))
        .collect();
    let repos: BTreeMap<String, Option<u64>> = constructicon::sync::read(&state.repos)
        .iter()
        .map(|(name, r)| (name.clone(), r.record.graph_version))
        .collect();
    json!({
        "builds": builds,
        "repos": repos,
        "zed tokens": state.store.person_tokens("zed").expect("tokens").len(),
        "worker tokens": state.store.workers_with_tokens().expect("workers"),
        "hash": state.store.token_hash("hello-basic").expect("token"),
    })
}

fn all_routes(server: &InProcess) -> Vec<RouteInfo> {
    let mut routes = constructicon::http::route_table(server.state.clone());
    routes.extend(constructicon::web::route_table(server.state.clone()));
    routes
}

fn route_name(route: &RouteInfo) -> String {
    format!("{} {}", route.method, route.path)
}

#[test]
fn every_route_has_a_rule_and_the_guard_keeps_it() {
    use constructicon::config::access::Role;
    let repo = GitRepo::new("hello", REPO);
    let server = InProcess::start(&cybertron("viewer"));
    let admin = server.admin_token();
    let added = server
        .state
        .add_repo(&repo.url(), None)
        .expect("register the repo");
    assert!(added.record.error.is_none(), "{:?}", added.record.error);
    let build = server
        .state
        .force("hello-basic", Default::default(), Some("test"))
        .expect("force")
        .id;

    let tokens: BTreeMap<&str, String> = ["vic", "olga", "max", "ada", "sam"]
        .into_iter()
        .map(|p| {
            (
                p,
                issue_person_token(&server.state, p).expect("issue").token,
            )
        })
        .collect();
    // A session that ran out an hour ago.
    let (expired, _) = start_session(&server.state, "ada", "token", Vec::new()).expect("session");
    {
        let hash = constructicon::token::secret_hash(&expired);
        let mut session = server
            .state
            .store
            .session(&hash)
            .expect("read")
            .expect("there");
        session.expires = now_ms() - 3_600_000;
        server
            .state
            .store
            .put_session(&hash, &session)
            .expect("write");
    }

    // Every route the router has is in the test's table, with the same rule.
    let routes = all_routes(&server);
    assert!(routes.len() >= 35, "{} routes", routes.len());
    for route in &routes {
        let expected = expected_need(route.method.as_str(), route.path).unwrap_or_else(|| {
            panic!(
                "{} has no expectation in tests/it/access.rs: decide who may call it",
                route_name(route)
            )
        });
        assert_eq!(route.need, expected, "{}", route_name(route));
    }

    let callers: Vec<(&str, As, Option<Role>, bool)> = vec![
        // (name, how, role on repo hello, holds credentials)
        ("anonymous", As::Anonymous, Some(Role::Viewer), false),
        (
            "wrong token",
            As::Bearer("0123456789abcdef".into()),
            None,
            true,
        ),
        (
            "expired session",
            As::Cookie(expired.clone()),
            Some(Role::Viewer),
            false,
        ),
        (
            "vic",
            As::Bearer(tokens["vic"].clone()),
            Some(Role::Viewer),
            true,
        ),
        (
            "olga",
            As::Bearer(tokens["olga"].clone()),
            Some(Role::Operator),
            true,
        ),
        (
            "max",
            As::Bearer(tokens["max"].clone()),
            Some(Role::Maintainer),
            true,
        ),
        (
            "sam (operator elsewhere)",
            As::Bearer(tokens["sam"].clone()),
            Some(Role::Viewer),
            true,
        ),
        (
            "ada",
            As::Bearer(tokens["ada"].clone()),
            Some(Role::Admin),
            true,
        ),
        (
            "admin token",
            As::Bearer(admin.clone()),
            Some(Role::Admin),
            true,
        ),
    ];

    // First every call that must be refused, then check nothing changed.
    let before = snapshot(&server);
    let mut refused = 0;
    for route in routes.iter() {
        let Need::Role(needed) = route.need else {
            continue;
        };
        let path = concrete(route.path, build);
        for (name, how, role, credentials) in &callers {
            let wrong_token = *name == "wrong token";
            let allowed = !wrong_token && role.is_some_and(|r| r >= needed);
            if allowed {
                continue;
            }
            let (status, body) = call(&server.url, route.method.as_str(), &path, how, &json!({}));
            let page = !route.path.starts_with("/api/");
            let expected = if wrong_token || !credentials {
                if page && !wrong_token {
                    303
                } else {
                    401
                }
            } else {
                403
            };
            assert_eq!(status, expected, "{} as {name}: {body}", route_name(route));
            refused += 1;
        }
    }
    assert!(refused > 60, "only {refused} refusals were tried");
    assert_eq!(
        snapshot(&server),
        before,
        "a refused call changed something"
    );

    // Every allowed call passes the guard (whatever the handler makes of
    // an empty body). Mutating ones are sent last, in an order that keeps
    // the callers' tokens alive.
    for route in routes.iter() {
        let Need::Role(needed) = route.need else {
            continue;
        };
        let path = concrete(route.path, build);
        for (name, how, role, _) in &callers {
            if *name == "wrong token" || !role.is_some_and(|r| r >= needed) {
                continue;
            }
            let (status, body) = call(&server.url, route.method.as_str(), &path, how, &json!({}));
            assert!(
                status != 401 && status != 403,
                "{} as {name} was refused: {status} {body}",
                route_name(route)
            );
        }
    }

    // Routes without a role rule answer every caller alike.
    for route in routes.iter().filter(|r| !matches!(r.need, Need::Role(_))) {
        if route.path == "/api/v1/whoami" {
            continue;
        }
        let path = concrete(route.path, build);
        let statuses: Vec<u16> = callers
            .iter()
            .map(|(_, how, _, _)| {
                call(&server.url, route.method.as_str(), &path, how, &json!({})).0
            })
            .collect();
        assert!(
            statuses.windows(2).all(|w| w[0] == w[1]),
            "{}: {statuses:?}",
            route_name(route)
        );
    }
}

#[test]
fn anonymous_none_hides_everything_but_login_workers_and_webhooks() {
    let repo = GitRepo::new("hello", REPO);
    let server = InProcess::start(&cybertron("none"));
    server.state.add_repo(&repo.url(), None).expect("register");
    for path in [
        "/api/v1/repos",
        "/api/v1/builders",
        "/api/v1/queue",
        "/api/v1/builds/1",
    ] {
        let (status, body) = call(&server.url, "GET", path, &As::Anonymous, &json!({}));
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("needs the viewer role"), "{body}");
    }
    let (status, _) = call(&server.url, "GET", "/", &As::Anonymous, &json!({}));
    assert_eq!(status, 303, "the home page sends the browser to log in");
    let (status, body) = call(&server.url, "GET", "/login", &As::Anonymous, &json!({}));
    assert_eq!(status, 200);
    assert!(body.contains("Personal token"), "{body}");
    // The worker protocol still answers (with its own check).
    let (status, body) = call(
        &server.url,
        "POST",
        "/api/v1/worker/claim",
        &As::Anonymous,
        &json!({}),
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("x-constructicon-worker"), "{body}");
    // A person with a role sees it.
    let token = issue_person_token(&server.state, "vic")
        .expect("issue")
        .token;
    let (status, body) = call(
        &server.url,
        "GET",
        "/api/v1/repos",
        &As::Bearer(token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"hello\""), "{body}");
}

#[test]
fn lists_show_only_the_repos_a_limited_role_covers() {
    let hello = GitRepo::new("hello", REPO);
    let other = GitRepo::new("other", REPO);
    let server = InProcess::start(&cybertron("none"));
    server.state.add_repo(&hello.url(), None).expect("hello");
    server.state.add_repo(&other.url(), None).expect("other");
    let sam = As::Bearer(
        issue_person_token(&server.state, "sam")
            .expect("issue")
            .token,
    );
    let (status, body) = call(&server.url, "GET", "/api/v1/repos", &sam, &json!({}));
    assert_eq!(status, 200, "{body}");
    let repos: Value = serde_json::from_str(&body).expect("json");
    let names: Vec<&str> = repos["repos"]
        .as_array()
        .expect("repos")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["other"]);
    let (status, _) = call(
        &server.url,
        "GET",
        "/api/v1/builders/hello-basic",
        &sam,
        &json!({}),
    );
    assert_eq!(status, 403);
    let (status, body) = call(
        &server.url,
        "POST",
        "/api/v1/builders/other-basic/force",
        &sam,
        &json!({}),
    );
    assert_eq!(status, 201, "{body}");
    let forced: Value = serde_json::from_str(&body).expect("json");
    let record = server
        .state
        .store
        .build(forced["build"].as_u64().expect("id"))
        .expect("build");
    assert_eq!(record.reason, "forced by sam");
    assert_eq!(record.by.as_deref(), Some("sam"));
}

#[test]
fn the_body_cannot_say_who_forced() {
    let repo = GitRepo::new("hello", REPO);
    let server = InProcess::start(&cybertron("viewer"));
    server.state.add_repo(&repo.url(), None).expect("register");
    let olga = As::Bearer(
        issue_person_token(&server.state, "olga")
            .expect("issue")
            .token,
    );
    let (status, body) = call(
        &server.url,
        "POST",
        "/api/v1/builders/hello-basic/force",
        &olga,
        &json!({ "by": "ada" }),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown field `by`"), "{body}");
}

#[test]
fn revoked_tokens_stop_working_at_once() {
    let repo = GitRepo::new("hello", REPO);
    let server = InProcess::start(&cybertron("none"));
    server.state.add_repo(&repo.url(), None).expect("register");
    let admin = As::Bearer(server.admin_token());
    let (status, body) = call(
        &server.url,
        "POST",
        "/api/v1/people/olga/tokens",
        &admin,
        &json!({}),
    );
    assert_eq!(status, 201, "{body}");
    let issued: Value = serde_json::from_str(&body).expect("json");
    let olga = As::Bearer(issued["token"].as_str().expect("token").to_string());
    let (status, body) = call(&server.url, "GET", "/api/v1/whoami", &olga, &json!({}));
    assert_eq!(status, 200);
    assert!(body.contains("\"person\":\"olga\""), "{body}");
    // The store keeps only the hash.
    let hash = constructicon::token::secret_hash(issued["token"].as_str().expect("token"));
    assert!(server
        .state
        .store
        .person_token(&hash)
        .expect("read")
        .is_some());
    let (status, body) = call(
        &server.url,
        "DELETE",
        "/api/v1/people/olga/tokens",
        &admin,
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"revoked\":1"), "{body}");
    let (status, body) = call(&server.url, "GET", "/api/v1/repos", &olga, &json!({}));
    assert_eq!(status, 401, "{body}");
    // An undeclared person gets no token.
    let (status, body) = call(
        &server.url,
        "POST",
        "/api/v1/people/mallory/tokens",
        &admin,
        &json!({}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("no person mallory in cybertron's access.people"),
        "{body}"
    );
}
