//! `constructicon eval --json`: the report, written to stdout as it is
//! serialised, in the bytes `serde_json`'s pretty printer would write.

use crate::config::spec::Features;
use crate::config::{Builder, Cybertron, Diagnostic, Graph, Scheduler};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write as _;

/// Writes the report to stdout as it is serialised, without building it as
/// a JSON value or a string first.
pub(super) fn print_json(report: &Report<'_>) {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, Indented::default());
    let written = report
        .serialize(&mut serializer)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        // As `println!` would.
        panic!("failed printing to stdout: {e}");
    }
}

/// A line break and up to 64 levels of two-space indentation.
const LINE: [u8; 129] = {
    let mut line = [b' '; 129];
    line[0] = b'\n';
    line
};

/// The bytes `serde_json::to_writer_pretty` writes, with each line break and
/// its indentation written in one piece: its formatter writes the indent one
/// level at a time, which was most of the time `--json` spent writing.
#[derive(Default)]
struct Indented {
    level: usize,
    has_value: bool,
}

impl Indented {
    fn new_line<W: ?Sized + std::io::Write>(
        &self,
        out: &mut W,
        comma: bool,
    ) -> std::io::Result<()> {
        if comma {
            out.write_all(b",")?;
        }
        match LINE.get(..1 + 2 * self.level) {
            Some(line) => out.write_all(line),
            None => {
                out.write_all(b"\n")?;
                (0..self.level).try_for_each(|_| out.write_all(b"  "))
            }
        }
    }
}

impl serde_json::ser::Formatter for Indented {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.level += 1;
        self.has_value = false;
        out.write_all(b"[")
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.new_line(out, false)?;
        }
        out.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.new_line(out, !first)
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.level += 1;
        self.has_value = false;
        out.write_all(b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.new_line(out, false)?;
        }
        out.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.new_line(out, !first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
    ) -> std::io::Result<()> {
        out.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// The `--json` report: its keys in this order.
#[derive(Serialize)]
pub(super) struct Report<'a> {
    pub(super) repo: Option<&'a str>,
    pub(super) builders: &'a BTreeMap<String, Builder>,
    pub(super) schedulers: &'a BTreeMap<String, Scheduler>,
    pub(super) workers: &'a BTreeMap<String, Features>,
    pub(super) config_hash: Option<&'a str>,
    pub(super) cybertron: CybertronReport<'a>,
    pub(super) output: &'a [String],
    pub(super) errors: &'a [Diagnostic],
    pub(super) warnings: &'a [Diagnostic],
}

/// The cybertron the graph was merged with, or only the file named when it
/// could not be read.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum CybertronReport<'a> {
    Read {
        file: &'a str,
        builtin: bool,
        hash: &'a str,
        workers: &'a BTreeMap<String, Features>,
    },
    Unread {
        file: Option<String>,
    },
}

pub(super) fn json_report<'a>(
    graph: Option<&'a Graph>,
    errors: &'a [Diagnostic],
    output: &'a [String],
    cybertron: &'a Cybertron,
) -> Report<'a> {
    const NO_BUILDERS: &BTreeMap<String, Builder> = &BTreeMap::new();
    const NO_SCHEDULERS: &BTreeMap<String, Scheduler> = &BTreeMap::new();
    const NO_WORKERS: &BTreeMap<String, Features> = &BTreeMap::new();
    Report {
        repo: graph.map(|g| g.repo.as_str()),
        builders: graph.map_or(NO_BUILDERS, |g| &g.builders),
        schedulers: graph.map_or(NO_SCHEDULERS, |g| &g.schedulers),
        workers: graph.map_or(NO_WORKERS, |g| &g.workers),
        config_hash: graph.map(|g| g.config_hash.as_str()),
        cybertron: CybertronReport::Read {
            file: &cybertron.file,
            builtin: cybertron.builtin,
            hash: &cybertron.hash,
            workers: &cybertron.spec.workers,
        },
        output,
        errors,
        warnings: &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indented_json_is_serde_jsons_pretty_json() {
        let mut deep = serde_json::json!([1, {}]);
        for _ in 0..70 {
            deep = serde_json::json!({ "d": deep, "e": [] });
        }
        let value = serde_json::json!({
            "a": [], "b": {}, "c": [1, "two", null, {"x": [[]], "y": {"z": true}}],
            "s": "quote \" and \n", "deep": deep,
        });
        let mut out = Vec::new();
        value
            .serialize(&mut serde_json::Serializer::with_formatter(
                &mut out,
                Indented::default(),
            ))
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string_pretty(&value).unwrap()
        );
    }
}
