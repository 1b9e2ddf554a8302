//! Checks against what cybertron declares: cybertron's own consistency
//! (what `builder_base` names, its accept expression, `fork_workers`), and
//! the problems for a scheduler, resource or secret nobody declared, which
//! the graph reports for a repo's builders too.

use super::accept::workers_accepting;
use super::limits::Limits;
use super::reader::{index, Problem};
use super::sandbox::Sandbox;
use super::spec::CybertronSpec;
use super::words::suggest;

/// Checks cybertron's own consistency: builder_base names only schedulers and
/// resources cybertron declares, and its accept and get expressions compile.
pub(super) fn check_cybertron(
    sandbox: &Sandbox,
    cybertron: &CybertronSpec,
    problems: &mut Vec<Problem>,
) {
    let base = &cybertron.builder_base;
    for (i, scheduler) in base.schedulers.iter().enumerate() {
        if !cybertron.schedulers.contains_key(scheduler) {
            let known: Vec<String> = cybertron.schedulers.keys().cloned().collect();
            problems.push(unknown_scheduler(
                &index("builder_base.schedulers", i),
                scheduler,
                &known,
            ));
        }
    }
    for (i, resource) in base.resources.iter().enumerate() {
        if !cybertron.resources.contains(resource) {
            problems.push(unknown_resource(
                &index("builder_base.resources", i),
                resource,
                &cybertron.resources,
            ));
        }
    }
    if let Some(accept) = &base.accept {
        if let Err(message) = sandbox.compile_expression(accept, &["features", "worker"]) {
            problems.push(
                Problem::new(
                    "builder_base.accept",
                    format!("invalid accept expression: {message}"),
                )
                .at_value(),
            );
        }
    }
    if let Some(expression) = &cybertron.fork_workers {
        match workers_accepting(expression, &cybertron.workers, &Limits::default()) {
            Ok(workers) if workers.is_empty() => problems.push(
                Problem::new(
                    "pull_requests.fork_workers",
                    "no worker matches: fork pull requests could never build",
                )
                .at_value(),
            ),
            Ok(_) => {}
            Err(message) => {
                problems.push(Problem::new("pull_requests.fork_workers", message).at_value())
            }
        }
    }
    for (i, secret) in base.secrets.iter().enumerate() {
        if !cybertron.secrets.contains_key(secret) {
            let known: Vec<String> = cybertron.secrets.keys().cloned().collect();
            problems.push(unknown_secret(
                &index("builder_base.secrets", i),
                secret,
                &known,
            ));
        }
    }
    if !base.get.is_empty() {
        problems.push(Problem::new(
            "builder_base.get",
            "builder_base cannot get results: which builder's results would depend on the repo",
        ));
    }
}

/// A scheduler name that is neither the repo's nor cybertron's.
pub(super) fn unknown_scheduler(path: &str, name: &str, known: &[String]) -> Problem {
    let problem = Problem::new(path, format!("scheduler \"{name}\" does not exist")).at_value();
    if known.is_empty() {
        problem.help(format!(
            "no scheduler is defined; define it, e.g. schedulers: #{{ {name}: #{{ type: \"force\" }} }}"
        ))
    } else {
        problem.help(suggest(name, known, "defined schedulers"))
    }
}

/// A resource name cybertron does not declare.
pub(super) fn unknown_resource(path: &str, name: &str, declared: &[String]) -> Problem {
    let problem = Problem::new(
        path,
        format!("resource \"{name}\" is not declared by cybertron"),
    )
    .at_value();
    if declared.is_empty() {
        problem
            .help("cybertron declares no resources; its maintainers add them to its \"resources\"")
    } else {
        problem.help(suggest(name, declared, "cybertron declares"))
    }
}

/// A secret name neither cybertron nor the repo declares.
pub(super) fn unknown_secret(path: &str, name: &str, known: &[String]) -> Problem {
    let problem = Problem::new(path, format!("secret \"{name}\" is not declared")).at_value();
    if known.is_empty() {
        problem.help(
            "no secret is declared: cybertron's maintainers declare theirs in its \"secrets\", a repo its encrypted ones in its own \"secrets\"",
        )
    } else {
        problem.help(suggest(name, known, "declared secrets"))
    }
}
