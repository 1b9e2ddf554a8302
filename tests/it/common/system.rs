//! The running system for end-to-end tests: a real megatron process on a
//! loopback port, real worker processes, real git repos in temp dirs, and
//! HTTP over loopback. Every process is killed when its handle drops.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_constructicon");

/// Waits for a condition, polling every 10 ms, failing after `limit`.
#[track_caller]
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Status and JSON body (or the text as a JSON string).
pub fn reply(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut response = response.expect("the megatron answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A megatron process with its own data dir.
pub struct Megatron {
    child: Option<Child>,
    /// Flags beyond the test timings, kept for restarts.
    flags: Vec<String>,
    pub url: String,
    pub address: String,
    pub dir: PathBuf,
    /// Keeps the temp dir alive for restarts.
    _temp: Option<tempfile::TempDir>,
    /// Where its stderr goes, when a test reads it: `<dir>/megatron.log`.
    pub log_file: Option<PathBuf>,
}

/// Short intervals so leases run out in tests within a second or two.
pub const TIMING: &[&str] = &[
    "--claim-wait-ms",
    "2000",
    "--heartbeat-ms",
    "300",
    "--lease-ms",
    "1500",
    "--lease-check-ms",
    "100",
    "--usage-check-ms",
    "200",
];

impl Megatron {
    /// Starts a megatron with this cybertron in a new temp dir. Tests
    /// register repos from local paths, so unless the cybertron says which
    /// repos it allows, local ones are allowed.
    pub fn start(cybertron: &str) -> Megatron {
        Megatron::start_with_flags(cybertron, &[])
    }

    /// [`Megatron::start`] with its stderr, at log level debug, kept in
    /// [`Megatron::log_file`] for the test to read.
    pub fn start_logged(cybertron: &str) -> Megatron {
        Megatron::start_inner(cybertron, &[], true)
    }

    /// [`Megatron::start`] with more command-line flags.
    pub fn start_with_flags(cybertron: &str, flags: &[&str]) -> Megatron {
        Megatron::start_inner(cybertron, flags, false)
    }

    fn start_inner(cybertron: &str, flags: &[&str], logged: bool) -> Megatron {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().to_path_buf();
        let cybertron = format!(
            "{cybertron}\nif !(\"repos\" in cybertron) {{ cybertron.repos = #{{ allow: [\"/*\"] }}; }}\n"
        );
        std::fs::write(dir.join("cybertron.rhai"), cybertron).expect("write cybertron");
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let log_file = logged.then(|| dir.join("megatron.log"));
        let mut megatron = Megatron::spawn(&dir, "127.0.0.1:0", &flags, log_file.as_deref());
        megatron._temp = Some(temp);
        megatron
    }

    fn spawn(dir: &Path, listen: &str, flags: &[String], log_file: Option<&Path>) -> Megatron {
        let stderr = match log_file {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("open the megatron's log"),
            ),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(BIN)
            .arg("megatron")
            .arg("--cybertron")
            .arg(dir.join("cybertron.rhai"))
            .arg("--data")
            .arg(dir.join("data"))
            .arg("--listen")
            .arg(listen)
            // The short timings, but for those the test sets itself.
            .args(
                TIMING
                    .chunks(2)
                    .filter(|pair| !flags.iter().any(|f| f == pair[0]))
                    .flatten(),
            )
            .args(flags)
            .env(
                "RUST_LOG",
                if log_file.is_some() { "debug" } else { "warn" },
            )
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start the megatron");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .expect("the megatron prints its address")
            .expect("read");
        let address = first
            .strip_prefix("megatron listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_string();
        // Drain the rest so the megatron never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Megatron {
            child: Some(child),
            flags: flags.to_vec(),
            url: format!("http://{address}"),
            address,
            dir: dir.to_path_buf(),
            _temp: None,
            log_file: log_file.map(Path::to_path_buf),
        }
    }

    /// The megatron's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the megatron runs").id()
    }

    /// Sends a signal to the megatron process.
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_for("the megatron to exit", limit, || {
            child.try_wait().expect("wait")
        })
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the megatron again on the same data dir and address.
    pub fn restart(&mut self) {
        self.kill9();
        let address = self.address.clone();
        let temp = self._temp.take();
        let deadline = Instant::now() + Duration::from_secs(5);
        // The old socket may linger a moment.
        loop {
            let flags = self.flags.clone();
            let log_file = self.log_file.clone();
            let mut again = std::panic::catch_unwind(|| {
                Megatron::spawn(&self.dir, &address, &flags, log_file.as_deref())
            });
            match again.as_mut() {
                Ok(megatron) => {
                    self.child = megatron.child.take();
                    break;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(_) => panic!("the megatron does not restart on {address}"),
            }
        }
        self._temp = temp;
    }

    /// A GET with the admin token, as automation with the data dir calls.
    pub fn get(&self, path: &str) -> (u16, Value) {
        reply(
            agent()
                .get(&format!("{}{path}", self.url))
                .header("authorization", &format!("Bearer {}", self.admin_token()))
                .call(),
        )
    }

    pub fn get_text(&self, path: &str) -> String {
        let mut response = agent()
            .get(&format!("{}{path}", self.url))
            .header("authorization", &format!("Bearer {}", self.admin_token()))
            .call()
            .expect("get");
        response.body_mut().read_to_string().expect("text")
    }

    /// A POST with the admin token, as automation with the data dir calls.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        reply(
            agent()
                .post(&format!("{}{path}", self.url))
                .header("authorization", &format!("Bearer {}", self.admin_token()))
                .send_json(body),
        )
    }

    /// A POST with no credentials at all.
    pub fn post_anonymous(&self, path: &str, body: &Value) -> (u16, Value) {
        reply(agent().post(&format!("{}{path}", self.url)).send_json(body))
    }

    pub fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = agent().post(&format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        reply(request.send_json(body))
    }

    /// A POST of raw bytes (`application/octet-stream`), as log calls are.
    pub fn post_raw_with(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = agent()
            .post(&format!("{}{path}", self.url))
            .header("content-type", "application/octet-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        reply(request.send(&body[..]))
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("data").join("admin-token"))
            .expect("admin token")
            .trim()
            .to_string()
    }

    /// Issues a worker token through the admin API.
    pub fn token(&self, worker: &str) -> String {
        let admin = self.admin_token();
        let (status, body) = self.post_with(
            &format!("/api/v1/workers/{worker}/token"),
            &json!({}),
            &[("authorization", &format!("Bearer {admin}"))],
        );
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// Registers a repo; returns the repo's view.
    #[track_caller]
    pub fn add_repo(&self, url: &str) -> Value {
        let (status, body) = self.post("/api/v1/repos", &json!({ "url": url }));
        assert!(status == 201 || status == 200, "add repo: {status} {body}");
        body
    }

    #[track_caller]
    pub fn force(&self, builder: &str, parameters: Value) -> u64 {
        let (status, body) = self.post(
            &format!("/api/v1/builders/{builder}/force"),
            &json!({ "parameters": parameters }),
        );
        assert_eq!(status, 201, "force {builder}: {body}");
        body["build"].as_u64().expect("build id")
    }

    pub fn build(&self, id: u64) -> Value {
        let (status, body) = self.get(&format!("/api/v1/builds/{id}"));
        assert_eq!(status, 200, "build {id}: {body}");
        body
    }

    /// Waits until a build has finished and returns it.
    #[track_caller]
    pub fn wait_finished(&self, id: u64, limit: Duration) -> Value {
        wait_for(&format!("build {id} to finish"), limit, || {
            let build = self.build(id);
            (build["state"] == "finished").then_some(build)
        })
    }

    pub fn log(&self, id: u64, step: usize) -> String {
        self.get_text(&format!("/api/v1/builds/{id}/steps/{step}/log"))
    }
}

impl Drop for Megatron {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A worker process.
pub struct Worker {
    child: Option<Child>,
    pub name: String,
    pub workdir: PathBuf,
    _temp: tempfile::TempDir,
}

impl Worker {
    /// Issues a token for `name` and starts a worker with it.
    pub fn start(megatron: &Megatron, name: &str) -> Worker {
        let token = megatron.token(name);
        Worker::start_with_token(megatron, name, &token)
    }

    pub fn start_with_token(megatron: &Megatron, name: &str, token: &str) -> Worker {
        Worker::spawn(megatron, name, token, &[])
    }

    /// [`Worker::start`] with more command-line flags.
    pub fn start_with_flags(megatron: &Megatron, name: &str, flags: &[&str]) -> Worker {
        let token = megatron.token(name);
        Worker::spawn(megatron, name, &token, flags)
    }

    fn spawn(megatron: &Megatron, name: &str, token: &str, flags: &[&str]) -> Worker {
        let temp = tempfile::tempdir().expect("tempdir");
        let workdir = temp.path().join("work");
        let child = Command::new(BIN)
            .args([
                "worker",
                "--megatron",
                &megatron.url,
                "--name",
                name,
                "--token",
                token,
            ])
            .arg("--workdir")
            .arg(&workdir)
            .args(["--claim-wait-ms", "2000", "--kill-grace-ms", "300"])
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a worker");
        Worker {
            child: Some(child),
            name: name.to_string(),
            workdir,
            _temp: temp,
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        wait_for("the worker to exit", limit, || {
            child.try_wait().expect("wait")
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A git repo in a temp dir, on branch `main`, named by its folder.
pub struct GitRepo {
    pub path: PathBuf,
    _temp: tempfile::TempDir,
}

impl GitRepo {
    pub fn new(name: &str, config: &str) -> GitRepo {
        let temp = tempfile::tempdir().expect("tempdir");
        let path = temp.path().join(name);
        let mut options = git2::RepositoryInitOptions::new();
        options.initial_head("main");
        git2::Repository::init_opts(&path, &options).expect("git init");
        let repo = GitRepo { path, _temp: temp };
        repo.commit(&[("constructicon.rhai", config)], "config");
        repo
    }

    pub fn url(&self) -> String {
        self.path.display().to_string()
    }

    /// Writes files and commits them on the current branch; returns the commit.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        let repo = git2::Repository::open(&self.path).expect("open");
        let mut index = repo.index().expect("index");
        for (name, contents) in files {
            let file = self.path.join(name);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(&file, contents).expect("write");
            index.add_path(Path::new(name)).expect("add");
        }
        index.write().expect("write index");
        let tree = repo
            .find_tree(index.write_tree().expect("tree"))
            .expect("tree");
        let signature = git2::Signature::now("test", "test@example.invalid").expect("signature");
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            &tree,
            &parents,
        )
        .expect("commit")
        .to_string()
    }
}
