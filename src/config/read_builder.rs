//! Reading a builder spec: its keys, its commands, its deps and the
//! artifact rules tying `upload`, `zip`, `unzip` and `url` together. Both
//! scripts use it: a repo for each builder, cybertron for `builder_base`.

use super::access::credentials_in_url;
use super::read_checks::regex_error;
use super::reader::{child, index, Fields, Reader};
use super::spec::{
    unsafe_relative_path, BuilderSpec, CommandSpec, DepSpec, DEFAULT_TIMEOUT, DEFAULT_WARNING,
    MAX_TIMEOUT,
};
use serde_json::Value;

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
    "secrets",
];

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
    if let Some(secrets) = fields.get("secrets") {
        let path = fields.path_of("secrets");
        for (i, name) in reader.strings(secrets, &path).into_iter().enumerate() {
            if builder.secrets.contains(&name) {
                reader.problem(
                    &index(&path, i),
                    format!("secret \"{name}\" is named twice"),
                );
            } else {
                builder.secrets.push(name);
            }
        }
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

fn read_commands(reader: &mut Reader, value: &Value, path: &str) -> Vec<CommandSpec> {
    let Some(items) = reader.array(value, path) else {
        return Vec::new();
    };
    let mut commands = Vec::new();
    for (i, item) in items.iter().enumerate() {
        // The item's path is written out only where it is needed.
        match item {
            Value::String(command) if command.trim().is_empty() => {
                reader.value_problem(&index(path, i), "the command is empty")
            }
            Value::String(command) => commands.push(CommandSpec {
                command: command.clone(),
                warnings: vec![DEFAULT_WARNING.to_string()],
                suppress_warnings: Vec::new(),
                timeout: DEFAULT_TIMEOUT,
            }),
            Value::Object(_) => commands.extend(read_command_map(reader, item, &index(path, i))),
            other => reader.expected(&index(path, i), "a string or a map with \"command\"", other),
        }
    }
    commands
}

/// `#{command, warnings, suppress_warnings, timeout}`: every key is read and
/// every problem reported, even when the command itself is missing.
fn read_command_map(reader: &mut Reader, item: &Value, path: &str) -> Option<CommandSpec> {
    let fields = reader.fields(
        item,
        path,
        &["command", "warnings", "suppress_warnings", "timeout"],
    )?;
    let command = match fields.get("command") {
        Some(c) => reader.string(c, &fields.path_of("command")),
        None => {
            reader.problem(path, "missing required key \"command\"");
            None
        }
    };
    let warnings = match fields.get("warnings") {
        Some(w) => reader.strings(w, &fields.path_of("warnings")),
        None => vec![DEFAULT_WARNING.to_string()],
    };
    let suppress_warnings = match fields.get("suppress_warnings") {
        Some(s) => reader.strings(s, &fields.path_of("suppress_warnings")),
        None => Vec::new(),
    };
    check_regexes(reader, &fields, "warnings", &warnings);
    check_regexes(reader, &fields, "suppress_warnings", &suppress_warnings);
    let timeout = match fields.get("timeout") {
        Some(t) => reader.integer(t, &fields.path_of("timeout"), 1, MAX_TIMEOUT),
        None => Some(DEFAULT_TIMEOUT),
    };
    if command.as_deref().is_some_and(|c| c.trim().is_empty()) {
        reader.value_problem(&fields.path_of("command"), "the command is empty");
        return None;
    }
    Some(CommandSpec {
        command: command?,
        warnings,
        suppress_warnings,
        timeout: timeout?,
    })
}

/// Checks the patterns under `key`; its path is written out only for a bad one.
fn check_regexes(reader: &mut Reader, fields: &Fields<'_>, key: &str, patterns: &[String]) {
    for (i, pattern) in patterns.iter().enumerate() {
        if let Some(error) = regex_error(reader, pattern) {
            reader.value_problem(
                &index(&fields.path_of(key), i),
                format!("invalid regex \"{pattern}\": {error}"),
            );
        }
    }
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
                reader.expected(
                    &path,
                    "a URL string or a map #{url, revision, builder}",
                    other,
                );
                None
            }
        };
        let Some((url, revision, builder)) = dep else {
            continue;
        };
        // A dep's URL is shown in builds and logs: no password in it.
        if let Some(why) = credentials_in_url(&url) {
            reader.problem(&path, why);
            continue;
        }
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
