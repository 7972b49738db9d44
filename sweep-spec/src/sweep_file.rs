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
//! [grid.axes]               # optional: any other TrainConfig field, by dotted path
//! lr = [1e-3, 3e-3]
//! "modsync.lambda_s" = [1e-5, 1e-4]
//!
//! [[grid.variants]]         # optional: named sets of settings, each one more series
//! name = "sparsity_only"
//! modsync.mode = "sparsity_only"
//!
//! [train]                   # fixed settings: any trainer-core TrainConfig field
//! depth = 3
//! iters = 1000
//! ```
//!
//! Every combination of pdes × methods × variants × axis values × widths × seeds is one job
//! ([`crate::series`] has the rules); a file may expand to at most [`DEFAULT_MAX_JOBS`] jobs
//! unless the caller raises the limit (`--max-jobs`, up to the coordinator's
//! [`grid::MAX_JOBS`]).
//!
//! The file is read with serde ([`SweepFile`], [`GridTable`]): every table refuses unknown keys
//! (`deny_unknown_fields`), so a typo is an error naming the key rather than a silently ignored
//! setting, and every error names the key path (`grid.widths[1]`). `[train]` is passed through
//! as the sweep's base config JSON, so fields that `TrainConfig` gains later work without
//! touching this file; the sweep's own validation ([`grid::expand`], the one the coordinator
//! runs when it receives the sweep) runs here before anything is sent or written, and its field
//! names are translated back to the file's (`base_config.lr` → `train.lr`, `pdes[1]` →
//! `grid.pdes[1]`).

use std::path::Path;

use modsync_proto::{GridAxis, GridVariant, SweepSpec};
use serde::Deserialize;
use toml::{Table, Value};

use crate::grid::{self, GridJob};

/// Deepest nesting accepted in `[train]` (TrainConfig itself is 2 levels deep); deeper input is
/// refused before anything recurses through it.
const MAX_TRAIN_DEPTH: usize = 8;
/// Longest key or value quoted back in an error.
const MAX_QUOTED: usize = grid::MAX_QUOTED;
/// Longest message (serde's quote the offending key or value in full).
const MAX_MESSAGE: usize = 512;
/// Most jobs a sweep file may expand to unless the caller allows more (`--max-jobs`): ten
/// times the paper's grid; more is usually an axis too many.
pub const DEFAULT_MAX_JOBS: usize = 10_000;

/// A sweep file as written. The required keys are `Option`s so that a missing one is refused
/// with its name and what belongs there.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a sweep file")]
struct SweepFile {
    name: Option<String>,
    /// 0: the coordinator's default ([`grid::DEFAULT_MAX_ATTEMPTS`]).
    #[serde(default)]
    max_attempts: u32,
    #[serde(default)]
    priority: i32,
    grid: Option<GridTable>,
    /// TrainConfig fields, passed through (see the module docs).
    #[serde(default)]
    train: Table,
}

/// `[grid]`: the axes whose every combination is one job.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table ([grid] with pdes, methods, widths, seeds)"
)]
struct GridTable {
    pdes: Option<Vec<String>>,
    methods: Option<Vec<String>>,
    widths: Option<Vec<u64>>,
    seeds: Option<Vec<i64>>,
    /// Extra axes: a TrainConfig path → its values.
    #[serde(default)]
    axes: Table,
    /// Named sets of settings: `name` and TrainConfig fields.
    #[serde(default)]
    variants: Vec<Table>,
}

/// A validated sweep: the spec to submit and the jobs it expands to.
pub struct Sweep {
    pub spec: SweepSpec,
    pub jobs: Vec<GridJob>,
}

/// Reads, parses and validates a sweep file that may expand to at most `max_jobs` jobs. Errors
/// are one line naming the file and field.
pub fn load(path: &Path, max_jobs: usize) -> Result<Sweep, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read sweep file {}: {e}", path.display()))?;
    parse_limited(&text, max_jobs)
        .map_err(|e| format!("invalid sweep file {}: {e}", path.display()))
}

/// [`parse_limited`] with [`DEFAULT_MAX_JOBS`].
pub fn parse(text: &str) -> Result<Sweep, String> {
    parse_limited(text, DEFAULT_MAX_JOBS)
}

/// Parses and validates sweep-file text (see the module docs for the format). The error is one
/// line naming the field (`grid.widths[1]`, `train.lr`, `grid.axes."modsync.lambda_s"[2]`), or
/// for a TOML syntax error the line and, where it can be told, the key.
pub fn parse_limited(text: &str, max_jobs: usize) -> Result<Sweep, String> {
    let table: Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map_or_else(|| "invalid TOML: ".to_string(), |s| locate(text, s.start));
        format!("{at}{}", one_line(e.message()))
    })?;
    // Before serde turns date-times into strings, and before anything recurses through it.
    if let Some(train) = table.get("train") {
        check_train(train, "train", 0)?;
    }
    if let Some(grid) = table.get("grid").and_then(Value::as_table) {
        if let Some(axes) = grid.get("axes").and_then(Value::as_table) {
            for (path, values) in axes {
                check_train(values, &format!("grid.axes.{}", toml_key(path)), 0)?;
            }
        }
        if let Some(variants) = grid.get("variants").and_then(Value::as_array) {
            for (i, variant) in variants.iter().enumerate() {
                check_train(variant, &format!("grid.variants[{i}]"), 0)?;
            }
        }
    }
    let file: SweepFile = serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
        format!(
            "invalid {}: {}",
            key_path(&e.path().to_string()),
            one_line(e.inner().message())
        )
    })?;
    let name = required(file.name, "name", "the sweep's name, also its id")?;
    let grid = required(
        file.grid,
        "grid",
        "[grid] with pdes, methods, widths, seeds",
    )?;
    let base_config_json = serde_json::to_string(&file.train)
        .map_err(|e| format!("invalid train: {}", one_line(&e.to_string())))?;
    let axes = grid
        .axes
        .iter()
        .map(|(path, values)| {
            let values_json = serde_json::to_string(values).map_err(|e| {
                let field = format!("grid.axes.{}", toml_key(path));
                format!("invalid {field}: {}", one_line(&e.to_string()))
            })?;
            Ok(GridAxis {
                path: path.clone(),
                values_json,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let variants = grid
        .variants
        .into_iter()
        .enumerate()
        .map(|(i, mut settings)| variant(i, &mut settings))
        .collect::<Result<Vec<_>, String>>()?;
    let spec = SweepSpec {
        name,
        pdes: required(grid.pdes, "grid.pdes", "an array of strings")?,
        methods: required(grid.methods, "grid.methods", "an array of strings")?,
        widths: required(grid.widths, "grid.widths", "an array of integers")?,
        seeds: required(grid.seeds, "grid.seeds", "an array of integers")?,
        base_config_json,
        max_attempts: file.max_attempts,
        priority: file.priority,
        axes,
        variants,
    };
    let n_jobs = grid::job_count(&spec);
    if n_jobs > max_jobs {
        return Err(format!(
            "invalid grid: expands to {n_jobs} jobs, more than the limit of {max_jobs} \
             (--max-jobs raises it, up to the coordinator's {})",
            grid::MAX_JOBS
        ));
    }
    let jobs = grid::expand_jobs(&spec)
        .map_err(|e| format!("invalid {}: {}", file_field(&e.field), one_line(&e.problem)))?;
    Ok(Sweep { spec, jobs })
}

/// Variant `index` of `[[grid.variants]]`: its `name` and the rest of its table as settings.
fn variant(index: usize, settings: &mut Table) -> Result<GridVariant, String> {
    let field = format!("grid.variants[{index}]");
    let name = match settings.remove("name") {
        Some(Value::String(name)) => name,
        Some(other) => {
            return Err(format!(
                "invalid {field}.name: must be a string, got {}",
                other.type_str()
            ));
        }
        None => {
            return Err(format!(
                "invalid {field}.name: missing (the variant's name)"
            ));
        }
    };
    let settings_json = serde_json::to_string(settings)
        .map_err(|e| format!("invalid {field}: {}", one_line(&e.to_string())))?;
    Ok(GridVariant {
        name,
        settings_json,
    })
}

/// A key of `[grid.axes]` as the file writes it: quoted when it has a dot.
fn toml_key(path: &str) -> String {
    if path.contains('.') {
        format!("{:?}", short(path))
    } else {
        short(path)
    }
}

/// A key the file must have.
fn required<T>(value: Option<T>, field: &str, what: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("invalid {field}: missing ({what})"))
}

/// A serde key path for a message: cut when a key in it is very long; the root has no name.
fn key_path(path: &str) -> String {
    match path {
        "." => "sweep file".to_string(),
        _ => short(path),
    }
}

/// "line N: " or "line N (table.key): " for a byte offset into `text`.
fn locate(text: &str, offset: usize) -> String {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_no = before.lines().count().max(1);
    // The line the error is on, and the last table header above it.
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = before[..line_start]
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            (l.starts_with('[') && !l.starts_with("[[") && l.ends_with(']'))
                .then(|| l[1..l.len() - 1].trim().to_string())
        })
        .next_back();
    let key = line.split_once('=').map(|(k, _)| k.trim()).filter(|k| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    });
    match (table, key) {
        (Some(t), Some(k)) => format!("line {line_no} ({}.{}): ", short(&t), k),
        (None, Some(k)) => format!("line {line_no} ({k}): "),
        _ => format!("line {line_no}: "),
    }
}

/// A message on one line (TOML's can span several), cut to [`MAX_MESSAGE`] characters.
fn one_line(msg: &str) -> String {
    cut(
        &msg.split_whitespace().collect::<Vec<_>>().join(" "),
        MAX_MESSAGE,
    )
}

/// A key or value for an error message, cut to [`MAX_QUOTED`] characters.
fn short(s: &str) -> String {
    cut(s, MAX_QUOTED)
}

/// `s` cut to `max` characters, "…" marking the cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((end, _)) => format!("{}…", &s[..end]),
    }
}

/// The sweep's name of a field ([`grid::FieldError::field`]) → the name it has in the file.
fn file_field(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("base_config.") {
        format!("train.{rest}")
    } else if field == "base_config_json" {
        "train".to_string()
    } else if ["pdes", "methods", "widths", "seeds", "axes", "variants"]
        .iter()
        .any(|axis| field.starts_with(axis))
    {
        format!("grid.{field}")
    } else {
        field.to_string()
    }
}

/// What JSON cannot carry or TrainConfig cannot hold, refused here with the key's name: NaN and
/// infinities (legal TOML, not JSON), date-times, and nesting deeper than [`MAX_TRAIN_DEPTH`].
fn check_train(value: &Value, path: &str, depth: usize) -> Result<(), String> {
    if depth > MAX_TRAIN_DEPTH {
        return Err(format!("invalid {}: nested too deeply", short(path)));
    }
    match value {
        Value::Float(f) if !f.is_finite() => Err(format!(
            "invalid {}: must be a finite number, got {f}",
            short(path)
        )),
        Value::Datetime(_) => Err(format!(
            "invalid {}: a date-time is not a training setting",
            short(path)
        )),
        Value::Table(t) => t
            .iter()
            .try_for_each(|(k, v)| check_train(v, &format!("{path}.{k}"), depth + 1)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_train(v, &format!("{path}[{i}]"), depth + 1)),
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
        assert_eq!(s.jobs.len(), 6);
        assert_eq!(s.jobs[0].config.depth, 2);
        assert_eq!(s.jobs[0].config.pde_options.nc, 4);
        assert_eq!(s.spec.widths, [8, 16]);
    }

    /// GOOD with extra axes and variants before its [train].
    fn with_axes(axes: &str) -> String {
        GOOD.replace("[train]", &format!("{axes}\n[train]"))
    }

    const AXES: &str = r#"[grid.axes]
lr = [1e-3, 3e-3]
"modsync.lambda_s" = [1e-5, 1e-4]
[[grid.variants]]
name = "full"
[[grid.variants]]
name = "sparsity_only"
modsync.mode = "sparsity_only"
"#;

    #[test]
    fn axes_and_variants_expand_every_combination() {
        let s = parse(&with_axes(AXES)).unwrap();
        assert_eq!(s.jobs.len(), 6 * 2 * 2 * 2);
        assert_eq!(s.spec.axes.len(), 2);
        assert_eq!(s.spec.variants[1].name, "sparsity_only");
        let labels: std::collections::BTreeSet<&str> =
            s.jobs.iter().map(|j| j.series.as_str()).collect();
        assert_eq!(labels.len(), 8);
        assert!(
            labels.contains("sparsity_only lr=0.003 modsync.lambda_s=0.0001"),
            "{labels:?}"
        );
        for job in &s.jobs {
            let c = &job.config;
            assert_eq!(
                job.series.starts_with("sparsity_only"),
                c.modsync.mode == trainer_core::modsync::Ablation::SparsityOnly
            );
            assert_eq!(c.depth, 2, "[train] applies to every series");
        }
    }

    #[test]
    fn bad_axes_and_variants_name_the_key() {
        let cases = [
            (
                "lr = [1e-3, 3e-3]",
                "lr = [1e-3, -1.0]",
                "invalid grid.axes.lr[1]: ",
            ),
            (
                "\"modsync.lambda_s\" = [1e-5, 1e-4]",
                "\"modsync.lambda_s\" = [1e-5, nan]",
                "invalid grid.axes.\"modsync.lambda_s\"[1]: ",
            ),
            (
                "\"modsync.lambda_s\" = [1e-5, 1e-4]",
                "\"modsync.lambda_z\" = [1e-5]",
                "invalid grid.axes.\"modsync.lambda_z\": unknown field",
            ),
            (
                "lr = [1e-3, 3e-3]",
                "depth = [3, 4]",
                "invalid grid.axes.depth: is also set",
            ),
            (
                "lr = [1e-3, 3e-3]",
                "lr = 1e-3",
                "invalid grid.axes.lr: must be an array",
            ),
            (
                "name = \"full\"",
                "nmae = \"full\"",
                "invalid grid.variants[0].name: missing",
            ),
            (
                "modsync.mode = \"sparsity_only\"",
                "modsync.mode = \"sparse\"",
                "invalid grid.variants[1].modsync.mode: ",
            ),
            (
                "modsync.mode = \"sparsity_only\"",
                "lr = 0.1",
                "invalid grid.variants[1].lr: is also swept by the axis",
            ),
        ];
        for (from, to, want) in cases {
            assert!(AXES.contains(from), "{from}");
            let e = err(&with_axes(&AXES.replacen(from, to, 1)));
            assert!(e.starts_with(want), "{to}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    /// A file may expand to at most the limit it is read with, and the error says how to raise
    /// it.
    #[test]
    fn the_job_limit_is_stated_with_its_flag() {
        let text = with_axes(AXES);
        assert_eq!(parse_limited(&text, 48).unwrap().jobs.len(), 48);
        let e = parse_limited(&text, 47).err().expect("over the limit");
        assert!(
            e.contains("expands to 48 jobs, more than the limit of 47") && e.contains("--max-jobs"),
            "{e}"
        );
    }

    /// The sweep files users are pointed at, and those whose results are committed, must stay
    /// valid as the format and TrainConfig move.
    #[test]
    fn every_example_and_results_sweep_file_is_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut dirs = vec![root.join("examples"), root.join("results")];
        let mut checked = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "toml") {
                    let sweep = load(&path, DEFAULT_MAX_JOBS).unwrap_or_else(|e| panic!("{e}"));
                    assert!(!sweep.jobs.is_empty(), "{}", path.display());
                    checked += 1;
                }
            }
        }
        assert!(checked >= 6, "sweep files found: {checked}");
    }

    /// The ablation as a sweep trains exactly the configs that ablation.sh trained (its rows'
    /// result.json carry them), so its results are those numbers: only `checkpoint_every`
    /// differs, which a sweep needs and which changes nothing trained.
    #[test]
    fn the_ablation_sweep_has_the_configs_of_the_committed_rows() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/capacity-failure");
        let sweep = load(&dir.join("ablation.toml"), DEFAULT_MAX_JOBS).unwrap();
        let mut compared = 0;
        for job in &sweep.jobs {
            let row = match job.series.as_str() {
                "pooled_mean" => "pooled_modsync_dcgd",
                other => other,
            };
            let row = match job.config.seed {
                0 => row.to_string(),
                s => format!("{row}_seed{s}"),
            };
            let Ok(text) =
                std::fs::read_to_string(dir.join("ablation").join(&row).join("result.json"))
            else {
                continue; // a row ablation.sh did not run (seed 1 of most variants, full)
            };
            let result: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut trained: trainer_core::TrainConfig =
                serde_json::from_value(result["config"].clone()).unwrap();
            assert_eq!(trained.checkpoint_every, 0);
            trained.checkpoint_every = job.config.checkpoint_every;
            assert_eq!(job.config, trained, "{row}");
            compared += 1;
        }
        assert_eq!(compared, 9, "rows of ablation.sh that the sweep has");
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

    #[test]
    fn type_errors_name_the_field() {
        let cases = [
            ("name = \"t\"", "name = 5", "invalid name"),
            (
                "name = \"t\"",
                "name = \"t\"\nmax_attempts = \"x\"",
                "invalid max_attempts",
            ),
            (
                "name = \"t\"",
                "name = \"t\"\npriority = 99999999999",
                "invalid priority",
            ),
            ("widths = [8, 16]", "widths = 8", "invalid grid.widths"),
            (
                "widths = [8, 16]",
                "widths = [8, \"16\"]",
                "invalid grid.widths[1]",
            ),
            ("pdes = [\"burgers\"]", "pdes = [1]", "invalid grid.pdes[0]"),
            (
                "seeds = [0, 1, 2]",
                "seeds = [0, 1.5]",
                "invalid grid.seeds[1]",
            ),
            ("depth = 2", "depth = 1979-05-27", "invalid train.depth"),
            ("depth = 2", "depth = \"two\"", "invalid train.depth"),
            ("depth = 2", "lr = inf", "invalid train.lr"),
            ("nc = 4", "nc = -inf", "invalid train.pde_options.nc"),
            ("[grid]", "grid = 3\n[x]", "invalid"),
        ];
        for (from, to, want) in cases {
            let e = err(&GOOD.replace(from, to));
            assert!(e.starts_with(want), "{to}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        // A syntax error names the line, and the key when it can.
        let e = err(&GOOD.replace("[8, 16]", "[8, 99999999999999999999]"));
        assert!(e.starts_with("line 6 (grid.widths): "), "{e}");
    }

    /// serde reads a TOML date-time as a string; it is refused as what it is, before that.
    #[test]
    fn date_times_are_refused_as_date_times() {
        let e = err(&GOOD.replace("depth = 2", "depth = 1979-05-27"));
        assert!(e.contains("train.depth") && e.contains("date-time"), "{e}");
    }

    /// A wrong type is told in the file's words, not by the name of a struct of ours.
    #[test]
    fn a_table_of_the_wrong_type_says_what_belongs_there() {
        let e = err(&GOOD.replace("[grid]", "grid = 3\n[x]"));
        assert!(
            e.starts_with("invalid grid: ") && e.contains("[grid]"),
            "{e}"
        );
        assert!(!e.contains("GridTable"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        // TOML's own parser has a recursion limit…
        let deep = format!("{}x = 1", "a.".repeat(5_000));
        let e = err(&GOOD.replace("depth = 2", &deep));
        assert!(e.starts_with("invalid"), "{e}");
        // …and below it, ours refuses what TrainConfig could never hold.
        let deep = format!("{}x = 1", "a.".repeat(20));
        let e = err(&GOOD.replace("depth = 2", &deep));
        assert!(e.contains("nested too deeply"), "{e}");
        let arrays = format!("x = {}1{}", "[".repeat(5_000), "]".repeat(5_000));
        let e = err(&GOOD.replace("depth = 2", &arrays));
        assert!(!e.is_empty());
    }

    /// Property tests: no input panics the parser, and a bad value is refused by its own name.
    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Lines from which TOML-ish (and broken) sweep files are assembled.
        const FRAGMENTS: &[&str] = &[
            "name = \"p\"",
            "name = ",
            "[grid]",
            "[train]",
            "[[grid]]",
            "[grid.x]",
            "pdes = [\"burgers\"]",
            "methods = [\"adam\", \"dcgd\"]",
            "widths = [4, 8]",
            "seeds = [0]",
            "seeds = [-1]",
            "widths = [0]",
            "iters = 10",
            "eval_every = 5",
            "lr = nan",
            "lr = -inf",
            "lr = 1e400",
            "depth = 99999999999999999999",
            "pde_options = { nc = 4 }",
            "pde_options.nc = 300",
            "max_attempts = -1",
            "priority = 3",
            "x = 1979-05-27T07:32:00Z",
            "= 3",
            "\"",
            "'''",
            "[",
            "]",
            "{",
            "a.b.c = [1, [2, [3]]]",
            "name = \"a b\"",
            "é = 1",
            "\u{0}",
            "\t\r",
            "precision = \"f16\"",
            "method_options = 1",
            "train = 5",
            "grid = []",
        ];

        fn tomlish() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof![
                    4 => prop::sample::select(FRAGMENTS).prop_map(String::from),
                    1 => "\\PC{0,30}",
                ],
                0..14,
            )
            .prop_map(|lines| lines.join("\n"))
        }

        /// Any TOML value (floats include nan and ±inf), a little nested.
        fn toml_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                any::<i64>().prop_map(Value::Integer),
                prop::sample::select(vec![0i64, 1, 2, -1, 4, 64, 100, 100_000_001])
                    .prop_map(Value::Integer),
                any::<f64>().prop_map(Value::Float),
                prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e-3])
                    .prop_map(Value::Float),
                any::<bool>().prop_map(Value::Boolean),
                "\\PC{0,12}".prop_map(Value::String),
                prop::sample::select(vec!["burgers", "adam", "f64", "bad name"])
                    .prop_map(|s| Value::String(s.into())),
                Just(Value::Datetime("1979-05-27T07:32:00Z".parse().unwrap())),
            ];
            leaf.prop_recursive(2, 12, 3, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                    prop::collection::btree_map(
                        prop::sample::select(vec!["nc", "test_grid", "beta", "zz"]),
                        inner,
                        0..3
                    )
                    .prop_map(|m| Value::Table(
                        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                    )),
                ]
            })
        }

        /// (the field as errors name it, its key in TEMPLATE)
        const FIELDS: &[(&str, &str)] = &[
            ("name", "name"),
            ("max_attempts", "max_attempts"),
            ("priority", "priority"),
            ("grid.pdes", "pdes"),
            ("grid.methods", "methods"),
            ("grid.widths", "widths"),
            ("grid.seeds", "seeds"),
            ("train.depth", "depth"),
            ("train.iters", "iters"),
            ("train.lr", "lr"),
            ("train.eval_every", "eval_every"),
            ("train.precision", "precision"),
            ("train.lr_decay", "lr_decay"),
            ("train.pde_options", "pde_options"),
            ("train.method_options", "method_options"),
            ("train.checkpoint_every", "checkpoint_every"),
            ("train.learning_rate", "learning_rate"),
        ];

        const TEMPLATE: &str = "name = \"t\"\nmax_attempts = 2\npriority = 0\n[grid]\n\
            pdes = [\"burgers\"]\nmethods = [\"adam\"]\nwidths = [4, 8]\nseeds = [0, 1]\n\
            [train]\ndepth = 2\niters = 10\nlr = 0.001\neval_every = 5\n\
            precision = \"f32\"\nlr_decay = false\npde_options = { nc = 4 }\n\
            method_options = {}\ncheckpoint_every = 0\nlearning_rate = 0.1\n";

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn garbage_never_panics_and_errors_are_one_line(text in tomlish()) {
                if let Err(e) = parse(&text) {
                    prop_assert!(!e.trim().is_empty());
                    prop_assert!(!e.contains('\n'), "one line: {:?}", e);
                    prop_assert!(e.starts_with("invalid ") || e.starts_with("line "), "{}", e);
                }
            }

            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
                let _ = parse(&text);
            }

            #[test]
            fn a_bad_value_is_refused_by_its_field_name(
                field in prop::sample::select(FIELDS),
                value in toml_value(),
            ) {
                let (name, key) = field;
                let mut lines: Vec<String> = TEMPLATE.lines().map(String::from).collect();
                // `learning_rate` is not a TrainConfig field: only there when it is tested.
                lines.retain(|l| !l.starts_with("learning_rate") || key == "learning_rate");
                let line = lines
                    .iter_mut()
                    .find(|l| l.starts_with(&format!("{key} = ")))
                    .unwrap();
                *line = format!("{key} = {value}");
                let text = lines.join("\n");
                match parse(&text) {
                    Ok(sweep) => {
                        prop_assert!(key != "learning_rate", "unknown key accepted");
                        for c in sweep.jobs.iter().map(|j| &j.config) {
                            prop_assert!(c.validate().is_ok());
                        }
                    }
                    Err(e) => {
                        prop_assert!(!e.contains('\n'), "one line: {}", e);
                        prop_assert!(e.len() < 2_000, "{} bytes", e.len());
                        // A width can be refused for the depth set here (too many parameters),
                        // but then the message says which width.
                        let names_it = e.starts_with(&format!("invalid {name}"))
                            || e.starts_with("invalid grid.widths[");
                        prop_assert!(names_it, "{} = {} → {}", key, value, e);
                    }
                }
            }
        }
    }
}
