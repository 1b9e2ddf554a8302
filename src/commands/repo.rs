//! `constructicon repo add|refresh`: ask the megatron to take a repo, or to
//! fetch and reconfigure one, and show what its config gave.

use crate::cli::RepoCommand;
use crate::client::Client;
use crate::config;
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;

/// A URL as the megatron should see it: local paths made absolute.
fn absolute_url(url: &str) -> String {
    let path = Path::new(url);
    if !url.contains("://") && path.exists() {
        if let Ok(absolute) = path.canonicalize() {
            return absolute.display().to_string();
        }
    }
    url.to_string()
}

fn print_repo(repo: &Value) -> ExitCode {
    let builders = repo["builders"].as_array().map_or(0, Vec::len);
    println!(
        "repo {}: {} builders at {}",
        repo["name"].as_str().unwrap_or("?"),
        builders,
        repo["commit"].as_str().unwrap_or("no commit yet")
    );
    if let Some(names) = repo["builders"].as_array() {
        for name in names {
            println!("  {}", name.as_str().unwrap_or("?"));
        }
    }
    if repo["error"].is_null() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "error: {}",
        repo["error"]["message"].as_str().unwrap_or("?")
    );
    if let Some(errors) = repo["error"]["errors"].as_array() {
        for error in errors {
            if let Ok(diagnostic) = serde_json::from_value::<config::Diagnostic>(error.clone()) {
                eprintln!("  {diagnostic}");
            }
        }
    }
    if repo["graph"].is_object() {
        eprintln!("the last good graph keeps serving");
    }
    ExitCode::from(1)
}

pub fn run(command: RepoCommand) -> anyhow::Result<ExitCode> {
    match command {
        RepoCommand::Add {
            url,
            branch,
            address,
        } => {
            let client = Client::new(&address.megatron);
            let body = json!({ "url": absolute_url(&url), "branch": branch });
            let repo = Client::ok(
                client.post("/api/v1/repos", &body, None)?,
                "adding the repo",
            )?;
            Ok(print_repo(&repo))
        }
        RepoCommand::List(args) => super::inspect::repos(args),
        RepoCommand::Remove { name, address } => {
            let client = Client::new(&address.megatron);
            let path = format!("/api/v1/repos/{}", crate::model::encode_segment(&name));
            let removed = Client::ok(client.delete(&path, None)?, "removing the repo")?;
            println!(
                "removed repo {name}; {} queued build(s) cancelled",
                removed["cancelled"]
            );
            Ok(ExitCode::SUCCESS)
        }
        RepoCommand::Refresh { name, address } => {
            let client = Client::new(&address.megatron);
            let path = format!("/api/v1/repos/{name}/refresh");
            let repo = Client::ok(client.post(&path, &json!({}), None)?, "refreshing the repo")?;
            Ok(print_repo(&repo))
        }
    }
}
