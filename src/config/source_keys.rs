//! Map keys as a script's source writes them, each with its *written path*:
//! the keys (and array items) of the map and array literals it is nested in,
//! as far out as literals go, or as an assignment to properties names them
//! (`builders.win = #{ ... }`). `locate` matches key paths against them.
//! Key paths are split into segments here too, since both sides speak them.

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

/// A key as written in the source.
pub(super) struct SourceKey {
    /// The char offset where the key (or its opening quote) starts.
    pub(super) offset: usize,
    /// The char offset just past the key (or its closing quote).
    pub(super) end: usize,
    /// The keys and array items of the literals around it, then its name.
    pub(super) written: Vec<Segment>,
}

/// An open bracket while scanning, with the written path inside it.
struct Frame {
    /// `{`, `[` or `(`.
    open: char,
    /// The written path of what is inside; empty where literals stop (a
    /// block, a call, a map literal that is not the value of a key).
    inside: Vec<Segment>,
    /// For `[`: the item being read now.
    item: usize,
}

/// What the scanner has seen since the last key or bracket, to tell whether
/// a bracket opens the value of a key or an array item.
#[derive(Clone, PartialEq, Eq)]
enum Pending {
    /// A key and its colon: the next bracket opens its value.
    Key(usize),
    /// The start of an array item.
    Item,
    /// An assignment to properties written out (`builders.win = `,
    /// `b["x"].y = `): the next bracket opens their value.
    Assigned(Vec<Segment>),
    Nothing,
}

/// Whether the `=` at `i` assigns (not `==`, `!=`, `<=`, `>=`, `=>`, `+=`).
fn assigns(chars: &[char], i: usize) -> bool {
    let next = chars.get(i + 1).copied();
    let previous = i.checked_sub(1).map(|p| chars[p]);
    !matches!(next, Some('=' | '>'))
        && !matches!(
            previous,
            Some('=' | '!' | '<' | '>' | '+' | '-' | '*' | '/' | '%' | '&' | '|' | '^')
        )
}

/// The properties an assignment ending at `eq` writes to, after its variable
/// and after any index computed at run time: `builders.win` gives `win`,
/// `b[name].x["y"]` gives `x`, `y`; a plain variable gives nothing.
fn assignment_target(chars: &[char], eq: usize) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut i = eq;
    loop {
        while i > 0 && chars[i - 1].is_whitespace() {
            i -= 1;
        }
        if i == 0 {
            break;
        }
        if chars[i - 1] == ']' {
            let close = i - 1;
            let Some(open) = chars[..close].iter().rposition(|&c| c == '[') else {
                break;
            };
            let inside: String = chars[open + 1..close].iter().collect();
            let inside = inside.trim();
            if inside.len() >= 2 && inside.starts_with('"') && inside.ends_with('"') {
                segments.push(Segment::Key(inside[1..inside.len() - 1].to_string()));
            } else if let Ok(n) = inside.parse() {
                segments.push(Segment::Index(n));
            } else {
                break;
            }
            i = open;
        } else if chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' {
            let end = i;
            while i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
                i -= 1;
            }
            let dot = skip_whitespace_back(chars, i);
            if dot > 0 && chars[dot - 1] == '.' {
                segments.push(Segment::Key(chars[i..end].iter().collect()));
                i = dot - 1;
            } else {
                break;
            }
        } else {
            break;
        }
    }
    segments.reverse();
    segments
}

pub(super) fn skip_whitespace_back(chars: &[char], mut i: usize) -> usize {
    while i > 0 && chars[i - 1].is_whitespace() {
        i -= 1;
    }
    i
}

pub(super) fn skip_whitespace(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

/// The offset after the comment that starts at `i`, if one does.
pub(super) fn skip_comment(chars: &[char], i: usize) -> Option<usize> {
    if chars[i] != '/' {
        return None;
    }
    match chars.get(i + 1) {
        Some('/') => {
            let mut j = i;
            while j < chars.len() && chars[j] != '\n' {
                j += 1;
            }
            Some(j)
        }
        Some('*') => {
            let mut j = i + 2;
            while j + 1 < chars.len() && !(chars[j] == '*' && chars[j + 1] == '/') {
                j += 1;
            }
            Some((j + 2).min(chars.len()))
        }
        _ => None,
    }
}

/// The offset after the string or character literal that starts at `i`, and
/// its contents.
pub(super) fn skip_string(chars: &[char], i: usize) -> (usize, String) {
    let quote = chars[i];
    let mut j = i + 1;
    let mut text = String::new();
    while j < chars.len() && chars[j] != quote {
        if chars[j] == '\\' {
            j += 1;
        }
        if let Some(&c) = chars.get(j) {
            text.push(c);
        }
        j += 1;
    }
    ((j + 1).min(chars.len()), text)
}

/// Whether a single colon (not `::`) follows `i`, and where after it.
fn colon_after(chars: &[char], i: usize) -> Option<usize> {
    let j = skip_whitespace(chars, i);
    (chars.get(j) == Some(&':') && chars.get(j + 1) != Some(&':')).then_some(j + 1)
}

/// Every map key written in the source, in order, with its written path,
/// skipping comments and string contents.
pub(super) fn source_keys(chars: &[char]) -> Vec<SourceKey> {
    let mut keys: Vec<SourceKey> = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut pending = Pending::Nothing;
    let mut i = 0;
    // The written path of a key named `name` at the current place.
    let written_here = |frames: &[Frame], name: String| {
        let mut written = frames.last().map_or(Vec::new(), |f| f.inside.clone());
        written.push(Segment::Key(name));
        written
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == '#' {
            i += 1;
            continue;
        }
        if let Some(next) = skip_comment(chars, i) {
            i = next;
            continue;
        }
        match c {
            '"' | '`' | '\'' => {
                let (next, text) = skip_string(chars, i);
                match colon_after(chars, next) {
                    Some(after) if c == '"' => {
                        keys.push(SourceKey {
                            offset: i,
                            end: next,
                            written: written_here(&frames, text),
                        });
                        pending = Pending::Key(keys.len() - 1);
                        i = after;
                    }
                    _ => {
                        pending = Pending::Nothing;
                        i = next;
                    }
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                match colon_after(chars, i) {
                    Some(after) => {
                        keys.push(SourceKey {
                            offset: start,
                            end: i,
                            written: written_here(&frames, chars[start..i].iter().collect()),
                        });
                        pending = Pending::Key(keys.len() - 1);
                        i = after;
                    }
                    None => pending = Pending::Nothing,
                }
            }
            '{' | '[' | '(' => {
                let inside = match std::mem::replace(&mut pending, Pending::Nothing) {
                    Pending::Key(key) if c != '(' => keys[key].written.clone(),
                    Pending::Assigned(target) if c != '(' => target,
                    Pending::Item if c != '(' => match frames.last() {
                        Some(array) => {
                            let mut inside = array.inside.clone();
                            inside.push(Segment::Index(array.item));
                            inside
                        }
                        None => Vec::new(),
                    },
                    _ => Vec::new(),
                };
                frames.push(Frame {
                    open: c,
                    inside,
                    item: 0,
                });
                pending = if c == '[' {
                    Pending::Item
                } else {
                    Pending::Nothing
                };
                i += 1;
            }
            '}' | ']' | ')' => {
                frames.pop();
                pending = Pending::Nothing;
                i += 1;
            }
            ',' => {
                pending = match frames.last_mut() {
                    Some(frame) if frame.open == '[' => {
                        frame.item += 1;
                        Pending::Item
                    }
                    _ => Pending::Nothing,
                };
                i += 1;
            }
            '=' if assigns(chars, i) => {
                pending = Pending::Assigned(assignment_target(chars, i));
                i += 1;
            }
            _ => {
                pending = Pending::Nothing;
                i += 1;
            }
        }
    }
    keys
}

/// Where `name` is used as a property or a quoted index (`b.name`,
/// `b["name"]`), for keys a script sets outside a map literal.
pub(super) fn property_tokens(chars: &[char], name: &str) -> Vec<usize> {
    let name: Vec<char> = name.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if let Some(next) = skip_comment(chars, i) {
            i = next;
            continue;
        }
        let c = chars[i];
        if c == '"' || c == '`' || c == '\'' {
            let (next, text) = skip_string(chars, i);
            // An index right after a value (`b["name"]`), not an array
            // literal (`in ["name"]`).
            let open = skip_whitespace_back(chars, i);
            let indexes = open >= 2
                && chars[open - 1] == '['
                && (chars[open - 2].is_alphanumeric()
                    || matches!(chars[open - 2], '_' | ']' | ')'))
                && chars.get(skip_whitespace(chars, next)) == Some(&']');
            if c == '"' && indexes && text.chars().eq(name.iter().copied()) {
                found.push(i);
            }
            i = next;
            continue;
        }
        if c == '.' && !name.is_empty() {
            let start = skip_whitespace(chars, i + 1);
            let end = start + name.len();
            let whole = chars
                .get(end)
                .is_none_or(|c| !(c.is_alphanumeric() || *c == '_'));
            if end <= chars.len() && chars[start..end] == name[..] && whole {
                found.push(start);
                i = end;
                continue;
            }
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
