//! The readings of the benchmarks (docs/readings.md).
//!
//! 1. A job stored before readings existed keeps its results: `readings/spec_v1.json` holds
//!    small runs of every benchmark computed by a1d74c2 (the last commit before readings; the
//!    generator is `examples/readings_golden.rs`) from configs whose JSON names no reading.
//!    Today's code must compute the same numbers from the same JSON. Same machine, same
//!    numbers bit for bit (checked when the file was written); the tolerance 1e-12 only allows
//!    for another CPU's kernels — a changed reading moves these numbers by 1e-3 or more.
//! 2. The default reading (`paper`) is not the old one where the sources differ: burgers' L_b
//!    and condition points, the 3-D problems' inputs, the lr schedule.

use serde_json::Value;
use trainer_core::observer::Observer;
use trainer_core::pde::{self, PdeOptions, Reading};
use trainer_core::{MetricsRow, TrainConfig, Trainer};

#[derive(Default)]
struct Rows(Vec<MetricsRow>);

impl Observer for Rows {
    fn on_metrics(&mut self, row: &MetricsRow) {
        self.0.push(row.clone());
    }
}

fn run(config: TrainConfig) -> (Vec<MetricsRow>, Vec<f64>) {
    let mut trainer = Trainer::new(config, &trainer_core::default_device()).unwrap();
    let mut rows = Rows::default();
    trainer.run(&mut rows);
    (rows.0, trainer.parameters())
}

fn golden() -> Vec<Value> {
    let text = include_str!("readings/spec_v1.json");
    serde_json::from_str(text).expect("readings/spec_v1.json is JSON")
}

/// |a − b| / max(|b|, 1e-300), so an exact match is 0.
fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn configs_stored_before_readings_train_as_they_did() {
    let cases = golden();
    assert_eq!(
        cases.len(),
        8,
        "every benchmark, the methods the readings change"
    );
    let mut worst = 0.0f64;
    for case in &cases {
        let name = format!("{} {}", case["pde"], case["method"]);
        let config: TrainConfig =
            serde_json::from_str(case["config_json"].as_str().unwrap()).unwrap();
        assert_eq!(config.pde_options.reading, Reading::SpecV1, "{name}");
        let (rows, theta) = run(config);
        let want_rows = case["rows"].as_array().unwrap();
        assert_eq!(rows.len(), want_rows.len(), "{name}: metrics rows");
        for (got, want) in rows.iter().zip(want_rows) {
            assert_eq!(got.iter, want["iter"].as_u64().unwrap(), "{name}");
            for (field, value) in [
                ("lr", got.lr),
                ("loss_r", got.loss_r),
                ("loss_b", got.loss_b),
                ("rel_l2", got.rel_l2),
            ] {
                let e = rel(value, want[field].as_f64().unwrap());
                assert!(e <= 1e-12, "{name} iter {}: {field} off by {e:e}", got.iter);
                worst = worst.max(e);
            }
        }
        let want_theta: Vec<f64> = case["theta"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(theta.len(), want_theta.len(), "{name}: θ");
        for (g, w) in theta.iter().zip(&want_theta) {
            let e = (g - w).abs() / w.abs().max(1.0);
            assert!(e <= 1e-12, "{name}: θ off by {e:e}");
            worst = worst.max(e);
        }
    }
    println!("largest relative difference from a1d74c2's numbers: {worst:e}");
}

/// A golden case's config under `reading`: the first evaluation's L_r and L_b, and the lr in
/// force at iteration 10 (after StepLR's first step).
fn first_row_and_decayed_lr(pde: &str, method: &str, reading: Reading) -> (f64, f64, f64) {
    let case = golden()
        .into_iter()
        .find(|c| c["pde"] == pde && c["method"] == method)
        .expect("a golden case");
    let mut config: TrainConfig =
        serde_json::from_str(case["config_json"].as_str().unwrap()).unwrap();
    config.pde_options.reading = reading;
    let (rows, _) = run(config);
    let decayed = rows.iter().find(|r| r.iter == 10).expect("a row at 10").lr;
    (rows[0].loss_r, rows[0].loss_b, decayed)
}

#[test]
fn the_default_reading_differs_where_the_sources_do() {
    assert_eq!(PdeOptions::default().reading, Reading::Paper);
    // burgers: another L_b (and other condition points), the same residual points.
    let (r_old, b_old, _) = first_row_and_decayed_lr("burgers", "adam", Reading::SpecV1);
    let (r_new, b_new, _) = first_row_and_decayed_lr("burgers", "adam", Reading::Paper);
    assert_eq!(
        r_old, r_new,
        "the interior points do not depend on the reading"
    );
    assert!(rel(b_new, b_old) > 1e-3, "L_b {b_new} vs {b_old}");
    // burgers dcgd: constant lr under the sources' reading, decayed under spec_v1.
    let (_, _, lr_old) = first_row_and_decayed_lr("burgers", "dcgd", Reading::SpecV1);
    let (_, _, lr_new) = first_row_and_decayed_lr("burgers", "dcgd", Reading::Paper);
    assert_eq!((lr_old, lr_new), (0.003 * 0.9, 0.003));
    // helmholtz3d: raw inputs change the network's function (L_b = mean u² on the faces; L_r
    // is dominated by the forcing term at the start).
    let (_, b_old, lr_old) = first_row_and_decayed_lr("helmholtz3d", "adam", Reading::SpecV1);
    let (_, b_new, lr_new) = first_row_and_decayed_lr("helmholtz3d", "adam", Reading::Paper);
    assert!(rel(b_new, b_old) > 1e-3, "L_b {b_new} vs {b_old}");
    assert_eq!((lr_old, lr_new), (0.003 * 0.9, 0.003));
    // helmholtz2d: the sources read it as spec_v1 did.
    let old = first_row_and_decayed_lr("helmholtz2d", "dcgd", Reading::SpecV1);
    let new = first_row_and_decayed_lr("helmholtz2d", "dcgd", Reading::Paper);
    assert_eq!(old, new);
}

/// DCGD's sampler: burgers' initial points are distinct grid x at t = 0, each side's points
/// distinct grid t at x = ±1, drawn afresh each iteration.
#[test]
fn burgers_condition_points_come_from_the_reference_grid() {
    let options = PdeOptions::default();
    let burgers = pde::by_name("burgers", &options).unwrap();
    let grid = burgers.test_grid(None);
    let on_grid = |p: &[f64]| grid.points.chunks_exact(2).any(|g| g == p);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
    let first = burgers.sample_conditions(&mut rng);
    let second = burgers.sample_conditions(&mut rng);
    assert_eq!(first.len(), 3);
    for (c, fixed) in first.iter().zip([(1, 0.0), (0, -1.0), (0, 1.0)]) {
        let rows: Vec<&[f64]> = c.points.chunks_exact(2).collect();
        assert_eq!(rows.len(), 42);
        for p in &rows {
            assert!(p[fixed.0] == fixed.1, "{p:?} off its face");
            // x = ±1 at the sides is not a grid x of the t-axis check; t = 0.99 max.
            if fixed.0 == 1 {
                assert!(on_grid(p), "{p:?} is not a grid point");
            } else {
                assert!((p[1] * 100.0 - (p[1] * 100.0).round()).abs() < 1e-9 && p[1] <= 0.99);
            }
        }
        let mut free: Vec<u64> = rows.iter().map(|p| p[1 - fixed.0].to_bits()).collect();
        free.sort_unstable();
        free.dedup();
        assert_eq!(free.len(), 42, "drawn without replacement");
    }
    assert_ne!(first[0].points, second[0].points, "redrawn every iteration");
    // The first reading samples the faces continuously.
    let old = PdeOptions {
        reading: Reading::SpecV1,
        ..PdeOptions::default()
    };
    let c = pde::by_name("burgers", &old)
        .unwrap()
        .sample_conditions(&mut rng);
    assert!(!c[0].points.chunks_exact(2).all(on_grid));
}
