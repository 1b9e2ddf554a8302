//! Reading schedulers: `force`, `time` with its cron-like fields, and
//! `commit` with its branch rules. Both scripts declare schedulers, so both
//! top-level readers use this one.

use super::read_checks::{check_declared_name, regex_error};
use super::reader::{child, Problem, Reader};
use super::spec::SchedulerSpec;
use super::words::closest;
use serde_json::Value;
use std::collections::BTreeMap;

pub(super) fn read_schedulers(
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
        "commit" => &[
            "type",
            "parameters",
            "branch_regex",
            "branches",
            "pull_requests",
        ],
        other => {
            let mut problem = Problem::new(
                &child(path, "type"),
                format!("unknown scheduler type \"{other}\": expected \"force\", \"time\" or \"commit\""),
            )
            .at_value();
            if let Some(near) = closest(other, ["force", "time", "commit"]) {
                problem = problem.help(format!("did you mean \"{near}\"?"));
            }
            reader.push(problem);
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
                    reader.value_problem(&fields.path_of(key), why);
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
            if let Some(error) = regex_error(reader, &branch_regex) {
                reader.value_problem(
                    &fields.path_of("branch_regex"),
                    format!("invalid regex \"{branch_regex}\": {error}"),
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
            let pull_requests = fields
                .get("pull_requests")
                .and_then(|p| reader.bool(p, &fields.path_of("pull_requests")))
                .unwrap_or(false);
            SchedulerSpec::Commit {
                parameters,
                branch_regex,
                branches,
                pull_requests,
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
    // `* * * * *` parses; parsing it takes longer than reading a builder.
    let parses = || text == "*" || croner::Cron::from_str(&parts.join(" ")).is_ok();
    if !text.is_empty() && valid_chars && parses() {
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
}
