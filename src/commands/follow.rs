//! `constructicon log BUILD [STEP] [-f]`, and following a build as `force
//! --wait` does: each step's output printed as it comes (the megatron
//! streams it; nothing is polled), a line on stderr naming each step, and
//! the result with the build's page at the end. The first ctrl-c leaves the
//! build running and says how to follow or cancel it.

use super::inspect::{resolve_build, state_word};
use crate::cli::LogArgs;
use crate::client::Client;
use crate::humanize::duration;
use anyhow::{bail, Context as _};
use serde_json::Value;
use std::io::Write as _;
use std::process::ExitCode;

fn build(client: &Client, id: u64) -> anyhow::Result<Value> {
    Client::ok(
        client.get(&format!("/api/v1/builds/{id}"))?,
        "reading the build",
    )
}

/// Copies a step's log to stdout; with `follow`, until the step ends.
fn print_step(client: &Client, id: u64, step: usize, follow: bool) -> anyhow::Result<()> {
    let path = format!(
        "/api/v1/builds/{id}/steps/{step}/log{}",
        if follow { "?follow=true" } else { "" }
    );
    let (status, mut body) = client.get_stream(&path)?;
    if !(200..300).contains(&status) {
        let mut text = String::new();
        let _ = body.read_to_string(&mut text);
        let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        bail!(
            "reading the log: {} (HTTP {status})",
            message["error"].as_str().unwrap_or(&text)
        );
    }
    let mut out = std::io::stdout().lock();
    let mut buffer = [0u8; 16 << 10];
    loop {
        let n = body.read(&mut buffer).context("reading the log")?;
        if n == 0 {
            break;
        }
        out.write_all(&buffer[..n])?;
        out.flush()?;
    }
    Ok(())
}

/// Prints every step of a build (following them live when `follow`), then
/// the result; returns the finished (or current) build.
pub fn follow_build(client: &Client, id: u64, follow: bool) -> anyhow::Result<Value> {
    let first = build(client, id)?;
    let steps: Vec<String> = first["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["name"].as_str().unwrap_or("?").to_string())
        .collect();
    for (index, name) in steps.iter().enumerate() {
        if !follow && first["steps"][index]["log_bytes"] == 0 {
            continue;
        }
        eprintln!("── {name}");
        print_step(client, id, index, follow)?;
    }
    // The last step's end comes a moment before the build's.
    let mut last = build(client, id)?;
    while follow && last["state"] != "finished" {
        last = Client::ok(
            client.get(&format!("/api/v1/builds/{id}?wait=true"))?,
            "waiting for the build's end",
        )?;
    }
    let took = match (last["started"].as_u64(), last["finished"].as_u64()) {
        (Some(s), Some(f)) => format!(" in {}", duration(f.saturating_sub(s))),
        _ => String::new(),
    };
    println!(
        "{} #{}: {}{}{took}  {}/builds/{id}",
        last["builder"].as_str().unwrap_or("?"),
        last["number"],
        state_word(&last),
        last["result_reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        client.base()
    );
    Ok(last)
}

/// On the first ctrl-c, says the build goes on and how to reach it, then
/// exits 130 (the shell's code for an interrupt).
pub fn leave_running_on_interrupt(base: &str, id: u64) {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT]) else {
        return;
    };
    let base = base.to_string();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            eprintln!(
                "\nthe build goes on at {base}/builds/{id}: follow it with `constructicon log {id} -f`, cancel it with `constructicon cancel {id}`"
            );
            std::process::exit(130);
        }
    });
}

/// Whether a finished build passed, for exit codes.
pub fn passed(build: &Value) -> bool {
    matches!(build["result"].as_str(), Some("success" | "warnings"))
}

pub fn log(args: LogArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.address.megatron);
    let id = resolve_build(&client, &args.build)?;
    let Some(step) = args.step else {
        if args.follow {
            leave_running_on_interrupt(client.base(), id);
        }
        let last = follow_build(&client, id, args.follow)?;
        return Ok(if !args.follow || passed(&last) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    };
    let current = build(&client, id)?;
    let steps = current["steps"].as_array().cloned().unwrap_or_default();
    let index = match step.parse::<usize>() {
        Ok(index) if index < steps.len() => index,
        _ => steps
            .iter()
            .position(|s| s["name"].as_str() == Some(step.as_str()))
            .with_context(|| {
                let names: Vec<String> = steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| format!("{i} ({})", s["name"].as_str().unwrap_or("?")))
                    .collect();
                format!(
                    "build {id} has no step {step:?}; its steps: {}",
                    names.join(", ")
                )
            })?,
    };
    print_step(&client, id, index, args.follow)?;
    Ok(ExitCode::SUCCESS)
}
