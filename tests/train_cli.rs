//! `modsync train` and `modsync methods` take their method options and PDE names from
//! trainer-core's registries: every option has a flag with help text and its default, every
//! method and PDE is listed, and a flag reaches the config (a bad value names its flag).

mod common;

use std::time::Duration;

use common::run_cli;
use trainer_core::catalogue;

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
