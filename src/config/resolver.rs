//! What `import` may reach: the shipped stdlib, compiled once per process,
//! and files inside the repo, read through a [`SourceLoader`]. The sandbox
//! installs the `Resolver`; error messages name the stdlib's modules, so
//! both read them from here.

use super::limits::Limits;
use super::locate::byte_line_column;
use super::spec::unsafe_relative_path;
use crate::sync::lock;
use rhai::module_resolvers::ModuleResolver;
use rhai::packages::{Package, StandardPackage};
use rhai::{Engine, EvalAltResult, Module, Position, Scope};
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// A module shared between evaluations (`rhai::Shared<Module>`).
type SharedModule = rhai::Shared<Module>;

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

/// Loads from files held in memory, by path relative to the repo's root: a
/// commit's tree read up front, or the files a person sent to be evaluated.
/// Only plain relative paths (no `.`, `..` or root) are looked up.
pub struct MemoryLoader {
    files: HashMap<String, Vec<u8>>,
}

impl MemoryLoader {
    pub fn new(files: HashMap<String, Vec<u8>>) -> Self {
        MemoryLoader { files }
    }
}

impl SourceLoader for MemoryLoader {
    fn load(&self, relative: &str) -> Result<Vec<u8>, String> {
        if !Path::new(relative)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(format!("{relative} is not a path inside the repo"));
        }
        self.files.get(relative).cloned().ok_or_else(|| {
            format!("{relative} does not exist in the repo (or is not a regular file)")
        })
    }
}

/// The stdlib modules users import by name, embedded in the binary.
pub const STDLIB: &[(&str, &str)] = &[
    ("matrix", include_str!("../../stdlib/matrix.rhai")),
    ("cargo", include_str!("../../stdlib/cargo.rhai")),
    ("make", include_str!("../../stdlib/make.rhai")),
    ("python", include_str!("../../stdlib/python.rhai")),
];

pub(super) fn standard_package() -> SharedModule {
    static PACKAGE: OnceLock<SharedModule> = OnceLock::new();
    PACKAGE
        .get_or_init(|| StandardPackage::new().as_shared_module())
        .clone()
}

/// The stdlib compiled once per process. The modules are our own code, so
/// they are compiled without limits; their functions run under the caller's.
pub(super) fn stdlib_modules() -> &'static HashMap<&'static str, SharedModule> {
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

/// Resolves `import` to the stdlib or to files inside the repo, each module
/// loaded once per evaluation.
pub(super) struct Resolver {
    loader: Option<Arc<dyn SourceLoader>>,
    loaded: Mutex<HashMap<String, SharedModule>>,
    /// Modules being evaluated now: importing one of them again is a cycle.
    loading: Mutex<Vec<String>>,
    sources: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Resolver {
    /// A resolver that reads repo files through `loader` and records each
    /// file's text in `sources`, for diagnostics.
    pub(super) fn new(
        loader: Option<Arc<dyn SourceLoader>>,
        sources: Arc<Mutex<BTreeMap<String, String>>>,
    ) -> Resolver {
        Resolver {
            loader,
            loaded: Mutex::new(HashMap::new()),
            loading: Mutex::new(Vec::new()),
            sources,
        }
    }
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
        if let Some(why) = unsafe_relative_path(&file) {
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
            let (line, column) = byte_line_column(e.as_bytes(), e.utf8_error().valid_up_to());
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
