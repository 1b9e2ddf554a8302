//! The hardened front door, tried from outside: which repo URLs may be
//! registered (and that credentials are never echoed), JSON errors for every
//! rejection, force values checked before a build is queued, CSRF on
//! browser sessions, login through a fake forge's OAuth2, and connections
//! that stall or pile up.

use crate::access::{agent, InProcess};
use crate::common::system::{wait_for, GitRepo, BIN};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REPO: &str = r#"constructicon = #{
    builders: #{ basic: #{ commands: ["true"], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force", parameters: #{ p: "x" } } },
};"#;

fn post_json(url: &str, path: &str, token: Option<&str>, body: &Value) -> (u16, String) {
    let mut request = agent().post(&format!("{url}{path}"));
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut response = request.send_json(body).expect("answer");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

#[test]
fn only_allowed_repo_urls_register_and_credentials_are_never_echoed() {
    // No allow-list: remote URLs only.
    let server = InProcess::start(r#"cybertron = #{ workers: #{ w1: #{} } };"#);
    let admin = server.admin_token();
    let repo = GitRepo::new("hello", REPO);
    for (url, why) in [
        (repo.url(), "is a local repo; cybertron must allow local paths explicitly"),
        (format!("file://{}", repo.url()), "is a local repo; cybertron must allow local paths explicitly"),
        (
            "https://ana:hunter2@example.invalid/acme/hello.git".to_string(),
            "https://***@example.invalid/acme/hello.git holds credentials; they do not belong in a repo URL",
        ),
    ] {
        let (status, body) = post_json(&server.url, "/api/v1/repos", Some(&admin), &json!({ "url": url }));
        assert_eq!(status, 400, "{url}: {body}");
        assert!(body.contains(why), "{url}: {body}");
        assert!(!body.contains("hunter2"), "the password was echoed: {body}");
    }
    let (status, body) = post_json(
        &server.url,
        "/api/v1/repos",
        None,
        &json!({ "url": repo.url() }),
    );
    assert_eq!(status, 401, "anonymous registration: {body}");
    let repos = constructicon::sync::read(&server.state.repos).len();
    assert_eq!(repos, 0, "a refused registration registered something");
    drop(server);

    // An allow-list admits its patterns and nothing else.
    let dir = repo.path.parent().expect("parent").display().to_string();
    let server = InProcess::start(&format!(
        r#"cybertron = #{{ workers: #{{ w1: #{{}} }}, repos: #{{ allow: ["https://example.invalid/acme/*", "{dir}/*"] }} }};"#
    ));
    let admin = server.admin_token();
    let (status, body) = post_json(
        &server.url,
        "/api/v1/repos",
        Some(&admin),
        &json!({ "url": "https://example.invalid/evil/hello.git" }),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("matches none of the repo URLs cybertron allows"),
        "{body}"
    );
    let (status, body) = post_json(
        &server.url,
        "/api/v1/repos",
        Some(&admin),
        &json!({ "url": repo.url() }),
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn every_rejection_is_json() {
    let repo = GitRepo::new("hello", REPO);
    let server =
        InProcess::start(r#"cybertron = #{ workers: #{ w1: #{} }, repos: #{ allow: ["/*"] } };"#);
    server.state.add_repo(&repo.url(), None).expect("register");
    let admin = server.admin_token();
    let check = |method: &str, path: &str, body: Vec<u8>, expected: u16| {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", server.url))
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .body(body)
            .expect("request");
        let mut response = agent().run(request).expect("answer");
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, expected, "{method} {path}: {text}");
        assert!(
            kind.starts_with("application/json"),
            "{method} {path}: {kind} {text}"
        );
        let json: Value = serde_json::from_str(&text).expect("JSON");
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{method} {path}: {text}"
        );
    };
    check("GET", "/api/v1/builds/1/steps/abc/log", vec![], 400);
    check("GET", "/api/v1/builds/abc", vec![], 400);
    check(
        "GET",
        "/api/v1/builders/hello-basic/builds?limit=lots",
        vec![],
        400,
    );
    check("DELETE", "/api/v1/repos", vec![], 405);
    check("POST", "/api/v1/repos", vec![b'x'; 5 << 20], 413);
    check("POST", "/api/v1/repos", b"{not json".to_vec(), 400);
    check("GET", "/api/v1/nothing/here", vec![], 404);
    check(
        "POST",
        "/api/v1/builders/hello-basic/force",
        serde_json::to_vec(&json!({ "parameters": { "p": "a\u{0}b" } })).expect("json"),
        400,
    );
    let (status, body) = post_json(
        &server.url,
        "/api/v1/builders/hello-basic/force",
        Some(&admin),
        &json!({ "parameters": { "p": "x".repeat(70_000) } }),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("parameter \\\"p\\\": the value is 70000 bytes long"),
        "{body}"
    );
    let (status, body) = post_json(
        &server.url,
        "/api/v1/builders/hello-basic/force",
        Some(&admin),
        &json!({ "parameters": { "p": "a\u{0}b" } }),
    );
    assert_eq!(status, 400);
    assert!(
        body.contains("parameter \\\"p\\\": the value contains a NUL byte"),
        "{body}"
    );
    assert!(
        server
            .state
            .store
            .builder_builds("hello-basic", 10)
            .expect("builds")
            .is_empty(),
        "a refused force queued a build"
    );
}

/// The `Set-Cookie` values of a response, by cookie name.
fn set_cookies(response: &ureq::http::Response<ureq::Body>) -> Vec<(String, String)> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let first = v.split(';').next()?;
            let (name, value) = first.split_once('=')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

fn get(url: &str, cookie: Option<&str>) -> ureq::http::Response<ureq::Body> {
    let mut request = agent().get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.call().expect("answer")
}

#[test]
fn browser_sessions_need_their_csrf_token_to_change_anything() {
    let repo = GitRepo::new("hello", REPO);
    let server = InProcess::start(
        r#"cybertron = #{ workers: #{ w1: #{} }, repos: #{ allow: ["/*"] }, access: #{ people: #{ olga: "operator" } } };"#,
    );
    server.state.add_repo(&repo.url(), None).expect("register");
    let token = constructicon::access::people::issue_person_token(&server.state, "olga")
        .expect("issue")
        .token;
    // Log in through the form.
    let mut response = agent()
        .post(&format!("{}/login", server.url))
        .content_type("application/x-www-form-urlencoded")
        .send(format!("token={token}&next=%2Fqueue"))
        .expect("login");
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], "/queue");
    let raw = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        raw.contains("HttpOnly") && raw.contains("SameSite=Lax"),
        "{raw}"
    );
    assert!(raw.contains("Max-Age=86400"), "{raw}");
    let session = set_cookies(&response)
        .into_iter()
        .find(|(name, _)| name == "constructicon_session")
        .expect("a session cookie")
        .1;
    let _ = response.body_mut().read_to_string();
    let cookie = format!("constructicon_session={session}");
    let mut me = get(&format!("{}/api/v1/whoami", server.url), Some(&cookie));
    let me: Value =
        serde_json::from_str(&me.body_mut().read_to_string().expect("body")).expect("json");
    assert_eq!(me["person"], "olga");
    let csrf = me["csrf"]
        .as_str()
        .expect("the session's CSRF token")
        .to_string();

    // A cookie alone does not force.
    let force = |headers: &[(&str, &str)]| {
        let mut request =
            agent().post(&format!("{}/api/v1/builders/hello-basic/force", server.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send_json(json!({})).expect("answer");
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    let (status, body) = force(&[("cookie", &cookie)]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let (status, body) = force(&[("cookie", &cookie), ("x-csrf-token", "forged")]);
    assert_eq!(status, 403, "{body}");
    assert!(server
        .state
        .store
        .builder_builds("hello-basic", 10)
        .expect("builds")
        .is_empty());
    let (status, body) = force(&[("cookie", &cookie), ("x-csrf-token", &csrf)]);
    assert_eq!(status, 201, "{body}");

    // Logging out is a change too.
    let logout = |form: &str| {
        agent()
            .post(&format!("{}/logout", server.url))
            .header("cookie", &cookie)
            .content_type("application/x-www-form-urlencoded")
            .send(form.to_string())
            .expect("answer")
            .status()
            .as_u16()
    };
    assert_eq!(logout(""), 403);
    assert_eq!(logout("_csrf=forged"), 403);
    assert_eq!(logout(&format!("_csrf={csrf}")), 303);
    let mut me = get(&format!("{}/api/v1/whoami", server.url), Some(&cookie));
    let me: Value =
        serde_json::from_str(&me.body_mut().read_to_string().expect("body")).expect("json");
    assert_eq!(me["anonymous"], true, "the session outlived the logout");
}

/// A forge that speaks just enough OAuth2 and user API: it approves every
/// authorization at once and knows one user, `octocat` of org `acme`.
struct FakeForge {
    url: String,
    _runtime: tokio::runtime::Runtime,
}

impl FakeForge {
    fn start() -> FakeForge {
        use axum::extract::{Form, Query};
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::{IntoResponse, Redirect};
        use axum::routing::{get, post};
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex};
        let challenges: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let issued = challenges.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let app = axum::Router::new()
            .route(
                "/login/oauth/authorize",
                get(move |Query(q): Query<HashMap<String, String>>| async move {
                    let code = format!("code-{}", q.len());
                    issued
                        .lock()
                        .expect("lock")
                        .insert(code.clone(), q["code_challenge"].clone());
                    Redirect::to(&format!(
                        "{}?code={code}&state={}",
                        q["redirect_uri"], q["state"]
                    ))
                }),
            )
            .route(
                "/login/oauth/access_token",
                post(move |Form(f): Form<HashMap<String, String>>| async move {
                    use sha2::Digest as _;
                    let challenge = challenges.lock().expect("lock").remove(&f["code"]);
                    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                    let digest = sha2::Sha256::digest(verifier.as_bytes());
                    let computed = base64_url(&digest);
                    if challenge.as_deref() != Some(computed.as_str()) {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"error": "invalid_grant"})),
                        )
                            .into_response();
                    }
                    axum::Json(json!({"access_token": "tok-octocat", "token_type": "bearer"}))
                        .into_response()
                }),
            )
            .route(
                "/api/user",
                get(|headers: HeaderMap| async move {
                    if headers["authorization"] != "Bearer tok-octocat" {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    axum::Json(json!({"login": "octocat"})).into_response()
                }),
            )
            .route(
                "/api/user/orgs",
                get(|| async { axum::Json(json!([{"login": "acme"}, {"login": "elsewhere"}])) }),
            );
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeForge {
            url,
            _runtime: runtime,
        }
    }
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn login_through_a_forge_maps_its_org_to_a_role() {
    let forge = FakeForge::start();
    let secret = tempfile::NamedTempFile::new().expect("secret file");
    std::fs::write(secret.path(), "client-secret\n").expect("write");
    let repo = GitRepo::new("hello", REPO);
    let server = InProcess::start(&format!(
        r#"cybertron = #{{
            workers: #{{ w1: #{{}} }},
            repos: #{{ allow: ["/*"] }},
            access: #{{
                anonymous: "none",
                login: #{{
                    forge: "github", url: "{0}", api_url: "{0}/api", client_id: "cid",
                    client_secret: #{{ file: "{1}" }},
                    orgs: #{{ acme: "operator" }},
                }},
            }},
        }};"#,
        forge.url,
        secret.path().display()
    ));
    server.state.add_repo(&repo.url(), None).expect("register");

    // The login page offers the forge.
    let mut page = get(&format!("{}/login", server.url), None);
    assert!(page
        .body_mut()
        .read_to_string()
        .expect("page")
        .contains("Log in with GitHub"));
    // megatron → forge → megatron, following each redirect by hand.
    let start = get(&format!("{}/login/oauth", server.url), None);
    assert_eq!(start.status().as_u16(), 303);
    let to_forge = start.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        to_forge.starts_with(&format!("{}/login/oauth/authorize?", forge.url)),
        "{to_forge}"
    );
    assert!(to_forge.contains("code_challenge="), "PKCE: {to_forge}");
    let (_, login_state) = set_cookies(&start)
        .into_iter()
        .find(|(name, _)| name == "constructicon_login")
        .expect("the login cookie");
    let back = get(&to_forge, None);
    let callback = back.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        callback.starts_with(&format!("{}/login/oauth/callback?", server.url)),
        "{callback}"
    );

    // Without the browser's login cookie the answer is refused.
    let mut stolen = get(&callback, None);
    assert_eq!(stolen.status().as_u16(), 400);
    assert!(stolen
        .body_mut()
        .read_to_string()
        .expect("page")
        .contains("started in another browser"));
    let done = get(
        &callback,
        Some(&format!("constructicon_login={login_state}")),
    );
    assert_eq!(done.status().as_u16(), 303, "the login went through");
    let (_, session) = set_cookies(&done)
        .into_iter()
        .find(|(name, _)| name == "constructicon_session")
        .expect("a session");
    let cookie = format!("constructicon_session={session}");
    let mut me = get(&format!("{}/api/v1/whoami", server.url), Some(&cookie));
    let me: Value =
        serde_json::from_str(&me.body_mut().read_to_string().expect("body")).expect("json");
    assert_eq!(me["person"], "octocat");
    assert_eq!(me["role"], "operator", "acme's members are operators");
    let csrf = me["csrf"].as_str().expect("csrf").to_string();
    let mut forced = agent()
        .post(&format!("{}/api/v1/builders/hello-basic/force", server.url))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send_json(json!({}))
        .expect("force");
    let body = forced.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(forced.status().as_u16(), 201, "{body}");
    let build = server
        .state
        .store
        .builder_builds("hello-basic", 1)
        .expect("builds");
    assert_eq!(build[0].reason, "forced by octocat");

    // The same callback cannot be replayed.
    let replay = get(
        &callback,
        Some(&format!("constructicon_login={login_state}")),
    );
    assert_eq!(replay.status().as_u16(), 400);
}

/// Opens a connection that sends part of a request's headers and stops.
fn stall(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .write_all(b"GET /api/v1/repos HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    stream
}

/// Whether the server closed the connection (or answered and closed).
fn closed(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");
    let mut buffer = [0u8; 512];
    match stream.read(&mut buffer) {
        Ok(0) => true,
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn megatron_with(flags: &[&str]) -> (std::process::Child, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("cybertron.rhai"),
        "cybertron = #{ workers: #{ w1: #{} } };",
    )
    .expect("write");
    let mut child = Command::new(BIN)
        .arg("megatron")
        .arg("--cybertron")
        .arg(dir.path().join("cybertron.rhai"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .args(flags)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("megatron");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).expect("read");
    let address = first
        .trim()
        .strip_prefix("megatron listening on http://")
        .expect("address")
        .to_string();
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = stdout.read_to_string(&mut sink);
    });
    (child, address, dir)
}

#[test]
fn stalled_connections_are_closed_while_others_are_served() {
    let (mut child, address, _dir) = megatron_with(&["--header-timeout-ms", "1000"]);
    let started = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..300).map(|_| stall(&address)).collect();
    // A normal request is answered meanwhile, at once.
    let asked = Instant::now();
    let mut response = agent()
        .get(&format!("http://{address}/api/v1/repos"))
        .call()
        .expect("answer");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response
        .body_mut()
        .read_to_string()
        .expect("body")
        .contains("repos"));
    assert!(
        asked.elapsed() < Duration::from_millis(900),
        "{:?}",
        asked.elapsed()
    );
    // Every stalled connection is closed once the header timeout passes.
    wait_for(
        "every stalled connection to be closed",
        Duration::from_secs(10),
        || stalled.iter_mut().all(closed).then_some(()),
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the timeout"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn connections_past_the_cap_get_a_503_not_a_hang() {
    let (mut child, address, _dir) =
        megatron_with(&["--header-timeout-ms", "1500", "--max-connections", "20"]);
    let _held: Vec<TcpStream> = (0..20).map(|_| stall(&address)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut extra = TcpStream::connect(&address).expect("connect");
    extra
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        answer.contains("{\"error\":\"the megatron has too many connections; try again\"}"),
        "{answer}"
    );
    // Once the stalled ones time out, requests are served again.
    wait_for(
        "the megatron to serve again",
        Duration::from_secs(10),
        || {
            let response = agent()
                .get(&format!("http://{address}/api/v1/repos"))
                .call()
                .ok()?;
            (response.status().as_u16() == 200).then_some(())
        },
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_command_line_issues_keeps_and_revokes_personal_tokens() {
    use crate::common::system::Megatron;
    let megatron = Megatron::start(
        r#"cybertron = #{ workers: #{ w1: #{} }, access: #{ anonymous: "viewer", people: #{ olga: "operator" } } };"#,
    );
    let repo = GitRepo::new("hello", REPO);
    megatron.add_repo(&repo.url());
    let config = tempfile::tempdir().expect("config home");
    let cli = |args: &[&str], token: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("CONSTRUCTICON_MEGATRON", &megatron.url)
            .env("XDG_CONFIG_HOME", config.path())
            .env_remove("CONSTRUCTICON_USER_TOKEN")
            .stdin(Stdio::null());
        if let Some(token) = token {
            command.env("CONSTRUCTICON_USER_TOKEN", token);
        }
        let out = command.output().expect("cli");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let admin_file = megatron.dir.join("data").join("admin-token");
    let admin_file = admin_file.to_str().expect("path");
    let (code, token, err) = cli(
        &[
            "token",
            "--person",
            "olga",
            "--admin-token-file",
            admin_file,
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let token = token.trim().to_string();
    assert_eq!(token.len(), 32, "{token}");

    // Anonymous forcing is refused, with a word on how to sign in.
    let (code, _, err) = cli(&["force", "hello-basic"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("this needs the operator role"), "{err}");

    let (code, out, err) = cli(&["login", "--token", &token], None);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("as olga (role: operator)"), "{out}");
    let file = config.path().join("constructicon").join("credentials.json");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file)
        .expect("the credentials file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (code, out, err) = cli(&["force", "hello-basic"], None);
    assert_eq!(code, Some(0), "{err}");
    let id: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.trim_end_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(megatron.build(id)["reason"], "forced by olga");

    let (code, _, _) = cli(&["logout"], None);
    assert_eq!(code, Some(0));
    let (code, _, err) = cli(&["force", "hello-basic"], None);
    assert_eq!(
        code,
        Some(1),
        "logged out, the token is no longer sent: {err}"
    );

    let (code, out, err) = cli(
        &[
            "token",
            "--person",
            "olga",
            "--revoke",
            "--admin-token-file",
            admin_file,
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("revoked 1 token(s) of olga"), "{out}");
    let (code, _, err) = cli(&["force", "hello-basic"], Some(&token));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("the bearer token is unknown or was revoked"),
        "{err}"
    );
    let (code, _, err) = cli(&["login", "--token", &token], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown or was revoked"), "{err}");
}

#[test]
fn a_live_log_resumes_where_the_browser_left_it() {
    use crate::common::system::{Megatron, Worker};
    let megatron = Megatron::start(r#"cybertron = #{ workers: #{ w1: #{} } };"#);
    let repo = GitRepo::new(
        "live",
        r#"constructicon = #{
    builders: #{ count: #{ commands: ["for i in $(seq 1 50); do echo line $i; done"], schedulers: ["force"] } },
    schedulers: #{ force: #{ type: "force" } },
};"#,
    );
    megatron.add_repo(&repo.url());
    let _worker = Worker::start(&megatron, "w1");
    let id = megatron.force("live-count", json!({}));
    megatron.wait_finished(id, Duration::from_secs(20));
    let log = megatron.log(id, 1);
    // The browser had lines 1 to 20 of step 1 and all of step 0.
    let seen: usize = log.lines().take(20).map(|l| l.len() + 1).sum();
    let checkout = megatron.log(id, 0);
    let checkout_lines = checkout.matches('\n').count();
    let last_id = format!("{}:{checkout_lines},{seen}:20", checkout.len());
    let mut response = agent()
        .get(&format!("{}/builds/{id}/events", megatron.url))
        .header("last-event-id", &last_id)
        .call()
        .expect("the stream");
    assert_eq!(
        response.headers()["content-type"].to_str().expect("type"),
        "text/event-stream"
    );
    // The build is over: the stream sends what is missing, then ends.
    let text = response
        .body_mut()
        .read_to_string()
        .expect("the stream ends");
    let mut numbers = Vec::new();
    let mut event = "";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("event: ") {
            event = if name == "log" { "log" } else { "other" };
        } else if let (Some(data), "log") = (line.strip_prefix("data: "), event) {
            let chunk: Value = serde_json::from_str(data).expect("json");
            assert_eq!(chunk["step"], 1, "step 0 was complete: {data}");
            for pair in chunk["lines"].as_array().expect("lines") {
                numbers.push(pair[0].as_u64().expect("number"));
                assert_eq!(pair[1].as_str().expect("html"), format!("line {}", pair[0]));
            }
        }
    }
    assert_eq!(numbers, (21..=50).collect::<Vec<u64>>(), "{text}");
    assert!(text.contains("event: end"), "{text}");
}
