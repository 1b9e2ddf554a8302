//! The stdlib modules (`stdlib/*.rhai`), through the library: each case is a
//! small repo script evaluated against the built-in cybertron, and the values
//! the functions return are read back from the builder graph (commands,
//! timeouts, pass-through keys) or from what the script printed.

use constructicon::config::{
    default_cybertron, evaluate_repo, Evaluation, Graph, Limits, RepoInput,
};
use std::sync::Arc;

/// What every script starts with: all four modules, and `show`, which prints
/// a combination as `[key=value,...]` (keys in sorted order, as Rhai's maps
/// keep them).
const PRELUDE: &str = r#"
import "matrix" as matrix;
import "cargo" as cargo;
import "make" as make;
import "python" as python;

fn show(combo) {
    let parts = [];
    for key in combo.keys() {
        parts.push(`${key}=${combo[key]}`);
    }
    "[" + parts.reduce(|acc, p| if acc == () { p } else { acc + "," + p }) + "]"
}
"#;

/// A builder that is valid on the built-in cybertron, for scripts that only
/// print.
const TRIVIAL: &str = r#"constructicon = #{ builders: #{ x: #{ commands: ["true"] } } };"#;

/// The one helper: evaluates the prelude followed by `body` as repo `t`.
fn eval(body: &str) -> Evaluation<Graph> {
    let script = format!("{PRELUDE}\n{body}\n");
    evaluate_repo(
        RepoInput {
            name: "t".into(),
            file: "constructicon.rhai".into(),
            bytes: script.into_bytes(),
            loader: None,
        },
        Arc::new(default_cybertron()),
        &Limits::default(),
    )
}

/// Evaluates `body`, which must succeed, and returns its graph and output.
fn eval_ok(body: &str) -> (Graph, Vec<String>) {
    let evaluation = eval(body);
    assert!(
        evaluation.errors.is_empty(),
        "script:\n{body}\nunexpected errors: {:#?}",
        evaluation.errors
    );
    let graph = evaluation
        .value
        .expect("no graph although there were no errors");
    (graph, evaluation.output)
}

/// The commands of builder `t-x` as `command` or `command @timeout` when the
/// timeout is not the default.
fn commands_of_x(graph: &Graph) -> Vec<String> {
    let builder = graph.builders.get("t-x").expect("builder t-x");
    builder
        .steps
        .iter()
        .map(|s| {
            if s.timeout == 300 {
                s.command.clone()
            } else {
                format!("{} @{}", s.command, s.timeout)
            }
        })
        .collect()
}

/// Cases whose result is what the script prints, one line per `print`.
#[test]
fn matrix_functions_return_the_expected_values() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "product: first axis slowest, values in the order given",
            r#"for c in matrix::product(#{ os: ["linux", "macos"], rust: ["stable", "beta"] }) { print(show(c)); }"#,
            &[
                "[os=linux,rust=stable]",
                "[os=linux,rust=beta]",
                "[os=macos,rust=stable]",
                "[os=macos,rust=beta]",
            ],
        ),
        (
            "product: axes in sorted key order, whatever the order written",
            r#"for c in matrix::product(#{ z: [2, 1], a: ["y", "x"] }) { print(show(c)); }"#,
            &["[a=y,z=2]", "[a=y,z=1]", "[a=x,z=2]", "[a=x,z=1]"],
        ),
        (
            "product: three axes",
            r#"let p = matrix::product(#{ a: [1, 2], b: [3], c: [4, 5] });
               print(p.len()); print(show(p[0])); print(show(p[3]));"#,
            &["4", "[a=1,b=3,c=4]", "[a=2,b=3,c=5]"],
        ),
        (
            "product: no axes gives one empty combination",
            r#"let p = matrix::product(#{}); print(p.len()); print(type_of(p[0])); print(p[0].len());"#,
            &["1", "map", "0"],
        ),
        (
            "product: an axis without values gives no combinations",
            r#"print(matrix::product(#{ os: ["linux", "macos"], rust: [] }).len());"#,
            &["0"],
        ),
        (
            "product: values of any type",
            r#"for c in matrix::product(#{ n: [1, true, "s"] }) { print(show(c)); }"#,
            &["[n=1]", "[n=true]", "[n=s]"],
        ),
        (
            "product_excluding: one full exclude",
            r#"for c in matrix::product_excluding(
                   #{ os: ["linux", "windows"], rust: ["stable", "nightly"] },
                   [#{ os: "windows", rust: "nightly" }]) { print(show(c)); }"#,
            &[
                "[os=linux,rust=stable]",
                "[os=linux,rust=nightly]",
                "[os=windows,rust=stable]",
            ],
        ),
        (
            "product_excluding: a partial exclude drops every match",
            r#"for c in matrix::product_excluding(
                   #{ os: ["linux", "windows"], rust: ["stable", "nightly"] },
                   [#{ os: "windows" }]) { print(show(c)); }"#,
            &["[os=linux,rust=stable]", "[os=linux,rust=nightly]"],
        ),
        (
            "product_excluding: several excludes",
            r#"for c in matrix::product_excluding(
                   #{ os: ["linux", "macos", "windows"], rust: ["stable", "nightly"] },
                   [#{ os: "windows", rust: "nightly" }, #{ os: "macos", rust: "stable" }, #{ rust: "beta" }])
               { print(show(c)); }"#,
            &[
                "[os=linux,rust=stable]",
                "[os=linux,rust=nightly]",
                "[os=macos,rust=nightly]",
                "[os=windows,rust=stable]",
            ],
        ),
        (
            "product_excluding: no excludes keeps everything",
            r#"print(matrix::product_excluding(#{ a: [1, 2], b: [3, 4] }, []).len());"#,
            &["4"],
        ),
        (
            "product_excluding: an empty exclude excludes everything",
            r#"print(matrix::product_excluding(#{ a: [1, 2], b: [3, 4] }, [#{}]).len());"#,
            &["0"],
        ),
        (
            "product_excluding: an exclude naming another axis excludes nothing",
            r#"print(matrix::product_excluding(#{ a: [1, 2] }, [#{ b: 1 }]).len());"#,
            &["2"],
        ),
        (
            "product_excluding: values compare by type",
            r#"print(matrix::product_excluding(#{ a: [1, 2] }, [#{ a: "1" }]).len());
               print(matrix::product_excluding(#{ a: [1, 2] }, [#{ a: 1 }]).len());"#,
            &["2", "1"],
        ),
        (
            "name: values in sorted key order, joined with -",
            r#"print(matrix::name(#{ toolchain: "stable", platform: "linux" }));
               print(matrix::name(#{ os: "linux", jobs: 4 }));
               print(matrix::name(#{ only: "one" }));
               print(matrix::name(#{}) == "");"#,
            &["linux-stable", "4-linux", "one", "true"],
        ),
        (
            "name of every product combination",
            r#"for c in matrix::product(#{ b: ["x", "y"], a: [1] }) { print(matrix::name(c)); }"#,
            &["1-x", "1-y"],
        ),
    ];
    for (what, body, expected) in cases {
        let (_, output) = eval_ok(&format!("{body}\n{TRIVIAL}"));
        assert_eq!(&output, expected, "{what}");
    }
}

/// Cases whose result is the commands of the builder `x` the function made,
/// as `command` or `command @timeout`.
#[test]
fn builders_make_the_expected_commands() {
    let cases: &[(&str, &str, &[&str])] = &[
        // cargo
        (
            "cargo default",
            "cargo::builder_default()",
            &["cargo build --locked", "cargo test"],
        ),
        (
            "cargo empty opts",
            "cargo::builder(#{})",
            &["cargo build --locked", "cargo test"],
        ),
        (
            "cargo toolchain and release",
            r#"cargo::builder(#{ toolchain: "beta", release: true })"#,
            &[
                "cargo +beta build --locked --release",
                "cargo +beta test --release",
            ],
        ),
        (
            "cargo release false",
            r#"cargo::builder(#{ release: false })"#,
            &["cargo build --locked", "cargo test"],
        ),
        (
            "cargo unlocked, clippy, fmt, features",
            r#"cargo::builder(#{ locked: false, clippy: true, fmt: true, features: "serde,cli" })"#,
            &[
                "cargo build --features serde,cli",
                "cargo test --features serde,cli",
                "cargo clippy --features serde,cli -- -D warnings",
                "cargo fmt --check",
            ],
        ),
        (
            "cargo locked true, clippy and fmt false",
            r#"cargo::builder(#{ locked: true, clippy: false, fmt: false })"#,
            &["cargo build --locked", "cargo test"],
        ),
        (
            "cargo toolchain reaches every command",
            r#"cargo::builder(#{ toolchain: "nightly", clippy: true, fmt: true, features: "a", release: true })"#,
            &[
                "cargo +nightly build --locked --features a --release",
                "cargo +nightly test --features a --release",
                "cargo +nightly clippy --features a -- -D warnings",
                "cargo +nightly fmt --check",
            ],
        ),
        (
            "cargo timeout makes every generated command a map; extra commands unchanged",
            r#"cargo::builder(#{ timeout: 60, clippy: true, commands: ["cargo doc", #{ command: "cargo bench", timeout: 7 }] })"#,
            &[
                "cargo build --locked @60",
                "cargo test @60",
                "cargo clippy -- -D warnings @60",
                "cargo doc",
                "cargo bench @7",
            ],
        ),
        (
            "cargo features as an array of strings, joined with a comma",
            r#"cargo::builder(#{ features: ["serde", "cli"], clippy: true })"#,
            &[
                "cargo build --locked --features serde,cli",
                "cargo test --features serde,cli",
                "cargo clippy --features serde,cli -- -D warnings",
            ],
        ),
        (
            "cargo features as an array of one string",
            r#"cargo::builder(#{ features: ["serde"] })"#,
            &[
                "cargo build --locked --features serde",
                "cargo test --features serde",
            ],
        ),
        (
            "cargo empty features string adds nothing",
            r#"cargo::builder(#{ features: "" })"#,
            &["cargo build --locked", "cargo test"],
        ),
        (
            "cargo empty features array adds nothing",
            r#"cargo::builder(#{ features: [] })"#,
            &["cargo build --locked", "cargo test"],
        ),
        (
            "cargo options set to () count as absent",
            r#"cargo::builder(#{ toolchain: (), features: (), release: (), locked: (), clippy: (), fmt: (), timeout: (), commands: () })"#,
            &["cargo build --locked", "cargo test"],
        ),
        (
            "cargo options passed through from a wrapper's opts",
            r#"{
                   let opts = #{ toolchain: "beta" };
                   cargo::builder(#{ toolchain: opts.toolchain, release: opts.release, features: opts.features })
               }"#,
            &["cargo +beta build --locked", "cargo +beta test"],
        ),
        (
            "cargo empty commands array adds nothing",
            r#"cargo::builder(#{ commands: [] })"#,
            &["cargo build --locked", "cargo test"],
        ),
        // make
        (
            "make default",
            "make::builder_default()",
            &["make", "make check"],
        ),
        (
            "make jobs, target, test_target",
            r#"make::builder(#{ jobs: 8, target: "all", test_target: "test" })"#,
            &["make -j 8 all", "make test"],
        ),
        (
            "make jobs only",
            "make::builder(#{ jobs: 2 })",
            &["make -j 2", "make check"],
        ),
        (
            "make target only",
            r#"make::builder(#{ target: "world" })"#,
            &["make world", "make check"],
        ),
        (
            "make empty test_target skips the check",
            r#"make::builder(#{ test_target: "" })"#,
            &["make"],
        ),
        (
            "make timeout and extra commands",
            r#"make::builder(#{ timeout: 120, commands: ["make install"] })"#,
            &["make @120", "make check @120", "make install"],
        ),
        (
            "make options set to () count as absent",
            r#"make::builder(#{ jobs: (), target: (), test_target: (), timeout: (), commands: () })"#,
            &["make", "make check"],
        ),
        (
            "make jobs 1",
            "make::builder(#{ jobs: 1 })",
            &["make -j 1", "make check"],
        ),
        // python
        (
            "python default",
            "python::builder_default()",
            &[
                "python3 -m venv .venv",
                ".venv/bin/pip install -r requirements.txt",
                ".venv/bin/python -m pytest",
            ],
        ),
        (
            "python requirements and test overridden",
            r#"python::builder(#{ requirements: "dev.txt", test: ".venv/bin/python -m unittest" })"#,
            &[
                "python3 -m venv .venv",
                ".venv/bin/pip install -r dev.txt",
                ".venv/bin/python -m unittest",
            ],
        ),
        (
            "python empty requirements installs nothing",
            r#"python::builder(#{ requirements: "" })"#,
            &["python3 -m venv .venv", ".venv/bin/python -m pytest"],
        ),
        (
            "python empty test runs none",
            r#"python::builder(#{ test: "" })"#,
            &[
                "python3 -m venv .venv",
                ".venv/bin/pip install -r requirements.txt",
            ],
        ),
        (
            "python interpreter overridden",
            r#"python::builder(#{ python: "python3.12" })"#,
            &[
                "python3.12 -m venv .venv",
                ".venv/bin/pip install -r requirements.txt",
                ".venv/bin/python -m pytest",
            ],
        ),
        (
            "python timeout and extra commands",
            r#"python::builder(#{ timeout: 900, requirements: "", commands: ["ruff check ."] })"#,
            &[
                "python3 -m venv .venv @900",
                ".venv/bin/python -m pytest @900",
                "ruff check .",
            ],
        ),
        (
            "python options set to () count as absent",
            r#"python::builder(#{ python: (), requirements: (), test: (), timeout: (), commands: () })"#,
            &[
                "python3 -m venv .venv",
                ".venv/bin/pip install -r requirements.txt",
                ".venv/bin/python -m pytest",
            ],
        ),
    ];
    for (what, call, expected) in cases {
        let (graph, _) = eval_ok(&format!(
            "constructicon = #{{ builders: #{{ x: {call} }} }};"
        ));
        assert_eq!(&commands_of_x(&graph), expected, "{what}: {call}");
    }
}

/// Every key that is not an option is copied into the builder unchanged.
#[test]
fn builders_pass_other_keys_through() {
    for module in ["cargo", "make", "python"] {
        let body = format!(
            r#"
            constructicon = #{{
                builders: #{{
                    x: {module}::builder(#{{
                        accept: `features.platform != "plan9"`,
                        schedulers: ["force", "commit"],
                        deps: ["https://example.com/lib.git"],
                        upload: #{{ "out.txt": "report.txt" }},
                        precommands: ["echo before"],
                    }}),
                }},
                schedulers: #{{ force: #{{ type: "force" }}, commit: #{{ type: "commit" }} }},
            }};"#
        );
        let (graph, _) = eval_ok(&body);
        let x = &graph.builders["t-x"];
        assert_eq!(x.accept, [r#"features.platform != "plan9""#], "{module}");
        assert_eq!(x.schedulers, ["t-force", "t-commit"], "{module}");
        assert_eq!(x.deps.len(), 1, "{module}");
        assert_eq!(x.deps[0].name, "lib", "{module}");
        assert_eq!(
            x.upload.get("out.txt").map(String::as_str),
            Some("report.txt"),
            "{module}"
        );
        assert_eq!(x.steps[0].command, "echo before", "{module}");
        assert_eq!(x.steps[0].name, "precommand 1", "{module}");
        assert_eq!(x.workers, ["local"], "{module}");
        assert_eq!(graph.schedulers["t-force"].builders, ["t-x"], "{module}");
    }
}

/// The options are consumed: a misspelt one is passed through and reported as
/// an unknown builder key.
#[test]
fn a_misspelt_option_is_reported_as_an_unknown_key() {
    for (call, key) in [
        (r#"cargo::builder(#{ relase: true })"#, "relase"),
        (r#"make::builder(#{ job: 4 })"#, "job"),
        (
            r#"python::builder(#{ requirement: "dev.txt" })"#,
            "requirement",
        ),
    ] {
        let evaluation = eval(&format!(
            "constructicon = #{{ builders: #{{ x: {call} }} }};"
        ));
        assert!(evaluation.value.is_none(), "{call}");
        assert!(
            evaluation
                .errors
                .iter()
                .any(|e| e.path.as_deref() == Some(&format!("builders.x.{key}")[..])),
            "{call}: {:#?}",
            evaluation.errors
        );
    }
}

#[test]
fn every_stdlib_module_compiles_and_imports() {
    // The prelude imports all four; each is used once so none is dead weight.
    let (graph, _) = eval_ok(
        r#"
        let builders = #{};
        for c in matrix::product(#{ kind: ["cargo", "make", "python"] }) {
            builders[matrix::name(c)] = if c.kind == "cargo" { cargo::builder_default() }
                else if c.kind == "make" { make::builder_default() }
                else { python::builder_default() };
        }
        constructicon = #{ builders: builders };"#,
    );
    let names: Vec<&str> = graph.builders.keys().map(String::as_str).collect();
    assert_eq!(names, ["t-cargo", "t-make", "t-python"]);
    // And each on its own, without the prelude's others.
    for module in ["matrix", "cargo", "make", "python"] {
        let evaluation = evaluate_repo(
            RepoInput {
                name: "t".into(),
                file: "constructicon.rhai".into(),
                bytes: format!("import \"{module}\" as m;\n{TRIVIAL}").into_bytes(),
                loader: None,
            },
            Arc::new(default_cybertron()),
            &Limits::default(),
        );
        assert!(
            evaluation.errors.is_empty(),
            "{module}: {:#?}",
            evaluation.errors
        );
    }
}

#[test]
fn private_functions_are_not_callable() {
    for call in [
        "matrix::sorted_keys(#{ a: 1 })",
        "matrix::matches(#{}, #{})",
        r#"cargo::finish(#{}, [], ["x"])"#,
        r#"make::finish(#{}, [], ["x"])"#,
        r#"python::finish(#{}, [], ["x"])"#,
        r#"cargo::bool_option(#{}, "fmt", false)"#,
        r#"cargo::string_option(#{}, "toolchain", "", false)"#,
        r#"cargo::features_option(#{})"#,
        r#"make::string_option(#{}, "target", "", false)"#,
        r#"python::string_option(#{}, "python", "", false)"#,
    ] {
        let evaluation = eval(&format!("let v = {call};\n{TRIVIAL}"));
        assert!(evaluation.value.is_none(), "{call} was callable");
        assert_eq!(
            evaluation.errors.len(),
            1,
            "{call}: {:#?}",
            evaluation.errors
        );
        let message = &evaluation.errors[0].message;
        let name = call.split('(').next().unwrap();
        assert!(
            message.starts_with(&format!("no function {name} that takes (")),
            "{call}: {message}"
        );
    }
}

/// A bad argument is an error in the caller's terms: the message names the
/// function and what was wrong.
#[test]
fn bad_arguments_give_errors_that_name_the_function() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"matrix::product("x")"#,
            "matrix::product",
            "must be a map",
        ),
        (
            r#"matrix::product(#{ os: "linux" })"#,
            "matrix::product",
            r#"axis "os" must be an array"#,
        ),
        (
            r#"matrix::product_excluding(#{ a: [1] }, "x")"#,
            "matrix::product_excluding",
            "must be an array",
        ),
        (
            r#"matrix::product_excluding(#{ a: [1] }, ["x"])"#,
            "matrix::product_excluding",
            "must be a map",
        ),
        (
            r#"matrix::product_excluding(42, [])"#,
            "matrix::product",
            "must be a map",
        ),
        (
            r#"matrix::name(["linux"])"#,
            "matrix::name",
            "must be a map",
        ),
        (
            r#"cargo::builder("stable")"#,
            "cargo::builder",
            "must be a map",
        ),
        (r#"make::builder(4)"#, "make::builder", "must be a map"),
        (r#"python::builder(())"#, "python::builder", "must be a map"),
    ];
    for (call, function, what) in cases {
        let body = format!("let v = {call};\n{TRIVIAL}");
        let evaluation = eval(&body);
        assert!(evaluation.value.is_none(), "{call} did not fail");
        assert_eq!(
            evaluation.errors.len(),
            1,
            "{call}: {:#?}",
            evaluation.errors
        );
        let error = &evaluation.errors[0];
        assert!(
            error.message.contains(function),
            "{call}: {}",
            error.message
        );
        assert!(error.message.contains(what), "{call}: {}", error.message);
        assert!(error.line.is_some(), "{call}: no line in {error:?}");
    }
}

/// An option of the wrong type is an error at the user's call that names the
/// function, the option, the type it must have and the value it had; before,
/// it was ignored or made a broken command.
#[test]
fn badly_typed_options_are_errors() {
    let cases: &[(&str, &str)] = &[
        // commands: a string used to become one command per character
        (
            r#"cargo::builder(#{ commands: "cargo doc" })"#,
            r#"cargo::builder: commands must be an array of commands, got "cargo doc""#,
        ),
        (
            r#"make::builder(#{ commands: "make doc" })"#,
            r#"make::builder: commands must be an array of commands, got "make doc""#,
        ),
        (
            r#"python::builder(#{ commands: "ruff check ." })"#,
            r#"python::builder: commands must be an array of commands, got "ruff check .""#,
        ),
        (
            r#"make::builder(#{ commands: #{ command: "make doc" } })"#,
            "make::builder: commands must be an array of commands",
        ),
        // timeout
        (
            r#"cargo::builder(#{ timeout: "60" })"#,
            r#"cargo::builder: timeout must be a positive integer (seconds), got "60""#,
        ),
        (
            r#"make::builder(#{ timeout: 1.5 })"#,
            "make::builder: timeout must be a positive integer (seconds), got 1.5",
        ),
        (
            r#"python::builder(#{ timeout: 0 })"#,
            "python::builder: timeout must be a positive integer (seconds), got 0",
        ),
        // cargo
        (
            r#"cargo::builder(#{ release: "yes" })"#,
            r#"cargo::builder: release must be a bool (true or false), got "yes""#,
        ),
        (
            r#"cargo::builder(#{ clippy: 1 })"#,
            "cargo::builder: clippy must be a bool (true or false), got 1",
        ),
        (
            r#"cargo::builder(#{ fmt: "true" })"#,
            r#"cargo::builder: fmt must be a bool (true or false), got "true""#,
        ),
        (
            r#"cargo::builder(#{ locked: "false" })"#,
            r#"cargo::builder: locked must be a bool (true or false), got "false""#,
        ),
        (
            r#"cargo::builder(#{ toolchain: "" })"#,
            r#"cargo::builder: toolchain must be a non-empty string, got """#,
        ),
        (
            r#"cargo::builder(#{ toolchain: ["stable"] })"#,
            r#"cargo::builder: toolchain must be a non-empty string, got ["stable"]"#,
        ),
        (
            r#"cargo::builder(#{ features: 3 })"#,
            "cargo::builder: features must be a string or an array of non-empty strings, got 3",
        ),
        (
            r#"cargo::builder(#{ features: ["serde", 1] })"#,
            r#"cargo::builder: features must be a string or an array of non-empty strings, got ["serde", 1]"#,
        ),
        (
            r#"cargo::builder(#{ features: ["serde", ""] })"#,
            r#"cargo::builder: features must be a string or an array of non-empty strings, got ["serde", ""]"#,
        ),
        // make
        (
            r#"make::builder(#{ jobs: "" })"#,
            r#"make::builder: jobs must be a positive integer, got """#,
        ),
        (
            r#"make::builder(#{ jobs: "4" })"#,
            r#"make::builder: jobs must be a positive integer, got "4""#,
        ),
        (
            r#"make::builder(#{ jobs: 0 })"#,
            "make::builder: jobs must be a positive integer, got 0",
        ),
        (
            r#"make::builder(#{ jobs: -2 })"#,
            "make::builder: jobs must be a positive integer, got -2",
        ),
        (
            r#"make::builder(#{ target: "" })"#,
            r#"make::builder: target must be a non-empty string, got """#,
        ),
        (
            r#"make::builder(#{ target: 4 })"#,
            "make::builder: target must be a non-empty string, got 4",
        ),
        (
            r#"make::builder(#{ test_target: false })"#,
            "make::builder: test_target must be a string, got false",
        ),
        // python
        (
            r#"python::builder(#{ python: "" })"#,
            r#"python::builder: python must be a non-empty string, got """#,
        ),
        (
            r#"python::builder(#{ python: 3 })"#,
            "python::builder: python must be a non-empty string, got 3",
        ),
        (
            r#"python::builder(#{ requirements: ["a.txt", "b.txt"] })"#,
            r#"python::builder: requirements must be a string, got ["a.txt", "b.txt"]"#,
        ),
        (
            r#"python::builder(#{ test: ["pytest"] })"#,
            r#"python::builder: test must be a string, got ["pytest"]"#,
        ),
    ];
    // The call is on the first line after the prelude.
    let call_line = PRELUDE.matches('\n').count() + 2;
    for (call, message) in cases {
        let evaluation = eval(&format!("let v = {call};\n{TRIVIAL}"));
        assert!(evaluation.value.is_none(), "{call} did not fail");
        assert_eq!(
            evaluation.errors.len(),
            1,
            "{call}: {:#?}",
            evaluation.errors
        );
        let error = &evaluation.errors[0];
        assert!(
            error.message.contains(message),
            "{call}:\n  expected: {message}\n  got:      {}",
            error.message
        );
        assert_eq!(error.line, Some(call_line), "{call}: {error:?}");
    }
}
