//! Diagnostics as rustc users expect them, through the real binary.

use crate::common::Repo;
use crate::eval::{check, errors_of};

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
