//! The typed model of both scripts, every key of `spec/original-model.md`,
//! and how each is read from a script's value.
//!
//! These are the specs as written, defaults filled in; merging with
//! cybertron's `builder_base` and naming happens in `graph`.

use super::reader::{child, index, Fields, Reader};
use crate::model::check_name;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Worker features: name → value (strings mostly; numbers and bools allowed).
pub type Features = serde_json::Map<String, Value>;

/// The default warning pattern of a step.
pub const DEFAULT_WARNING: &str = ".*warning[: ]";
/// Seconds without output before a step is killed, unless it says otherwise.
pub const DEFAULT_TIMEOUT: u64 = 300;
/// The hard cap of every step, in seconds.
pub const MAX_TIMEOUT: u64 = 2 * 60 * 60;

/// `constructicon = #{ builders, schedulers, workers }`.
#[derive(Debug, Clone, Default)]
pub struct ConstructiconSpec {
    pub builders: BTreeMap<String, BuilderSpec>,
    pub schedulers: BTreeMap<String, SchedulerSpec>,
    pub workers: BTreeMap<String, Features>,
}

/// `cybertron = #{ workers, builder_base, schedulers, resources, horizon, listen, hostname }`.
#[derive(Debug, Clone, Default)]
pub struct CybertronSpec {
    pub workers: BTreeMap<String, Features>,
    pub builder_base: BuilderSpec,
    pub schedulers: BTreeMap<String, SchedulerSpec>,
    pub resources: Vec<String>,
    pub horizon: u64,
    pub listen: Option<String>,
    pub hostname: Option<String>,
    /// The zone time schedulers count in: "UTC" or an offset like "+02:00".
    pub time_zone: String,
    /// Seconds between two polls of every repo's branches.
    pub poll_interval: u64,
    /// Where the shared secret of push webhooks is, never the secret itself.
    pub webhook_secret: Option<SecretSource>,
}

/// Where a secret is read from when the megatron starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretSource {
    /// An environment variable's name.
    Env(String),
    /// A file's path.
    File(String),
}

/// How often repos are polled when cybertron does not say.
pub const DEFAULT_POLL_INTERVAL: u64 = 60;

/// The history kept per builder when cybertron does not say.
pub const DEFAULT_HORIZON: u64 = 100;

#[derive(Debug, Clone, Default)]
pub struct BuilderSpec {
    pub accept: Option<String>,
    pub deps: Vec<DepSpec>,
    pub precommands: Vec<CommandSpec>,
    pub commands: Vec<CommandSpec>,
    pub upload: BTreeMap<String, String>,
    pub zip: Vec<String>,
    pub unzip: Vec<String>,
    pub url: BTreeMap<String, String>,
    pub schedulers: Vec<String>,
    pub resources: Vec<String>,
    pub get: BTreeMap<String, Vec<String>>,
    /// Keep only the newest pending build per branch.
    pub collapse: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    pub command: String,
    pub warnings: Vec<String>,
    pub suppress_warnings: Vec<String>,
    /// Seconds without output before the step is killed.
    pub timeout: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepSpec {
    pub url: String,
    /// The folder it is cloned into, beside the build folder.
    pub name: String,
    /// Branch, tag or commit; the default branch when absent.
    pub revision: Option<String>,
    /// Also fetch this builder's deps, recursively.
    pub builder: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SchedulerSpec {
    Force {
        parameters: BTreeMap<String, String>,
    },
    Time {
        parameters: BTreeMap<String, String>,
        month: String,
        day_of_month: String,
        day_of_week: String,
        hour: String,
        minute: String,
    },
    Commit {
        parameters: BTreeMap<String, String>,
        branch_regex: String,
        branches: BTreeMap<String, String>,
    },
}

impl SchedulerSpec {
    pub fn parameters(&self) -> &BTreeMap<String, String> {
        match self {
            SchedulerSpec::Force { parameters }
            | SchedulerSpec::Time { parameters, .. }
            | SchedulerSpec::Commit { parameters, .. } => parameters,
        }
    }
}

const BUILDER_KEYS: &[&str] = &[
    "accept",
    "deps",
    "precommands",
    "commands",
    "upload",
    "zip",
    "unzip",
    "url",
    "schedulers",
    "resources",
    "get",
    "collapse",
];

/// Reads `constructicon`; `repo` is the repo's name, which user worker names
/// must start with.
pub fn read_constructicon(reader: &mut Reader, value: &Value, repo: &str) -> ConstructiconSpec {
    let mut spec = ConstructiconSpec::default();
    let Some(top) = reader.fields(value, "", &["builders", "schedulers", "workers"]) else {
        return spec;
    };
    match top.get("builders") {
        Some(builders) => {
            if let Some(map) = reader.map(builders, "builders") {
                for (name, builder) in map {
                    let path = child("builders", name);
                    check_declared_name(reader, &path, "builder", name);
                    if let Some(b) = read_builder(reader, builder, &path, true) {
                        spec.builders.insert(name.clone(), b);
                    }
                }
            }
        }
        None => reader.problem("builders", "missing required key \"builders\""),
    }
    if let Some(schedulers) = top.get("schedulers") {
        spec.schedulers = read_schedulers(reader, schedulers, "schedulers");
    }
    if let Some(workers) = top.get("workers") {
        spec.workers = read_workers(reader, workers, "workers");
        let prefix = format!("{repo}-");
        for name in spec.workers.keys() {
            if !name.starts_with(&prefix) || name.len() == prefix.len() {
                reader.problem(
                    &child("workers", name),
                    format!("user worker name \"{name}\" must start with the repo's name and a dash: \"{prefix}...\""),
                );
            }
        }
    }
    spec
}

pub fn read_cybertron(reader: &mut Reader, value: &Value) -> CybertronSpec {
    let mut spec = CybertronSpec {
        horizon: DEFAULT_HORIZON,
        time_zone: "UTC".into(),
        poll_interval: DEFAULT_POLL_INTERVAL,
        ..Default::default()
    };
    let keys = [
        "workers",
        "builder_base",
        "schedulers",
        "resources",
        "horizon",
        "listen",
        "hostname",
        "time_zone",
        "poll_interval",
        "webhook_secret",
    ];
    let Some(top) = reader.fields(value, "", &keys) else {
        return spec;
    };
    if let Some(workers) = top.get("workers") {
        spec.workers = read_workers(reader, workers, "workers");
    }
    if let Some(base) = top.get("builder_base") {
        if let Some(b) = read_builder(reader, base, "builder_base", false) {
            spec.builder_base = b;
        }
    }
    if let Some(schedulers) = top.get("schedulers") {
        spec.schedulers = read_schedulers(reader, schedulers, "schedulers");
    }
    if let Some(resources) = top.get("resources") {
        let resources = reader.strings(resources, "resources");
        for (i, name) in resources.iter().enumerate() {
            check_declared_name(reader, &index("resources", i), "resource", name);
            if resources[..i].contains(name) {
                reader.problem(
                    &index("resources", i),
                    format!("resource \"{name}\" is declared twice"),
                );
            }
        }
        spec.resources = resources;
    }
    if let Some(horizon) = top.get("horizon") {
        spec.horizon = reader
            .integer(horizon, "horizon", 1, 1_000_000)
            .unwrap_or(DEFAULT_HORIZON);
    }
    if let Some(listen) = top.get("listen") {
        if let Some(listen) = reader.string(listen, "listen") {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                reader.problem(
                    "listen",
                    format!("\"{listen}\" is not an address and port like \"0.0.0.0:9120\""),
                );
            }
            spec.listen = Some(listen);
        }
    }
    if let Some(hostname) = top.get("hostname") {
        spec.hostname = reader.string(hostname, "hostname");
    }
    if let Some(zone) = top.get("time_zone") {
        if let Some(zone) = reader.string(zone, "time_zone") {
            if let Err(why) = super::zone::parse_zone(&zone) {
                reader.problem("time_zone", why);
            }
            spec.time_zone = zone;
        }
    }
    if let Some(interval) = top.get("poll_interval") {
        spec.poll_interval = reader
            .integer(interval, "poll_interval", 1, 86_400)
            .unwrap_or(DEFAULT_POLL_INTERVAL);
    }
    if let Some(secret) = top.get("webhook_secret") {
        if let Some(fields) = reader.fields(secret, "webhook_secret", &["env", "file"]) {
            let env = fields
                .get("env")
                .and_then(|v| reader.string(v, "webhook_secret.env"));
            let file = fields
                .get("file")
                .and_then(|v| reader.string(v, "webhook_secret.file"));
            spec.webhook_secret = match (env, file) {
                (Some(env), None) => Some(SecretSource::Env(env)),
                (None, Some(file)) => Some(SecretSource::File(file)),
                _ => {
                    reader.problem(
                        "webhook_secret",
                        "expected #{ env: \"VARIABLE\" } or #{ file: \"/path\" }: the secret itself never goes in cybertron",
                    );
                    None
                }
            };
        }
    }
    spec
}

fn check_declared_name(reader: &mut Reader, path: &str, what: &str, name: &str) {
    if let Some(why) = check_name(name) {
        reader.problem(
            path,
            format!(
                "{what} name \"{}\" cannot be used as a folder name or URL segment: {why}",
                name.escape_debug()
            ),
        );
    }
}

fn read_workers(reader: &mut Reader, value: &Value, path: &str) -> BTreeMap<String, Features> {
    let mut workers = BTreeMap::new();
    let Some(map) = reader.map(value, path) else {
        return workers;
    };
    for (name, features) in map {
        let worker_path = child(path, name);
        check_declared_name(reader, &worker_path, "worker", name);
        let Some(features) = reader.map(features, &worker_path) else {
            continue;
        };
        for (key, feature) in features {
            if matches!(feature, Value::Array(_) | Value::Object(_)) {
                reader.problem(
                    &child(&worker_path, key),
                    format!(
                        "expected a string, number or bool, found {}",
                        super::reader::describe(feature)
                    ),
                );
            }
        }
        workers.insert(name.clone(), features.clone());
    }
    workers
}

/// Reads a builder spec; `commands` is required except in `builder_base`.
pub fn read_builder(
    reader: &mut Reader,
    value: &Value,
    path: &str,
    require_commands: bool,
) -> Option<BuilderSpec> {
    let fields = reader.fields(value, path, BUILDER_KEYS)?;
    let mut builder = BuilderSpec::default();
    if let Some(accept) = fields.get("accept") {
        builder.accept = reader.string(accept, &fields.path_of("accept"));
    }
    if let Some(deps) = fields.get("deps") {
        builder.deps = read_deps(reader, deps, &fields.path_of("deps"));
    }
    if let Some(pre) = fields.get("precommands") {
        builder.precommands = read_commands(reader, pre, &fields.path_of("precommands"));
    }
    match fields.get("commands") {
        Some(commands) => {
            builder.commands = read_commands(reader, commands, &fields.path_of("commands"))
        }
        None if require_commands => reader.problem(path, "missing required key \"commands\""),
        None => {}
    }
    read_artifacts(reader, &fields, &mut builder);
    if let Some(schedulers) = fields.get("schedulers") {
        builder.schedulers = reader.strings(schedulers, &fields.path_of("schedulers"));
    }
    if let Some(resources) = fields.get("resources") {
        builder.resources = reader.strings(resources, &fields.path_of("resources"));
    }
    if let Some(collapse) = fields.get("collapse") {
        builder.collapse = reader.bool(collapse, &fields.path_of("collapse"));
    }
    if let Some(get) = fields.get("get") {
        let path = fields.path_of("get");
        if let Some(map) = reader.map(get, &path) {
            for (name, values) in map {
                let entry_path = child(&path, name);
                let expressions = reader.strings(values, &entry_path);
                if expressions.is_empty() && values.is_array() {
                    reader.problem(
                        &entry_path,
                        "expected at least one value expression, e.g. \"build.number\"",
                    );
                }
                builder.get.insert(name.clone(), expressions);
            }
        }
    }
    Some(builder)
}

/// `upload`, `zip`, `unzip` and `url`, with the rules tying them together.
fn read_artifacts(reader: &mut Reader, fields: &Fields<'_>, builder: &mut BuilderSpec) {
    if let Some(upload) = fields.get("upload") {
        let path = fields.path_of("upload");
        for (source, destination) in reader.string_map(upload, &path) {
            let entry = child(&path, &source);
            if let Some(why) = unsafe_relative_path(&source) {
                reader.problem(&entry, format!("upload source \"{source}\" {why}"));
            }
            if let Some(why) = unsafe_relative_path(&destination) {
                reader.problem(
                    &entry,
                    format!("upload destination \"{destination}\" {why}"),
                );
            }
            if let Some((other, _)) = builder.upload.iter().find(|(_, d)| **d == destination) {
                reader.problem(
                    &entry,
                    format!("upload destination \"{destination}\" is also the destination of \"{other}\""),
                );
            }
            builder.upload.insert(source, destination);
        }
    }
    if let Some(zip) = fields.get("zip") {
        let path = fields.path_of("zip");
        builder.zip = reader.strings(zip, &path);
        for (i, source) in builder.zip.iter().enumerate() {
            if !builder.upload.contains_key(source) {
                reader.problem(
                    &index(&path, i),
                    format!("\"{source}\" is zipped but is not an upload source"),
                );
            }
        }
    }
    if let Some(unzip) = fields.get("unzip") {
        let path = fields.path_of("unzip");
        builder.unzip = reader.strings(unzip, &path);
        for (i, destination) in builder.unzip.iter().enumerate() {
            if !builder.upload.values().any(|d| d == destination) {
                reader.problem(
                    &index(&path, i),
                    format!("\"{destination}\" is unzipped but is not an upload destination"),
                );
            }
        }
    }
    if let Some(url) = fields.get("url") {
        let path = fields.path_of("url");
        for (destination, suffix) in reader.string_map(url, &path) {
            if !builder.upload.values().any(|d| *d == destination) {
                reader.problem(
                    &child(&path, &destination),
                    format!("\"{destination}\" has a url but is not an upload destination"),
                );
            }
            builder.url.insert(destination, suffix);
        }
    }
}

/// Why a path from a config may not be used relative to a folder, or `None`.
pub fn unsafe_relative_path(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("is empty");
    }
    if path.starts_with('/') || path.starts_with('\\') || path.get(1..2) == Some(":") {
        return Some("must be a relative path, not an absolute one");
    }
    if path.split(['/', '\\']).any(|part| part == "..") {
        return Some("must not contain \"..\"");
    }
    if path.chars().any(char::is_control) {
        return Some("must not contain control characters");
    }
    None
}

fn read_commands(reader: &mut Reader, value: &Value, path: &str) -> Vec<CommandSpec> {
    let Some(items) = reader.array(value, path) else {
        return Vec::new();
    };
    let mut commands = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = index(path, i);
        match item {
            Value::String(command) if command.trim().is_empty() => {
                reader.problem(&path, "the command is empty")
            }
            Value::String(command) => commands.push(CommandSpec {
                command: command.clone(),
                warnings: vec![DEFAULT_WARNING.to_string()],
                suppress_warnings: Vec::new(),
                timeout: DEFAULT_TIMEOUT,
            }),
            Value::Object(map) if map.contains_key("command") => {
                let Some(fields) = reader.fields(
                    item,
                    &path,
                    &["command", "warnings", "suppress_warnings", "timeout"],
                ) else {
                    continue;
                };
                let command = fields
                    .get("command")
                    .and_then(|c| reader.string(c, &fields.path_of("command")));
                let warnings = match fields.get("warnings") {
                    Some(w) => reader.strings(w, &fields.path_of("warnings")),
                    None => vec![DEFAULT_WARNING.to_string()],
                };
                let suppress_warnings = match fields.get("suppress_warnings") {
                    Some(s) => reader.strings(s, &fields.path_of("suppress_warnings")),
                    None => Vec::new(),
                };
                check_regexes(reader, &fields.path_of("warnings"), &warnings);
                check_regexes(
                    reader,
                    &fields.path_of("suppress_warnings"),
                    &suppress_warnings,
                );
                let timeout = match fields.get("timeout") {
                    Some(t) => reader.integer(t, &fields.path_of("timeout"), 1, MAX_TIMEOUT),
                    None => Some(DEFAULT_TIMEOUT),
                };
                if command.as_deref().is_some_and(|c| c.trim().is_empty()) {
                    reader.problem(&fields.path_of("command"), "the command is empty");
                    continue;
                }
                if let (Some(command), Some(timeout)) = (command, timeout) {
                    commands.push(CommandSpec {
                        command,
                        warnings,
                        suppress_warnings,
                        timeout,
                    });
                }
            }
            _ => reader.problem(&path, "expected a string or a map with \"command\""),
        }
    }
    commands
}

fn check_regexes(reader: &mut Reader, path: &str, patterns: &[String]) {
    for (i, pattern) in patterns.iter().enumerate() {
        if let Err(e) = regex::Regex::new(pattern) {
            reader.problem(
                &index(path, i),
                format!("invalid regex \"{pattern}\": {}", one_line(&e.to_string())),
            );
        }
    }
}

/// The regex crate's errors span several lines with a drawing of the pattern;
/// a diagnostic wants the last line, which says what is wrong.
fn one_line(message: &str) -> String {
    let last = message
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(message)
        .trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

fn read_deps(reader: &mut Reader, value: &Value, path: &str) -> Vec<DepSpec> {
    let Some(items) = reader.array(value, path) else {
        return Vec::new();
    };
    let mut deps: Vec<DepSpec> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = index(path, i);
        let dep = match item {
            Value::String(url) => Some((url.clone(), None, None)),
            Value::Object(_) => {
                let Some(fields) = reader.fields(item, &path, &["url", "revision", "builder"])
                else {
                    continue;
                };
                let url = match fields.get("url") {
                    Some(url) => reader.string(url, &fields.path_of("url")),
                    None => {
                        reader.problem(&path, "missing required key \"url\"");
                        None
                    }
                };
                let revision = fields
                    .get("revision")
                    .and_then(|r| reader.string(r, &fields.path_of("revision")));
                let builder = fields
                    .get("builder")
                    .and_then(|b| reader.string(b, &fields.path_of("builder")));
                url.map(|url| (url, revision, builder))
            }
            other => {
                reader.problem(
                    &path,
                    format!(
                        "expected a URL string or a map #{{url, revision, builder}}, found {}",
                        super::reader::describe(other)
                    ),
                );
                None
            }
        };
        let Some((url, revision, builder)) = dep else {
            continue;
        };
        let Some(name) = crate::model::repo_name_from_url(&url) else {
            reader.problem(
                &path,
                format!("cannot derive a folder name from dep URL \"{url}\""),
            );
            continue;
        };
        if deps.iter().any(|d| d.name == name) {
            reader.problem(&path, format!("dep \"{name}\" is listed twice"));
            continue;
        }
        deps.push(DepSpec {
            url,
            name,
            revision,
            builder,
        });
    }
    deps
}

fn read_schedulers(
    reader: &mut Reader,
    value: &Value,
    path: &str,
) -> BTreeMap<String, SchedulerSpec> {
    let mut schedulers = BTreeMap::new();
    let Some(map) = reader.map(value, path) else {
        return schedulers;
    };
    for (name, scheduler) in map {
        let path = child(path, name);
        check_declared_name(reader, &path, "scheduler", name);
        if let Some(s) = read_scheduler(reader, scheduler, &path) {
            schedulers.insert(name.clone(), s);
        }
    }
    schedulers
}

fn read_scheduler(reader: &mut Reader, value: &Value, path: &str) -> Option<SchedulerSpec> {
    let map = reader.map(value, path)?;
    let kind = match map.get("type") {
        Some(kind) => reader.string(kind, &child(path, "type"))?,
        None => {
            reader.problem(
                path,
                "missing required key \"type\" (\"force\", \"time\" or \"commit\")",
            );
            return None;
        }
    };
    let allowed: &[&str] = match kind.as_str() {
        "force" => &["type", "parameters"],
        "time" => &[
            "type",
            "parameters",
            "month",
            "day_of_month",
            "day_of_week",
            "hour",
            "minute",
        ],
        "commit" => &["type", "parameters", "branch_regex", "branches"],
        other => {
            reader.problem(
                &child(path, "type"),
                format!("unknown scheduler type \"{other}\": expected \"force\", \"time\" or \"commit\""),
            );
            return None;
        }
    };
    let fields = reader.fields(value, path, allowed)?;
    let mut parameters = BTreeMap::new();
    if let Some(p) = fields.get("parameters") {
        let p_path = fields.path_of("parameters");
        if let Some(map) = reader.map(p, &p_path) {
            for (name, default) in map {
                let param_path = child(&p_path, name);
                if !is_parameter_name(name) {
                    reader.problem(
                        &param_path,
                        format!("parameter name \"{name}\" must be letters, digits and underscores, not starting with a digit, so it can be an environment variable"),
                    );
                }
                if let Some(default) = reader.scalar(default, &param_path) {
                    parameters.insert(name.clone(), default);
                }
            }
        }
    }
    Some(match kind.as_str() {
        "force" => SchedulerSpec::Force { parameters },
        "time" => {
            let mut field = |key: &str, default: &str| -> String {
                let text = fields
                    .get(key)
                    .and_then(|v| reader.scalar(v, &fields.path_of(key)))
                    .unwrap_or_else(|| default.to_string());
                if let Err(why) = check_time_field(key, &text) {
                    reader.problem(&fields.path_of(key), why);
                }
                text
            };
            SchedulerSpec::Time {
                month: field("month", "*"),
                day_of_month: field("day_of_month", "*"),
                day_of_week: field("day_of_week", "*"),
                hour: field("hour", "0"),
                minute: field("minute", "0"),
                parameters,
            }
        }
        _ => {
            let branch_regex = fields
                .get("branch_regex")
                .and_then(|r| reader.string(r, &fields.path_of("branch_regex")))
                .unwrap_or_else(|| ".*".to_string());
            if let Err(e) = regex::Regex::new(&branch_regex) {
                reader.problem(
                    &fields.path_of("branch_regex"),
                    format!(
                        "invalid regex \"{branch_regex}\": {}",
                        one_line(&e.to_string())
                    ),
                );
            }
            let branches = fields
                .get("branches")
                .map(|b| {
                    reader
                        .string_map(b, &fields.path_of("branches"))
                        .into_iter()
                        .collect()
                })
                .unwrap_or_default();
            SchedulerSpec::Commit {
                parameters,
                branch_regex,
                branches,
            }
        }
    })
}

fn is_parameter_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// Checks one cron field by parsing a pattern where only that field is set.
/// Fields take `*`, numbers, lists (`1,15`), ranges (`1-5`) and steps (`*/10`).
pub fn check_time_field(key: &str, text: &str) -> Result<(), String> {
    use std::str::FromStr;
    let (range, slot) = match key {
        "minute" => ("0-59", 0),
        "hour" => ("0-23", 1),
        "day_of_month" => ("1-31", 2),
        "month" => ("1-12", 3),
        _ => ("0-6, 0 being Sunday", 4),
    };
    let valid_chars = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | ',' | '-' | '/'));
    let mut parts = ["*"; 5];
    parts[slot] = text;
    if !text.is_empty() && valid_chars && croner::Cron::from_str(&parts.join(" ")).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "invalid {key} \"{text}\": expected \"*\", a number ({range}), a list like \"1,15\", a range like \"1-5\" or a step like \"*/10\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_fields_take_cron_forms() {
        for (key, text) in [
            ("minute", "0"),
            ("minute", "*/15"),
            ("hour", "1-5"),
            ("hour", "1,13"),
            ("day_of_week", "0"),
            ("day_of_week", "1-5"),
            ("month", "*"),
            ("day_of_month", "31"),
        ] {
            assert_eq!(check_time_field(key, text), Ok(()), "{key} {text}");
        }
        for (key, text) in [
            ("minute", "60"),
            ("hour", "24"),
            ("month", "13"),
            ("day_of_month", "0"),
            ("hour", "a b"),
            ("minute", ""),
        ] {
            assert!(check_time_field(key, text).is_err(), "{key} {text}");
        }
    }

    #[test]
    fn relative_paths_stay_inside() {
        assert_eq!(unsafe_relative_path("out/report.txt"), None);
        assert_eq!(
            unsafe_relative_path("../x"),
            Some("must not contain \"..\"")
        );
        assert_eq!(
            unsafe_relative_path("a/../../x"),
            Some("must not contain \"..\"")
        );
        assert_eq!(
            unsafe_relative_path("/etc/passwd"),
            Some("must be a relative path, not an absolute one")
        );
        assert_eq!(
            unsafe_relative_path("C:\\x"),
            Some("must be a relative path, not an absolute one")
        );
    }
}
