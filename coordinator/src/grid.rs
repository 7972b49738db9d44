//! Validating a [`SweepSpec`] and expanding its grid into one [`TrainConfig`] per job.
//!
//! This is a pure function so that the CLI can run exactly the same checks before it submits
//! (and print the same messages) as the coordinator runs when it receives the sweep. Every error
//! names the field it came from (`pdes[1]`, `base_config.lr`, …) because users fix sweep files
//! by the field name, not by reading our code.
//!
//! The rules, in the order they are checked:
//! - `name`: 1–128 characters from `[A-Za-z0-9._-]`, starting with a letter or digit. The sweep id
//!   *is* the name ([`sweep_id`]), so it must be safe in URLs, file names and shell arguments.
//! - each axis (`pdes`, `methods`, `widths`, `seeds`) is non-empty and has no duplicate values;
//!   seeds are `>= 0` (trainer-core seeds are unsigned); the grid has at most [`MAX_JOBS`] jobs.
//! - `base_config_json` is empty (all defaults) or a JSON object whose keys are `TrainConfig`
//!   fields, except `pde`/`method`/`width`/`seed`, which only the axes set. `null` (how NaN and
//!   infinities arrive after a TOML → JSON conversion) is refused where a number belongs.
//! - `max_attempts`: 0 means [`DEFAULT_MAX_ATTEMPTS`] (proto3 cannot tell "unset" from 0, and
//!   `QueryRequest.max_rows` uses the same convention); otherwise at most [`MAX_ATTEMPTS`].
//! - every expanded config passes [`TrainConfig::validate`]: trainer-core owns the PDE and method
//!   names and every range (width, depth and the network's size included), so nothing here
//!   duplicates them; its field names are translated to the spec's (`width` → `widths[2]`).
//!
//! Values quoted back in a message are cut to [`MAX_QUOTED`] characters.

use std::collections::HashSet;
use std::fmt;

use modsync_proto::SweepSpec;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use trainer_core::{ConfigError, TrainConfig};

/// Attempts a job gets when the spec leaves `max_attempts` at 0.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Upper bound on `max_attempts`: beyond this a typo would retry a broken job forever.
pub const MAX_ATTEMPTS: u32 = 1_000;
/// Upper bound on jobs per sweep: the paper's grid is ~1,000; a million would be a typo that
/// fills the store.
pub const MAX_JOBS: usize = 100_000;
/// Longest sweep name (it is also the sweep id).
pub const MAX_NAME_LEN: usize = 128;
/// Longest value quoted back in an error message.
pub const MAX_QUOTED: usize = 64;

/// Fields of `TrainConfig` that the grid axes own; the base config may not set them.
const AXIS_FIELDS: [(&str, &str); 4] = [
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

/// The sweep id of a sweep name. The id is the name itself: [`expand`] only accepts names that
/// are already safe identifiers, so `modsync curves NAME` works without looking anything up.
pub fn sweep_id(name: &str) -> String {
    name.to_string()
}

/// The canonical JSON of a config and its SHA-256 (lower-case hex).
///
/// Canonical means: serialised from the typed struct (every field present, defaults filled in,
/// floats in serde_json's shortest round-trip form, fields in declaration order), so two sweep
/// files that differ only in key order, whitespace or an explicitly written default give the
/// same hash. The hash is what makes a resubmission idempotent (`UNIQUE(sweep_id, config_hash)`).
pub fn canonical_config(config: &TrainConfig) -> (String, String) {
    let json = serde_json::to_string(config).expect("TrainConfig serialises to JSON");
    let hash = Sha256::digest(json.as_bytes());
    (json, hex(&hash))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `max_attempts` of the spec with 0 replaced by the default.
pub fn max_attempts(spec: &SweepSpec) -> Result<u32, FieldError> {
    match spec.max_attempts {
        0 => Ok(DEFAULT_MAX_ATTEMPTS),
        n if n > MAX_ATTEMPTS => Err(FieldError::new(
            "max_attempts",
            format!("must be in 1..={MAX_ATTEMPTS} (0 = default {DEFAULT_MAX_ATTEMPTS}), got {n}"),
        )),
        n => Ok(n),
    }
}

/// Validates `spec` and returns one config per grid point, in the order
/// pde → method → width → seed (the first PDE's first method's smallest listed width first).
pub fn expand(spec: &SweepSpec) -> Result<Vec<TrainConfig>, FieldError> {
    check_name(&spec.name)?;
    let pdes = axis("pdes", &spec.pdes, |p| {
        (!p.trim().is_empty())
            .then_some(())
            .ok_or("must not be empty")
    })?;
    let methods = axis("methods", &spec.methods, |m| {
        (!m.trim().is_empty())
            .then_some(())
            .ok_or("must not be empty")
    })?;
    // Width bounds are trainer-core's (checked per config below).
    let widths = axis("widths", &spec.widths, |_| Ok(()))?;
    let seeds = axis("seeds", &spec.seeds, |&s| {
        (s >= 0).then_some(()).ok_or("must be >= 0")
    })?;
    max_attempts(spec)?;

    let n_jobs = [pdes.len(), methods.len(), widths.len(), seeds.len()]
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .filter(|&n| n <= MAX_JOBS);
    let Some(n_jobs) = n_jobs else {
        return Err(FieldError::new(
            "grid",
            format!(
                "{} pdes × {} methods × {} widths × {} seeds is more than {MAX_JOBS} jobs",
                pdes.len(),
                methods.len(),
                widths.len(),
                seeds.len()
            ),
        ));
    };

    let base = base_config(&spec.base_config_json)?;
    let mut configs = Vec::with_capacity(n_jobs);
    for (ip, pde) in pdes.iter().enumerate() {
        for (im, method) in methods.iter().enumerate() {
            for (iw, &&width) in widths.iter().enumerate() {
                for (is, &&seed) in seeds.iter().enumerate() {
                    // Beyond usize: out of trainer-core's bounds as usize::MAX is.
                    let width = usize::try_from(width).unwrap_or(usize::MAX);
                    let config = TrainConfig {
                        pde: (*pde).clone(),
                        method: (*method).clone(),
                        width,
                        seed: seed as u64, // checked >= 0 above
                        ..base.clone()
                    };
                    config.validate().map_err(|e| locate(e, [ip, im, iw, is]))?;
                    configs.push(config);
                }
            }
        }
    }
    Ok(configs)
}

/// `v` for an error message: its `Debug` form, cut to [`MAX_QUOTED`] characters.
pub fn quoted(v: &impl fmt::Debug) -> String {
    let s = format!("{v:?}");
    match s.char_indices().nth(MAX_QUOTED) {
        None => s,
        Some((end, _)) => format!("{}…({} chars)", &s[..end], s.chars().count()),
    }
}

fn check_name(name: &str) -> Result<(), FieldError> {
    let bad = |problem: String| Err(FieldError::new("name", problem));
    if name.is_empty() {
        return bad("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return bad(format!("must be at most {MAX_NAME_LEN} characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return bad(format!(
            "{} must start with a letter or digit",
            quoted(&name)
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(format!(
            "{} contains {c:?}; use letters, digits, '.', '_' and '-' (the name is the sweep id)",
            quoted(&name)
        ));
    }
    Ok(())
}

/// Checks one axis: non-empty, every value passes `check`, no value repeats.
fn axis<'a, T: Eq + std::hash::Hash + fmt::Debug>(
    name: &str,
    values: &'a [T],
    check: impl Fn(&T) -> Result<(), &'static str>,
) -> Result<Vec<&'a T>, FieldError> {
    if values.is_empty() {
        return Err(FieldError::new(name, "must list at least one value"));
    }
    let mut seen = HashSet::new();
    for (i, v) in values.iter().enumerate() {
        check(v)
            .map_err(|p| FieldError::new(format!("{name}[{i}]"), format!("{}: {p}", quoted(v))))?;
        if !seen.insert(v) {
            let first = values.iter().position(|x| x == v).unwrap_or(0);
            return Err(FieldError::new(
                format!("{name}[{i}]"),
                format!("{} repeats {name}[{first}]", quoted(v)),
            ));
        }
    }
    Ok(values.iter().collect())
}

/// Maps a trainer-core validation error of one expanded config back to the sweep field:
/// an axis value (`widths[2]`) or a base-config field (`base_config.lr`).
fn locate(e: ConfigError, [ip, im, iw, is]: [usize; 4]) -> FieldError {
    let field = match e.field.as_str() {
        "pde" => format!("pdes[{ip}]"),
        "method" => format!("methods[{im}]"),
        "width" => format!("widths[{iw}]"),
        "seed" => format!("seeds[{is}]"),
        other => format!("base_config.{other}"),
    };
    FieldError::new(field, cut(e.problem))
}

/// A message that may quote user input (trainer-core's and serde's do, in full), cut to 512
/// characters.
fn cut(problem: String) -> String {
    const MAX: usize = 512;
    match problem.char_indices().nth(MAX) {
        None => problem,
        Some((end, _)) => format!("{}…", &problem[..end]),
    }
}

/// A JSON key as it appears in a field path: cut like a quoted value when it is very long.
fn key_name(key: &str) -> String {
    if key.chars().count() <= MAX_QUOTED {
        key.to_string()
    } else {
        quoted(&key)
    }
}

/// Parses `base_config_json` into a config with defaults for every missing field.
fn base_config(json: &str) -> Result<TrainConfig, FieldError> {
    if json.trim().is_empty() {
        return Ok(TrainConfig::default());
    }
    let value: Value = serde_json::from_str(json)
        .map_err(|e| FieldError::new("base_config_json", format!("not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(FieldError::new(
            "base_config_json",
            "must be a JSON object of TrainConfig fields",
        ));
    };
    for (field, axis) in AXIS_FIELDS {
        if object.contains_key(field) {
            return Err(FieldError::new(
                format!("base_config.{field}"),
                format!("is set by the `{axis}` axis; remove it from the base config"),
            ));
        }
    }
    let mut config = TrainConfig::every_field_json();
    check_shape(&object, &config, "base_config")?;
    // Laid over every default, not deserialised alone: in a config's JSON an absent
    // `pde_options.reading` means a stored job's `spec_v1`, in a sweep the default reading.
    overlay(&mut config, Value::Object(object));
    serde_path_to_error::deserialize::<_, TrainConfig>(config).map_err(|e| {
        let path = e.path().to_string();
        FieldError::new(format!("base_config.{path}"), cut(e.inner().to_string()))
    })
}

/// Replaces the values of `base` by those of `over`, object by object (other values whole).
fn overlay(base: &mut Value, over: Value) {
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

/// Refuses keys that `TrainConfig` does not have (at any depth) and `null` where the default is
/// not `null`. serde would refuse both too, but with a message that does not name the field
/// (unknown keys) or that does not say why (`null` is what NaN becomes in JSON).
fn check_shape(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SweepSpec {
        SweepSpec {
            name: "tiny".into(),
            pdes: vec!["burgers".into(), "helmholtz2d".into()],
            methods: vec!["adam".into()],
            widths: vec![8, 16],
            seeds: vec![0, 1, 2],
            base_config_json: r#"{"iters": 20, "eval_every": 10, "pde_options": {"nc": 4}}"#.into(),
            max_attempts: 2,
            priority: 0,
        }
    }

    fn field_of(spec: &SweepSpec) -> String {
        match expand(spec) {
            Ok(c) => panic!("expected an error, got {} configs", c.len()),
            Err(e) => e.field,
        }
    }

    #[test]
    fn expands_every_combination_in_order() {
        let configs = expand(&spec()).unwrap();
        assert_eq!(configs.len(), 2 * 2 * 3);
        assert_eq!(
            (configs[0].pde.as_str(), configs[0].width, configs[0].seed),
            ("burgers", 8, 0)
        );
        assert_eq!(
            (
                configs[11].pde.as_str(),
                configs[11].width,
                configs[11].seed
            ),
            ("helmholtz2d", 16, 2)
        );
        assert!(
            configs
                .iter()
                .all(|c| c.iters == 20 && c.pde_options.nc == 4)
        );
        // Fields the base config does not mention keep trainer-core's defaults.
        assert_eq!(configs[0].lr, TrainConfig::default().lr);
    }

    #[test]
    fn empty_base_config_means_defaults() {
        let s = SweepSpec {
            base_config_json: "  ".into(),
            ..spec()
        };
        assert_eq!(expand(&s).unwrap()[0].iters, TrainConfig::default().iters);
    }

    #[test]
    fn canonical_hash_ignores_key_order_and_explicit_defaults() {
        let a = SweepSpec {
            base_config_json: r#"{"iters": 20, "lr": 0.001}"#.into(),
            ..spec()
        };
        let b = SweepSpec {
            base_config_json: r#"{ "lr": 1e-3,  "iters": 20 }"#.into(),
            ..spec()
        };
        let ha: Vec<_> = expand(&a).unwrap().iter().map(canonical_config).collect();
        let hb: Vec<_> = expand(&b).unwrap().iter().map(canonical_config).collect();
        assert_eq!(ha, hb);
        // …and differs as soon as any value differs.
        let c = SweepSpec {
            base_config_json: r#"{"iters": 21, "lr": 0.001}"#.into(),
            ..spec()
        };
        assert_ne!(canonical_config(&expand(&c).unwrap()[0]).1, ha[0].1);
        assert_eq!(ha[0].1.len(), 64);
    }

    /// A sweep that names the first reading (`spec_v1`) expands to exactly the canonical JSON
    /// its jobs were stored with before readings existed — no `reading`, no `boundary_loss` —
    /// so resubmitting an old sweep with it adds nothing. A sweep that names no reading gets
    /// the default (`paper`), written out, so its jobs are new ones.
    #[test]
    fn the_first_reading_keeps_the_canonical_config_of_jobs_stored_before_readings() {
        let with = |json: &str| {
            let spec = SweepSpec {
                base_config_json: json.into(),
                ..spec()
            };
            canonical_config(&expand(&spec).unwrap()[0])
        };
        let old = with(r#"{"iters": 20, "pde_options": {"reading": "spec_v1"}}"#);
        // The first job of spec() (burgers, adam, width 8, seed 0) as stored before 2026-12-06.
        let stored = TrainConfig {
            iters: 20,
            width: 8,
            ..serde_json::from_str("{}").unwrap()
        };
        assert_eq!(old.0, serde_json::to_string(&stored).unwrap());
        assert!(
            !old.0.contains("reading") && !old.0.contains("boundary_loss"),
            "{}",
            old.0
        );

        let default = with(r#"{"iters": 20}"#);
        assert_eq!(
            default,
            with(r#"{"iters": 20, "pde_options": {"reading": "paper"}}"#)
        );
        assert!(default.0.contains(r#""reading":"paper""#), "{}", default.0);
        assert_ne!(default.1, old.1);

        let pooled = with(r#"{"iters": 20, "pde_options": {"boundary_loss": "pooled_mean"}}"#);
        assert!(
            pooled.0.contains(r#""boundary_loss":"pooled_mean""#),
            "{}",
            pooled.0
        );
        assert_ne!(pooled.1, default.1);
    }

    #[test]
    fn rejects_bad_names() {
        for name in ["", "has space", "-dash-first", "a/b", &"x".repeat(129)] {
            let s = SweepSpec {
                name: name.into(),
                ..spec()
            };
            assert_eq!(field_of(&s), "name", "{name:?}");
        }
        assert_eq!(sweep_id("paper-width_sweep.v2"), "paper-width_sweep.v2");
    }

    #[test]
    fn rejects_unknown_pde_and_method_by_index() {
        let mut s = spec();
        s.pdes[1] = "navier_stokes".into();
        assert_eq!(field_of(&s), "pdes[1]");
        let mut s = spec();
        s.methods = vec!["adam".into(), "sgd-ish".into()];
        let e = expand(&s).unwrap_err();
        assert_eq!(e.field, "methods[1]");
        assert!(e.problem.contains("sgd-ish"), "{e}");
    }

    #[test]
    fn rejects_empty_axes_and_empty_values() {
        let mut s = spec();
        s.pdes.clear();
        assert_eq!(field_of(&s), "pdes");
        let mut s = spec();
        s.methods.clear();
        assert_eq!(field_of(&s), "methods");
        let mut s = spec();
        s.widths.clear();
        assert_eq!(field_of(&s), "widths");
        let mut s = spec();
        s.seeds.clear();
        assert_eq!(field_of(&s), "seeds");
        let mut s = spec();
        s.methods = vec!["".into()];
        assert_eq!(field_of(&s), "methods[0]");
    }

    #[test]
    fn rejects_width_zero_and_huge_widths() {
        let mut s = spec();
        s.widths = vec![0];
        assert_eq!(field_of(&s), "widths[0]");
        let mut s = spec();
        s.widths = vec![8, u64::MAX];
        assert_eq!(field_of(&s), "widths[1]");
    }

    #[test]
    fn rejects_negative_seeds() {
        let mut s = spec();
        s.seeds = vec![0, 1, -3];
        assert_eq!(field_of(&s), "seeds[2]");
        s.seeds = vec![i64::MIN];
        assert_eq!(field_of(&s), "seeds[0]");
    }

    #[test]
    fn rejects_duplicate_axis_values() {
        let mut s = spec();
        s.seeds = vec![0, 1, 0];
        let e = expand(&s).unwrap_err();
        assert_eq!(e.field, "seeds[2]");
        assert!(e.problem.contains("seeds[0]"), "{e}");
        let mut s = spec();
        s.pdes = vec!["burgers".into(), "burgers".into()];
        assert_eq!(field_of(&s), "pdes[1]");
        let mut s = spec();
        s.widths = vec![8, 8];
        assert_eq!(field_of(&s), "widths[1]");
    }

    #[test]
    fn rejects_bad_max_attempts_and_defaults_zero() {
        let mut s = spec();
        s.max_attempts = MAX_ATTEMPTS + 1;
        assert_eq!(field_of(&s), "max_attempts");
        s.max_attempts = 0;
        assert_eq!(max_attempts(&s).unwrap(), DEFAULT_MAX_ATTEMPTS);
    }

    #[test]
    fn rejects_huge_grids() {
        let mut s = spec();
        s.seeds = (0..400).collect();
        s.widths = (1..=300).collect();
        assert_eq!(field_of(&s), "grid");
    }

    #[test]
    fn rejects_base_config_that_is_not_an_object() {
        for json in ["[1,2]", "3", "\"iters\"", "{not json", "null"] {
            let s = SweepSpec {
                base_config_json: json.into(),
                ..spec()
            };
            assert_eq!(field_of(&s), "base_config_json", "{json}");
        }
    }

    #[test]
    fn rejects_axis_fields_in_base_config() {
        for key in ["pde", "method", "width", "seed"] {
            let s = SweepSpec {
                base_config_json: format!(r#"{{"{key}": 1}}"#),
                ..spec()
            };
            assert_eq!(field_of(&s), format!("base_config.{key}"));
        }
    }

    #[test]
    fn rejects_unknown_keys_at_any_depth() {
        let s = SweepSpec {
            base_config_json: r#"{"iters": 5, "learning_rate": 0.1}"#.into(),
            ..spec()
        };
        let e = expand(&s).unwrap_err();
        assert_eq!(e.field, "base_config.learning_rate");
        assert!(e.problem.contains("lr"), "lists the known fields: {e}");
        let s = SweepSpec {
            base_config_json: r#"{"pde_options": {"nc": 4, "ncc": 3}}"#.into(),
            ..spec()
        };
        assert_eq!(field_of(&s), "base_config.pde_options.ncc");
    }

    #[test]
    fn rejects_non_finite_and_out_of_range_numbers() {
        // NaN/inf become null in JSON.
        let s = SweepSpec {
            base_config_json: r#"{"lr": null}"#.into(),
            ..spec()
        };
        assert_eq!(field_of(&s), "base_config.lr");
        // A number JSON cannot hold as f64.
        let s = SweepSpec {
            base_config_json: r#"{"lr": 1e999}"#.into(),
            ..spec()
        };
        assert_eq!(field_of(&s), "base_config_json");
        // Values trainer-core refuses are named as base-config fields.
        let s = SweepSpec {
            base_config_json: r#"{"lr": -0.5}"#.into(),
            ..spec()
        };
        assert_eq!(field_of(&s), "base_config.lr");
        let s = SweepSpec {
            base_config_json: r#"{"pde_options": {"nc": 1}}"#.into(),
            ..spec()
        };
        assert_eq!(field_of(&s), "base_config.pde_options.nc");
    }

    #[test]
    fn rejects_wrong_types_naming_the_field() {
        let s = SweepSpec {
            base_config_json: r#"{"pde_options": {"nc": "four"}}"#.into(),
            ..spec()
        };
        assert_eq!(field_of(&s), "base_config.pde_options.nc");
        let s = SweepSpec {
            base_config_json: r#"{"iters": -5}"#.into(),
            ..spec()
        };
        assert_eq!(field_of(&s), "base_config.iters");
    }

    #[test]
    fn rejects_networks_too_large_for_any_worker() {
        let mut s = spec();
        s.widths = vec![8, 16_384];
        s.base_config_json = r#"{"depth": 64}"#.into();
        let e = expand(&s).unwrap_err();
        assert_eq!(e.field, "widths[1]");
        assert!(e.problem.contains("parameters"), "{e}");
        // The paper's widest network is far below the bound.
        s.widths = vec![512];
        s.base_config_json = r#"{"depth": 5}"#.into();
        assert!(expand(&s).is_ok());
    }

    #[test]
    fn huge_values_are_quoted_short() {
        let mut s = spec();
        s.pdes = vec!["x".repeat(1_000_000)];
        let e = expand(&s).unwrap_err();
        assert_eq!(e.field, "pdes[0]");
        assert!(e.to_string().len() < 2_000, "{} bytes", e.to_string().len());
        let s = SweepSpec {
            base_config_json: format!(r#"{{"{}": 1}}"#, "k".repeat(100_000)),
            ..spec()
        };
        let e = expand(&s).unwrap_err();
        assert!(e.field.starts_with("base_config.\"kkk"), "{}", e.field);
        assert!(e.to_string().len() < 2_000);
    }

    /// Property tests: whatever the spec, `expand` returns (never panics), and an error names a
    /// field of the spec in one short line.
    mod props {
        use super::*;
        use proptest::prelude::*;

        const FIELD_PREFIXES: [&str; 9] = [
            "name",
            "pdes",
            "methods",
            "widths",
            "seeds",
            "grid",
            "max_attempts",
            "base_config_json",
            "base_config.",
        ];

        fn train_keys() -> Vec<String> {
            let Value::Object(m) = TrainConfig::every_field_json() else {
                unreachable!()
            };
            let mut keys: Vec<String> = m.keys().cloned().collect();
            keys.extend(["nc", "test_grid", "beta", "learning_rate", ""].map(String::from));
            keys
        }

        /// Any JSON value, a few levels deep, with numbers at the edges of their types.
        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                // NaN/inf become null in serde_json; the rest are ordinary numbers.
                any::<f64>().prop_map(Value::from),
                prop::sample::select(vec![0i64, 1, 2, -1, 5, 100, 1_000_000_000])
                    .prop_map(Value::from),
                "\\PC{0,12}".prop_map(Value::from),
                prop::sample::select(vec!["f32", "f64", "center", "proj", "avg", "adam"])
                    .prop_map(Value::from),
            ];
            let keys = train_keys();
            leaf.prop_recursive(3, 24, 4, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(prop::sample::select(keys.clone()), inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// A base config: usually an object of TrainConfig keys, sometimes anything at all.
        fn base_config_json() -> impl Strategy<Value = String> {
            let keys = train_keys();
            prop_oneof![
                4 => prop::collection::btree_map(prop::sample::select(keys), json_value(), 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect()).to_string()),
                1 => json_value().prop_map(|v| v.to_string()),
                1 => "\\PC{0,40}",
                1 => Just(String::new()),
            ]
        }

        fn names(known: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
            prop::collection::vec(
                prop_oneof![
                    4 => prop::sample::select(known).prop_map(String::from),
                    1 => "\\PC{0,20}",
                    1 => Just(String::new()),
                ],
                0..4,
            )
        }

        prop_compose! {
            fn any_spec()(
                name in prop_oneof![3 => "[a-z][a-z0-9._-]{0,12}", 1 => "\\PC{0,150}"],
                pdes in names(&trainer_core::pde::NAMES),
                methods in names(&["adam", "dcgd", "modsync+adam", "pcgrad", "config"]),
                widths in prop::collection::vec(
                    prop_oneof![4 => 1u64..64, 1 => any::<u64>(), 1 => Just(0u64)], 0..4),
                seeds in prop::collection::vec(
                    prop_oneof![4 => 0i64..10, 1 => any::<i64>()], 0..4),
                base_config_json in base_config_json(),
                max_attempts in prop_oneof![3 => 0u32..5, 1 => any::<u32>()],
                priority in any::<i32>(),
            ) -> SweepSpec {
                SweepSpec { name, pdes, methods, widths, seeds, base_config_json, max_attempts, priority }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn expand_never_panics_and_names_the_field(spec in any_spec()) {
                match expand(&spec) {
                    Ok(configs) => {
                        let n = spec.pdes.len() * spec.methods.len() * spec.widths.len()
                            * spec.seeds.len();
                        prop_assert_eq!(configs.len(), n);
                        for c in &configs {
                            prop_assert!(c.validate().is_ok());
                        }
                    }
                    Err(e) => {
                        prop_assert!(
                            FIELD_PREFIXES.iter().any(|p| e.field.starts_with(p)),
                            "error names no field of the spec: {}", e
                        );
                        let line = e.to_string();
                        prop_assert!(!e.problem.trim().is_empty(), "{}", line);
                        prop_assert!(!line.contains('\n'), "one line: {}", line);
                        prop_assert!(line.len() < 2_000, "short: {} bytes", line.len());
                    }
                }
            }

            /// A valid spec with one base-config field set to an arbitrary value: accepted, or
            /// refused naming exactly that field.
            #[test]
            fn an_arbitrary_value_is_refused_by_its_own_name(
                key in prop::sample::select(train_keys()),
                value in json_value(),
            ) {
                let json = serde_json::json!({ key.clone(): value }).to_string();
                let s = SweepSpec { base_config_json: json, ..spec() };
                if let Err(e) = expand(&s) {
                    let named = e.field == format!("base_config.{key}")
                        || e.field.starts_with(&format!("base_config.{key}."))
                        || e.field.starts_with(&format!("base_config.{key}["));
                    prop_assert!(named, "{} for key {:?}", e, key);
                    prop_assert!(!e.to_string().contains('\n'));
                }
            }
        }
    }
}
