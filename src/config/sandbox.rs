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

use crate::alloc::thread_balance;
use crate::sync::lock;
use rhai::module_resolvers::ModuleResolver;
use rhai::packages::{Package, StandardPackage};
use rhai::{Dynamic, Engine, EvalAltResult, Module, ParseError, Position, Scope, AST};

/// A module shared between evaluations (`rhai::Shared<Module>`).
type SharedModule = rhai::Shared<Module>;
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Bounds on what one evaluation may use.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    /// Expression depth at the top level and inside functions.
    pub max_expr_depth: (usize, usize),
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    pub max_modules: usize,
    pub max_variables: usize,
    pub max_functions: usize,
    /// Bytes the evaluation thread may hold beyond what it held at the start.
    pub max_memory: usize,
    pub timeout: Duration,
    /// Lines of `print`/`debug` output kept; the rest are counted and dropped.
    pub max_output_lines: usize,
    /// Bytes of a script or an imported file.
    pub max_source_size: usize,
    pub max_builders: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 2_000_000,
            max_call_levels: 32,
            max_expr_depth: (64, 32),
            // String, array and map limits count totals across a nested value
            // (all the commands of all builders), so they are generous; memory
            // is bounded by `max_memory`.
            max_string_size: 16 << 20,
            max_array_size: 1 << 20,
            max_map_size: 1 << 20,
            max_modules: 64,
            max_variables: 1024,
            max_functions: 1024,
            max_memory: 128 << 20,
            timeout: Duration::from_millis(500),
            max_output_lines: 1000,
            max_source_size: 1 << 20,
            max_builders: 10_000,
        }
    }
}

/// The stack of the sandbox thread. Rhai's recursion costs a few KiB per script
/// call level in release builds and several times that in debug builds.
const SANDBOX_STACK: usize = 64 << 20;

/// Runs `work` on a fresh thread with a big stack, turning a panic into an error.
pub fn on_sandbox_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let handle = std::thread::Builder::new()
        .name("sandbox".into())
        .stack_size(SANDBOX_STACK)
        .spawn(work)
        .map_err(|e| format!("cannot start the sandbox thread: {e}"))?;
    handle.join().map_err(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        format!("internal error while evaluating: {what}")
    })
}

/// Reads files of the repo being evaluated, by path relative to its root.
/// Implementations must refuse anything outside the repo.
pub trait SourceLoader: Send + Sync {
    fn load(&self, relative: &str) -> Result<Vec<u8>, String>;
}

/// Loads from a folder on disk: no absolute paths, no `..`, no symlink leading
/// out of the folder, no special files.
pub struct FsLoader {
    root: PathBuf,
    max_size: u64,
}

impl FsLoader {
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(FsLoader {
            root: root.canonicalize()?,
            max_size: Limits::default().max_source_size as u64,
        })
    }
}

impl SourceLoader for FsLoader {
    fn load(&self, relative: &str) -> Result<Vec<u8>, String> {
        let path = Path::new(relative);
        if !path.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(format!("{relative} is not a path inside the repo"));
        }
        let full = self.root.join(path);
        let real = full.canonicalize().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{relative} does not exist in the repo"),
            _ => format!("{relative} cannot be read: {e}"),
        })?;
        if !real.starts_with(&self.root) {
            return Err(format!(
                "{relative} leads outside the repo through a symlink"
            ));
        }
        let meta =
            std::fs::metadata(&real).map_err(|e| format!("{relative} cannot be read: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{relative} is not a regular file"));
        }
        if meta.len() > self.max_size {
            return Err(format!("{relative} is larger than {} bytes", self.max_size));
        }
        std::fs::read(&real).map_err(|e| format!("{relative} cannot be read: {e}"))
    }
}

/// The stdlib modules users import by name, embedded in the binary.
pub const STDLIB: &[(&str, &str)] = &[
    ("matrix", include_str!("../../stdlib/matrix.rhai")),
    ("cargo", include_str!("../../stdlib/cargo.rhai")),
    ("make", include_str!("../../stdlib/make.rhai")),
    ("python", include_str!("../../stdlib/python.rhai")),
];

fn standard_package() -> SharedModule {
    static PACKAGE: OnceLock<SharedModule> = OnceLock::new();
    PACKAGE
        .get_or_init(|| StandardPackage::new().as_shared_module())
        .clone()
}

/// The stdlib compiled once per process. The modules are our own code, so
/// they are compiled without limits; their functions run under the caller's.
fn stdlib_modules() -> &'static HashMap<&'static str, SharedModule> {
    static MODULES: OnceLock<HashMap<&'static str, SharedModule>> = OnceLock::new();
    MODULES.get_or_init(|| {
        let mut engine = Engine::new_raw();
        engine
            .register_global_module(standard_package())
            .set_max_expr_depths(0, 0);
        STDLIB
            .iter()
            .map(|(name, source)| {
                let mut ast = engine
                    .compile(source)
                    .unwrap_or_else(|e| panic!("stdlib module {name} does not compile: {e}"));
                ast.set_source(format!("stdlib/{name}.rhai"));
                let module = Module::eval_ast_as_new(Scope::new(), &ast, &engine)
                    .unwrap_or_else(|e| panic!("stdlib module {name} does not evaluate: {e}"));
                (*name, SharedModule::new(module))
            })
            .collect()
    })
}

/// Why the progress hook stopped a script.
const STOP_TIME: &str = "time";
const STOP_MEMORY: &str = "memory";

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
        engine.set_module_resolver(Resolver {
            loader,
            loaded: Mutex::new(HashMap::new()),
            loading: Mutex::new(Vec::new()),
            sources: sources.clone(),
        });
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
        Ok(scope
            .get_value::<Dynamic>(variable)
            .unwrap_or(Dynamic::UNIT))
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

/// A syntax or runtime error of a script, placed in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl ScriptError {
    fn from_parse(file: &str, error: ParseError) -> ScriptError {
        let position = error.position();
        ScriptError {
            file: file.to_string(),
            line: position.line(),
            column: position.position(),
            message: format!("syntax error: {}", parse_message(&error)),
        }
    }

    fn from_eval(file: &str, error: EvalAltResult, limits: &Limits) -> ScriptError {
        // Errors inside an imported module or a function point into that
        // module's file; errors of the script itself into the script.
        let (source, position, raised_in_stdlib) = error_place(&error);
        let mut message = eval_message(&error, limits);
        if let Some(place) = raised_in_stdlib {
            message.push_str(&format!(" (raised at {place})"));
        }
        ScriptError {
            file: source.unwrap_or_else(|| file.to_string()),
            line: position.line(),
            column: position.position(),
            message,
        }
    }
}

/// Every place an error passed through, from the script's own call down to
/// where it was raised: (source file, `None` for the main script; position).
fn error_places(
    error: &EvalAltResult,
    source: Option<String>,
    places: &mut Vec<(Option<String>, Position)>,
) {
    match error {
        EvalAltResult::ErrorInFunctionCall(_, function_source, inner, position) => {
            places.push((source.clone(), *position));
            let inner_source = if function_source.is_empty() {
                source
            } else {
                Some(function_source.clone())
            };
            error_places(inner, inner_source, places);
        }
        EvalAltResult::ErrorInModule(module, inner, position) => {
            places.push((source, *position));
            error_places(inner, Some(module_file(module)), places);
        }
        other => places.push((source, other.position())),
    }
}

/// The file an imported module comes from, as diagnostics name it.
fn module_file(module: &str) -> String {
    if stdlib_modules().contains_key(module) {
        format!("stdlib/{module}.rhai")
    } else if module.ends_with(".rhai") {
        module.to_string()
    } else {
        format!("{module}.rhai")
    }
}

/// Where to point a user at: the innermost place in their own files (an error
/// raised inside the stdlib points at the user's call), and the place it was
/// raised when that lies in the stdlib.
fn error_place(error: &EvalAltResult) -> (Option<String>, Position, Option<String>) {
    let mut places = Vec::new();
    error_places(error, None, &mut places);
    let in_stdlib =
        |source: &Option<String>| source.as_deref().is_some_and(|s| s.starts_with("stdlib/"));
    let raised = places
        .iter()
        .rev()
        .find(|(source, position)| in_stdlib(source) && !position.is_none())
        .and_then(|(source, position)| {
            Some(format!("{}:{}", source.as_deref()?, position.line()?))
        });
    let (source, position) = places
        .iter()
        .rev()
        .find(|(source, position)| !in_stdlib(source) && !position.is_none())
        .cloned()
        .unwrap_or((None, Position::NONE));
    (source, position, raised)
}

fn parse_message(error: &ParseError) -> String {
    use rhai::ParseErrorType as P;
    match error.err_type() {
        P::ExprTooDeep => "expressions are nested too deeply for the sandbox".to_string(),
        P::Reserved(word) => format!(
            "'{word}' is a reserved keyword; to use it as a map key, quote it: \"{word}\": ..."
        ),
        other => other.to_string(),
    }
}

/// A message for a runtime error, in our words where Rhai's would puzzle a
/// user, without Rhai's "(line N, position M)" suffix.
pub fn eval_message(error: &EvalAltResult, limits: &Limits) -> String {
    use EvalAltResult as E;
    match error {
        E::ErrorTerminated(token, _) if token.to_string() == STOP_TIME => format!(
            "the script ran longer than the sandbox allows ({} ms)",
            limits.timeout.as_millis()
        ),
        E::ErrorTerminated(token, _) if token.to_string() == STOP_MEMORY => format!(
            "the script used more memory than the sandbox allows ({} MiB)",
            limits.max_memory >> 20
        ),
        E::ErrorTooManyOperations(_) => format!(
            "the script ran more than the sandbox's {} operations (an endless loop?)",
            limits.max_operations
        ),
        E::ErrorStackOverflow(_) => format!(
            "function calls nested deeper than the sandbox's {} levels (endless recursion?)",
            limits.max_call_levels
        ),
        E::ErrorDataTooLarge(what, _) => {
            let (what, limit) = if what.contains("string") {
                ("strings", format!("{} bytes", limits.max_string_size))
            } else if what.contains("array") {
                ("arrays", format!("{} items", limits.max_array_size))
            } else {
                ("maps", format!("{} entries", limits.max_map_size))
            };
            format!("a value grew beyond the sandbox's limit on {what} ({limit}, counted across everything a value holds)")
        }
        E::ErrorTooManyModules(_) => format!(
            "the script imports more than the sandbox's {} modules",
            limits.max_modules
        ),
        E::ErrorTooManyVariables(_) => format!(
            "the script declares more than the sandbox's {} variables",
            limits.max_variables
        ),
        E::ErrorRuntime(value, _) => value.to_string(),
        E::ErrorParsing(error, _) => format!("syntax error: {error}"),
        // The stdlib's own helpers are not the user's business: its errors
        // name the function the user called in their text.
        E::ErrorInFunctionCall(_, source, inner, _) if source.starts_with("stdlib/") => {
            eval_message(inner, limits)
        }
        E::ErrorInFunctionCall(name, _, inner, _) if name.starts_with("anon$") => {
            eval_message(inner, limits)
        }
        E::ErrorInFunctionCall(name, _, inner, _) => {
            format!("in function {name}: {}", eval_message(inner, limits))
        }
        E::ErrorInModule(name, inner, _) => {
            format!("in module \"{name}\": {}", eval_message(inner, limits))
        }
        E::ErrorModuleNotFound(name, _) => {
            format!(
            "module \"{name}\" not found: import a stdlib module ({}) or a file inside the repo",
            STDLIB.iter().map(|(n, _)| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
        )
        }
        other => {
            let text = other.to_string();
            let suffix = format!(" ({})", other.position());
            match text.strip_suffix(&suffix) {
                Some(stripped) if !other.position().is_none() => stripped.to_string(),
                _ => text,
            }
        }
    }
}

/// Resolves `import` to the stdlib or to files inside the repo, each module
/// loaded once per evaluation.
struct Resolver {
    loader: Option<Arc<dyn SourceLoader>>,
    loaded: Mutex<HashMap<String, SharedModule>>,
    /// Modules being evaluated now: importing one of them again is a cycle.
    loading: Mutex<Vec<String>>,
    sources: Arc<Mutex<BTreeMap<String, String>>>,
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        position: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        // A refusal is an error of the `import` statement itself, in the
        // importing file.
        let refuse = |message: String| -> Box<EvalAltResult> {
            EvalAltResult::ErrorRuntime(message.into(), position).into()
        };
        if let Some(module) = stdlib_modules().get(path) {
            return Ok(module.clone());
        }
        let Some(loader) = &self.loader else {
            return Err(EvalAltResult::ErrorModuleNotFound(path.to_string(), position).into());
        };
        if !path.ends_with(".rhai") && !path.contains('/') && !path.contains('.') {
            // A bare name that is not a stdlib module.
            return Err(EvalAltResult::ErrorModuleNotFound(path.to_string(), position).into());
        }
        let file = if path.ends_with(".rhai") {
            path.to_string()
        } else {
            format!("{path}.rhai")
        };
        if let Some(why) = super::spec::unsafe_relative_path(&file) {
            return Err(refuse(format!("cannot import \"{path}\": the path {why}")));
        }
        if let Some(module) = lock(&self.loaded).get(&file) {
            return Ok(module.clone());
        }
        if lock(&self.loading).contains(&file) {
            return Err(refuse(format!(
                "cannot import \"{path}\": it imports itself (an import cycle)"
            )));
        }
        let bytes = loader
            .load(&file)
            .map_err(|why| refuse(format!("cannot import \"{path}\": {why}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let (line, column) =
                super::diagnostic::byte_line_column(e.as_bytes(), e.utf8_error().valid_up_to());
            refuse(format!(
                "cannot import \"{path}\": invalid UTF-8 at {file}:{line}:{column}"
            ))
        })?;
        lock(&self.sources).insert(file.clone(), text.clone());
        // Errors inside the module are wrapped with its name, so they are
        // placed in its file.
        let in_module = |error: Box<EvalAltResult>| -> Box<EvalAltResult> {
            EvalAltResult::ErrorInModule(path.to_string(), error, position).into()
        };
        let mut ast = engine.compile(&text).map_err(|e| {
            let inner_position = e.position();
            in_module(EvalAltResult::ErrorParsing(*e.0, inner_position).into())
        })?;
        ast.set_source(file.clone());
        lock(&self.loading).push(file.clone());
        let result = Module::eval_ast_as_new(Scope::new(), &ast, engine);
        lock(&self.loading).retain(|f| *f != file);
        let module = SharedModule::new(result.map_err(in_module)?);
        lock(&self.loaded).insert(file, module.clone());
        Ok(module)
    }
}
