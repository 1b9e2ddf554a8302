//! `pulls REPO`: a repo's pull requests; `approve REPO NUMBER COMMIT`: let a
//! fork's head build.

use super::inspect::print_json;
use crate::cli::{ApproveArgs, PullsArgs};
use crate::client::Client;
use crate::model::encode_segment;
use serde_json::{json, Value};
use std::process::ExitCode;

fn line(pull: &Value) -> String {
    let head: String = pull["head"]
        .as_str()
        .unwrap_or("?")
        .chars()
        .take(10)
        .collect();
    let mut text = format!(
        "#{} {} (by {}{}) at {head}",
        pull["number"],
        pull["title"].as_str().unwrap_or(""),
        pull["author"].as_str().unwrap_or("?"),
        if pull["fork"] == true {
            ", from a fork"
        } else {
            ""
        },
    );
    if pull["state"] == "closed" {
        text.push_str(", closed");
    }
    if let Some(by) = pull["approved"]["by"].as_str() {
        text.push_str(&format!(", approved by {by}"));
    }
    let builds: Vec<String> = pull["builds"]
        .as_array()
        .map(|b| b.iter().map(|id| format!("build {id}")).collect())
        .unwrap_or_default();
    if !builds.is_empty() {
        text.push_str(&format!(": {}", builds.join(", ")));
    }
    if let Some(why) = pull["waiting"].as_str() {
        text.push_str(&format!("\n    {}", why.replace('\n', "\n    ")));
    }
    text
}

pub fn list(args: PullsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.address.megatron);
    let answer = Client::ok(
        client.get(&format!(
            "/api/v1/repos/{}/pulls",
            encode_segment(&args.repo)
        ))?,
        "listing the pull requests",
    )?;
    if args.json {
        return Ok(print_json(&answer));
    }
    let pulls = answer["pulls"].as_array().cloned().unwrap_or_default();
    if pulls.is_empty() {
        println!("{}: no pull requests heard of", args.repo);
    }
    for pull in &pulls {
        println!("{}", line(pull));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn approve(args: ApproveArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.address.megatron);
    let pull = Client::ok(
        client.post(
            &format!(
                "/api/v1/repos/{}/pulls/{}/approve",
                encode_segment(&args.repo),
                args.number
            ),
            &json!({ "commit": args.commit }),
            None,
        )?,
        "approving the pull request",
    )?;
    if args.json {
        return Ok(print_json(&pull));
    }
    println!("{}", line(&pull));
    Ok(ExitCode::SUCCESS)
}
