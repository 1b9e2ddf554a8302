//! Reads a script's result into typed values, collecting every problem with
//! its key path instead of stopping at the first one.
//!
//! The script's value is first turned into JSON ([`to_json`]), then read key
//! by key. Every map is read through [`Reader::fields`], which reports the keys
//! nobody asked for as "unused configuration key", the way the original did.

use super::words::{closest, describe, describe_dynamic, quoted};
use rhai::Dynamic;
use serde_json::Value;
use std::collections::HashMap;

/// A JSON object, as a script's maps become.
pub type Map = serde_json::Map<String, Value>;

/// A problem found while reading: a key path and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    /// How to fix it, when that is known: shown as a `help:` line.
    pub help: Option<String>,
    /// The problem is in the key's value (a wrong type, a value out of
    /// range), so it is shown under the value rather than the key.
    pub at_value: bool,
}

impl Problem {
    pub fn new(path: &str, message: impl Into<String>) -> Problem {
        Problem {
            path: path.to_string(),
            message: message.into(),
            help: None,
            at_value: false,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }

    pub fn at_value(mut self) -> Problem {
        self.at_value = true;
        self
    }
}

/// The path of a child key: `parent.key`, or `parent["odd key"]` when the key
/// is not an identifier.
pub fn child(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    match (parent.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => {
            // Built by hand, not with `format!`: a big config makes tens of
            // thousands of these.
            let mut path = String::with_capacity(parent.len() + 1 + key.len());
            path.push_str(parent);
            path.push('.');
            path.push_str(key);
            path
        }
        (_, false) => format!("{parent}[{}]", serde_json::Value::String(key.to_string())),
    }
}

pub fn index(parent: &str, i: usize) -> String {
    use std::fmt::Write as _;
    let mut path = String::with_capacity(parent.len() + 8);
    path.push_str(parent);
    let _ = write!(path, "[{i}]");
    path
}

/// Converts a script value to JSON. Values a config cannot hold (functions,
/// custom types) are reported and left out.
pub fn to_json(value: &Dynamic, path: &str, problems: &mut Vec<Problem>) -> Value {
    json_at(value, &At::Path(path), problems)
}

/// Where a value is: its key path, written out only for a problem (a big
/// config has tens of thousands of keys and items, and few problems).
enum At<'a> {
    Path(&'a str),
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    fn path(&self) -> String {
        match self {
            At::Path(path) => path.to_string(),
            At::Key(parent, key) => child(&parent.path(), key),
            At::Index(parent, i) => index(&parent.path(), *i),
        }
    }
}

fn json_at(value: &Dynamic, at: &At<'_>, problems: &mut Vec<Problem>) -> Value {
    if value.is_unit() {
        Value::Null
    } else if let Ok(b) = value.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = value.as_int() {
        Value::from(i)
    } else if let Ok(f) = value.as_float() {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    } else if let Ok(c) = value.as_char() {
        Value::String(c.to_string())
    } else if let Ok(s) = value.as_immutable_string_ref() {
        Value::String(s.to_string())
    } else if let Ok(array) = value.as_array_ref() {
        let mut out = Vec::with_capacity(array.len());
        for (i, item) in array.iter().enumerate() {
            if let Some(v) = supported(item, &At::Index(at, i), problems) {
                out.push(v);
            }
        }
        Value::Array(out)
    } else if let Ok(map) = value.as_map_ref() {
        let mut out = Map::with_capacity(map.len());
        for (key, item) in map.iter() {
            if let Some(v) = supported(item, &At::Key(at, key), problems) {
                out.insert(key.to_string(), v);
            }
        }
        Value::Object(out)
    } else {
        problems.push(
            Problem::new(
                &at.path(),
                format!(
                    "a config holds strings, numbers, bools, arrays and maps, not {}",
                    describe_dynamic(value)
                ),
            )
            .at_value(),
        );
        Value::Null
    }
}

fn supported(value: &Dynamic, at: &At<'_>, problems: &mut Vec<Problem>) -> Option<Value> {
    let before = problems.len();
    let json = json_at(value, at, problems);
    // Leave out only the unsupported value itself, not a map holding one.
    (problems.len() == before || !json.is_null()).then_some(json)
}

/// Collects problems while reading.
#[derive(Default)]
pub struct Reader {
    pub problems: Vec<Problem>,
    /// Each regex pattern read so far and what is wrong with it, if anything:
    /// a config repeats its warning patterns on many commands, and compiling
    /// one takes tens of microseconds.
    pub(super) regexes: HashMap<String, Option<String>>,
}

/// The fields of a map that a reader asked for; unknown keys were reported.
pub struct Fields<'v> {
    map: &'v Map,
    pub path: String,
}

impl<'v> Fields<'v> {
    /// The value of a key; `()` counts as absent, so helpers can pass through
    /// options they were not given.
    pub fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn path_of(&self, key: &str) -> String {
        child(&self.path, key)
    }
}

impl Reader {
    pub fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    /// A problem with the value at `path`, shown under the value.
    pub fn value_problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message).at_value());
    }

    pub fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// A type error: what was expected and what was found, under the value.
    pub fn expected(&mut self, path: &str, what: &str, found: &Value) {
        self.value_problem(path, format!("expected {what}, found {}", describe(found)));
    }

    pub fn map<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Map> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.expected(path, "a map", other);
                None
            }
        }
    }

    /// Opens a map whose keys must all be among `allowed`.
    pub fn fields<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        allowed: &[&str],
    ) -> Option<Fields<'v>> {
        let map = self.map(value, path)?;
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.push(unknown_key(path, key, allowed));
            }
        }
        Some(Fields {
            map,
            path: path.to_string(),
        })
    }

    pub fn string(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            other => {
                self.expected(path, "a string", other);
                None
            }
        }
    }

    /// A string, or a number or bool written as one (parameter defaults, time
    /// fields, feature values).
    pub fn scalar(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.expected(path, "a string, number or bool", other);
                None
            }
        }
    }

    pub fn bool(&mut self, value: &Value, path: &str) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(*b),
            other => {
                self.expected(path, "a bool", other);
                None
            }
        }
    }

    /// A whole number in `min..=max`.
    pub fn integer(&mut self, value: &Value, path: &str, min: u64, max: u64) -> Option<u64> {
        match value.as_i64() {
            Some(n) if n >= min as i64 && n as u64 <= max => Some(n as u64),
            Some(n) => {
                self.value_problem(
                    path,
                    format!("{n} is out of range: expected {min} to {max}"),
                );
                None
            }
            None => {
                self.expected(path, "an integer", value);
                None
            }
        }
    }

    pub fn array<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Vec<Value>> {
        match value {
            Value::Array(items) => Some(items),
            other => {
                self.expected(path, "an array", other);
                None
            }
        }
    }

    /// An array of strings; a bad item is reported and skipped.
    pub fn strings(&mut self, value: &Value, path: &str) -> Vec<String> {
        let Some(items) = self.array(value, path) else {
            return Vec::new();
        };
        // An item's path is written out only for a problem.
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::String(s) => Some(s.clone()),
                other => self.string(other, &index(path, i)),
            })
            .collect()
    }

    /// A map of string values; a bad value is reported and skipped.
    pub fn string_map(&mut self, value: &Value, path: &str) -> Vec<(String, String)> {
        let Some(map) = self.map(value, path) else {
            return Vec::new();
        };
        map.iter()
            .filter_map(|(key, v)| match v {
                Value::String(s) => Some((key.clone(), s.clone())),
                other => self
                    .string(other, &child(path, key))
                    .map(|s| (key.clone(), s)),
            })
            .collect()
    }
}

/// A key nobody asked for: "unused configuration key", as the original
/// said, with the key meant when one is near, or the keys allowed there.
fn unknown_key(path: &str, key: &str, allowed: &[&str]) -> Problem {
    let path = child(path, key);
    match closest(key, allowed.iter().copied()) {
        Some(near) => Problem::new(
            &path,
            format!("unused configuration key \"{key}\" (did you mean \"{near}\"?)"),
        )
        .help(format!("did you mean \"{near}\"?")),
        // The first version's name for workers.
        None if key == "slaves" && allowed.contains(&"workers") => {
            Problem::new(&path, format!("unused configuration key \"{key}\""))
                .help("the first version's \"slaves\" are called \"workers\" here")
        }
        None => {
            let allowed: Vec<String> = allowed.iter().map(|k| k.to_string()).collect();
            Problem::new(&path, format!("unused configuration key \"{key}\""))
                .help(format!("the keys allowed here are {}", quoted(&allowed)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn child_paths_quote_odd_keys() {
        assert_eq!(child("", "builders"), "builders");
        assert_eq!(child("builders", "basic-2"), "builders.basic-2");
        assert_eq!(child("builders", "a.b"), "builders[\"a.b\"]");
        assert_eq!(
            child("resources", "cpap machine"),
            "resources[\"cpap machine\"]"
        );
    }

    #[test]
    fn unknown_keys_are_reported_with_a_suggestion() {
        let mut reader = Reader::default();
        let value = json!({"comands": [], "zzz": 1});
        reader.fields(&value, "builders.basic", &["commands", "deps"]);
        assert_eq!(
            reader.problems,
            vec![
                Problem::new(
                    "builders.basic.comands",
                    "unused configuration key \"comands\" (did you mean \"commands\"?)"
                )
                .help("did you mean \"commands\"?"),
                Problem::new("builders.basic.zzz", "unused configuration key \"zzz\"")
                    .help("the keys allowed here are \"commands\", \"deps\""),
            ]
        );
    }

    #[test]
    fn wrong_types_name_what_was_found() {
        let mut reader = Reader::default();
        assert_eq!(reader.strings(&json!(["a", 1, "b"]), "x"), ["a", "b"]);
        assert_eq!(reader.integer(&json!(0), "t", 1, 10), None);
        assert_eq!(reader.integer(&json!("5"), "u", 1, 10), None);
        let messages: Vec<_> = reader
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        assert_eq!(
            messages,
            [
                "x[1]: expected a string, found an integer",
                "t: 0 is out of range: expected 1 to 10",
                "u: expected an integer, found a string"
            ]
        );
    }
}
