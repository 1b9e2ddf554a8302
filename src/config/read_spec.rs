//! Reading the two scripts' values into their specs: `constructicon` into a
//! [`ConstructiconSpec`] and `cybertron` into a [`CybertronSpec`], with the
//! workers both declare. Builders and schedulers are read by `read_builder`
//! and `read_scheduler`, which both scripts use.

use super::read_access::{read_access, read_repo_policy};
use super::read_builder::read_builder;
use super::read_checks::{check_declared_name, read_secret_source};
use super::read_scheduler::read_schedulers;
use super::reader::{child, index, Reader};
use super::spec::{
    ConstructiconSpec, CybertronSpec, Features, DEFAULT_HORIZON, DEFAULT_MAX_LOG_MB,
    DEFAULT_POLL_INTERVAL,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// Reads `constructicon`; `repo` is the repo's name, which user worker names
/// must start with.
pub fn read_constructicon(reader: &mut Reader, value: &Value, repo: &str) -> ConstructiconSpec {
    let mut spec = ConstructiconSpec::default();
    let Some(top) = reader.fields(value, "", &["builders", "schedulers", "workers", "secrets"])
    else {
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
    if let Some(secrets) = top.get("secrets") {
        spec.secrets = super::secrets::read_repo_secrets(reader, secrets);
    }
    spec
}

pub fn read_cybertron(reader: &mut Reader, value: &Value) -> CybertronSpec {
    let mut spec = CybertronSpec {
        horizon: DEFAULT_HORIZON,
        time_zone: "UTC".into(),
        poll_interval: DEFAULT_POLL_INTERVAL,
        max_log_mb: DEFAULT_MAX_LOG_MB,
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
        "access",
        "repos",
        "public_url",
        "max_log_mb",
        "forges",
        "pull_requests",
        "secrets",
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
        // A number of builds, or #{ builds, days, keep_last_success }.
        if horizon.is_object() {
            if let Some(fields) =
                reader.fields(horizon, "horizon", &["builds", "days", "keep_last_success"])
            {
                if let Some(builds) = fields.get("builds") {
                    spec.horizon = reader
                        .integer(builds, "horizon.builds", 1, 1_000_000)
                        .unwrap_or(DEFAULT_HORIZON);
                }
                if let Some(days) = fields.get("days") {
                    spec.horizon_days = reader.integer(days, "horizon.days", 1, 100_000);
                }
                if let Some(keep) = fields.get("keep_last_success") {
                    spec.keep_last_success = reader
                        .bool(keep, "horizon.keep_last_success")
                        .unwrap_or(false);
                }
            }
        } else {
            spec.horizon = reader
                .integer(horizon, "horizon", 1, 1_000_000)
                .unwrap_or(DEFAULT_HORIZON);
        }
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
        spec.webhook_secret = read_secret_source(reader, secret, "webhook_secret");
    }
    if let Some(access) = top.get("access") {
        spec.access = read_access(reader, access);
    }
    if let Some(repos) = top.get("repos") {
        spec.repos = read_repo_policy(reader, repos);
    }
    if let Some(pulls) = top.get("pull_requests") {
        if let Some(fields) = reader.fields(pulls, "pull_requests", &["fork_workers"]) {
            if let Some(expression) = fields.get("fork_workers") {
                spec.fork_workers = reader.string(expression, "pull_requests.fork_workers");
            }
        }
    }
    if let Some(forges) = top.get("forges") {
        spec.forges = super::forges::read_forges(reader, forges);
    }
    if let Some(secrets) = top.get("secrets") {
        spec.secrets = super::secrets::read_maintainer_secrets(reader, secrets);
    }
    if let Some(cap) = top.get("max_log_mb") {
        spec.max_log_mb = reader
            .integer(cap, "max_log_mb", 1, 1 << 20)
            .unwrap_or(DEFAULT_MAX_LOG_MB);
    }
    if let Some(url) = top.get("public_url") {
        if let Some(url) = reader.string(url, "public_url") {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                reader.problem(
                    "public_url",
                    format!("\"{url}\" is not an http(s) URL like \"https://ci.example.com\""),
                );
            }
            spec.public_url = Some(url.trim_end_matches('/').to_string());
        }
    }
    spec
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
                reader.value_problem(
                    &child(&worker_path, key),
                    format!(
                        "expected a string, number or bool, found {}",
                        super::words::describe(feature)
                    ),
                );
            }
        }
        workers.insert(name.clone(), features.clone());
    }
    workers
}
