//! How long `evaluate_repo` takes on a big config: 1,000 builders merged with a
//! cybertron's `builder_base` and validated, written two ways (a Rhai loop, and
//! a 1,000-entry map literal), and the demo example for scale.
//!
//! Then the whole process: the release binary's `constructicon eval` (and
//! `eval --json`) of each form written to a repo folder, with the cybertron
//! in a file, output to /dev/null, timed from spawn to exit.
//!
//! Run with `cargo bench --bench eval` (or `scripts/bench`). Arguments: an
//! optional number of runs per form (default 30); cargo's `--bench` is ignored.
//! `CONSTRUCTICON_BENCH_BIN` names another binary for the whole-process part
//! (a copy of an earlier build, to compare the two).
//! Targets: under 50 ms per evaluation of 1,000 builders in the library;
//! whole process under 30 ms, under 40 ms with `--json`; release build.

use constructicon::config::{
    evaluate_cybertron, evaluate_repo, Cybertron, FsLoader, Graph, Limits, RepoInput, SourceLoader,
};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUILDERS: usize = 1000;
const DEFAULT_RUNS: usize = 30;
const TARGET_MS: f64 = 50.0;
const PROCESS_TARGET_MS: f64 = 30.0;
const PROCESS_JSON_TARGET_MS: f64 = 40.0;

const CYBERTRON: &str = r#"
cybertron = #{
    workers: #{
        "linux-1": #{ platform: "linux", cores: 8 },
        "linux-2": #{ platform: "linux", cores: 4 },
        "macos-1": #{ platform: "macos", cores: 8 },
        "windows-1": #{ platform: "windows", cores: 16 },
    },
    builder_base: #{
        accept: `features.cores >= 4`,
        precommands: ["echo base precommand", "env"],
        commands: [#{ command: "echo base command", timeout: 30 }],
        upload: #{ "build.log": "logs/build.log" },
    },
    schedulers: #{ nightly: #{ type: "time", hour: 3, minute: 0 } },
    resources: ["gpu"],
    horizon: 50,
};
"#;

const SCHEDULERS: &str = r#"#{
        force: #{ type: "force", parameters: #{ greeting: "hello" } },
        commit: #{ type: "commit", branch_regex: "main|release/.*" },
        hourly: #{ type: "time", minute: 15, hour: "*" },
    }"#;

/// Builder `b{i}` as a Rhai map literal; the loop form makes the same maps.
fn builder_literal(i: usize) -> String {
    let mut fields = vec![format!(
        "commands: [\"echo build {i}\", \"echo test {i}\", #{{ command: \"echo check {i}\", timeout: 60, warnings: [\"^W: \"] }}]"
    )];
    if i.is_multiple_of(4) {
        fields.push("accept: `features.platform == \"linux\"`".into());
    }
    let mut schedulers = vec!["\"force\""];
    if i.is_multiple_of(10) {
        schedulers.push("\"commit\"");
    }
    if i.is_multiple_of(100) {
        schedulers.push("\"nightly\"");
    }
    if i % 100 == 50 {
        schedulers.push("\"hourly\"");
    }
    fields.push(format!("schedulers: [{}]", schedulers.join(", ")));
    if i.is_multiple_of(50) {
        fields.push(
            "deps: [\"https://example.com/lib.git\", #{ url: \"https://example.com/tools.git\", revision: \"v1\" }]"
                .into(),
        );
    }
    if i.is_multiple_of(10) {
        fields.push("upload: #{ \"out\": \"out\" }, zip: [\"out\"]".into());
    }
    if i.is_multiple_of(100) {
        fields.push("resources: [\"gpu\"]".into());
    }
    if i % 100 == 1 {
        fields.push("get: #{ \"b0\": [\"build.number\"] }".into());
    }
    format!("#{{ {} }}", fields.join(", "))
}

fn literal_script() -> String {
    let mut script = String::from("constructicon = #{\n    builders: #{\n");
    for i in 0..BUILDERS {
        script.push_str(&format!("        \"b{i}\": {},\n", builder_literal(i)));
    }
    script.push_str(&format!("    }},\n    schedulers: {SCHEDULERS},\n}};\n"));
    script
}

fn loop_script() -> String {
    format!(
        r#"
let builders = #{{}};
for i in 0..{BUILDERS} {{
    let b = #{{
        commands: [`echo build ${{i}}`, `echo test ${{i}}`, #{{ command: `echo check ${{i}}`, timeout: 60, warnings: ["^W: "] }}],
        schedulers: ["force"],
    }};
    if i % 4 == 0 {{ b.accept = `features.platform == "linux"`; }}
    if i % 10 == 0 {{ b.schedulers.push("commit"); }}
    if i % 100 == 0 {{ b.schedulers.push("nightly"); }}
    if i % 100 == 50 {{ b.schedulers.push("hourly"); }}
    if i % 50 == 0 {{
        b.deps = ["https://example.com/lib.git", #{{ url: "https://example.com/tools.git", revision: "v1" }}];
    }}
    if i % 10 == 0 {{ b.upload = #{{ "out": "out" }}; b.zip = ["out"]; }}
    if i % 100 == 0 {{ b.resources = ["gpu"]; }}
    if i % 100 == 1 {{ b.get = #{{ "b0": ["build.number"] }}; }}
    builders[`b${{i}}`] = b;
}}
constructicon = #{{ builders: builders, schedulers: {SCHEDULERS} }};
"#
    )
}

/// Evaluates once; panics on errors, since timing a failure means nothing.
fn evaluate(
    name: &str,
    file: &str,
    script: &str,
    loader: Option<Arc<dyn SourceLoader>>,
    cybertron: &Arc<Cybertron>,
) -> Graph {
    let evaluation = evaluate_repo(
        RepoInput {
            name: name.into(),
            file: file.into(),
            bytes: script.as_bytes().to_vec(),
            loader,
        },
        cybertron.clone(),
        &Limits::default(),
    );
    if !evaluation.errors.is_empty() {
        let errors: Vec<String> = evaluation.errors.iter().map(ToString::to_string).collect();
        panic!("{file} does not evaluate:\n{}", errors.join("\n"));
    }
    evaluation.value.expect("a graph")
}

fn cybertron(file: &str, script: &str) -> Arc<Cybertron> {
    let evaluation = evaluate_cybertron(file, script.as_bytes().to_vec(), &Limits::default());
    if !evaluation.errors.is_empty() {
        let errors: Vec<String> = evaluation.errors.iter().map(ToString::to_string).collect();
        panic!("{file} does not evaluate:\n{}", errors.join("\n"));
    }
    Arc::new(evaluation.value.expect("a cybertron"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Times `runs` whole `constructicon eval` processes (after one warm-up)
/// and prints one table row; returns the median in ms.
fn bench_process(label: &str, runs: usize, bin: &str, args: &[&std::ffi::OsStr]) -> f64 {
    let once = || {
        let start = Instant::now();
        let status = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("constructicon eval runs");
        let elapsed = start.elapsed();
        assert!(status.success(), "constructicon eval failed: {status}");
        elapsed
    };
    once();
    let mut times: Vec<Duration> = (0..runs).map(|_| once()).collect();
    times.sort();
    let median = ms(times[times.len() / 2]);
    println!(
        "{label:<34} {runs:>5} {:>9.2} {median:>10.2} {:>9.2}",
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    median
}

/// Times `runs` evaluations (after one warm-up) and prints one table row;
/// returns the median in ms.
fn bench(label: &str, runs: usize, mut once: impl FnMut() -> Graph) -> f64 {
    once();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let graph = once();
            let elapsed = start.elapsed();
            std::hint::black_box(graph);
            elapsed
        })
        .collect();
    times.sort();
    let median = ms(times[times.len() / 2]);
    println!(
        "{label:<34} {runs:>5} {:>9.2} {median:>10.2} {:>9.2}",
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    median
}

fn main() {
    let runs = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse::<usize>().expect("the number of runs"))
        .unwrap_or(DEFAULT_RUNS)
        .max(1);

    let big_cybertron = cybertron("cybertron.rhai", CYBERTRON);
    let loop_script = loop_script();
    let literal_script = literal_script();

    // The two forms must describe the same graph, and a big one.
    let from_loop = evaluate(
        "big",
        "constructicon.rhai",
        &loop_script,
        None,
        &big_cybertron,
    );
    let from_literal = evaluate(
        "big",
        "constructicon.rhai",
        &literal_script,
        None,
        &big_cybertron,
    );
    assert_eq!(from_loop.builders.len(), BUILDERS);
    assert_eq!(
        from_loop.builders, from_literal.builders,
        "the loop and the literal differ"
    );
    assert_eq!(
        from_loop.schedulers, from_literal.schedulers,
        "the loop and the literal differ"
    );
    let steps: usize = from_loop.builders.values().map(|b| b.steps.len()).sum();
    let placements: usize = from_loop.builders.values().map(|b| b.workers.len()).sum();

    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
    let demo_cybertron_text =
        std::fs::read_to_string(examples.join("cybertron.rhai")).expect("demo cybertron");
    let demo_cybertron = cybertron("cybertron.rhai", &demo_cybertron_text);
    let demo_text = std::fs::read_to_string(examples.join("hello/constructicon.rhai"))
        .expect("demo constructicon");
    let demo_loader: Arc<dyn SourceLoader> =
        Arc::new(FsLoader::new(&examples.join("hello")).expect("demo folder"));
    let demo_builders = evaluate(
        "hello",
        "constructicon.rhai",
        &demo_text,
        Some(demo_loader.clone()),
        &demo_cybertron,
    )
    .builders
    .len();

    println!(
        "constructicon eval: evaluate_repo (sandboxed Rhai run, typed read, builder_base merge, accept \
         matching against {} workers, validation){}",
        big_cybertron.spec.workers.len(),
        if cfg!(debug_assertions) { "  [DEBUG BUILD: figures are not meaningful]" } else { "" }
    );
    println!(
        "{BUILDERS} builders: {steps} steps, {placements} builder-worker placements; loop script {} bytes, \
         literal script {} bytes",
        loop_script.len(),
        literal_script.len()
    );
    println!(
        "{:<34} {:>5} {:>9} {:>10} {:>9}",
        "config", "runs", "min ms", "median ms", "max ms"
    );
    let mut worst: f64 = 0.0;
    worst = worst.max(bench(
        &format!("{BUILDERS} builders, Rhai loop"),
        runs,
        || {
            evaluate(
                "big",
                "constructicon.rhai",
                &loop_script,
                None,
                &big_cybertron,
            )
        },
    ));
    worst = worst.max(bench(
        &format!("{BUILDERS} builders, map literal"),
        runs,
        || {
            evaluate(
                "big",
                "constructicon.rhai",
                &literal_script,
                None,
                &big_cybertron,
            )
        },
    ));
    bench(
        &format!("demo example ({demo_builders} builders)"),
        runs,
        || {
            evaluate(
                "hello",
                "constructicon.rhai",
                &demo_text,
                Some(demo_loader.clone()),
                &demo_cybertron,
            )
        },
    );
    println!(
        "target: median under {TARGET_MS} ms for {BUILDERS} builders: {}",
        if worst < TARGET_MS { "met" } else { "NOT met" }
    );

    // The whole process, as a user runs it: each form as a repo folder's
    // constructicon.rhai, with the cybertron beside it.
    let bin = std::env::var("CONSTRUCTICON_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_constructicon").to_string());
    let dir = tempfile::tempdir().expect("a temporary folder");
    let cybertron_file = dir.path().join("cybertron.rhai");
    std::fs::write(&cybertron_file, CYBERTRON).expect("the cybertron");
    println!("\nwhole process: {bin} eval DIR --cybertron FILE [--json] > /dev/null");
    let (mut worst, mut worst_json): (f64, f64) = (0.0, 0.0);
    for (form, folder, script) in [
        ("Rhai loop", "loop", &loop_script),
        ("map literal", "literal", &literal_script),
    ] {
        let repo = dir.path().join(folder).join("big");
        std::fs::create_dir_all(&repo).expect("the repo folder");
        std::fs::write(repo.join("constructicon.rhai"), script).expect("the script");
        let plain = [
            "eval".as_ref(),
            repo.as_os_str(),
            "--cybertron".as_ref(),
            cybertron_file.as_os_str(),
        ];
        let with_json = [&plain[..], &["--json".as_ref()]].concat();
        worst = worst.max(bench_process(&format!("eval, {form}"), runs, &bin, &plain));
        worst_json = worst_json.max(bench_process(
            &format!("eval --json, {form}"),
            runs,
            &bin,
            &with_json,
        ));
    }
    println!(
        "target: whole process median under {PROCESS_TARGET_MS} ms ({PROCESS_JSON_TARGET_MS} ms with --json) for {BUILDERS} builders: {}",
        if worst < PROCESS_TARGET_MS && worst_json < PROCESS_JSON_TARGET_MS {
            "met"
        } else {
            "NOT met"
        }
    );
}
