//! What the sweep's validation (`grid.rs`) and its series (`series.rs`) share: the error that
//! names a field, how a value is quoted in it, the names that become ids, and the checks and
//! merging of TrainConfig-shaped JSON.

use std::fmt;

use serde_json::{Map, Value};

/// Longest sweep name (it is also the sweep id).
pub const MAX_NAME_LEN: usize = 128;
/// Longest value quoted back in an error message.
pub const MAX_QUOTED: usize = 64;

/// Fields of `TrainConfig` that the grid axes own; the base config may not set them.
pub(crate) const AXIS_FIELDS: [(&str, &str); 4] = [
    ("pde", "pdes"),
    ("method", "methods"),
    ("width", "widths"),
    ("seed", "seeds"),
];

/// A sweep value that cannot be used, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {problem}")]
pub struct FieldError {
    /// Path of the field in the sweep: `name`, `pdes[1]`, `base_config.pde_options.nc`, …
    pub field: String,
    /// What is wrong with it, in words.
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// `v` for an error message: its `Debug` form, cut to [`MAX_QUOTED`] characters.
pub fn quoted(v: &impl fmt::Debug) -> String {
    let s = format!("{v:?}");
    match s.char_indices().nth(MAX_QUOTED) {
        None => s,
        Some((end, _)) => format!("{}…({} chars)", &s[..end], s.chars().count()),
    }
}

/// The rule for names that become ids (a sweep's, a variant's): 1–[`MAX_NAME_LEN`] characters
/// from `[A-Za-z0-9._-]`, starting with a letter or digit, so they are safe in URLs, file names
/// and shell arguments.
pub(crate) fn check_identifier(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("must be at most {MAX_NAME_LEN} characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{} must start with a letter or digit",
            quoted(&name)
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{} contains {c:?}; use letters, digits, '.', '_' and '-'",
            quoted(&name)
        ));
    }
    Ok(())
}

/// A JSON key as it appears in a field path: cut like a quoted value when it is very long.
pub(crate) fn key_name(key: &str) -> String {
    if key.chars().count() <= MAX_QUOTED {
        key.to_string()
    } else {
        quoted(&key)
    }
}

/// Refuses keys that `TrainConfig` does not have (at any depth) and `null` where the default is
/// not `null`. serde would refuse both too, but with a message that does not name the field
/// (unknown keys) or that does not say why (`null` is what NaN becomes in JSON).
pub(crate) fn check_shape(
    object: &Map<String, Value>,
    defaults: &Value,
    path: &str,
) -> Result<(), FieldError> {
    let Value::Object(known) = defaults else {
        return Ok(());
    };
    for (key, value) in object {
        let field = format!("{path}.{}", key_name(key));
        let Some(default) = known.get(key) else {
            let mut names: Vec<&str> = known.keys().map(String::as_str).collect();
            names.retain(|k| !AXIS_FIELDS.iter().any(|(f, _)| f == k));
            return Err(FieldError::new(
                field,
                format!("unknown field (known: {})", names.join(", ")),
            ));
        };
        match (value, default) {
            (Value::Null, d) if !d.is_null() => {
                return Err(FieldError::new(
                    field,
                    "must be a finite value (null, NaN and infinities are not allowed)",
                ));
            }
            (Value::Object(inner), d @ Value::Object(_)) => check_shape(inner, d, &field)?,
            _ => {}
        }
    }
    Ok(())
}

/// Replaces the values of `base` by those of `over`, object by object (other values whole).
pub fn overlay(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(slot) => overlay(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}
