//! `constructicon eval`: the dry run users rely on before they push.
//!
//! It reads the two scripts, evaluates them with the same code the megatron
//! uses, and prints the builder graph (a readable summary, or JSON) or the
//! errors, rustc-style. Exit 0 when valid, 1 on config errors, 2 on usage
//! errors such as a missing file. (With `--against`, the megatron
//! evaluates it instead: `eval_against`.)

use super::eval_json::{json_report, print_json, CybertronReport};
use crate::cli::EvalArgs;
use crate::config::{
    self, default_cybertron, diagnostic, evaluate_cybertron, evaluate_repo, Cybertron, Evaluation,
    FsLoader, Graph, Limits, RepoInput, SourceLoader,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

const EXIT_ERRORS: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// Where the script is, where its repo is, and the repo's name.
struct Target {
    script: PathBuf,
    root: PathBuf,
    name: String,
}

/// The script a path names (a repo folder's `constructicon.rhai`, or the
/// file itself) and the folder its imports are read from, made absolute.
pub(super) fn script_and_root(path: &Path) -> Result<(PathBuf, PathBuf), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (script, root) = if meta.is_dir() {
        (path.join(config::CONSTRUCTICON_FILE), path.to_path_buf())
    } else {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (path.to_path_buf(), parent.to_path_buf())
    };
    if !script.is_file() {
        return Err(format!(
            "{} not found: a repo keeps its build description there",
            script.display()
        ));
    }
    let root = root
        .canonicalize()
        .map_err(|e| format!("cannot read {}: {e}", root.display()))?;
    Ok((script, root))
}

fn resolve_target(args: &EvalArgs) -> Result<Target, String> {
    let (script, root) = script_and_root(&args.path)?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => root
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .ok_or_else(|| {
                format!(
                    "cannot tell the repo's name from {}; pass --name",
                    root.display()
                )
            })?,
    };
    if let Some(why) = crate::model::check_name(&name) {
        return Err(format!(
            "the repo name \"{name}\" cannot be used: {why}; pass --name"
        ));
    }
    Ok(Target { script, root, name })
}

pub fn run(args: &EvalArgs) -> ExitCode {
    let limits = Limits::default();
    let target = match resolve_target(args) {
        Ok(target) => target,
        Err(message) => return usage(&message),
    };
    let cybertron = match &args.cybertron {
        None => default_cybertron(),
        Some(path) => {
            let bytes = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(e) => return usage(&format!("cannot read {}: {e}", path.display())),
            };
            let evaluation = evaluate_cybertron(&path.display().to_string(), bytes, &limits);
            match evaluation.value {
                Some(cybertron) => cybertron,
                None => return report_failure(args, &evaluation, None),
            }
        }
    };
    let bytes = match std::fs::read(&target.script) {
        Ok(bytes) => bytes,
        Err(e) => return usage(&format!("cannot read {}: {e}", target.script.display())),
    };
    let loader: Arc<dyn SourceLoader> = match FsLoader::new(&target.root) {
        Ok(loader) => Arc::new(loader),
        Err(e) => return usage(&format!("cannot read {}: {e}", target.root.display())),
    };
    let file = display_name(&target);
    let cybertron = Arc::new(cybertron);
    let evaluation = evaluate_repo(
        RepoInput {
            name: target.name.clone(),
            file,
            bytes,
            loader: Some(loader),
        },
        cybertron.clone(),
        &limits,
    );
    let code = match &evaluation.value {
        Some(graph) if args.json => {
            let mut report = json_report(Some(graph), &[], &evaluation.output, &cybertron);
            report.warnings = &evaluation.warnings;
            print_json(&report);
            ExitCode::SUCCESS
        }
        Some(graph) => {
            print!("{}", summary(graph, &evaluation.output, &cybertron));
            print_warnings(&evaluation);
            ExitCode::SUCCESS
        }
        None => report_failure(args, &evaluation, Some(&cybertron)),
    };
    // The process ends now: freeing a big graph piece by piece would only
    // delay the exit.
    std::mem::forget(evaluation);
    code
}

/// The script's name in diagnostics: as the user typed its path.
fn display_name(target: &Target) -> String {
    let shown = target.script.display().to_string();
    shown
        .strip_prefix("./")
        .map(str::to_string)
        .unwrap_or(shown)
}

/// Warnings go to stderr, rendered as errors are, after the graph.
fn print_warnings<T>(evaluation: &Evaluation<T>) {
    if evaluation.warnings.is_empty() {
        return;
    }
    eprint!(
        "{}",
        diagnostic::render_warnings(&evaluation.warnings, &evaluation.sources)
    );
    let count = evaluation.warnings.len();
    eprintln!(
        "warning: {count} {} in config",
        if count == 1 { "warning" } else { "warnings" }
    );
}

pub(super) fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn report_failure<T>(
    args: &EvalArgs,
    evaluation: &Evaluation<T>,
    cybertron: Option<&Cybertron>,
) -> ExitCode {
    if args.json {
        let builtin = default_cybertron();
        let mut report = json_report(
            None,
            &evaluation.errors,
            &evaluation.output,
            cybertron.unwrap_or(&builtin),
        );
        if cybertron.is_none() {
            report.cybertron = CybertronReport::Unread {
                file: args.cybertron.as_ref().map(|p| p.display().to_string()),
            };
        }
        print_json(&report);
    } else {
        for line in &evaluation.output {
            eprintln!("output: {line}");
        }
        eprint!(
            "{}",
            diagnostic::render(&evaluation.errors, &evaluation.sources)
        );
        let count = evaluation.errors.len();
        eprintln!(
            "error: {count} {} in config",
            if count == 1 { "error" } else { "errors" }
        );
    }
    ExitCode::from(EXIT_ERRORS)
}

/// `label` and the items joined with ", " (or "-" for none), on a line.
fn write_list(out: &mut String, label: &str, items: &[String]) {
    out.push_str(label);
    if items.is_empty() {
        out.push('-');
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(item);
    }
    out.push('\n');
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

fn features(features: &config::spec::Features) -> String {
    if features.is_empty() {
        return "no features".to_string();
    }
    features
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The readable summary of a valid graph.
pub fn summary(graph: &Graph, output: &[String], cybertron: &Cybertron) -> String {
    // About 500 bytes a builder: one allocation instead of a doubling series.
    let mut out = String::with_capacity(1024 + graph.builders.len() * 512);
    if cybertron.builtin {
        let _ = writeln!(
            out,
            "note: no --cybertron given; using the built-in cybertron (worker \"local\": {})",
            cybertron
                .spec
                .workers
                .get("local")
                .map(features)
                .unwrap_or_default()
        );
    } else {
        let _ = writeln!(
            out,
            "cybertron: {} (sha256 {})",
            cybertron.file,
            &cybertron.hash[..12]
        );
    }
    for line in output {
        let _ = writeln!(out, "output: {line}");
    }
    let _ = writeln!(
        out,
        "repo {}: {} builders, {} schedulers, {} user workers (config sha256 {})",
        graph.repo,
        graph.builders.len(),
        graph.schedulers.len(),
        graph.workers.len(),
        &graph.config_hash[..12]
    );
    for (name, builder) in &graph.builders {
        let _ = writeln!(out, "\nbuilder {name}");
        write_list(&mut out, "  workers:    ", &builder.workers);
        write_list(&mut out, "  schedulers: ", &builder.schedulers);
        write_list(&mut out, "  resources:  ", &builder.resources);
        if !builder.secrets.is_empty() {
            let _ = writeln!(out, "  secrets:    {}", builder.secrets.join(", "));
        }
        if !builder.deps.is_empty() {
            let deps: Vec<String> = builder
                .deps
                .iter()
                .map(|d| {
                    let mut text = format!("{} ({}", d.name, d.url);
                    if let Some(revision) = &d.revision {
                        let _ = write!(text, " at {revision}");
                    }
                    if let Some(b) = &d.builder {
                        let _ = write!(text, ", with builder {b}'s deps");
                    }
                    text + ")"
                })
                .collect();
            let _ = writeln!(out, "  deps:       {}", deps.join(", "));
        }
        let _ = writeln!(out, "  steps:");
        let width = builder
            .steps
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0);
        for step in &builder.steps {
            let _ = write!(out, "    {:width$}  {}", step.name, step.command);
            // Notes on what differs from the defaults: `   [a; b]`.
            let mut notes = 0;
            let mut note = |out: &mut String, what: std::fmt::Arguments<'_>| {
                out.push_str(if notes == 0 { "   [" } else { "; " });
                notes += 1;
                let _ = out.write_fmt(what);
            };
            if step.timeout != config::spec::DEFAULT_TIMEOUT {
                note(&mut out, format_args!("timeout {} s", step.timeout));
            }
            if step.warnings != [config::spec::DEFAULT_WARNING] {
                note(&mut out, format_args!("warnings {:?}", step.warnings));
            }
            if !step.suppress_warnings.is_empty() {
                note(
                    &mut out,
                    format_args!("suppress {:?}", step.suppress_warnings),
                );
            }
            out.push_str(if notes == 0 { "\n" } else { "]\n" });
        }
        for (source, destination) in &builder.upload {
            let mut notes = Vec::new();
            if builder.zip.contains(source) {
                notes.push("zipped".to_string());
            }
            if builder.unzip.contains(destination) {
                notes.push("unzipped".to_string());
            }
            if let Some(suffix) = builder.url.get(destination) {
                notes.push(format!("link {destination}/{suffix}"));
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join(", "))
            };
            let _ = writeln!(out, "  upload:     {source} -> {destination}{notes}");
        }
        for get in &builder.get {
            let _ = writeln!(
                out,
                "  get:        results of {} into ../{}/, the build with the greatest {}",
                get.builder,
                get.folder,
                get.values.join(", ")
            );
        }
    }
    if !graph.schedulers.is_empty() {
        let _ = writeln!(out, "\nschedulers");
    }
    for (name, scheduler) in &graph.schedulers {
        use config::spec::SchedulerSpec as S;
        let what = match &scheduler.spec {
            S::Force { .. } => "force".to_string(),
            S::Time {
                month,
                day_of_month,
                day_of_week,
                hour,
                minute,
                ..
            } => format!("time (minute {minute}, hour {hour}, day of month {day_of_month}, month {month}, day of week {day_of_week})"),
            S::Commit { branch_regex, branches, .. } => {
                let mut text = format!("commit (branches matching {branch_regex:?}");
                for (url, branch) in branches {
                    let _ = write!(text, ", {branch} of {url}");
                }
                text + ")"
            }
        };
        let parameters: BTreeMap<_, _> = scheduler.spec.parameters().iter().collect();
        let _ = writeln!(
            out,
            "  {name}: {what}{}{}",
            if parameters.is_empty() {
                String::new()
            } else {
                format!(
                    ", parameters {}",
                    parameters
                        .iter()
                        .map(|(k, v)| format!("{k}={v:?}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            },
            if scheduler.cybertron {
                ", from cybertron"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "    starts: {}", list(&scheduler.builders));
    }
    if !graph.workers.is_empty() {
        let _ = writeln!(out, "\nuser workers");
        for (name, f) in &graph.workers {
            let _ = writeln!(out, "  {name}: {}", features(f));
        }
    }
    out
}
