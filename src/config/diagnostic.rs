//! Config errors and warnings as product output: file, line, column, key path
//! and message, a `help:` line when the fix is known, and their rustc-style
//! rendering with the source line and a caret.
//!
//! Values built by a script carry no positions, so a problem found while
//! reading is placed by finding its key path in the source text (`locate`).
//! A key a loop or a function writes once may end up under many paths (one
//! per builder the loop made); such problems are reported once per place in
//! the source, naming the first path and counting the others.

use super::locate::{locate_all, locate_assignment, Source};
use super::reader::Problem;
use super::source_keys::{path_segments, Segment};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use utoipa::ToSchema;

/// One error (or warning) in a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Diagnostic {
    pub message: String,
    /// The key path, e.g. `builders.basic.commands[1]`; `None` for syntax and
    /// runtime errors, which have a position instead.
    pub path: Option<String>,
    pub file: String,
    /// 1-based; `None` when the error cannot be tied to a place in the file.
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    /// How to fix it, when that is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// What else helps to read it: which step a command is, which other
    /// paths the same problem is at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn at(
        file: &str,
        line: Option<usize>,
        column: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            message: message.into(),
            path: None,
            file: file.to_string(),
            line,
            column,
            help: None,
            notes: Vec::new(),
        }
    }

    /// An error about a key path, placed where that path appears in `source`.
    pub fn keyed(file: &str, source: &str, path: &str, message: impl Into<String>) -> Self {
        let problem = Problem::new(path, message);
        let place = locate_all(source, path, false).into_iter().next();
        diagnostic_at(file, &problem, place)
    }
}

/// A problem as a diagnostic at a place, with the step it is about.
fn diagnostic_at(file: &str, problem: &Problem, place: Option<(usize, usize)>) -> Diagnostic {
    Diagnostic {
        message: problem.message.clone(),
        path: Some(problem.path.clone()),
        file: file.to_string(),
        line: place.map(|(line, _)| line),
        column: place.map(|(_, column)| column),
        help: problem.help.clone(),
        notes: step_note(&problem.path).into_iter().collect(),
    }
}

/// Which step a command's key path is: key paths count from 0 as Rhai's
/// arrays do, steps from 1 as the original numbered them.
pub fn step_note(path: &str) -> Option<String> {
    let segments = path_segments(path);
    let (label, list, n) = match segments.as_slice() {
        [Segment::Key(top), Segment::Key(_), Segment::Key(list), Segment::Index(n), ..]
            if top == "builders" =>
        {
            ("", list, n)
        }
        [Segment::Key(top), Segment::Key(list), Segment::Index(n), ..] if top == "builder_base" => {
            ("cybertron ", list, n)
        }
        _ => return None,
    };
    let kind = match list.as_str() {
        "commands" => "command",
        "precommands" => "precommand",
        _ => return None,
    };
    let at = path
        .find(&format!("{list}[{n}]"))
        .map_or(path.len(), |start| start + format!("{list}[{n}]").len());
    let every = if label.is_empty() {
        ""
    } else {
        " of every builder"
    };
    Some(format!(
        "{} is the step \"{label}{kind} {}\"{every}",
        &path[..at],
        n + 1
    ))
}

/// Where a problem is shown: a line and column each, or nowhere.
type Places = Vec<Option<(usize, usize)>>;

/// Places problems found in one file. A problem whose key path is not
/// written in the source at all is placed at the script's assignment. Problems
/// with the same message at the same places (the same key, written once in a
/// loop or function, under several paths) become one diagnostic per place,
/// naming the first path and counting the others.
pub fn placed(file: &str, source: &str, problems: &[Problem]) -> Vec<Diagnostic> {
    // Scanning a big source for its keys costs milliseconds: not for nothing.
    if problems.is_empty() {
        return Vec::new();
    }
    let assigned = locate_assignment(source, "constructicon")
        .or_else(|| locate_assignment(source, "cybertron"));
    // Groups in the order their first problem came, by message, help and
    // places.
    let mut groups: Vec<(Places, Vec<&Problem>)> = Vec::new();
    let scanned = Source::new(source);
    for problem in problems {
        let mut places: Places = scanned
            .locate_all(&problem.path, problem.at_value)
            .into_iter()
            .map(Some)
            .collect();
        if places.is_empty() {
            places.push(assigned);
        }
        let same = groups.iter_mut().find(|(at, members)| {
            *at == places
                && members[0].message == problem.message
                && members[0].help == problem.help
        });
        match same {
            Some((_, members)) => members.push(problem),
            None => groups.push((places, vec![problem])),
        }
    }
    let mut diagnostics = Vec::new();
    for (places, members) in groups {
        for place in places {
            let mut diagnostic = diagnostic_at(file, members[0], place);
            if members.len() > 1 {
                let others: Vec<&str> = members[1..].iter().map(|p| p.path.as_str()).collect();
                diagnostic.message += &format!(" (and {} more)", others.len());
                diagnostic
                    .notes
                    .push(format!("also at {}", others.join(", ")));
            }
            diagnostics.push(diagnostic);
        }
    }
    diagnostics
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: path: message`, the one-line form tools can parse.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Renders errors rustc-style: the one-line form, then the source line with a
/// caret under the column, then the help and notes.
pub fn render(diagnostics: &[Diagnostic], sources: &BTreeMap<String, String>) -> String {
    render_as("error", diagnostics, sources)
}

/// Renders warnings as [`render`] renders errors.
pub fn render_warnings(diagnostics: &[Diagnostic], sources: &BTreeMap<String, String>) -> String {
    render_as("warning", diagnostics, sources)
}

fn render_as(
    level: &str,
    diagnostics: &[Diagnostic],
    sources: &BTreeMap<String, String>,
) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&format!("{level}: {diagnostic}\n"));
        let text = diagnostic.line.and_then(|line| {
            let source = sources.get(&diagnostic.file)?;
            Some((line, source.lines().nth(line.saturating_sub(1))?))
        });
        let gutter = text.map_or(1, |(line, _)| line.to_string().len());
        if let Some((line, text)) = text {
            let column = diagnostic.column.unwrap_or(1).max(1);
            // Tabs keep their width under the caret line so the caret lines up.
            let pad: String = text
                .chars()
                .take(column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let width = caret_width(text, column);
            out.push_str(&format!("{:gutter$} |\n", ""));
            out.push_str(&format!("{line} | {text}\n"));
            out.push_str(&format!("{:gutter$} | {pad}{}\n", "", "^".repeat(width)));
        }
        if let Some(help) = &diagnostic.help {
            out.push_str(&format!("{:gutter$} = help: {help}\n", ""));
        }
        for note in &diagnostic.notes {
            out.push_str(&format!("{:gutter$} = note: {note}\n", ""));
        }
        out.push('\n');
    }
    out
}

/// Underline the word (identifier, number or quoted text) that starts at the
/// column.
fn caret_width(text: &str, column: usize) -> usize {
    let rest: Vec<char> = text.chars().skip(column - 1).collect();
    match rest.first() {
        Some(&quote @ ('"' | '`' | '\'')) => rest
            .iter()
            .skip(1)
            .position(|&c| c == quote)
            .map_or(1, |end| end + 2),
        Some(_) => rest
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_')
            .count()
            .max(1),
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r#"constructicon = #{
    builders: #{
        basic: #{
            comands: ["x"],
            commands: ["echo", 42],
        },
    },
};
"#;

    fn sources() -> BTreeMap<String, String> {
        BTreeMap::from([("c.rhai".to_string(), SOURCE.to_string())])
    }

    #[test]
    fn render_shows_the_line_a_caret_and_the_help() {
        let problems = [
            Problem::new(
                "builders.basic.comands",
                "unused configuration key \"comands\" (did you mean \"commands\"?)",
            )
            .help("did you mean \"commands\"?"),
            Problem::new(
                "builders.basic.commands[1]",
                "expected a string or a map with \"command\", found an integer",
            )
            .at_value(),
        ];
        let text = render(&placed("c.rhai", SOURCE, &problems), &sources());
        assert_eq!(
            text,
            r#"error: c.rhai:4:13: builders.basic.comands: unused configuration key "comands" (did you mean "commands"?)
  |
4 |             comands: ["x"],
  |             ^^^^^^^
  = help: did you mean "commands"?

error: c.rhai:5:32: builders.basic.commands[1]: expected a string or a map with "command", found an integer
  |
5 |             commands: ["echo", 42],
  |                                ^^
  = note: builders.basic.commands[1] is the step "command 2"

"#
        );
    }

    #[test]
    fn warnings_render_like_errors() {
        let warning = Diagnostic::keyed("c.rhai", SOURCE, "builders.basic", "no scheduler");
        assert_eq!(
            render_warnings(&[warning], &sources()),
            "warning: c.rhai:3:9: builders.basic: no scheduler\n  |\n3 |         basic: #{\n  |         ^^^^^\n\n"
        );
    }

    #[test]
    fn steps_count_from_one() {
        assert_eq!(
            step_note("builders.b.commands[0].timeout").as_deref(),
            Some("builders.b.commands[0] is the step \"command 1\"")
        );
        assert_eq!(
            step_note(r#"builders["a.b"].precommands[2]"#).as_deref(),
            Some(r#"builders["a.b"].precommands[2] is the step "precommand 3""#)
        );
        assert_eq!(
            step_note("builder_base.commands[1]").as_deref(),
            Some("builder_base.commands[1] is the step \"cybertron command 2\" of every builder")
        );
        assert_eq!(step_note("builders.b.commands"), None);
        assert_eq!(step_note("builders.b.deps[0]"), None);
    }

    #[test]
    fn one_key_written_in_a_loop_is_reported_once() {
        let source = "let builders = #{};\nfor name in [\"a\", \"b\"] {\n    builders[name] = #{ commands: [\"x\"], timout: 5 };\n}\nconstructicon = #{ builders: builders };\n";
        let problems = ["builders.a.timout", "builders.b.timout"]
            .map(|path| Problem::new(path, "unused configuration key \"timout\""));
        let found: Vec<String> = placed("c.rhai", source, &problems)
            .iter()
            .map(|d| format!("{d} {:?}", d.notes))
            .collect();
        assert_eq!(
            found,
            [
                r#"c.rhai:3:42: builders.a.timout: unused configuration key "timout" (and 1 more) ["also at builders.b.timout"]"#
            ]
        );
    }
}
