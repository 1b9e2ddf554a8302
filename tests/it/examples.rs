//! The shipped examples (`examples/`) evaluate clean through the real binary,
//! and their graphs have the builders, workers and schedulers the examples'
//! README promises.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Runs `constructicon eval REPO --cybertron CYBERTRON --json`, checks that it
/// succeeded without errors, and returns the graph it printed.
fn eval_json(repo: &str, cybertron: &str) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_constructicon"))
        .arg("eval")
        .arg(examples().join(repo))
        .arg("--cybertron")
        .arg(examples().join(cybertron))
        .arg("--json")
        .output()
        .expect("run constructicon");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "eval {repo} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let json: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    assert_eq!(
        json["errors"],
        Value::Array(vec![]),
        "eval {repo}: errors in {stdout}"
    );
    json
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
        .collect()
}

fn commands(builder: &Value) -> Vec<&str> {
    builder["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["command"].as_str().expect("command"))
        .collect()
}

#[test]
fn the_demo_example_evaluates_with_every_feature() {
    let graph = eval_json("demo/hello", "demo/cybertron.rhai");
    let builders = graph["builders"].as_object().expect("builders");
    let names: Vec<&str> = builders.keys().map(String::as_str).collect();
    for name in [
        "hello-basic",
        "hello-sleep",
        "hello-params",
        "hello-deps",
        "hello-upload",
        "hello-nightly",
        "hello-on-commit",
        "hello-mine",
        "hello-downstream",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }

    // cybertron's precommand comes first in every builder, and the loop at
    // the end gave every builder the force scheduler.
    for (name, builder) in builders {
        assert_eq!(commands(builder)[0], "echo cybertron precommand", "{name}");
        assert!(
            strings(&builder["schedulers"]).contains(&"hello-force"),
            "{name}"
        );
    }

    let basic = &builders["hello-basic"];
    assert_eq!(strings(&basic["workers"]), ["local", "hello-laptop"]);
    assert_eq!(
        commands(basic)[1..],
        [
            "echo hello",
            "echo from",
            "echo basic",
            "echo hello > greeting.txt"
        ]
    );

    let sleep = &builders["hello-sleep"];
    assert_eq!(strings(&sleep["resources"]), ["cpap machine"]);
    let first = &sleep["steps"][1];
    assert_eq!(first["timeout"], 30);
    assert_eq!(strings(&first["warnings"]), ["^WARN: "]);
    assert_eq!(strings(&first["suppress_warnings"]), ["expected at start"]);
    assert_eq!(sleep["steps"][2]["timeout"], 10);

    let deps = builders["hello-deps"]["deps"].as_array().expect("deps");
    assert_eq!(deps.len(), 2);
    assert_eq!(deps[0]["name"], "dep-lib");
    assert_eq!(deps[0]["builder"], Value::Null);
    assert_eq!(deps[1]["name"], "dep-tools");
    assert_eq!(deps[1]["revision"], "v1.2");
    assert_eq!(deps[1]["builder"], "build");

    let mine = &builders["hello-mine"];
    assert_eq!(strings(&mine["workers"]), ["hello-laptop"]);
    assert_eq!(graph["workers"]["hello-laptop"]["owner"], "hello");

    let downstream = &builders["hello-downstream"];
    assert_eq!(downstream["get"][0]["builder"], "hello-basic");
    assert_eq!(downstream["get"][0]["folder"], "basic");
    assert_eq!(strings(&downstream["get"][0]["values"]), ["build.number"]);

    let upload = &builders["hello-upload"];
    assert_eq!(upload["upload"]["out"], "out");
    assert_eq!(upload["upload"]["report.txt"], "report.txt");
    assert_eq!(strings(&upload["zip"]), ["out"]);
    assert_eq!(strings(&upload["unzip"]), ["out"]);
    assert_eq!(upload["url"]["out"], "index.html");

    // Schedulers of all three types, the repo's named after it, cybertron's not.
    let schedulers = graph["schedulers"].as_object().expect("schedulers");
    let force = &schedulers["hello-force"];
    assert_eq!(force["type"], "force");
    assert_eq!(force["parameters"]["greeting"], "hello");
    assert_eq!(force["parameters"]["count"], "3");
    assert_eq!(force["cybertron"], false);
    assert_eq!(
        force["builders"].as_array().expect("builders").len(),
        builders.len()
    );
    let commit = &schedulers["hello-commit"];
    assert_eq!(commit["type"], "commit");
    assert_eq!(commit["branch_regex"], "main|release/.*");
    assert_eq!(strings(&commit["builders"]), ["hello-on-commit"]);
    let hourly = &schedulers["hello-hourly"];
    assert_eq!(hourly["type"], "time");
    assert_eq!(hourly["minute"], "15");
    assert_eq!(hourly["hour"], "*");
    assert_eq!(strings(&hourly["builders"]), ["hello-sleep"]);
    let nightly = &schedulers["nightly"];
    assert_eq!(nightly["type"], "time");
    assert_eq!(nightly["cybertron"], true);
    assert_eq!(nightly["hour"], "3");
    assert_eq!(strings(&nightly["builders"]), ["hello-nightly"]);
}

#[test]
fn the_matrix_example_makes_eight_builders_each_on_its_platform() {
    let graph = eval_json("matrix", "matrix/cybertron.rhai");
    let builders = graph["builders"].as_object().expect("builders");
    let names: Vec<&str> = builders.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "matrix-linux-beta",
            "matrix-linux-nightly",
            "matrix-linux-stable",
            "matrix-macos-beta",
            "matrix-macos-nightly",
            "matrix-macos-stable",
            "matrix-windows-beta",
            "matrix-windows-stable",
        ]
    );
    for (name, builder) in builders {
        let mut parts = name.strip_prefix("matrix-").expect("prefix").split('-');
        let (platform, toolchain) = (parts.next().unwrap(), parts.next().unwrap());
        assert_eq!(
            strings(&builder["workers"]),
            [format!("{platform}-1")],
            "{name}"
        );
        assert_eq!(
            strings(&builder["accept"]),
            [format!("features.platform == \"{platform}\"")],
            "{name}"
        );
        assert_eq!(
            strings(&builder["schedulers"]),
            ["matrix-force", "matrix-commit"],
            "{name}"
        );

        let mut expected = vec![
            format!("cargo +{toolchain} build --locked"),
            format!("cargo +{toolchain} test"),
        ];
        if toolchain == "stable" {
            expected.push("cargo +stable clippy -- -D warnings".into());
        }
        if toolchain == "stable" && platform == "linux" {
            expected.push("cargo +stable fmt --check".into());
        }
        if toolchain == "nightly" {
            expected.push("cargo +nightly bench --no-run".into());
        }
        assert_eq!(commands(builder), expected, "{name}");
    }
    let commit = &graph["schedulers"]["matrix-commit"];
    assert_eq!(commit["type"], "commit");
    assert_eq!(commit["builders"].as_array().expect("builders").len(), 8);
}
