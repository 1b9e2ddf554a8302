//! The bounds every evaluation runs under, and the words the sandbox's
//! progress hook stops a script with when it passes the deadline or the
//! memory budget. Both the sandbox, which enforces them, and the error
//! messages, which name them, read them from here.

use std::time::Duration;

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

/// Why the progress hook stopped a script.
pub(super) const STOP_TIME: &str = "time";
pub(super) const STOP_MEMORY: &str = "memory";
