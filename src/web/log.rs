//! A step's log as pages show it: lines numbered, ANSI colours turned into
//! HTML on the server (escaped first), a large log from its tail, a window
//! anywhere in it, and a search that runs on the server over the whole log.

use crate::megatron::state::State;
use crate::store;

/// One rendered line: its number (from 1) and its HTML.
#[derive(Debug, Clone)]
pub struct Line {
    pub number: u64,
    pub html: String,
}

/// Lines of one part of a log.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    pub lines: Vec<Line>,
    /// Bytes of the log before the first line shown.
    pub skipped_bytes: u64,
    /// Where the shown part ends (a line's end, or the log's end).
    pub end_offset: u64,
    /// Newlines before `end_offset`.
    pub end_line: u64,
}

/// The text of a line as HTML: escaped, with its colours.
pub fn line_html(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end_matches('\r');
    ansi_to_html::convert(text).unwrap_or_else(|_| escape(text))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Splits `bytes` (which start at line `first_number`) into rendered lines.
/// A last line without its newline is shown only when `complete` says the
/// log will not grow; otherwise it waits for the rest of it.
pub fn render(bytes: &[u8], first_number: u64, offset: u64, complete: bool) -> Lines {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut number = first_number;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            lines.push(Line {
                number,
                html: line_html(&bytes[start..i]),
            });
            number += 1;
            start = i + 1;
        }
    }
    let mut end = start;
    if complete && start < bytes.len() {
        lines.push(Line {
            number,
            html: line_html(&bytes[start..]),
        });
        end = bytes.len();
    }
    Lines {
        lines,
        skipped_bytes: offset,
        end_offset: offset + end as u64,
        end_line: first_number - 1 + (number - first_number),
    }
}

/// The last `budget` bytes of a step's log (cut at a line start), numbered.
pub fn tail(
    state: &State,
    build: u64,
    step: u32,
    log_bytes: u64,
    log_lines: u64,
    budget: u64,
    complete: bool,
) -> Result<Lines, store::Error> {
    let from = log_bytes.saturating_sub(budget);
    let mut bytes = state
        .store
        .read_log(build, step, from, log_bytes, usize::MAX)?;
    // Start at a line's beginning: drop the partial line before the first
    // newline, unless the whole log is shown.
    let mut offset = from;
    if from > 0 {
        if let Some(cut) = bytes.iter().position(|b| *b == b'\n') {
            bytes.drain(..=cut);
            offset += cut as u64 + 1;
        }
    }
    let newlines_shown = bytes.iter().filter(|b| **b == b'\n').count() as u64;
    let first_number = log_lines.saturating_sub(newlines_shown) + 1;
    Ok(render(&bytes, first_number, offset, complete))
}

/// Reads a log in pieces, handing each line (without its newline) and its
/// number to `visit`, which says whether to go on.
pub fn each_line(
    state: &State,
    build: u64,
    step: u32,
    mut visit: impl FnMut(u64, u64, &[u8]) -> bool,
) -> Result<(), store::Error> {
    const PIECE: usize = 1 << 20;
    let end = state
        .store
        .build(build)?
        .steps
        .get(step as usize)
        .map_or(0, |s| s.log_bytes);
    let mut offset = 0u64;
    let mut number = 1u64;
    let mut carry: Vec<u8> = Vec::new();
    let mut line_start = 0u64;
    loop {
        let piece = state.store.read_log(build, step, offset, end, PIECE)?;
        if piece.is_empty() {
            break;
        }
        offset += piece.len() as u64;
        let mut start = 0;
        for (i, b) in piece.iter().enumerate() {
            if *b == b'\n' {
                carry.extend_from_slice(&piece[start..i]);
                if !visit(number, line_start, &carry) {
                    return Ok(());
                }
                line_start += carry.len() as u64 + 1;
                carry.clear();
                number += 1;
                start = i + 1;
            }
        }
        carry.extend_from_slice(&piece[start..]);
    }
    if !carry.is_empty() {
        visit(number, line_start, &carry);
    }
    Ok(())
}

/// Lines `from..from + count` of a log, for the windowed view.
pub fn window(
    state: &State,
    build: u64,
    step: u32,
    from: u64,
    count: u64,
) -> Result<Lines, store::Error> {
    let mut lines = Vec::new();
    let mut end_offset = 0;
    let mut first_offset = None;
    each_line(state, build, step, |number, offset, bytes| {
        if number >= from {
            first_offset.get_or_insert(offset);
            lines.push(Line {
                number,
                html: line_html(bytes),
            });
            end_offset = offset + bytes.len() as u64;
        }
        number < from + count - 1
    })?;
    let end_line = lines.last().map_or(0, |l| l.number);
    Ok(Lines {
        lines,
        skipped_bytes: first_offset.unwrap_or(0),
        end_offset,
        end_line,
    })
}

/// Lines holding `needle` (case-insensitive), at most `limit`; and whether
/// there were more.
pub fn search(
    state: &State,
    build: u64,
    step: u32,
    needle: &str,
    limit: usize,
) -> Result<(Vec<Line>, bool), store::Error> {
    let needle = needle.to_lowercase();
    let mut found = Vec::new();
    let mut more = false;
    each_line(state, build, step, |number, _, bytes| {
        let text = String::from_utf8_lossy(bytes);
        if text.to_lowercase().contains(&needle) {
            if found.len() == limit {
                more = true;
                return false;
            }
            found.push(Line {
                number,
                html: line_html(bytes),
            });
        }
        true
    })?;
    Ok((found, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_escaped_and_coloured() {
        let lines = render(b"plain\n\x1b[31mred <b>\x1b[0m\npartial", 7, 100, false);
        assert_eq!(lines.lines.len(), 2);
        assert_eq!(lines.lines[0].number, 7);
        assert_eq!(lines.lines[0].html, "plain");
        assert_eq!(
            lines.lines[1].html,
            "<span style='color:var(--red,#a00)'>red &lt;b&gt;</span>"
        );
        // The partial line waits for its end.
        assert_eq!(lines.end_offset, 100 + 6 + 17);
        assert_eq!(lines.end_line, 8);
        let done = render(b"last", 1, 0, true);
        assert_eq!(done.lines[0].html, "last");
        assert_eq!(done.end_offset, 4);
    }
}
