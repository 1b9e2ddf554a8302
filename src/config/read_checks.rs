//! Checks that more than one spec reader makes: names declared in a script
//! (builders, workers, schedulers, resources) and the wording of regex
//! errors. They sit apart so that the readers that share them need not
//! import each other.

use super::reader::Reader;
use crate::model::check_name;

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

/// The regex crate's errors span several lines with a drawing of the pattern;
/// a diagnostic wants the last line, which says what is wrong.
pub(super) fn one_line(message: &str) -> String {
    let last = message
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(message)
        .trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}
