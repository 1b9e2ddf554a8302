//! `constructicon token WORKER` and `constructicon token --person NAME`:
//! issue (or, with `--revoke`, revoke) a worker's or a person's token with
//! the admin token, which is read from the megatron's data dir unless given.

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
    let client = Client::anonymous(&args.address.megatron);
    match (&args.worker, &args.person) {
        (_, Some(person)) => person_token(&client, &admin, person, args.revoke),
        (Some(worker), None) => worker_token(&client, &admin, worker, args.revoke),
        (None, None) => anyhow::bail!("name a worker, or a person with --person"),
    }
}

fn person_token(
    client: &Client,
    admin: &str,
    person: &str,
    revoke: bool,
) -> anyhow::Result<ExitCode> {
    let path = format!("/api/v1/people/{person}/tokens");
    if revoke {
        let revoked = Client::ok(client.delete(&path, Some(admin))?, "revoking the tokens")?;
        println!("revoked {} token(s) of {person}", revoked["revoked"]);
        return Ok(ExitCode::SUCCESS);
    }
    let issued = issue(client, admin, &path)?;
    eprintln!(
        "token {} for {person}: they run `constructicon login` with it (or set CONSTRUCTICON_USER_TOKEN)",
        issued["id"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

fn worker_token(
    client: &Client,
    admin: &str,
    worker: &str,
    revoke: bool,
) -> anyhow::Result<ExitCode> {
    let path = format!("/api/v1/workers/{worker}/token");
    if revoke {
        let revoked = Client::ok(client.delete(&path, Some(admin))?, "revoking the token")?;
        if revoked["revoked"] == true {
            println!("revoked the token of worker {worker}");
        } else {
            println!("worker {worker} had no token");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let issued = issue(client, admin, &path)?;
    if issued["known"] == false {
        eprintln!("note: no cybertron or registered repo declares a worker named {worker} yet");
    }
    Ok(ExitCode::SUCCESS)
}

/// POSTs for a new token at `path` and prints it, alone on stdout, so a
/// script can take it; the rest of the answer is the caller's to read.
fn issue(client: &Client, admin: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let issued = Client::ok(
        client.post(path, &json!({}), Some(admin))?,
        "issuing the token",
    )?;
    println!(
        "{}",
        issued["token"]
            .as_str()
            .context("the megatron's answer has no token")?
    );
    Ok(issued)
}
