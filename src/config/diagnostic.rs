//! Config errors as product output: file, line, column, key path and message,
//! and their rustc-style rendering with the source line and a caret.
//!
//! Values built by a script carry no positions, so a validation error's
//! position is found by looking for its key path in the source text
//! ([`locate`]): each segment of the path is searched as a map key after the
//! previous one. Keys a script builds at run time (`builders["b" + i]`) are not
//! in the text; the error then points at the deepest segment that is.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use utoipa::ToSchema;

/// One error in a config.
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
        }
    }

    /// An error about a key path, placed where that path appears in `source`.
    pub fn keyed(file: &str, source: &str, path: &str, message: impl Into<String>) -> Self {
        let (line, column) = match locate(source, path) {
            Some((line, column)) => (Some(line), Some(column)),
            None => (None, None),
        };
        Diagnostic {
            message: message.into(),
            path: Some(path.to_string()),
            file: file.to_string(),
            line,
            column,
        }
    }
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

/// Renders diagnostics rustc-style: the one-line form, then the source line
/// with a caret under the column.
pub fn render(diagnostics: &[Diagnostic], sources: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&format!("error: {diagnostic}\n"));
        let (Some(line), Some(source)) = (diagnostic.line, sources.get(&diagnostic.file)) else {
            out.push('\n');
            continue;
        };
        let Some(text) = source.lines().nth(line.saturating_sub(1)) else {
            out.push('\n');
            continue;
        };
        let gutter = line.to_string().len();
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
        out.push_str(&format!("{:gutter$} | {pad}{}\n\n", "", "^".repeat(width)));
    }
    out
}

/// Underline the word (identifier or quoted key) that starts at the column.
fn caret_width(text: &str, column: usize) -> usize {
    let rest: Vec<char> = text.chars().skip(column - 1).collect();
    match rest.first() {
        Some('"') => rest
            .iter()
            .skip(1)
            .position(|&c| c == '"')
            .map_or(1, |end| end + 2),
        Some(_) => rest
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_')
            .count()
            .max(1),
        None => 1,
    }
}

/// One step of a key path: a map key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Splits a key path (`builders.basic.commands[1]`, `builders["a.b"].deps`)
/// into its keys and indices.
pub fn path_segments(path: &str) -> Vec<Segment> {
    let mut keys = Vec::new();
    let mut chars = path.chars().peekable();
    let mut current = String::new();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !current.is_empty() {
                    keys.push(Segment::Key(std::mem::take(&mut current)));
                }
            }
            '[' => {
                if !current.is_empty() {
                    keys.push(Segment::Key(std::mem::take(&mut current)));
                }
                let mut inside = String::new();
                if chars.peek() == Some(&'"') {
                    chars.next();
                    let mut key = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => key.extend(chars.next()),
                            '"' => break,
                            c => key.push(c),
                        }
                    }
                    keys.push(Segment::Key(key));
                }
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    inside.push(c);
                }
                if let Ok(index) = inside.parse() {
                    keys.push(Segment::Index(index));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        keys.push(Segment::Key(current));
    }
    keys
}

/// A key as it appears in source: its text and the char offset where it starts.
struct SourceKey {
    name: String,
    offset: usize,
}

/// Every map key written in the source (`name:` or `"name":`), in order,
/// skipping comments and string contents.
fn source_keys(chars: &[char]) -> Vec<SourceKey> {
    let mut keys = Vec::new();
    let mut i = 0;
    let next_is_single_colon = |mut j: usize| {
        while j < chars.len()
            && (chars[j] == ' ' || chars[j] == '\t' || chars[j] == '\n' || chars[j] == '\r')
        {
            j += 1;
        }
        j < chars.len() && chars[j] == ':' && chars.get(j + 1) != Some(&':')
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '"' || c == '`' || c == '\'' {
            let start = i;
            let mut name = String::new();
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&ch) = chars.get(i) {
                    name.push(ch);
                }
                i += 1;
            }
            i += 1;
            if c == '"' && next_is_single_colon(i) {
                keys.push(SourceKey {
                    name,
                    offset: start,
                });
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            if next_is_single_colon(i) {
                keys.push(SourceKey {
                    name: chars[start..i].iter().collect(),
                    offset: start,
                });
            }
        } else {
            i += 1;
        }
    }
    keys
}

/// The 1-based line and column where the key path is written, or where its
/// deepest written ancestor is.
///
/// An index inside the path (`commands[1].timeout`) moves the search into that
/// item of an array literal; an index at the end points at the array's key.
pub fn locate(source: &str, path: &str) -> Option<(usize, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let keys = source_keys(&chars);
    let mut found: Option<usize> = None;
    let mut from = 0;
    let segments = path_segments(path);
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Key(name) => match keys[from..].iter().position(|key| key.name == *name) {
                Some(index) => {
                    found = Some(keys[from + index].offset);
                    from += index + 1;
                }
                None => break,
            },
            Segment::Index(_) if i + 1 == segments.len() => break,
            Segment::Index(n) => {
                let Some(item) = found.and_then(|key| array_item(&chars, key, *n)) else {
                    break;
                };
                from = keys
                    .iter()
                    .position(|key| key.offset >= item)
                    .unwrap_or(keys.len());
            }
        }
    }
    let offset = found?;
    Some(line_column(&chars, offset))
}

/// Where item `n` of the array literal that is the value of the key at
/// `key_offset` starts; `None` when the value is not an array literal.
fn array_item(chars: &[char], key_offset: usize, n: usize) -> Option<usize> {
    let mut i = key_offset;
    // Past the key (quoted or not) and the colon.
    while i < chars.len() && chars[i] != ':' {
        i += 1;
    }
    i += 1;
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    if chars.get(i) != Some(&'[') {
        return None;
    }
    i += 1;
    let mut depth = 0usize;
    let mut item = 0;
    let mut start = None;
    while i < chars.len() {
        let c = chars[i];
        if start.is_none()
            && !c.is_whitespace()
            && !(c == '/' && matches!(chars.get(i + 1), Some('/') | Some('*')))
        {
            start = Some(i);
        }
        match c {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
                continue;
            }
            '"' | '`' | '\'' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            '[' | '{' | '(' => depth += 1,
            ']' | '}' | ')' if depth == 0 => return None,
            ']' | '}' | ')' => depth -= 1,
            ',' if depth == 0 => {
                if item == n {
                    return start;
                }
                item += 1;
                start = None;
            }
            _ => {}
        }
        if item == n && depth == 0 && start.is_some() && chars.get(i + 1).is_some_and(|c| *c == ']')
        {
            return start;
        }
        i += 1;
    }
    None
}

/// Where `variable = ...` is written (not `==`), for errors about what the
/// script assigned.
pub fn locate_assignment(source: &str, variable: &str) -> Option<(usize, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let name: Vec<char> = variable.chars().collect();
    let mut last = None;
    let mut i = 0;
    while i + name.len() <= chars.len() {
        let boundary_before = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if boundary_before && chars[i..i + name.len()] == name[..] {
            let mut j = i + name.len();
            while j < chars.len() && (chars[j] == ' ' || chars[j] == '\t') {
                j += 1;
            }
            if chars.get(j) == Some(&'=') && chars.get(j + 1) != Some(&'=') {
                last = Some(i);
            }
        }
        i += 1;
    }
    last.map(|offset| line_column(&chars, offset))
}

fn line_column(chars: &[char], offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for &c in &chars[..offset] {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// Line and column of a byte offset, for errors found on bytes (bad UTF-8).
pub fn byte_line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r#"// builders: not this one
constructicon = #{
    builders: #{
        basic: #{
            commands: ["echo a: b", 42],
        },
        "odd.name": #{ comands: [] },
    },
};
"#;

    #[test]
    fn paths_split_into_keys_and_indices() {
        let key = |k: &str| Segment::Key(k.to_string());
        assert_eq!(
            path_segments("builders.basic.commands[1]"),
            [
                key("builders"),
                key("basic"),
                key("commands"),
                Segment::Index(1)
            ]
        );
        assert_eq!(
            path_segments(r#"builders["odd.name"].comands"#),
            [key("builders"), key("odd.name"), key("comands")]
        );
    }

    #[test]
    fn indices_lead_into_array_items() {
        let source = "c = #{ commands: [\n  #{ command: \"a, [b]\", timeout: 5 }, // x, y\n  #{ command: \"b\", timeout: 0 },\n] };";
        assert_eq!(locate(source, "commands[1].timeout"), Some((3, 20)));
        assert_eq!(locate(source, "commands[0].timeout"), Some((2, 25)));
        assert_eq!(locate(source, "commands[1]"), Some((1, 8)));
        assert_eq!(
            locate_assignment(
                "// constructicon = 1\nlet x = 1;\nconstructicon = [1];",
                "constructicon"
            ),
            Some((3, 1))
        );
        assert_eq!(
            locate_assignment("if constructicon == 1 {}", "constructicon"),
            None
        );
    }

    #[test]
    fn keys_are_found_after_their_parents() {
        assert_eq!(locate(SOURCE, "builders.basic.commands[1]"), Some((5, 13)));
        assert_eq!(
            locate(SOURCE, r#"builders["odd.name"].comands"#),
            Some((7, 24))
        );
        // A key the script built at run time points at its deepest written parent.
        assert_eq!(locate(SOURCE, "builders.generated7.commands"), Some((3, 5)));
        assert_eq!(locate(SOURCE, "nowhere"), None);
    }

    #[test]
    fn render_shows_the_line_and_a_caret() {
        let diagnostic = Diagnostic::keyed(
            "c.rhai",
            SOURCE,
            "builders.basic.commands[1]",
            "expected a string",
        );
        let sources = BTreeMap::from([("c.rhai".to_string(), SOURCE.to_string())]);
        let text = render(&[diagnostic], &sources);
        assert_eq!(
            text,
            "error: c.rhai:5:13: builders.basic.commands[1]: expected a string\n  |\n5 |             commands: [\"echo a: b\", 42],\n  |             ^^^^^^^^\n\n"
        );
    }

    #[test]
    fn byte_positions_count_lines_and_chars() {
        assert_eq!(byte_line_column(b"ab\ncd\xff", 5), (2, 3));
        assert_eq!(byte_line_column(b"\xc3\xa9\xff", 2), (1, 2));
    }
}
