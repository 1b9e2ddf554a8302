//! `constructicon login` and `logout`: keep (or forget) a personal token for
//! one megatron, checked against it first, so later commands act as that
//! person without the token on every command line.

use crate::cli::{LoginArgs, LogoutArgs};
use crate::client::{forget_token, save_token, Client};
use anyhow::{bail, Context as _};
use std::io::BufRead as _;
use std::process::ExitCode;

pub fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let token = match args.token {
        Some(token) => token,
        None => {
            eprintln!("paste the token `constructicon token --person NAME` printed, then enter:");
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the token from standard input")?;
            line
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        bail!("no token given");
    }
    let client = Client::anonymous(&args.address.megatron);
    let me = Client::ok(
        client.get_as("/api/v1/whoami", &token)?,
        "checking the token",
    )?;
    let Some(person) = me["person"].as_str() else {
        bail!("the megatron did not take the token as anyone's");
    };
    let path = save_token(&args.address.megatron, &token)?;
    println!(
        "logged in to {} as {person} (role: {}); the token is kept in {}",
        client.base(),
        me["role"]
            .as_str()
            .unwrap_or("none everywhere, some repos only"),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn logout(args: LogoutArgs) -> anyhow::Result<ExitCode> {
    if forget_token(&args.address.megatron)? {
        println!("forgot the token kept for {}", args.address.megatron);
    } else {
        println!("no token was kept for {}", args.address.megatron);
    }
    Ok(ExitCode::SUCCESS)
}
