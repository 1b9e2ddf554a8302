//! Which build's results a `get` fetches: of the candidates, the one whose
//! value expressions (evaluated in the sandbox with `build` in scope) give
//! the greatest values, compared in order like a tuple.

use super::limits::Limits;
use super::sandbox::{on_sandbox_thread, Sandbox};
use rhai::Dynamic;
use std::cmp::Ordering;

/// A value an expression gave, in the forms that compare.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl Key {
    fn of(value: &Dynamic) -> Result<Key, String> {
        if let Ok(i) = value.as_int() {
            Ok(Key::Number(i as f64))
        } else if let Ok(f) = value.as_float() {
            Ok(Key::Number(f))
        } else if let Ok(b) = value.as_bool() {
            Ok(Key::Bool(b))
        } else if let Ok(s) = value.as_immutable_string_ref() {
            Ok(Key::Text(s.to_string()))
        } else {
            Err(format!(
                "gave {}, which cannot be compared (use a number, a string or a bool)",
                super::words::describe_dynamic(value)
            ))
        }
    }

    fn compare(&self, other: &Key) -> Result<Ordering, String> {
        match (self, other) {
            (Key::Number(a), Key::Number(b)) => Ok(a.partial_cmp(b).unwrap_or(Ordering::Equal)),
            (Key::Text(a), Key::Text(b)) => Ok(a.cmp(b)),
            (Key::Bool(a), Key::Bool(b)) => Ok(a.cmp(b)),
            (a, b) => Err(format!(
                "gave values of different kinds for different builds ({a:?} and {b:?})"
            )),
        }
    }
}

/// The index of the candidate (each a JSON map, the `build` of the
/// expressions) that gives the greatest values; `None` when there are none.
/// On a tie the later candidate wins.
pub fn choose_build(
    candidates: Vec<serde_json::Value>,
    values: Vec<String>,
) -> Result<Option<usize>, String> {
    on_sandbox_thread(move || choose_on_thread(&candidates, &values))?
}

fn choose_on_thread(
    candidates: &[serde_json::Value],
    values: &[String],
) -> Result<Option<usize>, String> {
    let sandbox = Sandbox::new(&Limits::default(), None);
    let mut compiled = Vec::new();
    for expression in values {
        let ast = sandbox
            .compile_expression(expression, &["build"])
            .map_err(|e| format!("value expression `{expression}`: {e}"))?;
        compiled.push((expression, ast));
    }
    let mut best: Option<(usize, Vec<Key>)> = None;
    for (index, candidate) in candidates.iter().enumerate() {
        let build =
            rhai::serde::to_dynamic(candidate).map_err(|e| format!("the build as a value: {e}"))?;
        let mut keys = Vec::new();
        for (expression, ast) in &compiled {
            let value = sandbox
                .eval_expression(ast, vec![("build", build.clone())])
                .map_err(|e| format!("value expression `{expression}`: {e}"))?;
            keys.push(Key::of(&value).map_err(|e| format!("value expression `{expression}` {e}"))?);
        }
        let better = match &best {
            None => true,
            Some((_, current)) => {
                let mut order = Ordering::Equal;
                for (a, b) in keys.iter().zip(current) {
                    order = a.compare(b)?;
                    if order != Ordering::Equal {
                        break;
                    }
                }
                order != Ordering::Less
            }
        };
        if better {
            best = Some((index, keys));
        }
    }
    Ok(best.map(|(index, _)| index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn builds() -> Vec<serde_json::Value> {
        vec![
            json!({ "number": 1, "revision": "b", "parameters": { "tier": "2" } }),
            json!({ "number": 3, "revision": "a", "parameters": { "tier": "1" } }),
            json!({ "number": 2, "revision": "c", "parameters": { "tier": "2" } }),
        ]
    }

    #[test]
    fn the_greatest_values_win_in_order() {
        assert_eq!(
            choose_build(builds(), vec!["build.number".into()]),
            Ok(Some(1))
        );
        assert_eq!(
            choose_build(builds(), vec!["build.revision".into()]),
            Ok(Some(2))
        );
        assert_eq!(
            choose_build(
                builds(),
                vec!["build.parameters.tier".into(), "-build.number".into()]
            ),
            Ok(Some(0))
        );
        assert_eq!(
            choose_build(Vec::new(), vec!["build.number".into()]),
            Ok(None)
        );
    }

    #[test]
    fn bad_expressions_say_so() {
        let error = choose_build(builds(), vec!["build.number +".into()]).unwrap_err();
        assert!(
            error.starts_with("value expression `build.number +`"),
            "{error}"
        );
        let error = choose_build(builds(), vec!["[build.number]".into()]).unwrap_err();
        assert!(error.contains("cannot be compared"), "{error}");
        let error = choose_build(
            builds(),
            vec!["if build.number == 3 { \"x\" } else { 1 }".into()],
        )
        .unwrap_err();
        assert!(error.contains("different kinds"), "{error}");
    }
}
