//! The Rhai sandbox every script runs in, the maintainers' and the users' alike.
//!
//! - A raw engine: no file, network or process access, no `eval`, strict
//!   variables, and only the standard package of pure functions.
//! - Limits on operations, call levels, expression depth, string/array/map
//!   sizes, variables, functions and modules.
//! - A wall-clock deadline and a real memory budget, both checked between
//!   operations from `on_progress` (Rhai's size limits do not bound memory;
//!   see `crate::alloc`).
//! - `import` resolves the shipped stdlib (embedded in the binary) and files
//!   inside the repo through a [`SourceLoader`], never anything else.
//! - `print` and `debug` are captured into the evaluation's output.
//!
//! Everything runs on a thread of its own ([`on_sandbox_thread`]) whose stack
//! is big enough for the call-level limit: a Rust stack overflow would abort
//! the whole process, the megatron included.
//!
//! The bounds themselves are in `limits`, what `import` may reach in
//! `resolver`, and how a script's errors are placed and worded in
//! `script_error`.

use super::limits::{Limits, STOP_MEMORY, STOP_TIME};
use super::resolver::{standard_package, Resolver, SourceLoader};
use super::script_error::{eval_message, parse_message, ScriptError};
use crate::alloc::thread_balance;
use crate::sync::lock;
use rhai::{Dynamic, Engine, Scope, AST};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The stack of the sandbox thread. Rhai's recursion costs a few KiB per script
/// call level in release builds and several times that in debug builds.
const SANDBOX_STACK: usize = 64 << 20;

/// Runs `work` on a fresh thread with a big stack, turning a panic into an error.
pub fn on_sandbox_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    on_sandbox_thread_leaving(move || (work(), ()))
}

/// As [`on_sandbox_thread`], for work that gives its answer and what it
/// leaves to free (the intermediate forms of a big config): the answer is
/// handed back at once, and the leftovers are freed on the sandbox thread
/// afterwards, without the caller waiting.
pub fn on_sandbox_thread_leaving<T: Send + 'static, L: Send + 'static>(
    work: impl FnOnce() -> (T, L) + Send + 'static,
) -> Result<T, String> {
    let (answer, receive) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("sandbox".into())
        .stack_size(SANDBOX_STACK)
        .spawn(move || match catch_unwind(AssertUnwindSafe(work)) {
            Ok((value, leftovers)) => {
                let _ = answer.send(Ok(value));
                drop(leftovers);
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown panic");
                let _ = answer.send(Err(format!("internal error while evaluating: {what}")));
            }
        })
        .map_err(|e| format!("cannot start the sandbox thread: {e}"))?;
    receive.recv().unwrap_or_else(|_| {
        Err("internal error while evaluating: the sandbox thread gave no answer".to_string())
    })
}

/// What `print`/`debug` said, kept for the eval output.
#[derive(Default)]
struct Output {
    lines: Vec<String>,
    dropped: usize,
}

/// One evaluation's engine, with its output, deadline and memory baseline.
/// Create and use it on the sandbox thread: the memory count is per thread.
pub struct Sandbox {
    pub engine: Engine,
    pub limits: Limits,
    output: Arc<Mutex<Output>>,
    /// Source texts of the files evaluated, by display name, for diagnostics.
    pub sources: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Sandbox {
    pub fn new(limits: &Limits, loader: Option<Arc<dyn SourceLoader>>) -> Sandbox {
        let output = Arc::new(Mutex::new(Output::default()));
        let sources = Arc::new(Mutex::new(BTreeMap::new()));
        let mut engine = Engine::new_raw();
        engine.register_global_module(standard_package());
        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_levels)
            .set_max_expr_depths(limits.max_expr_depth.0, limits.max_expr_depth.1)
            .set_max_string_size(limits.max_string_size)
            .set_max_array_size(limits.max_array_size)
            .set_max_map_size(limits.max_map_size)
            .set_max_modules(limits.max_modules)
            .set_max_variables(limits.max_variables)
            .set_max_functions(limits.max_functions)
            .set_strict_variables(true)
            .disable_symbol("eval");

        let deadline = Instant::now() + limits.timeout;
        let memory_base = thread_balance();
        let max_memory = limits.max_memory as isize;
        engine.on_progress(move |_operations| {
            // Reading the clock costs ~25 ns, little beside an operation, and a
            // single operation on a big string can take milliseconds: check
            // every time.
            if Instant::now() > deadline {
                return Some(STOP_TIME.into());
            }
            if thread_balance() - memory_base > max_memory {
                return Some(STOP_MEMORY.into());
            }
            None
        });
        let max_lines = limits.max_output_lines;
        let print_output = output.clone();
        engine.on_print(move |text| push_output(&print_output, max_lines, text.to_string()));
        let debug_output = output.clone();
        engine.on_debug(move |text, source, position| {
            let place = match (source, position.line()) {
                (Some(source), Some(line)) => format!("{source}:{line}: "),
                (None, Some(line)) => format!("{line}: "),
                _ => String::new(),
            };
            push_output(&debug_output, max_lines, format!("{place}{text}"))
        });
        engine.set_module_resolver(Resolver::new(loader, sources.clone()));
        Sandbox {
            engine,
            limits: limits.clone(),
            output,
            sources,
        }
    }

    /// Records a source text under its display name, for diagnostics.
    pub fn add_source(&self, file: &str, text: &str) {
        lock(&self.sources).insert(file.to_string(), text.to_string());
    }

    /// The output lines so far, with a note when some were dropped.
    pub fn output(&self) -> Vec<String> {
        let output = lock(&self.output);
        let mut lines = output.lines.clone();
        if output.dropped > 0 {
            lines.push(format!("({} more lines of output dropped)", output.dropped));
        }
        lines
    }

    /// Compiles and runs a script with `variable` pre-declared as `()`, and
    /// returns what the script assigned to it.
    pub fn run_script(
        &self,
        file: &str,
        source: &str,
        variable: &str,
    ) -> Result<Dynamic, ScriptError> {
        let mut scope = Scope::new();
        scope.push(variable, Dynamic::UNIT);
        let mut ast = self
            .engine
            .compile_with_scope(&scope, source)
            .map_err(|e| ScriptError::from_parse(file, e))?;
        ast.set_source(file);
        self.engine
            .run_ast_with_scope(&mut scope, &ast)
            .map_err(|e| ScriptError::from_eval(file, *e, &self.limits))?;
        // Taken out of the scope, not copied: the value may hold a whole
        // config. `flatten` gives what a copy would give for a shared value.
        Ok(scope
            .remove::<Dynamic>(variable)
            .map_or(Dynamic::UNIT, Dynamic::flatten))
    }

    /// Compiles an expression (an `accept` or a `get` value) with the given
    /// variables in scope.
    pub fn compile_expression(&self, expression: &str, variables: &[&str]) -> Result<AST, String> {
        let mut scope = Scope::new();
        for name in variables {
            scope.push(*name, Dynamic::UNIT);
        }
        self.engine
            .compile_expression_with_scope(&scope, expression)
            .map_err(|e| parse_message(&e))
    }

    /// Evaluates a compiled expression with the given variables.
    pub fn eval_expression(
        &self,
        ast: &AST,
        variables: Vec<(&str, Dynamic)>,
    ) -> Result<Dynamic, String> {
        let mut scope = Scope::new();
        for (name, value) in variables {
            scope.push(name, value);
        }
        self.engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, ast)
            .map_err(|e| eval_message(&e, &self.limits))
    }
}

fn push_output(output: &Mutex<Output>, max_lines: usize, line: String) {
    let mut output = lock(output);
    if output.lines.len() < max_lines {
        // One line may not hold more than 4 KiB, so output stays small too.
        let mut line = line;
        if line.len() > 4096 {
            let mut cut = 4096;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str("...");
        }
        output.lines.push(line);
    } else {
        output.dropped += 1;
    }
}
