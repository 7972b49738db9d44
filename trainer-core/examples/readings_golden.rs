//! Writes the trajectories that `tests/readings.rs` holds the first reading (`spec_v1`) to:
//! small runs of every benchmark, each config given as JSON *without* a `reading`, which is how
//! jobs were stored before readings existed. The committed golden was written by this program
//! built from a1d74c2 (the last commit before readings); the test builds the same configs with
//! today's code and expects the same numbers.
//!
//!     cargo run --release -p trainer-core --example readings_golden > trainer-core/tests/readings/spec_v1.json
//!
//! (Run it on today's tree and it writes what today's code computes for those configs, which
//! the test compares with the committed file.)

use trainer_core::observer::Observer;
use trainer_core::{MetricsRow, TrainConfig, Trainer};

/// The cases: every benchmark, the methods whose schedule or L_b the readings change.
pub const CASES: [(&str, &str); 8] = [
    ("burgers", "adam"),
    ("burgers", "dcgd"),
    ("burgers", "modsync+dcgd"),
    ("helmholtz2d", "dcgd"),
    ("klein_gordon2d", "adam"),
    ("klein_gordon2d", "pcgrad"),
    ("helmholtz3d", "adam"),
    ("klein_gordon3d", "dcgd"),
];

/// A config as a stored job's JSON: no `reading`, StepLR every 10 of 30 iterations.
fn config_json(pde: &str, method: &str) -> String {
    format!(
        r#"{{"pde": "{pde}", "method": "{method}", "width": 8, "depth": 2, "iters": 30,
            "seed": 3, "lr": 0.003, "lr_decay_every": 10, "eval_every": 5,
            "precision": "f64", "pde_options": {{"nc": 4, "test_grid": 8}},
            "diagnostics": {{"enabled": false}}}}"#
    )
}

#[derive(Default)]
struct Rows(Vec<MetricsRow>);

impl Observer for Rows {
    fn on_metrics(&mut self, row: &MetricsRow) {
        self.0.push(row.clone());
    }
}

fn main() {
    let device = trainer_core::default_device();
    let cases: Vec<serde_json::Value> = CASES
        .iter()
        .map(|&(pde, method)| {
            let config: TrainConfig = serde_json::from_str(&config_json(pde, method)).unwrap();
            let mut trainer = Trainer::new(config, &device).unwrap();
            let mut rows = Rows::default();
            trainer.run(&mut rows);
            serde_json::json!({
                "pde": pde,
                "method": method,
                "config_json": config_json(pde, method),
                "rows": rows.0.iter().map(|r| serde_json::json!({
                    "iter": r.iter, "lr": r.lr, "loss_r": r.loss_r, "loss_b": r.loss_b,
                    "rel_l2": r.rel_l2,
                })).collect::<Vec<_>>(),
                "theta": trainer.parameters(),
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&cases).unwrap());
}
