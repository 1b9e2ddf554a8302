//! Hostile scripts: each must be stopped by the sandbox with a clear, specific
//! error, exit 1 (never a crash or a signal), quickly and in bounded memory.
//!
//! The wall-time and RSS figures are assertions of a safety bound (the
//! sandbox's 500 ms deadline and 128 MiB budget, plus process start and
//! teardown), not benchmarks: a script that gets past them is a hole.

use crate::common::Repo;
use std::time::Duration;

/// A hostile script is stopped by the sandbox's limits within this long (its figures
/// are well under a second on an idle machine; the bound leaves room for a busy one).
const MAX_WALL: Duration = Duration::from_secs(5);
const MAX_RSS_KB: u64 = 512 * 1024;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const CYBERTRON: &str = r#"cybertron = #{ workers: #{ local: #{ platform: "linux" } } };"#;

/// Runs `eval --json` on the script and checks the safety bounds and that
/// exactly one error is reported whose message contains `expected`.
#[track_caller]
fn check_hostile(name: &str, script: impl AsRef<[u8]>, expected: &str) {
    // One at a time: the bounds are about one evaluation, not about how many
    // the test harness runs at once on two cores.
    let _one_at_a_time = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let repo = Repo::with_config(script);
    repo.outside("cybertron.rhai", CYBERTRON);
    let out = repo.eval(&["--json", "--cybertron", "cybertron.rhai"]);
    assert_eq!(
        out.signal, None,
        "{name}: killed by a signal; stderr:\n{}",
        out.stderr
    );
    assert_eq!(
        out.code,
        Some(1),
        "{name}: exit code; stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{name}: stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        )
    });
    let messages: Vec<&str> = json["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["message"].as_str().expect("message"))
        .collect();
    assert!(
        messages.len() == 1 && messages[0].contains(expected),
        "{name}: expected one error containing {expected:?}, got {messages:?}"
    );
    report_cost(name, &out);
}

/// Asserts the safety bounds, after printing the figures (shown with
/// `--nocapture`, or when the test fails).
#[track_caller]
fn report_cost(name: &str, out: &crate::common::Output) {
    eprintln!(
        "{name}: {:?} wall, {} KiB peak RSS",
        out.wall, out.peak_rss_kb
    );
    assert!(out.wall < MAX_WALL, "{name}: took {:?}", out.wall);
    assert!(
        out.peak_rss_kb < MAX_RSS_KB,
        "{name}: peak RSS {} KiB",
        out.peak_rss_kb
    );
}

/// A string of 2^20 bytes, built in 20 doublings.
const MIB: &str = r#"let s = "x"; for i in 0..20 { s += s; }"#;

#[test]
fn endless_loop() {
    check_hostile("endless loop", "loop {}", "operations (an endless loop?)");
}

#[test]
fn string_bomb() {
    check_hostile(
        "string bomb",
        r#"let s = "aaaaaaaa"; loop { s += s; }"#,
        "beyond the sandbox's limit on strings",
    );
}

#[test]
fn array_bomb() {
    check_hostile(
        "array bomb",
        "let a = [1]; loop { a += a; }",
        "beyond the sandbox's limit on arrays",
    );
}

#[test]
fn map_bomb() {
    check_hostile(
        "map bomb",
        "let m = #{ a: 1 }; loop { m = #{ a: m, b: m }; }",
        // The memory budget trips first on an idle machine, the deadline may on
        // a loaded one: either stops it.
        "than the sandbox allows",
    );
}

#[test]
fn deep_recursion() {
    check_hostile(
        "deep recursion",
        "fn f(x) { f(x + 1) } f(0);",
        "nested deeper than the sandbox's 32 levels",
    );
}

#[test]
fn deeply_nested_expression() {
    let script = format!("let x = {}1{};", "(".repeat(2000), ")".repeat(2000));
    check_hostile(
        "nested expression",
        script,
        "expressions are nested too deeply for the sandbox",
    );
}

#[test]
fn import_of_a_parent_folder() {
    check_hostile(
        "import ../",
        "import \"../secret\" as s;\nconstructicon = #{};",
        r#"cannot import "../secret": the path must not contain "..""#,
    );
}

#[test]
fn import_of_an_absolute_path() {
    check_hostile(
        "import /",
        "import \"/etc/passwd\" as s;\nconstructicon = #{};",
        r#"cannot import "/etc/passwd": the path must be a relative path"#,
    );
}

#[test]
fn huge_number_of_builders() {
    // Either the deadline stops the loop or the builder limit refuses the map;
    // both say what went wrong.
    let repo_script = r#"let b = #{};
for i in 0..200000 { b["b" + i] = #{ commands: ["x"] }; }
constructicon = #{ builders: b };"#;
    let _one_at_a_time = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let repo = Repo::with_config(repo_script);
    repo.outside("cybertron.rhai", CYBERTRON);
    let out = repo.eval(&["--json", "--cybertron", "cybertron.rhai"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let message = out.json()["errors"][0]["message"]
        .as_str()
        .expect("message")
        .to_string();
    assert!(
        message.contains("ran longer than the sandbox allows")
            || message.contains("builders is more than the 10000 a repo may define")
            || message.contains("used more memory than the sandbox allows"),
        "{message}"
    );
    report_cost("200000 builders", &out);
}

#[test]
fn more_builders_than_allowed() {
    check_hostile(
        "20000 builders",
        r#"let b = #{}; for i in 0..20000 { b["b" + i] = #{ commands: ["x"] }; } constructicon = #{ builders: b };"#,
        "20000 builders is more than the 10000 a repo may define",
    );
}

#[test]
fn map_filled_by_key_with_big_strings() {
    check_hostile(
        "map of 1 MiB strings",
        format!(r#"{MIB} let m = #{{}}; let i = 0; loop {{ m["k" + i] = s + i; i += 1; }}"#),
        "used more memory than the sandbox allows (128 MiB)",
    );
}

#[test]
fn padded_array_filled_with_big_strings() {
    check_hostile(
        "array of 1 MiB strings",
        format!(
            r#"{MIB} let n = 100000; let a = []; a.pad(n, 0); for i in 0..n {{ a[i] = s + i; }}"#
        ),
        "used more memory than the sandbox allows (128 MiB)",
    );
}

#[test]
fn slow_string_operations() {
    check_hostile(
        "slow string loop",
        format!(r#"{MIB} let t = 0; loop {{ t += s.index_of("y"); }}"#),
        "ran longer than the sandbox allows (500 ms)",
    );
}

#[test]
fn invalid_utf8() {
    check_hostile(
        "invalid UTF-8",
        b"constructicon = #{ builders: #{ b: #{ commands: [\"\xc3\x28\"] } } };".as_slice(),
        "the script is not valid UTF-8",
    );
}

#[test]
fn closure_as_a_command() {
    check_hostile(
        "closure",
        "constructicon = #{ builders: #{ b: #{ commands: [|x| x + 1] } } };",
        "a config holds strings, numbers, bools, arrays and maps, not a function pointer",
    );
}
