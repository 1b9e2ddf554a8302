//! `constructicon encrypt --repo R [--against URL]`: a secret for a repo's
//! config. The value is read on stdin and encrypted here, to the repo's
//! public key as the megatron gives it; only the armoured ciphertext is
//! printed, and the value never leaves this process unencrypted.

use crate::cli::EncryptArgs;
use crate::client::Client;
use anyhow::{bail, Context as _};
use std::io::Read as _;
use std::process::ExitCode;
use std::str::FromStr as _;

pub fn run(args: EncryptArgs) -> anyhow::Result<ExitCode> {
    if let Some(why) = crate::model::check_name(&args.repo) {
        bail!("repo name {:?} {why}", args.repo);
    }
    let megatron = args.against.as_deref().unwrap_or(&args.address.megatron);
    let client = Client::new(megatron);
    let path = format!("/api/v1/repos/{}/public-key", args.repo);
    let answer = Client::ok(
        client.get(&path)?,
        &format!("asking for repo {}'s public key", args.repo),
    )?;
    let key = answer["public_key"]
        .as_str()
        .context("the megatron's answer has no public_key")?;
    let recipient = age::x25519::Recipient::from_str(key)
        .map_err(|e| anyhow::anyhow!("the megatron's public key {key:?} is not an age key: {e}"))?;

    let mut value = Vec::new();
    std::io::stdin()
        .read_to_end(&mut value)
        .context("reading the secret on stdin")?;
    // `echo value |` adds a newline that is not part of the secret.
    while value.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        value.pop();
    }
    if value.is_empty() {
        bail!("nothing to encrypt: give the secret's value on stdin");
    }
    let min = crate::config::secrets::MIN_SECRET_LENGTH;
    if String::from_utf8_lossy(&value).chars().count() < min {
        bail!("the value is shorter than {min} characters: too short to mask in build logs");
    }
    let armoured = age::encrypt_and_armor(&recipient, &value).context("encrypting")?;
    print!("{armoured}");
    if !armoured.ends_with('\n') {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
