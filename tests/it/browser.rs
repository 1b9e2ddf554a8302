//! The web UI in a real browser: Debian's Chromium, driven over WebDriver
//! (chromedriver) with fantoccini, against a real megatron and worker on
//! loopback. Each test reads like a person's steps and waits for what it
//! expects with a deadline, never a fixed sleep. Screenshots of every page
//! are written to `target/ui-screenshots/` for a reviewer to look at.
//!
//! Chromium and chromedriver come from Debian's `chromium` and
//! `chromium-driver` packages (`.ci/run` installs them).

use crate::common::system::{GitRepo, Megatron, Worker};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

const CYBERTRON: &str = r#"cybertron = #{
    workers: #{ w1: #{ platform: "linux" } },
    access: #{ anonymous: "viewer", people: #{ olga: "operator", vic: "viewer" } },
};"#;

const REPO: &str = r#"constructicon = #{
    builders: #{
        slow: #{
            commands: ["for i in $(seq 1 {lines}); do echo line $i of {lines}; sleep 0.05; done"],
            schedulers: ["force"],
        },
        sleepy: #{ commands: ["echo going to sleep; sleep 60"], schedulers: ["force"] },
        files: #{
            commands: ["printf 'results, byte for byte' > report.txt"],
            upload: #{ "report.txt": "report.txt" },
            schedulers: ["force"],
        },
    },
    schedulers: #{ force: #{ type: "force", parameters: #{ lines: "5" } } },
};"#;

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists(),
            "the browser tests need Debian's chromium and chromium-driver: apt-get install chromium chromium-driver (as .ci/run does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = ureq::get(&format!("{url}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .is_some_and(|body| body.contains("\"ready\":true"));
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser session: headless Chromium with a fresh profile and no
/// network beyond loopback.
async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("write screenshot");
}

/// Waits until `check` gives a value, trying every 50 ms.
async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text_of(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

async fn script(client: &Client, js: &str) -> Value {
    client.execute(js, vec![]).await.expect("script")
}

async fn log_in(client: &Client, url: &str, token: &str) {
    client
        .goto(&format!("{url}/login"))
        .await
        .expect("login page");
    client
        .find(Locator::Id("token"))
        .await
        .expect("token field")
        .send_keys(token)
        .await
        .expect("type the token");
    client
        .find(Locator::Css("section.login button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("log in");
}

fn person_token(megatron: &Megatron, person: &str) -> String {
    let (status, body) = megatron.post(&format!("/api/v1/people/{person}/tokens"), &json!({}));
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("token").to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_person_forces_watches_cancels_and_rebuilds_in_the_browser() {
    let megatron = Megatron::start(CYBERTRON);
    let repo = GitRepo::new("hello", REPO);
    megatron.add_repo(&repo.url());
    let broken = GitRepo::new(
        "broken",
        "constructicon = #{\n    builders: #{ b: #{ comands: [\"true\"] } },\n};\n",
    );
    megatron.add_repo(&broken.url());
    let _worker = Worker::start(&megatron, "w1");
    let olga = person_token(&megatron, "olga");
    let vic = person_token(&megatron, "vic");
    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("profile");
    let url = megatron.url.clone();
    runtime().block_on(async move {
        let client = browser(&driver, profile.path()).await;

        // The home page, as anyone sees it: builders, no forms.
        client.goto(&url).await.expect("home");
        let title = client.title().await.expect("title");
        assert_eq!(title, "Builders · constructicon");
        assert!(text_of(&client, "body").await.unwrap_or_default().contains("hello-slow"));
        screenshot(&client, "home").await;

        // Log in as an operator.
        log_in(&client, &url, &olga).await;
        until("the page to say who is logged in", Duration::from_secs(5), || async {
            text_of(&client, "header .who").await.filter(|t| t == "olga")
        })
        .await;

        // To a builder, and force it with a changed parameter.
        client.goto(&url).await.expect("home");
        client
            .find(Locator::LinkText("hello-slow"))
            .await
            .expect("the builder's link")
            .click()
            .await
            .expect("open the builder");
        let field = client
            .find(Locator::Css("input[name='p.lines']"))
            .await
            .expect("the parameter's field");
        assert_eq!(field.prop("value").await.expect("value").as_deref(), Some("5"));
        screenshot(&client, "builder").await;
        field.clear().await.expect("clear");
        field.send_keys("40").await.expect("type");
        client
            .find(Locator::Css("form.force button[type=submit]"))
            .await
            .expect("Force")
            .click()
            .await
            .expect("force");
        until("the build's page", Duration::from_secs(5), || async {
            let now = client.current_url().await.ok()?;
            now.path().starts_with("/builds/").then_some(())
        })
        .await;
        let build_url = client.current_url().await.expect("url").to_string();

        // The running step's log grows with no reload.
        script(&client, "window.__still = 'the same page';").await;
        let count = |client: &Client| {
            let client = client.clone();
            async move {
                script(&client, "return document.querySelectorAll('ol.log li').length;")
                    .await
                    .as_u64()
                    .unwrap_or(0)
            }
        };
        let first = until("the first log lines", Duration::from_secs(10), || async {
            let n = count(&client).await;
            (n > 2).then_some(n)
        })
        .await;
        let later = until("more log lines", Duration::from_secs(10), || async {
            let n = count(&client).await;
            (n > first + 5).then_some(n)
        })
        .await;
        assert!(later > first);
        assert_eq!(
            script(&client, "return window.__still || null;").await,
            json!("the same page"),
            "the log grew without a reload"
        );
        screenshot(&client, "build-running").await;
        until("the build to succeed", Duration::from_secs(20), || async {
            text_of(&client, "#build-state").await.filter(|t| t == "success")
        })
        .await;
        let body = until("the last line", Duration::from_secs(10), || async {
            text_of(&client, "body")
                .await
                .filter(|t| t.contains("line 40 of 40"))
        })
        .await;
        assert!(body.contains("forced by olga"));
        script(&client, "window.scrollTo(0, 0);").await;
        screenshot(&client, "build").await;

        // Rebuild the finished build.
        client
            .find(Locator::Css("form[action$='/rebuild'] button"))
            .await
            .expect("Rebuild")
            .click()
            .await
            .expect("rebuild");
        until("the rebuild's page", Duration::from_secs(5), || async {
            let now = client.current_url().await.ok()?.to_string();
            (now != build_url && now.contains("/builds/")).then_some(())
        })
        .await;
        let reason = text_of(&client, "dl.facts").await.unwrap_or_default();
        assert!(reason.contains("rebuild of hello-slow #1 by olga"), "{reason}");

        // Cancel a running build with its button.
        let (status, forced) = megatron_force(&url, &olga, "hello-sleepy");
        assert_eq!(status, 201, "{forced}");
        client
            .goto(&format!("{url}/builds/{}", forced["build"]))
            .await
            .expect("the sleepy build");
        until("the step to run", Duration::from_secs(10), || async {
            text_of(&client, "body")
                .await
                .filter(|t| t.contains("going to sleep"))
        })
        .await;
        client
            .find(Locator::Css("form[action$='/cancel'] button"))
            .await
            .expect("Cancel")
            .click()
            .await
            .expect("cancel");
        until("the build to end cancelled", Duration::from_secs(10), || async {
            text_of(&client, "#build-state").await.filter(|t| t == "cancelled")
        })
        .await;
        assert!(text_of(&client, "dl.facts").await.unwrap_or_default().contains("olga"));

        // An artifact downloads from its link.
        let (_, files) = megatron_force(&url, &olga, "hello-files");
        client
            .goto(&format!("{url}/builds/{}", files["build"]))
            .await
            .expect("the files build");
        let link = until("the artifact's link", Duration::from_secs(20), || async {
            let link = client.find(Locator::LinkText("report.txt")).await.ok()?;
            link.attr("href").await.ok()?
        })
        .await;
        let fetched = script(
            &client,
            &format!("return fetch({link:?}).then(r => r.text());"),
        )
        .await;
        assert_eq!(fetched, json!("results, byte for byte"));

        // A config error, with its source line and a caret.
        client.goto(&format!("{url}/repos/broken")).await.expect("the broken repo");
        let diagnostic = text_of(&client, "pre.diagnostic").await.expect("the error");
        assert!(diagnostic.contains("builders.b.comands: unused configuration key"), "{diagnostic}");
        assert!(diagnostic.contains("builders: #{ b: #{ comands: [\"true\"] } },"), "{diagnostic}");
        assert!(diagnostic.contains('^'), "{diagnostic}");
        screenshot(&client, "repo-error").await;

        client.goto(&format!("{url}/queue")).await.expect("queue");
        screenshot(&client, "queue").await;
        client.goto(&format!("{url}/workers")).await.expect("workers");
        assert!(text_of(&client, "table.workers").await.unwrap_or_default().contains("w1"));
        screenshot(&client, "workers").await;

        // Log out.
        client
            .find(Locator::Css("form[action='/logout'] button"))
            .await
            .expect("Log out")
            .click()
            .await
            .expect("log out");
        until("the login page", Duration::from_secs(5), || async {
            let now = client.current_url().await.ok()?;
            (now.path() == "/login").then_some(())
        })
        .await;
        screenshot(&client, "login").await;
        client.goto(&url).await.expect("home");
        assert!(client.find(Locator::Css("header .who")).await.is_err(), "still logged in");

        // A viewer gets no form, and a 403 if they post anyway.
        log_in(&client, &url, &vic).await;
        until("vic to be logged in", Duration::from_secs(5), || async {
            text_of(&client, "header .who").await.filter(|t| t == "vic")
        })
        .await;
        client.goto(&format!("{url}/builders/hello-slow")).await.expect("builder");
        assert!(client.find(Locator::Css("form.force")).await.is_err(), "a viewer was offered the force form");
        let csrf = script(&client, "return document.querySelector(\"input[name='_csrf']\").value;").await;
        let status = script(
            &client,
            &format!(
                "return fetch('/builders/hello-slow/force', {{method: 'POST', headers: {{'content-type': 'application/x-www-form-urlencoded'}}, body: '_csrf={}&p.lines=3'}}).then(r => r.status);",
                csrf.as_str().unwrap_or("")
            ),
        )
        .await;
        assert_eq!(status, json!(403));
        client.close().await.expect("close the browser");
    });
}

/// Forces a build over the API with a person's token.
fn megatron_force(url: &str, token: &str, builder: &str) -> (u16, Value) {
    crate::common::system::reply(
        ureq::post(&format!("{url}/api/v1/builders/{builder}/force"))
            .config()
            .http_status_as_error(false)
            .build()
            .header("authorization", &format!("Bearer {token}"))
            .send_json(json!({})),
    )
}

#[test]
fn what_users_write_is_inert_in_every_page() {
    const PAYLOAD: &str = r#"<img src=x onerror="window.__xss=1">"#;
    let megatron = Megatron::start(CYBERTRON);
    // A repo whose folder name, builder name, parameter value, log and
    // config error all carry markup and quotes.
    let repo = GitRepo::new(
        "x'\"><b>",
        &format!(
            r#"constructicon = #{{
    builders: #{{
        "a'\"><svg onload=window.__xss=2>": #{{ commands: ["echo '{payload}'; printf '\x1b[31m<script>window.__xss=3</script>\x1b[0m\n'; echo \"{{p}}\""], schedulers: ["force"] }},
    }},
    schedulers: #{{ force: #{{ type: "force", parameters: #{{ p: "x" }} }} }},
}};"#,
            payload = PAYLOAD.replace('"', "\\\"")
        ),
    );
    let view = megatron.add_repo(&repo.url());
    assert!(view["error"].is_null(), "{view}");
    let bad = GitRepo::new(
        "bad",
        &format!(
            "constructicon = #{{ builders: #{{ b: #{{ commands: [\"true\"], \"{}\": 1 }} }} }};",
            PAYLOAD.replace('"', "\\\"")
        ),
    );
    megatron.add_repo(&bad.url());
    let _worker = Worker::start(&megatron, "w1");
    let repo_name = view["name"].as_str().expect("name").to_string();
    let builder = view["builders"][0].as_str().expect("builder").to_string();
    let encode = |s: &str| constructicon::megatron::artifacts::paths::encode_segment(s);
    let (status, forced) = megatron.post(
        &format!("/api/v1/builders/{}/force", encode(&builder)),
        &json!({ "parameters": { "p": "\"><script>window.__xss=4</script>" } }),
    );
    assert_eq!(status, 201, "{forced}");
    let build = forced["build"].as_u64().expect("id");
    megatron.wait_finished(build, Duration::from_secs(20));
    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("profile");
    let url = megatron.url.clone();
    let pages = vec![
        format!("{url}/"),
        format!("{url}/repos/{}", encode(&repo_name)),
        format!("{url}/repos/bad"),
        format!("{url}/builders/{}", encode(&builder)),
        format!("{url}/builds/{build}"),
        format!("{url}/builds/{build}/steps/1"),
        format!("{url}/builds/{build}/steps/1?q=script"),
        format!("{url}/queue"),
    ];
    runtime().block_on(async move {
        let client = browser(&driver, profile.path()).await;
        for page in &pages {
            client.goto(page).await.expect("page");
            let inert = script(
                &client,
                "return window.__xss === undefined && document.querySelectorAll('main script, main b').length === 0 && ![...document.querySelectorAll('main *')].some(e => [...e.attributes].some(a => a.name.startsWith('on')));",
            )
            .await;
            assert_eq!(inert, json!(true), "{page} ran or built markup from user text");
        }
        // The text is still there, shown as text.
        client.goto(&format!("{url}/builds/{build}")).await.expect("build");
        let text = text_of(&client, "main").await.unwrap_or_default();
        assert!(text.contains("<script>window.__xss=4</script>"), "the parameter is shown as text");
        assert!(text.contains("onerror=\"window.__xss=1\""), "the log is shown as text");
        client.goto(&format!("{url}/repos/bad")).await.expect("bad");
        let text = text_of(&client, "main").await.unwrap_or_default();
        assert!(text.contains("unused configuration key"), "{text}");
        screenshot(&client, "escaped").await;
        client.close().await.expect("close");
    });
}
