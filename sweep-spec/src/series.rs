//! The series of a sweep: its extra axes (any TrainConfig field by dotted path, `lr`,
//! `modsync.lambda_s`) and its variants (named sets of settings that belong together, such as an
//! ablation row), validated and combined.
//!
//! A series is one variant (or none) with one value of every axis. `grid::expand_jobs`
//! crosses each series with pdes × methods × widths × seeds. Its label (`jobs.series`) is how
//! curves, the dashboard and SQL tell the settings apart: the variant's name, then `path=value`
//! per axis in the spec's order, space-separated (`sparsity_only lr=0.003`); empty for a sweep
//! with neither, which therefore looks as it did before axes existed.
//!
//! The rules, each error naming its field (`axes."modsync.lambda_s"[2]`, `variants[1].name`):
//! - an axis path names a TrainConfig field at any depth, not one that the four grid axes own,
//!   nor one that the base config sets or another axis overlaps (`modsync` and
//!   `modsync.lambda_s`); its values are a non-empty JSON array with no null and no repeats;
//! - a variant has a unique name (the characters of a sweep name) and a JSON object of
//!   TrainConfig fields that sets nothing that the base config or an axis sets;
//! - no two series give the same configs (a variant that repeats another).
//!
//! The values themselves are checked by trainer-core's rules when the configs are built, and
//! [`Series::locate`] turns the field of such an error back into the axis or variant it came
//! from.

use std::collections::BTreeMap;

use modsync_proto::{GridAxis, GridVariant, SweepSpec};
use serde_json::{Map, Value};
use trainer_core::TrainConfig;

use crate::field::{
    AXIS_FIELDS, FieldError, check_identifier, check_shape, key_name, overlay, quoted,
};

/// Most extra axes plus variants' fields: beyond this a sweep is not a grid but a list.
pub const MAX_AXES: usize = 32;
/// Most variants in one sweep.
pub const MAX_VARIANTS: usize = 1_000;
/// The axis name under which a job's variant is stored in `job_axes`.
pub const VARIANT_AXIS: &str = "variant";

/// One combination of a variant and axis values.
#[derive(Debug, Clone)]
pub struct Series {
    /// `jobs.series`: see the module docs.
    pub label: String,
    /// (axis, value) rows of `job_axes`: [`VARIANT_AXIS`] first when there is a variant, then
    /// each axis path with its value (strings as they are, anything else as JSON).
    pub settings: Vec<(String, String)>,
    /// What is laid over the base config (nested like TrainConfig's JSON).
    overlay: Map<String, Value>,
    /// Where each part of the overlay came from: (TrainConfig path, spec field).
    origins: Vec<(String, String)>,
}

impl Series {
    /// The series of a sweep without axes or variants.
    fn plain() -> Self {
        Self {
            label: String::new(),
            settings: vec![],
            overlay: Map::new(),
            origins: vec![],
        }
    }

    /// `base` (the complete JSON of the base config) with this series' settings laid over it.
    pub fn apply(&self, base: &Value) -> Value {
        let mut config = base.clone();
        overlay(&mut config, Value::Object(self.overlay.clone()));
        config
    }

    /// The spec field of a TrainConfig field path that this series sets (`lr` →
    /// `axes.lr[1]`, `modsync.mode` → `variants[0].modsync.mode`); `None` for a field it does
    /// not set.
    pub fn locate(&self, config_field: &str) -> Option<String> {
        self.origins.iter().find_map(|(path, field)| {
            if config_field == path {
                Some(field.clone())
            } else if let Some(rest) = config_field.strip_prefix(&format!("{path}.")) {
                Some(format!("{field}.{rest}"))
            } else {
                path.starts_with(&format!("{config_field}."))
                    .then(|| field.clone())
            }
        })
    }
}

/// The series of `spec`: every combination of its variants (in order) and axis values (the
/// first axis outermost). One plain series when it has neither. `base` is the base config's
/// own object (the fields it sets), `shape` every TrainConfig field with its default.
pub fn build(
    spec: &SweepSpec,
    base: &Map<String, Value>,
    shape: &Value,
) -> Result<Vec<Series>, FieldError> {
    if spec.axes.len() > MAX_AXES {
        return Err(FieldError::new(
            "axes",
            format!("at most {MAX_AXES} axes, got {}", spec.axes.len()),
        ));
    }
    if spec.variants.len() > MAX_VARIANTS {
        return Err(FieldError::new(
            "variants",
            format!(
                "at most {MAX_VARIANTS} variants, got {}",
                spec.variants.len()
            ),
        ));
    }
    let base_paths = leaf_paths(base, shape, "");
    let axes = spec
        .axes
        .iter()
        .enumerate()
        .map(|(i, axis)| parse_axis(i, axis, &spec.axes, &base_paths, shape))
        .collect::<Result<Vec<_>, _>>()?;
    let axis_paths: Vec<&str> = spec.axes.iter().map(|a| a.path.as_str()).collect();
    let variants = spec
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| parse_variant(i, v, &spec.variants, &base_paths, &axis_paths, shape))
        .collect::<Result<Vec<_>, _>>()?;

    let mut all = if variants.is_empty() {
        vec![Series::plain()]
    } else {
        variants
    };
    for axis in &axes {
        all = all
            .iter()
            .flat_map(|series| axis.values.iter().map(move |v| with_value(series, axis, v)))
            .collect();
    }
    Ok(all)
}

/// How many series `spec` has, without building them (for the job limit), saturating.
pub fn count(spec: &SweepSpec) -> usize {
    spec.axes
        .iter()
        .map(|a| match serde_json::from_str::<Value>(&a.values_json) {
            Ok(Value::Array(values)) => values.len().max(1),
            _ => 1,
        })
        .fold(spec.variants.len().max(1), usize::saturating_mul)
}

/// An axis, checked.
struct Axis {
    path: String,
    /// Its spec field without the index: `axes.lr`, `axes."modsync.lambda_s"`.
    field: String,
    values: Vec<Value>,
}

/// `series` with `axis` set to `value` (the value's index is found for the origin).
fn with_value(series: &Series, axis: &Axis, value: &Value) -> Series {
    let index = axis.values.iter().position(|v| v == value).unwrap_or(0);
    let mut next = series.clone();
    let text = value_text(value);
    if !next.label.is_empty() {
        next.label.push(' ');
    }
    next.label.push_str(&format!("{}={text}", axis.path));
    next.settings.push((axis.path.clone(), text));
    let mut nested = value.clone();
    for key in axis.path.rsplit('.') {
        let mut object = Map::new();
        object.insert(key.to_string(), nested);
        nested = Value::Object(object);
    }
    if let Value::Object(object) = nested {
        let mut overlay_value = Value::Object(std::mem::take(&mut next.overlay));
        overlay(&mut overlay_value, Value::Object(object));
        if let Value::Object(o) = overlay_value {
            next.overlay = o;
        }
    }
    next.origins
        .push((axis.path.clone(), format!("{}[{index}]", axis.field)));
    next
}

/// A value as stored in `job_axes` and shown in a label: a string as it is, anything else as
/// compact JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The spec field of axis `path`: quoted when it has a dot, as TOML writes such a key.
fn axis_field(path: &str) -> String {
    if path.contains('.') {
        format!("axes.{}", quoted(&path))
    } else {
        format!("axes.{}", key_name(path))
    }
}

fn parse_axis(
    index: usize,
    axis: &GridAxis,
    all: &[GridAxis],
    base_paths: &[String],
    shape: &Value,
) -> Result<Axis, FieldError> {
    let field = axis_field(&axis.path);
    let bad = |problem: String| Err(FieldError::new(field.clone(), problem));
    check_path(&axis.path, shape).map_err(|p| FieldError::new(field.clone(), p))?;
    if let Some(set) = base_paths.iter().find(|p| overlaps(p, &axis.path)) {
        return bad(format!(
            "is also set by the base config ({set}; [train] in a sweep file): set it in one place"
        ));
    }
    if let Some(other) = all[..index].iter().find(|a| overlaps(&a.path, &axis.path)) {
        return bad(format!(
            "overlaps the axis {}: a field can be swept by one axis only",
            quoted(&other.path)
        ));
    }
    let values = match serde_json::from_str::<Value>(&axis.values_json) {
        Ok(Value::Array(values)) => values,
        Ok(_) => return bad("must be an array of values".into()),
        Err(e) => return bad(format!("not valid JSON: {e}")),
    };
    if values.is_empty() {
        return bad("must list at least one value".into());
    }
    let default = field_at(shape, &axis.path);
    for (i, v) in values.iter().enumerate() {
        if v.is_null() && !default.is_some_and(Value::is_null) {
            return Err(FieldError::new(
                format!("{field}[{i}]"),
                "must be a finite value (null, NaN and infinities are not allowed)",
            ));
        }
        if let Some(first) = values[..i].iter().position(|x| x == v) {
            return Err(FieldError::new(
                format!("{field}[{i}]"),
                format!("{} repeats {field}[{first}]", quoted(v)),
            ));
        }
        if let (Value::Object(inner), Some(d @ Value::Object(_))) = (v, default) {
            check_shape(inner, d, &format!("{field}[{i}]"))?;
        }
    }
    Ok(Axis {
        path: axis.path.clone(),
        field,
        values,
    })
}

fn parse_variant(
    index: usize,
    variant: &GridVariant,
    all: &[GridVariant],
    base_paths: &[String],
    axis_paths: &[&str],
    shape: &Value,
) -> Result<Series, FieldError> {
    let field = format!("variants[{index}]");
    check_identifier(&variant.name).map_err(|p| FieldError::new(format!("{field}.name"), p))?;
    if let Some(first) = all[..index].iter().position(|v| v.name == variant.name) {
        return Err(FieldError::new(
            format!("{field}.name"),
            format!("{} repeats variants[{first}].name", quoted(&variant.name)),
        ));
    }
    let settings = if variant.settings_json.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str::<Value>(&variant.settings_json) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                return Err(FieldError::new(
                    field,
                    "must be a table of TrainConfig fields",
                ));
            }
            Err(e) => return Err(FieldError::new(field, format!("not valid JSON: {e}"))),
        }
    };
    if let Some((key, axis)) = AXIS_FIELDS.iter().find(|(f, _)| settings.contains_key(*f)) {
        return Err(FieldError::new(
            format!("{field}.{key}"),
            format!("is set by the `{axis}` axis; remove it from the variant"),
        ));
    }
    check_shape(&settings, shape, &field)?;
    let paths = leaf_paths(&settings, shape, "");
    for path in &paths {
        let here = format!("{field}.{path}");
        if let Some(set) = base_paths.iter().find(|p| overlaps(p, path)) {
            return Err(FieldError::new(
                here,
                format!(
                    "is also set by the base config ({set}; [train] in a sweep file): set it in one place"
                ),
            ));
        }
        if let Some(axis) = axis_paths.iter().find(|a| overlaps(a, path)) {
            return Err(FieldError::new(
                here,
                format!(
                    "is also swept by the axis {}: set it in one place",
                    quoted(axis)
                ),
            ));
        }
    }
    let origins = paths
        .iter()
        .map(|p| (p.clone(), format!("{field}.{p}")))
        .collect();
    Ok(Series {
        label: variant.name.clone(),
        settings: vec![(VARIANT_AXIS.to_string(), variant.name.clone())],
        overlay: settings,
        origins,
    })
}

/// `path` names a TrainConfig field that an extra axis may sweep: dot-separated keys, each
/// present in `shape` at its depth, the first not one of the grid's own axes.
fn check_path(path: &str, shape: &Value) -> Result<(), String> {
    if path.is_empty() {
        return Err("the path must not be empty".into());
    }
    let first = path.split('.').next().unwrap_or("");
    if let Some((_, axis)) = AXIS_FIELDS.iter().find(|(f, _)| *f == first) {
        return Err(format!(
            "is the grid's `{axis}` axis; list its values there"
        ));
    }
    let mut at = shape;
    for (depth, key) in path.split('.').enumerate() {
        let Value::Object(known) = at else {
            return Err(format!("{} has no field {}", quoted(&path), quoted(&key)));
        };
        let Some(next) = known.get(key) else {
            let names: Vec<&str> = known
                .keys()
                .map(String::as_str)
                .filter(|k| depth > 0 || !AXIS_FIELDS.iter().any(|(f, _)| f == k))
                .collect();
            return Err(format!(
                "unknown field {} (known here: {})",
                quoted(&key),
                names.join(", ")
            ));
        };
        at = next;
    }
    Ok(())
}

/// The value at dotted `path` in `json`.
fn field_at<'a>(json: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(json, |at, key| at.get(key))
}

/// The dotted paths of the settings in `object`: into a nested table where TrainConfig has one
/// (so `modsync = { mode = … }` sets `modsync.mode`, not all of `modsync`), whole values
/// elsewhere.
fn leaf_paths(object: &Map<String, Value>, shape: &Value, prefix: &str) -> Vec<String> {
    let mut out = vec![];
    for (key, value) in object {
        let path = format!("{prefix}{key}");
        match (value, shape.get(key)) {
            (Value::Object(inner), Some(inner_shape @ Value::Object(_))) => {
                out.extend(leaf_paths(inner, inner_shape, &format!("{path}.")));
            }
            _ => out.push(path),
        }
    }
    out
}

/// One path is the other or contains it.
fn overlaps(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}.")) || b.starts_with(&format!("{a}."))
}

/// Refuses two series whose configs are the same (`configs[i]` is series `i`'s base config),
/// naming the later one's field.
pub fn check_distinct(series: &[Series], configs: &[TrainConfig]) -> Result<(), FieldError> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, config) in configs.iter().enumerate() {
        let json = serde_json::to_string(config).expect("TrainConfig serialises to JSON");
        if let Some(&first) = seen.get(&json) {
            let field = series[i]
                .origins
                .first()
                .map_or_else(|| "variants".to_string(), |(_, f)| variant_of(f));
            return Err(FieldError::new(
                field,
                format!(
                    "series {} gives the same configs as series {}: every job would repeat",
                    quoted(&series[i].label),
                    quoted(&series[first].label)
                ),
            ));
        }
        seen.insert(json, i);
    }
    Ok(())
}

/// `variants[2]` of a field `variants[2].modsync.mode`; other fields as they are.
fn variant_of(field: &str) -> String {
    match field.strip_prefix("variants[") {
        Some(rest) => format!("variants[{}", rest.split('.').next().unwrap_or(rest)),
        None => field.to_string(),
    }
}

/// The axes' paths that take values at all (for the spec's stored JSON): each path with its
/// values, in order.
pub fn axes_json(spec: &SweepSpec) -> Value {
    let mut axes = Map::new();
    for axis in &spec.axes {
        let values = serde_json::from_str(&axis.values_json).unwrap_or(Value::Null);
        axes.insert(axis.path.clone(), values);
    }
    Value::Object(axes)
}

/// The variants for the spec's stored JSON: `[{name, settings}]`.
pub fn variants_json(spec: &SweepSpec) -> Value {
    Value::Array(
        spec.variants
            .iter()
            .map(|v| {
                let settings =
                    serde_json::from_str(&v.settings_json).unwrap_or(Value::Object(Map::new()));
                serde_json::json!({ "name": v.name, "settings": settings })
            })
            .collect(),
    )
}
