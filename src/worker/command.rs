//! A step's command with the build's parameters put in, each quoted as one
//! shell word, so a parameter's value can never run as shell code. Apart
//! from `exec` because it is text in, text out: the runner substitutes
//! before `exec` runs anything.

use std::collections::BTreeMap;

/// Replaces `{name}` in `command` by the parameter's value, single-quoted for
/// the shell, so that a value is always one literal word: quotes, spaces,
/// `$(...)` and backquotes in it never run. A `{word}` that is not a
/// parameter stays as it is (shell brace expansion, `awk '{print}'`). The
/// scan is one pass, so a value that itself contains `{name}` is not
/// substituted again.
pub fn substitute(command: &str, parameters: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(command.len());
    let mut rest = command;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(['}', '{']) {
            Some(close) if after.as_bytes()[close] == b'}' => {
                let name = &after[..close];
                match parameters.get(name) {
                    Some(value) => out.push_str(&shell_quote(value)),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            // No closing brace before the next opening one: this brace is
            // plain text, and the next one gets its own chance.
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `value` as one single-quoted shell word.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_quotes_values_and_leaves_other_braces() {
        let parameters = BTreeMap::from([
            ("who".to_string(), "a'b".to_string()),
            ("n".to_string(), "{who}".to_string()),
        ]);
        assert_eq!(
            substitute("echo {who} {n} {other} {} {{who}", &parameters),
            r"echo 'a'\''b' '{who}' {other} {} {'a'\''b'"
        );
        assert_eq!(
            substitute("awk '{print $1}'", &parameters),
            "awk '{print $1}'"
        );
    }
}
