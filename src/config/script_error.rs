//! A script's errors as users read them: placed in the file they come from
//! (the script, an imported file, or the user's call into the stdlib), and
//! worded in our terms where Rhai's would puzzle a user. Kept apart from the
//! sandbox that raises them, since the wording is most of it.

use super::limits::{Limits, STOP_MEMORY, STOP_TIME};
use super::resolver::{stdlib_modules, STDLIB};
use super::words::type_in_words;
use rhai::{EvalAltResult, ParseError, Position};

/// A syntax or runtime error of a script, placed in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl ScriptError {
    pub(super) fn from_parse(file: &str, error: ParseError) -> ScriptError {
        let position = error.position();
        ScriptError {
            file: file.to_string(),
            line: position.line(),
            column: position.position(),
            message: format!("syntax error: {}", parse_message(&error)),
        }
    }

    pub(super) fn from_eval(file: &str, error: EvalAltResult, limits: &Limits) -> ScriptError {
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

pub(super) fn parse_message(error: &ParseError) -> String {
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
        E::ErrorFunctionNotFound(signature, _) => function_not_found(signature),
        E::ErrorMismatchDataType(expected, found, _)
        | E::ErrorMismatchOutputType(expected, found, _) => {
            match (expected.is_empty(), found.is_empty()) {
                (false, false) => format!(
                    "expected {}, found {}",
                    type_in_words(expected),
                    type_in_words(found)
                ),
                (false, true) => format!("expected {}", type_in_words(expected)),
                _ => format!("found {}, which does not fit here", type_in_words(found)),
            }
        }
        E::ErrorIndexingType(what, _) => indexing(what),
        E::ErrorFor(_) => {
            "a for loop needs something to go through: an array, a range, a string or a map's keys"
                .to_string()
        }
        E::ErrorPropertyNotFound(name, _) => format!("no property {name}"),
        E::ErrorDotExpr(text, _) => property_error(text),
        E::ErrorVariableNotFound(name, _) => format!("no variable {name}"),
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

/// Rhai's `name (i64, &str | ImmutableString | String)` in words: which
/// function (or operator, property, index) does not take these values.
fn function_not_found(signature: &str) -> String {
    let (name, types) = match signature.find(" (") {
        Some(at) if signature.ends_with(')') => {
            (&signature[..at], &signature[at + 2..signature.len() - 1])
        }
        _ => return format!("no function {signature}"),
    };
    let types: Vec<String> = types
        .split(", ")
        .filter(|t| !t.trim().is_empty())
        .map(type_in_words)
        .collect();
    let values = match types.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    if let Some(property) = name.strip_prefix("get$") {
        return format!("{values} has no property {property}");
    }
    if let Some(property) = name.strip_prefix("set$") {
        return format!("cannot set the property {property} of {}", first(&types));
    }
    if name.starts_with("index$") {
        let index = types.get(1).map_or("nothing", String::as_str);
        return format!("cannot index {} with {index}", first(&types));
    }
    if !name.chars().any(|c| c.is_alphanumeric() || c == '_') {
        return format!("cannot apply {name} to {values}");
    }
    if types.is_empty() {
        format!("no function {name} that takes no arguments")
    } else {
        format!("no function {name} that takes ({})", types.join(", "))
    }
}

fn first(types: &[String]) -> &str {
    types.first().map_or("nothing", String::as_str)
}

/// Rhai's `i64 [&str | ImmutableString | String]` (and `... = type` for an
/// assignment) in words.
fn indexing(what: &str) -> String {
    let Some((target, rest)) = what.split_once(" [") else {
        return format!("{} cannot be indexed", type_in_words(what));
    };
    let index = rest.split(']').next().unwrap_or_default();
    format!(
        "cannot index {} with {}",
        type_in_words(target),
        type_in_words(index)
    )
}

/// Rhai's "Unknown property 'foo' - a getter is not registered for type
/// 'i64'" (and its setter twin) in words.
fn property_error(text: &str) -> String {
    let quoted = |after: &str| -> Option<&str> {
        let rest = &text[text.find(after)? + after.len()..];
        rest.split('\'').next()
    };
    let (Some(property), Some(of)) = (quoted("property '"), quoted("type '")) else {
        return text.to_string();
    };
    if text.starts_with("No writable property") {
        format!(
            "cannot set the property {property} of {}",
            type_in_words(of)
        )
    } else {
        format!("{} has no property {property}", type_in_words(of))
    }
}
