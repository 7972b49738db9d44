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

use crate::field::{AXIS_FIELDS, check_identifier, check_shape, overlay};
pub use crate::field::{FieldError, MAX_NAME_LEN, MAX_QUOTED, quoted};
use crate::series::Series;

/// Attempts a job gets when the spec leaves `max_attempts` at 0.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Upper bound on `max_attempts`: beyond this a typo would retry a broken job forever.
pub const MAX_ATTEMPTS: u32 = 1_000;
/// Upper bound on jobs per sweep: the paper's grid is ~1,000; a million would be a typo that
/// fills the store.
pub const MAX_JOBS: usize = 100_000;
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

/// One job of an expanded sweep.
#[derive(Debug, Clone)]
pub struct GridJob {
    pub config: TrainConfig,
    /// `jobs.series`: its variant and extra axes' values ([`crate::series`]); empty for a sweep
    /// with neither.
    pub series: String,
    /// Its `job_axes` rows: (axis, value).
    pub settings: Vec<(String, String)>,
}

/// Validates `spec` and returns one config per grid point (see [`expand_jobs`]).
pub fn expand(spec: &SweepSpec) -> Result<Vec<TrainConfig>, FieldError> {
    Ok(expand_jobs(spec)?.into_iter().map(|j| j.config).collect())
}

/// How many jobs `spec` expands to, from the lengths of its axes (saturating; nothing
/// validated): what the job limits are checked against before anything is built.
pub fn job_count(spec: &SweepSpec) -> usize {
    [
        spec.pdes.len(),
        spec.methods.len(),
        crate::series::count(spec),
        spec.widths.len(),
        spec.seeds.len(),
    ]
    .into_iter()
    .fold(1, usize::saturating_mul)
}

/// Validates `spec` and returns one job per grid point, in the order
/// pde → method → series → width → seed (the first PDE's first method's first series' smallest
/// listed width first); the series are the variants × extra axes ([`crate::series`]).
pub fn expand_jobs(spec: &SweepSpec) -> Result<Vec<GridJob>, FieldError> {
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

    let n_jobs = job_count(spec);
    if n_jobs > MAX_JOBS {
        let series = match crate::series::count(spec) {
            1 => String::new(),
            n => format!(" × {n} series"),
        };
        return Err(FieldError::new(
            "grid",
            format!(
                "{} pdes × {} methods{series} × {} widths × {} seeds is more than {MAX_JOBS} jobs",
                pdes.len(),
                methods.len(),
                widths.len(),
                seeds.len()
            ),
        ));
    }

    let (base_json, base_object) = base_config(&spec.base_config_json)?;
    let shape = TrainConfig::every_field_json();
    let all_series = crate::series::build(spec, &base_object, &shape)?;
    let mut series_bases = Vec::with_capacity(all_series.len());
    for series in &all_series {
        let json = series.apply(&base_json);
        let config = serde_path_to_error::deserialize::<_, TrainConfig>(json).map_err(|e| {
            let path = e.path().to_string();
            let field = series
                .locate(&path)
                .unwrap_or_else(|| format!("base_config.{path}"));
            FieldError::new(field, cut(e.inner().to_string()))
        })?;
        series_bases.push(config);
    }
    crate::series::check_distinct(&all_series, &series_bases)?;

    let mut jobs = Vec::with_capacity(n_jobs);
    for (ip, pde) in pdes.iter().enumerate() {
        for (im, method) in methods.iter().enumerate() {
            for (series, base) in all_series.iter().zip(&series_bases) {
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
                        config
                            .validate()
                            .map_err(|e| locate(e, series, [ip, im, iw, is]))?;
                        jobs.push(GridJob {
                            config,
                            series: series.label.clone(),
                            settings: series.settings.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(jobs)
}

fn check_name(name: &str) -> Result<(), FieldError> {
    check_identifier(name)
        .map_err(|p| FieldError::new("name", format!("{p} (the name is the sweep id)")))
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
/// a grid value (`widths[2]`), an extra axis' value or a variant's setting (see
/// [`Series::locate`]), or a base-config field (`base_config.lr`).
fn locate(e: ConfigError, series: &Series, [ip, im, iw, is]: [usize; 4]) -> FieldError {
    let field = match e.field.as_str() {
        "pde" => format!("pdes[{ip}]"),
        "method" => format!("methods[{im}]"),
        "width" => format!("widths[{iw}]"),
        "seed" => format!("seeds[{is}]"),
        other => series
            .locate(other)
            .unwrap_or_else(|| format!("base_config.{other}")),
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

/// Parses `base_config_json`: the complete config JSON (every default, the base config laid
/// over it) and the base config's own object (the fields it sets). The first is deserialised
/// once here, so that its errors name the base config, and returned as JSON, since the series
/// are laid over it next.
fn base_config(json: &str) -> Result<(Value, Map<String, Value>), FieldError> {
    let mut config = TrainConfig::every_field_json();
    if json.trim().is_empty() {
        return Ok((config, Map::new()));
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
    check_shape(&object, &config, "base_config")?;
    // Laid over every default, not deserialised alone: in a config's JSON an absent
    // `pde_options.reading` means a stored job's `spec_v1`, in a sweep the default reading.
    overlay(&mut config, Value::Object(object.clone()));
    serde_path_to_error::deserialize::<_, TrainConfig>(config.clone()).map_err(|e| {
        let path = e.path().to_string();
        FieldError::new(format!("base_config.{path}"), cut(e.inner().to_string()))
    })?;
    Ok((config, object))
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
            ..Default::default()
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

    fn axis(path: &str, values: &str) -> modsync_proto::GridAxis {
        modsync_proto::GridAxis {
            path: path.into(),
            values_json: values.into(),
        }
    }

    fn variant(name: &str, settings: &str) -> modsync_proto::GridVariant {
        modsync_proto::GridVariant {
            name: name.into(),
            settings_json: settings.into(),
        }
    }

    /// Two axes and two variants: every combination with every grid point, in the order
    /// pde → method → series → width → seed, each config carrying its settings.
    #[test]
    fn axes_and_variants_cross_every_grid_point() {
        let s = SweepSpec {
            methods: vec!["modsync+dcgd".into()],
            axes: vec![
                axis("lr", "[0.001, 0.003]"),
                axis("modsync.lambda_s", "[1e-5, 1e-4, 1e-3]"),
            ],
            variants: vec![
                variant("full", "{}"),
                variant("sparsity_only", r#"{"modsync": {"mode": "sparsity_only"}}"#),
            ],
            ..spec()
        };
        let jobs = expand_jobs(&s).unwrap();
        assert_eq!(jobs.len(), 2 * 2 * 2 * 3 * 2 * 3);
        assert_eq!(job_count(&s), jobs.len());
        let first = &jobs[0];
        assert_eq!(first.series, "full lr=0.001 modsync.lambda_s=0.00001");
        assert_eq!(
            first.settings,
            [
                ("variant".to_string(), "full".to_string()),
                ("lr".to_string(), "0.001".to_string()),
                ("modsync.lambda_s".to_string(), "0.00001".to_string()),
            ]
        );
        // Widths and seeds turn fastest, then the series, then method and PDE.
        assert_eq!((jobs[1].config.seed, jobs[3].config.width), (1, 16));
        assert_eq!(jobs[6].series, "full lr=0.001 modsync.lambda_s=0.0001");
        assert_eq!(
            jobs[6 * 6].series,
            "sparsity_only lr=0.001 modsync.lambda_s=0.00001"
        );
        assert_eq!(jobs[6 * 12].config.pde, "helmholtz2d");
        let mut series = std::collections::BTreeSet::new();
        for job in &jobs {
            let c = &job.config;
            let lr = if job.series.contains("lr=0.003") {
                3e-3
            } else {
                1e-3
            };
            assert_eq!(c.lr, lr, "{}", job.series);
            let lambda_s = job.settings[2].1.parse::<f64>().unwrap();
            assert_eq!(c.modsync.lambda_s, lambda_s, "{}", job.series);
            let sparse = job.series.starts_with("sparsity_only");
            assert_eq!(
                c.modsync.mode == trainer_core::modsync::Ablation::SparsityOnly,
                sparse
            );
            // The base config still applies to every series.
            assert_eq!((c.iters, c.pde_options.nc), (20, 4));
            series.insert(job.series.clone());
        }
        assert_eq!(series.len(), 12);
        // Every job is a distinct config.
        let hashes: std::collections::HashSet<_> =
            jobs.iter().map(|j| canonical_config(&j.config).1).collect();
        assert_eq!(hashes.len(), jobs.len());
    }

    /// A sweep without axes keeps the configs, order and hashes it had before axes existed, and
    /// the empty series.
    #[test]
    fn a_sweep_without_axes_has_one_empty_series() {
        let jobs = expand_jobs(&spec()).unwrap();
        assert!(
            jobs.iter()
                .all(|j| j.series.is_empty() && j.settings.is_empty())
        );
        let configs: Vec<TrainConfig> = jobs.into_iter().map(|j| j.config).collect();
        assert_eq!(configs, expand(&spec()).unwrap());
        // An axis of one value equal to the default gives the same configs, labelled.
        let one = SweepSpec {
            axes: vec![axis("lr", "[0.001]")],
            ..spec()
        };
        let labelled = expand_jobs(&one).unwrap();
        assert!(labelled.iter().all(|j| j.series == "lr=0.001"));
        let same: Vec<TrainConfig> = labelled.into_iter().map(|j| j.config).collect();
        assert_eq!(same, configs);
    }

    #[test]
    fn bad_axes_and_variants_are_refused_by_their_field() {
        let with = |axes: Vec<modsync_proto::GridAxis>,
                    variants: Vec<modsync_proto::GridVariant>| {
            SweepSpec {
                axes,
                variants,
                ..spec()
            }
        };
        let cases: Vec<(SweepSpec, &str, &str)> = vec![
            (
                with(vec![axis("lr", "[0.001, -1]")], vec![]),
                "axes.lr[1]",
                "finite number > 0",
            ),
            (
                with(vec![axis("modsync.lambda_s", "[1e-4, 1e-4]")], vec![]),
                "axes.\"modsync.lambda_s\"[1]",
                "repeats",
            ),
            (
                with(vec![axis("modsync.lambda_s", "[1e-4, -3]")], vec![]),
                "axes.\"modsync.lambda_s\"[1]",
                "",
            ),
            (
                with(vec![axis("modsync.lambda_z", "[1]")], vec![]),
                "axes.\"modsync.lambda_z\"",
                "unknown field",
            ),
            (
                with(vec![axis("width", "[8]")], vec![]),
                "axes.width",
                "widths",
            ),
            (
                with(vec![axis("iters", "[5]")], vec![]),
                "axes.iters",
                "base config",
            ),
            (
                with(vec![axis("pde_options", "[{\"nc\": 8}]")], vec![]),
                "axes.pde_options",
                "base config",
            ),
            (
                with(vec![axis("lr", "[]")], vec![]),
                "axes.lr",
                "at least one",
            ),
            (with(vec![axis("lr", "3")], vec![]), "axes.lr", "array"),
            (
                with(vec![axis("lr", "[null]")], vec![]),
                "axes.lr[0]",
                "finite",
            ),
            (
                with(vec![axis("lr", "[\"fast\"]")], vec![]),
                "axes.lr[0]",
                "",
            ),
            (
                with(
                    vec![axis("modsync", "[{}]"), axis("modsync.beta", "[1]")],
                    vec![],
                ),
                "axes.\"modsync.beta\"",
                "overlaps",
            ),
            (
                with(
                    vec![],
                    vec![variant("a", "{}"), variant("a", "{\"lr\": 0.1}")],
                ),
                "variants[1].name",
                "repeats",
            ),
            (
                with(vec![], vec![variant("a b", "{}")]),
                "variants[0].name",
                "contains",
            ),
            (
                with(
                    vec![],
                    vec![variant("a", "{\"modsync\": {\"mode\": \"half\"}}")],
                ),
                "variants[0].modsync.mode",
                "",
            ),
            (
                with(vec![], vec![variant("a", "{\"modsync\": {\"mdoe\": 1}}")]),
                "variants[0].modsync.mdoe",
                "unknown field",
            ),
            (
                with(vec![], vec![variant("a", "{\"seed\": 3}")]),
                "variants[0].seed",
                "seeds",
            ),
            (
                with(vec![], vec![variant("a", "{\"iters\": 3}")]),
                "variants[0].iters",
                "base config",
            ),
            (
                with(
                    vec![axis("lr", "[0.1]")],
                    vec![variant("a", "{\"lr\": 0.2}")],
                ),
                "variants[0].lr",
                "axis",
            ),
            (
                with(
                    vec![],
                    vec![variant("a", "{}"), variant("b", "{\"lr\": 0.001}")],
                ),
                "variants[1]",
                "same configs",
            ),
        ];
        for (spec, field, problem) in cases {
            let e = expand_jobs(&spec).expect_err(field);
            assert_eq!(e.field, field, "{e}");
            assert!(e.problem.contains(problem), "{field}: {e}");
        }
    }

    /// The job count includes the series, and the limit names them.
    #[test]
    fn series_count_toward_the_job_limit() {
        let values = format!(
            "[{}]",
            (0..400)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let s = SweepSpec {
            axes: vec![axis("lr_decay_every", &values), axis("eval_every", &values)],
            ..spec()
        };
        assert_eq!(job_count(&s), 12 * 400 * 400);
        let e = expand_jobs(&s).unwrap_err();
        assert_eq!(e.field, "grid");
        assert!(e.problem.contains("160000 series"), "{e}");
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
                SweepSpec { name, pdes, methods, widths, seeds, base_config_json, max_attempts, priority, ..Default::default() }
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
