//! `constructicon eval --against URL [--repo NAME] [PATH]`: what pushing this
//! config would change on a megatron, before the push.
//!
//! The config and exactly the files it imports (found by running it here
//! with a loader that records what it reads) are sent to the megatron, which
//! evaluates them as the repo's next config with its live cybertron and
//! workers and stores nothing. The answer is printed as a diff against the
//! live graph: `+ builder NAME`, `- builder NAME`, and
//! `~ builder NAME: KEY: OLD → NEW` for each key that changes.
//!
//! Exit 0 when the config evaluates (with changes or none), 1 when it has
//! errors (printed as `eval` prints them), 2 when the megatron could not be
//! asked (usage, an unknown repo, a refusal, no answer).

use super::eval::{script_and_root, usage};
use crate::cli::EvalArgs;
use crate::client::Client;
use crate::config::{
    default_cybertron, evaluate_repo, FsLoader, Limits, RepoInput, SourceLoader, CONSTRUCTICON_FILE,
};
use crate::megatron::speculate::{Changes, LiveGraph};
use crate::model::{encode_segment, url_key};
use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

const EXIT_ERRORS: u8 = 1;

pub fn run(args: &EvalArgs, megatron: &str) -> ExitCode {
    match ask(args, megatron) {
        Ok(code) => code,
        Err(e) => usage(&format!("{e:#}")),
    }
}

fn ask(args: &EvalArgs, megatron: &str) -> anyhow::Result<ExitCode> {
    let (script, root) = script_and_root(&args.path).map_err(anyhow::Error::msg)?;
    let files = config_files(&script, &root)?;
    let client = Client::new(megatron);
    let repo = match &args.repo {
        Some(repo) => repo.clone(),
        None => repo_of_checkout(&client, &root)?,
    };
    let path = format!("/api/v1/repos/{}/eval", encode_segment(&repo));
    let reply = client.post(&path, &json!({ "files": files }), None)?;
    match reply.status {
        200 if args.json => print_json(&reply.body),
        200 => print_changes(&repo, &reply.body),
        422 if args.json => {
            print_json(&reply.body);
            return Ok(ExitCode::from(EXIT_ERRORS));
        }
        422 => {
            print_refusal(&reply.body);
            return Ok(ExitCode::from(EXIT_ERRORS));
        }
        _ => {
            Client::ok(reply, &format!("evaluating against repo {repo}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a config's files through `inner` and keeps what was read.
struct Recording {
    inner: FsLoader,
    read: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl SourceLoader for Recording {
    fn load(&self, relative: &str) -> Result<Vec<u8>, String> {
        let bytes = self.inner.load(relative)?;
        if let Ok(mut read) = self.read.lock() {
            read.insert(relative.to_string(), bytes.clone());
        }
        Ok(bytes)
    }
}

/// The script as `constructicon.rhai` and every file it imports, by path
/// inside the repo. A script's imports do not depend on cybertron, so
/// running it here with the built-in one reads the files the megatron's
/// evaluation will ask for, no more.
fn config_files(script: &Path, root: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let bytes =
        std::fs::read(script).with_context(|| format!("cannot read {}", script.display()))?;
    let recording = Arc::new(Recording {
        inner: FsLoader::new(root).with_context(|| format!("cannot read {}", root.display()))?,
        read: Mutex::new(BTreeMap::new()),
    });
    // Its errors are not ours to show: the megatron's evaluation finds the
    // same ones, against the live cybertron.
    let _ = evaluate_repo(
        RepoInput {
            name: "local".to_string(),
            file: CONSTRUCTICON_FILE.to_string(),
            bytes: bytes.clone(),
            loader: Some(recording.clone()),
        },
        Arc::new(default_cybertron()),
        &Limits::default(),
    );
    let mut read = recording
        .read
        .lock()
        .map(|read| read.clone())
        .unwrap_or_default();
    read.insert(CONSTRUCTICON_FILE.to_string(), bytes);
    read.into_iter()
        .map(|(path, bytes)| {
            String::from_utf8(bytes)
                .map(|text| (path.clone(), text))
                .map_err(|_| anyhow::anyhow!("{path} is not valid UTF-8, so no config may use it"))
        })
        .collect()
}

/// The megatron's repo whose URL is this checkout's `origin`.
fn repo_of_checkout(client: &Client, root: &Path) -> anyhow::Result<String> {
    let listed = Client::ok(client.get("/api/v1/repos")?, "listing the megatron's repos")?;
    let repos: Vec<(String, String)> = listed["repos"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["url"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let known = || {
        if repos.is_empty() {
            return "the megatron has no repos you may see".to_string();
        }
        let names: Vec<String> = repos
            .iter()
            .map(|(name, url)| format!("{name} ({url})"))
            .collect();
        format!("its repos: {}", names.join(", "))
    };
    let origin = git2::Repository::discover(root).ok().and_then(|repo| {
        let remote = repo.find_remote("origin").ok()?;
        remote.url().ok().map(str::to_string)
    });
    let Some(origin) = origin else {
        bail!(
            "{} is not in a git checkout with an origin remote, so the repo is not known; pass --repo NAME ({})",
            root.display(),
            known()
        );
    };
    let matching: Vec<&String> = repos
        .iter()
        .filter(|(_, url)| same_place(url, &origin))
        .map(|(name, _)| name)
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!(
            "no repo on the megatron comes from {}, this checkout's origin; pass --repo NAME ({})",
            crate::config::access::redact_url(&origin),
            known()
        ),
        several => bail!(
            "several repos on the megatron come from this checkout's origin: {}; pass --repo NAME",
            several
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Whether two repo URLs name the same place, however each is written:
/// `https://host/o/n.git`, `ssh://git@host/o/n`, `git@host:o/n` and
/// `file:///p` against `/p`.
fn same_place(a: &str, b: &str) -> bool {
    place(a) == place(b)
}

fn place(url: &str) -> String {
    let url = url_key(url);
    let rest = match url.split_once("://") {
        Some(("file", path)) => return path.trim_end_matches('/').to_string(),
        Some((_, rest)) => rest.to_string(),
        None => {
            // `user@host:path`, git's scp-like form; a local path has no `:`
            // before its first `/`.
            let colon = url.find(':');
            match colon {
                Some(at) if !url[..at].contains('/') => {
                    format!("{}/{}", &url[..at], &url[at + 1..])
                }
                _ => return url.trim_end_matches('/').to_string(),
            }
        }
    };
    let (host, path) = rest.split_once('/').unwrap_or((&rest, ""));
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    format!("{}/{}", host.to_lowercase(), path.trim_matches('/'))
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The diff as people read it: one line per builder or scheduler added or
/// removed, one per key changed.
pub fn changes_text(repo: &str, body: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let against: Option<LiveGraph> = serde_json::from_value(body["against"].clone()).ok();
    match against {
        Some(live) => {
            let _ = writeln!(
                out,
                "compared with repo {repo}'s live graph (version {}, commit {})",
                live.version,
                live.commit.get(..12).unwrap_or(&live.commit)
            );
        }
        None => {
            let _ = writeln!(out, "repo {repo} has no live graph yet: everything is new");
        }
    }
    for line in body["output"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "output: {}", line.as_str().unwrap_or_default());
    }
    let mut total = 0;
    for family in ["builder", "scheduler"] {
        let changes: Changes =
            serde_json::from_value(body[format!("{family}s")].clone()).unwrap_or_default();
        total += changes.added.len() + changes.removed.len() + changes.changed.len();
        for name in &changes.added {
            let _ = writeln!(out, "+ {family} {name}");
        }
        for name in &changes.removed {
            let _ = writeln!(out, "- {family} {name}");
        }
        for changed in &changes.changed {
            for key in &changed.keys {
                let _ = writeln!(
                    out,
                    "~ {family} {}: {}: {} → {}",
                    changed.name,
                    key.key,
                    compact(&key.old),
                    compact(&key.new)
                );
            }
        }
    }
    if total == 0 {
        let _ = writeln!(out, "no changes: the graph would stay as it is");
    }
    out
}

fn print_changes(repo: &str, body: &Value) {
    print!("{}", changes_text(repo, body));
    if let Some(rendered) = body["rendered_warnings"].as_str().filter(|r| !r.is_empty()) {
        eprint!("{rendered}");
        let count = body["warnings"].as_array().map_or(0, Vec::len);
        eprintln!(
            "warning: {count} {} in config",
            if count == 1 { "warning" } else { "warnings" }
        );
    }
}

fn print_refusal(body: &Value) {
    for line in body["output"].as_array().into_iter().flatten() {
        eprintln!("output: {}", line.as_str().unwrap_or_default());
    }
    eprint!("{}", body["rendered"].as_str().unwrap_or_default());
    eprintln!(
        "error: {}; the megatron would not take this config",
        body["error"].as_str().unwrap_or("the config has errors")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_written_differently_name_the_same_place() {
        let github = [
            "https://github.com/org/app.git",
            "https://GitHub.com/org/app/",
            "ssh://git@github.com/org/app",
            "git@github.com:org/app.git",
            "https://user@github.com/org/app",
        ];
        for url in github {
            assert!(same_place(url, github[0]), "{url}");
        }
        assert!(!same_place("https://github.com/org/other", github[0]));
        assert!(same_place("/srv/git/app", "file:///srv/git/app/"));
        assert!(same_place("/srv/git/app.git", "/srv/git/app"));
        assert!(!same_place("/srv/git/app", "/srv/git/app2"));
    }

    #[test]
    fn the_diff_reads_one_line_per_change() {
        let body = json!({
            "against": {"version": 3, "commit": "0123456789abcdef"},
            "builders": {
                "added": ["app-d"],
                "removed": ["app-a"],
                "changed": [{"name": "app-b", "keys": [
                    {"key": "steps[0].command", "old": "make", "new": "make all"},
                    {"key": "resources", "old": [], "new": ["db"]},
                ]}],
            },
            "schedulers": {"added": [], "removed": [], "changed": []},
            "output": [],
        });
        assert_eq!(
            changes_text("app", &body),
            "compared with repo app's live graph (version 3, commit 0123456789ab)\n\
             + builder app-d\n\
             - builder app-a\n\
             ~ builder app-b: steps[0].command: \"make\" → \"make all\"\n\
             ~ builder app-b: resources: [] → [\"db\"]\n"
        );
    }
}
