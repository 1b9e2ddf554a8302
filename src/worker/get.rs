//! The `get` step: the uploaded results of other builders' builds, chosen by
//! the megatron when the job was claimed, downloaded beside the build folder
//! into `<deps folder>/<folder>/`.
//!
//! Every path the megatron lists is checked before it is joined: a bad one
//! refuses the whole get, since a megatron (or a build's uploads) naming
//! `../x` must never write outside the folder. The folder is emptied first
//! and only folders and regular files are created in it, so no symlink can
//! redirect a write.

use super::client::Client;
use super::transfer;
use super::workspace::{remove_path, StepError, Workspace};
use crate::config::spec::unsafe_relative_path;
use crate::model::check_name;
use crate::protocol::{Artifact, GetJob};
use anyhow::Context;
use serde::Deserialize;

/// `GET /api/v1/builds/{id}/artifacts`, as far as the worker reads it.
#[derive(Debug, Deserialize)]
struct Listing {
    artifacts: Vec<Artifact>,
}

/// Downloads every entry of `gets` in order; the first that fails ends it.
pub fn get_all(
    client: &Client,
    workspace: &Workspace,
    repo: &str,
    gets: &[GetJob],
    log: &mut dyn FnMut(&str),
    stop: &dyn Fn() -> bool,
) -> Result<(), StepError> {
    for get in gets {
        get_one(client, workspace, repo, get, log, stop)?;
    }
    Ok(())
}

fn get_one(
    client: &Client,
    workspace: &Workspace,
    repo: &str,
    get: &GetJob,
    log: &mut dyn FnMut(&str),
    stop: &dyn Fn() -> bool,
) -> Result<(), StepError> {
    let Some(build) = get.build else {
        let reason = get
            .reason
            .clone()
            .unwrap_or_else(|| format!("no build of {} to get results from", get.builder));
        return Err(StepError::Failure(reason));
    };
    // The folder is emptied below: it must be one name beside the build
    // folder, never the build folder itself.
    if let Some(why) = check_name(&get.folder) {
        return Err(StepError::Failure(format!(
            "the get folder {:?} cannot be a folder name: {why}",
            get.folder
        )));
    }
    if get.folder == repo {
        return Err(StepError::Failure(format!(
            "the get folder \"{}\" is the build folder",
            get.folder
        )));
    }
    log(&format!(
        "getting the results of {} build {build} into ../{}",
        get.builder, get.folder
    ));
    // The megatron's refusals name no build: say which one.
    let context = |error: StepError| match error {
        StepError::Failure(message) => StepError::Failure(format!(
            "getting the results of {} build {build}: {message}",
            get.builder
        )),
        other => other,
    };
    let listing: Listing = transfer::get_json(
        client,
        &format!("/api/v1/builds/{build}/artifacts"),
        stop,
        log,
    )
    .map_err(context)?;
    for artifact in &listing.artifacts {
        if let Some(why) = unsafe_relative_path(&artifact.path) {
            return Err(StepError::Failure(format!(
                "build {build} lists an artifact path that {why}: {:?}; nothing was downloaded",
                artifact.path
            )));
        }
    }

    let folder = workspace.deps_dir.join(&get.folder);
    if std::fs::symlink_metadata(&folder).is_ok() {
        remove_path(&folder)?;
    }
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    let mut total = 0u64;
    for artifact in &listing.artifacts {
        if stop() {
            return Err(StepError::Stopped);
        }
        let to = folder.join(&artifact.path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let path = format!(
            "/api/v1/builds/{build}/artifacts/{}",
            transfer::encode_path(&artifact.path)
        );
        let size = transfer::download(client, &path, &to, stop, log).map_err(context)?;
        if size != artifact.size {
            return Err(StepError::Failure(format!(
                "{}: build {build} lists {} bytes but {size} came",
                artifact.path, artifact.size
            )));
        }
        log(&format!("  {} ({size} bytes)", artifact.path));
        total += size;
    }
    log(&format!(
        "got {} files, {total} bytes, from {} build {build}",
        listing.artifacts.len(),
        get.builder
    ));
    Ok(())
}
