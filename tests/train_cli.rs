//! `modsync train` and `modsync methods` take their method options and PDE names from
//! trainer-core's registries: every option has a flag with help text and its default, every
//! method and PDE is listed, and a flag reaches the config (a bad value names its flag). Every
//! scalar field of `TrainConfig` has a flag or a reason not to, and no flags train exactly the
//! default config.

mod common;

use std::time::Duration;

use common::run_cli;
use trainer_core::{TrainConfig, catalogue};

const T: Duration = Duration::from_secs(60);

#[test]
fn train_help_shows_every_method_option_with_its_help_and_default() {
    let (ok, help, err) = run_cli(&["train", "--help"], T);
    assert!(ok, "{err}");
    let lines: Vec<&str> = help.lines().map(str::trim).collect();
    for o in catalogue::options() {
        let flag = format!("--{} <{}>", o.path, o.value_name);
        let at = lines
            .iter()
            .position(|l| *l == flag)
            .unwrap_or_else(|| panic!("no line {flag:?} in\n{help}"));
        let expected = format!("{} [default: {}]", o.help, o.default);
        assert_eq!(lines[at + 1], expected, "help of {flag}");
    }
    let pdes = trainer_core::pde::NAMES.join(", ");
    assert!(help.contains(&format!("Benchmark: {pdes}")), "{help}");
}

#[test]
fn methods_lists_every_method_and_option() {
    let (ok, out, err) = run_cli(&["methods"], T);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    for m in catalogue::catalogue() {
        assert!(lines.contains(&m.key), "{} not listed:\n{out}", m.key);
        for o in &m.options {
            let flag = format!("--{} ", o.path);
            assert!(
                lines
                    .iter()
                    .any(|l| l.trim_start().starts_with(&flag) && l.ends_with(o.help)),
                "{flag} not listed:\n{out}"
            );
        }
    }
    for name in trainer_core::methods::NAMES {
        assert!(lines.contains(&name), "{name} not listed:\n{out}");
    }
}

#[test]
fn method_flags_reach_the_config_and_bad_values_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (ok, _, err) = run_cli(
        &[
            "train",
            "--method",
            "modsync+dcgd",
            "--width",
            "4",
            "--depth",
            "2",
            "--iters",
            "2",
            "--dcgd.variant",
            "proj",
            "--modsync.beta",
            "0.25",
            "--ntk.points",
            "7",
            "--out",
            out.to_str().unwrap(),
        ],
        T,
    );
    assert!(ok, "{err}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let config = &result["config"];
    assert_eq!(config["method_options"]["dcgd"]["variant"], "proj");
    assert_eq!(config["modsync"]["beta"], 0.25);
    assert_eq!(config["method_options"]["ntk"]["points"], 7);

    let (ok, _, err) = run_cli(&["train", "--cagrad.c", "x", "--iters", "1"], T);
    assert!(!ok);
    assert!(err.contains("--cagrad.c <F>"), "{err}");
    let (ok, _, err) = run_cli(&["train", "--dcgd.variant", "sideways", "--iters", "1"], T);
    assert!(!ok);
    assert!(err.contains("expected one of center, proj, avg"), "{err}");
    // In range is checked with the whole config, naming the field.
    let (ok, _, err) = run_cli(&["train", "--lra.alpha", "2", "--iters", "1"], T);
    assert!(!ok);
    assert!(
        err.contains("invalid method_options.lra.alpha: must be in (0, 1], got 2"),
        "{err}"
    );
}

/// Top-level `TrainConfig` fields that `modsync train` has no flag for: a run that needs
/// them is a sweep file's (`[train]` takes every field). A field `TrainConfig` gains must get
/// a flag in `TrainArgs` (src/cmd/train.rs) or a line here with its reason.
const LEFT_TO_SWEEP_FILES: &[&str] = &[
    // The StepLR schedule's shape: `--no-lr-decay` turns it off, else SPEC's shape.
    "lr_decay_every",
    "lr_decay_gamma",
    // Checkpoints are for resuming a job on another worker; `train` resumes nothing.
    "checkpoint_every",
    // How long a run of skipped steps may last before the run counts as diverged: a guard,
    // not a setting one run tunes.
    "max_consecutive_skips",
];

/// `TrainConfig` as `result.json` of `modsync train FLAGS --iters 1` holds it.
fn trained_config(flags: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut args = vec!["train", "--iters", "1", "--out", out.to_str().unwrap()];
    args.extend(flags);
    let (ok, _, err) = run_cli(&args, T);
    assert!(ok, "{err}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    result["config"].clone()
}

#[test]
fn no_flags_train_exactly_the_default_config() {
    let expected = TrainConfig {
        iters: 1,
        ..TrainConfig::default()
    };
    assert_eq!(trained_config(&[]), serde_json::to_value(expected).unwrap());
}

#[test]
fn flags_reach_their_fields() {
    let c = trained_config(&[
        "--width",
        "7",
        "--no-lr-decay",
        "--precision",
        "f64",
        "--nc",
        "5",
        "--boundary-loss",
        "pooled_mean",
    ]);
    assert_eq!(
        (&c["width"], &c["lr_decay"], &c["precision"]),
        (&7.into(), &false.into(), &"f64".into())
    );
    assert_eq!(c["pde_options"]["nc"], 5);
    assert_eq!(c["pde_options"]["boundary_loss"], "pooled_mean");
    let (ok, _, err) = run_cli(&["train", "--boundary-loss", "pooled", "--iters", "1"], T);
    assert!(!ok && err.contains("--boundary-loss"), "{err}");
}

#[test]
fn every_scalar_config_field_has_a_flag_or_is_left_to_sweep_files() {
    let (ok, help, err) = run_cli(&["train", "--help"], T);
    assert!(ok, "{err}");
    // A flag's field: `--test-grid` → test_grid, `--no-lr-decay` → lr_decay.
    let flags: Vec<String> = help
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|f| f.trim_end_matches(',').replace('-', "_"))
        .map(|f| f.strip_prefix("no_").map_or(f.clone(), str::to_string))
        .collect();
    let serde_json::Value::Object(fields) = serde_json::to_value(TrainConfig::default()).unwrap()
    else {
        unreachable!("TrainConfig serialises to an object")
    };
    // Option groups (pde_options, method_options, …) are tables: their flags are
    // `--nc`/`--test-grid` and the catalogue's (`cmd/methods.rs`).
    for (field, _) in fields.iter().filter(|(_, v)| !v.is_object()) {
        let has_flag = flags.contains(field);
        let left = LEFT_TO_SWEEP_FILES.contains(&field.as_str());
        assert!(
            has_flag || left,
            "TrainConfig.{field} has no `modsync train` flag: add one to TrainArgs, or add \
             it to LEFT_TO_SWEEP_FILES with the reason"
        );
        assert!(
            !(has_flag && left),
            "TrainConfig.{field} has a flag: remove it from LEFT_TO_SWEEP_FILES"
        );
    }
    for field in LEFT_TO_SWEEP_FILES {
        assert!(
            fields.contains_key(*field),
            "{field} is no TrainConfig field"
        );
    }
}
