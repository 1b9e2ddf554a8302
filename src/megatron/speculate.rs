//! Speculative evaluation: a repo's config from files held in memory (a
//! person's working copy sent by `constructicon eval --against`, or a pull
//! request's tree), evaluated exactly as a reconfig of that repo would be
//! (the cybertron and workers serving now, the same limits, sandbox, merge
//! with `builder_base` and checks), and compared with the repo's live graph.
//!
//! Nothing is stored and nothing is scheduled: the repo's record, its graph
//! versions and the dispatcher are only read. The answer is typed, so the
//! API, the command line and pull-request builds each show it their way.

use super::error::{Error, Result};
use super::state::State;
use crate::config::{diagnostic, Diagnostic, Graph, MemoryLoader, CONSTRUCTICON_FILE};
use crate::sync::read;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;

/// The most files a person may send to be evaluated: a config and the
/// files it imports are a handful; a whole tree is not what is asked for.
pub const MAX_SENT_FILES: usize = 200;
/// The most bytes all files sent may hold together (each file is also held
/// to the sandbox's own `max_source_size`).
pub const MAX_SENT_BYTES: usize = 2 << 20;

/// The live graph a speculation was compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveGraph {
    pub version: u64,
    /// The commit its config was read from.
    pub commit: String,
}

/// One key whose value differs, by its path inside the builder or
/// scheduler (`steps[1].command`, `workers`); a key one side lacks is
/// `null` there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyChange {
    pub key: String,
    pub old: Value,
    pub new: Value,
}

/// A builder or scheduler both graphs have, and what differs in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Changed {
    /// The full name.
    pub name: String,
    pub keys: Vec<KeyChange>,
}

/// What is added, removed and changed in one family (builders or
/// schedulers), by full name, each list sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<Changed>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// How a new graph differs from the live one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GraphDiff {
    pub builders: Changes,
    pub schedulers: Changes,
}

/// A config that evaluated: its graph, how it differs from the live one,
/// and its warnings.
#[derive(Debug, Clone)]
pub struct Speculated {
    pub graph: Graph,
    pub diff: GraphDiff,
    /// `None` when the repo has no live graph yet (every builder is added).
    pub against: Option<LiveGraph>,
    pub warnings: Vec<Diagnostic>,
    /// The warnings rendered rustc-style, with their source lines.
    pub rendered_warnings: String,
    /// The script's `print` and `debug` output.
    pub output: Vec<String>,
}

/// A config a reconfig would not take: every error, placed.
#[derive(Debug, Clone)]
pub struct Refused {
    /// One line, as a repo's error says it ("2 errors in constructicon.rhai").
    pub message: String,
    pub errors: Vec<Diagnostic>,
    /// The errors rendered rustc-style, as `constructicon eval` prints them.
    pub rendered: String,
    pub output: Vec<String>,
}

/// What a speculative evaluation gives.
#[derive(Debug, Clone)]
pub enum Speculation {
    Evaluated(Box<Speculated>),
    Refused(Refused),
}

/// Why files sent to be evaluated are not taken: too many or too large
/// (`TooLarge`), or a path that is not a plain one inside the repo
/// (`BadRequest`, so it can never be looked up as something else).
pub fn check_sent_files(files: &BTreeMap<String, String>) -> Result<()> {
    if files.len() > MAX_SENT_FILES {
        return Err(Error::TooLarge(format!(
            "{} files sent; at most {MAX_SENT_FILES} may be (the config and the files it imports)",
            files.len()
        )));
    }
    let total: usize = files.values().map(String::len).sum();
    if total > MAX_SENT_BYTES {
        return Err(Error::TooLarge(format!(
            "the files sent hold {total} bytes; at most {MAX_SENT_BYTES} may be sent"
        )));
    }
    for path in files.keys() {
        let plain = path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
        let why = crate::config::spec::unsafe_relative_path(path).or(if plain {
            None
        } else {
            Some("must be a plain path inside the repo, like lib/builders.rhai")
        });
        if let Some(why) = why {
            return Err(Error::BadRequest(format!("the file path {path:?} {why}")));
        }
    }
    if !files.contains_key(CONSTRUCTICON_FILE) {
        return Err(Error::BadRequest(format!(
            "the files sent hold no {CONSTRUCTICON_FILE}: send the config under that name"
        )));
    }
    Ok(())
}

impl State {
    /// Evaluates `repo`'s config from `files` (path inside the repo →
    /// content; the config is `constructicon.rhai`) as its next reconfig
    /// would, and compares the graph with the live one. Stores nothing.
    pub fn speculate(&self, repo: &str, files: HashMap<String, Vec<u8>>) -> Result<Speculation> {
        let live = read(&self.repos)
            .get(repo)
            .map(|r| r.graph.clone())
            .ok_or_else(|| Error::NotFound(format!("repo {repo} not found")))?;
        // The loader keeps the script too, as a tree read for a reconfig does.
        let Some(script) = files.get(CONSTRUCTICON_FILE).cloned() else {
            let message = format!("{CONSTRUCTICON_FILE} not found at the root of the repo");
            return Ok(Speculation::Refused(refused(message, Vec::new())));
        };
        let evaluation = self.evaluate_config(repo, script, MemoryLoader::new(files));
        let Some(graph) = evaluation.value else {
            let count = evaluation.errors.len();
            return Ok(Speculation::Refused(Refused {
                message: format!(
                    "{count} {} in {CONSTRUCTICON_FILE}",
                    if count == 1 { "error" } else { "errors" }
                ),
                rendered: diagnostic::render(&evaluation.errors, &evaluation.sources),
                errors: evaluation.errors,
                output: evaluation.output,
            }));
        };
        if let Some(clash) = self.builder_clash(repo, &graph) {
            return Ok(Speculation::Refused(refused(clash, evaluation.output)));
        }
        let diff = diff_graphs(live.as_ref().map(|g| &g.graph), &graph);
        Ok(Speculation::Evaluated(Box::new(Speculated {
            diff,
            against: live.map(|g| LiveGraph {
                version: g.version,
                commit: g.commit.clone(),
            }),
            rendered_warnings: diagnostic::render_warnings(
                &evaluation.warnings,
                &evaluation.sources,
            ),
            warnings: evaluation.warnings,
            output: evaluation.output,
            graph,
        })))
    }
}

/// A refusal with one error that has no place in the source.
fn refused(message: String, output: Vec<String>) -> Refused {
    let errors = vec![Diagnostic::at(CONSTRUCTICON_FILE, None, None, &message)];
    Refused {
        message,
        rendered: diagnostic::render(&errors, &BTreeMap::new()),
        errors,
        output,
    }
}

/// How `new` differs from `old` (no live graph: everything is added).
pub fn diff_graphs(old: Option<&Graph>, new: &Graph) -> GraphDiff {
    GraphDiff {
        builders: diff_named(old.map(|g| &g.builders), &new.builders),
        schedulers: diff_named(old.map(|g| &g.schedulers), &new.schedulers),
    }
}

fn diff_named<T: Serialize + PartialEq>(
    old: Option<&BTreeMap<String, T>>,
    new: &BTreeMap<String, T>,
) -> Changes {
    let empty = BTreeMap::new();
    let old = old.unwrap_or(&empty);
    let mut changes = Changes {
        added: new
            .keys()
            .filter(|name| !old.contains_key(*name))
            .cloned()
            .collect(),
        removed: old
            .keys()
            .filter(|name| !new.contains_key(*name))
            .cloned()
            .collect(),
        changed: Vec::new(),
    };
    for (name, before) in old {
        let Some(after) = new.get(name) else {
            continue;
        };
        if before == after {
            continue;
        }
        let mut keys = Vec::new();
        key_changes("", &to_value(before), &to_value(after), &mut keys);
        if !keys.is_empty() {
            changes.changed.push(Changed {
                name: name.clone(),
                keys,
            });
        }
    }
    changes
}

fn to_value<T: Serialize>(value: &T) -> Value {
    // Graph types are plain data with string keys: serialising cannot fail.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Pushes every key under `path` whose value differs. Maps are compared key
/// by key, and lists of maps (steps, deps) of the same length item by item,
/// so a changed command reads `steps[1].command`; other lists and values
/// are shown whole.
fn key_changes(path: &str, old: &Value, new: &Value, out: &mut Vec<KeyChange>) {
    if old == new {
        return;
    }
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (old, new) {
        (Value::Object(before), Value::Object(after)) => {
            for (key, value) in before {
                key_changes(
                    &join(key),
                    value,
                    after.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
            for (key, value) in after.iter().filter(|(k, _)| !before.contains_key(*k)) {
                key_changes(&join(key), &Value::Null, value, out);
            }
        }
        (Value::Array(before), Value::Array(after))
            if before.len() == after.len() && before.iter().chain(after).all(Value::is_object) =>
        {
            for (index, (b, a)) in before.iter().zip(after).enumerate() {
                key_changes(&format!("{path}[{index}]"), b, a, out);
            }
        }
        _ => out.push(KeyChange {
            key: path.to_string(),
            old: old.clone(),
            new: new.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn changes(old: Value, new: Value) -> Vec<(String, Value, Value)> {
        let mut out = Vec::new();
        key_changes("", &old, &new, &mut out);
        out.into_iter().map(|c| (c.key, c.old, c.new)).collect()
    }

    #[test]
    fn keys_are_compared_one_by_one() {
        let old = json!({
            "workers": ["w1"],
            "steps": [{"name": "1", "command": "make"}, {"name": "2", "command": "test"}],
            "resources": [],
        });
        let new = json!({
            "workers": ["w1", "w2"],
            "steps": [{"name": "1", "command": "make all"}, {"name": "2", "command": "test"}],
            "resources": [],
            "collapse": true,
        });
        assert_eq!(
            changes(old, new),
            vec![
                ("workers".into(), json!(["w1"]), json!(["w1", "w2"])),
                ("steps[0].command".into(), json!("make"), json!("make all")),
                ("collapse".into(), Value::Null, json!(true)),
            ]
        );
    }

    #[test]
    fn lists_of_another_length_are_shown_whole() {
        let old = json!({"steps": [{"command": "a"}]});
        let new = json!({"steps": [{"command": "a"}, {"command": "b"}]});
        assert_eq!(
            changes(old.clone(), new.clone()),
            vec![("steps".into(), old["steps"].clone(), new["steps"].clone())]
        );
        assert!(changes(old.clone(), old).is_empty());
    }

    #[test]
    fn sent_files_are_plain_paths_within_bounds() {
        let files = |paths: &[&str]| -> BTreeMap<String, String> {
            paths
                .iter()
                .map(|p| (p.to_string(), String::new()))
                .collect()
        };
        assert!(check_sent_files(&files(&["constructicon.rhai", "lib/x.rhai"])).is_ok());
        for bad in [
            "../x.rhai",
            "/etc/x.rhai",
            "./x.rhai",
            "lib//x.rhai/.",
            "a/../b.rhai",
        ] {
            let result = check_sent_files(&files(&["constructicon.rhai", bad]));
            assert!(
                matches!(result, Err(Error::BadRequest(_))),
                "{bad}: {result:?}"
            );
        }
        assert!(matches!(
            check_sent_files(&files(&["lib/x.rhai"])),
            Err(Error::BadRequest(_))
        ));
        let many: Vec<String> = (0..=MAX_SENT_FILES).map(|i| format!("f{i}.rhai")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(
            check_sent_files(&files(&many)),
            Err(Error::TooLarge(_))
        ));
        let mut big = files(&["constructicon.rhai"]);
        big.insert("big.rhai".into(), "x".repeat(MAX_SENT_BYTES + 1));
        assert!(matches!(check_sent_files(&big), Err(Error::TooLarge(_))));
    }
}
