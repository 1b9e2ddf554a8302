//! Finding where a key path is written in a script's source.
//!
//! Values built by a script carry no positions, so a problem's place is found
//! in the text. Every map key written in the source (`name:` or `"name":`) is
//! collected with its *written path*: the keys (and array items) of the map
//! and array literals it is nested in, as far out as literals go. A key in
//! `builders: #{ basic: #{ commands: [...] } }` is written at
//! `builders.basic.commands`; a key in a map literal a loop assigns
//! (`builders[name] = #{ timout: 5 }`) only at `timout`, since the rest of
//! its path is made at run time.
//!
//! A key path is placed at the keys whose written path is a suffix of it,
//! preferring the deepest segment of the path that is written somewhere, and
//! among those the keys that agree with most of the path. So the path
//! `builders.a.timout` finds `timout:` inside the loop, not `builders:` where
//! the loop's map is finally used; and `builders.x.commands` does not find the
//! `commands:` of another builder written as `builders: #{ y: #{ commands` .
//! A key written only through property syntax (`b.timout = 5`) is found by
//! that token. The keys and their written paths come from `source_keys`.

use super::source_keys::{
    path_segments, property_tokens, skip_comment, skip_string, skip_whitespace, source_keys,
    Segment, SourceKey,
};

/// Whether `written` ends the path `prefix`: its last segments, compared key
/// by key and index by index.
fn ends(prefix: &[Segment], written: &[Segment]) -> bool {
    written.len() <= prefix.len() && prefix[prefix.len() - written.len()..] == *written
}

/// Where the value of the key that ends at `end` starts.
fn value_start(chars: &[char], end: usize) -> usize {
    let colon = skip_whitespace(chars, end);
    skip_whitespace(chars, colon + 1).min(chars.len().saturating_sub(1))
}

/// The places of a key path in the source, as char offsets: one in most
/// cases, several when a key that a loop or function writes once is reached
/// through several paths from several places (each such place is returned).
///
/// With `at_value` the place is the key's value rather than the key. A path
/// ending in an index is placed at that item of an array literal when there
/// is one. Empty when no part of the path is written.
fn places(chars: &[char], keys: &[SourceKey], path: &str, at_value: bool) -> Vec<usize> {
    let segments = path_segments(path);
    let deepest_key = segments.iter().rposition(|s| matches!(s, Segment::Key(_)));
    for k in (1..=segments.len()).rev() {
        let Segment::Key(name) = &segments[k - 1] else {
            continue;
        };
        let prefix = &segments[..k];
        let matching: Vec<&SourceKey> = keys
            .iter()
            .filter(|key| ends(prefix, &key.written))
            .collect();
        let best = matching.iter().map(|key| key.written.len()).max();
        let found: Vec<&SourceKey> = matching
            .into_iter()
            .filter(|key| Some(key.written.len()) == best)
            .collect();
        let rest = &segments[k..];
        if found.is_empty() {
            if Some(k - 1) == deepest_key {
                let tokens = property_tokens(chars, name);
                if !tokens.is_empty() {
                    return tokens;
                }
            }
            continue;
        }
        return found
            .iter()
            .map(|key| match rest.first() {
                None if at_value => value_start(chars, key.end),
                None => key.offset,
                Some(Segment::Index(n)) => array_item(chars, key.end, *n).unwrap_or(key.offset),
                Some(Segment::Key(_)) => key.offset,
            })
            .collect();
    }
    Vec::new()
}

/// The 1-based lines and columns of a key path in the source: see [`places`].
pub fn locate_all(source: &str, path: &str, at_value: bool) -> Vec<(usize, usize)> {
    Source::new(source).locate_all(path, at_value)
}

/// A source scanned once for its keys, to place many key paths in it.
pub struct Source {
    chars: Vec<char>,
    keys: Vec<SourceKey>,
}

impl Source {
    pub fn new(source: &str) -> Source {
        let chars: Vec<char> = source.chars().collect();
        let keys = source_keys(&chars);
        Source { chars, keys }
    }

    /// The 1-based lines and columns of a key path: see [`places`].
    pub fn locate_all(&self, path: &str, at_value: bool) -> Vec<(usize, usize)> {
        places(&self.chars, &self.keys, path, at_value)
            .into_iter()
            .map(|offset| line_column(&self.chars, offset))
            .collect()
    }
}

/// The first place of a key path: where the key is written, or where its
/// deepest written ancestor is.
pub fn locate(source: &str, path: &str) -> Option<(usize, usize)> {
    locate_all(source, path, false).into_iter().next()
}

/// Where item `n` of the array literal that is the value of the key ending
/// at `key_end` starts; `None` when the value is not an array literal.
fn array_item(chars: &[char], key_end: usize, n: usize) -> Option<usize> {
    let mut i = value_start(chars, key_end);
    if chars.get(i) != Some(&'[') {
        return None;
    }
    i += 1;
    let mut depth = 0usize;
    let mut item = 0;
    let mut start = None;
    while i < chars.len() {
        if let Some(next) = skip_comment(chars, i) {
            i = next;
            continue;
        }
        let c = chars[i];
        if start.is_none() && !c.is_whitespace() {
            start = Some(i);
        }
        match c {
            '"' | '`' | '\'' => {
                i = skip_string(chars, i).0;
                continue;
            }
            '[' | '{' | '(' => depth += 1,
            ']' | '}' | ')' if depth == 0 => return (item == n).then_some(start).flatten(),
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
    for &c in &chars[..offset.min(chars.len())] {
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
    fn indices_lead_into_array_items() {
        let source = "c = #{ commands: [\n  #{ command: \"a, [b]\", timeout: 5 }, // x, y\n  #{ command: \"b\", timeout: 0 },\n] };";
        assert_eq!(locate(source, "commands[1].timeout"), Some((3, 20)));
        assert_eq!(locate(source, "commands[0].timeout"), Some((2, 25)));
        // A path ending in an index is the item itself.
        assert_eq!(locate(source, "commands[1]"), Some((3, 3)));
        assert_eq!(locate_all(source, "commands[1].timeout", true), [(3, 29)]);
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
        assert_eq!(locate(SOURCE, "builders.basic.commands[1]"), Some((5, 37)));
        assert_eq!(locate(SOURCE, "builders.basic.commands"), Some((5, 13)));
        assert_eq!(
            locate(SOURCE, r#"builders["odd.name"].comands"#),
            Some((7, 24))
        );
        // A key the script built at run time points at its deepest written
        // parent, not at the same key of another builder.
        assert_eq!(locate(SOURCE, "builders.generated7.commands"), Some((3, 5)));
        assert_eq!(locate(SOURCE, "nowhere"), None);
    }

    #[test]
    fn keys_of_maps_a_loop_builds_are_found_where_written() {
        let source = "let builders = #{};\nfor name in [\"a\", \"b\"] {\n    builders[name] = #{ commands: [\"x\"], timout: 5 };\n}\nconstructicon = #{ builders: builders };\n";
        assert_eq!(locate_all(source, "builders.a.timout", false), [(3, 42)]);
        assert_eq!(locate_all(source, "builders.b.timout", true), [(3, 50)]);
        assert_eq!(
            locate_all(source, "builders.a.commands[0]", false),
            [(3, 36)]
        );
        // Not written anywhere: the deepest written parent.
        assert_eq!(locate_all(source, "builders.a", false), [(5, 20)]);

        // The same key written in two places a path could come from: both.
        let two = "let b = #{};\nfor n in [\"x\"] { b[n] = #{ timout: 1 }; }\nfor n in [\"y\"] { b[n] = #{ timout: 2 }; }\nconstructicon = #{ builders: b };";
        assert_eq!(
            locate_all(two, "builders.x.timout", false),
            [(2, 28), (3, 28)]
        );

        // A map assigned to a property written out belongs to that key.
        let after = "let b = #{};\nfor os in [\"linux\", \"mac\"] {\n    b[os] = #{ timout: 5 };\n}\nb.win = #{ timout: 5 };\nconstructicon = #{ builders: b };";
        assert_eq!(locate_all(after, "builders.mac.timout", false), [(3, 16)]);
        assert_eq!(locate_all(after, "builders.win.timout", false), [(5, 12)]);

        // A key set as a property is found by that token.
        let property = "let b = #{ commands: [\"x\"] };\nb.timout = 5;\nconstructicon = #{ builders: #{ a: b } };";
        assert_eq!(locate_all(property, "builders.a.timout", false), [(2, 3)]);
    }
}
