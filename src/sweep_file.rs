//! Sweep files (TOML): what `modsync submit` and `modsync sweep run` read.
//!
//! ```toml
//! name = "quick"            # also the sweep id
//! max_attempts = 3          # optional (default 3)
//! priority = 0              # optional; higher runs first
//!
//! [grid]                    # every combination is one job
//! pdes = ["burgers"]
//! methods = ["adam"]
//! widths = [10, 20, 40]
//! seeds = [0, 1]
//!
//! [train]                   # fixed settings: any trainer-core TrainConfig field
//! depth = 3
//! iters = 1000
//! ```
//!
//! Every table refuses unknown keys, so a typo is an error naming the key rather than a silently
//! ignored setting. `[train]` is passed through as the sweep's base config JSON, so fields that
//! `TrainConfig` gains later work without touching this file; the coordinator's own validation
//! ([`coordinator::sweep::expand`]) runs here before anything is sent or written, and its field
//! names are translated back to the file's (`base_config.lr` → `train.lr`, `pdes[1]` →
//! `grid.pdes[1]`).

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use modsync_proto::SweepSpec;
use serde::Deserialize;
use trainer_core::TrainConfig;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    name: String,
    grid: Grid,
    #[serde(default)]
    train: toml::Table,
    /// 0 or absent: the coordinator's default.
    #[serde(default)]
    max_attempts: u32,
    #[serde(default)]
    priority: i32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Grid {
    pdes: Vec<String>,
    methods: Vec<String>,
    /// Signed so a negative width gets our message, not a TOML type error.
    widths: Vec<i64>,
    seeds: Vec<i64>,
}

/// A validated sweep: the spec to submit and the configs it expands to.
pub struct Sweep {
    pub spec: SweepSpec,
    pub configs: Vec<TrainConfig>,
}

/// Reads, parses and validates a sweep file. Errors are one line naming the file and field.
pub fn load(path: &Path) -> Result<Sweep> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read sweep file {}", path.display()))?;
    parse(&text).map_err(|e| anyhow!("invalid sweep file {}: {e}", path.display()))
}

/// Parses and validates sweep-file text (see the module docs for the format).
pub fn parse(text: &str) -> Result<Sweep, String> {
    let file: SweepFile = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                format!(
                    "line {}: ",
                    text[..s.start.min(text.len())].lines().count().max(1)
                )
            })
            .unwrap_or_default();
        format!("{at}{}", e.message().trim())
    })?;
    let mut widths = Vec::with_capacity(file.grid.widths.len());
    for (i, &w) in file.grid.widths.iter().enumerate() {
        if w < 1 {
            return Err(format!("invalid grid.widths[{i}]: {w}: must be >= 1"));
        }
        widths.push(w as u64);
    }
    let base = toml::Value::Table(file.train);
    check_finite(&base, "train")?;
    let base_config_json =
        serde_json::to_string(&base).map_err(|e| format!("invalid train: {e}"))?;
    let spec = SweepSpec {
        name: file.name,
        pdes: file.grid.pdes,
        methods: file.grid.methods,
        widths,
        seeds: file.grid.seeds,
        base_config_json,
        max_attempts: file.max_attempts,
        priority: file.priority,
    };
    let configs = coordinator::sweep::expand(&spec)
        .map_err(|e| format!("invalid {}: {}", file_field(&e.field), e.problem))?;
    Ok(Sweep { spec, configs })
}

/// The coordinator's name of a field → the name it has in a sweep file.
pub fn file_field(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("base_config.") {
        format!("train.{rest}")
    } else if field == "base_config_json" {
        "train".to_string()
    } else if ["pdes", "methods", "widths", "seeds", "grid"]
        .iter()
        .any(|axis| field.starts_with(axis))
    {
        if field == "grid" {
            field.to_string()
        } else {
            format!("grid.{field}")
        }
    } else {
        field.to_string()
    }
}

/// NaN and infinities are legal TOML but not JSON; refuse them here with the key's name.
fn check_finite(value: &toml::Value, path: &str) -> Result<(), String> {
    match value {
        toml::Value::Float(f) if !f.is_finite() => {
            Err(format!("invalid {path}: must be a finite number, got {f}"))
        }
        toml::Value::Table(t) => t
            .iter()
            .try_for_each(|(k, v)| check_finite(v, &format!("{path}.{k}"))),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_finite(v, &format!("{path}[{i}]"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
[grid]
pdes = ["burgers"]
methods = ["adam"]
widths = [8, 16]
seeds = [0, 1, 2]
[train]
depth = 2
iters = 100
pde_options = { nc = 4 }
"#;

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn good_file_expands() {
        let s = parse(GOOD).unwrap();
        assert_eq!(s.configs.len(), 6);
        assert_eq!(s.configs[0].depth, 2);
        assert_eq!(s.configs[0].pde_options.nc, 4);
        assert_eq!(s.spec.widths, [8, 16]);
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(&GOOD.replace("pdes =", "pdess ="));
        assert!(e.contains("pdess"), "{e}");
        let e = err(&GOOD.replace("depth = 2", "dept = 2"));
        assert!(e.contains("train.dept"), "{e}");
        let e = err(&GOOD.replace("[\"burgers\"]", "[\"navier\"]"));
        assert!(e.contains("grid.pdes[0]"), "{e}");
        let e = err(&GOOD.replace("seeds = [0, 1, 2]", "seeds = []"));
        assert!(e.contains("grid.seeds"), "{e}");
        let e = err(&GOOD.replace("[8, 16]", "[8, 0]"));
        assert!(e.contains("grid.widths[1]"), "{e}");
        let e = err(&GOOD.replace("[0, 1, 2]", "[0, -1]"));
        assert!(e.contains("grid.seeds[1]"), "{e}");
        let e = err(&GOOD.replace("depth = 2", "depth = 2\nlr = nan"));
        assert!(e.contains("train.lr"), "{e}");
        let e = err(&GOOD.replace("name = \"t\"", "name = \"t\"\nnmae = 1"));
        assert!(e.contains("nmae"), "{e}");
        let e = err(&GOOD.replace("nc = 4", "nc = 4, ncc = 3"));
        assert!(e.contains("ncc"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}
