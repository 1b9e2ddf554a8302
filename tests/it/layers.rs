//! The layering of `src/`: imports only point down, and no two files import
//! each other, however indirectly.
//!
//! [`LAYERS`] names every top-level module of the library and the modules it
//! may use. The test reads every source file the crate declares (following
//! `mod` lines from `src/lib.rs` and `src/main.rs`), finds each path that
//! leaves the file (`use` trees, `crate::…`, `super::…`, `self::…` and child
//! modules), resolves it to the file that defines it, and fails on:
//! - a top-level module using one its row does not list (an upward import);
//! - a circle of files, inside a module or across modules;
//! - a top-level module missing from the table, or a table with a circle.
//!
//! Run it alone with `cargo test --test it layers`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and what it may use, from the bottom up. The order
/// is the reading order of ARCHITECTURE.md's code map.
const LAYERS: &[(&str, &[&str])] = &[
    // Process-wide pieces that know nothing of the domain.
    ("alloc", &[]),
    ("sync", &[]),
    ("token", &[]),
    ("model", &[]),
    ("process", &[]),
    ("humanize", &[]),
    ("git_auth", &[]),
    // The HTTP agent of workers and the command line.
    ("http_agent", &["sync"]),
    // What the megatron counts: below the core, the reporter and HTTP.
    ("metrics", &[]),
    // Scripts in, graph out: pure.
    ("config", &["alloc", "sync", "model"]),
    // Wire and disk forms.
    ("protocol", &["config", "model"]),
    ("store", &["config", "protocol", "model", "forge"]),
    // Forge wire formats: payloads, signatures.
    ("forge", &["config", "model"]),
    // The domain core: no HTTP, no triggers.
    (
        "megatron",
        &[
            "store", "config", "protocol", "model", "forge", "sync", "token", "git_auth", "metrics",
        ],
    ),
    // People, roles, tokens, sessions, forge login.
    (
        "access",
        &[
            "megatron", "store", "config", "model", "forge", "sync", "token",
        ],
    ),
    // Commit statuses out to the forges.
    (
        "reporter",
        &["megatron", "store", "config", "forge", "sync", "metrics"],
    ),
    // What starts builds besides a person.
    (
        "triggers",
        &[
            "megatron", "store", "config", "protocol", "model", "forge", "sync", "token",
        ],
    ),
    // The JSON API and the worker protocol.
    (
        "http",
        &[
            "access", "triggers", "megatron", "store", "config", "protocol", "model", "forge",
            "sync", "token", "metrics",
        ],
    ),
    // The pages people read.
    (
        "web",
        &[
            "http", "access", "megatron", "store", "config", "protocol", "model", "forge", "sync",
            "token", "humanize",
        ],
    ),
    // The composition root: state, router and loops together.
    (
        "server",
        &[
            "web", "http", "triggers", "reporter", "megatron", "store", "config", "protocol",
            "model", "sync", "process", "metrics",
        ],
    ),
    // The worker: could be its own crate.
    (
        "worker",
        &[
            "protocol",
            "model",
            "config",
            "sync",
            "git_auth",
            "http_agent",
        ],
    ),
    // The command line.
    ("client", &["protocol", "model", "http_agent"]),
    ("cli", &[]),
    (
        "commands",
        &[
            "cli", "client", "process", "server", "worker", "access", "megatron", "store",
            "config", "protocol", "model", "sync", "token", "humanize",
        ],
    ),
];

/// The crate roots: they may use anything.
const ROOTS: &[&str] = &["src/lib.rs", "src/main.rs"];

/// A source file and the module path it defines.
#[derive(Debug, Clone)]
struct SourceFile {
    path: PathBuf,
    module: Vec<String>,
}

/// Replaces comments and the insides of string and char literals with
/// spaces, keeping every offset, so paths and braces are only seen in code.
fn blank_non_code(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for b in &mut out[from..to] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    };
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
                blank(&mut out, i, end);
                i = end;
            }
            b'r' if (bytes.get(i + 1) == Some(&b'"') || bytes.get(i + 1) == Some(&b'#'))
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')) =>
            {
                let hashes = bytes[i + 1..].iter().take_while(|b| **b == b'#').count();
                if bytes.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let start = i + 2 + hashes;
                let end = text[start..]
                    .find(&close)
                    .map_or(bytes.len(), |n| start + n + close.len());
                blank(&mut out, start, end.saturating_sub(close.len()).max(start));
                i = end;
            }
            b'"' => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i + 1, j.min(bytes.len()));
                i = j + 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
                if bytes.get(i + 1) == Some(&b'\\') {
                    let end = text[i + 2..]
                        .find('\'')
                        .map_or(bytes.len(), |n| i + 2 + n + 1);
                    blank(&mut out, i + 1, end - 1);
                    i = end;
                } else if bytes.get(i + 2) == Some(&b'\'') {
                    blank(&mut out, i + 1, i + 2);
                    i += 3;
                } else if let Some(c) = text[i + 1..].chars().next() {
                    let width = c.len_utf8();
                    if !c.is_ascii() && bytes.get(i + 1 + width) == Some(&b'\'') {
                        blank(&mut out, i + 1, i + 1 + width);
                        i += 2 + width;
                    } else {
                        i += 1;
                    }
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The identifier starting at `at`, if any.
fn ident_at(code: &str, at: usize) -> Option<&str> {
    let bytes = code.as_bytes();
    if at >= bytes.len() || !(bytes[at].is_ascii_alphabetic() || bytes[at] == b'_') {
        return None;
    }
    let end = bytes[at..]
        .iter()
        .position(|b| !is_ident_byte(*b))
        .map_or(bytes.len(), |n| at + n);
    Some(&code[at..end])
}

/// Inline modules (`mod name { … }`): their name and byte range.
fn inline_modules(code: &str) -> Vec<(String, usize, usize)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut search = 0;
    while let Some(n) = code[search..].find("mod ") {
        let at = search + n;
        search = at + 4;
        if at > 0 && is_ident_byte(bytes[at - 1]) {
            continue;
        }
        let mut j = at + 4;
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        let Some(name) = ident_at(code, j) else {
            continue;
        };
        j += name.len();
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if bytes.get(j) != Some(&b'{') {
            continue;
        }
        let mut depth = 0usize;
        let mut end = bytes.len();
        for (k, b) in bytes.iter().enumerate().skip(j) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k;
                        break;
                    }
                }
                _ => {}
            }
        }
        found.push((name.to_string(), j, end));
    }
    found
}

/// File-backed child modules: `mod name;`, with an optional `#[path]`.
fn declared_children(text: &str, code: &str) -> Vec<(String, Option<String>)> {
    let mut children = Vec::new();
    let mut pending_path: Option<String> = None;
    for (raw, line) in text.lines().zip(code.lines()) {
        let trimmed = line.trim();
        if let Some(rest) = raw.trim().strip_prefix("#[path = \"") {
            pending_path = rest.split('"').next().map(str::to_string);
            continue;
        }
        let declaration = trimmed
            .strip_prefix("pub ")
            .or_else(|| trimmed.strip_prefix("pub(crate) "))
            .or_else(|| trimmed.strip_prefix("pub(super) "))
            .unwrap_or(trimmed);
        if let Some(name) = declaration
            .strip_prefix("mod ")
            .and_then(|r| r.strip_suffix(';'))
        {
            children.push((name.trim().to_string(), pending_path.take()));
        } else if !trimmed.starts_with("#[") && !trimmed.is_empty() {
            pending_path = None;
        }
    }
    children
}

/// Every file the crate declares, from its roots.
fn crate_files(root: &Path) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut todo: Vec<SourceFile> = ROOTS
        .iter()
        .map(|r| SourceFile {
            path: root.join(r),
            module: Vec::new(),
        })
        .collect();
    while let Some(file) = todo.pop() {
        let text = std::fs::read_to_string(&file.path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.path.display()));
        let code = blank_non_code(&text);
        let stem = file.path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let dir = file.path.parent().unwrap_or(root).to_path_buf();
        let children_dir = if matches!(stem, "mod" | "lib" | "main") {
            dir.clone()
        } else {
            dir.join(stem)
        };
        for (name, path) in declared_children(&text, &code) {
            let child = match path {
                Some(path) => dir.join(path),
                None if children_dir.join(format!("{name}.rs")).exists() => {
                    children_dir.join(format!("{name}.rs"))
                }
                None => children_dir.join(&name).join("mod.rs"),
            };
            let mut module = file.module.clone();
            module.push(name);
            todo.push(SourceFile {
                path: child,
                module,
            });
        }
        files.push(file);
    }
    files
}

/// Splits a `use` tree into its leaf paths.
fn use_paths(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let mut base = prefix.to_vec();
        base.extend(head);
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    use_paths(&base, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        use_paths(&base, &inner[start..], out);
        return;
    }
    let leaf = tree.split(" as ").next().unwrap_or("").trim();
    if leaf.is_empty() {
        return;
    }
    let mut path = prefix.to_vec();
    path.extend(
        leaf.split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "*")
            .map(str::to_string),
    );
    // `use a::b::{self}` names `a::b`.
    if path.last().map(String::as_str) == Some("self") {
        path.pop();
    }
    out.push(path);
}

/// The paths a file's code names, each with the inline modules it sits in.
fn named_paths(code: &str, children: &BTreeSet<String>) -> Vec<(Vec<String>, Vec<String>)> {
    let inline = inline_modules(code);
    let context = |at: usize| -> Vec<String> {
        let mut around: Vec<&(String, usize, usize)> = inline
            .iter()
            .filter(|(_, start, end)| *start < at && at < *end)
            .collect();
        around.sort_by_key(|(_, start, _)| *start);
        around
            .into_iter()
            .map(|(name, _, _)| name.clone())
            .collect()
    };
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    // `use` trees.
    let mut search = 0;
    let mut use_spans: Vec<(usize, usize)> = Vec::new();
    while let Some(n) = code[search..].find("use ") {
        let at = search + n;
        search = at + 4;
        if at > 0 && is_ident_byte(bytes[at - 1]) {
            continue;
        }
        let Some(end) = code[at..].find(';').map(|n| at + n) else {
            break;
        };
        let mut paths = Vec::new();
        use_paths(&[], &code[at + 4..end], &mut paths);
        for path in paths {
            found.push((context(at), path));
        }
        use_spans.push((at, end));
        search = end;
    }
    // Paths in expressions and types: `crate::…`, `super::…`, `self::…`,
    // and a child module's name. The `use` trees were read whole above:
    // reading `super::{a, b}` again here would stop at the brace.
    let mut i = 0;
    while i < bytes.len() {
        if let Some((_, end)) = use_spans
            .iter()
            .find(|(start, end)| *start <= i && i < *end)
        {
            i = *end;
            continue;
        }
        let preceded = i > 0 && (is_ident_byte(bytes[i - 1]) || bytes[i - 1] == b':');
        match ident_at(code, i) {
            Some(word) if !preceded => {
                let starts_path = matches!(word, "crate" | "super" | "self" | "constructicon")
                    || children.contains(word);
                if starts_path && code[i + word.len()..].starts_with("::") {
                    let mut path = vec![word.to_string()];
                    let mut j = i + word.len();
                    while code[j..].starts_with("::") {
                        match ident_at(code, j + 2) {
                            Some(next) => {
                                path.push(next.to_string());
                                j += 2 + next.len();
                            }
                            None => break,
                        }
                    }
                    found.push((context(i), path));
                    i = j;
                } else {
                    i += word.len();
                }
            }
            Some(word) => i += word.len(),
            None => i += 1,
        }
    }
    found
}

/// The file that defines what `path` names, seen from `module`.
fn resolve(
    modules: &BTreeMap<Vec<String>, usize>,
    module: &[String],
    path: &[String],
) -> Option<usize> {
    let mut at: Vec<String> = module.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") | Some("constructicon") => {
            at.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                at.pop();
                rest = &rest[1..];
            }
        }
        _ => {}
    }
    // Inline modules live in their file: walk up to the file that holds `at`.
    while !at.is_empty() && !modules.contains_key(&at) {
        at.pop();
    }
    for segment in rest {
        let mut next = at.clone();
        next.push(segment.clone());
        if modules.contains_key(&next) {
            at = next;
        } else {
            break;
        }
    }
    modules.get(&at).copied()
}

fn top(module: &[String], path: &Path) -> String {
    match module.first() {
        Some(first) => first.clone(),
        None => path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string(),
    }
}

/// Finds a circle in a graph of indices, as a list of nodes.
fn find_circle(edges: &BTreeMap<usize, BTreeSet<usize>>, nodes: usize) -> Option<Vec<usize>> {
    // 0 unvisited, 1 on the stack, 2 done.
    let mut mark = vec![0u8; nodes];
    let mut stack: Vec<usize> = Vec::new();
    fn visit(
        node: usize,
        edges: &BTreeMap<usize, BTreeSet<usize>>,
        mark: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        mark[node] = 1;
        stack.push(node);
        for &next in edges.get(&node).into_iter().flatten() {
            if mark[next] == 1 {
                let from = stack.iter().position(|n| *n == next).unwrap_or(0);
                let mut circle = stack[from..].to_vec();
                circle.push(next);
                return Some(circle);
            }
            if mark[next] == 0 {
                if let Some(circle) = visit(next, edges, mark, stack) {
                    return Some(circle);
                }
            }
        }
        stack.pop();
        mark[node] = 2;
        None
    }
    for node in 0..nodes {
        if mark[node] == 0 {
            if let Some(circle) = visit(node, edges, &mut mark, &mut stack) {
                return Some(circle);
            }
        }
    }
    None
}

/// Every problem with the layering of the crate at `root`.
fn layering_problems(root: &Path) -> Vec<String> {
    let files = crate_files(root);
    let modules: BTreeMap<Vec<String>, usize> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.module.is_empty())
        .map(|(i, f)| (f.module.clone(), i))
        .collect();
    let table: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut problems = Vec::new();
    let mut upward = BTreeSet::new();

    let mut edges: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (index, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(&file.path).unwrap_or_default();
        let code = blank_non_code(&text);
        let children: BTreeSet<String> = declared_children(&text, &code)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let from_top = top(&file.module, &file.path);
        let is_root = file.module.is_empty();
        if !is_root && !table.contains_key(from_top.as_str()) {
            problems.push(format!(
                "{}: module `{from_top}` is not in the layer table of tests/it/layers.rs: place it",
                file.path.display()
            ));
        }
        for (inline, path) in named_paths(&code, &children) {
            // In main.rs the library is `constructicon::`; elsewhere that
            // word is not a path into this crate.
            if path[0] == "constructicon" && !file.path.ends_with("main.rs") {
                continue;
            }
            let mut module = file.module.clone();
            module.extend(inline);
            let Some(target) = resolve(&modules, &module, &path) else {
                continue;
            };
            if target == index {
                continue;
            }
            let to = &files[target];
            let to_top = top(&to.module, &to.path);
            if !is_root && from_top != to_top {
                let allowed = table.get(from_top.as_str()).copied().unwrap_or(&[]);
                if !allowed.contains(&to_top.as_str()) {
                    upward.insert(format!(
                        "{}: uses `{}` from `{to_top}`, which `{from_top}` may not use (an upward import; see tests/it/layers.rs)",
                        file.path.display(),
                        path.join("::"),
                    ));
                }
            }
            // A root declares every module; its own uses are not circles.
            if !is_root {
                edges.entry(index).or_default().insert(target);
            }
        }
    }
    problems.extend(upward);
    if let Some(circle) = find_circle(&edges, files.len()) {
        let names: Vec<String> = circle
            .iter()
            .map(|i| files[*i].path.display().to_string())
            .collect();
        problems.push(format!(
            "files import each other in a circle: {}",
            names.join(" -> ")
        ));
    }

    let names: Vec<&str> = LAYERS.iter().map(|(name, _)| *name).collect();
    let mut table_edges: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (i, (name, uses)) in LAYERS.iter().enumerate() {
        for used in *uses {
            match names.iter().position(|n| n == used) {
                Some(j) => {
                    table_edges.entry(i).or_default().insert(j);
                }
                None => problems.push(format!("layer `{name}` lists unknown `{used}`")),
            }
        }
    }
    if let Some(circle) = find_circle(&table_edges, names.len()) {
        let circle: Vec<&str> = circle.iter().map(|i| names[*i]).collect();
        problems.push(format!(
            "the layer table has a circle: {}",
            circle.join(" -> ")
        ));
    }
    problems
}

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn imports_only_point_down_and_no_files_import_each_other() {
    let problems = layering_problems(&crate_root());
    assert!(
        problems.is_empty(),
        "the layering of src/ is broken:\n{}",
        problems.join("\n")
    );
}

/// The check itself: an upward import and a circle, added to a copy of a
/// small crate, are both caught.
#[test]
fn the_check_catches_an_upward_import_and_a_circle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("megatron")).expect("mkdir");
    std::fs::write(
        src.join("lib.rs"),
        "pub mod megatron;\npub mod http;\npub mod model;\n",
    )
    .expect("write");
    std::fs::write(src.join("main.rs"), "fn main() {}\n").expect("write");
    std::fs::write(src.join("model.rs"), "pub struct Name;\n").expect("write");
    std::fs::write(
        src.join("megatron/mod.rs"),
        "pub mod state;\npub mod builds;\n",
    )
    .expect("write");
    std::fs::write(
        src.join("megatron/state.rs"),
        "use crate::model::Name;\npub struct State;\n",
    )
    .expect("write");
    std::fs::write(
        src.join("megatron/builds.rs"),
        "use super::state::State;\n// crate::http is only mentioned here\nfn f() { let _ = \"crate::http::x\"; }\n",
    )
    .expect("write");
    std::fs::write(src.join("http.rs"), "use crate::megatron::state::State;\n").expect("write");
    assert_eq!(layering_problems(dir.path()), Vec::<String>::new());

    // The core reaching up into the HTTP layer.
    std::fs::write(
        src.join("megatron/builds.rs"),
        "use super::state::State;\nfn f() { crate::http::serve(); }\n",
    )
    .expect("write");
    let problems = layering_problems(dir.path());
    assert!(
        problems
            .iter()
            .any(|p| p.contains("megatron/builds.rs: uses `crate::http::serve` from `http`")),
        "{problems:?}"
    );

    // Two files of one module using each other.
    std::fs::write(
        src.join("megatron/builds.rs"),
        "use super::state::State;\npub fn go() {}\n",
    )
    .expect("write");
    std::fs::write(
        src.join("megatron/state.rs"),
        "use super::{builds::go, super::model::Name};\npub struct State;\n",
    )
    .expect("write");
    let problems = layering_problems(dir.path());
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("files import each other in a circle")
                && p.contains("state.rs")
                && p.contains("builds.rs")),
        "{problems:?}"
    );
}
