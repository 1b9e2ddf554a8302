//! What the system benchmarks share: the release binary, processes killed on
//! drop, an HTTP agent, and a megatron started on a free loopback port.

// Each bench uses its own part of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_constructicon");

/// The binary the processes run: [`BIN`], unless `CONSTRUCTICON_BENCH_BIN`
/// names another (a copy of an earlier build, to compare two side by side
/// under the same load).
pub fn bin() -> String {
    std::env::var("CONSTRUCTICON_BENCH_BIN").unwrap_or_else(|_| BIN.to_string())
}

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Starts a megatron with `dir/cybertron.rhai` and its data in `dir/data`;
/// returns it, its URL and its pid.
pub fn start_megatron(dir: &Path, log_level: &str) -> (Killed, String, u32) {
    let mut megatron = Command::new(bin())
        .args(["megatron", "--listen", "127.0.0.1:0", "--cybertron"])
        .arg(dir.join("cybertron.rhai"))
        .arg("--data")
        .arg(dir.join("data"))
        .env("RUST_LOG", log_level)
        .stdout(Stdio::piped())
        .spawn()
        .expect("megatron");
    let stdout = megatron.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("address").expect("read");
    // Drain the rest so the megatron never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let url = format!(
        "http://{}",
        first.trim_start_matches("megatron listening on http://")
    );
    let pid = megatron.id();
    (Killed(megatron), url, pid)
}

/// A git repo at `dir` on branch `main` with one commit holding `config` as
/// its `constructicon.rhai`.
pub fn git_repo(dir: &Path, config: &str) {
    let mut options = git2::RepositoryInitOptions::new();
    options.initial_head("main");
    let repo = git2::Repository::init_opts(dir, &options).expect("init");
    std::fs::write(dir.join("constructicon.rhai"), config).expect("write");
    let mut index = repo.index().expect("index");
    index
        .add_path(Path::new("constructicon.rhai"))
        .expect("add");
    index.write().expect("index");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let signature = git2::Signature::now("bench", "bench@example.invalid").expect("sig");
    repo.commit(Some("HEAD"), &signature, &signature, "config", &tree, &[])
        .expect("commit");
}
