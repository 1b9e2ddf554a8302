//! Secrets out of step logs: every occurrence of a secret's value in a
//! step's output is replaced before the output leaves the worker (so before
//! the megatron stores it, and before the spool writes it), in the forms a
//! step is likely to print it: the value, each line of a multiline value,
//! and its base64 (standard and URL-safe, with and without padding).
//!
//! Output arrives in chunks that may cut a value in two, so the masker keeps
//! back the last `longest - 1` bytes of what it was given until more comes
//! or the step ends: a value split across two chunks is still seen whole.

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;

/// What a masked value is replaced with.
pub const MASK: &[u8] = b"********";

/// Forms shorter than this are not looked for: they would mask ordinary
/// text (a short line of a multiline value, say).
const MIN_FORM: usize = 6;

/// Replaces secrets' values in a stream of output.
pub struct Masker {
    finder: Option<AhoCorasick>,
    /// The longest form looked for, in bytes.
    longest: usize,
    /// Output given but not yet let out: it may be the start of a value.
    held: Vec<u8>,
}

/// The forms of a value looked for in logs.
pub fn forms(value: &str) -> Vec<Vec<u8>> {
    let mut forms: Vec<Vec<u8>> = Vec::new();
    let mut add = |form: &[u8]| {
        if form.len() >= MIN_FORM && !forms.iter().any(|f| f == form) {
            forms.push(form.to_vec());
        }
    };
    add(value.as_bytes());
    add(value.trim().as_bytes());
    for line in value.lines() {
        add(line.as_bytes());
        add(line.trim().as_bytes());
    }
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    for engine in engines {
        add(engine.encode(value).as_bytes());
        // `echo "$SECRET" | base64` encodes the newline too.
        add(engine.encode(format!("{value}\n")).as_bytes());
    }
    forms
}

impl Masker {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Masker {
        let patterns: Vec<Vec<u8>> = values.into_iter().flat_map(forms).collect();
        let longest = patterns.iter().map(Vec::len).max().unwrap_or(0);
        let finder = if patterns.is_empty() {
            None
        } else {
            // Leftmost-longest: a value wins over one of its own lines.
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .ok()
        };
        Masker {
            finder,
            longest,
            held: Vec::new(),
        }
    }

    /// Takes a chunk of output; returns what may be sent now, masked.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let Some(finder) = &self.finder else {
            return bytes.to_vec();
        };
        self.held.extend_from_slice(bytes);
        // A form starting before `keep_from` ends inside what is held, so
        // it is found now; one starting later may still be growing.
        let keep_from = self.held.len().saturating_sub(self.longest - 1);
        let (out, rest) = mask(finder, &self.held, keep_from);
        self.held.drain(..rest);
        out
    }

    /// The step ended: everything held, masked.
    pub fn finish(&mut self) -> Vec<u8> {
        let Some(finder) = &self.finder else {
            return std::mem::take(&mut self.held);
        };
        let (out, _) = mask(finder, &self.held, self.held.len());
        self.held.clear();
        out
    }
}

/// Masks `text` up to `until` (a match starting before it is masked whole,
/// even past it); returns the output and how many bytes of `text` it covers.
fn mask(finder: &AhoCorasick, text: &[u8], until: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(until);
    let mut at = 0;
    for found in finder.find_iter(text) {
        if found.start() >= until {
            break;
        }
        out.extend_from_slice(&text[at..found.start()]);
        out.extend_from_slice(MASK);
        at = found.end();
    }
    if at < until {
        out.extend_from_slice(&text[at..until]);
        at = until;
    }
    (out, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text` in chunks of every size and checks each gives `expect`.
    #[track_caller]
    fn check(values: &[&str], text: &str, expect: &str) {
        for size in 1..=text.len().max(1) {
            let mut masker = Masker::new(values.iter().copied());
            let mut out = Vec::new();
            for chunk in text.as_bytes().chunks(size) {
                out.extend(masker.push(chunk));
            }
            out.extend(masker.finish());
            assert_eq!(String::from_utf8_lossy(&out), expect, "chunks of {size}");
        }
    }

    #[test]
    fn plain_values_are_masked_however_the_output_is_cut() {
        check(
            &["s3cr3t-value"],
            "token=s3cr3t-value; again s3cr3t-values\n",
            "token=********; again ********s\n",
        );
    }

    #[test]
    fn each_line_of_a_multiline_value() {
        let key = "-----BEGIN KEY-----\nMIIEabcdefgh\nqrstuvwxyz12\n-----END KEY-----";
        check(&[key], &format!("{key}\n"), "********\n");
        check(&[key], "line: qrstuvwxyz12 ok\n", "line: ******** ok\n");
    }

    #[test]
    fn base64_forms() {
        let value = "hunter2-longer?>";
        let standard = base64::engine::general_purpose::STANDARD.encode(value);
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value);
        let piped = base64::engine::general_purpose::STANDARD.encode(format!("{value}\n"));
        assert_ne!(standard, url_safe);
        check(
            &[value],
            &format!("a {standard} b {url_safe} c {piped}\n"),
            "a ******** b ******** c ********\n",
        );
    }

    #[test]
    fn no_secrets_pass_everything_through() {
        let mut masker = Masker::new([]);
        assert_eq!(masker.push(b"abc"), b"abc");
        assert_eq!(masker.finish(), b"");
    }
}
