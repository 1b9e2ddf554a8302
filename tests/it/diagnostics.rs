//! Diagnostics as rustc users expect them, through the real binary: steps
//! numbered from 1 and named in diagnostics about commands, keys a loop
//! writes placed where they are written, runtime errors in words, `help:`
//! lines, the caret under a wrong value, and warnings.

use crate::common::Repo;
use crate::eval::{check, check_at, errors_of, graph_with, located, CYBERTRON, PLAIN_CYBERTRON};
use serde_json::Value;

/// One diagnostic of the JSON report as the rendered form reads it: the
/// one-line form, then its `help:` and `note:` lines.
fn explained(diagnostic: &Value) -> String {
    let mut text = located(diagnostic);
    if let Some(help) = diagnostic["help"].as_str() {
        text += &format!("\n  help: {help}");
    }
    for note in diagnostic["notes"].as_array().into_iter().flatten() {
        text += &format!("\n  note: {}", note.as_str().expect("note"));
    }
    text
}

/// Pins every error of a script with its place, help and notes.
#[track_caller]
fn check_explained(cybertron: &str, script: &str, expected: &[&str]) {
    let repo = Repo::with_config(script);
    let errors: Vec<String> = errors_of(&repo, Some(cybertron))
        .iter()
        .map(explained)
        .collect();
    assert_eq!(errors, expected, "script:\n{script}");
}

/// The warnings of a valid script, with place, help and notes.
#[track_caller]
fn warnings_of(cybertron: &str, script: &str) -> Vec<String> {
    let json = graph_with(Some(cybertron), &Repo::with_config(script));
    json["warnings"]
        .as_array()
        .expect("warnings array")
        .iter()
        .map(explained)
        .collect()
}

// ---------------------------------------------------------------- steps

#[test]
fn a_diagnostic_about_a_command_says_which_step_it_is() {
    check_explained(
        CYBERTRON,
        r#"constructicon = #{ builders: #{ b: #{
    precommands: [""],
    commands: ["a", #{ command: "b", timeout: 0 }],
} } };"#,
        &[
            "hello/constructicon.rhai:2:19: builders.b.precommands[0]: the command is empty\n  note: builders.b.precommands[0] is the step \"precommand 1\"",
            "hello/constructicon.rhai:3:47: builders.b.commands[1].timeout: 0 is out of range: expected 1 to 7200\n  note: builders.b.commands[1] is the step \"command 2\"",
        ],
    );
    let repo = Repo::with_config(r#"constructicon = #{ builders: #{ b: #{ commands: ["a"] } } };"#);
    let errors: Vec<String> = errors_of(
        &repo,
        Some(r#"cybertron = #{ workers: #{ w: #{} }, builder_base: #{ commands: ["ok", 7] } };"#),
    )
    .iter()
    .map(explained)
    .collect();
    assert_eq!(
        errors,
        ["cybertron.rhai:1:72: builder_base.commands[1]: expected a string or a map with \"command\", found an integer\n  note: builder_base.commands[1] is the step \"cybertron command 2\" of every builder"]
    );
}

// ---------------------------------------------------------------- places

#[test]
fn a_key_a_loop_writes_is_placed_where_it_is_written() {
    // Not at `builders: builders`, where the loop's map is used, and once
    // for both builders the loop made.
    check_explained(
        CYBERTRON,
        r#"let builders = #{};
for name in ["a", "b"] {
    builders[name] = #{ commands: ["x"], timout: 5 };
}
constructicon = #{ builders: builders };"#,
        &[
            r#"hello/constructicon.rhai:3:42: builders.a.timout: unused configuration key "timout" (and 1 more)
  help: the keys allowed here are "accept", "deps", "precommands", "commands", "upload", "zip", "unzip", "url", "schedulers", "resources", "get", "collapse", "secrets"
  note: also at builders.b.timout"#,
        ],
    );
    // Two misspellings, one in a loop and one after it: each line once,
    // with the paths that came from it.
    check_explained(
        CYBERTRON,
        r#"let builders = #{};
for os in ["linux", "mac"] {
    builders[os] = #{ commands: [#{ command: "make", timout: 5 }] };
}
builders.win = #{ commands: [#{ command: "nmake", timout: 5 }] };
constructicon = #{ builders: builders };"#,
        &[
            r#"hello/constructicon.rhai:3:54: builders.linux.commands[0].timout: unused configuration key "timout" (did you mean "timeout"?) (and 1 more)
  help: did you mean "timeout"?
  note: builders.linux.commands[0] is the step "command 1"
  note: also at builders.mac.commands[0].timout"#,
            r#"hello/constructicon.rhai:5:51: builders.win.commands[0].timout: unused configuration key "timout" (did you mean "timeout"?)
  help: did you mean "timeout"?
  note: builders.win.commands[0] is the step "command 1""#,
        ],
    );
}

#[test]
fn the_caret_goes_under_a_wrong_value() {
    check_at(
        r#"constructicon = #{ builders: #{ b: #{
    commands: [#{ command: "c", timeout: "5" }],
    accept: 5,
} } };"#,
        &[
            "hello/constructicon.rhai:2:42: builders.b.commands[0].timeout: expected an integer, found a string",
            "hello/constructicon.rhai:3:13: builders.b.accept: expected a string, found an integer",
        ],
    );
    let repo = Repo::with_config(
        r#"constructicon = #{ builders: #{ b: #{
    commands: [#{ command: "c", timeout: "5" }],
} } };"#,
    );
    repo.outside("cybertron.rhai", CYBERTRON);
    let out = repo.eval(&["--cybertron", "cybertron.rhai"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        r#"error: hello/constructicon.rhai:2:42: builders.b.commands[0].timeout: expected an integer, found a string
  |
2 |     commands: [#{ command: "c", timeout: "5" }],
  |                                          ^^^
  = note: builders.b.commands[0] is the step "command 1"

error: 1 error in config
"#
    );
}

// ---------------------------------------------------------------- words

#[test]
fn runtime_errors_are_in_words() {
    for (line, message) in [
        (
            r#"let x = foo(1, "a");"#,
            r#"no function foo that takes (an integer, a string)"#,
        ),
        ("let x = foo();", "no function foo that takes no arguments"),
        (
            "let x = [1].bar(#{}, 2.5, true, ());",
            "no function bar that takes (an array, a map, a float, a bool, nothing)",
        ),
        (
            r#"let x = [1] - "a";"#,
            "cannot apply - to an array and a string",
        ),
        (
            "let x = true; let y = x[0];",
            "cannot index a bool with an integer",
        ),
        (
            "let x = 5; let y = x.foo;",
            "an integer has no property foo",
        ),
        (
            "let x = 5; x.foo = 1;",
            "cannot set the property foo of an integer",
        ),
        (
            "let n = 5; for x in n {}",
            "a for loop needs something to go through: an array, a range, a string or a map's keys",
        ),
    ] {
        let repo = Repo::with_config(format!("{line}\nconstructicon = #{{}};"));
        let errors: Vec<String> = errors_of(&repo, None)
            .iter()
            .map(|e| e["message"].as_str().expect("message").to_string())
            .collect();
        assert_eq!(errors, [message], "{line}");
    }
}

// ---------------------------------------------------------------- command maps

#[test]
fn a_command_map_reports_every_problem_in_it() {
    check(
        r#"constructicon = #{ builders: #{ b: #{ commands: [#{ comand: "make" }] } } };"#,
        &[
            r#"builders.b.commands[0]: missing required key "command""#,
            r#"builders.b.commands[0].comand: unused configuration key "comand" (did you mean "command"?)"#,
        ],
    );
    check(
        r#"constructicon = #{ builders: #{ b: #{ commands: [#{ command: 5, timeout: "x", warnings: "w", suppress_warnings: [1] }] } } };"#,
        &[
            "builders.b.commands[0].command: expected a string, found an integer",
            "builders.b.commands[0].timeout: expected an integer, found a string",
            "builders.b.commands[0].warnings: expected an array, found a string",
            "builders.b.commands[0].suppress_warnings[0]: expected a string, found an integer",
        ],
    );
}

// ---------------------------------------------------------------- help

#[test]
fn help_lines_say_how_to_fix_it() {
    check_explained(
        CYBERTRON,
        r#"constructicon = #{
    builders: #{
        b: #{ comands: ["x"], commands: ["y"], schedulers: ["nightli", "zzz"], resources: ["gpus"] },
        c: #{ commands: ["y"], colapse: true, bogus: 1 },
    },
    slaves: #{},
};"#,
        &[
            r#"hello/constructicon.rhai:3:15: builders.b.comands: unused configuration key "comands" (did you mean "commands"?)
  help: did you mean "commands"?"#,
            r#"hello/constructicon.rhai:3:61: builders.b.schedulers[0]: scheduler "nightli" does not exist
  help: did you mean "nightly"? defined schedulers: "nightly""#,
            r#"hello/constructicon.rhai:3:72: builders.b.schedulers[1]: scheduler "zzz" does not exist
  help: defined schedulers: "nightly""#,
            r#"hello/constructicon.rhai:3:92: builders.b.resources[0]: resource "gpus" is not declared by cybertron
  help: did you mean "gpu"? cybertron declares: "gpu", "cpap machine""#,
            r#"hello/constructicon.rhai:4:32: builders.c.colapse: unused configuration key "colapse" (did you mean "collapse"?)
  help: did you mean "collapse"?"#,
            r#"hello/constructicon.rhai:4:47: builders.c.bogus: unused configuration key "bogus"
  help: the keys allowed here are "accept", "deps", "precommands", "commands", "upload", "zip", "unzip", "url", "schedulers", "resources", "get", "collapse", "secrets""#,
            r#"hello/constructicon.rhai:6:5: slaves: unused configuration key "slaves"
  help: the first version's "slaves" are called "workers" here"#,
        ],
    );
    check_explained(
        PLAIN_CYBERTRON,
        r#"constructicon = #{
    builders: #{ b: #{ commands: ["y"], accept: `features.platfrom == "linux"` } },
};"#,
        &[
            r#"hello/constructicon.rhai:2:18: builders.b: no worker accepts this builder: accept `features.platfrom == "linux"` holds for none of the workers (bare, local)
  help: no worker has the feature "platfrom": did you mean "platform"? the workers' features are "platform""#,
        ],
    );
    check_explained(
        r#"cybertron = #{ workers: #{ w: #{} } };"#,
        r#"constructicon = #{ builders: #{ b: #{ commands: ["a"], schedulers: ["s"], resources: ["r"] } } };"#,
        &[
            r#"hello/constructicon.rhai:1:69: builders.b.schedulers[0]: scheduler "s" does not exist
  help: no scheduler is defined; define it, e.g. schedulers: #{ s: #{ type: "force" } }"#,
            r#"hello/constructicon.rhai:1:87: builders.b.resources[0]: resource "r" is not declared by cybertron
  help: cybertron declares no resources; its maintainers add them to its "resources""#,
        ],
    );
}

// ---------------------------------------------------------------- warnings

#[test]
fn warnings_do_not_fail_the_config() {
    let script = r#"constructicon = #{
    builders: #{
        a: #{ commands: ["x"], accept: `features.platfrom != "windows"`, schedulers: ["nightly"] },
        idle: #{ commands: ["x"] },
    },
};"#;
    assert_eq!(
        warnings_of(PLAIN_CYBERTRON, script),
        [
            r#"hello/constructicon.rhai:3:40: builders.a.accept: the accept expression reads the feature "platfrom", which no worker has
  help: did you mean "platform"? the workers' features are "platform""#,
            r#"hello/constructicon.rhai:4:9: builders.idle: no scheduler starts this builder: it never builds, and it cannot be forced
  help: name one in the builder's "schedulers"; defined schedulers: "nightly""#,
        ]
    );

    let repo = Repo::with_config(script);
    repo.outside("cybertron.rhai", PLAIN_CYBERTRON);
    let out = repo.eval(&["--cybertron", "cybertron.rhai"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("builder hello-idle"), "{}", out.stdout);
    assert_eq!(
        out.stderr,
        r#"warning: hello/constructicon.rhai:3:40: builders.a.accept: the accept expression reads the feature "platfrom", which no worker has
  |
3 |         a: #{ commands: ["x"], accept: `features.platfrom != "windows"`, schedulers: ["nightly"] },
  |                                        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  = help: did you mean "platform"? the workers' features are "platform"

warning: hello/constructicon.rhai:4:9: builders.idle: no scheduler starts this builder: it never builds, and it cannot be forced
  |
4 |         idle: #{ commands: ["x"] },
  |         ^^^^
  = help: name one in the builder's "schedulers"; defined schedulers: "nightly"

warning: 2 warnings in config
"#
    );

    // Without a scheduler anywhere, the help says how to define one.
    assert_eq!(
        warnings_of(
            r#"cybertron = #{ workers: #{ w: #{} } };"#,
            r#"constructicon = #{ builders: #{ b: #{ commands: ["x"] } } };"#
        ),
        [
            r#"hello/constructicon.rhai:1:33: builders.b: no scheduler starts this builder: it never builds, and it cannot be forced
  help: define a scheduler, e.g. schedulers: #{ manual: #{ type: "force" } }, and name it in the builder's "schedulers""#
        ]
    );
    // A config with errors shows only its errors.
    let repo = Repo::with_config(r#"constructicon = #{ builders: #{ b: #{ comands: ["x"] } } };"#);
    let out = repo.eval_json_with(Some(PLAIN_CYBERTRON));
    assert_eq!(out.code, Some(1));
    assert_eq!(out.json()["warnings"], serde_json::json!([]));
}
