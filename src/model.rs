//! Shared vocabulary: how names are derived and which names are safe.
//!
//! Builder, scheduler, worker, resource and repo names end up as folder names
//! on workers and as URL segments in the API, so every name a config declares
//! passes [`check_name`] before anything else sees it.

/// Why a name cannot be used as a folder name or URL segment, or `None` when
/// it can.
pub fn check_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name == "." || name == ".." {
        return Some("it is a relative folder reference");
    }
    if name.contains('/') {
        return Some("it contains \"/\"");
    }
    if name.contains('\\') {
        return Some("it contains \"\\\"");
    }
    if name.chars().any(char::is_control) {
        return Some("it contains a control character");
    }
    if name.len() > 200 {
        return Some("it is longer than 200 bytes");
    }
    None
}

/// The repo name of a repository URL or path: its last path segment without
/// `.git`, as the original did (`https://host/org/hello.git` gives `hello`).
pub fn repo_name_from_url(url: &str) -> Option<String> {
    let trimmed = url.trim().trim_end_matches(['/', '\\']);
    let last = trimmed.rsplit(['/', '\\', ':']).next()?;
    let name = last.strip_suffix(".git").unwrap_or(last);
    (check_name(name).is_none()).then(|| name.to_string())
}

/// A repo URL as it is keyed: trimmed, without a trailing `/` or `.git`,
/// which people write either way.
pub fn url_key(url: &str) -> &str {
    let url = url.trim().trim_end_matches('/');
    url.strip_suffix(".git").unwrap_or(url)
}

/// Whether two URLs name the same repo, give or take a trailing `/` or `.git`.
pub fn same_repo_url(a: &str, b: &str) -> bool {
    url_key(a) == url_key(b)
}

/// A builder's or scheduler's full name: `<repo>-<name>`.
pub fn full_name(repo: &str, name: &str) -> String {
    format!("{repo}-{name}")
}

/// Percent-encodes what may not stand in a URL path segment as it is.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_come_from_the_last_segment() {
        assert_eq!(
            repo_name_from_url("https://example.com/org/hello.git").as_deref(),
            Some("hello")
        );
        assert_eq!(
            repo_name_from_url("file:///tmp/x/hello/").as_deref(),
            Some("hello")
        );
        assert_eq!(
            repo_name_from_url("git@example.com:org/dep-lib.git").as_deref(),
            Some("dep-lib")
        );
        assert_eq!(
            repo_name_from_url("git@example.com:solo.git").as_deref(),
            Some("solo")
        );
        assert_eq!(repo_name_from_url("/srv/repos/a"), Some("a".to_string()));
        assert_eq!(repo_name_from_url("https://example.com/.."), None);
        assert_eq!(repo_name_from_url(""), None);
    }

    #[test]
    fn unsafe_names_are_refused() {
        for (name, why) in [
            ("", "it is empty"),
            ("..", "it is a relative folder reference"),
            ("a/b", "it contains \"/\""),
            ("a\\b", "it contains \"\\\""),
            ("a\nb", "it contains a control character"),
        ] {
            assert_eq!(check_name(name), Some(why), "{name:?}");
        }
        assert_eq!(check_name("cpap machine"), None);
        assert_eq!(check_name("linux-x86_64"), None);
    }
}
