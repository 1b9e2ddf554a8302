//! `accept` expressions: compiled once each, evaluated against every worker's
//! features, and read for the feature names they use, so that a feature no
//! worker has (most often a misspelt one) can be pointed out.

use super::sandbox::Sandbox;
use super::words::{closest, quoted, type_in_words};
use std::collections::{BTreeSet, HashMap};

/// Accept expressions compiled once each, evaluated per worker with
/// `features` (the worker's feature map) and `worker` (its name) in scope,
/// and each expression's answer for a worker kept: a config whose builders
/// share an expression evaluates it once per worker, not once per builder.
/// An expression is looked up once by its text ([`AcceptCache::slot`]), and
/// its answers by slot and the worker's index. A cache lives for one
/// evaluation and one list of workers.
#[derive(Default)]
pub(super) struct AcceptCache {
    slots: HashMap<String, usize>,
    expressions: Vec<Expression>,
}

/// One distinct accept expression: compiled when first needed, and its
/// answer for each worker (by index) once asked.
struct Expression {
    text: String,
    compiled: Option<Result<rhai::AST, String>>,
    answers: Vec<Option<Result<bool, String>>>,
}

impl AcceptCache {
    /// The slot of an expression, for [`AcceptCache::answer`].
    pub(super) fn slot(&mut self, expression: &str) -> usize {
        if let Some(&slot) = self.slots.get(expression) {
            return slot;
        }
        let slot = self.expressions.len();
        self.expressions.push(Expression {
            text: expression.to_string(),
            compiled: None,
            answers: Vec::new(),
        });
        self.slots.insert(expression.to_string(), slot);
        slot
    }

    /// Whether the expression in `slot` holds for worker number `index`
    /// (named `worker`, with `features`): evaluated the first time only.
    pub(super) fn answer(
        &mut self,
        sandbox: &Sandbox,
        slot: usize,
        index: usize,
        worker: &str,
        features: &rhai::Dynamic,
    ) -> Result<bool, String> {
        let expression = &mut self.expressions[slot];
        if expression.text == "true" {
            return Ok(true);
        }
        if let Some(Some(answer)) = expression.answers.get(index) {
            return answer.clone();
        }
        let answer = expression.eval_once(sandbox, worker, features);
        if expression.answers.len() <= index {
            expression.answers.resize(index + 1, None);
        }
        expression.answers[index] = Some(answer.clone());
        answer
    }

    /// Whether `expression` holds for a worker; see [`AcceptCache::answer`].
    pub(super) fn eval(
        &mut self,
        sandbox: &Sandbox,
        expression: &str,
        index: usize,
        worker: &str,
        features: &rhai::Dynamic,
    ) -> Result<bool, String> {
        let slot = self.slot(expression);
        self.answer(sandbox, slot, index, worker, features)
    }
}

impl Expression {
    fn eval_once(
        &mut self,
        sandbox: &Sandbox,
        worker: &str,
        features: &rhai::Dynamic,
    ) -> Result<bool, String> {
        let expression = self.text.as_str();
        let compiled = self.compiled.get_or_insert_with(|| {
            sandbox
                .compile_expression(expression, &["features", "worker"])
                .map_err(|message| format!("invalid accept expression `{expression}`: {message}"))
        });
        let compiled = compiled.as_ref().map_err(Clone::clone)?;
        let value = sandbox
            .eval_expression(
                compiled,
                vec![("features", features.clone()), ("worker", worker.into())],
            )
            .map_err(|message| {
                format!(
                    "accept expression `{expression}` failed for worker \"{worker}\": {message}"
                )
            })?;
        value.as_bool().map_err(|found| {
            format!(
                "accept expression `{expression}` must give a bool, but gave {} for worker \"{worker}\"",
                type_in_words(found)
            )
        })
    }
}

/// The workers for which an accept `expression` holds, by name; an
/// expression that fails to compile or to give a bool for one is an error.
pub fn workers_accepting<'w>(
    expression: &str,
    workers: impl IntoIterator<Item = (&'w String, &'w super::spec::Features)>,
    limits: &super::limits::Limits,
) -> Result<Vec<String>, String> {
    let sandbox = Sandbox::new(limits, None);
    let mut cache = AcceptCache::default();
    let mut accepted = Vec::new();
    for (index, (name, features)) in workers.into_iter().enumerate() {
        let value = rhai::serde::to_dynamic(features).unwrap_or(rhai::Dynamic::UNIT);
        if cache.eval(&sandbox, expression, index, name, &value)? {
            accepted.push(name.clone());
        }
    }
    Ok(accepted)
}

/// The feature names an expression reads: `features.name`,
/// `features["name"]`, `features?.name` and `"name" in features`.
pub(super) fn features_named(expression: &str) -> Vec<String> {
    let chars: Vec<char> = expression.chars().collect();
    let word = "features".chars().collect::<Vec<_>>();
    let mut names: Vec<String> = Vec::new();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let skip_spaces = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let quoted_at = |i: usize| -> Option<(String, usize)> {
        let quote = *chars.get(i)?;
        if !matches!(quote, '"' | '\'' | '`') {
            return None;
        }
        let end = chars[i + 1..].iter().position(|&c| c == quote)? + i + 1;
        Some((chars[i + 1..end].iter().collect(), end + 1))
    };
    let mut i = 0;
    while i < chars.len() {
        // A quoted name followed by `in features`.
        if let Some((name, after)) = quoted_at(i) {
            let j = skip_spaces(after);
            let in_features = chars[j..].starts_with(&['i', 'n'])
                && chars.get(j + 2).is_some_and(|c| c.is_whitespace())
                && chars[skip_spaces(j + 2)..].starts_with(&word);
            if in_features {
                names.push(name);
            }
            i = after;
            continue;
        }
        let starts_word = chars[i..].starts_with(&word)
            && (i == 0 || !is_ident(chars[i - 1]))
            && chars.get(i + word.len()).is_none_or(|&c| !is_ident(c));
        if !starts_word {
            i += 1;
            continue;
        }
        let mut j = skip_spaces(i + word.len());
        if chars.get(j) == Some(&'?') {
            j += 1;
        }
        match chars.get(j) {
            Some('.') => {
                let start = skip_spaces(j + 1);
                let mut end = start;
                while end < chars.len() && is_ident(chars[end]) {
                    end += 1;
                }
                if end > start {
                    names.push(chars[start..end].iter().collect());
                }
                i = end.max(j + 1);
            }
            Some('[') => match quoted_at(skip_spaces(j + 1)) {
                Some((name, after)) => {
                    names.push(name);
                    i = after;
                }
                None => i = j + 1,
            },
            _ => i = j,
        }
    }
    let mut seen = BTreeSet::new();
    names.retain(|name| seen.insert(name.clone()));
    names
}

/// For each feature an expression reads that no worker has: the name, and a
/// help line with the nearest feature workers do have. `known` holds every
/// feature name of every worker.
pub(super) fn unknown_features(expression: &str, known: &BTreeSet<&str>) -> Vec<(String, String)> {
    features_named(expression)
        .into_iter()
        .filter(|name| !known.contains(name.as_str()))
        .map(|name| {
            let listed: Vec<String> = known.iter().map(|k| k.to_string()).collect();
            let help = match closest(&name, known.iter().copied()) {
                Some(near) => format!(
                    "did you mean \"{near}\"? the workers' features are {}",
                    quoted(&listed)
                ),
                None if listed.is_empty() => "no worker has any feature".to_string(),
                None => format!("the workers' features are {}", quoted(&listed)),
            };
            (name, help)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_are_read_from_expressions() {
        assert_eq!(
            features_named(
                r#"features.platform == "linux" && features["memory size"] > 2 || "gpu" in features || features?.os != () || my_features.x"#
            ),
            ["platform", "memory size", "gpu", "os"]
        );
        assert_eq!(
            features_named("worker == \"features.x\""),
            Vec::<String>::new()
        );
    }

    #[test]
    fn unknown_features_get_the_nearest_known_one() {
        let linux = BTreeSet::from(["platform"]);
        assert_eq!(
            unknown_features(r#"features.platfrom == "linux""#, &linux),
            [(
                "platfrom".to_string(),
                r#"did you mean "platform"? the workers' features are "platform""#.to_string()
            )]
        );
        assert_eq!(
            unknown_features(r#"features.platform == "linux""#, &linux),
            []
        );
        assert_eq!(
            unknown_features("features.gpu", &BTreeSet::new()),
            [("gpu".to_string(), "no worker has any feature".to_string())]
        );
    }
}
