//! What a step's output is looked at for: its lines, split from a byte
//! stream that need not be UTF-8, and the warning patterns they are matched
//! against. Apart from `exec`, which runs the process, since none of it
//! needs a process to be tested or read.

use anyhow::Context;
use regex::bytes::Regex;

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
