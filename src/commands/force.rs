//! `constructicon force BUILDER [-p NAME=VALUE]... [-r URL=REV]... [--wait]`.

use crate::cli::ForceArgs;
use crate::client::{parse_pairs, Client};
use anyhow::Context as _;
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;

pub fn run(args: ForceArgs) -> anyhow::Result<ExitCode> {
    let parameters = parse_pairs(&args.parameters, "-p")?;
    let revisions = parse_pairs(&args.revisions, "-r")?;
    let client = Client::new(&args.address.megatron);
    let body = json!({ "parameters": parameters, "revisions": revisions });
    let path = format!("/api/v1/builders/{}/force", args.builder);
    let forced = Client::ok(client.post(&path, &body, None)?, "forcing the build")?;
    let id = forced["build"]
        .as_u64()
        .context("the megatron's answer has no build id")?;
    println!("build {id}: {} #{}", args.builder, forced["number"]);
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let mut reported = 0;
    loop {
        let build = Client::ok(
            client.get(&format!("/api/v1/builds/{id}"))?,
            "following the build",
        )?;
        let steps = build["steps"].as_array().cloned().unwrap_or_default();
        while reported < steps.len() && !steps[reported]["result"].is_null() {
            let step = &steps[reported];
            println!(
                "  {}: {}{}",
                step["name"].as_str().unwrap_or("?"),
                step["result"].as_str().unwrap_or("?"),
                step["reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
            reported += 1;
        }
        if build["state"] == "finished" {
            let result = build["result"].as_str().unwrap_or("?");
            let reason = build["result_reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            println!("build {id}: {result}{reason}");
            return Ok(if matches!(result, "success" | "warnings") {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
