//! Checks that more than one spec reader makes: names declared in a script
//! (builders, workers, schedulers, resources) and the wording of regex
//! errors. They sit apart so that the readers that share them need not
//! import each other.

use super::reader::Reader;
use super::secret_source::SecretSource;
use crate::model::check_name;
use serde_json::Value;

/// Reports a declared name that could not be a folder name or URL segment.
pub(super) fn check_declared_name(reader: &mut Reader, path: &str, what: &str, name: &str) {
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

/// What is wrong with a regex pattern, in one line, or `None` when it
/// compiles; each distinct pattern is compiled once per reader.
pub(super) fn regex_error(reader: &mut Reader, pattern: &str) -> Option<String> {
    if let Some(known) = reader.regexes.get(pattern) {
        return known.clone();
    }
    let error = compile_error(pattern).map(|message| one_line(&message));
    reader.regexes.insert(pattern.to_string(), error.clone());
    error
}

/// What `regex::Regex::new(pattern)` says is wrong with a pattern, found by
/// building it as `Regex::new` does (regex 1.x: the same limits, syntax and
/// match options, the same error for each failure) but without its full DFA.
/// That DFA is only a speed-up whose failure is never an error, and building
/// it takes most of the time (150 µs of 160 for `.*warning[: ]`).
fn compile_error(pattern: &str) -> Option<String> {
    use regex_automata::{meta, util::syntax, MatchKind};
    let config = meta::Config::new()
        .nfa_size_limit(Some(10 * (1 << 20)))
        .hybrid_cache_capacity(2 * (1 << 20))
        .match_kind(MatchKind::LeftmostFirst)
        .utf8_empty(true)
        .dfa(false);
    let error = meta::Builder::new()
        .configure(config)
        .syntax(syntax::Config::default())
        .build(pattern)
        .err()?;
    Some(match (error.size_limit(), error.syntax_error()) {
        (Some(limit), _) => format!("Compiled regex exceeds size limit of {limit} bytes."),
        (None, Some(syntax)) => syntax.to_string(),
        (None, None) => error.to_string(),
    })
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

/// `#{ env: "VARIABLE" }` or `#{ file: "/path" }`: where a secret is.
pub(super) fn read_secret_source(
    reader: &mut Reader,
    value: &Value,
    path: &str,
) -> Option<SecretSource> {
    let fields = reader.fields(value, path, &["env", "file"])?;
    let env = fields
        .get("env")
        .and_then(|v| reader.string(v, &fields.path_of("env")));
    let file = fields
        .get("file")
        .and_then(|v| reader.string(v, &fields.path_of("file")));
    match (env, file) {
        (Some(env), None) => Some(SecretSource::Env(env)),
        (None, Some(file)) => Some(SecretSource::File(file)),
        _ => {
            reader.problem(
                path,
                "expected #{ env: \"VARIABLE\" } or #{ file: \"/path\" }: the secret itself never goes in cybertron",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_errors_are_those_of_the_regex_crate() {
        for pattern in [
            ".*warning[: ]",
            "^W: ",
            "main|release/.*",
            "(?i)error|fail",
            "a**",
            "(",
            "a)",
            "[z-a]",
            "\\p{Foo}",
            "(?P<n>a)(?P<n>b)",
            "a{99999}{99999}",
            "\\w{1000}{100}",
            "(?<x",
            "\\",
            "x{2,1}",
        ] {
            let expected = regex::Regex::new(pattern).err().map(|e| e.to_string());
            assert_eq!(compile_error(pattern), expected, "{pattern}");
        }
    }
}
