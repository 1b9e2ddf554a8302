//! What a step's output is looked at for: its lines, split from a byte
//! stream that need not be UTF-8, and the warning patterns they are matched
//! against. Apart from `exec`, which runs the process, since none of it
//! needs a process to be tested or read.

use crate::sync::lock;
use anyhow::Context;
use regex::bytes::Regex;
use std::collections::HashMap;
use std::sync::Mutex;

/// Longest piece of a single line kept for warning matching; the output itself
/// is never cut, only what the regexes look at.
const MAX_LINE: usize = 64 * 1024;

/// The step's warning patterns: a line is a warning when it matches one of
/// `warnings` and none of `suppress`.
#[derive(Debug, Clone, Default)]
pub struct Warnings {
    warnings: Vec<Regex>,
    suppress: Vec<Regex>,
}

impl Warnings {
    /// Compiles both lists; the error names the pattern that is invalid.
    pub fn new(warnings: &[String], suppress: &[String]) -> anyhow::Result<Warnings> {
        let compile = |list: &[String], what: &str| -> anyhow::Result<Vec<Regex>> {
            list.iter()
                .map(|pattern| {
                    Regex::new(pattern).with_context(|| format!("invalid {what} regex `{pattern}`"))
                })
                .collect()
        };
        Ok(Warnings {
            warnings: compile(warnings, "warnings")?,
            suppress: compile(suppress, "suppress_warnings")?,
        })
    }

    pub fn is_warning(&self, line: &[u8]) -> bool {
        self.warnings.iter().any(|r| r.is_match(line))
            && !self.suppress.iter().any(|r| r.is_match(line))
    }
}

/// Compiled warning patterns, kept for the worker's life: the steps of a
/// build mostly share cybertron's lists, and the next build of a builder
/// has the same ones, so each list is compiled once, not once a step.
#[derive(Debug, Default)]
pub struct WarningsCache {
    /// By the two lists, each pattern followed by a NUL (which a pattern
    /// cannot hold, since configs are text), with a separator between.
    compiled: Mutex<HashMap<String, Warnings>>,
}

/// Lists of patterns kept at once; past it the cache starts again.
const CACHED_LISTS: usize = 64;

impl WarningsCache {
    /// The compiled lists, compiled now if they are new.
    pub fn get(&self, warnings: &[String], suppress: &[String]) -> anyhow::Result<Warnings> {
        let mut key = String::new();
        for pattern in warnings {
            key.push_str(pattern);
            key.push('\0');
        }
        key.push('\u{1}');
        for pattern in suppress {
            key.push_str(pattern);
            key.push('\0');
        }
        if let Some(found) = lock(&self.compiled).get(&key) {
            return Ok(found.clone());
        }
        let compiled = Warnings::new(warnings, suppress)?;
        let mut kept = lock(&self.compiled);
        if kept.len() >= CACHED_LISTS {
            kept.clear();
        }
        kept.insert(key, compiled.clone());
        Ok(compiled)
    }
}

/// Splits a byte stream into lines for warning matching, carrying a partial
/// line between chunks.
#[derive(Default)]
pub(super) struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    pub(super) fn feed(&mut self, mut bytes: &[u8], mut on_line: impl FnMut(&[u8])) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.push(&bytes[..end]);
            on_line(trim_cr(&self.partial));
            self.partial.clear();
            bytes = &bytes[end + 1..];
        }
        self.push(bytes);
    }

    pub(super) fn finish(&mut self, mut on_line: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            on_line(trim_cr(&self.partial));
            self.partial.clear();
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_compiled_once_and_told_apart() {
        let cache = WarningsCache::default();
        let warn = |w: &[&str], s: &[&str]| {
            let w: Vec<String> = w.iter().map(|p| p.to_string()).collect();
            let s: Vec<String> = s.iter().map(|p| p.to_string()).collect();
            cache.get(&w, &s)
        };
        let first = warn(&["warning"], &[]).unwrap();
        assert!(first.is_warning(b"a warning"));
        // The same pattern as a suppression is another entry.
        let other = warn(&[], &["warning"]).unwrap();
        assert!(!other.is_warning(b"a warning"));
        assert_eq!(lock(&cache.compiled).len(), 2);
        warn(&["warning"], &[]).unwrap();
        assert_eq!(lock(&cache.compiled).len(), 2);
        let error = warn(&["("], &[]).unwrap_err();
        assert_eq!(
            format!("{error:#}").lines().next().unwrap(),
            "invalid warnings regex `(`: regex parse error:"
        );
    }
}
