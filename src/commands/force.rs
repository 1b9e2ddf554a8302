//! `constructicon force BUILDER [-p NAME=VALUE]... [-r URL=REV]... [--wait]`:
//! with `--wait`, the steps' output as it comes, then the result.

use super::follow::{follow_build, leave_running_on_interrupt, passed};
use crate::cli::ForceArgs;
use crate::client::{parse_pairs, Client};
use anyhow::Context as _;
use serde_json::json;
use std::process::ExitCode;

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
    println!(
        "{} #{} queued (build {id}): {}/builds/{id}",
        args.builder,
        forced["number"],
        client.base()
    );
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    leave_running_on_interrupt(client.base(), id);
    let last = follow_build(&client, id, true)?;
    Ok(if passed(&last) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
