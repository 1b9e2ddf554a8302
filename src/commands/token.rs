//! `constructicon token WORKER`: issue a worker's token with the admin
//! token, which is read from the megatron's data dir unless given.

use crate::cli::TokenArgs;
use crate::client::Client;
use anyhow::Context as _;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

/// The admin token, given or read from the megatron's data dir.
pub fn admin_token(given: &Option<String>, file: &Path) -> anyhow::Result<String> {
    match given {
        Some(token) => Ok(token.clone()),
        None => Ok(std::fs::read_to_string(file)
            .with_context(|| {
                format!(
                    "reading the admin token from {} (the megatron's data dir; or pass --admin-token)",
                    file.display()
                )
            })?
            .trim()
            .to_string()),
    }
}

pub fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let admin = admin_token(&args.admin_token, &args.admin_token_file)?;
    let client = Client::new(&args.address.megatron);
    let path = format!("/api/v1/workers/{}/token", args.worker);
    let issued = Client::ok(
        client.post(&path, &json!({}), Some(&admin))?,
        "issuing the token",
    )?;
    println!(
        "{}",
        issued["token"]
            .as_str()
            .context("the megatron's answer has no token")?
    );
    if issued["known"] == false {
        eprintln!(
            "note: no cybertron or registered repo declares a worker named {} yet",
            args.worker
        );
    }
    Ok(ExitCode::SUCCESS)
}
