//! How diagnostics name things: values and types in words ("an integer",
//! never `i64` or `&str | ImmutableString | String`), lists of names, and
//! the nearest name to a misspelt one. Every message that names a type or
//! suggests a name goes through here, so they all say it the same way.

use rhai::Dynamic;
use serde_json::Value;

/// "a string", "an integer", ... for a config value, in messages.
pub fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (`()`)",
        Value::Bool(_) => "a bool",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a map",
    }
}

/// "an integer", "a function pointer", ... for a script value, in messages.
pub fn describe_dynamic(value: &Dynamic) -> String {
    match value.type_name() {
        "()" => "nothing (`()`)".into(),
        other => type_in_words(other),
    }
}

/// A Rhai type name as users read it: `i64` is "an integer",
/// `&str | ImmutableString | String` "a string", `()` "nothing".
pub fn type_in_words(name: &str) -> String {
    let name = name.trim();
    let name = name.strip_prefix("rhai::").unwrap_or(name);
    let words = match name {
        "()" => "nothing",
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" | "INT"
        | "int" => "an integer",
        "f32" | "f64" | "FLOAT" | "float" => "a float",
        "bool" => "a bool",
        "char" => "a character",
        "string" | "String" | "&str" | "str" | "ImmutableString" => "a string",
        "array" | "Array" => "an array",
        "map" | "Map" => "a map",
        "blob" | "Blob" => "a blob",
        "Fn" | "FnPtr" => "a function pointer",
        "timestamp" | "Instant" => "a timestamp",
        "range" | "range=" | "ExclusiveRange" | "InclusiveRange" => "a range",
        "Dynamic" | "?" => "any value",
        other if other.contains("ImmutableString") => "a string",
        other if other.starts_with("Range<") || other.starts_with("RangeInclusive<") => "a range",
        other => return format!("a value of type `{other}`"),
    };
    words.to_string()
}

/// Names quoted and joined: `"a", "b", "c"`.
pub fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name nearest to a misspelt one, within two edits.
pub fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

/// A help line for a name that is not among `known`: the nearest one, then
/// all of them. `what` names the list, e.g. "defined schedulers".
pub fn suggest(name: &str, known: &[String], what: &str) -> String {
    match closest(name, known.iter().map(String::as_str)) {
        Some(near) => format!("did you mean \"{near}\"? {what}: {}", quoted(known)),
        None => format!("{what}: {}", quoted(known)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rhai_types_are_named_in_words() {
        let named: Vec<String> = [
            "i64",
            "&str | ImmutableString | String",
            "ImmutableString",
            "Array",
            "Map",
            "bool",
            "f64",
            "()",
            "char",
            "Fn",
            "Custom",
        ]
        .iter()
        .map(|t| type_in_words(t))
        .collect();
        assert_eq!(
            named,
            [
                "an integer",
                "a string",
                "a string",
                "an array",
                "a map",
                "a bool",
                "a float",
                "nothing",
                "a character",
                "a function pointer",
                "a value of type `Custom`"
            ]
        );
    }

    #[test]
    fn near_names_are_suggested() {
        assert_eq!(closest("comands", ["commands", "deps"]), Some("commands"));
        assert_eq!(closest("zzz", ["commands", "deps"]), None);
        let known = vec!["force".to_string(), "nightly".to_string()];
        assert_eq!(
            suggest("forse", &known, "defined schedulers"),
            r#"did you mean "force"? defined schedulers: "force", "nightly""#
        );
        assert_eq!(
            suggest("zzz", &known, "defined schedulers"),
            r#"defined schedulers: "force", "nightly""#
        );
    }
}
