//! The builder graph: a repo's specs merged with cybertron's `builder_base`,
//! named, checked against cybertron, and matched to workers.
//!
//! Merge rules (spec/original-model.md, cybertron): `accept` of both must
//! hold; cybertron's precommands run first and its commands last; deps,
//! uploads, urls, zips, unzips, schedulers and resources are added, and an
//! upload or url destination both declare is an error.

use super::accept::{unknown_features, AcceptCache};
use super::cybertron_checks::{unknown_resource, unknown_scheduler, unknown_secret};
use super::reader::{child, index, Problem};
use super::sandbox::Sandbox;
use super::spec::{
    CommandSpec, ConstructiconSpec, CybertronSpec, DepSpec, Features, SchedulerSpec,
};
use super::words::quoted;
use crate::model::full_name;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::mem::take;
use utoipa::ToSchema;

/// A repo's builders and schedulers, ready to schedule and run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub repo: String,
    /// By full name, `<repo>-<builder>`.
    pub builders: BTreeMap<String, Builder>,
    /// The repo's own schedulers by full name, and the cybertron schedulers
    /// its builders use, by their own name.
    pub schedulers: BTreeMap<String, Scheduler>,
    /// The repo's user workers.
    pub workers: BTreeMap<String, Features>,
    /// The repo's own secrets: name → armoured age ciphertext, opened only
    /// by the megatron when a build that names one is claimed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// sha256 of the config's text and the repo files it imports.
    pub config_hash: String,
    /// sha256 of the cybertron it was merged with.
    pub cybertron_hash: String,
}

/// A builder as the graph has it: its config merged with cybertron's
/// `builder_base`, every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Builder {
    /// The full name, `<repo>-<builder>`.
    pub name: String,
    pub repo: String,
    /// The workers it may run on, those for which every accept holds.
    pub workers: Vec<String>,
    /// Every accept expression that must hold: builder_base's, then its own.
    pub accept: Vec<String>,
    /// The configured steps: cybertron's precommands, its own, cybertron's
    /// commands.
    pub steps: Vec<Step>,
    /// The schedulers that start it, by full name.
    pub schedulers: Vec<String>,
    /// Exclusive resources a build holds while it runs.
    pub resources: Vec<String>,
    /// Other repos fetched beside the build folder.
    pub deps: Vec<DepSpec>,
    /// Source (relative to the build folder) → artifact path.
    pub upload: BTreeMap<String, String>,
    /// Upload sources sent as one zip.
    pub zip: Vec<String>,
    /// Artifact paths extracted after upload.
    pub unzip: Vec<String>,
    /// Link name → artifact path or URL, shown with each build.
    pub url: BTreeMap<String, String>,
    /// Results of other builders' builds to fetch before the steps.
    pub get: Vec<GetSpec>,
    /// Keep only the newest pending build per branch (builder_base's value
    /// when the builder does not say).
    #[serde(default)]
    pub collapse: bool,
    /// The secrets its steps get, by name (its own, then builder_base's):
    /// cybertron's or the repo's. Names only; values never reach a graph.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

/// One `get` entry: whose results, where they land, and how the build is
/// chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GetSpec {
    /// The builder's full name.
    pub builder: String,
    /// The folder beside the build folder they land in: the name as the
    /// config wrote it (`../basic/` for `get: #{ basic: [...] }`).
    pub folder: String,
    /// Value expressions over `build`; the build giving the greatest wins.
    pub values: Vec<String>,
}

/// One configured step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Step {
    pub name: String,
    pub command: String,
    /// Seconds without output before the step is killed.
    pub timeout: u64,
    /// Regexes: an output line matching one makes the step `warnings`.
    pub warnings: Vec<String>,
    /// Regexes for lines that are not warnings after all.
    pub suppress_warnings: Vec<String>,
}

/// A scheduler: its spec (by `type`), and the builders it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Scheduler {
    #[serde(flatten)]
    pub spec: SchedulerSpec,
    /// Full names of the builders it starts.
    pub builders: Vec<String>,
    /// Declared by cybertron, shared by every repo.
    pub cybertron: bool,
}

/// Where a problem lies: in the repo's config or in cybertron.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Repo,
    Cybertron,
}

/// Builds the graph; problems are pushed with their origin and the graph is
/// meaningful only when none were. Warnings are what is allowed but probably
/// not meant. The spec is consumed: its builders' commands become their
/// steps without a copy.
pub fn build(
    sandbox: &Sandbox,
    repo: &str,
    mut spec: ConstructiconSpec,
    cybertron: &CybertronSpec,
    problems: &mut Vec<(Origin, Problem)>,
    warnings: &mut Vec<(Origin, Problem)>,
) -> Graph {
    let mut report = |origin: Origin, problem: Problem| problems.push((origin, problem));

    if spec.builders.len() > sandbox.limits.max_builders {
        report(
            Origin::Repo,
            Problem::new(
                "builders",
                format!(
                    "{} builders is more than the {} a repo may define",
                    spec.builders.len(),
                    sandbox.limits.max_builders
                ),
            ),
        );
        return empty_graph(repo);
    }

    // Schedulers: the repo's own, which may not reuse cybertron's names.
    let mut schedulers: BTreeMap<String, Scheduler> = BTreeMap::new();
    let mut scheduler_names: HashMap<&str, String> = HashMap::new();
    for (name, scheduler) in &spec.schedulers {
        if cybertron.schedulers.contains_key(name) {
            report(
                Origin::Repo,
                Problem::new(
                    &child("schedulers", name),
                    format!(
                        "scheduler \"{name}\" is already defined by cybertron; choose another name"
                    ),
                ),
            );
            continue;
        }
        let full = full_name(repo, name);
        scheduler_names.insert(name, full.clone());
        schedulers.insert(
            full,
            Scheduler {
                spec: scheduler.clone(),
                builders: Vec::new(),
                cybertron: false,
            },
        );
    }

    for name in spec.secrets.keys() {
        if cybertron.secrets.contains_key(name) {
            report(
                Origin::Repo,
                Problem::new(
                    &child("secrets", name),
                    format!(
                        "secret \"{name}\" is already defined by cybertron; choose another name"
                    ),
                ),
            );
        }
    }

    // Workers: cybertron's, and this repo's own.
    let mut workers: Vec<(&String, &Features)> = cybertron.workers.iter().collect();
    for (name, features) in &spec.workers {
        if cybertron.workers.contains_key(name) {
            report(
                Origin::Repo,
                Problem::new(
                    &child("workers", name),
                    format!("worker \"{name}\" is already defined by cybertron"),
                ),
            );
            continue;
        }
        workers.push((name, features));
    }
    let worker_features: Vec<(String, rhai::Dynamic)> = workers
        .iter()
        .map(|(name, features)| {
            let value = rhai::serde::to_dynamic(features).unwrap_or(rhai::Dynamic::UNIT);
            ((*name).clone(), value)
        })
        .collect();
    let known_features: BTreeSet<&str> = workers
        .iter()
        .flat_map(|(_, features)| features.keys().map(String::as_str))
        .collect();
    let mut accepts = AcceptCache::default();
    // The features an accept expression reads that no worker has, by slot.
    let mut unknown_by_slot: HashMap<usize, Vec<(String, String)>> = HashMap::new();
    let base = &cybertron.builder_base;
    let base_accept = base.accept.clone().unwrap_or_else(|| "true".into());
    let base_slot = accepts.slot(&base_accept);

    // Each builder's own precommands and commands, taken out to be moved
    // into its steps.
    let own_commands: Vec<(Vec<CommandSpec>, Vec<CommandSpec>)> = spec
        .builders
        .values_mut()
        .map(|b| (take(&mut b.precommands), take(&mut b.commands)))
        .collect();
    let spec = &spec;
    let mut builders = BTreeMap::new();
    for ((short, builder), (own_precommands, own_commands)) in
        spec.builders.iter().zip(own_commands)
    {
        let path = child("builders", short);
        let name = full_name(repo, short);
        let own_accept = builder.accept.clone().unwrap_or_else(|| "true".into());
        let own_slot = accepts.slot(&own_accept);

        let mut matched = Vec::new();
        let mut accept_failed = false;
        for (index, (worker, features)) in worker_features.iter().enumerate() {
            let mut holds = true;
            for (origin, slot) in [(Origin::Cybertron, base_slot), (Origin::Repo, own_slot)] {
                match accepts.answer(sandbox, slot, index, worker, features) {
                    Ok(true) => {}
                    Ok(false) => holds = false,
                    Err(message) => {
                        if !accept_failed {
                            let at = match origin {
                                Origin::Cybertron => "builder_base.accept".to_string(),
                                Origin::Repo => child(&path, "accept"),
                            };
                            report(origin, Problem::new(&at, message).at_value());
                        }
                        accept_failed = true;
                        holds = false;
                    }
                }
                if !holds {
                    break;
                }
            }
            if holds {
                matched.push(worker.clone());
            }
        }
        let unknown = unknown_by_slot
            .entry(own_slot)
            .or_insert_with(|| unknown_features(&own_accept, &known_features))
            .clone();
        if matched.is_empty() && !accept_failed {
            let names: Vec<&str> = worker_features.iter().map(|(n, _)| n.as_str()).collect();
            let mut problem = Problem::new(&path, format!(
                "no worker accepts this builder: accept `{own_accept}`{} holds for none of the workers ({})",
                if base_accept == "true" { String::new() } else { format!(" and builder_base's `{base_accept}`") },
                if names.is_empty() { "there are none".to_string() } else { names.join(", ") }
            ));
            if let Some((feature, help)) = unknown.first() {
                problem = problem.help(format!("no worker has the feature \"{feature}\": {help}"));
            }
            report(Origin::Repo, problem);
        } else if !accept_failed {
            for (feature, help) in unknown {
                warnings.push((
                    Origin::Repo,
                    Problem::new(
                        &child(&path, "accept"),
                        format!("the accept expression reads the feature \"{feature}\", which no worker has"),
                    )
                    .help(help)
                    .at_value(),
                ));
            }
        }

        let mut steps = Vec::with_capacity(
            base.precommands.len()
                + own_precommands.len()
                + own_commands.len()
                + base.commands.len(),
        );
        let mut push_steps = |label: &str, commands: Vec<CommandSpec>| {
            for (i, command) in commands.into_iter().enumerate() {
                steps.push(Step {
                    // Numbered from 1, as the original numbered steps.
                    name: step_name(label, i + 1),
                    command: command.command,
                    timeout: command.timeout,
                    warnings: command.warnings,
                    suppress_warnings: command.suppress_warnings,
                });
            }
        };
        push_steps("cybertron precommand", base.precommands.clone());
        push_steps("precommand", own_precommands);
        push_steps("command", own_commands);
        push_steps("cybertron command", base.commands.clone());

        let mut deps = builder.deps.clone();
        for dep in &base.deps {
            match deps.iter().find(|d| d.name == dep.name) {
                Some(own) if own.url == dep.url => {}
                Some(own) => report(
                    Origin::Repo,
                    Problem::new(
                        &child(&path, "deps"),
                        format!(
                            "dep \"{}\" ({}) clashes with builder_base's dep of the same folder name ({})",
                            dep.name, own.url, dep.url
                        ),
                    ),
                ),
                None => deps.push(dep.clone()),
            }
        }

        let mut upload = builder.upload.clone();
        for (source, destination) in &base.upload {
            if let Some((own_source, _)) = builder.upload.iter().find(|(_, d)| *d == destination) {
                report(
                    Origin::Repo,
                    Problem::new(
                        &child(&child(&path, "upload"), own_source),
                        format!("upload destination \"{destination}\" clashes with builder_base's upload of \"{source}\""),
                    ),
                );
            } else if let Some(own_destination) = builder.upload.get(source) {
                report(
                    Origin::Repo,
                    Problem::new(
                        &child(&child(&path, "upload"), source),
                        format!(
                            "upload source \"{source}\" (to \"{own_destination}\") clashes with builder_base's upload of it to \"{destination}\""
                        ),
                    ),
                );
            } else {
                upload.insert(source.clone(), destination.clone());
            }
        }
        let mut url = builder.url.clone();
        for (destination, suffix) in &base.url {
            if builder.url.contains_key(destination) {
                report(
                    Origin::Repo,
                    Problem::new(
                        &child(&child(&path, "url"), destination),
                        format!("url destination \"{destination}\" clashes with builder_base's url for it"),
                    ),
                );
            } else {
                url.insert(destination.clone(), suffix.clone());
            }
        }

        let mut builder_schedulers = Vec::new();
        for (origin, list, list_path) in [
            (
                Origin::Repo,
                &builder.schedulers,
                child(&path, "schedulers"),
            ),
            (
                Origin::Cybertron,
                &base.schedulers,
                "builder_base.schedulers".to_string(),
            ),
        ] {
            for (i, scheduler) in list.iter().enumerate() {
                let full = if let Some(full) = scheduler_names.get(scheduler.as_str()) {
                    full.clone()
                } else if let Some(shared) = cybertron.schedulers.get(scheduler) {
                    schedulers
                        .entry(scheduler.clone())
                        .or_insert_with(|| Scheduler {
                            spec: shared.clone(),
                            builders: Vec::new(),
                            cybertron: true,
                        });
                    scheduler.clone()
                } else {
                    if origin == Origin::Repo {
                        let known = known_schedulers(spec, cybertron);
                        report(
                            origin,
                            unknown_scheduler(&index(&list_path, i), scheduler, &known),
                        );
                    }
                    continue;
                };
                if !builder_schedulers.contains(&full) {
                    if let Some(s) = schedulers.get_mut(&full) {
                        s.builders.push(name.clone());
                    }
                    builder_schedulers.push(full);
                }
            }
        }

        if builder_schedulers.is_empty() {
            let known = known_schedulers(spec, cybertron);
            let help = if known.is_empty() {
                "define a scheduler, e.g. schedulers: #{ manual: #{ type: \"force\" } }, and name it in the builder's \"schedulers\"".to_string()
            } else {
                format!(
                    "name one in the builder's \"schedulers\"; defined schedulers: {}",
                    quoted(&known)
                )
            };
            warnings.push((
                Origin::Repo,
                Problem::new(
                    &path,
                    "no scheduler starts this builder: it never builds, and it cannot be forced",
                )
                .help(help),
            ));
        }

        let mut resources = Vec::new();
        for (i, resource) in builder.resources.iter().chain(&base.resources).enumerate() {
            if !cybertron.resources.contains(resource) {
                if i < builder.resources.len() {
                    report(
                        Origin::Repo,
                        unknown_resource(
                            &index(&child(&path, "resources"), i),
                            resource,
                            &cybertron.resources,
                        ),
                    );
                }
                continue;
            }
            if !resources.contains(resource) {
                resources.push(resource.clone());
            }
        }

        let mut get = Vec::new();
        for (target, expressions) in &builder.get {
            let entry_path = child(&child(&path, "get"), target);
            for (i, expression) in expressions.iter().enumerate() {
                if let Err(message) = sandbox.compile_expression(expression, &["build"]) {
                    report(
                        Origin::Repo,
                        Problem::new(
                            &index(&entry_path, i),
                            format!("invalid value expression `{expression}`: {message}"),
                        ),
                    );
                }
            }
            let target_name = if spec.builders.contains_key(target) {
                full_name(repo, target)
            } else {
                target.clone()
            };
            get.push(GetSpec {
                builder: target_name,
                folder: target.clone(),
                values: expressions.clone(),
            });
        }

        for (i, secret) in builder.secrets.iter().enumerate() {
            if !cybertron.secrets.contains_key(secret) && !spec.secrets.contains_key(secret) {
                let known: Vec<String> = spec
                    .secrets
                    .keys()
                    .chain(cybertron.secrets.keys())
                    .cloned()
                    .collect();
                report(
                    Origin::Repo,
                    unknown_secret(&index(&child(&path, "secrets"), i), secret, &known),
                );
            }
        }
        let secrets = union(&builder.secrets, &base.secrets);

        let zip = union(&builder.zip, &base.zip);
        let unzip = union(&builder.unzip, &base.unzip);
        let mut accept = Vec::new();
        if base_accept != "true" {
            accept.push(base_accept.clone());
        }
        accept.push(own_accept);
        builders.insert(
            name.clone(),
            Builder {
                name,
                repo: repo.to_string(),
                workers: matched,
                accept,
                steps,
                schedulers: builder_schedulers,
                resources,
                deps,
                upload,
                zip,
                unzip,
                url,
                get,
                collapse: builder.collapse.or(base.collapse).unwrap_or(false),
                secrets,
            },
        );
    }

    Graph {
        repo: repo.to_string(),
        builders,
        schedulers,
        workers: spec.workers.clone(),
        secrets: spec.secrets.clone(),
        config_hash: String::new(),
        cybertron_hash: String::new(),
    }
}

/// `"{label} {n}"`, in one allocation.
fn step_name(label: &str, n: usize) -> String {
    use std::fmt::Write as _;
    let mut name = String::with_capacity(label.len() + 4);
    name.push_str(label);
    let _ = write!(name, " {n}");
    name
}

fn empty_graph(repo: &str) -> Graph {
    Graph {
        repo: repo.to_string(),
        builders: BTreeMap::new(),
        schedulers: BTreeMap::new(),
        workers: BTreeMap::new(),
        secrets: BTreeMap::new(),
        config_hash: String::new(),
        cybertron_hash: String::new(),
    }
}

fn union(own: &[String], base: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    own.iter()
        .chain(base)
        .filter(|s| seen.insert(s.as_str()))
        .cloned()
        .collect()
}

fn known_schedulers(spec: &ConstructiconSpec, cybertron: &CybertronSpec) -> Vec<String> {
    spec.schedulers
        .keys()
        .chain(cybertron.schedulers.keys())
        .cloned()
        .collect()
}
