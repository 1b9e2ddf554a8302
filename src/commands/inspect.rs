//! The commands that look: `builders`, `builds BUILDER`, `build ID`,
//! `queue`, `workers` and `repo list`; and the ones that act on one build:
//! `cancel ID` and `rebuild ID`. Each prints a table or a summary for a
//! person, or with `--json` the megatron's answer as it is.
//!
//! A build is named by its id or as `BUILDER#N` wherever one is taken.

use crate::cli::{BuildArgs, BuildsArgs, ListArgs};
use crate::client::Client;
use crate::humanize::{ago, duration, size};
use crate::model::encode_segment;
use crate::store::now_ms;
use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use std::process::ExitCode;

/// A build's id from its id or its `BUILDER#N` name.
pub fn resolve_build(client: &Client, text: &str) -> anyhow::Result<u64> {
    if let Ok(id) = text.trim().parse() {
        return Ok(id);
    }
    let Some((builder, number)) = text.rsplit_once('#') else {
        bail!("{text:?} names no build: give its id, or BUILDER#N");
    };
    let number: u64 = number
        .parse()
        .with_context(|| format!("{text:?}: the build number after # is not a number"))?;
    let path = format!(
        "/api/v1/builders/{}/builds/{number}",
        encode_segment(builder)
    );
    let build = Client::ok(client.get(&path)?, &format!("finding {text}"))?;
    build["id"]
        .as_u64()
        .context("the megatron's answer has no build id")
}

pub fn print_json(value: &Value) -> ExitCode {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
    ExitCode::SUCCESS
}

/// A build's state or result as one word.
pub fn state_word(build: &Value) -> String {
    match (build["state"].as_str(), build["result"].as_str()) {
        (Some("finished"), Some(result)) => result.to_string(),
        (Some(state), _) => state.to_string(),
        _ => "?".to_string(),
    }
}

/// `#3 success, 2 min ago` for a build in a list.
fn in_short(build: &Value, now: u64) -> String {
    if build.is_null() {
        return "no builds yet".to_string();
    }
    let when = build["finished"]
        .as_u64()
        .or(build["started"].as_u64())
        .or(build["created"].as_u64());
    format!(
        "#{} {}{}",
        build["number"],
        state_word(build),
        when.map(|t| format!(", {}", ago(t, now)))
            .unwrap_or_default()
    )
}

/// Left-aligned columns, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn builders(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.address.megatron);
    let answer = Client::ok(client.get("/api/v1/builders")?, "listing builders")?;
    if args.json {
        return Ok(print_json(&answer));
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = answer["builders"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            vec![
                b["name"].as_str().unwrap_or("?").to_string(),
                in_short(&b["last"], now),
                b["workers"]
                    .as_array()
                    .map(|w| {
                        w.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(&["BUILDER", "LAST BUILD", "WORKERS"], &rows);
    Ok(ExitCode::SUCCESS)
}

pub fn builds(args: BuildsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.address.megatron);
    let path = format!(
        "/api/v1/builders/{}/builds?limit={}",
        encode_segment(&args.builder),
        args.limit
    );
    let answer = Client::ok(client.get(&path)?, "listing builds")?;
    if args.json {
        return Ok(print_json(&answer));
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = answer["builds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            let took = match (b["started"].as_u64(), b["finished"].as_u64()) {
                (Some(s), Some(f)) => duration(f.saturating_sub(s)),
                (Some(s), None) => format!("{} so far", duration(now.saturating_sub(s))),
                _ => String::new(),
            };
            vec![
                format!("#{}", b["number"]),
                b["id"].to_string(),
                state_word(b),
                b["revision"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(10)
                    .collect(),
                b["created"]
                    .as_u64()
                    .map(|t| ago(t, now))
                    .unwrap_or_default(),
                took,
                b["reason"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    table(
        &[
            "#", "ID", "RESULT", "REVISION", "QUEUED", "DURATION", "REASON",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints a build for a person: what, why, where, and its steps.
pub fn describe_build(client: &Client, build: &Value) {
    let now = now_ms();
    println!(
        "{} #{}: {}{}",
        build["builder"].as_str().unwrap_or("?"),
        build["number"],
        state_word(build),
        build["result_reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    println!("  id:        {}", build["id"]);
    println!("  reason:    {}", build["reason"].as_str().unwrap_or(""));
    println!("  revision:  {}", build["revision"].as_str().unwrap_or(""));
    if let Some(worker) = build["worker"].as_str() {
        println!("  worker:    {worker}");
    }
    if let Some(created) = build["created"].as_u64() {
        println!("  queued:    {}", ago(created, now));
    }
    for (name, value) in build["parameters"].as_object().into_iter().flatten() {
        println!("  parameter: {name}={}", value.as_str().unwrap_or(""));
    }
    println!("  steps:");
    for (i, step) in build["steps"].as_array().into_iter().flatten().enumerate() {
        let took = match (step["started"].as_u64(), step["finished"].as_u64()) {
            (Some(s), Some(f)) => duration(f.saturating_sub(s)),
            (Some(_), None) => "running".to_string(),
            _ => String::new(),
        };
        let result = step["result"]
            .as_str()
            .unwrap_or(if step["started"].is_null() {
                "-"
            } else {
                "running"
            });
        println!(
            "    {i:>2} {:<28} {result:<10} {took:>10}{}",
            step["name"].as_str().unwrap_or("?"),
            step["reason"]
                .as_str()
                .map(|r| format!("  {r}"))
                .unwrap_or_default()
        );
    }
    for artifact in build["artifacts"].as_array().into_iter().flatten() {
        println!(
            "  artifact:  {} ({}) {}/api/v1/builds/{}/artifacts/{}",
            artifact["path"].as_str().unwrap_or("?"),
            size(artifact["size"].as_u64().unwrap_or(0)),
            client.base(),
            build["id"],
            artifact["path"].as_str().unwrap_or("")
        );
    }
    println!("  page:      {}/builds/{}", client.base(), build["id"]);
}

pub fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.address.megatron);
    let id = resolve_build(&client, &args.build)?;
    let build = Client::ok(
        client.get(&format!("/api/v1/builds/{id}"))?,
        "reading the build",
    )?;
    if args.json {
        return Ok(print_json(&build));
    }
    describe_build(&client, &build);
    Ok(ExitCode::SUCCESS)
}

pub fn cancel(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.address.megatron);
    let id = resolve_build(&client, &args.build)?;
    let build = Client::ok(
        client.post(&format!("/api/v1/builds/{id}/cancel"), &json!({}), None)?,
        "cancelling the build",
    )?;
    if args.json {
        return Ok(print_json(&build));
    }
    let name = format!(
        "{} #{}",
        build["builder"].as_str().unwrap_or("?"),
        build["number"]
    );
    if build["state"] == "finished" {
        println!("{name}: cancelled before it started");
    } else {
        println!("{name}: asked to stop; it ends within a second");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn rebuild(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.address.megatron);
    let id = resolve_build(&client, &args.build)?;
    let built = Client::ok(
        client.post(&format!("/api/v1/builds/{id}/rebuild"), &json!({}), None)?,
        "rebuilding",
    )?;
    if args.json {
        return Ok(print_json(&built));
    }
    println!(
        "{} #{} (build {}): queued, {}/builds/{}",
        built["builder"].as_str().unwrap_or("?"),
        built["number"],
        built["build"],
        client.base(),
        built["build"]
    );
    Ok(ExitCode::SUCCESS)
}

pub fn queue(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.address.megatron);
    let answer = Client::ok(client.get("/api/v1/queue")?, "reading the queue")?;
    if args.json {
        return Ok(print_json(&answer));
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = answer["pending"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            vec![
                format!("{} #{}", p["builder"].as_str().unwrap_or("?"), p["number"]),
                p["build"].to_string(),
                p["created"]
                    .as_u64()
                    .map(|t| ago(t, now))
                    .unwrap_or_default(),
                p["reason"].as_str().unwrap_or("").to_string(),
                p["waiting"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("nothing waits");
    } else {
        table(
            &["BUILD", "ID", "QUEUED", "REASON", "WAITING BECAUSE"],
            &rows,
        );
    }
    for held in answer["resources"].as_array().into_iter().flatten() {
        println!(
            "resource {} is held by build {}",
            held["resource"].as_str().unwrap_or("?"),
            held["build"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn workers(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.address.megatron);
    let answer = Client::ok(client.get("/api/v1/workers")?, "listing workers")?;
    if args.json {
        return Ok(print_json(&answer));
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = answer["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            let state = match (w["online"].as_bool(), w["build"].as_u64()) {
                (_, Some(build)) => format!("busy (build {build})"),
                (Some(true), None) => "online".to_string(),
                _ => "offline".to_string(),
            };
            let features: Vec<String> = w["features"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string)))
                .collect();
            vec![
                w["name"].as_str().unwrap_or("?").to_string(),
                state,
                w["last_seen"]
                    .as_u64()
                    .map(|t| ago(t, now))
                    .unwrap_or_else(|| "never".into()),
                features.join(" "),
                w["repo"].as_str().unwrap_or("every repo").to_string(),
            ]
        })
        .collect();
    table(
        &["WORKER", "STATE", "LAST SEEN", "FEATURES", "SERVES"],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

pub fn repos(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.address.megatron);
    let answer = Client::ok(client.get("/api/v1/repos")?, "listing repos")?;
    if args.json {
        return Ok(print_json(&answer));
    }
    let rows: Vec<Vec<String>> = answer["repos"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                r["name"].as_str().unwrap_or("?").to_string(),
                r["url"].as_str().unwrap_or("").to_string(),
                r["commit"]
                    .as_str()
                    .unwrap_or("-")
                    .chars()
                    .take(10)
                    .collect(),
                r["builders"].as_array().map_or(0, Vec::len).to_string(),
                match r["error"]["message"].as_str() {
                    Some(message) => format!("error: {message}"),
                    None => "ok".to_string(),
                },
            ]
        })
        .collect();
    table(&["REPO", "URL", "COMMIT", "BUILDERS", "CONFIG"], &rows);
    Ok(ExitCode::SUCCESS)
}

pub fn usage(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.address.megatron);
    let answer = Client::ok(client.get("/api/v1/usage")?, "reading disk usage")?;
    if args.json {
        return Ok(print_json(&answer));
    }
    let bytes = |v: &serde_json::Value| size(v.as_u64().unwrap_or(0));
    let mut rows = Vec::new();
    for repo in answer["repos"].as_array().into_iter().flatten() {
        let name = repo["repo"].as_str().unwrap_or("?");
        for b in repo["builders"].as_array().into_iter().flatten() {
            rows.push(vec![
                name.to_string(),
                b["builder"].as_str().unwrap_or("?").to_string(),
                b["builds"].as_u64().unwrap_or(0).to_string(),
                bytes(&b["log_bytes"]),
                bytes(&b["artifact_bytes"]),
            ]);
        }
    }
    rows.push(vec![
        "total".into(),
        String::new(),
        String::new(),
        bytes(&answer["log_bytes"]),
        bytes(&answer["artifact_bytes"]),
    ]);
    table(&["REPO", "BUILDER", "BUILDS", "LOGS", "ARTIFACTS"], &rows);
    Ok(ExitCode::SUCCESS)
}
