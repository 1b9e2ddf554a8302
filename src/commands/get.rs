//! `constructicon get BUILDER [--keep] [-r URL=REV]...`: for a person in a
//! checkout of their repo, the siblings a worker would have: the builder's
//! deps (cloned or fetched beside the checkout, at their revisions) and the
//! results its `get` entries fetch. It uses the worker's own code for both,
//! and asks the megatron for the builder as the graph has it (builder_base
//! merged) and for the builds `get` would choose now.
//!
//! The person's checkout itself is never touched. By default the siblings
//! are made to match exactly, removing what the builder does not need (each
//! named as it goes); with `--keep` nothing changes, and every difference
//! from what a worker would have is reported.

use crate::cli::GetArgs;
use crate::client::{parse_pairs, Client};
use crate::config::spec::DepSpec;
use crate::protocol::GetJob;
use crate::worker::client::Client as WorkerClient;
use crate::worker::deps::{self, Mode};
use crate::worker::workspace::{StepError, Workspace};
use anyhow::{bail, Context as _};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

pub fn run(args: GetArgs) -> anyhow::Result<ExitCode> {
    let start = args.repo_dir.clone().unwrap_or_else(|| ".".into());
    let repo = git2::Repository::discover(&start)
        .with_context(|| format!("{} is not inside a git checkout of a repo", start.display()))?;
    let root = repo
        .workdir()
        .context("the repo has no working folder (a bare repo?)")?
        .canonicalize()
        .context("reading the checkout's path")?;
    let name = root
        .file_name()
        .and_then(|n| n.to_str())
        .context("cannot tell the repo's name from its folder")?
        .to_string();
    let deps_dir = root
        .parent()
        .context("the checkout has no parent folder")?
        .to_path_buf();
    let pins: BTreeMap<String, String> = parse_pairs(&args.revisions, "-r")?
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
        .collect();
    let client = Client::new(&args.address.megatron);

    let builders = builders_of(&client, &name, &args.builder)?;
    let mut all_deps: Vec<DepSpec> = Vec::new();
    let mut all_gets: Vec<GetJob> = Vec::new();
    for builder in &builders {
        let view = Client::ok(
            client.get(&format!("/api/v1/builders/{builder}"))?,
            "reading the builder",
        )?;
        let spec_deps: Vec<DepSpec> =
            serde_json::from_value(view["spec"]["deps"].clone()).unwrap_or_default();
        for dep in spec_deps {
            match all_deps.iter().find(|d| d.name == dep.name) {
                Some(other) if other.url != dep.url || other.revision != dep.revision => bail!(
                    "builders disagree on the dep folder {}: {} at {} and {} at {}",
                    dep.name,
                    other.url,
                    other.revision.as_deref().unwrap_or("its default branch"),
                    dep.url,
                    dep.revision.as_deref().unwrap_or("its default branch")
                ),
                Some(_) => {}
                None => all_deps.push(dep),
            }
        }
        let resolved = Client::ok(
            client.get(&format!("/api/v1/builders/{builder}/get"))?,
            "choosing builds to get",
        )?;
        let gets: Vec<GetJob> = serde_json::from_value(resolved["get"].clone()).unwrap_or_default();
        all_gets.extend(gets);
        println!("builder {builder}");
    }

    let mode = if args.keep { Mode::Keep } else { Mode::Local };
    let workspace = Workspace {
        deps_dir: deps_dir.clone(),
        build_dir: root.clone(),
        tmp_dir: std::env::temp_dir(),
    };
    let get_folders: Vec<&str> = all_gets.iter().map(|g| g.folder.as_str()).collect();
    let request = deps::Request {
        repo: &name,
        repo_url: &root.display().to_string(),
        revision: "HEAD",
        fetch_refs: &[],
        deps: &all_deps,
        pins: &pins,
        get_folders,
        mode,
    };
    let mut differences = 0;
    let mut log = |line: &str| {
        if line.starts_with("differs: ") {
            differences += 1;
        }
        println!("  {line}");
    };
    let never = || false;
    let checkout = deps::checkout(&workspace, &request, &mut log, &never);
    if let Err(error) = checkout.result {
        bail!("{}", step_error(error));
    }

    for get in &all_gets {
        if args.keep {
            compare_get(&client, &deps_dir, get, &mut log)?;
        } else {
            let worker_client =
                WorkerClient::new(&args.address.megatron, "", "", Duration::from_secs(5));
            crate::worker::get::get_all(
                &worker_client,
                &workspace,
                &name,
                std::slice::from_ref(get),
                &mut log,
                &never,
            )
            .map_err(|e| anyhow::anyhow!("{}", step_error(e)))?;
        }
    }
    if args.keep {
        println!(
            "{differences} {} from what a worker would have; nothing was changed",
            if differences == 1 {
                "difference"
            } else {
                "differences"
            }
        );
    } else {
        println!(
            "the siblings of {} now match what a worker would have",
            root.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn step_error(error: StepError) -> String {
    match error {
        StepError::Failure(message) => message,
        other => format!("{other:#}"),
    }
}

/// The builders to get for: `.` is every builder of the repo; a name may be
/// the full one or the one the repo's config writes.
fn builders_of(client: &Client, repo: &str, builder: &str) -> anyhow::Result<Vec<String>> {
    if builder == "." {
        let view = Client::ok(
            client.get(&format!("/api/v1/repos/{repo}"))?,
            "reading the repo",
        )?;
        let names: Vec<String> = view["builders"]
            .as_array()
            .map(|b| {
                b.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() {
            bail!("the megatron knows no builders of repo {repo}");
        }
        return Ok(names);
    }
    for candidate in [builder.to_string(), format!("{repo}-{builder}")] {
        let reply = client.get(&format!("/api/v1/builders/{candidate}"))?;
        if reply.status == 200 {
            return Ok(vec![candidate]);
        }
    }
    bail!("the megatron knows no builder {builder} (nor {repo}-{builder})")
}

/// Reports how a get folder differs from the chosen build's results.
fn compare_get(
    client: &Client,
    deps_dir: &Path,
    get: &GetJob,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    let folder = deps_dir.join(&get.folder);
    let Some(build) = get.build else {
        log(&format!(
            "differs: a worker would fail to get {}: {}",
            get.builder,
            get.reason.as_deref().unwrap_or("no build")
        ));
        return Ok(());
    };
    let listing = Client::ok(
        client.get(&format!("/api/v1/builds/{build}/artifacts"))?,
        "listing artifacts",
    )?;
    let mut expected = BTreeMap::new();
    for artifact in listing["artifacts"].as_array().into_iter().flatten() {
        if let (Some(path), Some(size)) = (artifact["path"].as_str(), artifact["size"].as_u64()) {
            expected.insert(path.to_string(), size);
        }
    }
    for (path, size) in &expected {
        match std::fs::metadata(folder.join(path)) {
            Ok(meta) if meta.len() == *size => {}
            Ok(meta) => log(&format!(
                "differs: {}/{path} has {} bytes, build {build} of {} has {size}",
                folder.display(),
                meta.len(),
                get.builder
            )),
            Err(_) => log(&format!(
                "differs: {}/{path} is missing (from build {build} of {})",
                folder.display(),
                get.builder
            )),
        }
    }
    Ok(())
}
