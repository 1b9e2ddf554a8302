//! Rhai scripts in, builder graph or errors out.
//!
//! `cybertron.rhai` (the maintainers') is evaluated once into a [`Cybertron`];
//! each repo's `constructicon.rhai` is evaluated against it into a [`Graph`].
//! Both run in the sandbox on a thread of their own, and both report every
//! error they find, not just the first. This module does no I/O of its own:
//! it takes script bytes, and a [`SourceLoader`] for the files a repo's script
//! imports.

pub mod accept;
pub mod access;
pub mod choose;
mod cybertron_checks;
pub mod diagnostic;
pub mod forges;
pub mod graph;
pub mod limits;
pub mod locate;
pub mod read_access;
pub mod read_builder;
mod read_checks;
pub mod read_scheduler;
pub mod read_spec;
pub mod reader;
pub mod resolver;
pub mod sandbox;
pub mod script_error;
pub mod secret_source;
pub mod secrets;
pub mod source_keys;
pub mod spec;
pub mod words;
pub mod zone;

pub use diagnostic::Diagnostic;
pub use graph::{Builder, GetSpec, Graph, Scheduler, Step};
pub use limits::Limits;
pub use resolver::{FsLoader, MemoryLoader, SourceLoader};
pub use spec::CybertronSpec;

use graph::Origin;
use reader::{Problem, Reader};
use sandbox::{on_sandbox_thread, on_sandbox_thread_leaving, Sandbox};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The name users' scripts are known by in diagnostics when read from a repo.
pub const CONSTRUCTICON_FILE: &str = "constructicon.rhai";
/// The display name of the built-in cybertron.
pub const BUILTIN_CYBERTRON_FILE: &str = "<built-in cybertron>";

/// An evaluated and checked cybertron.
#[derive(Debug, Clone)]
pub struct Cybertron {
    pub spec: CybertronSpec,
    /// sha256 of the script's text.
    pub hash: String,
    pub file: String,
    pub source: String,
    /// True for the default used when no cybertron is given.
    pub builtin: bool,
}

/// What an evaluation gives: a value when there were no errors, the errors
/// otherwise, and in both cases the script's `print`/`debug` output and the
/// source texts the diagnostics refer to.
#[derive(Debug, Clone)]
pub struct Evaluation<T> {
    pub value: Option<T>,
    pub errors: Vec<Diagnostic>,
    /// What is allowed but probably not meant (an `accept` naming a feature
    /// no worker has, a builder nothing starts); only with a value.
    pub warnings: Vec<Diagnostic>,
    pub output: Vec<String>,
    pub sources: BTreeMap<String, String>,
}

impl<T> Evaluation<T> {
    fn failed(
        errors: Vec<Diagnostic>,
        output: Vec<String>,
        sources: BTreeMap<String, String>,
    ) -> Self {
        Evaluation {
            value: None,
            errors,
            warnings: Vec::new(),
            output,
            sources,
        }
    }
}

/// A repo's script and how to read the files it imports.
pub struct RepoInput {
    /// The repo's name: builders are named `<name>-<builder>`.
    pub name: String,
    /// The script's name in diagnostics, e.g. `constructicon.rhai`.
    pub file: String,
    pub bytes: Vec<u8>,
    pub loader: Option<Arc<dyn SourceLoader>>,
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Decodes a script, with the place of the first bad byte as the error.
fn decode(file: &str, bytes: Vec<u8>, limits: &Limits) -> Result<String, Box<Diagnostic>> {
    if bytes.len() > limits.max_source_size {
        return Err(Box::new(Diagnostic::at(
            file,
            None,
            None,
            format!(
                "the script is {} bytes, more than the {} allowed",
                bytes.len(),
                limits.max_source_size
            ),
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let (line, column) = locate::byte_line_column(e.as_bytes(), offset);
        Box::new(Diagnostic::at(
            file,
            Some(line),
            Some(column),
            "the script is not valid UTF-8",
        ))
    })
}

/// Runs a script and checks that it assigned a map to `variable`.
fn run(
    sandbox: &Sandbox,
    file: &str,
    source: &str,
    variable: &str,
) -> Result<serde_json::Value, Vec<Diagnostic>> {
    let value = sandbox
        .run_script(file, source, variable)
        .map_err(|e| vec![Diagnostic::at(&e.file, e.line, e.column, e.message)])?;
    let complain = |message: String| {
        let assigned_at = locate::locate_assignment(source, variable);
        let (line, column) = assigned_at.map_or((None, None), |(l, c)| (Some(l), Some(c)));
        vec![Diagnostic::at(file, line, column, message)]
    };
    if value.is_unit() {
        return Err(complain(format!(
            "the script must assign a map to `{variable}`, e.g. `{variable} = #{{ ... }};`, but it assigned nothing"
        )));
    }
    if !value.is_map() {
        return Err(complain(format!(
            "the script must assign a map to `{variable}`, but it assigned {}",
            words::describe_dynamic(&value)
        )));
    }
    let mut problems = Vec::new();
    let json = reader::to_json(&value, "", &mut problems);
    if problems.is_empty() {
        Ok(json)
    } else {
        Err(keyed(file, source, problems))
    }
}

fn keyed(file: &str, source: &str, problems: Vec<Problem>) -> Vec<Diagnostic> {
    let mut diagnostics = diagnostic::placed(file, source, &problems);
    in_reading_order(&mut diagnostics);
    diagnostics
}

/// Places problems of both origins, each in its own file.
fn placed_by_origin(
    problems: Vec<(Origin, Problem)>,
    repo: (&str, &str),
    cybertron: &Cybertron,
) -> Vec<Diagnostic> {
    let (repo_problems, cybertron_problems): (Vec<_>, Vec<_>) = problems
        .into_iter()
        .partition(|(origin, _)| *origin == Origin::Repo);
    let strip = |problems: Vec<(Origin, Problem)>| problems.into_iter().map(|(_, p)| p).collect();
    let mut diagnostics = keyed(repo.0, repo.1, strip(repo_problems));
    diagnostics.extend(keyed(
        &cybertron.file,
        &cybertron.source,
        strip(cybertron_problems),
    ));
    in_reading_order(&mut diagnostics);
    diagnostics
}

/// Sorts diagnostics by file and place, those without a place last; the sort
/// is stable, so errors at one place keep the order they were found in.
fn in_reading_order(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.file.clone(), d.line.is_none(), d.line, d.column));
}

/// Evaluates and checks a cybertron script.
pub fn evaluate_cybertron(file: &str, bytes: Vec<u8>, limits: &Limits) -> Evaluation<Cybertron> {
    let file = file.to_string();
    let limits = limits.clone();
    let work_file = file.clone();
    on_sandbox_thread(move || cybertron_on_thread(&work_file, bytes, &limits)).unwrap_or_else(|e| {
        Evaluation::failed(
            vec![Diagnostic::at(&file, None, None, e)],
            Vec::new(),
            BTreeMap::new(),
        )
    })
}

fn cybertron_on_thread(file: &str, bytes: Vec<u8>, limits: &Limits) -> Evaluation<Cybertron> {
    let source = match decode(file, bytes, limits) {
        Ok(source) => source,
        Err(e) => return Evaluation::failed(vec![*e], Vec::new(), BTreeMap::new()),
    };
    let sandbox = Sandbox::new(limits, None);
    sandbox.add_source(file, &source);
    let finish = |value: Option<Cybertron>, errors: Vec<Diagnostic>| Evaluation {
        value,
        errors,
        warnings: Vec::new(),
        output: sandbox.output(),
        sources: sandbox
            .sources
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default(),
    };
    let json = match run(&sandbox, file, &source, "cybertron") {
        Ok(json) => json,
        Err(errors) => return finish(None, errors),
    };
    let mut reader = Reader::default();
    let spec = read_spec::read_cybertron(&mut reader, &json);
    cybertron_checks::check_cybertron(&sandbox, &spec, &mut reader.problems);
    if !reader.problems.is_empty() {
        return finish(None, keyed(file, &source, reader.problems));
    }
    let hash = sha256_hex(&[source.as_bytes()]);
    finish(
        Some(Cybertron {
            spec,
            hash,
            file: file.to_string(),
            source: source.clone(),
            builtin: false,
        }),
        Vec::new(),
    )
}

/// The cybertron used when none is given: one worker, `local`, whose only
/// feature is the running machine's platform.
pub fn default_cybertron() -> Cybertron {
    let source = format!(
        "// The built-in cybertron: one local worker.\ncybertron = #{{ workers: #{{ local: #{{ platform: \"{}\" }} }} }};\n",
        std::env::consts::OS
    );
    let evaluation = evaluate_cybertron(
        BUILTIN_CYBERTRON_FILE,
        source.into_bytes(),
        &Limits::default(),
    );
    match evaluation.value {
        Some(mut cybertron) => {
            cybertron.builtin = true;
            cybertron
        }
        // The text above is ours and covered by tests; failing here is a bug.
        None => panic!(
            "the built-in cybertron does not evaluate: {:?}",
            evaluation.errors
        ),
    }
}

/// Evaluates a repo's script against a cybertron into its builder graph.
pub fn evaluate_repo(
    input: RepoInput,
    cybertron: Arc<Cybertron>,
    limits: &Limits,
) -> Evaluation<Graph> {
    let file = input.file.clone();
    let limits = limits.clone();
    on_sandbox_thread_leaving(move || {
        // The script's value as JSON, freed after the answer is handed back:
        // freeing a big config's takes milliseconds.
        let mut json = None;
        let evaluation = repo_on_thread(input, &cybertron, &limits, &mut json);
        (evaluation, json)
    })
    .unwrap_or_else(|e| {
        Evaluation::failed(
            vec![Diagnostic::at(&file, None, None, e)],
            Vec::new(),
            BTreeMap::new(),
        )
    })
}

fn repo_on_thread(
    input: RepoInput,
    cybertron: &Cybertron,
    limits: &Limits,
    leftover: &mut Option<serde_json::Value>,
) -> Evaluation<Graph> {
    let file = input.file.as_str();
    let source = match decode(file, input.bytes, limits) {
        Ok(source) => source,
        Err(e) => return Evaluation::failed(vec![*e], Vec::new(), BTreeMap::new()),
    };
    let sandbox = Sandbox::new(limits, input.loader);
    sandbox.add_source(file, &source);
    let sources = || {
        sandbox
            .sources
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    };
    let json = match run(&sandbox, file, &source, "constructicon") {
        Ok(json) => json,
        Err(errors) => return Evaluation::failed(errors, sandbox.output(), sources()),
    };
    let mut reader = Reader::default();
    let spec = read_spec::read_constructicon(&mut reader, &json, &input.name);
    *leftover = Some(json);
    let mut problems: Vec<(Origin, Problem)> = reader
        .problems
        .into_iter()
        .map(|p| (Origin::Repo, p))
        .collect();
    let mut warnings = Vec::new();
    let mut graph = graph::build(
        &sandbox,
        &input.name,
        spec,
        &cybertron.spec,
        &mut problems,
        &mut warnings,
    );

    let mut all_sources = sources();
    if !problems.is_empty() {
        if problems
            .iter()
            .any(|(origin, _)| *origin == Origin::Cybertron)
        {
            all_sources.insert(cybertron.file.clone(), cybertron.source.clone());
        }
        let errors = placed_by_origin(problems, (file, &source), cybertron);
        return Evaluation::failed(errors, sandbox.output(), all_sources);
    }
    graph.config_hash = config_hash(&source, file, &all_sources);
    graph.cybertron_hash = cybertron.hash.clone();
    Evaluation {
        value: Some(graph),
        errors: Vec::new(),
        warnings: placed_by_origin(warnings, (file, &source), cybertron),
        output: sandbox.output(),
        sources: all_sources,
    }
}

/// The config's hash: the system's version, the script's text and each file
/// it imports with its name inside the repo. Not the script's own name,
/// which is only how the path to it was written (`eval .` or `eval /abs`).
fn config_hash(source: &str, file: &str, sources: &BTreeMap<String, String>) -> String {
    let mut parts: Vec<&[u8]> = vec![env!("CARGO_PKG_VERSION").as_bytes(), source.as_bytes()];
    for (name, text) in sources.iter().filter(|(name, _)| *name != file) {
        parts.push(name.as_bytes());
        parts.push(text.as_bytes());
    }
    sha256_hex(&parts)
}

/// The deps a repo's own builder declares, read from its config without a
/// cybertron (a dep with `builder` brings these along). `builder` is the
/// builder's name as the repo's config writes it, or its full name.
pub fn builder_deps(
    input: RepoInput,
    builder: &str,
    limits: &Limits,
) -> Result<Vec<spec::DepSpec>, String> {
    let limits = limits.clone();
    let builder = builder.to_string();
    on_sandbox_thread(move || {
        let file = input.file.clone();
        let source = decode(&file, input.bytes, &limits).map_err(|d| d.to_string())?;
        let sandbox = Sandbox::new(&limits, input.loader);
        let json = run(&sandbox, &file, &source, "constructicon").map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let mut reader = Reader::default();
        let spec = read_spec::read_constructicon(&mut reader, &json, &input.name);
        let short = builder
            .strip_prefix(&format!("{}-", input.name))
            .filter(|short| spec.builders.contains_key(*short))
            .unwrap_or(&builder);
        match spec.builders.get(short) {
            Some(found) => Ok(found.deps.clone()),
            None => Err(format!(
                "{file} of {} defines no builder {builder}",
                input.name
            )),
        }
    })?
}

#[cfg(test)]
mod tests;
